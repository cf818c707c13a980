//! Builders for output columns, producing exactly the ABI layout.
//!
//! Every builder has `new()`/`with_capacity(n)`, `append_value`, `append_null`,
//! `append_option`, `len()` and `finish() -> Column`; a builder converts into a [`Column`] with
//! `.into()` too, so it can be passed straight to [`Output::with`](crate::Output::with).
//! A column built without nulls carries no validity bitmap.

use std::fmt;

use weir_abi::{TimeUnit, TypeId};

use crate::bitmap::{BitmapBuilder, NullsBuilder};
use crate::error::{Error, Result};
use crate::types::{NativeType, as_bytes};

/// A values buffer of some native type, kept in its own `Vec` (so it is aligned for its type).
///
/// Deliberately not `Debug`: a `Debug` supertrait would put `<Vec<f64> as Debug>::fmt` in every
/// module's vtables and with it core's float formatting (~25 KB of wasm).
trait Buf {
    fn bytes(&self) -> &[u8];
}

impl<T: NativeType> Buf for Vec<T> {
    fn bytes(&self) -> &[u8] {
        as_bytes(self)
    }
}

/// A finished output column in the ABI's physical layout (see ABI.md §5): exact bitmap and buffer
/// lengths, offsets starting at 0.
pub struct Column {
    pub(crate) id: TypeId,
    pub(crate) unit: Option<TimeUnit>,
    pub(crate) width: u32,
    pub(crate) len: usize,
    pub(crate) null_count: usize,
    pub(crate) validity: Option<Vec<u8>>,
    pub(crate) offsets: Option<Vec<i32>>,
    values: Box<dyn Buf>,
}

impl fmt::Debug for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The values are summarized by their size: see `Buf`.
        f.debug_struct("Column")
            .field("id", &self.id)
            .field("unit", &self.unit)
            .field("width", &self.width)
            .field("len", &self.len)
            .field("null_count", &self.null_count)
            .field("validity", &self.validity)
            .field("offsets", &self.offsets)
            .field("value_bytes", &self.values.bytes().len())
            .finish()
    }
}

impl Column {
    /// The column type.
    #[must_use]
    pub fn type_id(&self) -> TypeId {
        self.id
    }

    /// The unit of a Timestamp column.
    #[must_use]
    pub fn time_unit(&self) -> Option<TimeUnit> {
        self.unit
    }

    /// Bytes per value of a FixedSizeBinary column, else 0.
    #[must_use]
    pub fn byte_width(&self) -> u32 {
        self.width
    }

    /// Number of rows.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the column has no rows.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of nulls.
    #[must_use]
    pub fn null_count(&self) -> usize {
        self.null_count
    }

    /// The validity bitmap, `ceil(len/8)` bytes; `None` when there are no nulls.
    #[must_use]
    pub fn validity_bytes(&self) -> Option<&[u8]> {
        self.validity.as_deref()
    }

    /// The `len + 1` offsets of a Utf8 or Binary column.
    #[must_use]
    pub fn offsets(&self) -> Option<&[i32]> {
        self.offsets.as_deref()
    }

    /// The values buffer as bytes.
    #[must_use]
    pub fn values_bytes(&self) -> &[u8] {
        self.values.bytes()
    }
}

/// Builds a column of `int*`, `uint*`, `float*` values; also the storage of
/// [`TimestampBuilder`] and [`Date32Builder`].
#[derive(Debug, Clone)]
pub struct PrimitiveBuilder<T> {
    id: TypeId,
    unit: Option<TimeUnit>,
    values: Vec<T>,
    nulls: NullsBuilder,
}

impl<T: NativeType> Default for PrimitiveBuilder<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: NativeType> PrimitiveBuilder<T> {
    /// An empty builder for `T`'s natural column type (`f64` → `float64`, …).
    #[must_use]
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty builder with room for `rows` values.
    #[must_use]
    pub fn with_capacity(rows: usize) -> Self {
        Self {
            id: T::TYPE_ID,
            unit: None,
            values: Vec::with_capacity(rows),
            nulls: NullsBuilder::default(),
        }
    }

    /// A column of these values, none null.
    #[must_use]
    pub fn from_values(values: Vec<T>) -> Self {
        let mut b = Self::new();
        b.nulls.append_n_valid(values.len());
        b.values = values;
        b
    }

