//! [`NdjsonDecoder`]: newline-delimited JSON into Arrow batches, one record per line, with
//! every line that does not fit rejected on its own.
//!
//! # How bad lines are found cheaply
//!
//! Lines are fed one at a time into a single `arrow_json` decoder and copied into a
//! [`RecordSegment`] (the run of lines since the last flush or bad line). After each line the
//! decoder must have consumed all of it, hold exactly one more row than before and not be
//! part way through a value: that rules out a line with two objects and an object split over
//! lines (both would shift every later row onto the wrong line), and catches JSON syntax
//! errors. A whitespace-only line adds no row and is skipped. A line that breaks the rule is
//! rejected; the (now unusable) decoder is rebuilt and the segment before it is decoded again
//! in one call. Each line is thus decoded at most twice for syntax, so the cost stays O(n).
//!
//! Type errors (a string where a number belongs, a missing non-nullable column) only show when
//! the decoder flushes. Then the segment is split in halves, recursively, with fresh decoders
//! (see [`isolate`]) until the lines that do not fit are alone.
//!
//! A clean chunk is one segment, flushed once into one batch. Once a chunk holds a bad line
//! it is in pieces anyway, so from there on segments are cut every [`DIRTY_SEGMENT`] lines:
//! a further bad line then costs re-decoding at most that many lines (plus a concatenation
//! when the chunk is taken). Measured in release on ~130-byte, 6-field lines: clean input
//! runs at about 90% of plain `arrow_json` (540-560 MB/s here), input with 1% bad lines at
//! about 40% of it (~245 MB/s).
//!
//! # Timestamps out of range
//!
//! `arrow_json` reads a number for a timestamp column as an `i64`, and a number that does not
//! fit as an `f64` cast to `i64`, which clamps it to `i64::MIN` or `i64::MAX` instead of
//! failing. The record would be accepted holding a value it did not hold. So those two values
//! are refused in every timestamp column: a batch holding one is treated like a batch with a
//! type error, and the lines that hold them are rejected as out of range (they are about 292
//! million years from 1970 in seconds, longer in finer units, so no real reading is lost).

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use arrow_array::{Array, RecordBatch};
use arrow_json::reader::{Decoder, ReaderBuilder};
use arrow_schema::{ArrowError, DataType, SchemaRef, TimeUnit};

use super::pending_chunk::{Origin, PendingChunk};
use super::record_segment::{RecordSegment, isolate};
use crate::pipeline::SourceChunk;

/// The UTF-8 byte order mark some editors put at the start of a file.
pub(crate) const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Lines per segment once a chunk has a bad line (see [`NdjsonDecoder::segment_limit`]).
const DIRTY_SEGMENT: usize = 32;

/// Decodes NDJSON lines into chunks of about `batch_rows` records (rows plus rejections).
pub struct NdjsonDecoder {
    schema: SchemaRef,
    builder: ReaderBuilder,
    batch_rows: usize,
    decoder: Decoder,
    /// The rows `decoder` was sized for (it takes one more).
    decoder_rows: usize,
    segment: RecordSegment,
    pending: PendingChunk,
    origins: Vec<Origin>,
}

impl std::fmt::Debug for NdjsonDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NdjsonDecoder")
            .field("schema", &self.schema)
            .field("batch_rows", &self.batch_rows)
            .field("records", &self.records())
            .finish_non_exhaustive()
    }
}

impl NdjsonDecoder {
    /// A decoder for `schema` that fills chunks of `batch_rows` records. Lines are located as
    /// `input:<line>` until [`Self::set_origin`] says otherwise.
    ///
    /// # Errors
    /// The schema holds a type `arrow_json` cannot decode.
    pub fn new(schema: SchemaRef, batch_rows: usize) -> Result<Self, ArrowError> {
        let batch_rows = batch_rows.max(1);
        // One row of headroom: a line holding a second value is still seen whole.
        let builder = ReaderBuilder::new(schema.clone()).with_batch_size(batch_rows + 1);
        let decoder = builder.clone().build_decoder()?;
        Ok(Self {
            pending: PendingChunk::new(schema.clone()),
            schema,
            builder,
            batch_rows,
            decoder,
            decoder_rows: batch_rows,
            segment: RecordSegment::default(),
            origins: vec![Origin::lines("input")],
        })
    }

