//! [`RecordSegment`]: consecutive records kept as raw bytes so that a failed batch can be
//! decoded again in parts, down to the single records that do not fit.

use std::ops::Range;

use arrow_array::RecordBatch;
use arrow_schema::ArrowError;

use super::pending_chunk::{Origin, PendingChunk};

/// Consecutive records, each stored with a trailing `\n` so that any run of them is one
/// contiguous, well-delimited slice.
#[derive(Debug, Default)]
pub(crate) struct RecordSegment {
    bytes: Vec<u8>,
    records: Vec<SegmentRecord>,
}

#[derive(Debug, Clone, Copy)]
struct SegmentRecord {
    /// Offset just past this record's `\n` in `bytes`.
    end: usize,
    /// Its (first) line number.
    line: u64,
    /// Index into the decoder's origins.
    origin: u32,
}

impl RecordSegment {
    /// Appends a record (without its line terminator).
    pub(crate) fn push(&mut self, raw: &[u8], line: u64, origin: u32) {
        self.bytes.extend_from_slice(raw);
        self.bytes.push(b'\n');
        self.records.push(SegmentRecord {
            end: self.bytes.len(),
            line,
            origin,
        });
    }

    /// Number of records.
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether there are none.
    pub(crate) fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Forgets every record, keeping the allocations.
    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.records.clear();
    }

    /// The bytes of records `range`, each followed by `\n`.
    pub(crate) fn slice(&self, range: Range<usize>) -> &[u8] {
        let start = match range.start {
            0 => 0,
            i => self.records[i - 1].end,
        };
        let end = match range.end {
            0 => 0,
            i => self.records[i - 1].end,
        };
        &self.bytes[start..end]
    }

    /// Record `i` without its `\n`, its line and its origin index.
    fn record(&self, i: usize) -> (&[u8], u64, u32) {
        let r = self.records[i];
        let bytes = self.slice(i..i + 1);
        (&bytes[..bytes.len() - 1], r.line, r.origin)
    }
}

/// Decodes a run of records (their bytes and their count) into a batch.
pub(crate) type DecodeRecords<'a> =
    dyn FnMut(&[u8], usize) -> Result<Option<RecordBatch>, ArrowError> + 'a;

/// Decodes records `range` of `segment` with `decode` (which gets their bytes and their
/// count). When that fails the range is split in halves, recursively, so the records that
/// fit are kept in order and each one that does not becomes a rejection explained by
/// `explain(raw, error)`. Cost: one decode of the range when it is clean; about two with one
/// bad record (the halves holding it shrink geometrically); never more than `1 + log2(len)`,
/// since each level of splitting re-decodes at most the whole range.
pub(crate) fn isolate(
    segment: &RecordSegment,
    range: Range<usize>,
    origins: &[Origin],
    decode: &mut DecodeRecords<'_>,
    explain: &mut dyn FnMut(&[u8], &ArrowError) -> String,
    out: &mut PendingChunk,
) {
    if range.is_empty() {
        return;
    }
    match decode(segment.slice(range.clone()), range.len()) {
        Ok(Some(batch)) => out.push_batch(batch),
        Ok(None) => {}
        Err(error) if range.len() == 1 => {
            let (raw, line, origin) = segment.record(range.start);
            let reason = explain(raw, &error);
            out.reject(&origins[origin as usize], line, raw, reason);
        }
        Err(_) => {
            let mid = range.start + range.len() / 2;
            isolate(segment, range.start..mid, origins, decode, explain, out);
            isolate(segment, mid..range.end, origins, decode, explain, out);
        }
    }
}
