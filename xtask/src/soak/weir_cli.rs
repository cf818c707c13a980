//! [`WeirCli`]: the `weir` subcommands the soak uses around the running pipeline: `keygen`,
//! `sign`, `push` and `policies`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::util;

/// The release `weir` binary.
#[derive(Debug, Clone)]
pub struct WeirCli {
    /// Its path.
    pub bin: PathBuf,
}

impl WeirCli {
    fn cmd(&self) -> Command {
        Command::new(&self.bin)
    }

    /// `weir keygen --name NAME --out-dir DIR`.
    pub fn keygen(&self, name: &str, dir: &Path) -> Result<()> {
        util::output(
            self.cmd()
                .args(["keygen", "--name", name, "--out-dir"])
                .arg(dir),
        )
        .map(drop)
    }

    /// `weir sign`: bundles `module` as version `version` of policy `name`, signed with `key`.
    pub fn sign(
        &self,
        key: &Path,
        name: &str,
        version: u64,
        module: &Path,
        out: &Path,
    ) -> Result<()> {
        util::output(
            self.cmd()
                .args(["sign", "--key"])
                .arg(key)
                .args(["--name", name, "--version", &version.to_string()])
                .arg(module)
                .arg("-o")
                .arg(out),
        )
        .map(drop)
    }

    /// `weir push --to URL --token-file TOKEN BUNDLE`; returns what it printed.
    pub fn push(&self, url: &str, token: &Path, bundle: &Path) -> Result<String> {
        util::output(
            self.cmd()
                .args(["push", "--to", url, "--token-file"])
                .arg(token)
                .arg(bundle),
        )
    }

    /// `weir policies --to URL --json`, parsed.
    pub fn policies(&self, url: &str) -> Result<serde_json::Value> {
        let json = util::output(self.cmd().args(["policies", "--to", url, "--json"]))?;
        serde_json::from_str(&json).context("parsing `weir policies --json`")
    }
}

/// `module` with a custom section `weir.soak` holding `text` appended: a valid module with the
/// same code and another hash, so each pushed version is really compiled anew (the host's
/// compile cache is keyed by the module's hash).
#[must_use]
pub fn with_custom_section(module: &[u8], text: &str) -> Vec<u8> {
    const NAME: &str = "weir.soak";
    let mut body = Vec::new();
    leb128(&mut body, NAME.len() as u64);
    body.extend_from_slice(NAME.as_bytes());
    body.extend_from_slice(text.as_bytes());
    let mut out = module.to_vec();
    out.push(0); // custom section id
    leb128(&mut out, body.len() as u64);
    out.extend_from_slice(&body);
    out
}

fn leb128(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_section_encoding() {
        let empty = b"\0asm\x01\0\0\0";
        let m = with_custom_section(empty, "v7");
        assert_eq!(&m[..8], empty);
        assert_eq!(&m[8..], b"\x00\x0c\x09weir.soakv7");
        let mut v = Vec::new();
        leb128(&mut v, 300);
        assert_eq!(v, [0xac, 0x02]);
    }
}
