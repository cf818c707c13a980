//! The bundle container: a fixed little-endian header, the manifest JSON, the signature records
//! and the untouched module bytes. Parsing checks the size caps from the header before it
//! touches anything else, and is strict: any byte out of place is refused.

use std::borrow::Cow;
use std::collections::BTreeSet;

use crate::policy::{Refusal, RefusalCode};

/// The first 8 bytes of every bundle.
pub const BUNDLE_MAGIC: &[u8; 8] = b"WEIRPOL\0";
/// The only container format version.
pub const BUNDLE_FORMAT_VERSION: u16 = 1;
/// Header length: magic, format version, reserved, manifest length, signature count, reserved,
/// module length.
pub const HEADER_LEN: usize = 24;
/// One signature record: a 32-byte key id and a 64-byte Ed25519 signature.
pub const SIGNATURE_RECORD_LEN: usize = 96;
/// The domain-separation prefix of the signed payload.
pub const SIGNING_DOMAIN: &[u8] = b"weir-policy-bundle/v1\0";
/// How much a bundle may exceed its module cap (header, manifest and signatures).
pub const BUNDLE_OVERHEAD_CAP: usize = 128 * 1024;

/// The subject a container refusal carries until the caller names the bundle.
const SUBJECT: &str = "bundle";

/// Size caps applied to a bundle before anything in it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BundleCaps {
    /// Largest module (default 16 MiB, as [`Limits::max_module_bytes`](crate::engine::Limits)).
    pub max_module_bytes: usize,
    /// Largest manifest (default 64 KiB).
    pub max_manifest_bytes: usize,
    /// Most signatures (default 16).
    pub max_signatures: usize,
}

impl Default for BundleCaps {
    fn default() -> Self {
        Self {
            max_module_bytes: crate::engine::Limits::default().max_module_bytes,
            max_manifest_bytes: 64 * 1024,
            max_signatures: 16,
        }
    }
}

impl BundleCaps {
    /// Largest whole bundle: the module cap plus [`BUNDLE_OVERHEAD_CAP`].
    #[must_use]
    pub fn max_bundle_bytes(&self) -> usize {
        self.max_module_bytes.saturating_add(BUNDLE_OVERHEAD_CAP)
    }
}

/// The fixed header, checked against the caps. Lets a reader refuse a bundle after its first
/// [`HEADER_LEN`] bytes, before reading or allocating the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BundleHeader {
    /// Manifest length in bytes.
    pub manifest_len: usize,
    /// Number of signature records.
    pub signature_count: usize,
    /// Module length in bytes.
    pub module_len: usize,
}

impl BundleHeader {
    /// Reads and checks the header at the start of `bytes` (only the first [`HEADER_LEN`] bytes
    /// are looked at).
    ///
    /// # Errors
    /// `malformed` when the bytes are short or the magic, format version or a reserved field is
    /// wrong, or there is no signature; `too_large` when a length is over its cap.
    pub fn parse(bytes: &[u8], caps: &BundleCaps) -> Result<Self, Refusal> {
        let Some(header) = bytes.get(..HEADER_LEN) else {
            return Err(malformed(format!(
                "{} bytes is shorter than the {HEADER_LEN}-byte header",
                bytes.len()
            )));
        };
        let u16_at = |at: usize| u16::from_le_bytes([header[at], header[at + 1]]);
        let u32_at = |at: usize| {
            u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
        };
        if &header[..8] != BUNDLE_MAGIC {
            return Err(malformed("not a policy bundle (bad magic)"));
        }
        let format = u16_at(8);
        if format != BUNDLE_FORMAT_VERSION {
            return Err(malformed(format!(
                "unknown bundle format version {format} (this host reads {BUNDLE_FORMAT_VERSION})"
            )));
        }
        if u16_at(10) != 0 || u16_at(18) != 0 {
            return Err(malformed("a reserved header field is not zero"));
        }
        let to_usize = |v: u32| usize::try_from(v).unwrap_or(usize::MAX);
        let header = Self {
            manifest_len: to_usize(u32_at(12)),
            signature_count: usize::from(u16_at(16)),
            module_len: to_usize(u32_at(20)),
        };
        if header.manifest_len > caps.max_manifest_bytes {
            return Err(too_large(format!(
                "manifest is {} bytes, over the cap of {}",
                header.manifest_len, caps.max_manifest_bytes
            )));
        }
        if header.signature_count > caps.max_signatures {
            return Err(too_large(format!(
                "{} signatures, over the cap of {}",
                header.signature_count, caps.max_signatures
            )));
        }
        if header.signature_count == 0 {
            return Err(malformed("the bundle has no signature"));
        }
        if header.module_len > caps.max_module_bytes {
            return Err(too_large(format!(
                "module is {} bytes, over the cap of {}",
                header.module_len, caps.max_module_bytes
            )));
        }
        Ok(header)
    }

