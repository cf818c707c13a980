//! [`DeadLetterSink`]: Arrow IPC files of the records sources rejected and the rows policies
//! failed on, with the reason.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::iter::repeat_n;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow_array::{ArrayRef, BinaryArray, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_ipc::writer::FileWriter;
use arrow_schema::{ArrowError, DataType, Field, FieldRef, Schema, SchemaRef, TimeUnit};

use super::finalize::{self, create_dir, create_temp, io_error, publish, remove_stale_temps};
use super::{SinkError, SinkReport};
use crate::config::DeadLetterConfig;
use crate::pipeline::{DeadRecords, PolicyStamp, Rejected};

/// The finished files' extension.
const EXT: &str = ".arrow";
/// File names start with this.
const PREFIX: &str = "dead";
const DEFAULT_ROTATE_ROWS: u64 = 100_000;
const DEFAULT_ROTATE_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// When the record was dead-lettered: `timestamp(us, UTC)`.
const TIME_COLUMN: &str = "_weir_time";
/// Where it came from: `source:<name>` or `policy:<name>`.
const ORIGIN_COLUMN: &str = "_weir_origin";
/// Rejected records: where in the input (e.g. `data/a.ndjson:17`).
const LOCATION_COLUMN: &str = "_weir_location";
/// Why: the decode error, or the policy's error message.
const REASON_COLUMN: &str = "_weir_reason";
/// Rejected records: the original bytes.
const RAW_COLUMN: &str = "raw";
/// Policy failures: the module's sha256 (hex).
const POLICY_SHA256_COLUMN: &str = "_weir_policy_sha256";
/// Policy failures: the error kind, e.g. `time_limit`.
const ERROR_KIND_COLUMN: &str = "_weir_error_kind";

/// Writes dead records as Arrow IPC **file** format (`.arrow`) in a directory.
///
/// * Records a source rejected: one schema, `_weir_time: timestamp(us, UTC)`,
///   `_weir_origin: utf8` (`source:<name>`), `_weir_location: utf8`, `_weir_reason: utf8`,
///   `raw: binary`.
/// * Rows a policy failed on: the rows' own columns unchanged, then `_weir_time`,
///   `_weir_origin` (`policy:<name>`), `_weir_policy_sha256`, `_weir_error_kind` and
///   `_weir_reason` (all utf8 but the time). A row schema that already has one of these
///   column names is refused.
///
/// One file is open per distinct schema. Each is written as
/// `.dead-{opened, UTC yyyymmddThhmmssZ}-{first seq:010}-{n}.arrow.tmp` (`n` counts the files
/// this run opened) and, once it holds `rotate_rows` rows (default 100,000; records of one
/// sequence number are not split), is `rotate_interval` old (default 5m) or the sink finishes,
/// synced and renamed without the leading dot and `.tmp`, then the directory is synced.
/// Temporaries of a crashed run are removed when the sink opens.
///
/// [`DeadLetterSink::committed`] is the highest sequence number such that every dead record
/// up to it is in a finalized file.
#[derive(Debug)]
pub struct DeadLetterSink {
    dir: PathBuf,
    rotate_rows: u64,
    rotate_interval: Duration,
    rejected_schema: SchemaRef,
    open: HashMap<SchemaRef, DeadFile>,
    /// Files opened so far, for the `n` in names.
    opened: u64,
    last_seen: u64,
    committed: u64,
    failed: bool,
    report: SinkReport,
}

/// A file being written.
struct DeadFile {
    writer: FileWriter<BufWriter<File>>,
    temp: PathBuf,
    stem: String,
    first_seq: u64,
    n: u64,
    opened: Instant,
    rows: u64,
}

