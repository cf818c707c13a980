//! [`StdoutSink`]: batches printed on standard output as tables or NDJSON, and the locked,
//! flushed stdout writes the Arrow IPC stream sink shares.

use std::io::{ErrorKind, Write};
use std::path::PathBuf;
use std::time::Instant;

use arrow_array::RecordBatch;
use arrow_schema::ArrowError;

use super::{Sink, SinkError, SinkReport};
use crate::config::{StdoutFormat, StdoutSinkConfig};
use crate::pipeline::PolicyStamp;

/// How errors name standard output.
pub(super) const STDOUT: &str = "stdout";

/// Prints each non-empty batch on stdout: a table ([`arrow_cast::pretty`]) per batch, or one
/// JSON object per row ([`arrow_json::LineDelimitedWriter`]; null fields are left out, and
/// timestamps with a time zone are RFC 3339, e.g. `2024-05-01T12:00:00.250Z`; timestamps
/// without one print as ISO 8601 local times, with no offset).
///
/// Every batch is written with stdout locked and then flushed, so a reading process sees it
/// at once and [`Sink::committed`] is the last sequence number written. When the reader goes
/// away the sink fails with [`SinkError::BrokenPipe`].
#[derive(Debug)]
pub struct StdoutSink {
    name: String,
    format: StdoutFormat,
    console: Console,
    committed: u64,
    failed: bool,
    report: SinkReport,
}

impl StdoutSink {
    /// A stdout sink named `name`.
    #[must_use]
    pub fn new(name: &str, cfg: &StdoutSinkConfig) -> Self {
        Self::with_console(name, cfg, Console::Stdout)
    }

    fn with_console(name: &str, cfg: &StdoutSinkConfig, console: Console) -> Self {
        Self {
            name: name.to_owned(),
            format: cfg.format,
            console,
            committed: 0,
            failed: false,
            report: SinkReport::default(),
        }
    }

    fn encode(&self, batch: &RecordBatch) -> Result<Vec<u8>, ArrowError> {
        match self.format {
            StdoutFormat::Table => {
                let table = arrow_cast::pretty::pretty_format_batches(std::slice::from_ref(batch))?;
                Ok(format!("{table}\n").into_bytes())
            }
            StdoutFormat::Ndjson => {
                let mut writer = arrow_json::LineDelimitedWriter::new(Vec::new());
                writer.write(batch)?;
                writer.finish()?;
                Ok(writer.into_inner())
            }
        }
    }
}

impl Sink for StdoutSink {
    fn write(
        &mut self,
        seq: u64,
        batch: &RecordBatch,
        _stamps: &[PolicyStamp],
    ) -> Result<(), SinkError> {
        if self.failed {
            return Err(SinkError::Failed {
                output: STDOUT.to_owned(),
            });
        }
        if batch.num_rows() > 0 {
            let bytes = self
                .encode(batch)
                .map_err(|source| SinkError::Arrow {
                    output: STDOUT.to_owned(),
                    action: match self.format {
                        StdoutFormat::Table => "formatting a table",
                        StdoutFormat::Ndjson => "encoding NDJSON",
                    },
                    source,
                })
                .inspect_err(|_| self.failed = true)?;
            self.console
                .emit(&bytes)
                .inspect_err(|_| self.failed = true)?;
            self.report.rows += batch.num_rows() as u64;
            self.report.bytes += bytes.len() as u64;
        }
        self.committed = seq;
        Ok(())
    }

    fn tick(&mut self, _now: Instant) -> Result<(), SinkError> {
        Ok(())
    }

    fn committed(&self) -> u64 {
        self.committed
    }

    fn finish(&mut self) -> Result<SinkReport, SinkError> {
        tracing::debug!(sink = %self.name, rows = self.report.rows, "stdout sink finished");
        Ok(self.report.clone())
    }
}

/// Where printed bytes go: the process's stdout, or in tests any writer.
pub(super) enum Console {
    /// Standard output, locked for each write and flushed after it.
    Stdout,
    /// A test's writer.
    #[cfg(test)]
    Writer(Box<dyn Write + Send>),
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Stdout => f.write_str("Stdout"),
            #[cfg(test)]
            Self::Writer(_) => f.write_str("Writer"),
        }
    }
}