    /// The exact length of the whole bundle this header describes.
    #[must_use]
    pub fn total_len(&self) -> usize {
        // Each term is capped (u32 lengths, at most 65535 signatures): no overflow on 64-bit,
        // and saturation keeps 32-bit targets safe.
        HEADER_LEN
            .saturating_add(self.manifest_len)
            .saturating_add(self.signature_count.saturating_mul(SIGNATURE_RECORD_LEN))
            .saturating_add(self.module_len)
    }
}

/// One signature: which key (sha256 of its raw 32-byte Ed25519 public key) and the signature
/// over [`signed_payload`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureRecord {
    /// sha256 of the signer's raw public key.
    pub key_id: [u8; 32],
    /// The Ed25519 signature.
    pub signature: [u8; 64],
}

/// A parsed (not verified) bundle: the manifest bytes, the signatures and the module bytes,
/// borrowed from the input or owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle<'a> {
    manifest: Cow<'a, [u8]>,
    signatures: Vec<SignatureRecord>,
    module: Cow<'a, [u8]>,
}

impl<'a> Bundle<'a> {
    /// A bundle of these pieces (checked by [`Bundle::encode`]).
    #[must_use]
    pub fn new(
        manifest: impl Into<Cow<'a, [u8]>>,
        signatures: Vec<SignatureRecord>,
        module: impl Into<Cow<'a, [u8]>>,
    ) -> Self {
        Self {
            manifest: manifest.into(),
            signatures,
            module: module.into(),
        }
    }

    /// Parses `bytes`, borrowing the manifest and module from it. Checks, in order: the whole
    /// length against [`BundleCaps::max_bundle_bytes`], the header ([`BundleHeader::parse`]),
    /// that the length is exactly what the header says, and that no key id signs twice.
    /// Nothing inside the manifest or module is looked at.
    ///
    /// The refusal's subject is `bundle`; callers replace it with their own.
    ///
    /// # Errors
    /// `too_large` or `malformed`.
    pub fn parse(bytes: &'a [u8], caps: &BundleCaps) -> Result<Self, Refusal> {
        if bytes.len() > caps.max_bundle_bytes() {
            return Err(too_large(format!(
                "bundle is {} bytes, over the cap of {}",
                bytes.len(),
                caps.max_bundle_bytes()
            )));
        }
        let header = BundleHeader::parse(bytes, caps)?;
        let total = header.total_len();
        if bytes.len() < total {
            return Err(malformed(format!(
                "truncated: the header announces {total} bytes, found {}",
                bytes.len()
            )));
        }
        if bytes.len() > total {
            return Err(malformed(format!(
                "{} trailing bytes after the module",
                bytes.len() - total
            )));
        }
        let (manifest, rest) = bytes[HEADER_LEN..].split_at(header.manifest_len);
        let (records, module) = rest.split_at(header.signature_count * SIGNATURE_RECORD_LEN);
        let mut seen = BTreeSet::new();
        let mut signatures = Vec::with_capacity(header.signature_count);
        for record in records.chunks_exact(SIGNATURE_RECORD_LEN) {
            let (key_id, signature) = record.split_at(32);
            let record = SignatureRecord {
                key_id: key_id.try_into().expect("32-byte slice"),
                signature: signature.try_into().expect("64-byte slice"),
            };
            if !seen.insert(record.key_id) {
                return Err(malformed(format!(
                    "key {} signs twice",
                    short_id(&record.key_id)
                )));
            }
            signatures.push(record);
        }
        Ok(Self {
            manifest: Cow::Borrowed(manifest),
            signatures,
            module: Cow::Borrowed(module),
        })
    }

