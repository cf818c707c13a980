//! Bit-packed bitmaps (LSB-first), read-only views and an internal builder.

/// A read-only view of an LSB-first bitmap: validity bitmaps and Boolean values.
///
/// Bit `i` is bit `i % 8` of byte `i / 8`. Bits past [`Bitmap::len`] are ignored.
#[derive(Clone, Copy, Debug)]
pub struct Bitmap<'a> {
    bytes: &'a [u8],
    len: usize,
}

impl<'a> Bitmap<'a> {
    /// A view of `len` bits over `bytes`.
    ///
    /// # Panics
    /// When `bytes` holds fewer than `len` bits.
    #[must_use]
    pub fn new(bytes: &'a [u8], len: usize) -> Self {
        assert!(
            bytes.len() * 8 >= len,
            "bitmap of {len} bits needs more bytes"
        );
        Self { bytes, len }
    }

    /// Number of bits.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no bits.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The underlying bytes (`ceil(len/8)` of them for ABI buffers).
    #[must_use]
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Bit `i`.
    ///
    /// # Panics
    /// When `i >= len`.
    #[inline]
    #[must_use]
    pub fn get(&self, i: usize) -> bool {
        assert!(
            i < self.len,
            "bit {i} out of range for a bitmap of {}",
            self.len
        );
        self.bytes[i >> 3] & (1 << (i & 7)) != 0
    }

    /// The 64 bits starting at bit `64 * w`, LSB-first, as one word; bits past the end are 0
    /// (bits past `len` in the last byte are returned as stored).
    #[inline]
    #[must_use]
    pub fn word(&self, w: usize) -> u64 {
        let start = w * 8;
        if let Some(chunk) = self.bytes.get(start..start + 8) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            u64::from_le_bytes(b)
        } else {
            let mut b = [0u8; 8];
            let tail = self.bytes.get(start..).unwrap_or(&[]);
            b[..tail.len()].copy_from_slice(tail);
            u64::from_le_bytes(b)
        }
    }

    /// Number of set bits among the first `len`.
    #[must_use]
    pub fn count_ones(&self) -> usize {
        let full = self.len / 8;
        let mut n: usize = self.bytes[..full]
            .iter()
            .map(|b| b.count_ones() as usize)
            .sum();
        let rem = self.len % 8;
        if rem != 0 {
            n += (self.bytes[full] & ((1u8 << rem) - 1)).count_ones() as usize;
        }
        n
    }

    /// Iterates over the bits.
    pub fn iter(&self) -> impl Iterator<Item = bool> + '_ {
        (0..self.len).map(|i| self.get(i))
    }
}

/// Appends bits to an exact-length LSB-first bitmap.
#[derive(Debug, Default, Clone)]
pub(crate) struct BitmapBuilder {
    bytes: Vec<u8>,
    len: usize,
}

impl BitmapBuilder {
    pub(crate) fn with_capacity(bits: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(bits.div_ceil(8)),
            len: 0,
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, bit: bool) {
        if self.len.is_multiple_of(8) {
            self.bytes.push(0);
        }
        if bit {
            let last = self.bytes.len() - 1;
            self.bytes[last] |= 1 << (self.len % 8);
        }
        self.len += 1;
    }

    pub(crate) fn push_n(&mut self, bit: bool, n: usize) {
        for _ in 0..n {
            self.push(bit);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn finish(&mut self) -> Vec<u8> {
        self.len = 0;
        std::mem::take(&mut self.bytes)
    }
}

/// Validity of a column being built: materialized at the first null.
#[derive(Debug, Default, Clone)]
pub(crate) struct NullsBuilder {
    bitmap: Option<BitmapBuilder>,
    len: usize,
    nulls: usize,
}

impl NullsBuilder {
    #[inline]
    pub(crate) fn append(&mut self, valid: bool) {
        if !valid {
            self.nulls += 1;
            if self.bitmap.is_none() {
                let mut b = BitmapBuilder::with_capacity(self.len + 1);
                b.push_n(true, self.len);
                self.bitmap = Some(b);
            }
        }
        if let Some(b) = &mut self.bitmap {
            b.push(valid);
        }
        self.len += 1;
    }

    pub(crate) fn append_n_valid(&mut self, n: usize) {
        if let Some(b) = &mut self.bitmap {
            b.push_n(true, n);
        }
        self.len += n;
    }

    /// `(validity bitmap, null count)`; the bitmap is `None` when there are no nulls.
    pub(crate) fn finish(&mut self) -> (Option<Vec<u8>>, usize) {
        let nulls = std::mem::take(&mut self.nulls);
        self.len = 0;
        let bitmap = self.bitmap.take().map(|mut b| b.finish());
        (bitmap.filter(|_| nulls > 0), nulls)
    }
}
