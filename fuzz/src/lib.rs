//! Shared pieces of Weir's fuzz targets (docs/fuzzing.md): the real guest instances the
//! `guest_output` target writes into, the layout of its inputs, and the seed builders the
//! `make_seeds` example uses.

pub mod guest;
pub mod text;
