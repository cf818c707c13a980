//! `weir sign`: a policy module and signing keys in, a bundle (`.wpol`) out.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, bail};

use crate::policy::bundle::{BundleLimits, SignOptions, SigningKey, sign_module};

/// Arguments of `weir sign`.
#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// A private key file (PEM PKCS#8, from `weir keygen` or `openssl genpkey -algorithm
    /// ed25519`). Repeat for several signatures.
    #[arg(long = "key", required = true, value_name = "KEY")]
    pub keys: Vec<PathBuf>,
    /// Policy name; must equal the module's embedded name.
    #[arg(long)]
    pub name: String,
    /// Version; each release must be above the last one a host accepted.
    #[arg(long)]
    pub version: u64,
    /// How long hosts accept the bundle, from now (e.g. `30d`).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub expires: Option<Duration>,
    /// The longest a batch may take (e.g. `50ms`); the host applies the tighter of this and
    /// its own limit.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub batch_time_limit: Option<Duration>,
    /// The largest linear memory (e.g. `64MiB`); the host applies the tighter of this and its
    /// own cap.
    #[arg(long, value_parser = parse_size)]
    pub memory_limit: Option<u64>,
    /// The module (`.wasm`).
    pub module: PathBuf,
    /// The bundle to write (default `NAME.wpol`).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

fn parse_size(text: &str) -> Result<u64, String> {
    text.parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("invalid size {text:?}: {e}"))
}

pub(crate) fn run(args: &SignArgs) -> anyhow::Result<()> {
    let keys = args
        .keys
        .iter()
        .map(|path| SigningKey::load(path).context("loading a signing key"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let module = std::fs::read(&args.module)
        .with_context(|| format!("reading {}", args.module.display()))?;
    let batch_time_limit_ms = match args.batch_time_limit {
        Some(d) if d < Duration::from_millis(1) => bail!("--batch-time-limit must be at least 1ms"),
        Some(d) => Some(u64::try_from(d.as_millis()).context("--batch-time-limit is too long")?),
        None => None,
    };
    if args.memory_limit == Some(0) {
        bail!("--memory-limit must be above 0");
    }
    let now = SystemTime::now();
    let expires_at = args
        .expires
        .map(|d| {
            now.checked_add(d)
                .context("--expires is too far in the future")
        })
        .transpose()?;
    let opts = SignOptions {
        name: args.name.clone(),
        version: args.version,
        created_at: now,
        expires_at,
        limits: BundleLimits {
            batch_time_limit_ms,
            memory_max_bytes: args.memory_limit,
        },
    };
    let key_refs: Vec<&SigningKey> = keys.iter().collect();
    let bundle = sign_module(&module, &key_refs, &opts)
        .with_context(|| format!("signing {}", args.module.display()))?;
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.wpol", args.name)));
    if let Some(parent) = output.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(&output, &bundle).with_context(|| format!("writing {}", output.display()))?;
    println!("bundle      {}", output.display());
    println!("policy      {} version {}", args.name, args.version);
    println!(
        "module      {} bytes, sha256 {}",
        module.len(),
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&module))
    );
    for key in &keys {
        println!("signed by   {}", key.public_key().key_id_hex());
    }
    if let Some(expires) = expires_at {
        println!("expires     {}", humantime::format_rfc3339_seconds(expires));
    }
    println!("size        {} bytes", bundle.len());
    Ok(())
}
