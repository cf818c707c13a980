//! [`ArrowIpcSink`]: Arrow IPC, file or stream format, to a path or stdout.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use arrow_array::RecordBatch;
use arrow_ipc::writer::{FileWriter, StreamWriter};
use arrow_schema::{ArrowError, Schema, SchemaRef};

use super::finalize::{create_dir, io_error, sync_dir};
use super::stdout_sink::{Console, STDOUT};
use super::{Sink, SinkError, SinkReport};
use crate::config::{ArrowIpcSinkConfig, IpcFormat};
use crate::pipeline::PolicyStamp;

/// Whether an `arrow_ipc` path means standard output (`-`).
#[must_use]
pub(super) fn is_stdout(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Writes batches as Arrow IPC. An IPC file or stream holds one schema: a batch whose schema
/// differs from the first non-empty one is an error ([`SinkError::Unsupported`]). Empty batches
/// are not written; if no batch had rows, the output is written at [`Sink::finish`] with the
/// schema of the first empty one (and none is created if no batch came at all).
///
/// * **File format** (`.arrow`, to a path): written to `<path>.tmp`, which is synced and renamed
///   to `<path>` (replacing it) on [`Sink::finish`], so a partial file never has the final
///   name. Nothing is committed before then. A `<path>.tmp` left by a crashed run is removed
///   when the sink opens.
/// * **Stream format to a path**: written directly to `<path>` (truncated when the first batch
///   comes), flushed after every batch so a reader following the file sees it; synced on the
///   next [`Sink::tick`] (every ~100ms), and [`Sink::committed`] is the last batch synced.
/// * **Stream format to stdout** (`path = "-"`): each batch's messages are written with stdout
///   locked, then flushed; committed is the last batch written. The file format cannot go to
///   stdout.
#[derive(Debug)]
pub struct ArrowIpcSink {
    name: String,
    /// The configured path, or `-`.
    path: PathBuf,
    format: IpcFormat,
    /// Stdout, until the stream starts.
    stdout: Option<Console>,
    writer: Option<IpcWriter>,
    /// The schema of the first non-empty batch: the output's.
    schema: Option<SchemaRef>,
    /// The schema of the first empty batch, used if no batch has rows.
    empty_schema: Option<SchemaRef>,
    /// The last sequence number seen.
    last_seen: u64,
    committed: u64,
    /// Stream to a path: rows written but not yet synced.
    dirty: bool,
    finished: bool,
    failed: bool,
    report: SinkReport,
}

/// The open writer.
enum IpcWriter {
    /// File format, to `temp`.
    File {
        writer: FileWriter<BufWriter<File>>,
        temp: PathBuf,
    },
    /// Stream format: messages are encoded into the writer's buffer, then moved to `to`.
    Stream {
        writer: StreamWriter<Vec<u8>>,
        to: StreamTarget,
    },
}

impl std::fmt::Debug for IpcWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File { temp, .. } => f.debug_struct("File").field("temp", temp).finish(),
            Self::Stream { to, .. } => f.debug_struct("Stream").field("to", to).finish(),
        }
    }
}

/// Where stream bytes go.
#[derive(Debug)]
enum StreamTarget {
    Console(Console),
    File(File),
}

