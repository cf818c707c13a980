//! Conversions between the SDK's types and arrow-rs (feature `arrow`, off by default).
//!
//! These copy: the point of the default SDK is zero-copy views without arrow-rs in the module.
//! Use them when you want arrow-rs's compute kernels and accept a module of 1–2 MB.
//!
//! ```no_run
//! # use weir_sdk::prelude::*;
//! fn via_arrow(batch: &Batch) -> Result<Output> {
//!     let rb = weir_sdk::arrow::to_record_batch(batch)?;
//!     // ... arrow-rs kernels over `rb` ...
//!     weir_sdk::arrow::to_output(&rb)
//! }
//! ```

use std::sync::Arc;

use arrow_array::types::{
    Date32Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{
    Array, ArrayRef, ArrowPrimitiveType, BinaryArray, BooleanArray, FixedSizeBinaryArray,
    PrimitiveArray, RecordBatch, RecordBatchOptions, StringArray,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit as ArrowUnit};

use crate::batch::{Batch, RawColumn};
use crate::builder::{
    BinaryBuilder, BooleanBuilder, Column, FixedSizeBinaryBuilder, PrimitiveBuilder,
    TimestampBuilder, Utf8Builder,
};
use crate::error::{Error, Result};
use crate::output::Output;
use crate::types::NativeType;
use crate::{Date32Builder, TimeUnit, TypeId};

fn prim<A: ArrowPrimitiveType>(raw: &RawColumn) -> PrimitiveArray<A>
where
    A::Native: NativeType,
{
    raw.primitive_view::<A::Native>().iter().collect()
}

fn to_array(raw: &RawColumn) -> Result<ArrayRef> {
    Ok(match raw.id {
        TypeId::Boolean => Arc::new(raw.boolean_view().iter().collect::<BooleanArray>()),
        TypeId::Int8 => Arc::new(prim::<Int8Type>(raw)),
        TypeId::Int16 => Arc::new(prim::<Int16Type>(raw)),
        TypeId::Int32 => Arc::new(prim::<Int32Type>(raw)),
        TypeId::Int64 => Arc::new(prim::<Int64Type>(raw)),
        TypeId::UInt8 => Arc::new(prim::<UInt8Type>(raw)),
        TypeId::UInt16 => Arc::new(prim::<UInt16Type>(raw)),
        TypeId::UInt32 => Arc::new(prim::<UInt32Type>(raw)),
        TypeId::UInt64 => Arc::new(prim::<UInt64Type>(raw)),
        TypeId::Float32 => Arc::new(prim::<Float32Type>(raw)),
        TypeId::Float64 => Arc::new(prim::<Float64Type>(raw)),
        TypeId::Date32 => Arc::new(prim::<Date32Type>(raw)),
        TypeId::Utf8 => Arc::new(raw.utf8_view().iter().collect::<StringArray>()),
        TypeId::Binary => Arc::new(raw.binary_view().iter().collect::<BinaryArray>()),
        TypeId::FixedSizeBinary => {
            let v = raw.fixed_size_binary_view();
            let width = i32::try_from(v.width()).map_err(|_| Error::new("width over i32"))?;
            Arc::new(
                FixedSizeBinaryArray::try_from_sparse_iter_with_size(v.iter(), width)
                    .map_err(|e| Error::new(e.to_string()))?,
            )
        }
        TypeId::Timestamp => {
            let v = raw.timestamp_view();
            let tz: Option<Arc<str>> = v.tz().map(Arc::from);
            match v.unit() {
                TimeUnit::Second => Arc::new(
                    v.iter()
                        .collect::<PrimitiveArray<TimestampSecondType>>()
                        .with_timezone_opt(tz),
                ),
                TimeUnit::Millisecond => Arc::new(
                    v.iter()
                        .collect::<PrimitiveArray<TimestampMillisecondType>>()
                        .with_timezone_opt(tz),
                ),
                TimeUnit::Microsecond => Arc::new(
                    v.iter()
                        .collect::<PrimitiveArray<TimestampMicrosecondType>>()
                        .with_timezone_opt(tz),
                ),
                TimeUnit::Nanosecond => Arc::new(
                    v.iter()
                        .collect::<PrimitiveArray<TimestampNanosecondType>>()
                        .with_timezone_opt(tz),
                ),
            }
        }
    })
}

/// Copies the batch's present columns into a `RecordBatch` (absent optional columns are left
/// out; every field is nullable).
///
/// # Errors
/// When arrow-rs refuses the columns.
pub fn to_record_batch(batch: &Batch) -> Result<RecordBatch> {
    let mut fields = Vec::new();
    let mut arrays = Vec::new();
    for raw in batch.columns.iter().filter(|c| c.present) {
        let array = to_array(raw)?;
        fields.push(Field::new(&*raw.name, array.data_type().clone(), true));
        arrays.push(array);
    }
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), arrays, &options)
        .map_err(|e| Error::new(e.to_string()))
}

