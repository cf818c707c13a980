//! The admin HTTP API and the watched policy directory: the two ways a new policy version
//! reaches the registry ([`crate::policy::PolicyControl`]) from outside. See `docs/admin.md`.
//!
//! * [`serve`]: `GET /healthz`, `GET /metrics`, `GET /v1/policies`, `PUT /v1/policies/{name}`
//!   (bearer token, size cap), over HTTP or HTTPS (rustls).
//! * [`watch`]: bundles dropped into a directory move to `accepted/` or `refused/`.

mod admin_server;
mod bearer_token;
mod error;
mod error_body;
mod policy_watcher;
mod routes;
mod server_tls;
#[cfg(test)]
pub(crate) mod test_support;

pub use admin_server::{AdminServer, serve, serve_with_metrics};
pub use error::AdminError;
pub use error_body::{ErrorBody, ErrorDetail};
pub use policy_watcher::{PolicyWatcher, watch};
