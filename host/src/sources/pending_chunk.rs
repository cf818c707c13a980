//! [`PendingChunk`]: the rows and rejections a text decoder has gathered for its next chunk.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, SchemaRef};

use crate::pipeline::{Rejected, SourceChunk};

/// Where records come from, for rejection locations: `<name>:<line>` when `numbered`, else
/// just `<name>` (e.g. `udp 127.0.0.1:40000`).
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    /// A path, `stdin` or `udp <peer>`.
    pub name: Arc<str>,
    /// Whether line numbers mean something (files, stdin) or not (datagrams).
    pub numbered: bool,
}

impl Origin {
    /// An origin whose records are numbered lines.
    pub(crate) fn lines(name: impl Into<Arc<str>>) -> Self {
        Self {
            name: name.into(),
            numbered: true,
        }
    }

    /// The location of `line`.
    pub(crate) fn location(&self, line: u64) -> String {
        if self.numbered {
            format!("{}:{line}", self.name)
        } else {
            self.name.to_string()
        }
    }
}

/// Decoded pieces and rejections, in input order, until they are taken as a chunk.
#[derive(Debug)]
pub(crate) struct PendingChunk {
    schema: SchemaRef,
    pieces: Vec<RecordBatch>,
    rows: usize,
    rejected: Vec<Rejected>,
}

impl PendingChunk {
    /// An empty chunk of `schema`.
    pub(crate) fn new(schema: SchemaRef) -> Self {
        Self {
            schema,
            pieces: Vec::new(),
            rows: 0,
            rejected: Vec::new(),
        }
    }

    /// Records gathered: rows plus rejections.
    pub(crate) fn records(&self) -> usize {
        self.rows + self.rejected.len()
    }

    /// Adds decoded rows.
    pub(crate) fn push_batch(&mut self, batch: RecordBatch) {
        if batch.num_rows() > 0 {
            self.rows += batch.num_rows();
            self.pieces.push(batch);
        }
    }

    /// Adds a rejected record.
    pub(crate) fn reject(&mut self, origin: &Origin, line: u64, raw: &[u8], reason: String) {
        self.rejected.push(Rejected {
            location: origin.location(line),
            reason,
            raw: raw.to_vec(),
        });
    }

    /// Takes what was gathered as a chunk (without bytes or checkpoint), or `None` when
    /// nothing was. Pieces are concatenated only when there are several (errors split them).
    ///
    /// # Errors
    /// Concatenation failed (offsets overflow: more than 2 GiB of text in one chunk).
    pub(crate) fn take(&mut self) -> Result<Option<SourceChunk>, ArrowError> {
        if self.records() == 0 {
            return Ok(None);
        }
        let batch = match self.pieces.len() {
            0 => None,
            1 => self.pieces.pop(),
            _ => Some(arrow_select::concat::concat_batches(
                &self.schema,
                &self.pieces,
            )?),
        };
        self.pieces.clear();
        self.rows = 0;
        Ok(Some(SourceChunk {
            batch,
            rejected: std::mem::take(&mut self.rejected),
            checkpoint: None,
            bytes: 0,
            ticket: None,
        }))
    }
}
