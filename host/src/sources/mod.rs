//! Sources of record batches. Today: generated data for demos and benchmarks; the pipeline
//! issue adds files, stdin and UDP.

pub mod generate;
