//! `[sources.<name>]`: where records come from.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::units::HumanDuration;

/// One source. The `type` key picks the kind.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourceConfig {
    /// Files matching a glob: NDJSON, CSV, Parquet or Arrow IPC.
    File(FileSourceConfig),
    /// NDJSON on standard input.
    Stdin(StdinSourceConfig),
    /// NDJSON datagrams on a UDP port, one or more records per datagram.
    Udp(UdpSourceConfig),
    /// Generated records, for demos and benchmarks.
    Generate(GenerateSourceConfig),
    /// Network flows counted in the kernel by the eBPF program on some interfaces.
    EbpfFlows(EbpfFlowsSourceConfig),
}

impl SourceConfig {
    /// The schema settings, for sources that decode text.
    #[must_use]
    pub fn schema(&self) -> Option<&SchemaConfig> {
        match self {
            Self::File(c) => Some(&c.schema),
            Self::Stdin(c) => Some(&c.schema),
            Self::Udp(c) => Some(&c.schema),
            Self::Generate(_) | Self::EbpfFlows(_) => None,
        }
    }
}

/// The format of a file source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    /// One JSON object per line.
    Ndjson,
    /// Comma- (or otherwise) separated values.
    Csv,
    /// Apache Parquet.
    Parquet,
    /// Arrow IPC, file or stream format (told apart by the file's magic bytes).
    ArrowIpc,
}

impl FileFormat {
    /// The format a path's extension implies: `.ndjson`/`.jsonl`/`.json`, `.csv`/`.tsv`,
    /// `.parquet`/`.pq`, `.arrow`/`.arrows`/`.ipc`/`.feather`.
    #[must_use]
    pub fn from_extension(path: &str) -> Option<Self> {
        let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
        match ext.as_str() {
            "ndjson" | "jsonl" | "json" => Some(Self::Ndjson),
            "csv" | "tsv" => Some(Self::Csv),
            "parquet" | "pq" => Some(Self::Parquet),
            "arrow" | "arrows" | "ipc" | "feather" => Some(Self::ArrowIpc),
            _ => None,
        }
    }
}

/// How a text source gets its schema.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaConfig {
    /// Declared columns in the policy-manifest syntax: `"name: type"`, `?` for nullable,
    /// e.g. `["ts: timestamp[ms, UTC]", "device_id: utf8", "temp: float64?"]`. When absent, the
    /// schema is inferred from the first `infer_rows` records and reported at start.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// How many records inference reads (default 1000).
    #[serde(default = "default_infer_rows")]
    pub infer_rows: usize,
}

fn default_infer_rows() -> usize {
    1000
}

impl Default for SchemaConfig {
    fn default() -> Self {
        Self {
            columns: None,
            infer_rows: default_infer_rows(),
        }
    }
}

/// `type = "file"`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    /// A path or glob (`data/*.ndjson`). Relative paths are relative to the config file.
    pub path: String,
    /// The format; by default taken from the extension.
    #[serde(default)]
    pub format: Option<FileFormat>,
    /// Tail one growing NDJSON file, resuming from a checkpoint after a restart.
    #[serde(default)]
    pub follow: bool,
    /// How often follow mode looks for new data (default 100ms).
    #[serde(default)]
    pub poll_interval: Option<HumanDuration>,
    /// The schema (NDJSON and CSV; Parquet and Arrow IPC carry their own).
    #[serde(default)]
    pub schema: SchemaConfig,
    /// CSV options.
    #[serde(default)]
    pub csv: CsvOptions,
}

/// CSV options.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CsvOptions {
    /// Whether the first line holds the column names (default true).
    #[serde(default = "default_true")]
    pub header: bool,
    /// The delimiter, one ASCII character (default `,`).
    #[serde(default = "default_delimiter")]
    pub delimiter: char,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            header: true,
            delimiter: ',',
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_delimiter() -> char {
    ','
}

/// `type = "stdin"`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StdinSourceConfig {
    /// The schema.
    #[serde(default)]
    pub schema: SchemaConfig,
}

/// `type = "udp"`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UdpSourceConfig {
    /// The address to bind, e.g. `"127.0.0.1:5140"` or `"0.0.0.0:5140"`.
    pub listen: SocketAddr,
    /// The largest datagram accepted (default 65507 bytes).
    #[serde(default)]
    pub max_datagram: Option<usize>,
    /// The schema. UDP has no sample to infer from before it starts, so `columns` is required.
    #[serde(default)]
    pub schema: SchemaConfig,
}

/// What `type = "generate"` produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GenerateKind {
    /// Network flow records.
    Flows,
    /// Sensor readings from several models with different field names and units.
    Sensors,
}

/// `type = "generate"`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateSourceConfig {
    /// What to generate.
    pub kind: GenerateKind,
    /// How many rows in all (default: until stopped).
    #[serde(default)]
    pub rows: Option<u64>,
    /// Rows per second (default: as fast as the pipeline takes them).
    #[serde(default)]
    pub rate: Option<u64>,
    /// The random seed (default 1).
    #[serde(default)]
    pub seed: Option<u64>,
}

/// `type = "ebpf_flows"`: flows counted in the kernel on `interfaces` (docs/capture.md).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EbpfFlowsSourceConfig {
    /// Interfaces of the host's network namespace, captured on ingress and egress.
    pub interfaces: Vec<String>,
    /// Entries of the kernel flow map (default 16384). When it is full, packets travel one
    /// by one over the ring buffer instead, still counted.
    #[serde(default)]
    pub map_entries: Option<u32>,
    /// Size of that ring buffer (default 1 MiB; a power of two, at least 4 KiB).
    #[serde(default)]
    pub ring_buffer: Option<super::ByteSize>,
    /// A flow ends after this long without a packet (default 15s).
    #[serde(default)]
    pub idle_timeout: Option<HumanDuration>,
    /// A longer flow is ended and a new record started after this long (default 60s).
    #[serde(default)]
    pub active_timeout: Option<HumanDuration>,
    /// How often the kernel map is drained and the timeouts applied (default 1s).
    #[serde(default)]
    pub drain_interval: Option<HumanDuration>,
}

impl EbpfFlowsSourceConfig {
    /// The capture options these settings give (defaults filled in).
    #[must_use]
    pub fn options(&self) -> crate::capture::CaptureOptions {
        let d = crate::capture::CaptureOptions::default();
        crate::capture::CaptureOptions {
            interfaces: self.interfaces.clone(),
            map_entries: self.map_entries.unwrap_or(d.map_entries),
            ring_buffer_bytes: self.ring_buffer.map_or(d.ring_buffer_bytes, |b| {
                u32::try_from(b.0).unwrap_or(u32::MAX)
            }),
            idle_timeout: self.idle_timeout.map_or(d.idle_timeout, |t| t.0),
            active_timeout: self.active_timeout.map_or(d.active_timeout, |t| t.0),
            drain_interval: self.drain_interval.map_or(d.drain_interval, |t| t.0),
        }
    }
}

/// Where a file path is resolved from.
#[must_use]
pub fn resolve(base: Option<&std::path::Path>, path: &str) -> PathBuf {
    let p = PathBuf::from(path);
    match base {
        Some(base) if p.is_relative() => base.join(p),
        _ => p,
    }
}