fn from_prim<A: ArrowPrimitiveType>(a: &dyn Array, b: PrimitiveBuilder<A::Native>) -> Column
where
    A::Native: NativeType,
{
    let mut b = b;
    let a = a
        .as_any()
        .downcast_ref::<PrimitiveArray<A>>()
        .expect("matched on the data type");
    a.iter().for_each(|v| b.append_option(v));
    b.finish()
}

fn downcast<T: 'static>(a: &dyn Array) -> &T {
    a.as_any()
        .downcast_ref::<T>()
        .expect("matched on the data type")
}

/// Converts one arrow array into an output [`Column`].
///
/// # Errors
/// When the array's type has no ABI equivalent.
pub fn to_column(a: &dyn Array) -> Result<Column> {
    Ok(match a.data_type() {
        DataType::Boolean => downcast::<BooleanArray>(a)
            .iter()
            .collect::<BooleanBuilder>()
            .into(),
        DataType::Int8 => from_prim::<Int8Type>(a, PrimitiveBuilder::new()),
        DataType::Int16 => from_prim::<Int16Type>(a, PrimitiveBuilder::new()),
        DataType::Int32 => from_prim::<Int32Type>(a, PrimitiveBuilder::new()),
        DataType::Int64 => from_prim::<Int64Type>(a, PrimitiveBuilder::new()),
        DataType::UInt8 => from_prim::<UInt8Type>(a, PrimitiveBuilder::new()),
        DataType::UInt16 => from_prim::<UInt16Type>(a, PrimitiveBuilder::new()),
        DataType::UInt32 => from_prim::<UInt32Type>(a, PrimitiveBuilder::new()),
        DataType::UInt64 => from_prim::<UInt64Type>(a, PrimitiveBuilder::new()),
        DataType::Float32 => from_prim::<Float32Type>(a, PrimitiveBuilder::new()),
        DataType::Float64 => from_prim::<Float64Type>(a, PrimitiveBuilder::new()),
        DataType::Date32 => {
            let mut b = Date32Builder::new();
            downcast::<PrimitiveArray<Date32Type>>(a)
                .iter()
                .for_each(|v| b.append_option(v));
            b.into()
        }
        DataType::Utf8 => downcast::<StringArray>(a)
            .iter()
            .collect::<Utf8Builder>()
            .into(),
        DataType::Binary => downcast::<BinaryArray>(a)
            .iter()
            .collect::<BinaryBuilder>()
            .into(),
        DataType::FixedSizeBinary(w) => {
            let a = downcast::<FixedSizeBinaryArray>(a);
            let mut b = FixedSizeBinaryBuilder::with_capacity(*w as usize, a.len());
            for v in a.iter() {
                b.append_option(v)?;
            }
            b.into()
        }
        DataType::Timestamp(unit, _) => {
            let (unit, values): (TimeUnit, Vec<Option<i64>>) = match unit {
                ArrowUnit::Second => (
                    TimeUnit::Second,
                    downcast::<PrimitiveArray<TimestampSecondType>>(a)
                        .iter()
                        .collect(),
                ),
                ArrowUnit::Millisecond => (
                    TimeUnit::Millisecond,
                    downcast::<PrimitiveArray<TimestampMillisecondType>>(a)
                        .iter()
                        .collect(),
                ),
                ArrowUnit::Microsecond => (
                    TimeUnit::Microsecond,
                    downcast::<PrimitiveArray<TimestampMicrosecondType>>(a)
                        .iter()
                        .collect(),
                ),
                ArrowUnit::Nanosecond => (
                    TimeUnit::Nanosecond,
                    downcast::<PrimitiveArray<TimestampNanosecondType>>(a)
                        .iter()
                        .collect(),
                ),
            };
            let mut b = TimestampBuilder::with_capacity(unit, values.len());
            values.into_iter().for_each(|v| b.append_option(v));
            b.into()
        }
        other => {
            return Err(Error::new(format!(
                "arrow type {other} has no ABI equivalent"
            )));
        }
    })
}

/// Converts every column of `rb` into an [`Output`] column of the same name.
///
/// # Errors
/// When a column's type has no ABI equivalent.
pub fn to_output(rb: &RecordBatch) -> Result<Output> {
    let mut out = Output::new();
    for (field, array) in rb.schema().fields().iter().zip(rb.columns()) {
        out.push(field.name().clone(), to_column(array.as_ref())?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::*;

    #[test]
    fn round_trips_through_arrow() {
        let batch = Batch::from_columns(vec![
            (
                "f",
                [Some(1.5), None]
                    .into_iter()
                    .collect::<Float64Builder>()
                    .into(),
            ),
            (
                "s",
                [None, Some("x")]
                    .into_iter()
                    .collect::<Utf8Builder>()
                    .into(),
            ),
        ]);
        let rb = to_record_batch(&batch).unwrap();
        assert_eq!(rb.num_rows(), 2);
        let back = to_output(&rb).unwrap().into_batch();
        assert_eq!(
            back.f64("f").unwrap().iter().collect::<Vec<_>>(),
            [Some(1.5), None]
        );
        assert_eq!(
            back.utf8("s").unwrap().iter().collect::<Vec<_>>(),
            [None, Some("x")]
        );
    }
}