impl ArrowIpcSink {
    /// Opens the sink named `name` on `path` (already resolved; `-` is stdout). Creates the
    /// parent directory; the output itself is created when the first batch comes.
    ///
    /// # Errors
    /// The file format to stdout, or the parent directory cannot be created, or a stale
    /// `<path>.tmp` cannot be removed.
    pub fn new(name: &str, cfg: &ArrowIpcSinkConfig, path: PathBuf) -> Result<Self, SinkError> {
        if is_stdout(&path) {
            if cfg.format == IpcFormat::File {
                return Err(SinkError::Unsupported {
                    output: STDOUT.to_owned(),
                    message: "the Arrow IPC file format cannot go to stdout (it needs to seek); \
                              use format = \"stream\""
                        .to_owned(),
                });
            }
        } else {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                create_dir(parent)?;
            }
            if cfg.format == IpcFormat::File {
                let temp = temp_path(&path);
                match fs::remove_file(&temp) {
                    Ok(()) => tracing::warn!(
                        path = %temp.display(),
                        "removed a temporary file left by an interrupted run"
                    ),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(io_error(&temp, "removing a stale temporary file")(e));
                    }
                }
            }
        }
        Ok(Self {
            name: name.to_owned(),
            stdout: is_stdout(&path).then_some(Console::Stdout),
            path,
            format: cfg.format,
            writer: None,
            schema: None,
            empty_schema: None,
            last_seen: 0,
            committed: 0,
            dirty: false,
            finished: false,
            failed: false,
            report: SinkReport::default(),
        })
    }

    /// The output's name for errors.
    fn output(&self) -> String {
        if is_stdout(&self.path) {
            STDOUT.to_owned()
        } else {
            self.path.display().to_string()
        }
    }

    fn arrow_error(&self, action: &'static str) -> impl FnOnce(ArrowError) -> SinkError {
        let output = self.output();
        move |source| SinkError::Arrow {
            output,
            action,
            source,
        }
    }

    /// Runs `f` unless an earlier call failed; a failure now marks the sink failed.
    fn guarded<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, SinkError>,
    ) -> Result<T, SinkError> {
        if self.failed {
            return Err(SinkError::Failed {
                output: self.output(),
            });
        }
        let result = f(self);
        self.failed = result.is_err();
        result
    }

    /// Creates the output for `schema`.
    fn start(&mut self, schema: &Schema) -> Result<IpcWriter, SinkError> {
        if let Some(console) = self.stdout.take() {
            let writer = StreamWriter::try_new(Vec::new(), schema)
                .map_err(self.arrow_error("starting the stream"))?;
            return Ok(IpcWriter::Stream {
                writer,
                to: StreamTarget::Console(console),
            });
        }
        match self.format {
            IpcFormat::Stream => {
                let file = File::create(&self.path)
                    .map_err(io_error(&self.path, "creating the stream file"))?;
                let writer = StreamWriter::try_new(Vec::new(), schema)
                    .map_err(self.arrow_error("starting the stream"))?;
                Ok(IpcWriter::Stream {
                    writer,
                    to: StreamTarget::File(file),
                })
            }
            IpcFormat::File => {
                let temp = temp_path(&self.path);
                let file =
                    File::create(&temp).map_err(io_error(&temp, "creating the temporary file"))?;
                let writer = FileWriter::try_new_buffered(file, schema).map_err(|source| {
                    SinkError::Arrow {
                        output: temp.display().to_string(),
                        action: "starting the file",
                        source,
                    }
                })?;
                Ok(IpcWriter::File { writer, temp })
            }
        }
    }

    /// Fails unless `batch` has the output's `schema`.
    fn check_schema(&self, schema: &Schema, batch: &RecordBatch) -> Result<(), SinkError> {
        if batch.schema_ref().as_ref() == schema {
            return Ok(());
        }
        let kind = match self.format {
            IpcFormat::File => "file",
            IpcFormat::Stream => "stream",
        };
        Err(SinkError::Unsupported {
            output: self.output(),
            message: format!(
                "a batch's schema ({}) differs from the first batch's ({}); an Arrow IPC {kind} \
                 holds one schema, so send differently shaped rows to another sink",
                describe(batch.schema_ref()),
                describe(schema)
            ),
        })
    }

    fn write_batch(&mut self, seq: u64, batch: &RecordBatch) -> Result<(), SinkError> {
        if batch.num_rows() == 0 {
            if self.empty_schema.is_none() {
                self.empty_schema = Some(batch.schema());
            }
        } else {
            match &self.schema {
                None => {
                    self.writer = Some(self.start(batch.schema_ref())?);
                    self.schema = Some(batch.schema());
                }
                Some(schema) => self.check_schema(schema, batch)?,
            }
            let output = self.output();
            match &mut self.writer {
                Some(IpcWriter::File { writer, temp }) => {
                    writer.write(batch).map_err(|source| SinkError::Arrow {
                        output: temp.display().to_string(),
                        action: "writing a batch",
                        source,
                    })?;
                }
                Some(IpcWriter::Stream { writer, to }) => {
                    writer.write(batch).map_err(|source| SinkError::Arrow {
                        output: output.clone(),
                        action: "encoding a batch",
                        source,
                    })?;
                    self.report.bytes += drain(writer, to, &self.path)?;
                    self.dirty = matches!(to, StreamTarget::File(_));
                }
                None => {}
            }
            self.report.rows += batch.num_rows() as u64;
        }
        self.last_seen = seq;
        // A stream to a path commits when synced (tick); a file only when finished, unless no
        // rows are pending at all.
        let pending = match &self.writer {
            None => false,
            Some(IpcWriter::File { .. }) => true,
            Some(IpcWriter::Stream { .. }) => self.dirty,
        };
        if !pending {
            self.committed = seq;
        }
        Ok(())
    }

    /// Stream to a path: syncs what was written and commits it.
    fn sync(&mut self) -> Result<(), SinkError> {
        if let Some(IpcWriter::Stream {
            to: StreamTarget::File(file),
            ..
        }) = &self.writer
            && self.dirty
        {
            file.sync_data()
                .map_err(io_error(&self.path, "syncing the stream file"))?;
            self.dirty = false;
            self.committed = self.last_seen;
        }
        Ok(())
    }

    fn finish_output(&mut self) -> Result<SinkReport, SinkError> {
        if self.finished {
            return Ok(self.report.clone());
        }
        if self.writer.is_none()
            && let Some(schema) = self.empty_schema.take()
        {
            self.writer = Some(self.start(&schema)?);
        }
        match self.writer.take() {
            None => {
                tracing::warn!(
                    sink = %self.name,
                    path = %self.path.display(),
                    "no batch came; nothing written"
                );
            }
            Some(IpcWriter::Stream { mut writer, mut to }) => {
                writer
                    .finish()
                    .map_err(self.arrow_error("ending the stream"))?;
                self.report.bytes += drain(&mut writer, &mut to, &self.path)?;
                if let StreamTarget::File(file) = &to {
                    file.sync_all()
                        .map_err(io_error(&self.path, "syncing the stream file"))?;
                    self.report.files.push(self.path.clone());
                }
            }
            Some(IpcWriter::File { writer, temp }) => {
                let file = writer
                    .into_inner()
                    .map_err(|source| SinkError::Arrow {
                        output: temp.display().to_string(),
                        action: "writing the file footer",
                        source,
                    })?
                    .into_inner()
                    .map_err(|e| io_error(&temp, "flushing the file")(e.into_error()))?;
                file.sync_all()
                    .map_err(io_error(&temp, "syncing the finished file"))?;
                let bytes = file
                    .metadata()
                    .map_err(io_error(&temp, "reading the file's size"))?
                    .len();
                fs::rename(&temp, &self.path)
                    .map_err(io_error(&temp, "renaming the finished file into place"))?;
                let parent = self
                    .path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                sync_dir(parent)?;
                self.report.bytes += bytes;
                self.report.files.push(self.path.clone());
            }
        }
        tracing::info!(
            sink = %self.name,
            path = %self.output(),
            rows = self.report.rows,
            bytes = self.report.bytes,
            "finished arrow ipc output"
        );
        self.finished = true;
        self.dirty = false;
        self.committed = self.last_seen;
        Ok(self.report.clone())
    }
}

