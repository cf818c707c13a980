//! Zero-copy typed views over columns in linear memory.
//!
//! A view borrows the [`Batch`](crate::Batch) it came from; nothing is copied. Every view has
//! `len()`, `null_count()`, `is_valid(i)`, `is_null(i)`, `validity()` (the bitmap, `None` when
//! the column has no nulls) and `get(i) -> Option<_>` (`None` for a null row).

use weir_abi::TimeUnit;

use crate::bitmap::Bitmap;
use crate::types::NativeType;

/// Validity shared by every view.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Nulls<'a> {
    pub(crate) validity: Option<Bitmap<'a>>,
    pub(crate) null_count: usize,
}

impl Nulls<'_> {
    #[inline]
    fn is_valid(&self, i: usize) -> bool {
        self.validity.is_none_or(|v| v.get(i))
    }
}

macro_rules! nulls_api {
    () => {
        /// Number of null rows.
        #[must_use]
        pub fn null_count(&self) -> usize {
            self.nulls.null_count
        }

        /// The validity bitmap (bit set = value present), or `None` when there are no nulls.
        #[must_use]
        pub fn validity(&self) -> Option<Bitmap<'a>> {
            self.nulls.validity
        }

        /// Whether row `i` holds a value.
        ///
        /// # Panics
        /// When `i >= len()`.
        #[inline]
        #[must_use]
        pub fn is_valid(&self, i: usize) -> bool {
            assert!(
                i < self.len(),
                "row {i} out of range for {} rows",
                self.len()
            );
            self.nulls.is_valid(i)
        }

        /// Whether row `i` is null.
        ///
        /// # Panics
        /// When `i >= len()`.
        #[inline]
        #[must_use]
        pub fn is_null(&self, i: usize) -> bool {
            !self.is_valid(i)
        }

        /// Whether the column has no rows.
        #[must_use]
        pub fn is_empty(&self) -> bool {
            self.len() == 0
        }
    };
}

/// A view of an integer, float or Date32 column: `values()` is the raw `&[T]` (null rows hold
/// unspecified values), for loops the compiler can vectorize.
#[derive(Clone, Copy, Debug)]
pub struct PrimitiveView<'a, T> {
    pub(crate) values: &'a [T],
    pub(crate) nulls: Nulls<'a>,
}

impl<'a, T: NativeType> PrimitiveView<'a, T> {
    /// A view over `values` with an optional validity bitmap, e.g. for tests.
    ///
    /// # Panics
    /// When the bitmap's length differs from the values'.
    #[must_use]
    pub fn new(values: &'a [T], validity: Option<Bitmap<'a>>) -> Self {
        if let Some(v) = validity {
            assert_eq!(v.len(), values.len(), "validity length differs");
        }
        let null_count = validity.map_or(0, |v| v.len() - v.count_ones());
        Self {
            values,
            nulls: Nulls {
                validity,
                null_count,
            },
        }
    }

    /// Number of rows.
    #[must_use]
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// The raw values, one per row (null rows hold unspecified values).
    #[must_use]
    pub fn values(&self) -> &'a [T] {
        self.values
    }

    /// Row `i`, or `None` when it is null.
    ///
    /// # Panics
    /// When `i >= len()`.
    #[inline]
    #[must_use]
    pub fn get(&self, i: usize) -> Option<T> {
        let v = self.values[i];
        self.nulls.is_valid(i).then_some(v)
    }

    /// Iterates over the rows.
    pub fn iter(&self) -> impl Iterator<Item = Option<T>> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    nulls_api!();
}

/// A view of a `timestamp(UNIT[, TZ])` column: an `i64` [`PrimitiveView`] (it derefs to one)
/// plus the unit and the declared time zone.
#[derive(Clone, Copy, Debug)]
pub struct TimestampView<'a> {
    pub(crate) inner: PrimitiveView<'a, i64>,
    pub(crate) unit: TimeUnit,
    pub(crate) tz: Option<&'a str>,
}

impl<'a> TimestampView<'a> {
    /// The unit of the values.
    #[must_use]
    pub fn unit(&self) -> TimeUnit {
        self.unit
    }

    /// The time zone from the declaration, e.g. `UTC` in `timestamp(us, UTC)`.
    #[must_use]
    pub fn tz(&self) -> Option<&'a str> {
        self.tz
    }

    /// The `i64` values as a primitive view.
    #[must_use]
    pub fn as_primitive(&self) -> PrimitiveView<'a, i64> {
        self.inner
    }
}

