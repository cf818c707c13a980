//! [`CsvDecoder`]: CSV records into Arrow batches, with every record that does not fit
//! rejected on its own.
//!
//! Records are delimited here (a small quote-aware scanner: a quoted field may hold newlines)
//! so that each one's bytes and first line are known. They are gathered into a
//! [`RecordSegment`] and decoded with `arrow_csv` in one call per chunk; when that fails the
//! segment is split in halves until the bad records are alone (see [`isolate`]). The decoded
//! row count must equal the record count, so a record `arrow_csv` reads as two (a stray
//! carriage return) cannot shift later rows.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, SchemaRef};

use super::ndjson_decoder::BOM;
use super::pending_chunk::{Origin, PendingChunk};
use super::record_segment::{RecordSegment, isolate};
use crate::pipeline::SourceChunk;

/// Decodes CSV records into chunks of about `batch_rows` records (rows plus rejections).
#[derive(Debug)]
pub(crate) struct CsvDecoder {
    schema: SchemaRef,
    delimiter: u8,
    batch_rows: usize,
    segment: RecordSegment,
    pending: PendingChunk,
    origin: Origin,
}

impl CsvDecoder {
    /// A decoder for `schema` and `delimiter`.
    pub(crate) fn new(schema: SchemaRef, delimiter: u8, batch_rows: usize) -> Self {
        Self {
            pending: PendingChunk::new(schema.clone()),
            schema,
            delimiter,
            batch_rows: batch_rows.max(1),
            segment: RecordSegment::default(),
            origin: Origin::lines("input"),
        }
    }

    /// Names the file the following records come from (settling the records before).
    pub(crate) fn set_origin(&mut self, name: &str) {
        self.settle();
        self.origin = Origin::lines(Arc::<str>::from(name));
    }

    /// Records gathered for the next chunk.
    pub(crate) fn records(&self) -> usize {
        self.pending.records() + self.segment.len()
    }

    /// Feeds one record (without its final `\n`) starting on line `line`. An empty record
    /// (a blank line) is skipped; a UTF-8 byte order mark on line 1 is dropped. Returns whether the chunk is full.
    pub(crate) fn push_record(&mut self, raw: &[u8], line: u64) -> bool {
        let mut raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line == 1 {
            raw = raw.strip_prefix(BOM).unwrap_or(raw);
        }
        if raw.is_empty() {
            return false;
        }
        self.segment.push(raw, line, 0);
        self.records() >= self.batch_rows
    }

    /// Takes the gathered rows and rejections as a chunk, or `None` when there are none.
    ///
    /// # Errors
    /// The pieces of the chunk could not be concatenated (more than 2 GiB of text).
    pub(crate) fn take_chunk(&mut self) -> Result<Option<SourceChunk>, ArrowError> {
        self.settle();
        self.pending.take()
    }

    fn settle(&mut self) {
        let (schema, delimiter) = (&self.schema, self.delimiter);
        isolate(
            &self.segment,
            0..self.segment.len(),
            std::slice::from_ref(&self.origin),
            &mut |bytes, records| decode_records(schema, delimiter, bytes, records),
            &mut |_, error| reason(schema, error),
            &mut self.pending,
        );
        self.segment.clear();
    }
}

/// Decodes `records` CSV records, each ending in `\n`.
fn decode_records(
    schema: &SchemaRef,
    delimiter: u8,
    bytes: &[u8],
    records: usize,
) -> Result<Option<RecordBatch>, ArrowError> {
    let mut decoder = arrow_csv::ReaderBuilder::new(schema.clone())
        .with_header(false)
        .with_delimiter(delimiter)
        .with_batch_size(records + 1)
        .build_decoder();
    let mut rest = bytes;
    while !rest.is_empty() {
        let used = decoder.decode(rest)?;
        if used == 0 {
            break;
        }
        rest = &rest[used..];
    }
    decoder.decode(&[])?;
    let batch = decoder.flush()?;
    let rows = batch.as_ref().map_or(0, RecordBatch::num_rows);
    if !rest.is_empty() || rows != records {
        return Err(ArrowError::CsvError(format!(
            "{records} records read as {} rows",
            if rest.is_empty() {
                rows.to_string()
            } else {
                "more".into()
            }
        )));
    }
    Ok(batch)
}

/// Why a single record does not fit, from `arrow_csv`'s message.
fn reason(schema: &SchemaRef, error: &ArrowError) -> String {
    let message = match error {
        // Re-validated: for some malformed input arrow_csv hands back a message whose bytes are
        // not valid UTF-8, and formatting it panicked (found by the `decoders` fuzz target,
        // fuzz/regressions/decoders/csv-reason-debug-panic).
        ArrowError::ParseError(m)
        | ArrowError::CsvError(m)
        | ArrowError::InvalidArgumentError(m) => String::from_utf8_lossy(m.as_bytes()).into_owned(),
        other => return String::from_utf8_lossy(other.to_string().as_bytes()).into_owned(),
    };
    if let Some(rest) = message.strip_prefix("Error while parsing value '")
        && let Some((value, rest)) = rest.split_once("' as type '")
        && let Some((ty, rest)) = rest.split_once("' for column ")
    {
        let column = rest
            .split(' ')
            .next()
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|i| schema.fields().get(i))
            .map_or_else(|| "?".to_owned(), |f| f.name().clone());
        return format!("column {column:?}: cannot parse {value:?} as {ty}");
    }
    if let Some(rest) = message.strip_prefix("incorrect number of fields for line ")
        && let Some((_, counts)) = rest.split_once(", ")
    {
        return format!("wrong number of fields: {counts}");
    }
    if let Some(rest) = message.strip_prefix("Column '")
        && let Some((column, _)) = rest.split_once("' is declared as non-nullable")
    {
        return format!("column {column:?} is empty (it is not nullable)");
    }
    if message.contains(" records read as ") {
        return "the record reads as several rows (a stray carriage return?)".into();
    }
    if message.starts_with("Encountered invalid UTF-8") {
        return "not valid UTF-8".into();
    }
    message
}

