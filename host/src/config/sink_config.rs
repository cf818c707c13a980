//! `[sinks.<name>]` and `[dead_letter]`: where rows go.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::units::{ByteSize, HumanDuration};

/// One sink. The `type` key picks the kind. Every sink receives every row the chain passes on.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SinkConfig {
    /// Parquet files in a directory, rotated by rows, bytes and time.
    Parquet(ParquetSinkConfig),
    /// Arrow IPC, file or stream format, to a path or stdout.
    ArrowIpc(ArrowIpcSinkConfig),
    /// A pretty table or NDJSON on standard output.
    Stdout(StdoutSinkConfig),
}

/// `type = "parquet"`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ParquetSinkConfig {
    /// The output directory (created if missing).
    pub path: PathBuf,
    /// File names start with this (default `part`).
    #[serde(default)]
    pub prefix: Option<String>,
    /// Start a new file after this many rows (default 1,000,000).
    #[serde(default)]
    pub rotate_rows: Option<u64>,
    /// Start a new file after about this many bytes (default 128MiB).
    #[serde(default)]
    pub rotate_bytes: Option<ByteSize>,
    /// Start a new file when the open one is this old (default 5m).
    #[serde(default)]
    pub rotate_interval: Option<HumanDuration>,
    /// Rows per row group (default 131072).
    #[serde(default)]
    pub row_group_rows: Option<usize>,
    /// zstd level, 1–22 (default 3).
    #[serde(default)]
    pub zstd_level: Option<i32>,
}

/// Arrow IPC flavour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IpcFormat {
    /// The random-access file format (`.arrow`), with a footer.
    #[default]
    File,
    /// The streaming format, for pipes.
    Stream,
}

/// `type = "arrow_ipc"`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ArrowIpcSinkConfig {
    /// A file path, or `-` for stdout.
    pub path: PathBuf,
    /// File or stream format (default file; stdout needs stream).
    #[serde(default)]
    pub format: IpcFormat,
}

/// How the stdout sink prints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StdoutFormat {
    /// A table per batch.
    #[default]
    Table,
    /// One JSON object per row.
    Ndjson,
}

/// `type = "stdout"`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutSinkConfig {
    /// Table or NDJSON.
    #[serde(default)]
    pub format: StdoutFormat,
}

/// `[dead_letter]`: rows that did not fit a source's schema, and rows a policy failed on, with
/// the reason. Written as Arrow IPC files.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterConfig {
    /// The directory (default `<state_dir>/dead-letter`).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Start a new file after this many rows (default 100,000).
    #[serde(default)]
    pub rotate_rows: Option<u64>,
    /// Start a new file when the open one is this old (default 5m).
    #[serde(default)]
    pub rotate_interval: Option<HumanDuration>,
}
