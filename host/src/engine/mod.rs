//! The WebAssembly engine: wasmtime configured for policies (pooling allocator, epoch deadlines,
//! memory caps) and the locked-down set of host functions a guest may import.

#[expect(
    clippy::module_inception,
    reason = "files are named after the main type they hold"
)]
mod engine;
mod guest_state;
mod imports;
mod limits;

pub use engine::{Engine, EngineError};
pub use guest_state::{GuestState, MemoryCapExceeded};
pub use imports::GuestExit;
pub(crate) use imports::{PROVIDED_WASI, PROVIDED_WEIR};
pub use limits::Limits;
