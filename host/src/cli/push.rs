//! `weir push`: uploads a signed bundle to a running host's admin API and reports the promotion.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::admin_client::{AdminClient, UploadAnswer, read_token};
use crate::policy::Activation;
use crate::policy::bundle::{Bundle, BundleCaps, check_policy_name};

/// Arguments of `weir push`.
#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// The admin API, e.g. `http://127.0.0.1:7878` or `https://gateway:7878`.
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// A file holding the admin API's bearer token.
    #[arg(long, value_name = "FILE")]
    pub token_file: PathBuf,
    /// A PEM file of CAs to trust for HTTPS (e.g. a self-signed admin certificate); default: the
    /// system's CA bundle.
    #[arg(long, value_name = "PEM")]
    pub ca_cert: Option<PathBuf>,
    /// The policy name to upload as (default: the name signed in the bundle).
    #[arg(long)]
    pub name: Option<String>,
    /// How long to wait for the host's answer (verification, compilation, canary and swap).
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// The signed bundle (`.wpol`).
    pub bundle: PathBuf,
}

pub(crate) fn run(args: &PushArgs) -> anyhow::Result<()> {
    let bytes = std::fs::read(&args.bundle)
        .with_context(|| format!("reading {}", args.bundle.display()))?;
    let name = match &args.name {
        Some(name) => name.clone(),
        None => bundle_name(&bytes, &args.bundle)?,
    };
    check_policy_name(&name).map_err(anyhow::Error::msg)?;
    let token = read_token(&args.token_file)?;
    let client = AdminClient::new(&args.to, args.ca_cert.as_deref(), args.timeout)?;
    let started = Instant::now();
    match client.upload(&name, &token, &bytes)? {
        UploadAnswer::Activated(activation) => {
            println!("{}", describe(&activation, started.elapsed()));
            Ok(())
        }
        UploadAnswer::Refused(status, body) => {
            let e = body.error;
            eprintln!("refused ({}): {}", e.code, e.reason);
            bail!(
                "{} refused {} ({}, HTTP {status}): {}",
                client.base(),
                args.bundle.display(),
                e.code,
                e.reason
            )
        }
    }
}

/// The policy name signed in a bundle. Only the container is parsed (no size caps: the host
/// applies its own) and only the manifest's `name` is read; the host verifies everything.
fn bundle_name(bytes: &[u8], path: &Path) -> anyhow::Result<String> {
    #[derive(serde::Deserialize)]
    struct Named {
        name: String,
    }
    let caps = BundleCaps {
        max_module_bytes: usize::MAX,
        max_manifest_bytes: usize::MAX,
        max_signatures: usize::MAX,
    };
    let bundle = Bundle::parse(bytes, &caps)
        .map_err(|r| anyhow::anyhow!("{} ({}): {}", path.display(), r.code, r.reason))?;
    let named: Named = serde_json::from_slice(bundle.manifest_bytes()).with_context(|| {
        format!(
            "{}: the manifest has no readable name (use --name)",
            path.display()
        )
    })?;
    Ok(named.name)
}

/// `activated NAME version V (was U) sha256 … signed by A, B` and the timings.
fn describe(a: &Activation, round_trip: Duration) -> String {
    let was = match a.previous_version {
        Some(v) => format!("was {v}"),
        None => "first version".to_owned(),
    };
    let sha = a.sha256.get(..16).unwrap_or(&a.sha256);
    let signers = if a.signers.is_empty() {
        "nobody".to_owned()
    } else {
        a.signers.join(", ")
    };
    let t = &a.timings;
    format!(
        "activated {} version {} ({was}) sha256 {sha} signed by {signers}\n  \
         verify {:.1} ms, compile {:.1} ms, canary {:.1} ms ({} batches), activate {:.1} ms, \
         total {:.1} ms; round trip {:.1} ms",
        a.name,
        a.version,
        t.verify_ms,
        t.compile_ms,
        t.canary_ms,
        a.canary_batches,
        t.activate_ms,
        t.total_ms,
        round_trip.as_secs_f64() * 1e3,
    )
}
