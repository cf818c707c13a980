//! The selection bitmap a filter returns.

use crate::bitmap::Bitmap;

/// Which rows a filter keeps: a packed LSB-first bitmap, one bit per input row.
///
/// Stored as `u64` words so that [`Selection::from_fn`] packs 64 rows at a time (LLVM vectorizes
/// the inner loop with `+simd128`) and the set operations run word-wise. Bits past
/// [`Selection::len`] are always zero.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    words: Vec<u64>,
    len: usize,
}

impl Selection {
    /// Keeps all `n` rows.
    #[must_use]
    pub fn all(n: usize) -> Self {
        let mut s = Self {
            words: vec![u64::MAX; n.div_ceil(64)],
            len: n,
        };
        s.clear_tail();
        s
    }

    /// Keeps none of `n` rows.
    #[must_use]
    pub fn none(n: usize) -> Self {
        Self {
            words: vec![0; n.div_ceil(64)],
            len: n,
        }
    }

    /// Keeps row `i` when `f(i)` is true, for `i` in `0..n`.
    ///
    /// Rows are packed 64 at a time into a `u64` with a branch-free inner loop, so a simple
    /// predicate over slices vectorizes.
    #[inline]
    pub fn from_fn(n: usize, mut f: impl FnMut(usize) -> bool) -> Self {
        let chunks = n / 64;
        let rem = n % 64;
        let mut words = Vec::with_capacity(n.div_ceil(64));
        for chunk in 0..chunks {
            let base = chunk * 64;
            let mut packed = 0u64;
            for bit in 0..64 {
                packed |= u64::from(f(base + bit)) << bit;
            }
            words.push(packed);
        }
        if rem != 0 {
            let base = chunks * 64;
            let mut packed = 0u64;
            for bit in 0..rem {
                packed |= u64::from(f(base + bit)) << bit;
            }
            words.push(packed);
        }
        Self { words, len: n }
    }

    /// A selection from packed words (bit `i` of word `w` is row `64 * w + i`). Bits past `len`
    /// are cleared.
    ///
    /// # Panics
    /// When `words.len() != ceil(len / 64)`.
    #[must_use]
    pub fn from_words(words: Vec<u64>, len: usize) -> Self {
        assert_eq!(words.len(), len.div_ceil(64), "need ceil(len/64) words");
        let mut s = Self { words, len };
        s.clear_tail();
        s
    }

    /// A selection equal to a bitmap (e.g. a Boolean column's values).
    #[must_use]
    pub fn from_bitmap(bitmap: Bitmap<'_>) -> Self {
        let words = (0..bitmap.len().div_ceil(64))
            .map(|w| bitmap.word(w))
            .collect();
        Self::from_words(words, bitmap.len())
    }

    /// Number of rows the selection covers (the input rows).
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it covers no rows.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The packed words.
    #[must_use]
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// Whether row `i` is kept.
    ///
    /// # Panics
    /// When `i >= len`.
    #[must_use]
    pub fn get(&self, i: usize) -> bool {
        assert!(i < self.len, "row {i} out of range for {} rows", self.len);
        self.words[i / 64] & (1 << (i % 64)) != 0
    }

    /// Keeps (`true`) or drops row `i`.
    ///
    /// # Panics
    /// When `i >= len`.
    pub fn set(&mut self, i: usize, keep: bool) {
        assert!(i < self.len, "row {i} out of range for {} rows", self.len);
        if keep {
            self.words[i / 64] |= 1 << (i % 64);
        } else {
            self.words[i / 64] &= !(1 << (i % 64));
        }
    }

    /// Number of kept rows.
    #[must_use]
    pub fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Keeps only rows kept by both.
    ///
    /// # Panics
    /// When the lengths differ.
    pub fn and(&mut self, other: &Selection) {
        assert_eq!(self.len, other.len, "selections of different lengths");
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a &= b;
        }
    }

    /// Keeps rows kept by either.
    ///
    /// # Panics
    /// When the lengths differ.
    pub fn or(&mut self, other: &Selection) {
        assert_eq!(self.len, other.len, "selections of different lengths");
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= b;
        }
    }

    /// Keeps rows kept by `self` but not by `other`.
    ///
    /// # Panics
    /// When the lengths differ.
    pub fn and_not(&mut self, other: &Selection) {
        assert_eq!(self.len, other.len, "selections of different lengths");
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a &= !b;
        }
    }

    /// Inverts the selection.
    pub fn invert(&mut self) {
        for w in &mut self.words {
            *w = !*w;
        }
        self.clear_tail();
    }

    /// ANDs with a bitmap word-wise, e.g. a column's validity so null rows are dropped without a
    /// branch per row.
    ///
    /// # Panics
    /// When the bitmap's length differs.
    pub fn and_bitmap(&mut self, bitmap: Bitmap<'_>) {
        assert_eq!(self.len, bitmap.len(), "bitmap of a different length");
        for (w, a) in self.words.iter_mut().enumerate() {
            *a &= bitmap.word(w);
        }
    }

    /// ANDs with an optional validity bitmap (`None` = no nulls, nothing to do). Pass
    /// `view.validity()`.
    pub fn and_validity(&mut self, validity: Option<Bitmap<'_>>) {
        if let Some(v) = validity {
            self.and_bitmap(v);
        }
    }

    /// ORs with the *nulls* of a validity bitmap: rows that are null are kept in addition.
    pub fn or_nulls(&mut self, validity: Option<Bitmap<'_>>) {
        if let Some(v) = validity {
            assert_eq!(self.len, v.len(), "bitmap of a different length");
            for (w, a) in self.words.iter_mut().enumerate() {
                *a |= !v.word(w);
            }
            self.clear_tail();
        }
    }

    /// Iterates over the indices of kept rows.
    pub fn iter_selected(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.len).filter(|&i| self.get(i))
    }

    fn clear_tail(&mut self) {
        let rem = self.len % 64;
        if rem != 0
            && let Some(last) = self.words.last_mut()
        {
            *last &= (1u64 << rem) - 1;
        }
    }
}
