//! `bench-filter`: the benchmark policy. Keeps rows with `proto == P && dst_port == Q &&
//! bytes > B` (parameters `{"proto": P, "dst_port": Q, "min_bytes": B}`, defaults 6, 443 and
//! 1000). Null values never match.
//!
//! The hot loop runs over the raw `values()` slices, 64 rows per `u64` word with a fixed-trip
//! inner loop that LLVM vectorizes (build with `-C target-feature=+simd128`), then ANDs the
//! validity bitmaps in word-wise.

use serde::Deserialize;
use weir_sdk::prelude::*;

/// The policy's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// IP protocol to keep (default 6, TCP).
    pub proto: u8,
    /// Destination port to keep (default 443).
    pub dst_port: u16,
    /// Keep rows with strictly more bytes than this (default 1000).
    pub min_bytes: u64,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            proto: 6,
            dst_port: 443,
            min_bytes: 1000,
        }
    }
}

/// One 64-row word of the predicate.
#[inline(always)]
fn word(proto: &[u8; 64], port: &[u16; 64], bytes: &[u64; 64], p: &Params) -> u64 {
    let mut w = 0u64;
    for i in 0..64 {
        let hit = (proto[i] == p.proto) & (port[i] == p.dst_port) & (bytes[i] > p.min_bytes);
        w |= u64::from(hit) << i;
    }
    w
}

/// The predicate over raw slices of equal length, as packed words.
#[must_use]
pub fn select(proto: &[u8], port: &[u16], bytes: &[u64], p: &Params) -> Vec<u64> {
    let n = proto.len().min(port.len()).min(bytes.len());
    let mut words = Vec::with_capacity(n.div_ceil(64));
    let (pc, pr) = proto[..n].as_chunks::<64>();
    let (qc, qr) = port[..n].as_chunks::<64>();
    let (bc, br) = bytes[..n].as_chunks::<64>();
    for ((a, b), c) in pc.iter().zip(qc).zip(bc) {
        words.push(word(a, b, c, p));
    }
    if !pr.is_empty() {
        let mut a = [0u8; 64];
        let mut b = [0u16; 64];
        let mut c = [0u64; 64];
        a[..pr.len()].copy_from_slice(pr);
        b[..qr.len()].copy_from_slice(qr);
        c[..br.len()].copy_from_slice(br);
        // Padding rows have bytes = 0, which never exceeds `min_bytes`... unless it is
        // compared unsigned against nothing: mask them off explicitly.
        words.push(word(&a, &b, &c, p) & ((1u64 << pr.len()) - 1));
    }
    words
}

/// The filter.
///
/// # Errors
/// Never for a well-formed batch.
#[weir_sdk::filter(reads = ["proto: uint8", "dst_port: uint16", "bytes: uint64"])]
pub fn bench_filter(batch: &Batch, p: &Params) -> Result<Selection> {
    let proto = batch.u8("proto")?;
    let port = batch.u16("dst_port")?;
    let bytes = batch.u64("bytes")?;
    let words = select(proto.values(), port.values(), bytes.values(), p);
    let mut keep = Selection::from_words(words, batch.num_rows());
    keep.and_validity(proto.validity());
    keep.and_validity(port.validity());
    keep.and_validity(bytes.validity());
    Ok(keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_scalar_predicate() {
        let n = 200;
        let proto: Vec<u8> = (0..n).map(|i| if i % 3 == 0 { 6 } else { 17 }).collect();
        let port: Vec<u16> = (0..n).map(|i| if i % 5 == 0 { 443 } else { 80 }).collect();
        let bytes: Vec<u64> = (0..n).map(|i| (i as u64) * 17).collect();
        let mut b = UInt64Builder::new();
        for (i, v) in bytes.iter().enumerate() {
            b.append_option((i != 150).then_some(*v));
        }
        let batch = Batch::from_columns(vec![
            ("proto", UInt8Builder::from_values(proto.clone()).finish()),
            (
                "dst_port",
                UInt16Builder::from_values(port.clone()).finish(),
            ),
            ("bytes", b.finish()),
        ]);
        let p = Params::default();
        let sel = bench_filter(&batch, &p).unwrap();
        for i in 0..n {
            let want = proto[i] == 6 && port[i] == 443 && bytes[i] > 1000 && i != 150;
            assert_eq!(sel.get(i), want, "row {i}");
        }
        assert!(sel.count() > 0);
    }

    #[test]
    fn zero_threshold_does_not_keep_padding() {
        let p = Params {
            proto: 0,
            dst_port: 0,
            min_bytes: 0,
        };
        let w = select(&[0; 3], &[0; 3], &[1; 3], &p);
        assert_eq!(w, [0b111]);
    }
}
