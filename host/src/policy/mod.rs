//! Policies: loading modules, the host side of the ABI, running one policy, and chains.

pub mod abi;
pub mod bundle;
mod chain;
mod compile_cache;
mod control;
mod error;
mod instance;
mod load;
pub mod registry;
mod runner;

pub use chain::{
    ChainOutput, ChainPolicy, DeadLetter, FailMode, Isolation, PolicyChain, PolicyStats, Recycle,
};
pub use compile_cache::{CacheError, CompileCache};
pub use control::{
    Activation, Health, PolicyControl, PolicyStatus, PromotionTimings, Refusal, RefusalCode,
};
pub use error::{ErrorKind, Phase, PolicyError};
pub use load::{
    CompileTask, Inspection, LoadError, LoadErrorKind, PolicyModule, compilations,
    compile_in_background, compile_in_background_cached, inspect,
};
pub use runner::PolicyRunner;
