//! [`ParquetSink`]: a directory of Parquet files, rotated by rows, bytes, age and schema.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use arrow_array::RecordBatch;
use arrow_schema::{DataType, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use super::finalize::{self, create_dir, create_temp, publish, remove_stale_temps};
use super::{Sink, SinkError, SinkReport};
use crate::config::ParquetSinkConfig;
use crate::pipeline::PolicyStamp;

/// The finished files' extension.
const EXT: &str = ".parquet";
/// Key-value metadata: a JSON array of the distinct policy stamps
/// (`{"name", "version", "sha256"}`, sorted) that touched any row of the file.
pub const POLICIES_KEY: &str = "weir.policies";
/// Key-value metadata: the weir version that wrote the file.
pub const VERSION_KEY: &str = "weir.version";

const DEFAULT_PREFIX: &str = "part";
const DEFAULT_ROTATE_ROWS: u64 = 1_000_000;
const DEFAULT_ROTATE_BYTES: u64 = 128 << 20;
const DEFAULT_ROTATE_INTERVAL: Duration = Duration::from_secs(5 * 60);
const DEFAULT_ROW_GROUP_ROWS: usize = 131_072;
const DEFAULT_ZSTD_LEVEL: i32 = 3;

/// Writes batches to Parquet files in a directory.
///
/// Each file is written as `.{prefix}-{opened, UTC yyyymmddThhmmssZ}-{first seq:010}.parquet.tmp`
/// and, when complete, synced and renamed to the same name without the leading dot and the
/// `.tmp` (the directory is synced after the rename), so a reader globbing `*.parquet` never
/// sees a partial file, and names sort in the order the data came. Temporaries left by a crashed
/// run are removed when the sink opens; one sink (one process) per directory and prefix.
///
/// A file is finalized once it holds at least `rotate_rows` rows or about `rotate_bytes` bytes
/// (written plus the open row group's estimate), when it is `rotate_interval` old (checked on
/// every write and tick), when a batch with a different schema comes (the new schema starts a
/// new file), and on [`Sink::finish`]. Batches are never split across files, so a file can
/// exceed the row and byte limits by up to one batch.
///
/// Encoding: zstd (`zstd_level`), dictionary encoding for string and binary columns (the
/// writer falls back to plain encoding for a column whose dictionary grows too large, so in
/// effect dictionaries are kept for low-cardinality columns; numbers and timestamps are plain,
/// where zstd does better per CPU cycle than interning every value), page-level statistics and column indexes, row groups of at
/// most `row_group_rows` rows, `created_by` = `weir <version>`, and the key-value metadata
/// [`POLICIES_KEY`] and [`VERSION_KEY`].
#[derive(Debug)]
pub struct ParquetSink {
    name: String,
    dir: PathBuf,
    prefix: String,
    rotate_rows: u64,
    rotate_bytes: u64,
    rotate_interval: Duration,
    props: WriterProperties,
    open: Option<OpenFile>,
    /// The last sequence number written (rows or not).
    last_seen: u64,
    /// See [`Sink::committed`]; moves only when a file is finalized or nothing is pending.
    committed: u64,
    /// A call failed: refuse more work so `committed` never passes lost rows.
    failed: bool,
    report: SinkReport,
}

/// The file being written.
struct OpenFile {
    writer: ArrowWriter<File>,
    temp: PathBuf,
    stem: String,
    schema: SchemaRef,
    opened: Instant,
    rows: u64,
    stamps: BTreeSet<PolicyStamp>,
}

impl std::fmt::Debug for OpenFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenFile")
            .field("temp", &self.temp)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl ParquetSink {
    /// Opens the sink named `name` on `dir` (already resolved): creates the directory and
    /// removes temporary files a crashed run left there. No file is created until rows come.
    ///
    /// # Errors
    /// The directory cannot be created or listed, a stale temporary cannot be removed, or the
    /// zstd level or row group size is invalid.
    pub fn new(name: &str, cfg: &ParquetSinkConfig, dir: PathBuf) -> Result<Self, SinkError> {
        let prefix = cfg
            .prefix
            .clone()
            .unwrap_or_else(|| DEFAULT_PREFIX.to_owned());
        let level = cfg.zstd_level.unwrap_or(DEFAULT_ZSTD_LEVEL);
        let zstd = ZstdLevel::try_new(level).map_err(parquet_error(&dir, "setting zstd_level"))?;
        let row_group_rows = cfg.row_group_rows.unwrap_or(DEFAULT_ROW_GROUP_ROWS);
        if row_group_rows == 0 {
            return Err(SinkError::Unsupported {
                output: dir.display().to_string(),
                message: "row_group_rows must be more than zero".to_owned(),
            });
        }
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(zstd))
            .set_dictionary_enabled(true)
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(row_group_rows))
            .set_created_by(format!("weir {}", env!("CARGO_PKG_VERSION")))
            .build();
        create_dir(&dir)?;
        remove_stale_temps(&dir, &prefix, EXT)?;
        Ok(Self {
            name: name.to_owned(),
            dir,
            prefix,
            rotate_rows: cfg.rotate_rows.unwrap_or(DEFAULT_ROTATE_ROWS),
            rotate_bytes: cfg.rotate_bytes.map_or(DEFAULT_ROTATE_BYTES, |b| b.0),
            rotate_interval: cfg.rotate_interval.map_or(DEFAULT_ROTATE_INTERVAL, |d| d.0),
            props,
            open: None,
            last_seen: 0,
            committed: 0,
            failed: false,
            report: SinkReport::default(),
        })
    }

    /// Runs `f` unless an earlier call failed; a failure now marks the sink failed.
    fn guarded<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, SinkError>,
    ) -> Result<T, SinkError> {
        if self.failed {
            return Err(SinkError::Failed {
                output: self.dir.display().to_string(),
            });
        }
        let result = f(self);
        self.failed = result.is_err();
        result
    }

    fn write_batch(
        &mut self,
        seq: u64,
        batch: &RecordBatch,
        stamps: &[PolicyStamp],
    ) -> Result<(), SinkError> {
        let now = Instant::now();
        self.rotate_if_old(now)?;
        if batch.num_rows() > 0 {
            if let Some(open) = &self.open
                && open.schema != *batch.schema_ref()
            {
                tracing::info!(
                    sink = %self.name,
                    path = %open.temp.display(),
                    "schema changed; starting a new parquet file"
                );
                self.finalize()?;
            }
            if self.open.is_none() {
                self.open = Some(self.start(seq, batch.schema(), now)?);
            }
            if let Some(open) = &mut self.open {
                open.writer
                    .write(batch)
                    .map_err(parquet_error(&open.temp, "encoding a batch"))?;
                open.rows += batch.num_rows() as u64;
                open.stamps.extend(stamps.iter().cloned());
            }
        }
        self.last_seen = seq;
        match &self.open {
            None => self.committed = seq,
            Some(open) => {
                let bytes = (open.writer.bytes_written() + open.writer.in_progress_size()) as u64;
                if open.rows >= self.rotate_rows || bytes >= self.rotate_bytes {
                    self.finalize()?;
                }
            }
        }
        Ok(())
    }

    /// Finalizes the open file if it is `rotate_interval` old at `now`.
    fn rotate_if_old(&mut self, now: Instant) -> Result<(), SinkError> {
        if self
            .open
            .as_ref()
            .is_some_and(|f| now.saturating_duration_since(f.opened) >= self.rotate_interval)
        {
            self.finalize()?;
        }
        Ok(())
    }

    /// Starts a file whose first batch is `seq`.
    fn start(&self, seq: u64, schema: SchemaRef, now: Instant) -> Result<OpenFile, SinkError> {
        let stem = finalize::stem(&self.prefix, SystemTime::now(), seq);
        let temp = finalize::temp_path(&self.dir, &stem, EXT);
        let file = create_temp(&temp)?;
        let writer = ArrowWriter::try_new(
            file,
            schema.clone(),
            Some(dictionary_for(&self.props, &schema)),
        )
        .map_err(parquet_error(&temp, "starting a parquet file"))?;
        Ok(OpenFile {
            writer,
            temp,
            stem,
            schema,
            opened: now,
            rows: 0,
            stamps: BTreeSet::new(),
        })
    }

    /// Closes the open file (with its key-value metadata), syncs it, renames it into place and
    /// syncs the directory; everything seen so far is then committed.
    fn finalize(&mut self) -> Result<(), SinkError> {
        let Some(mut open) = self.open.take() else {
            return Ok(());
        };
        let policies: Vec<serde_json::Value> = open
            .stamps
            .iter()
            .map(|s| serde_json::json!({"name": s.name, "version": s.version, "sha256": s.sha256}))
            .collect();
        open.writer.append_key_value_metadata(KeyValue::new(
            POLICIES_KEY.to_owned(),
            serde_json::Value::Array(policies).to_string(),
        ));
        open.writer.append_key_value_metadata(KeyValue::new(
            VERSION_KEY.to_owned(),
            env!("CARGO_PKG_VERSION").to_owned(),
        ));
        open.writer
            .finish()
            .map_err(parquet_error(&open.temp, "writing the file footer"))?;
        let bytes = open.writer.bytes_written() as u64;
        let path = publish(open.writer.inner(), &open.temp, &self.dir, &open.stem, EXT)?;
        tracing::info!(
            sink = %self.name,
            path = %path.display(),
            rows = open.rows,
            bytes,
            "finalized parquet file"
        );
        self.committed = self.last_seen;
        self.report.rows += open.rows;
        self.report.bytes += bytes;
        self.report.files.push(path);
        Ok(())
    }
}