impl std::fmt::Debug for DeadFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadFile")
            .field("temp", &self.temp)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl DeadLetterSink {
    /// Opens the dead-letter sink on `dir` (already resolved): creates it and removes
    /// temporaries a crashed run left there. `cfg` `None` means the defaults.
    ///
    /// # Errors
    /// The directory cannot be created or listed, or a stale temporary cannot be removed.
    pub fn new(cfg: Option<&DeadLetterConfig>, dir: PathBuf) -> Result<Self, SinkError> {
        create_dir(&dir)?;
        remove_stale_temps(&dir, PREFIX, EXT)?;
        let utf8 = |name: &str| Field::new(name, DataType::Utf8, false);
        let rejected_schema = Arc::new(Schema::new(vec![
            time_field(),
            utf8(ORIGIN_COLUMN),
            utf8(LOCATION_COLUMN),
            utf8(REASON_COLUMN),
            Field::new(RAW_COLUMN, DataType::Binary, false),
        ]));
        Ok(Self {
            dir,
            rotate_rows: cfg
                .and_then(|c| c.rotate_rows)
                .unwrap_or(DEFAULT_ROTATE_ROWS),
            rotate_interval: cfg
                .and_then(|c| c.rotate_interval)
                .map_or(DEFAULT_ROTATE_INTERVAL, |d| d.0),
            rejected_schema,
            open: HashMap::new(),
            opened: 0,
            last_seen: 0,
            committed: 0,
            failed: false,
            report: SinkReport::default(),
        })
    }

    /// Writes the dead records of sequence number `seq` (possibly none: then only `seq` is
    /// recorded).
    ///
    /// # Errors
    /// An I/O or encoding failure naming the file, a policy row schema using a reserved column
    /// name, or an earlier failure.
    pub fn write(&mut self, seq: u64, records: &[DeadRecords]) -> Result<(), SinkError> {
        self.guarded(|s| s.write_records(seq, records))
    }

    /// Finalizes files that are `rotate_interval` old at `now`.
    ///
    /// # Errors
    /// As for [`DeadLetterSink::write`].
    pub fn tick(&mut self, now: Instant) -> Result<(), SinkError> {
        self.guarded(|s| {
            s.rotate_old(now)?;
            s.update_committed();
            Ok(())
        })
    }

    /// The highest sequence number whose dead records (and all before) are in finalized
    /// files; 0 for none.
    #[must_use]
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// Finalizes every open file.
    ///
    /// # Errors
    /// As for [`DeadLetterSink::write`].
    pub fn finish(&mut self) -> Result<SinkReport, SinkError> {
        self.guarded(|s| {
            let mut keys: Vec<(u64, u64, SchemaRef)> = s
                .open
                .iter()
                .map(|(k, f)| (f.first_seq, f.n, Arc::clone(k)))
                .collect();
            keys.sort_by_key(|(seq, n, _)| (*seq, *n));
            for (_, _, key) in keys {
                s.finalize(&key)?;
            }
            s.update_committed();
            Ok(s.report.clone())
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

    fn write_records(&mut self, seq: u64, records: &[DeadRecords]) -> Result<(), SinkError> {
        let now = Instant::now();
        self.rotate_old(now)?;
        let time = now_micros();
        for record in records {
            if record.rows() == 0 {
                continue;
            }
            let batch = self.to_batch(record, time)?;
            let schema = batch.schema();
            if !self.open.contains_key(&schema) {
                let file = self.start(seq, &schema, now)?;
                self.open.insert(Arc::clone(&schema), file);
            }
            let full = match self.open.get_mut(&schema) {
                Some(file) => {
                    file.writer
                        .write(&batch)
                        .map_err(arrow_error(&file.temp, "writing a batch"))?;
                    file.rows += batch.num_rows() as u64;
                    file.rows >= self.rotate_rows
                }
                None => false,
            };
            if full {
                self.finalize(&schema)?;
            }
        }
        self.last_seen = seq;
        self.update_committed();
        Ok(())
    }

    /// The batch for one [`DeadRecords`], stamped with `time` (µs since the epoch).
    fn to_batch(&self, record: &DeadRecords, time: i64) -> Result<RecordBatch, SinkError> {
        match record {
            DeadRecords::Rejected { source, records } => {
                let n = records.len();
                let columns: Vec<ArrayRef> = vec![
                    time_array(time, n),
                    constant(&format!("source:{source}"), n),
                    Arc::new(StringArray::from_iter_values(
                        records.iter().map(|r: &Rejected| r.location.as_str()),
                    )),
                    Arc::new(StringArray::from_iter_values(
                        records.iter().map(|r| r.reason.as_str()),
                    )),
                    Arc::new(BinaryArray::from_iter_values(
                        records.iter().map(|r| r.raw.as_slice()),
                    )),
                ];
                RecordBatch::try_new(Arc::clone(&self.rejected_schema), columns).map_err(
                    arrow_error(&self.dir, "building a batch of rejected records"),
                )
            }
            DeadRecords::Policy {
                policy,
                kind,
                reason,
                rows,
            } => self.policy_batch(policy, kind, reason, rows, time),
        }
    }

    fn policy_batch(
        &self,
        policy: &PolicyStamp,
        kind: &str,
        reason: &str,
        rows: &RecordBatch,
        time: i64,
    ) -> Result<RecordBatch, SinkError> {
        let n = rows.num_rows();
        let row_schema = rows.schema_ref();
        let added = [
            ORIGIN_COLUMN,
            POLICY_SHA256_COLUMN,
            ERROR_KIND_COLUMN,
            REASON_COLUMN,
        ];
        for name in std::iter::once(TIME_COLUMN).chain(added) {
            if row_schema.column_with_name(name).is_some() {
                return Err(SinkError::Unsupported {
                    output: self.dir.display().to_string(),
                    message: format!(
                        "policy {:?} failed on rows with a column named {name:?}, which the \
                         dead-letter files reserve; rename that column",
                        policy.name
                    ),
                });
            }
        }
        let mut fields: Vec<FieldRef> = row_schema.fields().iter().cloned().collect();
        fields.push(Arc::new(time_field()));
        fields.extend(
            added
                .iter()
                .map(|name| Arc::new(Field::new(*name, DataType::Utf8, false))),
        );
        let schema = Schema::new_with_metadata(fields, row_schema.metadata().clone());
        let mut columns = rows.columns().to_vec();
        columns.push(time_array(time, n));
        for value in [
            &format!("policy:{}", policy.name),
            &policy.sha256,
            kind,
            reason,
        ] {
            columns.push(constant(value, n));
        }
        RecordBatch::try_new(Arc::new(schema), columns)
            .map_err(arrow_error(&self.dir, "building a batch of failed rows"))
    }

    /// Starts a file for `schema` whose first records are `seq`'s.
    fn start(&mut self, seq: u64, schema: &Schema, now: Instant) -> Result<DeadFile, SinkError> {
        self.opened += 1;
        let n = self.opened;
        let stem = format!("{}-{n}", finalize::stem(PREFIX, SystemTime::now(), seq));
        let temp = finalize::temp_path(&self.dir, &stem, EXT);
        let file = create_temp(&temp)?;
        let writer = FileWriter::try_new_buffered(file, schema)
            .map_err(arrow_error(&temp, "starting a dead-letter file"))?;
        Ok(DeadFile {
            writer,
            temp,
            stem,
            first_seq: seq,
            n,
            opened: now,
            rows: 0,
        })
    }

    /// Finalizes the files that are `rotate_interval` old at `now`.
    fn rotate_old(&mut self, now: Instant) -> Result<(), SinkError> {
        let mut old: Vec<(u64, u64, SchemaRef)> = self
            .open
            .iter()
            .filter(|(_, f)| now.saturating_duration_since(f.opened) >= self.rotate_interval)
            .map(|(k, f)| (f.first_seq, f.n, Arc::clone(k)))
            .collect();
        old.sort_by_key(|(seq, n, _)| (*seq, *n));
        for (_, _, key) in old {
            self.finalize(&key)?;
        }
        Ok(())
    }

    /// Closes the file for `key`, syncs it, renames it into place and syncs the directory.
    fn finalize(&mut self, key: &SchemaRef) -> Result<(), SinkError> {
        let Some(open) = self.open.remove(key) else {
            return Ok(());
        };
        let file = open
            .writer
            .into_inner()
            .map_err(arrow_error(&open.temp, "writing the file footer"))?
            .into_inner()
            .map_err(|e| io_error(&open.temp, "flushing the file")(e.into_error()))?;
        let bytes = file
            .metadata()
            .map_err(io_error(&open.temp, "reading the file's size"))?
            .len();
        let path = publish(&file, &open.temp, &self.dir, &open.stem, EXT)?;
        tracing::info!(
            path = %path.display(),
            rows = open.rows,
            bytes,
            "finalized dead-letter file"
        );
        self.report.rows += open.rows;
        self.report.bytes += bytes;
        self.report.files.push(path);
        Ok(())
    }

    /// Everything up to the first open file's first sequence number is final.
    fn update_committed(&mut self) {
        let pending = self
            .open
            .values()
            .map(|f| f.first_seq.saturating_sub(1))
            .min();
        let committed = pending.map_or(self.last_seen, |p| p.min(self.last_seen));
        self.committed = self.committed.max(committed);
    }
}

fn time_field() -> Field {
    Field::new(
        TIME_COLUMN,
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        false,
    )
}

fn time_array(micros: i64, n: usize) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from_value(micros, n).with_timezone("UTC"))
}

fn constant(value: &str, n: usize) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(repeat_n(value, n)))
}

