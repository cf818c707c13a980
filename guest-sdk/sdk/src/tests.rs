//! Native unit tests: descriptors in an arena standing in for linear memory, views, builders,
//! selections and the result encoding, checked against the ABI rules byte for byte.

use weir_abi::{
    ABI_VERSION, BatchDesc, BufferRef, COLUMN_HAS_VALIDITY, COLUMN_PRESENT, ColumnDesc, ParsedType,
    TimeUnit, TypeId, status,
};

use crate::prelude::*;
use crate::rt::{ColumnSpec, PolicySpec};
use crate::wire::{Memory, Retained, decode_batch, selection_bytes};

/// A 64-byte aligned arena laid out like the host's input arena.
struct Arena {
    words: Vec<u64>,
    len: usize,
}

impl Arena {
    fn new() -> Self {
        // Offset 0 is never a buffer (so an empty BufferRef {0,0} is distinct): start at 64.
        Self {
            words: vec![0; 8],
            len: 64,
        }
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `u64`s are plain bytes; `len` never exceeds the words' size.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len) }
    }

    /// Appends `data` at the next 64-byte boundary; returns its BufferRef.
    fn push(&mut self, data: &[u8]) -> BufferRef {
        if data.is_empty() {
            return BufferRef::EMPTY;
        }
        let at = self.len.next_multiple_of(64);
        let end = at + data.len();
        self.words.resize(end.div_ceil(8).next_multiple_of(8), 0);
        // SAFETY: the words cover `end` bytes after the resize.
        let all = unsafe {
            std::slice::from_raw_parts_mut(
                self.words.as_mut_ptr().cast::<u8>(),
                self.words.len() * 8,
            )
        };
        all[at..end].copy_from_slice(data);
        self.len = end;
        BufferRef {
            ptr: at as u32,
            len: data.len() as u32,
        }
    }

    /// Writes a column (from a finished builder column) and returns its descriptor.
    fn column(&mut self, c: &Column) -> ColumnDesc {
        let validity = c.validity_bytes().map(|v| self.push(v));
        let offsets = c.offsets().map_or(BufferRef::EMPTY, |o| {
            let bytes: Vec<u8> = o.iter().flat_map(|x| x.to_le_bytes()).collect();
            self.push(&bytes)
        });
        let values = self.push(c.values_bytes());
        ColumnDesc {
            type_id: c.type_id() as u8,
            time_unit: c.time_unit().map_or(0, |u| u as u8),
            flags: COLUMN_PRESENT
                | if validity.is_some() {
                    COLUMN_HAS_VALIDITY
                } else {
                    0
                },
            _pad0: 0,
            byte_width: c.byte_width(),
            len: c.len() as u32,
            null_count: c.null_count() as u32,
            validity: validity.unwrap_or_default(),
            offsets,
            values,
        }
    }

    /// Writes the column descriptors and a BatchDesc; returns the BatchDesc's offset.
    fn batch(&mut self, rows: u32, cols: &[ColumnDesc]) -> u32 {
        let cols_bytes: Vec<u8> = cols
            .iter()
            .flat_map(|c| bytemuck::bytes_of(c).to_vec())
            .collect();
        let columns = if cols.is_empty() {
            BufferRef::EMPTY
        } else {
            self.push(&cols_bytes)
        };
        let desc = BatchDesc {
            abi_version: ABI_VERSION,
            num_rows: rows,
            num_columns: cols.len() as u32,
            columns: columns.ptr,
            batch_seq: 7,
            row_offset: 128,
        };
        self.push(bytemuck::bytes_of(&desc)).ptr
    }
}

fn spec(name: &'static str, ty: &'static str, optional: bool) -> ColumnSpec {
    ColumnSpec {
        name,
        ty: weir_abi::parse_type(ty).unwrap(),
        optional,
    }
}

fn leak<T>(v: Vec<T>) -> &'static [T] {
    Box::leak(v.into_boxed_slice())
}

