//! The `decoders` target's input layout and declared schemas.
//!
//! | byte | meaning |
//! |---|---|
//! | 0 | bit 0: NDJSON (0) or CSV (1); bit 1: the declared schema (0) or one inferred from the input (1); bits 2-3: batch rows (1, 2, 7, 1024); bits 4-5: CSV delimiter (`,` `;` tab `\|`); bit 6: CSV header |
//! | 1 | read block: `64 + 16 * b` bytes |
//! | rest | the input text |

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// Input format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Newline-delimited JSON.
    Ndjson,
    /// CSV.
    Csv,
}

/// How the `decoders` target reads one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    /// NDJSON or CSV.
    pub format: Format,
    /// Infer the schema from the input instead of using the declared one.
    pub infer: bool,
    /// Records per chunk.
    pub batch_rows: usize,
    /// CSV delimiter.
    pub delimiter: u8,
    /// Whether the CSV input starts with a header record.
    pub header: bool,
    /// Bytes per read.
    pub block: usize,
}

/// Batch sizes the selector picks from.
const BATCH_ROWS: [usize; 4] = [1, 2, 7, 1024];
/// Delimiters the selector picks from.
const DELIMITERS: [u8; 4] = *b",;\t|";

impl Mode {
    /// Splits `data` into the mode and the text, or `None` when it is shorter than two bytes.
    #[must_use]
    pub fn parse(data: &[u8]) -> Option<(Self, &[u8])> {
        let (&[flags, block], text) = data.split_first_chunk::<2>()?;
        let mode = Self {
            format: if flags & 1 == 0 {
                Format::Ndjson
            } else {
                Format::Csv
            },
            infer: flags & 2 != 0,
            batch_rows: BATCH_ROWS[usize::from((flags >> 2) & 3)],
            delimiter: DELIMITERS[usize::from((flags >> 4) & 3)],
            header: flags & 0x40 != 0,
            block: 64 + 16 * usize::from(block),
        };
        Some((mode, text))
    }

    /// The selector bytes for this mode (the inverse of [`Mode::parse`]).
    #[must_use]
    pub fn encode(&self) -> [u8; 2] {
        let pick = |list: &[usize], v: usize| list.iter().position(|x| *x == v).unwrap_or(0) as u8;
        let delim = DELIMITERS
            .iter()
            .position(|d| *d == self.delimiter)
            .unwrap_or(0) as u8;
        let mut flags = u8::from(self.format == Format::Csv);
        flags |= u8::from(self.infer) << 1;
        flags |= pick(&BATCH_ROWS, self.batch_rows) << 2;
        flags |= delim << 4;
        flags |= u8::from(self.header) << 6;
        let block = u8::try_from((self.block.saturating_sub(64)) / 16).unwrap_or(u8::MAX);
        [flags, block]
    }
}

/// The declared NDJSON schema: sensor readings as `weir generate sensors` writes them, plus a
/// non-nullable column and a timestamp.
#[must_use]
pub fn ndjson_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("device_id", DataType::Utf8, true),
        Field::new("temperature", DataType::Float64, true),
        Field::new("seq", DataType::Int64, false),
        Field::new("ok", DataType::Boolean, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
    ]))
}

/// The declared CSV schema.
#[must_use]
pub fn csv_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("device_id", DataType::Utf8, true),
        Field::new("temperature", DataType::Float64, true),
        Field::new("seq", DataType::Int64, false),
        Field::new("ok", DataType::Boolean, true),
    ]))
}
