//! The policy registry: which signed version of each policy runs, and hot swap.
//!
//! Every configured policy name has a [`PolicySlot`] holding its active version in an
//! `ArcSwap`. The chain reads each slot at every batch boundary; a batch finishes on the
//! versions it started with. A new version goes through [`PolicyRegistry`]: verify (before
//! parsing the module), rollback check, schema check, compile on a background thread, canary
//! on recent live batches, persist the new high-water mark, swap. Any failure leaves the
//! running version in place.

mod canary;
mod policy_registry;
mod policy_slot;
mod registry_error;
mod schema_check;

pub use canary::{CanaryError, CanaryPass};
pub use policy_registry::{ChainSpec, PolicyRegistry, RegistryOptions};
pub use policy_slot::{ActiveVersion, PolicySlot, SlotCounters, SlotPosition};
pub use registry_error::RegistryError;
pub use schema_check::check_compatible;