/// The length (with its `\n`) of the first complete record in `hay` and the lines it spans,
/// or `None` when no record ends in `hay`. Quotes open only at the start of a field; `""`
/// inside quotes is a quote (RFC 4180, as `arrow_csv` reads it).
pub(crate) fn find_record(hay: &[u8], delimiter: u8) -> Option<(usize, u64)> {
    #[derive(Clone, Copy)]
    enum State {
        FieldStart,
        Unquoted,
        Quoted,
        QuoteInQuoted,
    }
    let mut state = State::FieldStart;
    let mut lines = 1;
    for (i, &b) in hay.iter().enumerate() {
        state = match (state, b) {
            (State::Quoted, b'"') => State::QuoteInQuoted,
            (State::Quoted, b'\n') => {
                lines += 1;
                State::Quoted
            }
            (State::Quoted, _) => State::Quoted,
            (_, b'\n') => return Some((i + 1, lines)),
            (_, b) if b == delimiter => State::FieldStart,
            (State::FieldStart | State::QuoteInQuoted, b'"') => State::Quoted,
            _ => State::Unquoted,
        };
    }
    None
}

/// The fields of a header record (a UTF-8 byte order mark dropped).
pub(crate) fn header_names(raw: &[u8], delimiter: u8) -> Vec<String> {
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    let raw = raw.strip_prefix(BOM).unwrap_or(raw);
    let mut names = Vec::new();
    let mut field = Vec::new();
    let mut quoted = false;
    let mut at_start = true;
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if quoted {
            if b == b'"' {
                if raw.get(i + 1) == Some(&b'"') {
                    field.push(b'"');
                    i += 1;
                } else {
                    quoted = false;
                }
            } else {
                field.push(b);
            }
        } else if b == delimiter {
            names.push(String::from_utf8_lossy(&field).into_owned());
            field.clear();
            at_start = true;
            i += 1;
            continue;
        } else if b == b'"' && at_start {
            quoted = true;
        } else {
            field.push(b);
        }
        at_start = false;
        i += 1;
    }
    names.push(String::from_utf8_lossy(&field).into_owned());
    names
}

#[cfg(test)]
mod tests {
    use arrow_schema::{DataType, Field, Schema};

    use super::*;
    use crate::sources::fuzzing::decode_csv;

    /// `fuzz/regressions/decoders/csv-reason-debug-panic`: selector bytes (CSV, a header,
    /// 7 rows a chunk, a 2592-byte read block), then the text. One of its records made
    /// `arrow_csv` hand back an error message that is not valid UTF-8, and formatting it in
    /// [`reason`] panicked the source thread.
    const REPRODUCER: &[u8] =
        include_bytes!("../../../fuzz/regressions/decoders/csv-reason-debug-panic");

    #[test]
    fn a_record_whose_error_message_is_not_utf8_is_rejected_without_a_panic() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("device_id", DataType::Utf8, true),
            Field::new("temperature", DataType::Float64, true),
            Field::new("seq", DataType::Int64, false),
            Field::new("ok", DataType::Boolean, true),
        ]));
        assert_eq!(REPRODUCER[..2], [0x49, 0x9e]);
        let decoded = decode_csv(
            schema.clone(),
            &REPRODUCER[2..],
            b',',
            true,
            64 + 16 * 0x9e,
            7,
        )
        .unwrap();
        let rows: usize = decoded
            .chunks
            .iter()
            .filter_map(|c| c.batch.as_ref())
            .map(RecordBatch::num_rows)
            .sum();
        let rejected: Vec<_> = decoded.chunks.iter().flat_map(|c| &c.rejected).collect();
        assert_eq!(rows + rejected.len(), decoded.fed.len());

        // Line 7 on its own: arrow_csv's message about it is not valid UTF-8.
        let (raw, _) = decoded.fed.iter().find(|(_, line)| *line == 7).unwrap();
        let error = decode_records(&schema, b',', &[raw, b"\n".as_slice()].concat(), 1);
        let Err(ArrowError::ParseError(message)) = &error else {
            panic!("{error:?}")
        };
        assert!(std::str::from_utf8(message.as_bytes()).is_err());
        // It is rejected, its reason cleaned up.
        let seventh = rejected
            .iter()
            .find(|r| r.location == "fuzz-input:7")
            .unwrap();
        assert_eq!(&seventh.raw, raw);
        assert!(
            seventh
                .reason
                .starts_with(r#"column "temperature": cannot parse "    le[[["#)
                && seventh.reason.ends_with("e_i\u{FFFD}\" as Float64"),
            "{}",
            seventh.reason
        );
    }
}
