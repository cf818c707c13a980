//! Policies: loading modules, the host side of the ABI, running one policy, and chains.

pub mod abi;
mod chain;
mod error;
mod instance;
mod load;
mod runner;

pub use chain::{ChainOutput, ChainPolicy, DeadLetter, FailMode, PolicyChain, PolicyStats};
pub use error::{ErrorKind, Phase, PolicyError};
pub use load::{CompileTask, LoadError, LoadErrorKind, PolicyModule, compile_in_background};
pub use runner::PolicyRunner;
