//! `weir verify`: checks a bundle against a trust store, as a host would before compiling it.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context as _, bail};

use crate::config::{TrustConfig, TrustKeyConfig};
use crate::policy::bundle::{
    BundleCaps, BundleManifest, TrustStore, VersionStore, parse_sha256, verify_bundle,
};
use crate::policy::{Refusal, RefusalCode};

/// Arguments of `weir verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// A trusted public key (`.pub`, allowed to sign any policy) or a TOML file with a
    /// `[trust]` table (a whole `weir.toml` works). Repeat to combine several.
    #[arg(long = "trust", required = true, value_name = "PATH")]
    pub trust: Vec<PathBuf>,
    /// Also check rollback protection against the versions accepted in `STATE/policies`.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// The bundle (`.wpol`).
    pub bundle: PathBuf,
}

pub(crate) fn run(args: &VerifyArgs) -> anyhow::Result<()> {
    let trust = load_trust(&args.trust)?;
    let caps = BundleCaps::default();
    let subject = args.bundle.display().to_string();
    let size = std::fs::metadata(&args.bundle)
        .with_context(|| format!("reading {subject}"))?
        .len();
    if size > caps.max_bundle_bytes() as u64 {
        return Err(Refusal::new(
            RefusalCode::TooLarge,
            subject,
            format!(
                "bundle is {size} bytes, over the cap of {}",
                caps.max_bundle_bytes()
            ),
        )
        .into());
    }
    let bytes = std::fs::read(&args.bundle).with_context(|| format!("reading {subject}"))?;
    let verified = verify_bundle(&bytes, &subject, &trust, &caps, SystemTime::now())?;
    let rollback = match &args.state_dir {
        Some(state) => {
            let dir = state.join("policies");
            // A missing directory means nothing was accepted yet; do not create it.
            let highest = if dir.is_dir() {
                let store = VersionStore::open(&dir)
                    .with_context(|| format!("opening the version store {}", dir.display()))?;
                store.check(verified.name(), verified.version(), &subject)?;
                store.highest(verified.name())
            } else {
                None
            };
            Some((dir, highest))
        }
        None => None,
    };
    println!("verified    {subject}");
    print_manifest(verified.manifest());
    for (name, id) in verified.signers().iter().zip(verified.signer_key_ids()) {
        println!("signer      {name} (key id {})", hex::encode(id));
    }
    match rollback {
        Some((dir, Some(h))) => println!(
            "rollback    ok: above the highest accepted version {h} ({})",
            dir.display()
        ),
        Some((dir, None)) => {
            println!(
                "rollback    ok: no version accepted yet ({})",
                dir.display()
            );
        }
        None => {}
    }
    Ok(())
}

/// Prints what a bundle manifest states (shared with `weir inspect`).
pub(crate) fn print_manifest(m: &BundleManifest) {
    println!(
        "policy      {} version {} ({:?}, ABI {}, manifest format {})",
        m.name, m.version, m.policy.kind, m.abi_version, m.format
    );
    println!(
        "module      {} bytes, sha256 {}",
        m.module.length, m.module.sha256
    );
    if !m.policy.crate_version.is_empty() || !m.policy.sdk_version.is_empty() {
        println!(
            "built from  {} with weir-sdk {}",
            m.policy.crate_version, m.policy.sdk_version
        );
    }
    println!("created     {}", m.created_at);
    println!("expires     {}", m.expires_at.as_deref().unwrap_or("never"));
    if m.capabilities.is_empty() {
        println!("capability  (no imports)");
    }
    for c in &m.capabilities {
        println!("capability  {c}");
    }
    let time = m
        .limits
        .batch_time_limit_ms
        .map_or_else(|| "host default".to_owned(), |ms| format!("{ms}ms"));
    let memory = m.limits.memory_max_bytes.map_or_else(
        || "host default".to_owned(),
        |b| bytesize::ByteSize(b).display().iec().to_string(),
    );
    println!("limits      batch time {time}, memory {memory}");
    for c in &m.policy.reads {
        println!(
            "reads       {}: {}{}",
            c.name,
            c.ty,
            if c.optional { " (optional)" } else { "" }
        );
    }
    for c in &m.policy.writes {
        println!(
            "writes      {}: {}{}",
            c.name,
            c.ty,
            if c.optional { " (nullable)" } else { "" }
        );
    }
    if !m.policy.writes.is_empty() {
        println!("passthrough {:?}", m.policy.passthrough);
    }
}