impl Console {
    /// Writes all of `bytes` and flushes. A closed pipe is [`SinkError::BrokenPipe`].
    pub(super) fn emit(&mut self, bytes: &[u8]) -> Result<(), SinkError> {
        let result = match self {
            Self::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(bytes).and_then(|()| out.flush())
            }
            #[cfg(test)]
            Self::Writer(w) => w.write_all(bytes).and_then(|()| w.flush()),
        };
        result.map_err(|source| {
            if source.kind() == ErrorKind::BrokenPipe {
                SinkError::BrokenPipe {
                    output: STDOUT.to_owned(),
                }
            } else {
                SinkError::Io {
                    path: PathBuf::from(STDOUT),
                    action: "writing to stdout",
                    source,
                }
            }
        })
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::sync::{Arc, Mutex};

    use arrow_array::{ArrayRef, Float64Array, StringArray, TimestampMillisecondArray};
    use arrow_schema::{DataType, Field, Schema, TimeUnit};

    use super::*;

    /// A writer tests can read back.
    #[derive(Clone, Default)]
    pub(in crate::sinks) struct Shared(pub Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    struct ClosedPipe;

    impl Write for ClosedPipe {
        fn write(&mut self, _buf: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::from(ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn batch(rows: usize) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("sensor", DataType::Utf8, false),
            Field::new("temp", DataType::Float64, true),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                false,
            ),
        ]));
        let sensors: Vec<String> = (0..rows).map(|i| format!("s{i}")).collect();
        let temps: Vec<Option<f64>> = (0..rows)
            .map(|i| (i % 2 == 0).then_some(20.5 + i as f64))
            .collect();
        let ts: Vec<i64> = (0..rows)
            .map(|i| 1_714_564_800_000 + 250 * i as i64)
            .collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(sensors)),
            Arc::new(Float64Array::from(temps)),
            Arc::new(TimestampMillisecondArray::from(ts).with_timezone("UTC")),
        ];
        RecordBatch::try_new(schema, columns).unwrap()
    }

    fn sink(format: StdoutFormat, out: &Shared) -> StdoutSink {
        StdoutSink::with_console(
            "out",
            &StdoutSinkConfig { format },
            Console::Writer(Box::new(out.clone())),
        )
    }

    fn text(out: &Shared) -> String {
        String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn ndjson_rows_with_rfc3339_timestamps() {
        let out = Shared::default();
        let mut sink = sink(StdoutFormat::Ndjson, &out);
        sink.write(1, &batch(2), &[]).unwrap();
        assert_eq!(sink.committed(), 1);
        sink.write(2, &batch(0), &[]).unwrap();
        assert_eq!(sink.committed(), 2, "an empty batch commits at once");
        let lines: Vec<serde_json::Value> = text(&out)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines,
            [
                serde_json::json!({"sensor": "s0", "temp": 20.5, "ts": "2024-05-01T12:00:00Z"}),
                serde_json::json!({"sensor": "s1", "ts": "2024-05-01T12:00:00.250Z"}),
            ]
        );
        let report = sink.finish().unwrap();
        assert_eq!(report.rows, 2);
        assert_eq!(report.bytes, text(&out).len() as u64);
    }

    #[test]
    fn table_per_batch() {
        let out = Shared::default();
        let mut sink = sink(StdoutFormat::Table, &out);
        sink.write(1, &batch(2), &[]).unwrap();
        sink.write(2, &batch(1), &[]).unwrap();
        let text = text(&out);
        let expected = "\
+--------+------+--------------------------+
| sensor | temp | ts                       |
+--------+------+--------------------------+
| s0     | 20.5 | 2024-05-01T12:00:00Z     |
| s1     |      | 2024-05-01T12:00:00.250Z |
+--------+------+--------------------------+
+--------+------+----------------------+
| sensor | temp | ts                   |
+--------+------+----------------------+
| s0     | 20.5 | 2024-05-01T12:00:00Z |
+--------+------+----------------------+
";
        assert_eq!(text, expected);
        assert_eq!(sink.committed(), 2);
    }

    #[test]
    fn broken_pipe_is_an_error_not_a_panic() {
        let mut sink = StdoutSink::with_console(
            "out",
            &StdoutSinkConfig::default(),
            Console::Writer(Box::new(ClosedPipe)),
        );
        let err = sink.write(1, &batch(1), &[]).unwrap_err();
        assert!(matches!(err, SinkError::BrokenPipe { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "stdout: the reader closed the pipe; nothing more can be written"
        );
        assert_eq!(sink.committed(), 0);
        let err = sink.write(2, &batch(0), &[]).unwrap_err();
        assert!(matches!(err, SinkError::Failed { .. }), "{err:?}");
        assert_eq!(sink.committed(), 0);
    }
}