#[test]
fn every_type_round_trips_through_descriptors() {
    let mut arena = Arena::new();
    let mut cols = Vec::new();
    let b: Column = [Some(true), None, Some(false)]
        .into_iter()
        .collect::<BooleanBuilder>()
        .into();
    cols.push(arena.column(&b));
    let i: Column = [Some(-1i64), None, Some(3)]
        .into_iter()
        .collect::<Int64Builder>()
        .into();
    cols.push(arena.column(&i));
    let u: Column = [Some(1u16), Some(2), Some(3)]
        .into_iter()
        .collect::<UInt16Builder>()
        .into();
    cols.push(arena.column(&u));
    let f: Column = [Some(1.5f32), None, None]
        .into_iter()
        .collect::<Float32Builder>()
        .into();
    cols.push(arena.column(&f));
    let s: Column = [Some("añb"), None, Some("")]
        .into_iter()
        .collect::<Utf8Builder>()
        .into();
    cols.push(arena.column(&s));
    let bin: Column = [Some(&b"\x00\xff"[..]), Some(b""), None]
        .into_iter()
        .collect::<BinaryBuilder>()
        .into();
    cols.push(arena.column(&bin));
    let mut fsb = FixedSizeBinaryBuilder::new(2);
    fsb.append_value(b"ab").unwrap();
    fsb.append_null();
    fsb.append_value([1, 2]).unwrap();
    assert!(fsb.append_value(b"abc").is_err());
    let fsb = fsb.finish();
    cols.push(arena.column(&fsb));
    let mut ts = TimestampBuilder::new(TimeUnit::Millisecond);
    ts.append_value(1_000);
    ts.append_null();
    ts.append_value(-5);
    let ts = ts.finish();
    cols.push(arena.column(&ts));
    let mut d = Date32Builder::new();
    d.append_slice(&[1, 2, 3]);
    let d = d.finish();
    cols.push(arena.column(&d));
    // An absent optional column.
    cols.push(ColumnDesc::default());
    let at = arena.batch(3, &cols);

    let reads = leak(vec![
        spec("b", "boolean", false),
        spec("i", "int64", false),
        spec("u", "uint16", false),
        spec("f", "float32", true),
        spec("s", "utf8", false),
        spec("bin", "binary", false),
        spec("fsb", "fixed_size_binary(2)", false),
        spec("ts", "timestamp(ms, Europe/Paris)", false),
        spec("d", "date32", false),
        spec("gone", "float64", true),
    ]);
    let bytes = arena.bytes().to_vec();
    // SAFETY: `bytes` outlives the batch and is not written meanwhile.
    let batch = unsafe { decode_batch(Memory::arena(&bytes), at, reads) }.unwrap();
    assert_eq!(
        (batch.num_rows(), batch.batch_seq(), batch.row_offset()),
        (3, 7, 128)
    );
    assert_eq!(
        batch.bool("b").unwrap().iter().collect::<Vec<_>>(),
        [Some(true), None, Some(false)]
    );
    let iv = batch.i64("i").unwrap();
    assert_eq!(iv.iter().collect::<Vec<_>>(), [Some(-1), None, Some(3)]);
    assert_eq!(
        (iv.null_count(), iv.is_valid(1), iv.values()[2]),
        (1, false, 3)
    );
    assert_eq!(iv.validity().unwrap().bytes(), [0b101]);
    assert!(batch.u16("u").unwrap().validity().is_none());
    assert_eq!(batch.u16("u").unwrap().values(), [1, 2, 3]);
    assert_eq!(batch.opt_f32("f").unwrap().unwrap().get(0), Some(1.5));
    assert_eq!(
        batch.utf8("s").unwrap().iter().collect::<Vec<_>>(),
        [Some("añb"), None, Some("")]
    );
    assert_eq!(batch.binary("bin").unwrap().get(0), Some(&b"\x00\xff"[..]));
    let fv = batch.fixed_size_binary("fsb").unwrap();
    assert_eq!(
        (fv.width(), fv.get(0), fv.get(1), fv.get(2)),
        (2, Some(&b"ab"[..]), None, Some(&[1, 2][..]))
    );
    let tv = batch.timestamp("ts").unwrap();
    assert_eq!(
        (tv.unit(), tv.tz(), tv.get(2)),
        (TimeUnit::Millisecond, Some("Europe/Paris"), Some(-5))
    );
    assert_eq!(batch.date32("d").unwrap().values(), [1, 2, 3]);
    assert!(batch.opt_f64("gone").unwrap().is_none());
    assert!(batch.f64("gone").unwrap_err().message().contains("absent"));
    assert!(!batch.has_column("gone"));
    // Wrong type or name: errors, not panics.
    assert_eq!(
        batch.f64("i").unwrap_err().message(),
        "column `i` is int64, not float64"
    );
    assert!(
        batch
            .opt_f64("nope")
            .unwrap_err()
            .message()
            .contains("not declared")
    );
    assert!(batch.column_at::<Int64>(1).unwrap().is_some());
    assert!(batch.column_at::<Int64>(99).is_err());
}

