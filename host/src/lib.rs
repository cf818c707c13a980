//! Weir host library.
