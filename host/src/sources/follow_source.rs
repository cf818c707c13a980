//! [`FollowSource`]: `type = "file"` with `follow = true`: tails one growing NDJSON file,
//! resuming from a checkpoint, surviving rotation and truncation.
//!
//! Only complete lines are decoded; bytes after the last `\n` wait for more data. Each chunk
//! carries the checkpoint just past its last line; the pipeline stores it once the sinks have
//! committed the chunk, so a restart neither skips nor repeats a line.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

use arrow_schema::SchemaRef;
use tokio::task::JoinHandle;

use super::chunk_sender::ChunkSender;
use super::line_buffer::LineBuffer;
use super::ndjson_decoder::NdjsonDecoder;
use super::schema_infer::{self, display};
use super::{SchemaOrigin, Source, SourceContext, SourceError, SourceReport, checkpoint_store};
use crate::config::{Config, FileSourceConfig};
use crate::pipeline::Checkpoint;

/// Bytes read at a time.
const READ_BLOCK: usize = 256 << 10;

/// The default pause between looks for new data.
const DEFAULT_POLL: Duration = Duration::from_millis(100);

/// One NDJSON file, tailed.
#[derive(Debug)]
pub(crate) struct FollowSource {
    name: String,
    path: PathBuf,
    schema: SchemaRef,
    origin: SchemaOrigin,
    poll: Duration,
}

/// The file being read and its identity.
#[derive(Debug)]
struct Followed {
    file: File,
    dev: u64,
    ino: u64,
}

/// What happened to the path since the last look.
enum Change {
    None,
    /// The path now names another file: finish this one, then switch.
    Rotated,
    /// The file is shorter than what was read: start again at 0.
    Truncated,
}

impl FollowSource {
    /// Resolves the path and declares or infers the schema (inference needs the file to
    /// exist and hold a record).
    ///
    /// # Errors
    /// The schema can be neither declared nor inferred.
    pub(crate) fn open(
        config: &Config,
        name: &str,
        cfg: &FileSourceConfig,
    ) -> Result<Self, SourceError> {
        let path = crate::config::resolve(config.base_dir.as_deref(), &cfg.path);
        let (schema, origin) = match schema_infer::declared(name, &cfg.schema)? {
            Some(schema) => (schema, SchemaOrigin::Declared),
            None if path.is_file() => schema_infer::infer_ndjson_files(
                name,
                std::slice::from_ref(&path),
                schema_infer::infer_rows(&cfg.schema),
            )?,
            None => {
                return Err(SourceError::schema(
                    name,
                    format!(
                        "cannot infer a schema: {} does not exist yet; declare schema.columns",
                        path.display()
                    ),
                ));
            }
        };
        let poll = cfg
            .poll_interval
            .map_or(DEFAULT_POLL, |d| d.0)
            .max(Duration::from_millis(1));
        Ok(Self {
            name: name.to_owned(),
            path,
            schema,
            origin,
            poll,
        })
    }

    fn run(self, ctx: SourceContext) -> Result<SourceReport, SourceError> {
        let checkpoint = checkpoint_store::load(&ctx.state_dir, &self.name)?;
        let mut sender = ChunkSender::new(ctx);
        let mut decoder = NdjsonDecoder::new(self.schema.clone(), sender.batch_rows())
            .map_err(|e| SourceError::schema(&self.name, e.to_string()))?;
        decoder.set_origin(&display(&self.path), true);
        let Some(mut current) = self.wait_for_file(&sender)? else {
            return Ok(sender.finish());
        };
        let mut lines = self.resume(&mut current, checkpoint)?;
        loop {
            self.read_available(&mut current, &mut lines, &mut decoder, &mut sender)?;
            if sender.cancelled() {
                break;
            }
            match self.look(&current, &lines) {
                Change::None => {}
                Change::Truncated => {
                    tracing::warn!(
                        source = %self.name,
                        path = %self.path.display(),
                        offset = lines.read_offset(),
                        "the file was truncated; reading it from the start"
                    );
                    current
                        .file
                        .seek(SeekFrom::Start(0))
                        .map_err(|e| SourceError::io(&self.name, &self.path, "seek", e))?;
                    lines.reset(1, 0);
                    continue;
                }
                Change::Rotated => {
                    // Whatever was appended before the switch, then the last line even
                    // without its `\n`: nothing more will come to this file.
                    self.read_available(&mut current, &mut lines, &mut decoder, &mut sender)?;
                    if let Some((line, number)) = lines.take_rest() {
                        decoder.push_line(line, number);
                    }
                    self.emit(&current, &lines, &mut decoder, &mut sender)?;
                    if let Some(next) = self.open_file()? {
                        tracing::info!(
                            source = %self.name,
                            path = %self.path.display(),
                            "the file was rotated; reading the new one"
                        );
                        current = next;
                        lines.reset(1, 0);
                        continue;
                    }
                }
            }
            if sender.sleep_blocking(self.poll) {
                break;
            }
        }
        Ok(sender.finish())
    }

