//! The pipeline: sources → batcher → policy chain → sinks, with bounded queues between the
//! stages so that a slow sink slows the sources and memory stays bounded.

mod record;

pub use record::{Checkpoint, DeadRecords, PolicyStamp, Rejected, SourceChunk};
