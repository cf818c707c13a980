//! Policies: loading modules, the host side of the ABI, running one policy, and chains.

pub mod abi;
pub mod bundle;
mod control;
mod chain;
mod compile_cache;
mod error;
mod instance;
mod load;
mod runner;

pub use chain::{ChainOutput, ChainPolicy, DeadLetter, FailMode, PolicyChain, PolicyStats};
pub use compile_cache::{CacheError, CompileCache};
pub use error::{ErrorKind, Phase, PolicyError};
pub use load::{
    CompileTask, Inspection, LoadError, LoadErrorKind, PolicyModule, compile_in_background,
    compile_in_background_cached, inspect,
};
pub use runner::PolicyRunner;
pub use control::{
    Activation, Health, PolicyControl, PolicyStatus, PromotionTimings, Refusal, RefusalCode,
};
