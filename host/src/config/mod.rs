//! The `weir.toml` configuration: parsing, defaults and validation. Every key is documented in
//! `docs/config.md`. Errors name the file, the key and the problem.

mod admin_config;
mod columns;
mod policy_config;
mod sink_config;
mod source_config;
mod trust_config;
mod units;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use admin_config::{AdminConfig, TlsConfig};
pub use columns::{parse_column, parse_columns};
pub use policy_config::PolicyConfig;
pub use sink_config::{
    ArrowIpcSinkConfig, DeadLetterConfig, IpcFormat, ParquetSinkConfig, SinkConfig, StdoutFormat,
    StdoutSinkConfig,
};
pub use source_config::{
    CsvOptions, EbpfFlowsSourceConfig, FileFormat, FileSourceConfig, GenerateKind,
    GenerateSourceConfig, SchemaConfig, SourceConfig, StdinSourceConfig, UdpSourceConfig, resolve,
};
pub use trust_config::{TrustConfig, TrustKeyConfig};
pub use units::{ByteSize, HumanDuration};

use crate::engine::Limits;
use crate::policy::Isolation;

/// A configuration error: the file, the key (dotted path, may be empty) and the problem.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {}{message}", if key.is_empty() { String::new() } else { format!("{key}: ") })]
pub struct ConfigError {
    /// The config file (or `<command line>` for the quick form).
    pub file: String,
    /// The dotted key, e.g. `sources.sensors.path`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    /// An error at `key` of `file`.
    #[must_use]
    pub fn new(
        file: impl Into<String>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            file: file.into(),
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Batching, queues and the state directory.
    #[serde(default)]
    pub pipeline: PipelineConfig,
    /// Sandbox limits for every policy.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Sources by name.
    #[serde(default)]
    pub sources: BTreeMap<String, SourceConfig>,
    /// The policy chain, in order.
    #[serde(default)]
    pub policies: Vec<PolicyConfig>,
    /// Sinks by name.
    #[serde(default)]
    pub sinks: BTreeMap<String, SinkConfig>,
    /// Where rejected and failed rows go.
    #[serde(default)]
    pub dead_letter: Option<DeadLetterConfig>,
    /// The keys that may sign policies, thresholds and revocations.
    #[serde(default)]
    pub trust: Option<TrustConfig>,
    /// The admin HTTP API and the watched policy directory.
    #[serde(default)]
    pub admin: Option<AdminConfig>,
    /// The directory relative paths are resolved from (the config file's), not a key.
    #[serde(skip)]
    pub base_dir: Option<PathBuf>,
    /// The config file's name for messages, not a key.
    #[serde(skip)]
    pub origin: String,
}

/// `[pipeline]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Largest batch handed to the chain (default 8192 rows).
    #[serde(default = "default_batch_rows")]
    pub batch_max_rows: usize,
    /// Longest a row waits for its batch to fill (default 200ms).
    #[serde(default = "default_batch_delay")]
    pub batch_max_delay: HumanDuration,
    /// Batches each queue holds before the stage before it waits (default 4).
    #[serde(default = "default_queue_depth")]
    pub queue_depth: usize,
    /// Checkpoints and the default dead-letter directory (default `weir-state`).
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Recent input batches kept per policy for the canary a new version runs before it is
    /// swapped in (default 4; 0 disables the canary).
    #[serde(default = "default_canary_batches")]
    pub canary_batches: usize,
    /// How often a batch a policy fails on is halved to find the rows it fails on (default
    /// 16; 0 turns poison-batch isolation off). See `Isolation`.
    #[serde(default = "default_poison_split_depth")]
    pub poison_split_depth: u32,
    /// Retries at most on the pieces of one failing batch (default 64).
    #[serde(default = "default_poison_split_retries")]
    pub poison_split_retries: u32,
}

fn default_batch_rows() -> usize {
    8192
}
fn default_batch_delay() -> HumanDuration {
    HumanDuration(Duration::from_millis(200))
}
fn default_queue_depth() -> usize {
    4
}
fn default_canary_batches() -> usize {
    4
}
fn default_poison_split_depth() -> u32 {
    Isolation::default().max_depth
}
fn default_poison_split_retries() -> u32 {
    Isolation::default().max_retries
}
fn default_state_dir() -> PathBuf {
    PathBuf::from("weir-state")
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            batch_max_rows: default_batch_rows(),
            batch_max_delay: default_batch_delay(),
            queue_depth: default_queue_depth(),
            state_dir: default_state_dir(),
            canary_batches: default_canary_batches(),
            poison_split_depth: default_poison_split_depth(),
            poison_split_retries: default_poison_split_retries(),
        }
    }
}

