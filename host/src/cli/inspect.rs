//! `weir inspect`: what a policy module declares.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::engine::{Engine, Limits};
use crate::policy::PolicyModule;
use crate::policy::bundle::{BUNDLE_MAGIC, Bundle, BundleCaps, BundleHeader, BundleManifest};

/// Arguments of `weir inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The module (`.wasm`), or a bundle (`.wpol`: its contents are shown unverified).
    pub module: PathBuf,
}

/// Reads and compiles a module, and prints its manifest.
pub(crate) fn load(engine: &Engine, path: &std::path::Path) -> anyhow::Result<PolicyModule> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(PolicyModule::compile(
        engine,
        &path.display().to_string(),
        &bytes,
    )?)
}

pub(crate) fn run(args: &InspectArgs) -> anyhow::Result<()> {
    let mut magic = [0u8; 8];
    let is_bundle = std::fs::File::open(&args.module)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .is_ok_and(|()| &magic == BUNDLE_MAGIC);
    if is_bundle {
        return inspect_bundle(&args.module);
    }
    let engine = Engine::new(Limits::default()).context("starting the WebAssembly engine")?;
    let module = load(&engine, &args.module)?;
    let m = module.manifest();
    println!(
        "policy      {} ({:?}, built from {} with weir-sdk {})",
        m.name, m.kind, m.crate_version, m.sdk_version
    );
    println!(
        "module      {} bytes, sha256 {}",
        module.size(),
        module.sha256_hex()
    );
    println!(
        "compiled    {:.1} ms",
        module.compile_time().as_secs_f64() * 1e3
    );
    for c in &m.reads {
        println!(
            "reads       {}: {}{}",
            c.name,
            c.ty,
            if c.optional { " (optional)" } else { "" }
        );
    }
    for c in &m.writes {
        println!(
            "writes      {}: {}{}",
            c.name,
            c.ty,
            if c.optional { " (nullable)" } else { "" }
        );
    }
    if !m.writes.is_empty() {
        println!("passthrough {:?}", m.passthrough);
    }
    Ok(())
}

/// Shows what a bundle claims, without verifying anything and without compiling its module.
fn inspect_bundle(path: &std::path::Path) -> anyhow::Result<()> {
    use sha2::{Digest as _, Sha256};
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let caps = BundleCaps::default();
    let subject = path.display().to_string();
    let relabel = |mut r: crate::policy::Refusal| {
        r.subject.clone_from(&subject);
        r
    };
    println!("NOT VERIFIED: what {subject} claims; `weir verify` checks it");
    let header = BundleHeader::parse(&bytes, &caps).map_err(relabel)?;
    println!(
        "header      format 1, manifest {} bytes, {} signature(s), module {} bytes, {} bytes in all",
        header.manifest_len,
        header.signature_count,
        header.module_len,
        header.total_len()
    );
    let bundle = Bundle::parse(&bytes, &caps).map_err(relabel)?;
    let manifest = match BundleManifest::from_json(bundle.manifest_bytes()) {
        Ok(m) => {
            super::verify::print_manifest(&m);
            Some(m)
        }
        Err(e) => {
            println!("manifest    unreadable: {e}");
            let text = String::from_utf8_lossy(bundle.manifest_bytes());
            println!(
                "manifest    {}",
                text.chars().take(2000).collect::<String>()
            );
            None
        }
    };
    for record in bundle.signatures() {
        println!("signature   key id {}", hex::encode(record.key_id));
    }
    let sha = hex::encode(Sha256::digest(bundle.module()));
    let matches = manifest
        .as_ref()
        .map_or("no readable manifest to compare with", |m| {
            if m.module.sha256 == sha && m.module.length == bundle.module().len() as u64 {
                "matches the manifest"
            } else {
                "DOES NOT match the manifest"
            }
        });
    println!(
        "contents    module {} bytes, sha256 {sha} ({matches})",
        bundle.module().len()
    );
    Ok(())
}