    /// Writes the container. Applies the same rules as [`Bundle::parse`], so whatever this
    /// returns parses back under the same `caps`.
    ///
    /// # Errors
    /// `too_large` when a piece is over its cap; `malformed` for no signature or a key id that
    /// signs twice.
    pub fn encode(&self, caps: &BundleCaps) -> Result<Vec<u8>, Refusal> {
        let field = |len: usize, what: &str| {
            u32::try_from(len).map_err(|_| too_large(format!("{what} is {len} bytes, over 4 GiB")))
        };
        let manifest_len = field(self.manifest.len(), "manifest")?;
        let module_len = field(self.module.len(), "module")?;
        let count = u16::try_from(self.signatures.len())
            .map_err(|_| too_large(format!("{} signatures", self.signatures.len())))?;
        let mut out = Vec::with_capacity(
            HEADER_LEN
                + self.manifest.len()
                + self.signatures.len() * SIGNATURE_RECORD_LEN
                + self.module.len(),
        );
        out.extend_from_slice(BUNDLE_MAGIC);
        out.extend_from_slice(&BUNDLE_FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&manifest_len.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&module_len.to_le_bytes());
        out.extend_from_slice(&self.manifest);
        for record in &self.signatures {
            out.extend_from_slice(&record.key_id);
            out.extend_from_slice(&record.signature);
        }
        out.extend_from_slice(&self.module);
        Bundle::parse(&out, caps)?;
        Ok(out)
    }

    /// The manifest bytes (UTF-8 JSON, unparsed).
    #[must_use]
    pub fn manifest_bytes(&self) -> &[u8] {
        &self.manifest
    }

    /// The signature records, in bundle order.
    #[must_use]
    pub fn signatures(&self) -> &[SignatureRecord] {
        &self.signatures
    }

    /// The module bytes.
    #[must_use]
    pub fn module(&self) -> &[u8] {
        &self.module
    }

    /// The exact bytes the signatures cover: see [`signed_payload`].
    #[must_use]
    pub fn signed_payload(&self) -> Vec<u8> {
        signed_payload(&self.manifest)
    }

    /// A copy that owns its bytes.
    #[must_use]
    pub fn into_owned(self) -> Bundle<'static> {
        Bundle {
            manifest: Cow::Owned(self.manifest.into_owned()),
            signatures: self.signatures,
            module: Cow::Owned(self.module.into_owned()),
        }
    }
}

/// What a signature covers: [`SIGNING_DOMAIN`], the manifest length as a little-endian u64,
/// then the manifest bytes.
#[must_use]
pub fn signed_payload(manifest: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(SIGNING_DOMAIN.len() + 8 + manifest.len());
    payload.extend_from_slice(SIGNING_DOMAIN);
    payload.extend_from_slice(&(manifest.len() as u64).to_le_bytes());
    payload.extend_from_slice(manifest);
    payload
}

/// The first 8 hex digits of a key id or hash, for messages.
#[must_use]
pub fn short_id(id: &[u8; 32]) -> String {
    hex::encode(&id[..4])
}

fn malformed(reason: impl Into<String>) -> Refusal {
    Refusal::new(RefusalCode::Malformed, SUBJECT, reason)
}