impl PipelineConfig {
    /// Poison-batch isolation as configured.
    #[must_use]
    pub fn isolation(&self) -> Isolation {
        Isolation {
            max_depth: self.poison_split_depth,
            max_retries: self.poison_split_retries,
        }
    }
}

/// `[limits]`: sandbox limits applied to every policy.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Time limit per batch (default 50ms).
    #[serde(default)]
    pub batch_timeout: Option<HumanDuration>,
    /// Time limit for a policy's init (default 500ms).
    #[serde(default)]
    pub init_timeout: Option<HumanDuration>,
    /// Memory cap per instance (default 64MiB).
    #[serde(default)]
    pub memory: Option<ByteSize>,
    /// Largest module accepted (default 16MiB).
    #[serde(default)]
    pub max_module: Option<ByteSize>,
    /// The device-wide memory budget: every policy instance's linear memory plus the batches
    /// queued between the sources and the sinks. Past it, sources wait; nothing is dropped.
    /// Default: none (the queues are bounded by `pipeline.queue_depth` alone).
    #[serde(default)]
    pub memory_budget: Option<ByteSize>,
}

impl LimitsConfig {
    /// The engine limits: the defaults with these overrides.
    #[must_use]
    pub fn to_limits(&self) -> Limits {
        let mut limits = Limits::default();
        if let Some(d) = self.batch_timeout {
            limits.batch_deadline = d.0;
        }
        if let Some(d) = self.init_timeout {
            limits.init_deadline = d.0;
        }
        if let Some(m) = self.memory {
            limits.memory_bytes = usize::try_from(m.0).unwrap_or(usize::MAX);
        }
        if let Some(m) = self.max_module {
            limits.max_module_bytes = usize::try_from(m.0).unwrap_or(usize::MAX);
        }
        limits
    }
}

