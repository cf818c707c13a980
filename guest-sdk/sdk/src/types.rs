//! Column types: the native value types and one marker type per ABI column type, used with
//! [`Batch::column`](crate::Batch::column).

use std::fmt::Debug;

use weir_abi::TypeId;

use crate::batch::RawColumn;
use crate::view::{
    BinaryView, BooleanView, FixedSizeBinaryView, PrimitiveView, TimestampView, Utf8View,
};

pub(crate) mod sealed {
    pub trait Sealed {}
}

/// A fixed-width value type stored as a plain little-endian array: `i8`..`i64`, `u8`..`u64`,
/// `f32`, `f64`.
pub trait NativeType:
    sealed::Sealed + Copy + Default + PartialEq + PartialOrd + Debug + Send + Sync + 'static
{
    /// The column type this value type is written as by default (`i32` → `int32`, …).
    const TYPE_ID: TypeId;
}

macro_rules! native {
    ($($t:ty => $id:ident),*) => {$(
        impl sealed::Sealed for $t {}
        impl NativeType for $t {
            const TYPE_ID: TypeId = TypeId::$id;
        }
    )*};
}
native!(i8 => Int8, i16 => Int16, i32 => Int32, i64 => Int64, u8 => UInt8, u16 => UInt16,
    u32 => UInt32, u64 => UInt64, f32 => Float32, f64 => Float64);

/// The bytes of a slice of native values.
pub(crate) fn as_bytes<T: NativeType>(values: &[T]) -> &[u8] {
    // SAFETY: every `NativeType` is a primitive integer or float: no padding, every byte
    // initialized, and `u8` has alignment 1. The length is the slice's size in bytes.
    unsafe { std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), size_of_val(values)) }
}

/// A column type, naming the view [`Batch::column`](crate::Batch::column) returns for it.
///
/// The marker types are [`Boolean`], [`Int8`] … [`UInt64`], [`Float32`], [`Float64`], [`Utf8`],
/// [`Binary`], [`FixedSizeBinary`], [`Timestamp`] and [`Date32`].
pub trait ColumnType: sealed::Sealed {
    /// The zero-copy view of a column of this type.
    type View<'a>;
    /// The type id.
    const ID: TypeId;
    #[doc(hidden)]
    fn view(raw: &RawColumn) -> Self::View<'_>;
}

macro_rules! primitive_marker {
    ($($name:ident => $t:ty),*) => {$(
        #[doc = concat!("Marker for `", stringify!($name), "` columns (values are `", stringify!($t), "`).")]
        #[derive(Debug, Clone, Copy)]
        pub struct $name;
        impl sealed::Sealed for $name {}
        impl ColumnType for $name {
            type View<'a> = PrimitiveView<'a, $t>;
            const ID: TypeId = TypeId::$name;
            fn view(raw: &RawColumn) -> Self::View<'_> {
                raw.primitive_view::<$t>()
            }
        }
    )*};
}
primitive_marker!(Int8 => i8, Int16 => i16, Int32 => i32, Int64 => i64, UInt8 => u8,
    UInt16 => u16, UInt32 => u32, UInt64 => u64, Float32 => f32, Float64 => f64, Date32 => i32);

/// Marker for `boolean` columns.
#[derive(Debug, Clone, Copy)]
pub struct Boolean;
impl sealed::Sealed for Boolean {}
impl ColumnType for Boolean {
    type View<'a> = BooleanView<'a>;
    const ID: TypeId = TypeId::Boolean;
    fn view(raw: &RawColumn) -> Self::View<'_> {
        raw.boolean_view()
    }
}

/// Marker for `utf8` columns.
#[derive(Debug, Clone, Copy)]
pub struct Utf8;
impl sealed::Sealed for Utf8 {}
impl ColumnType for Utf8 {
    type View<'a> = Utf8View<'a>;
    const ID: TypeId = TypeId::Utf8;
    fn view(raw: &RawColumn) -> Self::View<'_> {
        raw.utf8_view()
    }
}

/// Marker for `binary` columns.
#[derive(Debug, Clone, Copy)]
pub struct Binary;
impl sealed::Sealed for Binary {}
impl ColumnType for Binary {
    type View<'a> = BinaryView<'a>;
    const ID: TypeId = TypeId::Binary;
    fn view(raw: &RawColumn) -> Self::View<'_> {
        raw.binary_view()
    }
}

/// Marker for `fixed_size_binary(W)` columns.
#[derive(Debug, Clone, Copy)]
pub struct FixedSizeBinary;
impl sealed::Sealed for FixedSizeBinary {}
impl ColumnType for FixedSizeBinary {
    type View<'a> = FixedSizeBinaryView<'a>;
    const ID: TypeId = TypeId::FixedSizeBinary;
    fn view(raw: &RawColumn) -> Self::View<'_> {
        raw.fixed_size_binary_view()
    }
}

/// Marker for `timestamp(UNIT[, TZ])` columns.
#[derive(Debug, Clone, Copy)]
pub struct Timestamp;
impl sealed::Sealed for Timestamp {}
impl ColumnType for Timestamp {
    type View<'a> = TimestampView<'a>;
    const ID: TypeId = TypeId::Timestamp;
    fn view(raw: &RawColumn) -> Self::View<'_> {
        raw.timestamp_view()
    }
}
