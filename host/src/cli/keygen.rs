//! `weir keygen`: a new Ed25519 signing key pair.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::policy::bundle::SigningKey;

/// Arguments of `weir keygen`.
#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// The key's name: the files are NAME.key and NAME.pub.
    #[arg(long)]
    pub name: String,
    /// Where to write them (created if missing). Existing files are never overwritten.
    #[arg(long, default_value = ".")]
    pub out_dir: PathBuf,
}

pub(crate) fn run(args: &KeygenArgs) -> anyhow::Result<()> {
    let key = SigningKey::generate().context("generating a signing key")?;
    let (private, public) = key.write_pair(&args.out_dir, &args.name).with_context(|| {
        format!(
            "writing key pair {} in {}",
            args.name,
            args.out_dir.display()
        )
    })?;
    println!(
        "private key {} (mode 0600: keep it secret)",
        private.display()
    );
    println!("public key  {}", public.display());
    println!("key id      {}", key.public_key().key_id_hex());
    Ok(())
}
