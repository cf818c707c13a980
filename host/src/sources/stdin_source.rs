//! [`StdinSource`]: `type = "stdin"`: NDJSON from standard input until it ends.
//!
//! A plain thread reads (a read on stdin cannot be cancelled, so it must not hold up the
//! runtime's shutdown) and hands blocks to the decoding loop, which sends a chunk when it is
//! full or when no more input is ready, so a slow producer's lines are not held back.

use std::io::Read;

use arrow_schema::SchemaRef;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::chunk_sender::ChunkSender;
use super::line_buffer::LineBuffer;
use super::ndjson_decoder::NdjsonDecoder;
use super::schema_infer;
use super::{SchemaOrigin, Source, SourceContext, SourceError, SourceReport};
use crate::config::SchemaConfig;

/// How rejections and errors name the input.
const INPUT: &str = "stdin";

/// Bytes read at a time.
const READ_BLOCK: usize = 64 << 10;

/// NDJSON from a byte stream (standard input in production).
pub(crate) struct StdinSource {
    name: String,
    schema: SchemaRef,
    origin: SchemaOrigin,
    /// What inference read: decoded first.
    sample: Vec<u8>,
    /// Whether the input ended within the sample.
    ended: bool,
    input: Box<dyn Read + Send>,
}

impl std::fmt::Debug for StdinSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdinSource")
            .field("name", &self.name)
            .field("schema", &self.schema)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

type Block = std::io::Result<Vec<u8>>;

impl StdinSource {
    /// Declares the schema, or reads the first `infer_rows` lines of `input` and infers it
    /// from them (those lines are decoded too).
    ///
    /// # Errors
    /// Reading failed, or the schema can be neither declared nor inferred.
    pub(crate) fn open(
        name: &str,
        schema: &SchemaConfig,
        mut input: Box<dyn Read + Send>,
    ) -> Result<Self, SourceError> {
        let (schema_ref, origin, sample, ended) = match schema_infer::declared(name, schema)? {
            Some(declared) => (declared, SchemaOrigin::Declared, Vec::new(), false),
            None => {
                let rows = schema_infer::infer_rows(schema);
                tracing::info!(
                    source = name,
                    rows,
                    "reading stdin's first lines to infer the schema"
                );
                let (sample, ended) = schema_infer::read_sample(&mut input, rows)
                    .map_err(|e| SourceError::io(name, INPUT, "read", e))?;
                let (schema_ref, origin) =
                    schema_infer::infer_ndjson_sample(name, &sample, ended, rows, INPUT)?;
                (schema_ref, origin, sample, ended)
            }
        };
        Ok(Self {
            name: name.to_owned(),
            schema: schema_ref,
            origin,
            sample,
            ended,
            input,
        })
    }

    fn run(
        self,
        ctx: SourceContext,
        handle: tokio::runtime::Handle,
        mut rx: mpsc::Receiver<Block>,
    ) -> Result<SourceReport, SourceError> {
        let mut sender = ChunkSender::new(ctx);
        let mut decoder = NdjsonDecoder::new(self.schema.clone(), sender.batch_rows())
            .map_err(|e| SourceError::schema(&self.name, e.to_string()))?;
        decoder.set_origin(INPUT, true);
        let mut lines = LineBuffer::new(READ_BLOCK, 1, 0);
        sender.read_bytes(self.sample.len() as u64);
        lines.extend(&self.sample);
        self.drain(&mut lines, &mut decoder, &mut sender)?;
        loop {
            let block = match rx.try_recv() {
                Ok(block) => Some(block),
                Err(mpsc::error::TryRecvError::Disconnected) => None,
                Err(mpsc::error::TryRecvError::Empty) => {
                    // Nothing more ready: send what is decoded before waiting.
                    self.emit(&mut decoder, &mut sender)?;
                    let token = sender.shutdown().clone();
                    let next = handle.block_on(async {
                        tokio::select! {
                            biased;
                            () = token.cancelled() => None,
                            block = rx.recv() => Some(block),
                        }
                    });
                    match next {
                        None => break,
                        Some(block) => block,
                    }
                }
            };
            match block {
                None => {
                    if let Some((line, number)) = lines.take_rest() {
                        decoder.push_line(line, number);
                    }
                    break;
                }
                Some(Ok(bytes)) => {
                    sender.read_bytes(bytes.len() as u64);
                    lines.extend(&bytes);
                    self.drain(&mut lines, &mut decoder, &mut sender)?;
                }
                Some(Err(e)) => return Err(SourceError::io(&self.name, INPUT, "read", e)),
            }
            if sender.cancelled() {
                break;
            }
        }
        self.emit(&mut decoder, &mut sender)?;
        Ok(sender.finish())
    }

    /// Decodes the complete lines, sending each full chunk.
    fn drain(
        &self,
        lines: &mut LineBuffer,
        decoder: &mut NdjsonDecoder,
        sender: &mut ChunkSender,
    ) -> Result<(), SourceError> {
        while let Some((line, number)) = lines.next_line() {
            if decoder.push_line(line, number) {
                self.emit(decoder, sender)?;
            }
        }
        Ok(())
    }

