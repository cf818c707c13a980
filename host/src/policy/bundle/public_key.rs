//! Ed25519 public keys: the PEM `PUBLIC KEY` file (SubjectPublicKeyInfo, as OpenSSL writes it)
//! and the key id that names a key inside bundles.

use std::path::Path;

use ring::signature::{ED25519, UnparsedPublicKey};
use sha2::{Digest, Sha256};

use super::KeyError;

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo; the 32 key bytes follow it.
pub const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// The PEM label of a public key file.
pub const PUBLIC_KEY_LABEL: &str = "PUBLIC KEY";

/// A raw 32-byte Ed25519 public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey {
    bytes: [u8; 32],
}

impl PublicKey {
    /// The key with these raw bytes.
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self { bytes }
    }

    /// The raw key bytes.
    #[must_use]
    pub fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// Reads a PEM `PUBLIC KEY` file (Ed25519 SubjectPublicKeyInfo).
    ///
    /// # Errors
    /// A [`KeyError`] naming the file.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = std::fs::read(path).map_err(|source| KeyError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_pem(&text, path)
    }

    /// Parses PEM text; `path` is only used in errors.
    ///
    /// # Errors
    /// A [`KeyError`] naming `path`.
    pub fn from_pem(text: &[u8], path: &Path) -> Result<Self, KeyError> {
        let block = pem::parse(text).map_err(|source| KeyError::Pem {
            path: path.to_owned(),
            source,
        })?;
        if block.tag() != PUBLIC_KEY_LABEL {
            return Err(KeyError::WrongLabel {
                path: path.to_owned(),
                found: block.tag().to_owned(),
                expected: PUBLIC_KEY_LABEL,
            });
        }
        let der = block.contents();
        let bad = |reason: String| KeyError::BadPublicKey {
            path: path.to_owned(),
            reason,
        };
        let Some(raw) = der.strip_prefix(ED25519_SPKI_PREFIX.as_slice()) else {
            return Err(bad(
                "not an Ed25519 SubjectPublicKeyInfo (wrong algorithm or encoding)".into(),
            ));
        };
        let bytes: [u8; 32] = raw
            .try_into()
            .map_err(|_| bad(format!("the key is {} bytes, expected 32", raw.len())))?;
        Ok(Self { bytes })
    }

    /// The SubjectPublicKeyInfo DER.
    #[must_use]
    pub fn to_spki_der(&self) -> Vec<u8> {
        let mut der = ED25519_SPKI_PREFIX.to_vec();
        der.extend_from_slice(&self.bytes);
        der
    }

    /// The PEM `PUBLIC KEY` text (readable by `openssl pkey -pubin`).
    #[must_use]
    pub fn to_pem(&self) -> String {
        pem::encode_config(
            &pem::Pem::new(PUBLIC_KEY_LABEL, self.to_spki_der()),
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        )
    }

    /// sha256 of the raw key: how bundles name their signers.
    #[must_use]
    pub fn key_id(&self) -> [u8; 32] {
        Sha256::digest(self.bytes).into()
    }

    /// [`PublicKey::key_id`] as lowercase hex.
    #[must_use]
    pub fn key_id_hex(&self) -> String {
        hex::encode(self.key_id())
    }

    /// The first 8 hex digits of the key id, for messages.
    #[must_use]
    pub fn short_id(&self) -> String {
        super::short_id(&self.key_id())
    }

    /// Whether `signature` is this key's Ed25519 signature of `message`.
    #[must_use]
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        UnparsedPublicKey::new(&ED25519, self.bytes)
            .verify(message, signature)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made with `openssl genpkey -algorithm ed25519 | openssl pkey -pubout`.
    const OPENSSL_PUB: &str = "-----BEGIN PUBLIC KEY-----\n\
        MCowBQYDK2VwAyEAGzdOQWO7T/M1b/9y+nYymLIKHvrjjJHvIAGy0U2an3A=\n\
        -----END PUBLIC KEY-----\n";
    /// The raw key inside [`OPENSSL_PUB`].
    const OPENSSL_PUB_HEX: &str =
        "1b374e4163bb4ff3356fff72fa763298b20a1efae38c91ef2001b2d14d9a9f70";

    #[test]
    fn reads_openssl_public_keys_and_writes_them_back_identically() {
        let key = PublicKey::from_pem(OPENSSL_PUB.as_bytes(), Path::new("k.pub")).unwrap();
        assert_eq!(hex::encode(key.bytes()), OPENSSL_PUB_HEX);
        assert_eq!(key.to_pem(), OPENSSL_PUB);
        assert_eq!(&key.to_spki_der()[..12], &ED25519_SPKI_PREFIX);
        let id: [u8; 32] = Sha256::digest(key.bytes()).into();
        assert_eq!(key.key_id(), id);
        assert_eq!(key.key_id_hex(), hex::encode(id));
        assert_eq!(key.short_id(), key.key_id_hex()[..8]);
    }

    #[test]
    fn refusals_name_the_file_and_the_cause() {
        let err = PublicKey::from_pem(b"garbage", Path::new("/k/x.pub")).unwrap_err();
        assert!(matches!(err, KeyError::Pem { .. }));
        assert!(err.to_string().contains("/k/x.pub"), "{err}");
        let private = pem::encode(&pem::Pem::new("PRIVATE KEY", vec![1, 2, 3]));
        let err = PublicKey::from_pem(private.as_bytes(), Path::new("x.pub")).unwrap_err();
        assert!(err.to_string().contains("\"PRIVATE KEY\""), "{err}");
        let mut der = ED25519_SPKI_PREFIX.to_vec();
        der.extend_from_slice(&[7; 31]);
        let short = pem::encode(&pem::Pem::new("PUBLIC KEY", der));
        let err = PublicKey::from_pem(short.as_bytes(), Path::new("x.pub")).unwrap_err();
        assert!(err.to_string().contains("31 bytes"), "{err}");
        let rsa_like = pem::encode(&pem::Pem::new("PUBLIC KEY", vec![0x30, 0x82, 1, 2]));
        let err = PublicKey::from_pem(rsa_like.as_bytes(), Path::new("x.pub")).unwrap_err();
        assert!(err.to_string().contains("not an Ed25519"), "{err}");
        let err = PublicKey::load(Path::new("/nonexistent/weir.pub")).unwrap_err();
        assert!(matches!(err, KeyError::Read { .. }), "{err}");
    }

    #[test]
    fn verify_rejects_a_wrong_signature() {
        let key = PublicKey::from_bytes([9; 32]);
        assert!(!key.verify(b"m", &[0; 64]));
    }
}