impl<'a> std::ops::Deref for TimestampView<'a> {
    type Target = PrimitiveView<'a, i64>;
    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

/// A view of a `boolean` column (values are bit-packed).
#[derive(Clone, Copy, Debug)]
pub struct BooleanView<'a> {
    pub(crate) values: Bitmap<'a>,
    pub(crate) nulls: Nulls<'a>,
}

impl<'a> BooleanView<'a> {
    /// Number of rows.
    #[must_use]
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// The values bitmap (null rows hold unspecified bits).
    #[must_use]
    pub fn values(&self) -> Bitmap<'a> {
        self.values
    }

    /// Row `i`, or `None` when it is null.
    ///
    /// # Panics
    /// When `i >= len()`.
    #[inline]
    #[must_use]
    pub fn get(&self, i: usize) -> Option<bool> {
        let v = self.values.get(i);
        self.nulls.is_valid(i).then_some(v)
    }

    /// Iterates over the rows.
    pub fn iter(&self) -> impl Iterator<Item = Option<bool>> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    nulls_api!();
}

macro_rules! var_view {
    ($(#[$doc:meta])* $name:ident, $item:ty, $conv:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug)]
        pub struct $name<'a> {
            pub(crate) offsets: &'a [i32],
            pub(crate) data: &'a [u8],
            pub(crate) nulls: Nulls<'a>,
        }

        impl<'a> $name<'a> {
            /// Number of rows.
            #[must_use]
            pub fn len(&self) -> usize {
                self.offsets.len() - 1
            }

            /// The `len() + 1` offsets into [`data`](Self::data); row `i` is
            /// `data[offsets[i]..offsets[i + 1]]`.
            #[must_use]
            pub fn offsets(&self) -> &'a [i32] {
                self.offsets
            }

            /// All rows' bytes, back to back.
            #[must_use]
            pub fn data(&self) -> &'a [u8] {
                self.data
            }

            /// Row `i` ignoring validity (a null row is usually empty).
            ///
            /// # Panics
            /// When `i >= len()`.
            #[inline]
            #[must_use]
            pub fn value(&self, i: usize) -> &'a $item {
                let start = self.offsets[i] as usize;
                let end = self.offsets[i + 1] as usize;
                let conv: fn(&'a [u8]) -> &'a $item = $conv;
                conv(&self.data[start..end])
            }

            /// Row `i`, or `None` when it is null.
            ///
            /// # Panics
            /// When `i >= len()`.
            #[inline]
            #[must_use]
            pub fn get(&self, i: usize) -> Option<&'a $item> {
                let v = self.value(i);
                self.nulls.is_valid(i).then_some(v)
            }

            /// Iterates over the rows.
            pub fn iter(&self) -> impl Iterator<Item = Option<&'a $item>> + '_ {
                (0..self.len()).map(|i| self.get(i))
            }

            nulls_api!();
        }
    };
}

var_view!(
    /// A view of a `utf8` column: `get(i)` gives `Option<&str>`.
    Utf8View,
    str,
    |bytes| {
        // SAFETY: the batch checked when it was built that the data is valid UTF-8 and that
        // every offset falls on a character boundary, so every row slice is valid UTF-8.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }
);

var_view!(
    /// A view of a `binary` column: `get(i)` gives `Option<&[u8]>`.
    BinaryView,
    [u8],
    |bytes| bytes
);

/// A view of a `fixed_size_binary(W)` column: `get(i)` gives `Option<&[u8]>` of `width()` bytes.
#[derive(Clone, Copy, Debug)]
pub struct FixedSizeBinaryView<'a> {
    pub(crate) width: usize,
    pub(crate) len: usize,
    pub(crate) data: &'a [u8],
    pub(crate) nulls: Nulls<'a>,
}

impl<'a> FixedSizeBinaryView<'a> {
    /// Number of rows.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Bytes per value.
    #[must_use]
    pub fn width(&self) -> usize {
        self.width
    }

    /// All values back to back (`len() * width()` bytes).
    #[must_use]
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Row `i` ignoring validity.
    ///
    /// # Panics
    /// When `i >= len()`.
    #[inline]
    #[must_use]
    pub fn value(&self, i: usize) -> &'a [u8] {
        assert!(i < self.len, "row {i} out of range for {} rows", self.len);
        &self.data[i * self.width..(i + 1) * self.width]
    }

    /// Row `i`, or `None` when it is null.
    ///
    /// # Panics
    /// When `i >= len()`.
    #[inline]
    #[must_use]
    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        let v = self.value(i);
        self.nulls.is_valid(i).then_some(v)
    }

    /// Iterates over the rows.
    pub fn iter(&self) -> impl Iterator<Item = Option<&'a [u8]>> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    nulls_api!();
}