    fn emit(
        &self,
        decoder: &mut NdjsonDecoder,
        sender: &mut ChunkSender,
    ) -> Result<(), SourceError> {
        let chunk = decoder
            .take_chunk()
            .map_err(|e| SourceError::format(&self.name, INPUT, e.to_string()))?;
        match chunk {
            Some(chunk) => sender.send_blocking(chunk),
            None => Ok(()),
        }
    }
}

/// Reads `input` to its end in blocks; stops when the decoding loop is gone.
fn read_blocks(mut input: Box<dyn Read + Send>, tx: &mpsc::Sender<Block>) {
    loop {
        let mut block = vec![0u8; READ_BLOCK];
        match input.read(&mut block) {
            Ok(0) => return,
            Ok(n) => {
                block.truncate(n);
                if tx.blocking_send(Ok(block)).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                // The decoding loop reports it; if it is gone there is no one to tell.
                let _ = tx.blocking_send(Err(e));
                return;
            }
        }
    }
}

impl Source for StdinSource {
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
        let handle = tokio::runtime::Handle::current();
        let (tx, rx) = mpsc::channel(4);
        let mut this = *self;
        if !this.ended {
            let input: Box<dyn Read + Send> =
                std::mem::replace(&mut this.input, Box::new(std::io::empty()));
            let spawned = std::thread::Builder::new()
                .name("weir-stdin".into())
                .spawn(move || read_blocks(input, &tx));
            if let Err(e) = spawned {
                let name = this.name.clone();
                return tokio::spawn(async move {
                    Err(SourceError::io(&name, INPUT, "start the reading thread", e))
                });
            }
        }
        tokio::task::spawn_blocking(move || this.run(ctx, handle, rx))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::sources::test_support::{all_chunks, chunks_with, context, rejected, rows};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn infers_from_the_first_lines_and_decodes_them_too() {
        let text = "{\"a\":1,\"b\":\"x\"}\n{\"a\":2}\n{\"a\":3,\"b\":\"z\"}\nnope\n{\"a\":5}";
        let schema = SchemaConfig {
            columns: None,
            infer_rows: 2,
        };
        let source =
            StdinSource::open("src", &schema, Box::new(std::io::Cursor::new(text))).unwrap();
        assert_eq!(
            source.schema_origin(),
            SchemaOrigin::Inferred("first 2 lines of stdin".into())
        );
        let dir = tempfile::tempdir().unwrap();
        let (ctx, rx) = context(100, dir.path());
        let task = Box::new(source).start(ctx);
        let chunks = all_chunks(rx).await;
        let report = task.await.unwrap().unwrap();
        assert_eq!(rows(&chunks), ["1|x", "2|null", "3|z", "5|null"]);
        assert_eq!(rejected(&chunks)[0].0, "stdin:4");
        assert_eq!(
            (report.rows, report.rejected, report.bytes),
            (4, 1, text.len() as u64)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sends_lines_without_waiting_for_more_input() {
        let (reader, mut writer) = std::io::pipe().unwrap();
        let schema = SchemaConfig {
            columns: Some(vec!["a: int64".into()]),
            infer_rows: 1000,
        };
        let source = StdinSource::open("src", &schema, Box::new(reader)).unwrap();
        assert_eq!(source.schema_origin(), SchemaOrigin::Declared);
        let dir = tempfile::tempdir().unwrap();
        let (ctx, mut rx) = context(100, dir.path());
        let task = Box::new(source).start(ctx);
        writer.write_all(b"{\"a\":1}\n{\"a\":2}\n{\"a\":").unwrap();
        assert_eq!(rows(&chunks_with(&mut rx, 2).await), ["1", "2"]);
        writer.write_all(b"3}\n").unwrap();
        assert_eq!(rows(&chunks_with(&mut rx, 1).await), ["3"]);
        writer.write_all(b"{\"a\":4}").unwrap();
        drop(writer);
        assert_eq!(rows(&chunks_with(&mut rx, 1).await), ["4"]);
        let report = task.await.unwrap().unwrap();
        assert_eq!(report.rows, 4);
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_ends_a_source_waiting_for_input() {
        let (reader, _writer) = std::io::pipe().unwrap();
        let schema = SchemaConfig {
            columns: Some(vec!["a: int64".into()]),
            infer_rows: 1000,
        };
        let source = StdinSource::open("src", &schema, Box::new(reader)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (ctx, _rx) = context(100, dir.path());
        let shutdown = ctx.shutdown.clone();
        let task = Box::new(source).start(ctx);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        shutdown.cancel();
        let report = tokio::time::timeout(std::time::Duration::from_secs(5), task)
            .await
            .expect("the source stops on shutdown")
            .unwrap()
            .unwrap();
        assert_eq!(report.rows, 0);
    }
}