    /// Opens the path, `None` when it does not exist.
    fn open_file(&self) -> Result<Option<Followed>, SourceError> {
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(SourceError::io(&self.name, &self.path, "open", e)),
        };
        let meta = file
            .metadata()
            .map_err(|e| SourceError::io(&self.name, &self.path, "stat", e))?;
        Ok(Some(Followed {
            file,
            dev: meta.dev(),
            ino: meta.ino(),
        }))
    }

    /// Waits for the file to exist; `None` on shutdown.
    fn wait_for_file(&self, sender: &ChunkSender) -> Result<Option<Followed>, SourceError> {
        let mut said = false;
        loop {
            if let Some(followed) = self.open_file()? {
                return Ok(Some(followed));
            }
            if !said {
                tracing::info!(source = %self.name, path = %self.path.display(), "waiting for the file to appear");
                said = true;
            }
            if sender.sleep_blocking(self.poll) {
                return Ok(None);
            }
        }
    }

    /// Positions `current` where the checkpoint says, when it is about this very file and
    /// still within it; otherwise at 0, with a warning when a checkpoint was ignored.
    fn resume(
        &self,
        current: &mut Followed,
        checkpoint: Option<Checkpoint>,
    ) -> Result<LineBuffer, SourceError> {
        let len = current
            .file
            .metadata()
            .map_err(|e| SourceError::io(&self.name, &self.path, "stat", e))?
            .len();
        let offset = match checkpoint {
            None => 0,
            Some(cp) if (cp.dev, cp.ino) != (current.dev, current.ino) => {
                tracing::warn!(
                    source = %self.name,
                    path = %self.path.display(),
                    checkpoint_path = %cp.path.display(),
                    checkpoint_ino = cp.ino,
                    ino = current.ino,
                    "the file was replaced since the checkpoint; reading it from the start"
                );
                0
            }
            Some(cp) if cp.offset > len => {
                tracing::warn!(
                    source = %self.name,
                    path = %self.path.display(),
                    checkpoint_offset = cp.offset,
                    len,
                    "the file is shorter than the checkpoint (truncated); reading it from the start"
                );
                0
            }
            Some(cp) => cp.offset,
        };
        let first_line = if offset == 0 {
            1
        } else {
            let newlines = count_newlines(&mut current.file, offset)
                .map_err(|e| SourceError::io(&self.name, &self.path, "read", e))?;
            tracing::info!(source = %self.name, path = %self.path.display(), offset, line = newlines + 1, "resuming from the checkpoint");
            newlines + 1
        };
        current
            .file
            .seek(SeekFrom::Start(offset))
            .map_err(|e| SourceError::io(&self.name, &self.path, "seek", e))?;
        Ok(LineBuffer::new(READ_BLOCK, first_line, offset))
    }

    /// Reads to the current end of the file, sending full chunks, then what is left.
    fn read_available(
        &self,
        current: &mut Followed,
        lines: &mut LineBuffer,
        decoder: &mut NdjsonDecoder,
        sender: &mut ChunkSender,
    ) -> Result<(), SourceError> {
        loop {
            let n = lines
                .read_from(&mut current.file)
                .map_err(|e| SourceError::io(&self.name, &self.path, "read", e))?;
            sender.read_bytes(n as u64);
            while let Some((line, number)) = lines.next_line() {
                if decoder.push_line(line, number) {
                    self.emit(current, lines, decoder, sender)?;
                }
            }
            if n == 0 || sender.cancelled() {
                break;
            }
        }
        self.emit(current, lines, decoder, sender)
    }

    /// Sends what the decoder holds, checkpointed just past the last line handed out.
    fn emit(
        &self,
        current: &Followed,
        lines: &LineBuffer,
        decoder: &mut NdjsonDecoder,
        sender: &mut ChunkSender,
    ) -> Result<(), SourceError> {
        let chunk = decoder
            .take_chunk()
            .map_err(|e| SourceError::format(&self.name, &self.path, e.to_string()))?;
        if let Some(mut chunk) = chunk {
            chunk.checkpoint = Some(Checkpoint {
                path: self.path.clone(),
                dev: current.dev,
                ino: current.ino,
                offset: lines.offset(),
            });
            sender.send_blocking(chunk)?;
        }
        Ok(())
    }

    /// Whether the path still names the file being read, and whether it shrank.
    fn look(&self, current: &Followed, lines: &LineBuffer) -> Change {
        match std::fs::metadata(&self.path) {
            Ok(meta) if (meta.dev(), meta.ino()) != (current.dev, current.ino) => Change::Rotated,
            Ok(_) => match current.file.metadata() {
                Ok(meta) if meta.len() < lines.read_offset() => Change::Truncated,
                _ => Change::None,
            },
            // Renamed away and not yet recreated: keep reading the old file.
            Err(_) => Change::None,
        }
    }
}

