//! Helpers for the sources' tests: configs, a context, and what a source sends.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_cast::display::array_value_to_string;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Source, SourceContext};
use crate::config::Config;
use crate::pipeline::SourceChunk;

/// A config holding `[sources.src]` with `source_toml`, resolved from `dir`.
pub(crate) fn config(dir: &Path, source_toml: &str) -> Config {
    let text = format!("[sources.src]\n{source_toml}\n\n[sinks.out]\ntype = \"stdout\"\n");
    Config::parse(&text, "test.toml", Some(dir)).unwrap()
}

/// Opens source `src` of `config`.
pub(crate) fn open(config: &Config) -> Box<dyn Source> {
    super::open(config, "src", &config.sources["src"]).unwrap()
}

/// A context for source `src` with chunks of `batch_rows`, and the receiving end.
pub(crate) fn context(
    batch_rows: usize,
    state_dir: &Path,
) -> (SourceContext, mpsc::Receiver<SourceChunk>) {
    let (tx, rx) = mpsc::channel(4);
    let ctx = SourceContext {
        name: Arc::from("src"),
        tx,
        shutdown: CancellationToken::new(),
        bytes_read: Arc::new(AtomicU64::new(0)),
        batch_rows,
        state_dir: state_dir.to_path_buf(),
        meter: crate::metrics::SourceMeter::default(),
        budget: None,
    };
    (ctx, rx)
}

/// Every chunk until the source closes the channel.
pub(crate) async fn all_chunks(mut rx: mpsc::Receiver<SourceChunk>) -> Vec<SourceChunk> {
    let mut chunks = Vec::new();
    while let Some(chunk) = rx.recv().await {
        chunks.push(chunk);
    }
    chunks
}

/// Chunks until they hold `records` records (rows plus rejections); panics after 10 s.
pub(crate) async fn chunks_with(
    rx: &mut mpsc::Receiver<SourceChunk>,
    records: u64,
) -> Vec<SourceChunk> {
    let mut chunks = Vec::new();
    let mut got = 0;
    while got < records {
        let chunk = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("waited 10s for {records} records, got {got}"))
            .expect("the source ended early");
        got += chunk.records();
        chunks.push(chunk);
    }
    chunks
}

/// Every row of `chunks` as `v1|v2|...`.
pub(crate) fn rows(chunks: &[SourceChunk]) -> Vec<String> {
    chunks
        .iter()
        .filter_map(|c| c.batch.as_ref())
        .flat_map(batch_rows)
        .collect()
}

/// Every row of `batch` as `v1|v2|...` (null as `null`).
pub(crate) fn batch_rows(batch: &RecordBatch) -> Vec<String> {
    (0..batch.num_rows())
        .map(|row| {
            batch
                .columns()
                .iter()
                .map(|c| {
                    if c.is_null(row) {
                        "null".to_owned()
                    } else {
                        array_value_to_string(c, row).unwrap()
                    }
                })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

/// Every rejection of `chunks` as (location, reason).
pub(crate) fn rejected(chunks: &[SourceChunk]) -> Vec<(String, String)> {
    chunks
        .iter()
        .flat_map(|c| &c.rejected)
        .map(|r| (r.location.clone(), r.reason.clone()))
        .collect()
}