    /// The schema of the batches.
    #[must_use]
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Names where the following lines come from: `name:<line>` in rejections when
    /// `numbered`, else just `name` (e.g. `udp 10.0.0.7:5140`).
    pub fn set_origin(&mut self, name: &str, numbered: bool) {
        let current = self
            .origins
            .last()
            .expect("there is always a current origin");
        if &*current.name != name || current.numbered != numbered {
            self.origins.push(Origin {
                name: Arc::from(name),
                numbered,
            });
        }
    }

    /// Records gathered for the next chunk: rows plus rejections.
    #[must_use]
    pub fn records(&self) -> usize {
        self.pending.records() + self.segment.len()
    }

    /// Feeds one line (without its `\n`; a trailing `\r` is dropped, and a UTF-8 byte order
    /// mark on line 1). Returns whether the chunk is full: then call [`Self::take_chunk`].
    pub fn push_line(&mut self, line: &[u8], line_no: u64) -> bool {
        if self.segment.len() >= self.segment_limit() {
            self.flush_segment();
        }
        let mut line = line.strip_suffix(b"\r").unwrap_or(line);
        if line_no == 1 {
            line = line.strip_prefix(BOM).unwrap_or(line);
        }
        let before = self.decoder.len();
        let problem = match self.decoder.decode(line) {
            Ok(used) if used == line.len() && !self.decoder.has_partial_record() => {
                match self.decoder.len() - before {
                    1 => None,
                    0 => return false,
                    n => Some(format!(
                        "{n} JSON values on one line; a line must hold exactly one record"
                    )),
                }
            }
            Ok(used) if used < line.len() => {
                Some("several JSON values on one line; a line must hold exactly one record".into())
            }
            Ok(_) => Some(String::new()),
            Err(error) => Some(error.to_string()),
        };
        let origin = self.origin_index();
        match problem {
            None => self.segment.push(line, line_no, origin),
            Some(fallback) => {
                self.restart();
                let reason = syntax_reason(line, fallback);
                let origin = &self.origins[origin as usize];
                self.pending.reject(origin, line_no, line, reason);
            }
        }
        self.records() >= self.batch_rows
    }

    /// Rejects a whole record without decoding it (e.g. a datagram too long to read whole).
    /// Returns whether the chunk is full.
    pub fn reject(&mut self, raw: &[u8], line_no: u64, reason: String) -> bool {
        self.flush_segment();
        let origin = &self.origins[self.origin_index() as usize];
        self.pending.reject(origin, line_no, raw, reason);
        self.records() >= self.batch_rows
    }

    /// Takes the gathered rows and rejections as a chunk (no bytes or checkpoint set), or
    /// `None` when there are none.
    ///
    /// # Errors
    /// The pieces of the chunk could not be concatenated (more than 2 GiB of text).
    pub fn take_chunk(&mut self) -> Result<Option<SourceChunk>, ArrowError> {
        self.flush_segment();
        let chunk = self.pending.take()?;
        let current = self
            .origins
            .pop()
            .expect("there is always a current origin");
        self.origins.clear();
        self.origins.push(current);
        if self.decoder_rows < self.batch_rows {
            // Clean again: one segment for the whole next chunk.
            self.replace_decoder(self.batch_rows);
        }
        Ok(chunk)
    }

    /// A fresh decoder taking `rows` rows (and one more, to see a second value on a line).
    fn replace_decoder(&mut self, rows: usize) {
        self.decoder = self
            .builder
            .clone()
            .with_batch_size(rows + 1)
            .build_decoder()
            .expect("the schema was accepted when the first decoder was made");
        self.decoder_rows = rows;
    }

    /// The longest segment: the whole chunk while it is clean (one batch, nothing to
    /// concatenate); once it holds a rejection (so it is in pieces anyway) short segments,
    /// which bound what a further bad line costs to re-decode. Never more than the decoder
    /// takes (a caller may keep feeding a full chunk).
    fn segment_limit(&self) -> usize {
        let limit = if self.pending.records() == 0 {
            self.batch_rows
        } else {
            DIRTY_SEGMENT
        };
        limit.min(self.decoder_rows)
    }