/// Counts the `\n` in the first `len` bytes of `file`.
fn count_newlines(file: &mut File, len: u64) -> std::io::Result<u64> {
    file.seek(SeekFrom::Start(0))?;
    let mut reader = (&mut *file).take(len);
    let mut block = vec![0u8; 1 << 20];
    let mut count = 0u64;
    loop {
        let n = match reader.read(&mut block) {
            Ok(0) => return Ok(count),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        count += block[..n].iter().filter(|b| **b == b'\n').count() as u64;
    }
}

impl Source for FollowSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn schema_origin(&self) -> SchemaOrigin {
        self.origin.clone()
    }

    fn total_bytes(&self) -> Option<u64> {
        None
    }

    fn start(self: Box<Self>, ctx: SourceContext) -> JoinHandle<Result<SourceReport, SourceError>> {
        tokio::task::spawn_blocking(move || self.run(ctx))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::Path;

    use super::*;
    use crate::pipeline::SourceChunk;
    use crate::sources::test_support::{chunks_with, config, context, open, rejected, rows};

    const SOURCE: &str = "type = \"file\"\npath = \"log.ndjson\"\nfollow = true\npoll_interval = \"10ms\"\nschema.columns = [\"n: int64\"]";

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f.sync_all().unwrap();
    }

    fn identity(path: &Path) -> (u64, u64) {
        let meta = std::fs::metadata(path).unwrap();
        (meta.dev(), meta.ino())
    }

    fn offsets(chunks: &[SourceChunk]) -> Vec<u64> {
        chunks
            .iter()
            .map(|c| c.checkpoint.as_ref().unwrap().offset)
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tails_complete_lines_with_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.ndjson");
        append(&path, "{\"n\":1}\n{\"n\":2}\n");
        let cfg = config(dir.path(), SOURCE);
        let source = open(&cfg);
        assert_eq!(source.total_bytes(), None);
        let (ctx, mut rx) = context(100, dir.path());
        let shutdown = ctx.shutdown.clone();
        let task = source.start(ctx);

        let chunks = chunks_with(&mut rx, 2).await;
        assert_eq!(rows(&chunks), ["1", "2"]);
        assert_eq!(offsets(&chunks).last(), Some(&16));
        let cp = chunks[0].checkpoint.clone().unwrap();
        assert_eq!((cp.dev, cp.ino), identity(&path));
        assert_eq!(cp.path, path);

        // A complete line and a partial one: only the complete one comes.
        append(&path, "{\"n\":3}\n{\"n\":");
        let chunks = chunks_with(&mut rx, 1).await;
        assert_eq!(rows(&chunks), ["3"]);
        assert_eq!(offsets(&chunks), [24]);

        // The rest of the partial line, a bad line, and another good one.
        append(&path, "4}\noops\n{\"n\":5}\n");
        let chunks = chunks_with(&mut rx, 3).await;
        assert_eq!(rows(&chunks), ["4", "5"]);
        let at = format!("{}:5", path.display());
        assert_eq!(
            rejected(&chunks)
                .into_iter()
                .map(|r| r.0)
                .collect::<Vec<_>>(),
            [at]
        );
        assert_eq!(offsets(&chunks).last(), Some(&(24 + 8 + 5 + 8)));

        shutdown.cancel();
        let report = task.await.unwrap().unwrap();
        assert_eq!((report.rows, report.rejected), (5, 1));
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn resumes_from_a_stored_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.ndjson");
        append(&path, "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n{\"n\":4}\nbad\n");
        let (dev, ino) = identity(&path);
        let cp = Checkpoint {
            path: path.clone(),
            dev,
            ino,
            offset: 24,
        };
        checkpoint_store::store(dir.path(), "src", &cp).unwrap();
        let cfg = config(dir.path(), SOURCE);
        let (ctx, mut rx) = context(100, dir.path());
        let shutdown = ctx.shutdown.clone();
        let task = open(&cfg).start(ctx);
        let chunks = chunks_with(&mut rx, 2).await;
        assert_eq!(rows(&chunks), ["4"]);
        let at = format!("{}:5", path.display());
        assert_eq!(
            rejected(&chunks)
                .into_iter()
                .map(|r| r.0)
                .collect::<Vec<_>>(),
            [at]
        );
        assert_eq!(offsets(&chunks).last(), Some(&36));
        shutdown.cancel();
        task.await.unwrap().unwrap();
        assert!(rx.recv().await.is_none(), "nothing more was sent");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_replaced_or_truncated_file_is_read_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.ndjson");
        append(&path, "{\"n\":1}\n{\"n\":2}\n");
        let (dev, ino) = identity(&path);
        let stale = [
            Checkpoint {
                path: path.clone(),
                dev,
                ino: ino + 1,
                offset: 8,
            },
            Checkpoint {
                path: path.clone(),
                dev,
                ino,
                offset: 1000,
            },
        ];
        for cp in stale {
            checkpoint_store::store(dir.path(), "src", &cp).unwrap();
            let cfg = config(dir.path(), SOURCE);
            let (ctx, mut rx) = context(100, dir.path());
            let shutdown = ctx.shutdown.clone();
            let task = open(&cfg).start(ctx);
            let chunks = chunks_with(&mut rx, 2).await;
            assert_eq!(rows(&chunks), ["1", "2"], "{cp:?}");
            shutdown.cancel();
            task.await.unwrap().unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn truncation_while_running_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.ndjson");
        append(&path, "{\"n\":1}\n{\"n\":2}\n");
        let cfg = config(dir.path(), SOURCE);
        let (ctx, mut rx) = context(100, dir.path());
        let shutdown = ctx.shutdown.clone();
        let task = open(&cfg).start(ctx);
        assert_eq!(rows(&chunks_with(&mut rx, 2).await), ["1", "2"]);
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        append(&path, "{\"n\":9}\n");
        let chunks = chunks_with(&mut rx, 1).await;
        assert_eq!(rows(&chunks), ["9"]);
        assert_eq!(offsets(&chunks), [8]);
        let line = format!("{}:1", path.display());
        append(&path, "x\n");
        let chunks = chunks_with(&mut rx, 1).await;
        assert_eq!(rejected(&chunks)[0].0, line.replace(":1", ":2"));
        shutdown.cancel();
        task.await.unwrap().unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rotation_finishes_the_old_file_then_reads_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.ndjson");
        append(&path, "{\"n\":1}\n");
        let old_identity = identity(&path);
        let cfg = config(dir.path(), SOURCE);
        let (ctx, mut rx) = context(100, dir.path());
        let shutdown = ctx.shutdown.clone();
        let task = open(&cfg).start(ctx);
        assert_eq!(rows(&chunks_with(&mut rx, 1).await), ["1"]);

        let rotated = dir.path().join("log.ndjson.1");
        std::fs::rename(&path, &rotated).unwrap();
        // The writer still appends to the old file, last line without its newline.
        append(&rotated, "{\"n\":2}\n{\"n\":3}");
        append(&path, "{\"n\":10}\n");
        let chunks = chunks_with(&mut rx, 3).await;
        assert_eq!(rows(&chunks), ["2", "3", "10"]);
        let ids: Vec<_> = chunks
            .iter()
            .map(|c| {
                let cp = c.checkpoint.as_ref().unwrap();
                (cp.dev, cp.ino, cp.offset)
            })
            .collect();
        // The old file's chunks end just past its last (unterminated) line, the new one's
        // after its first line.
        let new_identity = identity(&path);
        let old_end = ids
            .iter()
            .filter(|(dev, ino, _)| (*dev, *ino) == old_identity)
            .map(|(_, _, offset)| *offset)
            .max();
        assert_eq!(old_end, Some(23));
        assert_eq!(ids.last(), Some(&(new_identity.0, new_identity.1, 9)));
        shutdown.cancel();
        task.await.unwrap().unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waits_for_the_file_to_appear() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.ndjson");
        let cfg = config(dir.path(), SOURCE);
        let (ctx, mut rx) = context(100, dir.path());
        let shutdown = ctx.shutdown.clone();
        let task = open(&cfg).start(ctx);
        tokio::time::sleep(Duration::from_millis(50)).await;
        append(&path, "{\"n\":7}\n");
        assert_eq!(rows(&chunks_with(&mut rx, 1).await), ["7"]);
        shutdown.cancel();
        task.await.unwrap().unwrap();
    }
}
