//! Test guest `versioned`: a transform that writes `policy_version` (uint64) on every row, with
//! every input column passed through.
//!
//! The version is not compiled in: it lives in the data segment after the marker
//! [`VERSION_MARKER`], and the hot-swap soak test patches those 8 bytes (little-endian) before
//! signing each version. So every version is a different module (a different sha256 and a real
//! compilation) built once from Rust.
//!
//! A version with the top bit set fails every batch (an error), so a test can push a version
//! that passes every check but the canary.

use weir_sdk::prelude::*;

/// The marker the soak test searches for; the 8 bytes after it are the version.
pub const VERSION_MARKER: &[u8; 16] = b"WEIR-SOAK-VER-->";

/// Marker followed by the version: 0xEE bytes until patched (read as 0). Not zeros: the
/// toolchain drops trailing zero bytes of data segments (memory starts zeroed), and then there
/// would be nothing to patch.
#[used]
static VERSION: [u8; 24] = *b"WEIR-SOAK-VER-->\xee\xee\xee\xee\xee\xee\xee\xee";

fn version() -> u64 {
    // Read through a volatile pointer so the compiler cannot fold the zero into the code: the
    // bytes are patched in the module after it is built.
    let mut bytes = [0u8; 8];
    for (i, b) in bytes.iter_mut().enumerate() {
        // SAFETY: `VERSION` is a static of 24 bytes and `16 + i` < 24.
        *b = unsafe { core::ptr::read_volatile(VERSION.as_ptr().add(16 + i)) };
    }
    if bytes == [0xee; 8] {
        return 0;
    }
    u64::from_le_bytes(bytes)
}

/// The transform.
///
/// # Errors
/// When the version has its top bit set.
#[weir_sdk::transform(reads = ["seq: int64"], writes = ["policy_version: uint64"])]
pub fn versioned(batch: &Batch) -> Result<Output> {
    let n = batch.num_rows();
    let v = version();
    if v >> 63 == 1 {
        return Err("this version is built to fail".into());
    }
    let mut b = UInt64Builder::with_capacity(n);
    (0..n).for_each(|_| b.append_value(v));
    let mut out = Output::new();
    out.push("policy_version", b);
    Ok(out)
}
