//! [`ColumnarFile`]: a Parquet or Arrow IPC file read as record batches, with its schema and
//! how far through the file reading is.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, Field, Schema, SchemaRef};

use super::SourceError;
use crate::config::FileFormat;

type Batches = Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>> + Send>;

/// An open Parquet or Arrow IPC file.
pub(crate) struct ColumnarFile {
    /// The file's own schema.
    pub schema: SchemaRef,
    /// Its size in bytes.
    pub size: u64,
    batches: Batches,
    progress: Progress,
}

impl std::fmt::Debug for ColumnarFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColumnarFile")
            .field("schema", &self.schema)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// How far through the file reading is.
enum Progress {
    /// Parquet: estimated from rows read out of the footer's total.
    Rows { total: u64, done: u64 },
    /// Arrow IPC: bytes actually read.
    Counted(Arc<AtomicU64>),
}

impl ColumnarFile {
    /// Opens `path` as `format` (Parquet or Arrow IPC; the IPC file and stream formats are
    /// told apart by the `ARROW1` magic) yielding batches of up to `batch_rows` rows (Parquet;
    /// IPC batches are as written).
    ///
    /// # Errors
    /// The file cannot be opened or is not valid `format`.
    pub(crate) fn open(
        source_name: &str,
        path: &Path,
        format: FileFormat,
        batch_rows: usize,
    ) -> Result<Self, SourceError> {
        let mut file =
            File::open(path).map_err(|e| SourceError::io(source_name, path, "open", e))?;
        let size = file
            .metadata()
            .map_err(|e| SourceError::io(source_name, path, "stat", e))?
            .len();
        let bad = |what: &str, e: &dyn std::fmt::Display| {
            SourceError::format(source_name, path, format!("not a valid {what} file: {e}"))
        };
        match format {
            FileFormat::Parquet => {
                let builder =
                    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                        .map_err(|e| bad("Parquet", &e))?;
                let schema = builder.schema().clone();
                let total = u64::try_from(builder.metadata().file_metadata().num_rows())
                    .unwrap_or_default();
                let reader = builder
                    .with_batch_size(batch_rows.max(1))
                    .build()
                    .map_err(|e| bad("Parquet", &e))?;
                Ok(Self {
                    schema,
                    size,
                    batches: Box::new(reader),
                    progress: Progress::Rows { total, done: 0 },
                })
            }
            // Only Parquet and Arrow IPC come here; the text formats have their decoders.
            FileFormat::ArrowIpc | FileFormat::Ndjson | FileFormat::Csv => {
                let mut magic = [0u8; 6];
                let is_file_format = file.read_exact(&mut magic).is_ok() && &magic == b"ARROW1";
                file.seek(SeekFrom::Start(0))
                    .map_err(|e| SourceError::io(source_name, path, "seek", e))?;
                let counter = Arc::new(AtomicU64::new(0));
                let reader = Counting {
                    inner: file,
                    counter: counter.clone(),
                };
                let (schema, batches): (SchemaRef, Batches) = if is_file_format {
                    let r = arrow_ipc::reader::FileReader::try_new_buffered(reader, None)
                        .map_err(|e| bad("Arrow IPC", &e))?;
                    (r.schema(), Box::new(r))
                } else {
                    let r = arrow_ipc::reader::StreamReader::try_new_buffered(reader, None)
                        .map_err(|e| bad("Arrow IPC", &e))?;
                    (r.schema(), Box::new(r))
                };
                Ok(Self {
                    schema,
                    size,
                    batches,
                    progress: Progress::Counted(counter),
                })
            }
        }
    }

    /// The next batch, `None` at the end.
    ///
    /// # Errors
    /// The file is corrupt.
    pub(crate) fn next_batch(&mut self) -> Result<Option<RecordBatch>, ArrowError> {
        let batch = self.batches.next().transpose()?;
        if let (Some(b), Progress::Rows { done, .. }) = (&batch, &mut self.progress) {
            *done += b.num_rows() as u64;
        }
        Ok(batch)
    }

    /// Bytes of the file read so far (estimated for Parquet), at most its size.
    pub(crate) fn bytes_done(&self) -> u64 {
        let done = match &self.progress {
            Progress::Rows { total: 0, .. } => 0,
            Progress::Rows { total, done } => {
                let share = u128::from(self.size) * u128::from(*done) / u128::from(*total);
                u64::try_from(share).unwrap_or(u64::MAX)
            }
            Progress::Counted(counter) => counter.load(Ordering::Relaxed),
        };
        done.min(self.size)
    }
}

/// A reader that counts the bytes read through it.
struct Counting<R> {
    inner: R,
    counter: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl<R: Seek> Seek for Counting<R> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// How `found` differs from `expected` in column names or types (nullability aside), for
/// an error naming the file that has `found` and the one that set `expected`.
pub(crate) fn schema_difference(
    expected: &Schema,
    expected_in: &Path,
    found: &Schema,
) -> Option<String> {
    let first = expected_in.display();
    let names = |s: &Schema| {
        s.fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if expected.fields().len() != found.fields().len() {
        return Some(format!(
            "a different schema: {} columns ({}) where {first} has {} ({})",
            found.fields().len(),
            names(found),
            expected.fields().len(),
            names(expected),
        ));
    }
    for (e, f) in expected.fields().iter().zip(found.fields()) {
        if e.name() != f.name() {
            return Some(format!(
                "a different schema: column {:?} where {first} has {:?}",
                f.name(),
                e.name()
            ));
        }
        if e.data_type() != f.data_type() {
            return Some(format!(
                "a different schema: column {:?} is {} where {first} has {}",
                f.name(),
                f.data_type(),
                e.data_type()
            ));
        }
    }
    None
}

/// `schema` with each column nullable when it is in `other` too.
pub(crate) fn widen_nullability(schema: &Schema, other: &Schema) -> Schema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .zip(other.fields())
        .map(|(a, b)| {
            a.as_ref()
                .clone()
                .with_nullable(a.is_nullable() || b.is_nullable())
        })
        .collect();
    Schema::new(fields)
}