    /// Moves the segment's rows into the pending chunk.
    fn flush_segment(&mut self) {
        if self.segment.is_empty() {
            return;
        }
        match self.decoder.flush() {
            // A timestamp clamped by `arrow_json` (see the module docs): find the lines.
            Ok(Some(batch)) if clamped_timestamp(&batch).is_some() => self.restart(),
            Ok(batch) => {
                if let Some(batch) = batch {
                    self.pending.push_batch(batch);
                }
                self.segment.clear();
            }
            // A type error somewhere in the segment: find the lines.
            Err(_) => self.restart(),
        }
    }

    fn origin_index(&self) -> u32 {
        u32::try_from(self.origins.len() - 1).expect("fewer origins than lines in a chunk")
    }

    /// Replaces the decoder (after a bad line or a failed flush left it unusable) and decodes
    /// the segment's lines again with fresh decoders, isolating any that do not fit.
    fn restart(&mut self) {
        // The chunk now has a rejection: short segments from here on.
        self.replace_decoder(DIRTY_SEGMENT.min(self.batch_rows));
        let builder = &self.builder;
        let schema = &self.schema;
        isolate(
            &self.segment,
            0..self.segment.len(),
            &self.origins,
            &mut |bytes, lines| decode_lines(builder, bytes, lines),
            &mut |raw, error| record_reason(schema, raw, error),
            &mut self.pending,
        );
        self.segment.clear();
    }
}

/// Decodes `lines` lines known to hold one JSON value each.
fn decode_lines(
    builder: &ReaderBuilder,
    bytes: &[u8],
    lines: usize,
) -> Result<Option<RecordBatch>, ArrowError> {
    let mut decoder = builder.clone().with_batch_size(lines + 1).build_decoder()?;
    let used = decoder.decode(bytes)?;
    if used != bytes.len() || decoder.len() != lines {
        return Err(ArrowError::JsonError(
            "lines and JSON values do not pair up".into(),
        ));
    }
    let batch = decoder.flush()?;
    if let Some(column) = batch.as_ref().and_then(clamped_timestamp) {
        // Worded like `arrow_json`'s own errors, so `record_reason` names the column.
        return Err(ArrowError::JsonError(format!(
            "whilst decoding field '{column}': the number is out of range for a timestamp \
             (it must lie strictly between {} and {})",
            i64::MIN,
            i64::MAX
        )));
    }
    Ok(batch)
}

/// The name of the first timestamp column of `batch` holding `i64::MIN` or `i64::MAX`: the
/// values `arrow_json` clamps an out-of-range number to (see the module docs).
fn clamped_timestamp(batch: &RecordBatch) -> Option<&str> {
    batch
        .schema_ref()
        .fields()
        .iter()
        .zip(batch.columns())
        .find(|(_, column)| clamped(column.as_ref()))
        .map(|(field, _)| field.name().as_str())
}

/// Whether `column` is a timestamp column with a valid `i64::MIN` or `i64::MAX` in it.
fn clamped(column: &dyn Array) -> bool {
    let values: &[i64] = match column.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => {
            column.as_primitive::<TimestampSecondType>().values()
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            column.as_primitive::<TimestampMillisecondType>().values()
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            column.as_primitive::<TimestampMicrosecondType>().values()
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            column.as_primitive::<TimestampNanosecondType>().values()
        }
        _ => return false,
    };
    values
        .iter()
        .enumerate()
        .any(|(i, &v)| (v == i64::MIN || v == i64::MAX) && column.is_valid(i))
}

