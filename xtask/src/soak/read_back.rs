//! [`ReadBack`]: the rows weir wrote, counted by reading its files back: Parquet through the
//! `parquet` crate, dead letters (Arrow IPC files) through `arrow-ipc`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Serialize;

/// What the output directories hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReadBack {
    /// Finished Parquet files.
    pub parquet_files: u64,
    /// Rows decoded from them.
    pub parquet_rows: u64,
    /// Finished dead-letter files.
    pub dead_letter_files: u64,
    /// Rows decoded from them.
    pub dead_letter_rows: u64,
    /// Files left under a temporary (hidden) name: a clean stop leaves none.
    pub temporary_files: Vec<PathBuf>,
}

impl ReadBack {
    /// Reads `out` (Parquet) and `dead_letter` (Arrow IPC files).
    pub fn read(out: &Path, dead_letter: &Path) -> Result<Self> {
        let mut rb = Self::default();
        for path in files(out, &mut rb.temporary_files)? {
            if path.extension().is_some_and(|e| e == "parquet") {
                rb.parquet_rows += parquet_rows(&path)?;
                rb.parquet_files += 1;
            }
        }
        for path in files(dead_letter, &mut rb.temporary_files)? {
            if path.extension().is_some_and(|e| e == "arrow") {
                rb.dead_letter_rows += arrow_file_rows(&path)?;
                rb.dead_letter_files += 1;
            }
        }
        Ok(rb)
    }
}

/// The regular files directly in `dir`, in name order; hidden ones go to `temporary`.
fn files(dir: &Path, temporary: &mut Vec<PathBuf>) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        if entry.file_name().to_string_lossy().starts_with('.') {
            temporary.push(entry.path());
        } else {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}

/// Rows of a Parquet file: its first column is decoded and counted, and the count must match
/// the row count in the file's metadata.
fn parquet_rows(path: &Path) -> Result<u64> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .with_context(|| format!("reading the Parquet footer of {}", path.display()))?;
    let declared = u64::try_from(builder.metadata().file_metadata().num_rows())
        .with_context(|| format!("{}: negative row count", path.display()))?;
    let mask = ProjectionMask::leaves(builder.parquet_schema(), [0]);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(65_536)
        .build()
        .with_context(|| format!("reading {}", path.display()))?;
    let mut decoded = 0u64;
    for batch in reader {
        decoded += batch
            .with_context(|| format!("decoding {}", path.display()))?
            .num_rows() as u64;
    }
    if decoded != declared {
        bail!(
            "{}: decoded {decoded} rows, the metadata says {declared}",
            path.display()
        );
    }
    Ok(decoded)
}

/// Rows of an Arrow IPC file.
fn arrow_file_rows(path: &Path) -> Result<u64> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader = arrow_ipc::reader::FileReader::try_new(file, None)
        .with_context(|| format!("reading the Arrow IPC footer of {}", path.display()))?;
    let mut rows = 0u64;
    for batch in reader {
        rows += batch
            .with_context(|| format!("decoding {}", path.display()))?
            .num_rows() as u64;
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Int64Array, RecordBatch};
    use arrow_schema::{DataType, Field, Schema};

    use super::*;

    fn batch(rows: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        RecordBatch::try_new(
            schema,
            vec![Arc::new(Int64Array::from_iter_values(0..rows))],
        )
        .unwrap()
    }

    #[test]
    fn counts_parquet_and_arrow_rows_and_names_temporary_files() {
        let dir = std::env::temp_dir().join(format!("weir-soak-readback-{}", std::process::id()));
        let dead = dir.join("dead-letter");
        std::fs::create_dir_all(&dead).unwrap();
        for (name, rows) in [("a.parquet", 5), ("b.parquet", 7)] {
            let file = std::fs::File::create(dir.join(name)).unwrap();
            let b = batch(rows);
            let mut w = parquet::arrow::ArrowWriter::try_new(file, b.schema(), None).unwrap();
            w.write(&b).unwrap();
            w.close().unwrap();
        }
        std::fs::write(dir.join(".c.parquet.tmp"), b"partial").unwrap();
        let b = batch(3);
        let file = std::fs::File::create(dead.join("d.arrow")).unwrap();
        let mut w = arrow_ipc::writer::FileWriter::try_new(file, &b.schema()).unwrap();
        w.write(&b).unwrap();
        w.write(&b).unwrap();
        w.finish().unwrap();

        let rb = ReadBack::read(&dir, &dead).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!((rb.parquet_files, rb.parquet_rows), (2, 12));
        assert_eq!((rb.dead_letter_files, rb.dead_letter_rows), (1, 6));
        assert_eq!(rb.temporary_files, [dir.join(".c.parquet.tmp")]);
    }
}
