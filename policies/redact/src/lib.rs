//! `redact`: replaces device identifiers and IP addresses with a keyed hash.
//!
//! Reads `device_id`, `src_ip` and `dst_ip` (optional `utf8`) and writes the same three columns
//! back in place (`passthrough = "all"`, so every other column is kept). Each non-null value
//! becomes `h:` followed by the first 16 hex digits of HMAC-SHA256(key, value); equal inputs give
//! equal outputs under one key, so joins and counts still work. Nulls stay null.
//!
//! Parameters:
//!
//! ```json
//! {"key": "a long random secret", "columns": ["device_id", "src_ip"]}
//! ```
//!
//! * `key` (required, non-empty): the secret. Taken as its UTF-8 bytes, or, when it starts with
//!   `hex:`, as the hex-decoded bytes after the prefix. A missing or bad key is refused at init
//!   (`BAD_CONFIG`).
//! * `columns` (default: all three): which of the three columns to redact; the others are
//!   left as they are.
//!
//! A column that is not selected, or that the batch lacks, is left out of the policy's output,
//! so the host keeps the batch's own column (or none) without copying it through the module.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use weir_sdk::prelude::*;

const COLUMNS: [&str; 3] = ["device_id", "src_ip", "dst_ip"];

/// The parameters.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The secret (`hex:` prefix for hex).
    pub key: String,
    /// Columns to redact (default: all).
    pub columns: Option<Vec<String>>,
}

/// Values the memo holds before it starts over.
const MEMO_CAP: usize = 1 << 16;

/// FNV-1a: a fixed, cheap hasher for short ids (no random seed is needed, or available
/// without WASI randomness, for a memo of public values).
#[derive(Default)]
struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

type Memo = std::collections::HashMap<Box<str>, [u8; 18], std::hash::BuildHasherDefault<Fnv>>;

/// The state built at init.
#[derive(Clone)]
pub struct State {
    mac: Hmac<Sha256>,
    redact: [bool; 3],
    /// A memo of values and their hashes. Gateways see the same few thousand device ids and
    /// addresses over and over, and an HMAC costs two SHA-256 compressions; a hit costs a
    /// short FNV hash and a compare. It holds at most [`MEMO_CAP`] values and starts over when
    /// full, so memory stays bounded.
    memo: Memo,
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Checks the parameters and keys the MAC.
///
/// # Errors
/// On an empty or malformed key or an unknown column.
pub fn init(c: Config) -> Result<State> {
    let key = match c.key.strip_prefix("hex:") {
        Some(hex) => decode_hex(hex).ok_or("key: bad hex after `hex:`")?,
        None => c.key.into_bytes(),
    };
    if key.is_empty() {
        return Err("key must not be empty".into());
    }
    let mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| "key: bad length")?;
    let mut redact = [c.columns.is_none(); 3];
    for name in c.columns.iter().flatten() {
        let i = COLUMNS
            .iter()
            .position(|c| c == name)
            .ok_or_else(|| Error::new(format!("columns: unknown column `{name}`")))?;
        redact[i] = true;
    }
    Ok(State {
        mac,
        redact,
        memo: Memo::default(),
    })
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("redact", &self.redact)
            .finish_non_exhaustive()
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The keyed hash of one value as ASCII: `h:` and 16 hex digits.
fn keyed_hash_bytes(mac: &Hmac<Sha256>, value: &str) -> [u8; 18] {
    let mut mac = mac.clone();
    mac.update(value.as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut out = [0u8; 18];
    out[..2].copy_from_slice(b"h:");
    for (i, b) in digest[..8].iter().enumerate() {
        out[2 + 2 * i] = HEX[usize::from(b >> 4)];
        out[3 + 2 * i] = HEX[usize::from(b & 15)];
    }
    out
}

/// The keyed hash of one value: `h:` and 16 hex digits.
#[must_use]
pub fn keyed_hash(state: &State, value: &str) -> String {
    let bytes = keyed_hash_bytes(&state.mac, value);
    String::from_utf8(bytes.to_vec()).expect("`h:` and hex digits are ASCII")
}

/// [`keyed_hash`] through the memo.
fn memo_hash<'s>(state: &'s mut State, value: &str) -> &'s str {
    if !state.memo.contains_key(value) {
        if state.memo.len() >= MEMO_CAP {
            state.memo.clear();
        }
        let hash = keyed_hash_bytes(&state.mac, value);
        state.memo.insert(value.into(), hash);
    }
    let hash = &state.memo[value];
    std::str::from_utf8(hash).expect("`h:` and hex digits are ASCII")
}