fn one_column_batch(desc: ColumnDesc, arena: &mut Arena, ty: &'static str) -> Result<(), String> {
    let rows = if desc.len == 5 { 2 } else { desc.len };
    let at = arena.batch(rows, &[desc]);
    let bytes = arena.bytes().to_vec();
    let reads = leak(vec![spec("c", ty, false)]);
    // SAFETY: `bytes` outlives the batch.
    unsafe { decode_batch(Memory::arena(&bytes), at, reads) }.map(|_| ())
}

#[test]
fn malformed_input_is_refused() {
    let good: Column = [Some("a"), Some("bc")]
        .into_iter()
        .collect::<Utf8Builder>()
        .into();
    let mut arena = Arena::new();
    let d = arena.column(&good);
    assert!(one_column_batch(d, &mut arena, "utf8").is_ok());
    let check = |mutate: &dyn Fn(&mut ColumnDesc), ty: &'static str, want: &str| {
        let mut arena = Arena::new();
        let mut d = arena.column(&good);
        mutate(&mut d);
        let e = one_column_batch(d, &mut arena, ty).unwrap_err();
        assert!(e.contains(want), "{e} should mention {want}");
    };
    check(&|_| {}, "binary", "type id");
    check(&|d| d.values.len = 2, "utf8", "values is 2 bytes");
    check(&|d| d.offsets.len = 8, "utf8", "offsets is 8 bytes");
    check(&|d| d.values.ptr = u32::MAX - 1, "utf8", "out of bounds");
    check(&|d| d.flags = 0, "utf8", "required column is absent");
    check(&|d| d.len = 5, "utf8", "5 rows");
    check(
        &|d| {
            d.flags |= COLUMN_HAS_VALIDITY;
            d.validity = BufferRef {
                ptr: d.values.ptr,
                len: 2,
            };
        },
        "utf8",
        "validity is 2 bytes",
    );
    // Misaligned primitive values.
    let ints: Column = Int64Builder::from_values(vec![1, 2]).into();
    let mut arena = Arena::new();
    let mut d = arena.column(&ints);
    d.values.ptr += 4;
    d.values.len = 16;
    arena.push(&[0; 64]);
    let e = one_column_batch(d, &mut arena, "int64").unwrap_err();
    assert!(e.contains("aligned"), "{e}");
    // Invalid UTF-8 and a split character.
    let bad: Column = [Some(&b"\xff"[..])]
        .into_iter()
        .collect::<BinaryBuilder>()
        .into();
    let mut arena = Arena::new();
    let mut d = arena.column(&bad);
    d.type_id = TypeId::Utf8 as u8;
    assert!(
        one_column_batch(d, &mut arena, "utf8")
            .unwrap_err()
            .contains("UTF-8")
    );
}