impl Sink for ArrowIpcSink {
    fn write(
        &mut self,
        seq: u64,
        batch: &RecordBatch,
        _stamps: &[PolicyStamp],
    ) -> Result<(), SinkError> {
        self.guarded(|s| s.write_batch(seq, batch))
    }

    fn tick(&mut self, _now: Instant) -> Result<(), SinkError> {
        self.guarded(Self::sync)
    }

    fn committed(&self) -> u64 {
        self.committed
    }

    fn finish(&mut self) -> Result<SinkReport, SinkError> {
        self.guarded(Self::finish_output)
    }
}

/// `<path>.tmp`.
fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// `name: type, ...`.
fn describe(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), f.data_type()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Moves the encoded messages from the writer's buffer to `to` and flushes; returns the bytes.
fn drain(
    writer: &mut StreamWriter<Vec<u8>>,
    to: &mut StreamTarget,
    path: &Path,
) -> Result<u64, SinkError> {
    let bytes = std::mem::take(writer.get_mut());
    match to {
        StreamTarget::Console(console) => console.emit(&bytes)?,
        StreamTarget::File(file) => file
            .write_all(&bytes)
            .and_then(|()| file.flush())
            .map_err(io_error(path, "writing the stream file"))?,
    }
    Ok(bytes.len() as u64)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Int64Array, StringArray};
    use arrow_ipc::reader::{FileReader, StreamReader};
    use arrow_schema::{DataType, Field};

    use super::*;
    use crate::config::{ParquetSinkConfig, SinkConfig};
    use crate::sinks::stdout_sink::tests::Shared;

    fn batch(start: i64, rows: usize) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("tag", DataType::Utf8, true),
        ]));
        let ids: Vec<i64> = (start..start + rows as i64).collect();
        let tags: Vec<Option<String>> = ids
            .iter()
            .map(|i| (i % 3 != 0).then(|| format!("t{i}")))
            .collect();
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(StringArray::from(tags)),
            ],
        )
        .unwrap()
    }

    fn config(format: IpcFormat) -> ArrowIpcSinkConfig {
        ArrowIpcSinkConfig {
            path: PathBuf::from("unused"),
            format,
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    /// File format: written under `<path>.tmp`, renamed on finish, read back equal; commits only
    /// on finish.
    #[test]
    fn file_format_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("out.arrow");
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(temp_path(&path), b"left by a crash").unwrap();
        let mut sink = ArrowIpcSink::new("ipc", &config(IpcFormat::File), path.clone()).unwrap();
        assert_eq!(names(path.parent().unwrap()), Vec::<String>::new());
        let batches = [batch(0, 5), batch(5, 0), batch(5, 7)];
        for (seq, b) in (1..).zip(&batches) {
            sink.write(seq, b, &[]).unwrap();
            assert_eq!(sink.committed(), 0);
        }
        assert_eq!(names(path.parent().unwrap()), ["out.arrow.tmp"]);
        let report = sink.finish().unwrap();
        assert_eq!(sink.committed(), 3);
        assert_eq!(names(path.parent().unwrap()), ["out.arrow"]);
        assert_eq!(report.files, std::slice::from_ref(&path));
        assert_eq!(report.rows, 12);
        assert_eq!(report.bytes, fs::metadata(&path).unwrap().len());

        let reader = FileReader::try_new(File::open(&path).unwrap(), None).unwrap();
        let got: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
        assert_eq!(got, [batches[0].clone(), batches[2].clone()]);
    }

    /// Stream format to a path: each batch is readable as soon as it is written, committed once
    /// synced by a tick, and the finished stream reads back equal.
    #[test]
    fn stream_to_path_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.arrows");
        let mut sink = ArrowIpcSink::new("ipc", &config(IpcFormat::Stream), path.clone()).unwrap();
        sink.write(1, &batch(0, 0), &[]).unwrap();
        assert_eq!(sink.committed(), 1, "nothing pending");
        assert!(!path.exists(), "no output before the first rows");
        sink.write(2, &batch(0, 4), &[]).unwrap();
        assert_eq!(sink.committed(), 1);
        let early = StreamReader::try_new(File::open(&path).unwrap(), None).unwrap();
        let early: Vec<RecordBatch> = early.map(Result::unwrap).collect();
        assert_eq!(early, [batch(0, 4)], "flushed per batch");
        sink.tick(Instant::now()).unwrap();
        assert_eq!(sink.committed(), 2);
        sink.write(3, &batch(4, 6), &[]).unwrap();
        assert_eq!(sink.committed(), 2);
        let report = sink.finish().unwrap();
        assert_eq!(sink.committed(), 3);
        assert_eq!(report.rows, 10);
        assert_eq!(report.bytes, fs::metadata(&path).unwrap().len());

        let reader = StreamReader::try_new(File::open(&path).unwrap(), None).unwrap();
        let got: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
        assert_eq!(got, [batch(0, 4), batch(4, 6)]);
    }

    /// A second schema is refused with a message naming the output.
    #[test]
    fn schema_change_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.arrows");
        let mut sink = ArrowIpcSink::new("ipc", &config(IpcFormat::Stream), path.clone()).unwrap();
        sink.write(1, &batch(0, 2), &[]).unwrap();
        let other = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("x", DataType::Utf8, false)])),
            vec![Arc::new(StringArray::from(vec!["a"]))],
        )
        .unwrap();
        let err = sink.write(2, &other, &[]).unwrap_err();
        assert!(matches!(err, SinkError::Unsupported { .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.starts_with(&path.display().to_string()),
            "{message}"
        );
        assert!(message.contains("(x: Utf8) differs from"), "{message}");
        assert!(message.contains("holds one schema"), "{message}");
    }

    /// Only empty batches: the file still gets the schema.
    #[test]
    fn empty_output_keeps_the_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.arrow");
        let mut sink = ArrowIpcSink::new("ipc", &config(IpcFormat::File), path.clone()).unwrap();
        sink.write(1, &batch(0, 0), &[]).unwrap();
        assert_eq!(sink.committed(), 1);
        sink.finish().unwrap();
        let reader = FileReader::try_new(File::open(&path).unwrap(), None).unwrap();
        assert_eq!(reader.schema(), batch(0, 0).schema());
        assert_eq!(reader.count(), 0);
    }

    #[test]
    fn file_format_to_stdout_is_refused() {
        let err = ArrowIpcSink::new("ipc", &config(IpcFormat::File), PathBuf::from("-"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("stdout: "), "{err}");
        assert!(err.contains("format = \"stream\""), "{err}");
        assert!(ArrowIpcSink::new("ipc", &config(IpcFormat::Stream), PathBuf::from("-")).is_ok());
    }

    /// Stream format to stdout: every batch is on the console once written, and commits.
    #[test]
    fn stream_to_stdout() {
        let out = Shared::default();
        let mut sink =
            ArrowIpcSink::new("ipc", &config(IpcFormat::Stream), PathBuf::from("-")).unwrap();
        sink.stdout = Some(Console::Writer(Box::new(out.clone())));
        sink.write(1, &batch(0, 3), &[]).unwrap();
        assert_eq!(sink.committed(), 1);
        let early = out.0.lock().unwrap().clone();
        let early: Vec<RecordBatch> = StreamReader::try_new(early.as_slice(), None)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(early, [batch(0, 3)]);
        sink.write(2, &batch(3, 2), &[]).unwrap();
        assert_eq!(sink.committed(), 2);
        let report = sink.finish().unwrap();
        assert!(report.files.is_empty());
        let bytes = out.0.lock().unwrap().clone();
        assert_eq!(report.bytes, bytes.len() as u64);
        let got: Vec<RecordBatch> = StreamReader::try_new(bytes.as_slice(), None)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, [batch(0, 3), batch(3, 2)]);
    }

    /// `sinks::open` resolves paths, except `-` for stdout.
    #[test]
    fn open_resolves_paths_but_not_stdout() {
        let dir = tempfile::tempdir().unwrap();
        let resolve = |p: &Path| {
            assert_ne!(p, Path::new("-"), "stdout is not a path");
            dir.path().join(p)
        };
        let parquet = SinkConfig::Parquet(ParquetSinkConfig {
            path: PathBuf::from("parquet-out"),
            prefix: None,
            rotate_rows: None,
            rotate_bytes: None,
            rotate_interval: None,
            row_group_rows: None,
            zstd_level: None,
        });
        let mut sink = crate::sinks::open("p", &parquet, resolve).unwrap();
        sink.write(1, &batch(0, 2), &[]).unwrap();
        let report = sink.finish().unwrap();
        assert_eq!(report.files.len(), 1);
        assert!(report.files[0].starts_with(dir.path().join("parquet-out")));

        let stdout = SinkConfig::ArrowIpc(ArrowIpcSinkConfig {
            path: PathBuf::from("-"),
            format: IpcFormat::Stream,
        });
        assert!(crate::sinks::open("ipc", &stdout, resolve).is_ok());
        let file = SinkConfig::ArrowIpc(config(IpcFormat::File));
        let mut sink = crate::sinks::open("ipc", &file, resolve).unwrap();
        sink.write(1, &batch(0, 2), &[]).unwrap();
        assert_eq!(sink.finish().unwrap().files, [dir.path().join("unused")]);
        let table = SinkConfig::Stdout(crate::config::StdoutSinkConfig::default());
        assert!(crate::sinks::open("t", &table, resolve).is_ok());
    }
}
