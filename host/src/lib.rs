//! The Weir host library: runs chains of sandboxed WebAssembly policies over Arrow record
//! batches.
//!
//! * [`engine`]: wasmtime with the pooling allocator, epoch deadlines and memory caps, and the
//!   few host functions a guest may import.
//! * [`policy`]: loading and checking modules, the host side of the ABI
//!   (`guest-sdk/ABI.md`), [`policy::PolicyRunner`] and [`policy::PolicyChain`].

pub mod admin;
pub mod capture;
pub mod cli;
pub mod config;
pub mod engine;
pub mod metrics;
pub mod pipeline;
pub mod policy;
pub mod sinks;
pub mod sources;