#[test]
fn builders_produce_exact_abi_layouts() {
    // 10 rows, nulls at 1 and 9: bitmap is exactly 2 bytes, bits past len are 0.
    let mut b = Float64Builder::with_capacity(10);
    for i in 0..10 {
        b.append_option((i != 1 && i != 9).then_some(i as f64));
    }
    let c = b.finish();
    assert_eq!(c.validity_bytes().unwrap(), [0b1111_1101, 0b0000_0001]);
    assert_eq!(c.values_bytes().len(), 80);
    assert_eq!(c.null_count(), 2);
    // No nulls: no validity bitmap at all.
    let c: Column = Int8Builder::from_values(vec![1, 2, 3]).into();
    assert!(c.validity_bytes().is_none());
    assert_eq!(c.values_bytes(), [1, 2, 3]);
    // Utf8: offsets start at 0, len + 1 of them, values exactly offsets[len] bytes.
    let c: Column = [None, Some("ab"), None, Some("c")]
        .into_iter()
        .collect::<Utf8Builder>()
        .into();
    assert_eq!(c.offsets().unwrap(), [0, 0, 2, 2, 3]);
    assert_eq!(c.values_bytes(), b"abc");
    assert_eq!(c.validity_bytes().unwrap(), [0b1010]);
    // Empty Utf8: one offset.
    let c: Column = Utf8Builder::new().into();
    assert_eq!(c.offsets().unwrap(), [0]);
    assert!(c.values_bytes().is_empty());
    // Boolean values are a bitmap; nulls hold 0 bits.
    let c: Column = [Some(true), None, Some(true)]
        .into_iter()
        .collect::<BooleanBuilder>()
        .into();
    assert_eq!(
        (c.values_bytes(), c.validity_bytes().unwrap()),
        (&[0b101][..], &[0b101][..])
    );
    // FixedSizeBinary nulls are `width` zero bytes.
    let mut f = FixedSizeBinaryBuilder::new(3);
    f.append_null();
    f.append_value(b"xyz").unwrap();
    let c = f.finish();
    assert_eq!((c.values_bytes(), c.byte_width()), (&b"\0\0\0xyz"[..], 3));
    // Timestamp and Date32 keep their type ids.
    assert_eq!(
        TimestampBuilder::new(TimeUnit::Second).finish().type_id(),
        TypeId::Timestamp
    );
    assert_eq!(Date32Builder::new().finish().type_id(), TypeId::Date32);
}

#[test]
fn selections_pack_lsb_first_and_combine_word_wise() {
    for n in [0, 1, 63, 64, 65, 130] {
        let s = Selection::from_fn(n, |i| i % 3 == 0);
        assert_eq!(s.count(), n.div_ceil(3));
        let bytes = selection_bytes(&s);
        assert_eq!(bytes.len(), n.div_ceil(8));
        for i in 0..n {
            assert_eq!(bytes[i / 8] >> (i % 8) & 1 == 1, i % 3 == 0);
        }
        let mut all = Selection::all(n);
        assert_eq!(all.count(), n);
        all.invert();
        assert_eq!(all, Selection::none(n));
    }
    let mut s = Selection::all(10);
    let validity = [0b1111_0111u8, 0b0000_0010];
    s.and_bitmap(Bitmap::new(&validity, 10));
    assert_eq!(
        s.iter_selected().collect::<Vec<_>>(),
        [0, 1, 2, 4, 5, 6, 7, 9]
    );
    let mut t = Selection::none(10);
    t.or_nulls(Some(Bitmap::new(&validity, 10)));
    assert_eq!(t.iter_selected().collect::<Vec<_>>(), [3, 8]);
    s.or(&t);
    assert_eq!(s, Selection::all(10));
    s.and_not(&t);
    assert_eq!(s.count(), 8);
    assert_eq!(
        Selection::from_bitmap(Bitmap::new(&validity, 10)).count(),
        8
    );
}

/// A fake address space for encoding: address = index of the buffer + 1, times 4096.
fn encode(r: &mut Retained) -> Vec<*const u8> {
    let seen = std::cell::RefCell::new(Vec::new());
    r.encode(&|p| {
        let mut s = seen.borrow_mut();
        s.push(p);
        (s.len() * 4096) as u32
    });
    seen.into_inner()
}