    /// Appends a value.
    #[inline]
    pub fn append_value(&mut self, v: T) {
        self.values.push(v);
        self.nulls.append(true);
    }

    /// Appends a null (the value slot holds `T::default()`).
    #[inline]
    pub fn append_null(&mut self) {
        self.values.push(T::default());
        self.nulls.append(false);
    }

    /// Appends `Some(value)` or a null.
    #[inline]
    pub fn append_option(&mut self, v: Option<T>) {
        match v {
            Some(v) => self.append_value(v),
            None => self.append_null(),
        }
    }

    /// Appends values, none null.
    pub fn append_slice(&mut self, values: &[T]) {
        self.values.extend_from_slice(values);
        self.nulls.append_n_valid(values.len());
    }

    /// Rows appended so far.
    #[must_use]
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether nothing was appended.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The finished column; the builder is left empty.
    pub fn finish(&mut self) -> Column {
        let values = std::mem::take(&mut self.values);
        let (validity, null_count) = self.nulls.finish();
        Column {
            id: self.id,
            unit: self.unit,
            width: 0,
            len: values.len(),
            null_count,
            validity,
            offsets: None,
            values: Box::new(values),
        }
    }
}

impl<T: NativeType> FromIterator<Option<T>> for PrimitiveBuilder<T> {
    fn from_iter<I: IntoIterator<Item = Option<T>>>(iter: I) -> Self {
        let iter = iter.into_iter();
        let mut b = Self::with_capacity(iter.size_hint().0);
        for v in iter {
            b.append_option(v);
        }
        b
    }
}

impl<T: NativeType> From<PrimitiveBuilder<T>> for Column {
    fn from(mut b: PrimitiveBuilder<T>) -> Self {
        b.finish()
    }
}

/// Builder of `int8` columns.
pub type Int8Builder = PrimitiveBuilder<i8>;
/// Builder of `int16` columns.
pub type Int16Builder = PrimitiveBuilder<i16>;
/// Builder of `int32` columns.
pub type Int32Builder = PrimitiveBuilder<i32>;
/// Builder of `int64` columns.
pub type Int64Builder = PrimitiveBuilder<i64>;
/// Builder of `uint8` columns.
pub type UInt8Builder = PrimitiveBuilder<u8>;
/// Builder of `uint16` columns.
pub type UInt16Builder = PrimitiveBuilder<u16>;
/// Builder of `uint32` columns.
pub type UInt32Builder = PrimitiveBuilder<u32>;
/// Builder of `uint64` columns.
pub type UInt64Builder = PrimitiveBuilder<u64>;
/// Builder of `float32` columns.
pub type Float32Builder = PrimitiveBuilder<f32>;
/// Builder of `float64` columns.
pub type Float64Builder = PrimitiveBuilder<f64>;