impl Sink for ParquetSink {
    fn write(
        &mut self,
        seq: u64,
        batch: &RecordBatch,
        stamps: &[PolicyStamp],
    ) -> Result<(), SinkError> {
        self.guarded(|s| s.write_batch(seq, batch, stamps))
    }

    fn tick(&mut self, now: Instant) -> Result<(), SinkError> {
        self.guarded(|s| s.rotate_if_old(now))
    }

    fn committed(&self) -> u64 {
        self.committed
    }

    fn finish(&mut self) -> Result<SinkReport, SinkError> {
        self.guarded(|s| {
            s.finalize()?;
            Ok(s.report.clone())
        })
    }
}

fn parquet_error(path: &Path, action: &'static str) -> impl FnOnce(ParquetError) -> SinkError {
    let path = path.to_path_buf();
    move |source| SinkError::Parquet {
        path,
        action,
        source,
    }
}

/// `props` with dictionary encoding on for the string and binary columns of `schema` only.
fn dictionary_for(props: &WriterProperties, schema: &SchemaRef) -> WriterProperties {
    let mut builder = props.clone().into_builder().set_dictionary_enabled(false);
    for field in schema.fields() {
        if matches!(
            field.data_type(),
            DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
                | DataType::Binary
                | DataType::LargeBinary
                | DataType::BinaryView
                | DataType::FixedSizeBinary(_)
                | DataType::Dictionary(..)
        ) {
            builder = builder.set_column_dictionary_enabled(
                parquet::schema::types::ColumnPath::new(vec![field.name().clone()]),
                true,
            );
        }
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::sync::Arc;
    use std::time::Duration;

    use arrow_array::{ArrayRef, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray};
    use arrow_schema::{DataType, Field, Schema, TimeUnit};
    use arrow_select::concat::concat_batches;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::basic::Encoding;
    use parquet::file::metadata::ParquetMetaData;

    use super::*;
    use crate::config::{ByteSize, HumanDuration};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("site", DataType::Utf8, false),
            Field::new("temp", DataType::Float64, true),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
        ]))
    }

    /// Rows `start..start + rows`: a low-cardinality `site`, some null temperatures.
    fn batch(start: i64, rows: usize) -> RecordBatch {
        let ids: Vec<i64> = (start..start + rows as i64).collect();
        let sites = ["north", "south", "east"];
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(ids.clone())),
            Arc::new(StringArray::from_iter_values(
                ids.iter().map(|i| sites[(*i % 3) as usize]),
            )),
            Arc::new(Float64Array::from_iter(
                ids.iter().map(|i| (i % 7 != 0).then(|| *i as f64 / 4.0)),
            )),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    ids.iter().map(|i| 1_714_564_800_000_000 + i * 1_000),
                )
                .with_timezone("UTC"),
            ),
        ];
        RecordBatch::try_new(schema(), columns).unwrap()
    }

    /// `rows` pseudo-random ids: incompressible, so the file grows by about 8 bytes a row.
    fn noise(seed: u64, rows: usize) -> RecordBatch {
        let mut x = seed;
        let values: Vec<i64> = (0..rows)
            .map(|_| {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                x as i64
            })
            .collect();
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values))]).unwrap()
    }

    fn defaults() -> ParquetSinkConfig {
        ParquetSinkConfig {
            path: PathBuf::from("unused"),
            prefix: None,
            rotate_rows: None,
            rotate_bytes: None,
            rotate_interval: None,
            row_group_rows: None,
            zstd_level: None,
        }
    }

    fn stamp(name: &str) -> PolicyStamp {
        PolicyStamp {
            name: name.to_owned(),
            version: "0.1.0".to_owned(),
            sha256: format!("{name}-sha"),
        }
    }

    /// All names in `dir`, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    /// The `*.parquet` files, as a reader globbing would see them, sorted.
    fn parquet_files(dir: &Path) -> Vec<PathBuf> {
        names(dir)
            .into_iter()
            .filter(|n| n.ends_with(".parquet") && !n.starts_with('.'))
            .map(|n| dir.join(n))
            .collect()
    }

    fn read(path: &Path) -> (RecordBatch, Arc<ParquetMetaData>) {
        let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap();
        let meta = Arc::clone(builder.metadata());
        let schema = Arc::clone(builder.schema());
        let batches: Vec<RecordBatch> = builder.build().unwrap().map(Result::unwrap).collect();
        (concat_batches(&schema, &batches).unwrap(), meta)
    }

    fn assert_same_rows(got: &RecordBatch, expected: &[RecordBatch]) {
        let expected = concat_batches(&expected[0].schema(), expected).unwrap();
        assert_eq!(got.schema().fields(), expected.schema().fields());
        assert_eq!(got.columns(), expected.columns());
    }

    fn kv<'a>(meta: &'a ParquetMetaData, key: &str) -> &'a str {
        let kv = meta.file_metadata().key_value_metadata().unwrap();
        let found = kv.iter().find(|kv| kv.key == key).unwrap();
        found.value.as_deref().unwrap()
    }

    /// Values, encoding settings, statistics, row groups and key-value metadata of one file.
    #[test]
    fn writes_readable_zstd_files_with_statistics_and_policies() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let cfg = ParquetSinkConfig {
            row_group_rows: Some(300),
            ..defaults()
        };
        let mut sink = ParquetSink::new("p", &cfg, out.clone()).unwrap();
        let batches = [batch(0, 500), batch(500, 500)];
        sink.write(1, &batches[0], &[stamp("redact"), stamp("clamp")])
            .unwrap();
        sink.write(2, &batches[1], &[stamp("clamp")]).unwrap();
        let report = sink.finish().unwrap();

        let files = parquet_files(&out);
        assert_eq!(files.len(), 1);
        let name = files[0].file_name().unwrap().to_str().unwrap();
        // part-yyyymmddThhmmssZ-0000000001.parquet
        assert_eq!(name.len(), "part-20240501T120000Z-0000000001.parquet".len());
        assert!(name.starts_with("part-") && name.ends_with("Z-0000000001.parquet"));
        assert_eq!(name.as_bytes()[13], b'T');
        assert!(
            name[5..13]
                .bytes()
                .chain(name[14..20].bytes())
                .all(|b| b.is_ascii_digit())
        );

        let (got, meta) = read(&files[0]);
        assert_same_rows(&got, &batches);

        let file_meta = meta.file_metadata();
        assert_eq!(file_meta.num_rows(), 1000);
        let version = env!("CARGO_PKG_VERSION");
        assert_eq!(
            file_meta.created_by(),
            Some(format!("weir {version}").as_str())
        );
        let rows: Vec<i64> = meta.row_groups().iter().map(|rg| rg.num_rows()).collect();
        assert_eq!(rows, [300, 300, 300, 100]);
        for rg in meta.row_groups() {
            for col in rg.columns() {
                let path = col.column_path().string();
                assert!(matches!(col.compression(), Compression::ZSTD(_)), "{path}");
                assert!(col.statistics().is_some(), "{path}: chunk statistics");
                assert!(col.column_index_offset().is_some(), "{path}: page index");
                assert!(col.offset_index_offset().is_some(), "{path}: offset index");
            }
            let site = rg.column(1);
            assert!(
                site.encodings().any(|e| e == Encoding::RLE_DICTIONARY),
                "low-cardinality column is dictionary-encoded"
            );
        }
        let id_stats = meta.row_group(0).column(0).statistics().unwrap();
        assert_eq!(id_stats.min_bytes_opt(), Some(&0i64.to_le_bytes()[..]));
        assert_eq!(id_stats.max_bytes_opt(), Some(&299i64.to_le_bytes()[..]));

        let policies: serde_json::Value = serde_json::from_str(kv(&meta, POLICIES_KEY)).unwrap();
        assert_eq!(
            policies,
            serde_json::json!([
                {"name": "clamp", "version": "0.1.0", "sha256": "clamp-sha"},
                {"name": "redact", "version": "0.1.0", "sha256": "redact-sha"},
            ])
        );
        assert_eq!(kv(&meta, VERSION_KEY), version);

        assert_eq!(report.rows, 1000);
        assert_eq!(report.files, files);
        assert_eq!(report.bytes, fs::metadata(&files[0]).unwrap().len());
        assert_eq!(sink.committed(), 2);
    }

    /// 2,500 rows in batches of 500 with rotate_rows 1,000: files of 1,000, 1,000 and 500 rows
    /// whose first batches are 1, 3 and 5; each seq commits when its file is finalized.
    #[test]
    fn rotates_by_rows() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ParquetSinkConfig {
            rotate_rows: Some(1000),
            ..defaults()
        };
        let mut sink = ParquetSink::new("p", &cfg, dir.path().to_owned()).unwrap();
        let batches: Vec<RecordBatch> = (0..5).map(|i| batch(i * 500, 500)).collect();
        let mut committed = Vec::new();
        for (seq, b) in (1..).zip(&batches) {
            sink.write(seq, b, &[]).unwrap();
            committed.push(sink.committed());
        }
        assert_eq!(committed, [0, 2, 2, 4, 4]);
        assert_eq!(parquet_files(dir.path()).len(), 2);
        sink.finish().unwrap();
        assert_eq!(sink.committed(), 5);

        let files = parquet_files(dir.path());
        let firsts: Vec<&str> = files
            .iter()
            .map(|f| &f.to_str().unwrap()[f.to_str().unwrap().len() - 18..])
            .collect();
        assert_eq!(
            firsts,
            [
                "0000000001.parquet",
                "0000000003.parquet",
                "0000000005.parquet"
            ]
        );
        let contents: Vec<RecordBatch> = files.iter().map(|f| read(f).0).collect();
        let rows: Vec<usize> = contents.iter().map(RecordBatch::num_rows).collect();
        assert_eq!(rows, [1000, 1000, 500]);
        let all = concat_batches(&contents[0].schema(), &contents).unwrap();
        assert_same_rows(&all, &batches);
    }

    /// With rotate_bytes 4KiB each 1,000-row batch of random numbers (~8KB) fills a file; with
    /// the default 128MiB the same batches share one.
    #[test]
    fn rotates_by_bytes() {
        let batches: Vec<RecordBatch> = (1..=3).map(|seed| noise(seed, 1000)).collect();
        for (limit, files) in [(Some(ByteSize(4096)), 3), (None, 1)] {
            let dir = tempfile::tempdir().unwrap();
            let cfg = ParquetSinkConfig {
                rotate_bytes: limit,
                ..defaults()
            };
            let mut sink = ParquetSink::new("p", &cfg, dir.path().to_owned()).unwrap();
            for (seq, b) in (1..).zip(&batches) {
                sink.write(seq, b, &[]).unwrap();
            }
            if limit.is_some() {
                assert_eq!(sink.committed(), 3, "every batch filled its file");
            }
            sink.finish().unwrap();
            let found = parquet_files(dir.path());
            assert_eq!(found.len(), files, "{limit:?}");
            let contents: Vec<RecordBatch> = found.iter().map(|f| read(f).0).collect();
            let all = concat_batches(&contents[0].schema(), &contents).unwrap();
            assert_same_rows(&all, &batches);
        }
    }

    /// tick finalizes a file once it is rotate_interval old; write checks the age too.
    #[test]
    fn rotates_by_time() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ParquetSinkConfig {
            rotate_interval: Some(HumanDuration(Duration::from_secs(60))),
            ..defaults()
        };
        let mut sink = ParquetSink::new("p", &cfg, dir.path().to_owned()).unwrap();
        sink.write(1, &batch(0, 10), &[]).unwrap();
        let now = Instant::now();
        sink.tick(now + Duration::from_secs(30)).unwrap();
        assert_eq!(parquet_files(dir.path()).len(), 0);
        assert_eq!(sink.committed(), 0);
        sink.tick(now + Duration::from_secs(61)).unwrap();
        assert_eq!(parquet_files(dir.path()).len(), 1);
        assert_eq!(sink.committed(), 1);
        sink.write(2, &batch(10, 10), &[]).unwrap();
        assert_eq!(sink.committed(), 1);
        sink.finish().unwrap();
        assert_eq!(parquet_files(dir.path()).len(), 2);
        assert_eq!(sink.committed(), 2);

        let dir = tempfile::tempdir().unwrap();
        let cfg = ParquetSinkConfig {
            rotate_interval: Some(HumanDuration(Duration::from_millis(20))),
            ..defaults()
        };
        let mut sink = ParquetSink::new("p", &cfg, dir.path().to_owned()).unwrap();
        sink.write(1, &batch(0, 10), &[]).unwrap();
        std::thread::sleep(Duration::from_millis(30));
        sink.write(2, &batch(10, 10), &[]).unwrap();
        assert_eq!(
            parquet_files(dir.path()).len(),
            1,
            "write finalized the old file"
        );
        assert_eq!(sink.committed(), 1);
        sink.finish().unwrap();
        assert_eq!(parquet_files(dir.path()).len(), 2);
    }

    /// A batch with another schema finalizes the open file and starts a new one.
    #[test]
    fn rotates_on_schema_change() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = ParquetSink::new("p", &defaults(), dir.path().to_owned()).unwrap();
        let batches = [batch(0, 10), noise(1, 5), batch(10, 10)];
        sink.write(1, &batches[0], &[]).unwrap();
        sink.write(2, &batches[1], &[]).unwrap();
        assert_eq!(parquet_files(dir.path()).len(), 1);
        assert_eq!(sink.committed(), 1);
        sink.write(3, &batches[2], &[]).unwrap();
        assert_eq!(sink.committed(), 2);
        let report = sink.finish().unwrap();
        let files = parquet_files(dir.path());
        assert_eq!(report.files, files);
        assert_eq!(files.len(), 3);
        for (file, expected) in files.iter().zip(&batches) {
            assert_same_rows(&read(file).0, std::slice::from_ref(expected));
        }
    }

    /// Empty batches commit at once when nothing is pending, and wait behind an open file.
    #[test]
    fn committed_counts_empty_batches() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = ParquetSink::new("p", &defaults(), dir.path().to_owned()).unwrap();
        let empty = batch(0, 0);
        assert_eq!(sink.committed(), 0);
        sink.write(1, &empty, &[]).unwrap();
        assert_eq!(sink.committed(), 1);
        sink.write(2, &batch(0, 3), &[]).unwrap();
        assert_eq!(sink.committed(), 1);
        sink.write(3, &empty, &[]).unwrap();
        sink.tick(Instant::now()).unwrap();
        assert_eq!(sink.committed(), 1);
        let report = sink.finish().unwrap();
        assert_eq!(sink.committed(), 3);
        assert_eq!(report.rows, 3);
        let files = parquet_files(dir.path());
        assert_eq!(files.len(), 1);
        assert!(files[0].to_str().unwrap().ends_with("-0000000002.parquet"));

        let dir = tempfile::tempdir().unwrap();
        let mut sink = ParquetSink::new("p", &defaults(), dir.path().to_owned()).unwrap();
        for seq in 1..=3 {
            sink.write(seq, &empty, &[]).unwrap();
            assert_eq!(sink.committed(), seq);
        }
        let report = sink.finish().unwrap();
        assert!(report.files.is_empty());
        assert!(names(dir.path()).is_empty(), "no file for no rows");
    }

    /// While a file is being written only its hidden temporary exists.
    #[test]
    fn no_final_name_before_finalize() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = ParquetSink::new("p", &defaults(), dir.path().to_owned()).unwrap();
        sink.write(1, &batch(0, 100), &[]).unwrap();
        sink.write(2, &batch(100, 100), &[]).unwrap();
        let during = names(dir.path());
        assert_eq!(during.len(), 1, "{during:?}");
        assert!(during[0].starts_with(".part-") && during[0].ends_with(".parquet.tmp"));
        assert!(parquet_files(dir.path()).is_empty());
        sink.finish().unwrap();
        let after = names(dir.path());
        assert_eq!(after.len(), 1, "{after:?}");
        assert_eq!(format!(".{}.tmp", after[0]), during[0]);
    }

    /// Opening removes this prefix's temporaries and leaves everything else.
    #[test]
    fn removes_stale_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            ".part-20240501T120000Z-0000000007.parquet.tmp",
            ".logs-20240501T120000Z-0000000007.parquet.tmp",
            "part-20240501T110000Z-0000000001.parquet",
        ] {
            fs::write(dir.path().join(name), b"x").unwrap();
        }
        let _sink = ParquetSink::new("p", &defaults(), dir.path().to_owned()).unwrap();
        assert_eq!(
            names(dir.path()),
            [
                ".logs-20240501T120000Z-0000000007.parquet.tmp",
                "part-20240501T110000Z-0000000001.parquet"
            ]
        );
    }

    /// After a failure nothing more is written and `committed` stays where it was.
    #[test]
    fn a_failure_stops_the_sink() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let mut sink = ParquetSink::new("p", &defaults(), out.clone()).unwrap();
        sink.write(1, &batch(0, 10), &[]).unwrap();
        fs::remove_dir_all(&out).unwrap();
        let err = sink.finish().unwrap_err().to_string();
        assert!(
            err.contains("renaming the finished file into place"),
            "{err}"
        );
        assert!(err.contains(".part-"), "{err}");
        assert_eq!(sink.committed(), 0);
        let err = sink.write(2, &batch(0, 0), &[]).unwrap_err();
        assert!(matches!(err, SinkError::Failed { .. }), "{err:?}");
        assert_eq!(sink.committed(), 0);
    }
}