/// One trust store from `.pub` files and `[trust]` tables. Relative paths in a TOML file are
/// relative to that file; thresholds combine by taking the highest.
pub(crate) fn load_trust(paths: &[PathBuf]) -> anyhow::Result<TrustStore> {
    let mut merged = TrustConfig::default();
    for path in paths {
        if path.extension().is_some_and(|e| e == "pub") {
            let name = path
                .file_stem()
                .map_or_else(|| "key".to_owned(), |s| s.to_string_lossy().into_owned());
            merged.keys.push(TrustKeyConfig {
                name,
                public_key: path.clone(),
                policies: vec!["*".to_owned()],
            });
            continue;
        }
        let config = read_trust_table(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &Path| base.join(p);
        for mut key in config.keys {
            key.public_key = resolve(&key.public_key);
            merged.keys.push(key);
        }
        for (glob, n) in config.thresholds {
            let entry = merged.thresholds.entry(glob).or_insert(n);
            *entry = (*entry).max(n);
        }
        for entry in config.revoked_keys {
            if parse_sha256(&entry.to_ascii_lowercase()).is_some() {
                merged.revoked_keys.push(entry);
            } else {
                merged
                    .revoked_keys
                    .push(resolve(Path::new(&entry)).display().to_string());
            }
        }
        merged.revoked_modules.extend(config.revoked_modules);
    }
    let names: Vec<_> = paths.iter().map(|p| p.display().to_string()).collect();
    TrustStore::from_config(&merged, Path::to_path_buf)
        .with_context(|| format!("building the trust store from {}", names.join(", ")))
}

/// The `[trust]` table of a TOML file.
fn read_trust_table(path: &Path) -> anyhow::Result<TrustConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut table: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let Some(trust) = table.remove("trust") else {
        bail!(
            "{} is neither a .pub file nor a TOML file with a [trust] table",
            path.display()
        );
    };
    trust
        .try_into()
        .with_context(|| format!("{}: [trust]", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::bundle::SigningKey;

    #[test]
    fn trust_paths_mix_pub_files_and_trust_tables() {
        let dir = tempfile::tempdir().unwrap();
        let a = SigningKey::generate().unwrap();
        let b = SigningKey::generate().unwrap();
        let old = SigningKey::generate().unwrap();
        let (_, a_pub) = a.write_pair(dir.path(), "alice").unwrap();
        b.write_pair(&dir.path().join("etc/keys"), "bob").unwrap();
        old.write_pair(&dir.path().join("etc/keys"), "old").unwrap();
        let toml_path = dir.path().join("etc/weir.toml");
        std::fs::write(
            &toml_path,
            "[pipeline]\nbatch_max_rows = 10\n\n[trust]\nrevoked_keys = [\"keys/old.pub\"]\n\
             [[trust.keys]]\nname = \"bob\"\npublic_key = \"keys/bob.pub\"\npolicies = [\"s-*\"]\n",
        )
        .unwrap();
        let store = load_trust(&[a_pub, toml_path.clone()]).unwrap();
        assert_eq!(store.key(&a.key_id()).unwrap().name(), "alice");
        let bob = store.key(&b.key_id()).unwrap();
        assert!(bob.may_sign("s-x") && !bob.may_sign("redact"));
        assert!(store.is_key_revoked(&old.key_id()));

        let plain = dir.path().join("plain.toml");
        std::fs::write(&plain, "[pipeline]\n").unwrap();
        let err = load_trust(&[plain]).unwrap_err().to_string();
        assert!(err.contains("[trust] table"), "{err}");
        std::fs::write(&toml_path, "[trust]\nkeyz = 1\n").unwrap();
        let err = format!("{:#}", load_trust(&[toml_path]).unwrap_err());
        assert!(err.contains("keyz"), "{err}");
    }
}
