//! Entry points for the fuzz targets (`fuzz/`, docs/fuzzing.md), not a stable API: the file
//! source's NDJSON and CSV read loops run over an in-memory input instead of a file, and
//! schema inference over a sample. The loops are the same pieces `file_source` uses
//! ([`LineBuffer`], [`NdjsonDecoder`], the CSV record scanner and decoder), with the chunks
//! collected instead of sent.

use std::io::Cursor;

use arrow_schema::{ArrowError, SchemaRef};

use super::csv_decoder::{CsvDecoder, find_record, header_names};
use super::line_buffer::LineBuffer;
use super::ndjson_decoder::NdjsonDecoder;
use super::{SourceError, schema_infer};
use crate::config::CsvOptions;
use crate::pipeline::SourceChunk;

/// What a read loop produced.
#[derive(Debug, Default)]
pub struct Decoded {
    /// Every chunk the decoder handed out, in order.
    pub chunks: Vec<SourceChunk>,
    /// Every record given to the decoder (bytes without the final `\n`, first line number),
    /// in order; for CSV the header record is not among them.
    pub fed: Vec<(Vec<u8>, u64)>,
    /// The CSV header's column names, when the input had one.
    pub header: Option<Vec<String>>,
}

/// Reads `input` as the file source reads an NDJSON file, `block` bytes at a time, into
/// chunks of about `batch_rows` records.
///
/// # Errors
/// The schema cannot be decoded from JSON, or a chunk could not be assembled.
pub fn decode_ndjson(
    schema: SchemaRef,
    input: &[u8],
    block: usize,
    batch_rows: usize,
) -> Result<Decoded, ArrowError> {
    let mut decoder = NdjsonDecoder::new(schema, batch_rows)?;
    decoder.set_origin("fuzz-input", true);
    let mut reader = Cursor::new(input);
    let mut lines = LineBuffer::new(block, 1, 0);
    let mut out = Decoded::default();
    loop {
        let n = lines
            .read_from(&mut reader)
            .map_err(|e| ArrowError::ExternalError(Box::new(e)))?;
        while let Some((line, number)) = lines.next_line() {
            out.fed.push((line.to_vec(), number));
            if decoder.push_line(line, number) {
                out.chunks.extend(decoder.take_chunk()?);
            }
        }
        if n == 0 {
            if let Some((line, number)) = lines.take_rest() {
                out.fed.push((line.to_vec(), number));
                decoder.push_line(line, number);
            }
            break;
        }
    }
    out.chunks.extend(decoder.take_chunk()?);
    Ok(out)
}

/// Reads `input` as the file source reads a CSV file (`header`: the first record names the
/// columns and is not decoded), `block` bytes at a time, into chunks of about `batch_rows`
/// records.
///
/// # Errors
/// A chunk could not be assembled.
pub fn decode_csv(
    schema: SchemaRef,
    input: &[u8],
    delimiter: u8,
    header: bool,
    block: usize,
    batch_rows: usize,
) -> Result<Decoded, ArrowError> {
    let mut decoder = CsvDecoder::new(schema, delimiter, batch_rows);
    decoder.set_origin("fuzz-input");
    let find = |hay: &[u8]| find_record(hay, delimiter);
    let mut reader = Cursor::new(input);
    let mut lines = LineBuffer::new(block, 1, 0);
    let mut header_pending = header;
    let mut out = Decoded::default();
    loop {
        let n = lines
            .read_from(&mut reader)
            .map_err(|e| ArrowError::ExternalError(Box::new(e)))?;
        while let Some((record, number)) = lines.next_record(find, n == 0) {
            if header_pending {
                header_pending = false;
                out.header = Some(header_names(record, delimiter));
                continue;
            }
            out.fed.push((record.to_vec(), number));
            if decoder.push_record(record, number) {
                out.chunks.extend(decoder.take_chunk()?);
            }
        }
        if n == 0 {
            break;
        }
    }
    out.chunks.extend(decoder.take_chunk()?);
    Ok(out)
}

/// Infers an NDJSON schema from `sample` as stdin does (the whole sample, ended).
///
/// # Errors
/// No record to infer from, or the records disagree.
pub fn infer_ndjson(sample: &[u8], rows: usize) -> Result<SchemaRef, SourceError> {
    schema_infer::infer_ndjson_sample("fuzz", sample, true, rows, "fuzz-input")
        .map(|(schema, _)| schema)
}

/// Infers a CSV schema from `sample` as the file source does (the same `arrow_csv` format
/// and options, every column nullable).
///
/// # Errors
/// The sample cannot be parsed or holds no column.
pub fn infer_csv(
    sample: &[u8],
    header: bool,
    delimiter: u8,
    rows: usize,
) -> Result<SchemaRef, SourceError> {
    let options = CsvOptions {
        header,
        delimiter: char::from(delimiter),
    };
    let (schema, _) = schema_infer::csv_format(&options)
        .infer_schema(Cursor::new(sample), Some(rows.max(1)))
        .map_err(|e| SourceError::schema("fuzz", format!("inferring the schema: {e}")))?;
    schema_infer::all_nullable("fuzz", &schema, "sample lines")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_schema::{DataType, Field, Schema};

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("n", DataType::Int64, false),
        ]))
    }

    fn counts(d: &Decoded) -> (usize, usize) {
        let rows = d
            .chunks
            .iter()
            .filter_map(|c| c.batch.as_ref())
            .map(|b| b.num_rows())
            .sum();
        let rejected = d.chunks.iter().map(|c| c.rejected.len()).sum();
        (rows, rejected)
    }

    #[test]
    fn ndjson_loop_reads_across_blocks_and_rejects_bad_lines() {
        let input = b"{\"id\":\"a\",\"n\":1}\n\n{\"id\":\"b\",\"n\":\"x\"}\n{\"id\":\"c\",\"n\":3}";
        let d = decode_ndjson(schema(), input, 64, 2).unwrap();
        assert_eq!(d.fed.len(), 4);
        assert_eq!(counts(&d), (2, 1));
        let rejected = &d.chunks.iter().flat_map(|c| &c.rejected).next().unwrap();
        assert_eq!(rejected.location, "fuzz-input:3");
        assert_eq!(rejected.raw, b"{\"id\":\"b\",\"n\":\"x\"}");
    }

    #[test]
    fn csv_loop_skips_the_header_and_keeps_quoted_newlines() {
        let input = b"id,n\n\"a\nb\",1\nc,x\nd,4\n";
        let d = decode_csv(schema(), input, b',', true, 64, 1024).unwrap();
        assert_eq!(
            d.header.as_deref(),
            Some(&["id".to_owned(), "n".to_owned()][..])
        );
        assert_eq!(d.fed.len(), 3);
        assert_eq!(
            d.fed[1].1, 4,
            "the record after a two-line one starts on line 4"
        );
        assert_eq!(counts(&d), (2, 1));
    }

    #[test]
    fn inference_over_a_sample() {
        let schema = infer_ndjson(b"{\"a\":1,\"b\":\"x\"}\n{\"a\":2}\n", 10).unwrap();
        assert_eq!(schema.field(0).name(), "a");
        assert!(infer_ndjson(b"not json\n", 10).is_err());
        let schema = infer_csv(b"a;b\n1;x\n", true, b';', 10).unwrap();
        assert_eq!(schema.fields().len(), 2);
        assert!(schema.fields().iter().all(|f| f.is_nullable()));
    }
}
