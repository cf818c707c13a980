//! Ed25519 signing keys: generating them, and the PEM `PRIVATE KEY` (PKCS#8) files OpenSSL
//! reads and writes.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair as _};

use super::{KeyError, PublicKey};

/// The PEM label of a private key file.
pub const PRIVATE_KEY_LABEL: &str = "PRIVATE KEY";

/// The DER of an Ed25519 PKCS#8 v1 private key (RFC 8410) up to the 32-byte seed.
const PKCS8_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// The same for the PKCS#8 v2 document `ring` generates.
const RING_PKCS8_V2_PREFIX: [u8; 16] = [
    0x30, 0x51, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// An Ed25519 key pair that signs bundles.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    pkcs8: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", &self.public_key().key_id_hex())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new random key.
    ///
    /// # Errors
    /// [`KeyError::Generate`] when the system has no randomness.
    pub fn generate() -> Result<Self, KeyError> {
        let document =
            Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| KeyError::Generate)?;
        // ring writes PKCS#8 v2 (with the public key), which OpenSSL 3.0 cannot read; keep the
        // seed in the v1 form OpenSSL itself writes.
        let v2 = document.as_ref();
        let seed = v2
            .strip_prefix(RING_PKCS8_V2_PREFIX.as_slice())
            .and_then(|rest| rest.get(..32))
            .ok_or(KeyError::Generate)?;
        let mut v1 = PKCS8_V1_PREFIX.to_vec();
        v1.extend_from_slice(seed);
        Self::from_pkcs8(&v1, Path::new("<generated>"))
    }

    /// The key in PKCS#8 DER (v1 as OpenSSL writes it, or v2 as ring does); `path` is only
    /// used in errors.
    ///
    /// # Errors
    /// [`KeyError::BadPrivateKey`].
    pub fn from_pkcs8(der: &[u8], path: &Path) -> Result<Self, KeyError> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|e| {
            KeyError::BadPrivateKey {
                path: path.to_owned(),
                reason: e.to_string(),
            }
        })?;
        Ok(Self {
            pair,
            pkcs8: der.to_vec(),
        })
    }

    /// Reads a PEM `PRIVATE KEY` file, such as `openssl genpkey -algorithm ed25519` writes.
    /// Warns when the file is readable by group or others.
    ///
    /// # Errors
    /// A [`KeyError`] naming the file.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let read = |source| KeyError::Read {
            path: path.to_owned(),
            source,
        };
        let mode = std::fs::metadata(path).map_err(read)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format_args!("{:o}", mode & 0o777),
                "private key file is accessible by group or others; chmod 600 it"
            );
        }
        let text = std::fs::read(path).map_err(read)?;
        let block = pem::parse(&text).map_err(|source| KeyError::Pem {
            path: path.to_owned(),
            source,
        })?;
        if block.tag() != PRIVATE_KEY_LABEL {
            return Err(KeyError::WrongLabel {
                path: path.to_owned(),
                found: block.tag().to_owned(),
                expected: PRIVATE_KEY_LABEL,
            });
        }
        Self::from_pkcs8(block.contents(), path)
    }

    /// The PEM `PRIVATE KEY` text.
    #[must_use]
    pub fn to_pem(&self) -> String {
        pem::encode_config(
            &pem::Pem::new(PRIVATE_KEY_LABEL, self.pkcs8.clone()),
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        )
    }

    /// Writes the private key to `path` with mode 0600 (set when the file is created).
    ///
    /// # Errors
    /// [`KeyError::Exists`] when the file exists (it is never overwritten), or an I/O error.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        write_new(path, self.to_pem().as_bytes(), 0o600)
    }

    /// Writes `DIR/NAME.key` (mode 0600) and `DIR/NAME.pub` (mode 0644), creating `dir` if
    /// needed, and returns their paths. Neither file may exist yet.
    ///
    /// # Errors
    /// [`KeyError::BadName`], [`KeyError::Exists`] or an I/O error.
    pub fn write_pair(&self, dir: &Path, name: &str) -> Result<(PathBuf, PathBuf), KeyError> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !valid {
            return Err(KeyError::BadName {
                name: name.to_owned(),
            });
        }
        std::fs::create_dir_all(dir).map_err(|source| KeyError::Write {
            path: dir.to_owned(),
            source,
        })?;
        let key_path = dir.join(format!("{name}.key"));
        let pub_path = dir.join(format!("{name}.pub"));
        for path in [&key_path, &pub_path] {
            if path.symlink_metadata().is_ok() {
                return Err(KeyError::Exists { path: path.clone() });
            }
        }
        self.save(&key_path)?;
        write_new(&pub_path, self.public_key().to_pem().as_bytes(), 0o644)?;
        Ok((key_path, pub_path))
    }

    /// The public half.
    #[must_use]
    pub fn public_key(&self) -> PublicKey {
        let bytes = self
            .pair
            .public_key()
            .as_ref()
            .try_into()
            .expect("an Ed25519 public key is 32 bytes");
        PublicKey::from_bytes(bytes)
    }

    /// sha256 of the public key.
    #[must_use]
    pub fn key_id(&self) -> [u8; 32] {
        self.public_key().key_id()
    }

    /// The Ed25519 signature of `message`.
    #[must_use]
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.pair
            .sign(message)
            .as_ref()
            .try_into()
            .expect("an Ed25519 signature is 64 bytes")
    }
}

