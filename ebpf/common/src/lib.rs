//! Placeholder until the eBPF issue: the kernel program and its shared `#[repr(C)]` types land here.
#![no_std]
