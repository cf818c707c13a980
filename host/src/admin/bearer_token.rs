//! [`BearerToken`]: the admin API's upload token, read once from its file and compared in
//! constant time.

use std::path::Path;

use sha2::{Digest as _, Sha256};

use super::AdminError;

/// The token uploads must present as `Authorization: Bearer <token>`. Only its SHA-256 is kept.
#[derive(Clone)]
pub(crate) struct BearerToken {
    digest: [u8; 32],
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(..)")
    }
}

impl BearerToken {
    /// Reads the token from `path` (surrounding whitespace trimmed). Warns when the file can be
    /// read by its group or by others.
    pub(crate) fn read(path: &Path) -> Result<Self, AdminError> {
        let io = |source| AdminError::TokenFile {
            path: path.to_path_buf(),
            source,
        };
        let text = std::fs::read_to_string(path).map_err(io)?;
        let token = text.trim();
        if token.is_empty() {
            return Err(AdminError::EmptyToken {
                path: path.to_path_buf(),
            });
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(
                    file = %path.display(),
                    mode = format_args!("{:o}", mode & 0o777),
                    "the admin token file can be read by other users; chmod 600 it"
                );
            }
        }
        Ok(Self::new(token))
    }

    /// A token with this secret.
    pub(crate) fn new(secret: &str) -> Self {
        Self {
            digest: Sha256::digest(secret.as_bytes()).into(),
        }
    }

    /// Whether `presented` is the token. The time taken does not depend on where the two
    /// differ: both are hashed and the digests compared without an early exit.
    pub(crate) fn matches(&self, presented: &str) -> bool {
        let other: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let diff = self
            .digest
            .iter()
            .zip(other.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_token_matches_only_itself() {
        let t = BearerToken::new("s3cret");
        assert!(t.matches("s3cret"));
        assert!(!t.matches("s3cre"));
        assert!(!t.matches("s3cret "));
        assert!(!t.matches(""));
    }

    #[test]
    fn admin_token_file_is_trimmed_and_must_not_be_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.token");
        std::fs::write(&path, "  abc\n").unwrap();
        assert!(BearerToken::read(&path).unwrap().matches("abc"));
        std::fs::write(&path, " \n\t").unwrap();
        let e = BearerToken::read(&path).unwrap_err().to_string();
        assert!(e.contains("is empty") && e.contains("admin.token"), "{e}");
        let e = BearerToken::read(&dir.path().join("missing"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cannot read the admin token file") && e.contains("missing"),
            "{e}"
        );
    }
}