/// Why a line is not one JSON value; `fallback` is the decoder's view.
fn syntax_reason(line: &[u8], fallback: String) -> String {
    let mut values = serde_json::Deserializer::from_slice(line).into_iter::<serde_json::Value>();
    match (values.next(), values.next()) {
        (Some(Err(e)), _) if e.is_eof() => {
            "incomplete JSON: the line ends inside a value (a record must fit on one line)".into()
        }
        (Some(Err(e)), _) | (Some(Ok(_)), Some(Err(e))) => {
            format!("not valid JSON: {}", one_line_position(&e.to_string()))
        }
        (Some(Ok(_)), Some(Ok(_))) => {
            "more than one JSON value on the line; a line must hold exactly one record".into()
        }
        (Some(Ok(value)), None) if !value.is_object() => {
            format!("expected a JSON object, got {}", kind(&value))
        }
        _ if fallback.is_empty() => "not valid JSON".into(),
        _ => fallback,
    }
}

/// Why a line that is one JSON value does not fit the schema.
fn record_reason(schema: &SchemaRef, raw: &[u8], error: &ArrowError) -> String {
    let map = match serde_json::from_slice::<serde_json::Value>(raw) {
        Ok(serde_json::Value::Object(map)) => map,
        Ok(value) => return format!("expected a JSON object, got {}", kind(&value)),
        Err(e) => return format!("not valid JSON: {}", one_line_position(&e.to_string())),
    };
    for field in schema.fields().iter().filter(|f| !f.is_nullable()) {
        match map.get(field.name()) {
            None => return format!("column {:?} is missing (it is not nullable)", field.name()),
            Some(serde_json::Value::Null) => {
                return format!("column {:?} is null (it is not nullable)", field.name());
            }
            Some(_) => {}
        }
    }
    let message = match error {
        ArrowError::JsonError(m) => m.clone(),
        other => other.to_string(),
    };
    match message
        .strip_prefix("whilst decoding field '")
        .and_then(|rest| rest.split_once("': "))
    {
        Some((column, cause)) => format!("column {column:?}: {cause}"),
        None => message,
    }
}

/// serde_json says `... at line 1 column 7`; on one line only the column matters.
fn one_line_position(message: &str) -> String {
    message.replace(" at line 1 column ", " at column ")
}

fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::types::{Float64Type, Int64Type};
    use arrow_schema::{Field, Schema};

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("ts", DataType::Int64, false),
            Field::new("device", DataType::Utf8, false),
            Field::new("temp", DataType::Float64, true),
        ]))
    }

    const GARBAGE: &str = r#"{"ts":1,"device":"a","temp":20.5}

this is not json
{"ts":2,"device":"b","temp":21.0}
{"ts":3,"device":"c","temp":"hot"}
{"ts":4,"device":"d"}
{"ts":5,"temp":1.0}
{"ts":6,"device":"e"}{"ts":7,"device":"f"}
{"ts":8,"device":
"g"}
{"ts":9,"device":"h","temp":null}
[1,2]
42
   