fn too_large(reason: impl Into<String>) -> Refusal {
    Refusal::new(RefusalCode::TooLarge, SUBJECT, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: u8) -> SignatureRecord {
        SignatureRecord {
            key_id: [id; 32],
            signature: [id.wrapping_add(1); 64],
        }
    }

    fn sample() -> Vec<u8> {
        Bundle::new(
            b"{\"m\":1}".as_slice(),
            vec![record(1), record(2)],
            b"\0asm\x01\0\0\0".as_slice(),
        )
        .encode(&BundleCaps::default())
        .unwrap()
    }

    fn code(bytes: &[u8]) -> RefusalCode {
        Bundle::parse(bytes, &BundleCaps::default())
            .unwrap_err()
            .code
    }

    #[test]
    fn round_trips_and_borrows() {
        let bytes = sample();
        assert_eq!(bytes.len(), HEADER_LEN + 7 + 2 * 96 + 8);
        assert_eq!(&bytes[..8], BUNDLE_MAGIC);
        let bundle = Bundle::parse(&bytes, &BundleCaps::default()).unwrap();
        assert_eq!(bundle.manifest_bytes(), b"{\"m\":1}");
        assert_eq!(bundle.signatures(), &[record(1), record(2)]);
        assert_eq!(bundle.module(), b"\0asm\x01\0\0\0");
        assert!(matches!(bundle.manifest, Cow::Borrowed(_)));
        assert_eq!(bundle.clone().into_owned(), bundle);
        assert_eq!(bundle.encode(&BundleCaps::default()).unwrap(), bytes);
    }

    #[test]
    fn signed_payload_is_domain_length_manifest() {
        let payload = signed_payload(b"abc");
        assert_eq!(&payload[..SIGNING_DOMAIN.len()], SIGNING_DOMAIN);
        assert_eq!(
            &payload[SIGNING_DOMAIN.len()..SIGNING_DOMAIN.len() + 8],
            &3u64.to_le_bytes()
        );
        assert_eq!(&payload[SIGNING_DOMAIN.len() + 8..], b"abc");
    }

    #[test]
    fn every_truncation_and_a_trailing_byte_are_malformed() {
        let bytes = sample();
        for len in [0, 7, 8, 23, 24, 30, HEADER_LEN + 7 + 95, bytes.len() - 1] {
            assert_eq!(code(&bytes[..len]), RefusalCode::Malformed, "cut at {len}");
        }
        let mut long = bytes.clone();
        long.push(0);
        let refusal = Bundle::parse(&long, &BundleCaps::default()).unwrap_err();
        assert_eq!(refusal.code, RefusalCode::Malformed);
        assert!(
            refusal.reason.contains("1 trailing bytes"),
            "{}",
            refusal.reason
        );
    }

    #[test]
    fn header_fields_are_strict() {
        let bytes = sample();
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert_eq!(code(&bad), RefusalCode::Malformed);
        let mut bad = bytes.clone();
        bad[8] = 2;
        let refusal = Bundle::parse(&bad, &BundleCaps::default()).unwrap_err();
        assert!(
            refusal.reason.contains("format version 2"),
            "{}",
            refusal.reason
        );
        for at in [10, 11, 18, 19] {
            let mut bad = bytes.clone();
            bad[at] = 1;
            assert_eq!(code(&bad), RefusalCode::Malformed, "reserved byte {at}");
        }
        let mut bad = bytes.clone();
        bad[16] = 0;
        assert_eq!(code(&bad), RefusalCode::Malformed, "zero signatures");
    }

    #[test]
    fn duplicate_key_ids_are_malformed() {
        let bundle = Bundle::new(
            b"{}".as_slice(),
            vec![record(3), record(3)],
            b"m".as_slice(),
        );
        let refusal = bundle.encode(&BundleCaps::default()).unwrap_err();
        assert_eq!(refusal.code, RefusalCode::Malformed);
        assert!(
            refusal.reason.contains("03030303 signs twice"),
            "{}",
            refusal.reason
        );
        assert_eq!(
            Bundle::new(b"{}".as_slice(), vec![], b"m".as_slice())
                .encode(&BundleCaps::default())
                .unwrap_err()
                .code,
            RefusalCode::Malformed
        );
    }

    #[test]
    fn caps_are_checked_from_the_header_alone() {
        // A 24-byte header claiming a 1 GiB module: refused without reading further.
        let mut header = sample()[..HEADER_LEN].to_vec();
        header[20..24].copy_from_slice(&(1u32 << 30).to_le_bytes());
        let refusal = Bundle::parse(&header, &BundleCaps::default()).unwrap_err();
        assert_eq!(refusal.code, RefusalCode::TooLarge);
        assert!(
            refusal.reason.contains("module is 1073741824 bytes"),
            "{}",
            refusal.reason
        );
        let mut header = sample()[..HEADER_LEN].to_vec();
        header[12..16].copy_from_slice(&(64 * 1024 + 1u32).to_le_bytes());
        assert_eq!(code(&header), RefusalCode::TooLarge);
        let mut header = sample()[..HEADER_LEN].to_vec();
        header[16..18].copy_from_slice(&17u16.to_le_bytes());
        assert_eq!(code(&header), RefusalCode::TooLarge);
        let caps = BundleCaps {
            max_module_bytes: 4,
            ..BundleCaps::default()
        };
        assert_eq!(
            Bundle::parse(&sample(), &caps).unwrap_err().code,
            RefusalCode::TooLarge
        );
        let whole = vec![0u8; caps.max_bundle_bytes() + 1];
        let refusal = Bundle::parse(&whole, &caps).unwrap_err();
        assert_eq!(refusal.code, RefusalCode::TooLarge);
        assert!(refusal.reason.contains("bundle is"), "{}", refusal.reason);
    }

    #[test]
    fn header_reports_the_total_length() {
        let bytes = sample();
        let header = BundleHeader::parse(&bytes, &BundleCaps::default()).unwrap();
        assert_eq!(header.total_len(), bytes.len());
        assert_eq!(header.signature_count, 2);
    }
}