macro_rules! wrapper_builder {
    ($(#[$doc:meta])* $name:ident, $t:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name(PrimitiveBuilder<$t>);

        impl std::ops::Deref for $name {
            type Target = PrimitiveBuilder<$t>;
            fn deref(&self) -> &Self::Target {
                &self.0
            }
        }

        impl std::ops::DerefMut for $name {
            fn deref_mut(&mut self) -> &mut Self::Target {
                &mut self.0
            }
        }

        impl From<$name> for Column {
            fn from(mut b: $name) -> Self {
                b.0.finish()
            }
        }
    };
}

wrapper_builder!(
    /// Builds a `timestamp(UNIT[, TZ])` column of `i64` values in `unit`. It derefs to a
    /// [`PrimitiveBuilder<i64>`] for `append_value`, `append_null`, `finish`, ….
    TimestampBuilder,
    i64
);

impl TimestampBuilder {
    /// An empty builder for values in `unit`. (The time zone is not part of the data; it comes
    /// from the `writes` declaration.)
    #[must_use]
    pub fn new(unit: TimeUnit) -> Self {
        Self::with_capacity(unit, 0)
    }

    /// An empty builder with room for `rows` values.
    #[must_use]
    pub fn with_capacity(unit: TimeUnit, rows: usize) -> Self {
        let mut b = PrimitiveBuilder::with_capacity(rows);
        b.id = TypeId::Timestamp;
        b.unit = Some(unit);
        Self(b)
    }
}

wrapper_builder!(
    /// Builds a `date32` column (`i32` days since 1970-01-01). It derefs to a
    /// [`PrimitiveBuilder<i32>`] for `append_value`, `append_null`, `finish`, ….
    Date32Builder,
    i32
);

impl Default for Date32Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Date32Builder {
    /// An empty builder.
    #[must_use]
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty builder with room for `rows` values.
    #[must_use]
    pub fn with_capacity(rows: usize) -> Self {
        let mut b = PrimitiveBuilder::with_capacity(rows);
        b.id = TypeId::Date32;
        Self(b)
    }
}

/// Builds a `boolean` column.
#[derive(Debug, Clone, Default)]
pub struct BooleanBuilder {
    values: BitmapBuilder,
    nulls: NullsBuilder,
}

impl BooleanBuilder {
    /// An empty builder.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty builder with room for `rows` values.
    #[must_use]
    pub fn with_capacity(rows: usize) -> Self {
        Self {
            values: BitmapBuilder::with_capacity(rows),
            nulls: NullsBuilder::default(),
        }
    }

    /// Appends a value.
    #[inline]
    pub fn append_value(&mut self, v: bool) {
        self.values.push(v);
        self.nulls.append(true);
    }

    /// Appends a null (its value bit is 0).
    #[inline]
    pub fn append_null(&mut self) {
        self.values.push(false);
        self.nulls.append(false);
    }

    /// Appends `Some(value)` or a null.
    #[inline]
    pub fn append_option(&mut self, v: Option<bool>) {
        match v {
            Some(v) => self.append_value(v),
            None => self.append_null(),
        }
    }

    /// Rows appended so far.
    #[must_use]
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether nothing was appended.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The finished column; the builder is left empty.
    pub fn finish(&mut self) -> Column {
        let len = self.values.len();
        let values = self.values.finish();
        let (validity, null_count) = self.nulls.finish();
        Column {
            id: TypeId::Boolean,
            unit: None,
            width: 0,
            len,
            null_count,
            validity,
            offsets: None,
            values: Box::new(values),
        }
    }
}

impl From<BooleanBuilder> for Column {
    fn from(mut b: BooleanBuilder) -> Self {
        b.finish()
    }
}

impl FromIterator<Option<bool>> for BooleanBuilder {
    fn from_iter<I: IntoIterator<Item = Option<bool>>>(iter: I) -> Self {
        let mut b = Self::new();
        for v in iter {
            b.append_option(v);
        }
        b
    }
}

macro_rules! var_builder {
    ($(#[$doc:meta])* $name:ident, $item:ty, $id:ident, $bytes:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name {
            offsets: Vec<i32>,
            data: Vec<u8>,
            nulls: NullsBuilder,
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl $name {
            /// An empty builder.
            #[must_use]
            pub fn new() -> Self {
                Self::with_capacity(0, 0)
            }

            /// An empty builder with room for `rows` values of `bytes` bytes in total.
            #[must_use]
            pub fn with_capacity(rows: usize, bytes: usize) -> Self {
                let mut offsets = Vec::with_capacity(rows + 1);
                offsets.push(0);
                Self {
                    offsets,
                    data: Vec::with_capacity(bytes),
                    nulls: NullsBuilder::default(),
                }
            }

            /// Appends a value.
            ///
            /// # Panics
            /// When the column's data would exceed `i32::MAX` bytes (the ABI's `i32` offsets).
            #[inline]
            pub fn append_value(&mut self, v: impl AsRef<$item>) {
                let bytes: fn(&$item) -> &[u8] = $bytes;
                self.data.extend_from_slice(bytes(v.as_ref()));
                let end = i32::try_from(self.data.len()).expect("column data over 2 GiB");
                self.offsets.push(end);
                self.nulls.append(true);
            }

            /// Appends a null (an empty slot).
            #[inline]
            pub fn append_null(&mut self) {
                let last = *self.offsets.last().unwrap_or(&0);
                self.offsets.push(last);
                self.nulls.append(false);
            }

            /// Appends `Some(value)` or a null.
            #[inline]
            pub fn append_option(&mut self, v: Option<impl AsRef<$item>>) {
                match v {
                    Some(v) => self.append_value(v),
                    None => self.append_null(),
                }
            }

            /// Rows appended so far.
            #[must_use]
            pub fn len(&self) -> usize {
                self.offsets.len() - 1
            }

            /// Whether nothing was appended.
            #[must_use]
            pub fn is_empty(&self) -> bool {
                self.len() == 0
            }

            /// The finished column; the builder is left empty.
            pub fn finish(&mut self) -> Column {
                let offsets = std::mem::replace(&mut self.offsets, vec![0]);
                let data = std::mem::take(&mut self.data);
                let (validity, null_count) = self.nulls.finish();
                Column {
                    id: TypeId::$id,
                    unit: None,
                    width: 0,
                    len: offsets.len() - 1,
                    null_count,
                    validity,
                    offsets: Some(offsets),
                    values: Box::new(data),
                }
            }
        }

        impl From<$name> for Column {
            fn from(mut b: $name) -> Self {
                b.finish()
            }
        }

        impl<S: AsRef<$item>> FromIterator<Option<S>> for $name {
            fn from_iter<I: IntoIterator<Item = Option<S>>>(iter: I) -> Self {
                let mut b = Self::new();
                for v in iter {
                    b.append_option(v);
                }
                b
            }
        }
    };
}

var_builder!(
    /// Builds a `utf8` column.
    Utf8Builder,
    str,
    Utf8,
    str::as_bytes
);

var_builder!(
    /// Builds a `binary` column.
    BinaryBuilder,
    [u8],
    Binary,
    |b| b
);

/// Same as [`Utf8Builder`].
pub type StringBuilder = Utf8Builder;

/// Builds a `fixed_size_binary(W)` column.
#[derive(Debug, Clone)]
pub struct FixedSizeBinaryBuilder {
    width: usize,
    data: Vec<u8>,
    nulls: NullsBuilder,
    len: usize,
}

impl FixedSizeBinaryBuilder {
    /// An empty builder of `width`-byte values.
    #[must_use]
    pub fn new(width: usize) -> Self {
        Self::with_capacity(width, 0)
    }

    /// An empty builder with room for `rows` values.
    #[must_use]
    pub fn with_capacity(width: usize, rows: usize) -> Self {
        Self {
            width,
            data: Vec::with_capacity(width * rows),
            nulls: NullsBuilder::default(),
            len: 0,
        }
    }

    /// Bytes per value.
    #[must_use]
    pub fn width(&self) -> usize {
        self.width
    }

    /// Appends a value.
    ///
    /// # Errors
    /// When `v` is not `width()` bytes long.
    pub fn append_value(&mut self, v: impl AsRef<[u8]>) -> Result<()> {
        let v = v.as_ref();
        if v.len() != self.width {
            return Err(Error::new(format!(
                "fixed_size_binary({}) value of {} bytes",
                self.width,
                v.len()
            )));
        }
        self.data.extend_from_slice(v);
        self.nulls.append(true);
        self.len += 1;
        Ok(())
    }

    /// Appends a null (`width()` zero bytes).
    pub fn append_null(&mut self) {
        self.data.resize(self.data.len() + self.width, 0);
        self.nulls.append(false);
        self.len += 1;
    }

    /// Appends `Some(value)` or a null.
    ///
    /// # Errors
    /// When a value is not `width()` bytes long.
    pub fn append_option(&mut self, v: Option<impl AsRef<[u8]>>) -> Result<()> {
        match v {
            Some(v) => self.append_value(v),
            None => {
                self.append_null();
                Ok(())
            }
        }
    }

    /// Rows appended so far.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was appended.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The finished column; the builder is left empty.
    ///
    /// # Panics
    /// When the width does not fit in a `u32`.
    pub fn finish(&mut self) -> Column {
        let data = std::mem::take(&mut self.data);
        let (validity, null_count) = self.nulls.finish();
        let len = std::mem::take(&mut self.len);
        Column {
            id: TypeId::FixedSizeBinary,
            unit: None,
            width: u32::try_from(self.width).expect("width over u32"),
            len,
            null_count,
            validity,
            offsets: None,
            values: Box::new(data),
        }
    }
}

impl From<FixedSizeBinaryBuilder> for Column {
    fn from(mut b: FixedSizeBinaryBuilder) -> Self {
        b.finish()
    }
}