impl Config {
    /// Reads and validates `path`.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the file, the key and the problem.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(&origin, "", format!("cannot read: {e}")))?;
        let base = path.parent().map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        });
        Self::parse(&text, &origin, base)
    }

    /// Parses and validates TOML text; `origin` names it in errors, `base` resolves relative
    /// paths.
    ///
    /// # Errors
    /// A [`ConfigError`] naming `origin`, the key and the problem.
    pub fn parse(text: &str, origin: &str, base: Option<&Path>) -> Result<Self, ConfigError> {
        let de = toml::Deserializer::parse(text)
            .map_err(|e| ConfigError::new(origin, "", one_line(&e.to_string())))?;
        let mut config: Self = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let key = if key == "." { String::new() } else { key };
            ConfigError::new(origin, key, one_line(&e.into_inner().to_string()))
        })?;
        config.base_dir = base.map(Path::to_path_buf);
        config.origin = origin.to_owned();
        config.validate()?;
        Ok(config)
    }

    /// Resolves a path from the config against the config file's directory.
    #[must_use]
    pub fn resolve(&self, path: &Path) -> PathBuf {
        match &self.base_dir {
            Some(base) if path.is_relative() => base.join(path),
            _ => path.to_path_buf(),
        }
    }

    /// The state directory, resolved.
    #[must_use]
    pub fn state_dir(&self) -> PathBuf {
        self.resolve(&self.pipeline.state_dir)
    }

    /// The dead-letter directory, resolved.
    #[must_use]
    pub fn dead_letter_dir(&self) -> PathBuf {
        match self.dead_letter.as_ref().and_then(|d| d.path.as_ref()) {
            Some(p) => self.resolve(p),
            None => self.state_dir().join("dead-letter"),
        }
    }

    fn err(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::new(&self.origin, key, message)
    }

    /// Checks what serde cannot: ranges, names, and how the parts fit together.
    fn validate(&self) -> Result<(), ConfigError> {
        if self.sources.is_empty() {
            return Err(self.err(
                "sources",
                "at least one source is needed ([sources.<name>])",
            ));
        }
        if self.sinks.is_empty() {
            return Err(self.err("sinks", "at least one sink is needed ([sinks.<name>])"));
        }
        let p = &self.pipeline;
        if p.batch_max_rows == 0 || p.batch_max_rows > 1 << 24 {
            return Err(self.err("pipeline.batch_max_rows", "must be between 1 and 16777216"));
        }
        if p.queue_depth == 0 || p.queue_depth > 1024 {
            return Err(self.err("pipeline.queue_depth", "must be between 1 and 1024"));
        }
        if p.canary_batches > 64 {
            return Err(self.err("pipeline.canary_batches", "must be between 0 and 64"));
        }
        if p.batch_max_delay.0.is_zero() {
            return Err(self.err("pipeline.batch_max_delay", "must be more than zero"));
        }
        for (name, source) in &self.sources {
            self.validate_source(name, source)?;
        }
        for (i, policy) in self.policies.iter().enumerate() {
            if let Some(module) = &policy.module {
                return Err(self.err(
                    format!("policies[{i}].module"),
                    format!(
                        "unsigned modules are not run: sign {} with `weir sign` and give \
                         `bundle = \"<name>.wpol\"` instead",
                        module.display()
                    ),
                ));
            }
            let Some(bundle) = &policy.bundle else {
                return Err(self.err(
                    format!("policies[{i}]"),
                    "`bundle` is missing: the signed policy bundle (.wpol) to run",
                ));
            };
            let bundle = self.resolve(bundle);
            if !bundle.is_file() {
                return Err(self.err(
                    format!("policies[{i}].bundle"),
                    format!("no such file: {}", bundle.display()),
                ));
            }
            let cap = self.limits.to_limits().memory_bytes as u64;
            if let Some(mark) = policy.recycle_memory
                && (mark.0 == 0 || mark.0 >= cap)
            {
                return Err(self.err(
                    format!("policies[{i}].recycle_memory"),
                    format!(
                        "{} must be more than zero and below the memory limit per instance \
                         ({cap} bytes, limits.memory): an instance fails at the limit before \
                         it would be recycled",
                        mark.0
                    ),
                ));
            }
        }
        if let Some(budget) = self.limits.memory_budget {
            let guests = self.policies.len() as u64 * self.limits.to_limits().memory_bytes as u64;
            if budget.0 <= guests {
                return Err(self.err(
                    "limits.memory_budget",
                    format!(
                        "{} bytes leaves no room for batches: the {} policies may use up to \
                         {guests} bytes of guest memory ({} each, limits.memory); raise the \
                         budget or lower limits.memory",
                        budget.0,
                        self.policies.len(),
                        self.limits.to_limits().memory_bytes
                    ),
                ));
            }
        }
        if !self.policies.is_empty() && self.trust.is_none() {
            return Err(self.err(
                "trust",
                "policies need a trust store: a [trust] table with [[trust.keys]] naming the \
                 public keys that may sign them",
            ));
        }
        if let Some(admin) = &self.admin {
            admin.validate(&self.origin)?;
        }
        let mut stdout_users = Vec::new();
        for (name, sink) in &self.sinks {
            check_name(name).map_err(|m| self.err(format!("sinks.{name}"), m))?;
            let key = |k: &str| format!("sinks.{name}.{k}");
            match sink {
                SinkConfig::Parquet(c) => {
                    if c.rotate_rows == Some(0) {
                        return Err(self.err(key("rotate_rows"), "must be more than zero"));
                    }
                    if c.rotate_bytes.is_some_and(|b| b.0 < 4096) {
                        return Err(self.err(key("rotate_bytes"), "must be at least 4KiB"));
                    }
                    if c.rotate_interval.is_some_and(|d| d.0.is_zero()) {
                        return Err(self.err(key("rotate_interval"), "must be more than zero"));
                    }
                    if c.row_group_rows == Some(0) {
                        return Err(self.err(key("row_group_rows"), "must be more than zero"));
                    }
                    if let Some(level) = c.zstd_level
                        && !(1..=22).contains(&level)
                    {
                        return Err(self.err(key("zstd_level"), "must be between 1 and 22"));
                    }
                }
                SinkConfig::ArrowIpc(c) => {
                    if c.path.as_os_str() == "-" {
                        if c.format == IpcFormat::File {
                            return Err(self.err(
                                key("format"),
                                "stdout cannot take the file format (it needs to seek); use \
                                 format = \"stream\"",
                            ));
                        }
                        stdout_users.push(key("path"));
                    }
                }
                SinkConfig::Stdout(_) => stdout_users.push(format!("sinks.{name}")),
            }
        }
        if stdout_users.len() > 1 {
            return Err(self.err(
                stdout_users[1].clone(),
                format!(
                    "only one sink may write to stdout ({} does too)",
                    stdout_users[0]
                ),
            ));
        }
        if let Some(d) = &self.dead_letter {
            if d.rotate_rows == Some(0) {
                return Err(self.err("dead_letter.rotate_rows", "must be more than zero"));
            }
            if d.rotate_interval.is_some_and(|t| t.0.is_zero()) {
                return Err(self.err("dead_letter.rotate_interval", "must be more than zero"));
            }
        }
        Ok(())
    }

    fn validate_source(&self, name: &str, source: &SourceConfig) -> Result<(), ConfigError> {
        check_name(name).map_err(|m| self.err(format!("sources.{name}"), m))?;
        let key = |k: &str| format!("sources.{name}.{k}");
        if let Some(schema) = source.schema() {
            if let Some(columns) = &schema.columns {
                if columns.is_empty() {
                    return Err(self.err(key("schema.columns"), "needs at least one column"));
                }
                parse_columns(columns)
                    .map_err(|(i, e)| self.err(format!("sources.{name}.schema.columns[{i}]"), e))?;
            }
            if schema.infer_rows == 0 {
                return Err(self.err(key("schema.infer_rows"), "must be more than zero"));
            }
        }
        match source {
            SourceConfig::File(c) => {
                let format = match c.format {
                    Some(f) => f,
                    None => FileFormat::from_extension(&c.path).ok_or_else(|| {
                        self.err(
                            key("format"),
                            format!(
                                "cannot tell the format of {:?} from its extension; set format \
                                 = \"ndjson\" | \"csv\" | \"parquet\" | \"arrow_ipc\"",
                                c.path
                            ),
                        )
                    })?,
                };
                if c.follow && format != FileFormat::Ndjson {
                    return Err(self.err(key("follow"), "follow mode reads NDJSON only"));
                }
                if c.follow && is_glob(&c.path) {
                    return Err(self.err(key("follow"), "follow mode tails one file, not a glob"));
                }
                if !c.csv.delimiter.is_ascii() {
                    return Err(self.err(key("csv.delimiter"), "must be one ASCII character"));
                }
                let pattern = source_config::resolve(self.base_dir.as_deref(), &c.path);
                let pattern = pattern.to_string_lossy();
                let matches = glob::glob(&pattern)
                    .map_err(|e| self.err(key("path"), format!("bad glob {pattern:?}: {e}")))?
                    .filter_map(Result::ok)
                    .filter(|p| p.is_file())
                    .count();
                if matches == 0 && !c.follow {
                    return Err(self.err(key("path"), format!("no file matches {pattern:?}")));
                }
            }
            SourceConfig::Udp(c) => {
                if c.schema.columns.is_none() {
                    return Err(self.err(
                        key("schema.columns"),
                        "a UDP source needs a declared schema (there is no sample to infer from)",
                    ));
                }
                if c.max_datagram.is_some_and(|m| m == 0 || m > 65507) {
                    return Err(self.err(key("max_datagram"), "must be between 1 and 65507"));
                }
            }
            SourceConfig::Stdin(_) => {}
            SourceConfig::Generate(c) => {
                if c.rate == Some(0) {
                    return Err(self.err(key("rate"), "must be more than zero"));
                }
            }
            SourceConfig::EbpfFlows(c) => {
                if c.map_entries == Some(0) {
                    return Err(self.err(key("map_entries"), "must be at least 1"));
                }
                if let Some(b) = c.ring_buffer
                    && (!b.0.is_power_of_two() || b.0 < 4096 || b.0 > 1 << 30)
                {
                    return Err(self.err(
                        key("ring_buffer"),
                        "must be a power of two between 4 KiB and 1 GiB",
                    ));
                }
                if let Err(crate::capture::CaptureError::Config { setting, message }) =
                    c.options().validate()
                {
                    return Err(self.err(key(setting), message));
                }
            }
        }
        Ok(())
    }
}

fn is_glob(path: &str) -> bool {
    path.contains(['*', '?', '['])
}

/// Source and sink names appear in file names and metrics: keep them simple.
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "name {name:?} must be 1-64 characters of a-z, A-Z, 0-9, '-' or '_'"
        ))
    }
}

/// toml's messages span several lines with a source excerpt; keep the first line plus the
/// message.
fn one_line(message: &str) -> String {
    let lines: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    match lines.as_slice() {
        [] => String::new(),
        [only] => (*only).to_owned(),
        [first, .., last] => format!("{first} {last}"),
    }
}
