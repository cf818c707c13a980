//! Test guest `roundtrip`: reads one optional column of every ABI type and writes each back
//! unchanged under the same name, through the SDK's views and builders (`passthrough = "none"`),
//! so the host can assert a full round trip. An absent column is written back all null.

use weir_sdk::prelude::*;

fn prim<T: weir_sdk::NativeType>(
    v: Option<PrimitiveView<'_, T>>,
    mut b: PrimitiveBuilder<T>,
    n: usize,
) -> Column {
    match v {
        Some(v) => v.iter().for_each(|x| b.append_option(x)),
        None => (0..n).for_each(|_| b.append_null()),
    }
    b.finish()
}

fn ts(v: Option<TimestampView<'_>>, unit: TimeUnit, n: usize) -> Column {
    let mut b = TimestampBuilder::with_capacity(unit, n);
    match v {
        Some(v) => v.iter().for_each(|x| b.append_option(x)),
        None => (0..n).for_each(|_| b.append_null()),
    }
    b.finish()
}

/// The transform.
///
/// # Errors
/// Never for a well-formed batch.
#[weir_sdk::transform(
    reads = [
        "bool: boolean?", "i8: int8?", "i16: int16?", "i32: int32?", "i64: int64?",
        "u8: uint8?", "u16: uint16?", "u32: uint32?", "u64: uint64?", "f32: float32?",
        "f64: float64?", "utf8: utf8?", "binary: binary?", "fsb: fixed_size_binary(4)?",
        "ts_s: timestamp(s)?", "ts_ms: timestamp(ms)?", "ts_us: timestamp(us, UTC)?",
        "ts_ns: timestamp(ns)?", "date32: date32?",
    ],
    writes = [
        "bool: boolean?", "i8: int8?", "i16: int16?", "i32: int32?", "i64: int64?",
        "u8: uint8?", "u16: uint16?", "u32: uint32?", "u64: uint64?", "f32: float32?",
        "f64: float64?", "utf8: utf8?", "binary: binary?", "fsb: fixed_size_binary(4)?",
        "ts_s: timestamp(s)?", "ts_ms: timestamp(ms)?", "ts_us: timestamp(us, UTC)?",
        "ts_ns: timestamp(ns)?", "date32: date32?",
    ],
    passthrough = "none",
)]
pub fn roundtrip(batch: &Batch) -> Result<Output> {
    let n = batch.num_rows();
    let mut out = Output::new();

    let mut b = BooleanBuilder::with_capacity(n);
    match batch.opt_bool("bool")? {
        Some(v) => v.iter().for_each(|x| b.append_option(x)),
        None => (0..n).for_each(|_| b.append_null()),
    }
    out.push("bool", b);

    out.push(
        "i8",
        prim(batch.opt_i8("i8")?, Int8Builder::with_capacity(n), n),
    );
    out.push(
        "i16",
        prim(batch.opt_i16("i16")?, Int16Builder::with_capacity(n), n),
    );
    out.push(
        "i32",
        prim(batch.opt_i32("i32")?, Int32Builder::with_capacity(n), n),
    );
    out.push(
        "i64",
        prim(batch.opt_i64("i64")?, Int64Builder::with_capacity(n), n),
    );
    out.push(
        "u8",
        prim(batch.opt_u8("u8")?, UInt8Builder::with_capacity(n), n),
    );
    out.push(
        "u16",
        prim(batch.opt_u16("u16")?, UInt16Builder::with_capacity(n), n),
    );
    out.push(
        "u32",
        prim(batch.opt_u32("u32")?, UInt32Builder::with_capacity(n), n),
    );
    out.push(
        "u64",
        prim(batch.opt_u64("u64")?, UInt64Builder::with_capacity(n), n),
    );
    out.push(
        "f32",
        prim(batch.opt_f32("f32")?, Float32Builder::with_capacity(n), n),
    );
    out.push(
        "f64",
        prim(batch.opt_f64("f64")?, Float64Builder::with_capacity(n), n),
    );

    let mut b = Utf8Builder::with_capacity(n, 0);
    match batch.opt_utf8("utf8")? {
        Some(v) => v.iter().for_each(|x| b.append_option(x)),
        None => (0..n).for_each(|_| b.append_null()),
    }
    out.push("utf8", b);

    let mut b = BinaryBuilder::with_capacity(n, 0);
    match batch.opt_binary("binary")? {
        Some(v) => v.iter().for_each(|x| b.append_option(x)),
        None => (0..n).for_each(|_| b.append_null()),
    }
    out.push("binary", b);

    let mut b = FixedSizeBinaryBuilder::with_capacity(4, n);
    match batch.opt_fixed_size_binary("fsb")? {
        Some(v) => {
            for x in v.iter() {
                b.append_option(x)?;
            }
        }
        None => (0..n).for_each(|_| b.append_null()),
    }
    out.push("fsb", b);

    out.push(
        "ts_s",
        ts(batch.opt_timestamp("ts_s")?, TimeUnit::Second, n),
    );
    out.push(
        "ts_ms",
        ts(batch.opt_timestamp("ts_ms")?, TimeUnit::Millisecond, n),
    );
    out.push(
        "ts_us",
        ts(batch.opt_timestamp("ts_us")?, TimeUnit::Microsecond, n),
    );
    out.push(
        "ts_ns",
        ts(batch.opt_timestamp("ts_ns")?, TimeUnit::Nanosecond, n),
    );

    let mut b = Date32Builder::with_capacity(n);
    match batch.opt_date32("date32")? {
        Some(v) => v.iter().for_each(|x| b.append_option(x)),
        None => (0..n).for_each(|_| b.append_null()),
    }
    out.push("date32", b);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_columns_and_fills_absent_ones_with_nulls() {
        let batch = Batch::from_columns(vec![
            (
                "i32",
                [Some(1), None, Some(-3)]
                    .into_iter()
                    .collect::<Int32Builder>()
                    .into(),
            ),
            (
                "utf8",
                [Some("a"), Some("ü"), None]
                    .into_iter()
                    .collect::<Utf8Builder>()
                    .into(),
            ),
        ]);
        let out = roundtrip(&batch).unwrap().into_batch();
        assert_eq!(out.num_columns(), 19);
        assert_eq!(
            out.i32("i32").unwrap().iter().collect::<Vec<_>>(),
            [Some(1), None, Some(-3)]
        );
        assert_eq!(
            out.utf8("utf8").unwrap().iter().collect::<Vec<_>>(),
            [Some("a"), Some("ü"), None]
        );
        assert_eq!(out.f64("f64").unwrap().null_count(), 3);
        assert_eq!(
            out.timestamp("ts_us").unwrap().unit(),
            TimeUnit::Microsecond
        );
    }
}