#[test]
fn filter_and_transform_results_are_encoded_per_abi() {
    let mut r = Retained::filter(Selection::from_fn(10, |i| i < 3), 10);
    let seen = encode(&mut r);
    assert_eq!(r.result.status, status::OK);
    assert_eq!(r.result.num_rows, 3);
    assert_eq!(r.result.selection.len, 2);
    assert_eq!((r.result.num_columns, r.result.columns), (0, 0));
    assert_eq!(r.result.message, BufferRef::EMPTY);
    assert_eq!(seen.len(), 1);

    let r = Retained::filter(Selection::all(3), 4);
    assert_eq!(r.result.status, status::GUEST_ERROR);

    let writes = leak(vec![
        spec("a", "float64", true),
        spec("t", "timestamp(us, UTC)", false),
    ]);
    let spec_ = PolicySpec {
        reads: &[],
        writes,
        passthrough_none: false,
    };
    let mut ts = TimestampBuilder::new(TimeUnit::Microsecond);
    ts.append_slice(&[1, 2]);
    let a: Column = [None, Some(2.0)]
        .into_iter()
        .collect::<Float64Builder>()
        .into();
    // Order of `with` does not matter; the result follows `writes`.
    let out = Output::new().with("t", ts).with("a", a);
    let mut r = Retained::transform(&spec_, 2, out);
    assert_eq!(r.message, "");
    encode(&mut r);
    assert_eq!(
        (r.result.status, r.result.num_rows, r.result.num_columns),
        (status::OK, 2, 2)
    );
    let a = r.descs[0];
    assert_eq!(
        (a.type_id, a.flags, a.len, a.null_count),
        (
            TypeId::Float64 as u8,
            COLUMN_PRESENT | COLUMN_HAS_VALIDITY,
            2,
            1
        )
    );
    assert_eq!(
        (a.validity.len, a.values.len, a.offsets),
        (1, 16, BufferRef::EMPTY)
    );
    let t = r.descs[1];
    assert_eq!(
        (t.type_id, t.time_unit, t.flags, t.validity),
        (
            TypeId::Timestamp as u8,
            TimeUnit::Microsecond as u8,
            COLUMN_PRESENT,
            BufferRef::EMPTY
        )
    );
    assert_eq!(r.result.selection, BufferRef::EMPTY);

    let bad = |out: Output, want: &str| {
        let r = Retained::transform(&spec_, 2, out);
        assert_eq!(r.result.status, status::GUEST_ERROR);
        assert!(
            r.message.contains(want),
            "{} should mention {want}",
            r.message
        );
    };
    let ts = || {
        let mut t = TimestampBuilder::new(TimeUnit::Microsecond);
        t.append_slice(&[1, 2]);
        t
    };
    let f = || Float64Builder::from_values(vec![1.0, 2.0]);
    bad(
        Output::new().with("a", f()),
        "`t` declared in `writes` without `?` is missing",
    );
    bad(
        Output::new().with("a", f()).with("t", ts()).with("x", f()),
        "`x` is not declared",
    );
    bad(
        Output::new().with("a", f()).with("t", f()),
        "`t` is float64, declared timestamp(us, UTC)",
    );
    bad(
        Output::new()
            .with("a", Float64Builder::from_values(vec![1.0]))
            .with("t", ts()),
        "has 1 rows, expected 2",
    );
    let mut nulls = TimestampBuilder::new(TimeUnit::Microsecond);
    nulls.append_null();
    nulls.append_null();
    bad(
        Output::new().with("a", f()).with("t", nulls),
        "not optional but has 2 nulls",
    );
    let mut wrong_unit = TimestampBuilder::new(TimeUnit::Second);
    wrong_unit.append_slice(&[1, 2]);
    bad(
        Output::new().with("a", f()).with("t", wrong_unit),
        "timestamp(s, UTC)",
    );

    let mut ok = Retained::ok();
    assert!(encode(&mut ok).is_empty());
    assert_eq!(ok.result, weir_abi::ResultDesc::default());
    let e = Retained::error(status::BAD_CONFIG, "nope");
    let mut e = e;
    encode(&mut e);
    assert_eq!(
        (e.result.status, e.result.message.len),
        (status::BAD_CONFIG, 4)
    );
}

#[test]
fn parameters_parse_with_serde_messages() {
    #[derive(serde::Deserialize, Debug)]
    struct P {
        #[expect(dead_code, reason = "only parsed")]
        min: f64,
    }
    assert!(crate::rt::parse_json::<P>(b"{\"min\": 1}").is_ok());
    let e = crate::rt::parse_json::<P>(b"  ").unwrap_err();
    assert!(e.message().contains("missing field `min`"), "{e}");
    let e = crate::rt::parse_json::<P>(b"{\"min\": \"x\"}").unwrap_err();
    assert!(e.message().contains("invalid type"), "{e}");
}

#[test]
fn parsed_type_in_specs_is_static() {
    let t: ParsedType<'static> = weir_abi::parse_type("timestamp(ns)").unwrap();
    assert_eq!(t.unit, Some(TimeUnit::Nanosecond));
}