{"ts":11,"device":"j","temp":3}
{"ts":12,"device":"k","temp":4.5
{"ts":13,"device":null}
"#;

    /// What [`decode`] found: the rows' columns and the rejections as (location, reason).
    #[derive(Default)]
    struct Decoded {
        ts: Vec<i64>,
        device: Vec<String>,
        temp: Vec<Option<f64>>,
        rejected: Vec<(String, String)>,
    }

    /// Decodes `text` line by line into chunks of `batch_rows`.
    fn decode(text: &str, batch_rows: usize) -> Decoded {
        let mut decoder = NdjsonDecoder::new(schema(), batch_rows).unwrap();
        decoder.set_origin("data/a.ndjson", true);
        let mut chunks = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if decoder.push_line(line.as_bytes(), i as u64 + 1) {
                chunks.push(decoder.take_chunk().unwrap().unwrap());
            }
        }
        chunks.extend(decoder.take_chunk().unwrap());
        let mut out = Decoded::default();
        for chunk in chunks {
            assert!(chunk.records() as usize <= batch_rows.max(1));
            if let Some(b) = &chunk.batch {
                out.ts.extend(
                    b.column(0)
                        .as_primitive::<Int64Type>()
                        .values()
                        .iter()
                        .copied(),
                );
                out.device.extend(
                    b.column(1)
                        .as_string::<i32>()
                        .iter()
                        .map(|s| s.unwrap().to_owned()),
                );
                out.temp
                    .extend(b.column(2).as_primitive::<Float64Type>().iter());
            }
            for r in chunk.rejected {
                out.rejected.push((r.location, r.reason));
            }
        }
        out
    }

    #[test]
    fn rejects_each_bad_line_and_keeps_the_rest_in_order() {
        for batch_rows in [1, 2, 3, 5, 8192] {
            let Decoded {
                ts,
                device,
                temp,
                rejected,
            } = decode(GARBAGE, batch_rows);
            assert_eq!(ts, [1, 2, 4, 9, 11], "batch_rows {batch_rows}");
            assert_eq!(device, ["a", "b", "d", "h", "j"]);
            assert_eq!(temp, [Some(20.5), Some(21.0), None, None, Some(3.0)]);
            let lines: Vec<&str> = rejected.iter().map(|(l, _)| l.as_str()).collect();
            assert_eq!(
                lines,
                [
                    "data/a.ndjson:3",
                    "data/a.ndjson:5",
                    "data/a.ndjson:7",
                    "data/a.ndjson:8",
                    "data/a.ndjson:9",
                    "data/a.ndjson:10",
                    "data/a.ndjson:12",
                    "data/a.ndjson:13",
                    "data/a.ndjson:16",
                    "data/a.ndjson:17",
                ],
                "batch_rows {batch_rows}"
            );
            let reason = |line: u32| {
                rejected
                    .iter()
                    .find(|(l, _)| l.ends_with(&format!(":{line}")))
                    .unwrap()
                    .1
                    .clone()
            };
            assert!(reason(3).starts_with("not valid JSON"), "{}", reason(3));
            assert_eq!(
                reason(5),
                r#"column "temp": failed to parse "hot" as Float64"#
            );
            assert_eq!(
                reason(7),
                r#"column "device" is missing (it is not nullable)"#
            );
            assert!(
                reason(8).starts_with("more than one JSON value"),
                "{}",
                reason(8)
            );
            assert!(reason(9).starts_with("incomplete JSON"), "{}", reason(9));
            assert!(reason(10).starts_with("not valid JSON"), "{}", reason(10));
            assert_eq!(reason(12), "expected a JSON object, got an array");
            assert_eq!(reason(13), "expected a JSON object, got a number");
            assert!(reason(16).starts_with("incomplete JSON"), "{}", reason(16));
            assert_eq!(
                reason(17),
                r#"column "device" is null (it is not nullable)"#
            );
        }
    }

    #[test]
    fn rejections_keep_their_raw_bytes_and_order_within_a_chunk() {
        let mut decoder = NdjsonDecoder::new(schema(), 100).unwrap();
        decoder.set_origin("x", true);
        decoder.push_line(br#"{"ts":1,"device":"a","temp":"warm"}"#, 1);
        decoder.push_line(b"garbage\r", 2);
        decoder.push_line(br#"{"ts":3,"device":"c"}"#, 3);
        let chunk = decoder.take_chunk().unwrap().unwrap();
        assert_eq!(chunk.batch.unwrap().num_rows(), 1);
        let got: Vec<_> = chunk
            .rejected
            .iter()
            .map(|r| (r.location.as_str(), r.raw.as_slice()))
            .collect();
        assert_eq!(
            got,
            [
                ("x:1", br#"{"ts":1,"device":"a","temp":"warm"}"#.as_slice()),
                ("x:2", b"garbage".as_slice()),
            ]
        );
        assert!(decoder.take_chunk().unwrap().is_none());
    }

    #[test]
    fn many_bad_lines_across_short_segments() {
        // Past the first bad line a chunk is cut into short segments: bad lines at every
        // distance from their boundaries.
        let mut text = String::new();
        let (mut good, mut bad) = (Vec::new(), Vec::new());
        for i in 1..=1000u64 {
            let line = match i % 13 {
                0 => "{\"ts\":1,\"device\":".to_owned(),
                5 | 9 => format!("{{\"ts\":{i},\"device\":\"d\",\"temp\":\"x\"}}"),
                _ => {
                    good.push(i as i64);
                    format!("{{\"ts\":{i},\"device\":\"d\"}}")
                }
            };
            if i % 13 == 0 || i % 13 == 5 || i % 13 == 9 {
                bad.push(format!("data/a.ndjson:{i}"));
            }
            text.push_str(&line);
            text.push('\n');
        }
        for batch_rows in [7, 100, 8192] {
            let Decoded { ts, rejected, .. } = decode(&text, batch_rows);
            assert_eq!(ts, good, "batch_rows {batch_rows}");
            // In input order, like the rows.
            let lines: Vec<_> = rejected.into_iter().map(|(l, _)| l).collect();
            assert_eq!(lines, bad, "batch_rows {batch_rows}");
        }
    }

    #[test]
    fn a_byte_order_mark_on_the_first_line_is_dropped() {
        let Decoded { ts, .. } = decode(
            "\u{feff}{\"ts\":1,\"device\":\"a\"}\n{\"ts\":2,\"device\":\"b\"}",
            10,
        );
        assert_eq!(ts, [1, 2]);
    }

    #[test]
    fn unnumbered_origins_name_each_line_by_its_own_origin() {
        let mut decoder = NdjsonDecoder::new(schema(), 100).unwrap();
        decoder.set_origin("udp 127.0.0.1:1000", false);
        decoder.push_line(b"{", 0);
        decoder.set_origin("udp 127.0.0.1:2000", false);
        decoder.push_line(br#"{"ts":1,"device":5}"#, 0);
        let chunk = decoder.take_chunk().unwrap().unwrap();
        let locations: Vec<_> = chunk.rejected.iter().map(|r| r.location.as_str()).collect();
        assert_eq!(locations, ["udp 127.0.0.1:1000", "udp 127.0.0.1:2000"]);
    }

    #[test]
    fn timestamps_out_of_range_are_rejected_not_clamped() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("seq", DataType::Int64, false),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                true,
            ),
        ]));
        let lines = [
            r#"{"seq":1,"ts":1767225600000}"#,
            r#"{"seq":2,"ts":17672256016666666666666666000}"#,
            r#"{"seq":3,"ts":"2026-01-01T00:00:00Z"}"#,
            r#"{"seq":4,"ts":-1e30}"#,
            r#"{"seq":5,"ts":null}"#,
            r#"{"seq":6,"ts":9223372036854775807}"#,
            r#"{"seq":7,"ts":-9223372036854775806}"#,
        ];
        for batch_rows in [1, 2, 3, 8192] {
            let mut decoder = NdjsonDecoder::new(schema.clone(), batch_rows).unwrap();
            let mut chunks = Vec::new();
            for (i, line) in lines.iter().enumerate() {
                if decoder.push_line(line.as_bytes(), i as u64 + 1) {
                    chunks.push(decoder.take_chunk().unwrap().unwrap());
                }
            }
            chunks.extend(decoder.take_chunk().unwrap());
            let (mut seq, mut ts, mut rejected) = (Vec::new(), Vec::new(), Vec::new());
            for chunk in chunks {
                if let Some(b) = &chunk.batch {
                    seq.extend(
                        b.column(0)
                            .as_primitive::<Int64Type>()
                            .values()
                            .iter()
                            .copied(),
                    );
                    ts.extend(
                        b.column(1)
                            .as_primitive::<TimestampMillisecondType>()
                            .iter(),
                    );
                }
                rejected.extend(chunk.rejected.into_iter().map(|r| (r.location, r.reason)));
            }
            assert_eq!(seq, [1, 3, 5, 7], "batch_rows {batch_rows}");
            assert_eq!(
                ts,
                [
                    Some(1_767_225_600_000),
                    Some(1_767_225_600_000),
                    None,
                    Some(-9_223_372_036_854_775_806)
                ]
            );
            let locations: Vec<_> = rejected.iter().map(|(l, _)| l.as_str()).collect();
            assert_eq!(
                locations,
                ["input:2", "input:4", "input:6"],
                "batch_rows {batch_rows}"
            );
            for (_, reason) in &rejected {
                assert!(
                    reason
                        .starts_with(r#"column "ts": the number is out of range for a timestamp"#),
                    "{reason}"
                );
            }
        }
    }
}