/// The transform.
///
/// # Errors
/// Never for a well-formed batch.
#[weir_sdk::transform(
    reads = ["device_id: utf8?", "src_ip: utf8?", "dst_ip: utf8?"],
    writes = ["device_id: utf8?", "src_ip: utf8?", "dst_ip: utf8?"],
    passthrough = "all",
    init = init,
)]
pub fn redact(batch: &Batch, state: &mut State) -> Result<Output> {
    let n = batch.num_rows();
    let mut out = Output::new();
    for (i, name) in COLUMNS.iter().enumerate() {
        // A column the batch lacks, or one not selected for redaction, is left out of the
        // output: the host keeps the input column (if any) as it is, without a copy.
        let Some(v) = batch.opt_utf8(name)?.filter(|_| state.redact[i]) else {
            continue;
        };
        let mut b = Utf8Builder::with_capacity(n, n * 18);
        for row in 0..n {
            match v.get(row) {
                Some(s) => b.append_value(memo_hash(state, s)),
                None => b.append_null(),
            }
        }
        out.push(*name, b);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(json: &str) -> Result<State> {
        init(weir_sdk::__rt::parse_json(json.as_bytes())?)
    }

    #[test]
    fn hashes_are_keyed_stable_and_nulls_stay() {
        let s = state(r#"{"key": "secret"}"#).unwrap();
        let batch = Batch::from_columns(vec![
            (
                "device_id",
                [Some("dev-1"), None, Some("dev-1")]
                    .into_iter()
                    .collect::<Utf8Builder>()
                    .into(),
            ),
            (
                "src_ip",
                [Some("10.0.0.1"), Some("::1"), None]
                    .into_iter()
                    .collect::<Utf8Builder>()
                    .into(),
            ),
        ]);
        let mut s = s;
        let out = redact(&batch, &mut s).unwrap().into_batch();
        let dev = out.utf8("device_id").unwrap();
        assert_eq!(dev.get(0), dev.get(2));
        assert_eq!(dev.get(1), None);
        let h = dev.get(0).unwrap();
        assert!(h.starts_with("h:") && h.len() == 18, "{h}");
        assert_ne!(
            h,
            keyed_hash(&state(r#"{"key": "other"}"#).unwrap(), "dev-1")
        );
        assert_eq!(out.utf8("src_ip").unwrap().get(2), None);
        // Absent from the batch: left out of the output, so the host adds nothing.
        assert!(out.utf8("dst_ip").is_err());
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog") = f7bc83f4...
        let k = state(r#"{"key": "hex:6b6579"}"#).unwrap();
        assert_eq!(
            keyed_hash(&k, "The quick brown fox jumps over the lazy dog"),
            "h:f7bc83f430538424"
        );
    }

    #[test]
    fn the_memo_gives_the_same_hashes_as_computing_them() {
        let mut s = state(r#"{"key": "memo"}"#).unwrap();
        // More distinct values than the memo holds, twice over: it starts over, hits reuse.
        for round in 0..2 {
            for i in 0..(MEMO_CAP + 1000) {
                let v = format!("dev-{i:05}");
                let fresh = keyed_hash(&s, &v);
                assert_eq!(memo_hash(&mut s, &v), fresh, "round {round}, {v}");
                assert!(s.memo.len() <= MEMO_CAP);
            }
        }
    }

    #[test]
    fn selected_columns_only_and_bad_keys() {
        let mut s = state(r#"{"key": "k", "columns": ["src_ip"]}"#).unwrap();
        let batch = Batch::from_columns(vec![(
            "device_id",
            [Some("dev-1")].into_iter().collect::<Utf8Builder>().into(),
        )]);
        let out = redact(&batch, &mut s).unwrap().into_batch();
        // Not selected: left out, so the host keeps the batch's own `device_id` untouched.
        assert!(out.utf8("device_id").is_err());
        assert!(
            state("{}")
                .unwrap_err()
                .message()
                .contains("missing field `key`")
        );
        assert!(state(r#"{"key": ""}"#).is_err());
        // JSON escapes in the key are decoded: `a"b\` is the bytes 61 22 62 5c.
        assert_eq!(
            keyed_hash(&state(r#"{"key": "a\"b\\"}"#).unwrap(), "x"),
            keyed_hash(&state(r#"{"key": "hex:6122625c"}"#).unwrap(), "x")
        );
        assert!(state(r#"{"key": "hex:zz"}"#).is_err());
        assert!(state(r#"{"key": "k", "columns": ["mac"]}"#).is_err());
    }
}