/// Creates `path` (never overwriting it) with `mode` and writes `data`, synced to disk.
fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<(), KeyError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                KeyError::Exists {
                    path: path.to_owned(),
                }
            } else {
                KeyError::Write {
                    path: path.to_owned(),
                    source,
                }
            }
        })?;
    file.write_all(data)
        .and_then(|()| file.sync_all())
        .map_err(|source| KeyError::Write {
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made with `openssl genpkey -algorithm ed25519` (PKCS#8 v1, no public key inside).
    const OPENSSL_KEY: &str = "-----BEGIN PRIVATE KEY-----\n\
        MC4CAQAwBQYDK2VwBCIEIItu+wKCDPpkEmJIICWuqKvaVYh31n0arKXO2wwhuvrA\n\
        -----END PRIVATE KEY-----\n";
    /// Its public key, from `openssl pkey -pubout`.
    const OPENSSL_PUB_HEX: &str =
        "1b374e4163bb4ff3356fff72fa763298b20a1efae38c91ef2001b2d14d9a9f70";

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn loads_an_openssl_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ops.key");
        write_new(&path, OPENSSL_KEY.as_bytes(), 0o600).unwrap();
        let key = SigningKey::load(&path).unwrap();
        assert_eq!(hex::encode(key.public_key().bytes()), OPENSSL_PUB_HEX);
        let signature = key.sign(b"hello");
        assert!(key.public_key().verify(b"hello", &signature));
        assert!(!key.public_key().verify(b"hellO", &signature));
        // Re-encoding keeps OpenSSL's bytes.
        assert_eq!(key.to_pem(), OPENSSL_KEY);
    }

    #[test]
    fn write_pair_sets_modes_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::generate().unwrap();
        let (key_path, pub_path) = key.write_pair(&dir.path().join("keys"), "ops").unwrap();
        assert_eq!(key_path, dir.path().join("keys/ops.key"));
        assert_eq!(mode(&key_path), 0o600);
        assert_eq!(mode(&pub_path), 0o644);
        let loaded = SigningKey::load(&key_path).unwrap();
        assert_eq!(loaded.public_key(), key.public_key());
        assert_eq!(PublicKey::load(&pub_path).unwrap(), key.public_key());
        let key_der = pem::parse(std::fs::read(&key_path).unwrap()).unwrap();
        assert_eq!(
            key_der.contents().len(),
            48,
            "PKCS#8 v1, as OpenSSL writes it"
        );
        assert_eq!(&key_der.contents()[..16], &PKCS8_V1_PREFIX);
        let pub_der = pem::parse(std::fs::read(&pub_path).unwrap()).unwrap();
        assert_eq!(pub_der.contents().len(), 44);
        assert_eq!(
            &pub_der.contents()[..12],
            &super::super::ED25519_SPKI_PREFIX
        );

        let other = SigningKey::generate().unwrap();
        let err = other
            .write_pair(&dir.path().join("keys"), "ops")
            .unwrap_err();
        assert!(matches!(err, KeyError::Exists { .. }), "{err}");
        assert_eq!(SigningKey::load(&key_path).unwrap().key_id(), key.key_id());
        assert!(matches!(
            other.save(&key_path).unwrap_err(),
            KeyError::Exists { .. }
        ));
        for bad in ["", ".hidden", "a/b", "x y"] {
            assert!(matches!(
                other.write_pair(dir.path(), bad).unwrap_err(),
                KeyError::BadName { .. }
            ));
        }
    }

    #[test]
    fn a_world_readable_key_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loose.key");
        write_new(&path, OPENSSL_KEY.as_bytes(), 0o644).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::fmt()
            .with_writer({
                let logs = logs.clone();
                move || Capture(logs.clone())
            })
            .with_ansi(false)
            .finish();
        let loaded = tracing::subscriber::with_default(subscriber, || SigningKey::load(&path));
        assert_eq!(
            hex::encode(loaded.unwrap().public_key().bytes()),
            OPENSSL_PUB_HEX
        );
        let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
        assert!(logs.contains("WARN"), "{logs}");
        assert!(logs.contains("mode=644"), "{logs}");
        assert!(logs.contains("loose.key"), "{logs}");
    }

    struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn refusals_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pub-as-private.key");
        let public = SigningKey::generate().unwrap().public_key().to_pem();
        write_new(&path, public.as_bytes(), 0o600).unwrap();
        let err = SigningKey::load(&path).unwrap_err();
        assert!(matches!(err, KeyError::WrongLabel { .. }));
        assert!(err.to_string().contains("pub-as-private.key"), "{err}");
        let path = dir.path().join("junk.key");
        write_new(
            &path,
            pem::encode(&pem::Pem::new("PRIVATE KEY", vec![1, 2])).as_bytes(),
            0o600,
        )
        .unwrap();
        let err = SigningKey::load(&path).unwrap_err();
        assert!(matches!(err, KeyError::BadPrivateKey { .. }), "{err}");
        assert!(err.to_string().contains("junk.key"), "{err}");
    }

    #[test]
    fn openssl_can_read_the_public_key_when_installed() {
        let Ok(status) = std::process::Command::new("openssl")
            .arg("version")
            .output()
        else {
            return;
        };
        if !status.status.success() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::generate().unwrap();
        let (key_path, pub_path) = key.write_pair(dir.path(), "k").unwrap();
        let out = std::process::Command::new("openssl")
            .args(["pkey", "-pubin", "-noout", "-text", "-in"])
            .arg(&pub_path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("ED25519"));
        let out = std::process::Command::new("openssl")
            .args(["pkey", "-noout", "-in"])
            .arg(&key_path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