/// Now, in microseconds since the Unix epoch (0 if the clock is before it).
fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

fn arrow_error(
    path: &std::path::Path,
    action: &'static str,
) -> impl FnOnce(ArrowError) -> SinkError {
    let output = path.display().to_string();
    move |source| SinkError::Arrow {
        output,
        action,
        source,
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    use arrow_array::{Array, Float64Array, Int64Array};
    use arrow_ipc::reader::FileReader;

    use super::*;
    use crate::config::HumanDuration;

    fn rejected(source: &str, lines: &[&str]) -> DeadRecords {
        DeadRecords::Rejected {
            source: Arc::from(source),
            records: lines
                .iter()
                .enumerate()
                .map(|(i, line)| Rejected {
                    location: format!("data/a.ndjson:{}", i + 1),
                    reason: format!("bad line {i}"),
                    raw: line.as_bytes().to_vec(),
                })
                .collect(),
        }
    }

    fn rows(n: usize) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("temp", DataType::Float64, true),
        ]));
        let ids: Vec<i64> = (0..n as i64).collect();
        let temps: Vec<Option<f64>> = ids.iter().map(|i| (i % 2 == 0).then_some(1.5)).collect();
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(Float64Array::from(temps)),
            ],
        )
        .unwrap()
    }

    fn failed(n: usize) -> DeadRecords {
        DeadRecords::Policy {
            policy: PolicyStamp {
                name: "clamp".to_owned(),
                version: "0.1.0".to_owned(),
                sha256: "ab12".to_owned(),
            },
            kind: "time_limit",
            reason: "clamp: ran out of time".to_owned(),
            rows: rows(n),
        }
    }

    fn config(rotate_rows: Option<u64>) -> DeadLetterConfig {
        DeadLetterConfig {
            path: None,
            rotate_rows,
            rotate_interval: Some(HumanDuration(Duration::from_secs(60))),
        }
    }

    /// The finalized `.arrow` files, sorted.
    fn arrow_files(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let name = p.file_name().unwrap().to_str().unwrap();
                name.ends_with(".arrow") && !name.starts_with('.')
            })
            .collect();
        files.sort();
        files
    }

    fn read(path: &Path) -> Vec<RecordBatch> {
        FileReader::try_new(File::open(path).unwrap(), None)
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn strings(batch: &RecordBatch, name: &str) -> Vec<String> {
        let column = batch.column_by_name(name).unwrap();
        let column = column.as_any().downcast_ref::<StringArray>().unwrap();
        column.iter().map(|v| v.unwrap().to_owned()).collect()
    }

    /// Rejected records read back with the reason, location, origin, time and raw bytes.
    #[test]
    fn rejected_records_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let before = now_micros();
        let mut sink = DeadLetterSink::new(None, dir.path().join("dl")).unwrap();
        sink.write(1, &[rejected("sensors", &["{oops", "\u{0}\u{ff}"])])
            .unwrap();
        assert_eq!(sink.committed(), 0);
        let report = sink.finish().unwrap();
        let after = now_micros();
        assert_eq!(sink.committed(), 1);

        let files = arrow_files(&dir.path().join("dl"));
        assert_eq!(report.files, files);
        assert_eq!(report.rows, 2);
        let name = files[0].file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("dead-") && name.ends_with("Z-0000000001-1.arrow"),
            "{name}"
        );

        let batches = read(&files[0]);
        assert_eq!(batches.len(), 1);
        let batch = &batches[0];
        let fields: Vec<(&str, &DataType)> = batch
            .schema_ref()
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), f.data_type()))
            .collect();
        let time_type = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        assert_eq!(
            fields,
            [
                ("_weir_time", &time_type),
                ("_weir_origin", &DataType::Utf8),
                ("_weir_location", &DataType::Utf8),
                ("_weir_reason", &DataType::Utf8),
                ("raw", &DataType::Binary),
            ]
        );
        assert_eq!(strings(batch, ORIGIN_COLUMN), ["source:sensors"; 2]);
        assert_eq!(
            strings(batch, LOCATION_COLUMN),
            ["data/a.ndjson:1", "data/a.ndjson:2"]
        );
        assert_eq!(strings(batch, REASON_COLUMN), ["bad line 0", "bad line 1"]);
        let raw = batch.column_by_name(RAW_COLUMN).unwrap();
        let raw = raw.as_any().downcast_ref::<BinaryArray>().unwrap();
        assert_eq!(raw.value(0), b"{oops");
        assert_eq!(raw.value(1), "\u{0}\u{ff}".as_bytes());
        let time = batch.column_by_name(TIME_COLUMN).unwrap();
        let time = time
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        assert!(time.values().iter().all(|t| (before..=after).contains(t)));
    }

    /// Failed policy rows keep their columns and get the policy, kind and reason appended.
    #[test]
    fn policy_rows_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = DeadLetterSink::new(None, dir.path().to_owned()).unwrap();
        sink.write(1, &[failed(3)]).unwrap();
        sink.finish().unwrap();
        let files = arrow_files(dir.path());
        assert_eq!(files.len(), 1);
        let batches = read(&files[0]);
        assert_eq!(batches.len(), 1);
        let batch = &batches[0];
        let names: Vec<&str> = batch
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(
            names,
            [
                "id",
                "temp",
                "_weir_time",
                "_weir_origin",
                "_weir_policy_sha256",
                "_weir_error_kind",
                "_weir_reason"
            ]
        );
        let original = rows(3);
        assert_eq!(&batch.columns()[..2], original.columns());
        assert_eq!(strings(batch, ORIGIN_COLUMN), ["policy:clamp"; 3]);
        assert_eq!(strings(batch, POLICY_SHA256_COLUMN), ["ab12"; 3]);
        assert_eq!(strings(batch, ERROR_KIND_COLUMN), ["time_limit"; 3]);
        assert_eq!(strings(batch, REASON_COLUMN), ["clamp: ran out of time"; 3]);
        assert_eq!(batch.column_by_name(TIME_COLUMN).unwrap().null_count(), 0);
    }

    /// One file per schema; commits wait for the oldest open file; tick rotates by age.
    #[test]
    fn one_file_per_schema_and_committed() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = DeadLetterSink::new(Some(&config(Some(2))), dir.path().to_owned()).unwrap();
        sink.write(1, &[]).unwrap();
        assert_eq!(sink.committed(), 1, "nothing pending");
        sink.write(2, &[rejected("s", &["a"])]).unwrap();
        assert_eq!(sink.committed(), 1);
        // The policy file fills (2 rows) and is finalized, but seq 2's rejected record is not.
        sink.write(3, &[failed(2)]).unwrap();
        assert_eq!(arrow_files(dir.path()).len(), 1);
        assert_eq!(sink.committed(), 1);
        // The rejected file fills too; a new policy file opens at 4 and is pending.
        sink.write(4, &[rejected("s", &["b"]), failed(1)]).unwrap();
        assert_eq!(arrow_files(dir.path()).len(), 2);
        assert_eq!(sink.committed(), 3);
        sink.write(5, &[]).unwrap();
        assert_eq!(sink.committed(), 3);
        sink.tick(Instant::now() + Duration::from_secs(61)).unwrap();
        assert_eq!(sink.committed(), 5);
        let report = sink.finish().unwrap();
        assert_eq!(report.rows, 5);

        let files = arrow_files(dir.path());
        let mut found: Vec<(String, usize)> = files
            .iter()
            .map(|f| {
                let name = f.file_name().unwrap().to_str().unwrap();
                let rows = read(f).iter().map(RecordBatch::num_rows).sum();
                (name[name.len() - 18..].to_owned(), rows)
            })
            .collect();
        found.sort();
        // Opened: rejected at 2 (n=1), policy at 3 (n=2), policy at 4 (n=3).
        assert_eq!(
            found,
            [
                ("0000000002-1.arrow".to_owned(), 2),
                ("0000000003-2.arrow".to_owned(), 2),
                ("0000000004-3.arrow".to_owned(), 1),
            ]
        );
        assert_eq!(report.files.len(), 3);
    }

    /// Rows rotation, temporaries only until finalized, and stale temporaries removed.
    #[test]
    fn rotates_by_rows_under_temporary_names() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path()
                .join(".dead-20240101T000000Z-0000000009-1.arrow.tmp"),
            b"x",
        )
        .unwrap();
        fs::write(dir.path().join("keep.txt"), b"x").unwrap();
        let mut sink = DeadLetterSink::new(Some(&config(Some(3))), dir.path().to_owned()).unwrap();
        let listing = || {
            let mut names: Vec<String> = fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            names
        };
        assert_eq!(listing(), ["keep.txt"]);
        sink.write(1, &[rejected("s", &["a", "b"])]).unwrap();
        let during = listing();
        assert_eq!(during.len(), 2);
        assert!(during[0].starts_with(".dead-") && during[0].ends_with(".arrow.tmp"));
        assert!(arrow_files(dir.path()).is_empty());
        sink.write(2, &[rejected("s", &["c", "d"])]).unwrap();
        assert_eq!(arrow_files(dir.path()).len(), 1);
        assert_eq!(sink.committed(), 2);
        sink.write(3, &[rejected("s", &["e"])]).unwrap();
        assert_eq!(sink.committed(), 2);
        sink.finish().unwrap();
        assert_eq!(sink.committed(), 3);
        let files = arrow_files(dir.path());
        let rows: Vec<usize> = files
            .iter()
            .map(|f| read(f).iter().map(RecordBatch::num_rows).sum())
            .collect();
        assert_eq!(rows, [4, 1]);
        assert_eq!(listing().len(), 3, "two files and keep.txt, no temporaries");
    }

    #[test]
    fn reserved_column_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = DeadLetterSink::new(None, dir.path().to_owned()).unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new(
            REASON_COLUMN,
            DataType::Utf8,
            true,
        )]));
        let rows =
            RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(vec!["x"]))]).unwrap();
        let DeadRecords::Policy { policy, kind, .. } = failed(1) else {
            unreachable!()
        };
        let record = DeadRecords::Policy {
            policy,
            kind,
            reason: "r".to_owned(),
            rows,
        };
        let err = sink.write(1, &[record]).unwrap_err().to_string();
        assert!(err.contains("\"_weir_reason\""), "{err}");
        assert!(err.contains("policy \"clamp\""), "{err}");
        assert_eq!(sink.committed(), 0);
    }
}
