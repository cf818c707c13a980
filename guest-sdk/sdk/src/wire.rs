//! The wire side of the ABI: reading a `BatchDesc` from memory and writing a `ResultDesc`.
#![cfg_attr(
    not(any(target_arch = "wasm32", test)),
    expect(dead_code, reason = "used by the wasm32 exports and the unit tests")
)]

use std::borrow::Cow;

use weir_abi::ParsedType;
use weir_abi::{
    ABI_VERSION, BatchDesc, BufferRef, COLUMN_HAS_VALIDITY, COLUMN_PRESENT, ColumnDesc, ResultDesc,
    TimeUnit, TypeId, status,
};

use crate::batch::{Batch, RawBuf, RawColumn};
use crate::builder::Column;
use crate::output::Output;
use crate::rt::{ColumnSpec, PolicySpec};
use crate::selection::Selection;

/// The ABI form of a selection: exactly `ceil(len/8)` bytes, LSB-first.
pub(crate) fn selection_bytes(s: &Selection) -> &[u8] {
    let words = s.words();
    // SAFETY: `u64` has no padding and every byte is initialized; on the little-endian
    // targets the ABI supports, the byte order of the words is the LSB-first bit order.
    let all = unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), words.len() * 8) };
    &all[..s.len().div_ceil(8)]
}

/// Reads and checks a [`BatchDesc`] and its columns against the declared `reads`.
///
/// # Safety
/// `mem` must describe readable memory (`mem.limit` bytes from `mem.ptr(0)`) that stays valid
/// and unwritten while the returned batch lives.
pub(crate) unsafe fn decode_batch(
    mem: Memory,
    batch_ptr: u32,
    reads: &'static [ColumnSpec],
) -> core::result::Result<Batch, String> {
    // SAFETY: forwarded from the caller.
    let desc: BatchDesc = unsafe { mem.read(batch_ptr)? };
    if desc.abi_version != ABI_VERSION {
        return Err(format!("batch has ABI version {}", desc.abi_version));
    }
    if desc.num_columns as usize != reads.len() {
        return Err(format!(
            "batch has {} columns, the policy reads {}",
            desc.num_columns,
            reads.len()
        ));
    }
    let num_rows = desc.num_rows as usize;
    let mut columns = Vec::with_capacity(reads.len());
    for (i, spec) in reads.iter().enumerate() {
        let at = u32::try_from(i * size_of::<ColumnDesc>())
            .ok()
            .and_then(|off| desc.columns.checked_add(off))
            .ok_or("column descriptor address overflows")?;
        // SAFETY: forwarded from the caller.
        let cd: ColumnDesc = unsafe { mem.read(at)? };
        columns.push(
            check_column(mem, &cd, spec, num_rows)
                .map_err(|e| format!("column `{}`: {e}", spec.name))?,
        );
    }
    Ok(Batch {
        columns,
        num_rows,
        batch_seq: desc.batch_seq,
        row_offset: desc.row_offset,
        strict: true,
        _owned: Vec::new(),
    })
}

/// Linear memory (or, in native tests, an arena standing in for it).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Memory {
    /// Null for wasm linear memory, where an offset is an address.
    base: *const u8,
    limit: usize,
}

impl Memory {
    /// The module's own linear memory.
    #[cfg(target_arch = "wasm32")]
    pub(crate) fn linear() -> Self {
        Self {
            base: std::ptr::null(),
            limit: core::arch::wasm32::memory_size(0) * 65536,
        }
    }

    /// An arena whose offset 0 is `bytes[0]`.
    #[cfg(test)]
    pub(crate) fn arena(bytes: &[u8]) -> Self {
        Self {
            base: bytes.as_ptr(),
            limit: bytes.len(),
        }
    }

    fn ptr(&self, offset: u32) -> *const u8 {
        if self.base.is_null() {
            std::ptr::with_exposed_provenance(offset as usize)
        } else {
            self.base.wrapping_add(offset as usize)
        }
    }

    fn buf(&self, b: BufferRef) -> core::result::Result<RawBuf, String> {
        if b.len == 0 {
            return Ok(RawBuf::EMPTY);
        }
        let end = (b.ptr as usize)
            .checked_add(b.len as usize)
            .ok_or("buffer end overflows")?;
        if end > self.limit {
            return Err(format!("buffer {}+{} is out of bounds", b.ptr, b.len));
        }
        Ok(RawBuf {
            ptr: self.ptr(b.ptr),
            len: b.len as usize,
        })
    }

    /// # Safety
    /// As for [`Batch::from_desc`].
    unsafe fn read<T: bytemuck::Pod>(&self, at: u32) -> core::result::Result<T, String> {
        let raw = self.buf(BufferRef {
            ptr: at,
            len: size_of::<T>() as u32,
        })?;
        // SAFETY: `buf` checked the range is inside the memory the caller vouched for; the read
        // is unaligned and `T` is `Pod`, so any bytes are a valid `T`.
        Ok(unsafe { raw.ptr.cast::<T>().read_unaligned() })
    }
}

fn check_column(
    mem: Memory,
    cd: &ColumnDesc,
    spec: &ColumnSpec,
    num_rows: usize,
) -> core::result::Result<RawColumn, String> {
    let ty = spec.ty;
    let mut raw = RawColumn {
        name: Cow::Borrowed(spec.name),
        id: ty.id,
        unit: ty.unit,
        tz: ty.tz.map(Cow::Borrowed),
        width: ty.byte_width as usize,
        present: cd.flags & COLUMN_PRESENT != 0,
        len: num_rows,
        null_count: 0,
        validity: None,
        offsets: RawBuf::EMPTY,
        values: RawBuf::EMPTY,
    };
    if !raw.present {
        if !spec.optional {
            return Err("required column is absent".into());
        }
        return Ok(raw);
    }
    if TypeId::from_u8(cd.type_id) != Some(ty.id) {
        return Err(format!("type id {} but declared {ty}", cd.type_id));
    }
    if ty.id == TypeId::Timestamp && TimeUnit::from_u8(cd.time_unit) != ty.unit {
        return Err(format!("time unit {} but declared {ty}", cd.time_unit));
    }
    if ty.id == TypeId::FixedSizeBinary && cd.byte_width != ty.byte_width {
        return Err(format!("byte width {} but declared {ty}", cd.byte_width));
    }
    if cd.len as usize != num_rows {
        return Err(format!("{} rows in a batch of {num_rows}", cd.len));
    }
    let len = num_rows;
    let bitmap_len = len.div_ceil(8);
    if cd.flags & COLUMN_HAS_VALIDITY != 0 {
        let v = mem.buf(cd.validity)?;
        if v.len != bitmap_len {
            return Err(format!(
                "validity is {} bytes, expected {bitmap_len}",
                v.len
            ));
        }
        if cd.null_count as usize > len {
            return Err("null_count exceeds the rows".into());
        }
        raw.validity = Some(v);
        raw.null_count = cd.null_count as usize;
    }
    let values = mem.buf(cd.values)?;
    let expect_len = |what: &str, got: usize, want: Option<usize>| match want {
        Some(w) if w == got => Ok(()),
        Some(w) => Err(format!("{what} is {got} bytes, expected {w}")),
        None => Err(format!("{what} is {got} bytes, expected none")),
    };
    match ty.id {
        TypeId::Boolean => expect_len("values", values.len, Some(bitmap_len))?,
        TypeId::FixedSizeBinary => {
            expect_len("values", values.len, len.checked_mul(raw.width))?;
        }
        TypeId::Utf8 | TypeId::Binary => {
            let offsets = mem.buf(cd.offsets)?;
            expect_len("offsets", offsets.len, (len + 1).checked_mul(4))?;
            if !(offsets.ptr as usize).is_multiple_of(4) {
                return Err("offsets are not 4-byte aligned".into());
            }
            // SAFETY: in bounds (checked by `buf`), aligned (checked above), `i32` is `Pod`,
            // and the caller of `from_desc` vouched that the memory stays valid.
            let offs: &[i32] = unsafe { offsets.slice() };
            // SAFETY: in bounds (checked by `buf`), bytes.
            let data: &[u8] = unsafe { values.slice() };
            if offs[0] != 0 {
                return Err("offsets do not start at 0".into());
            }
            if offs.windows(2).any(|w| w[1] < w[0]) {
                return Err("offsets decrease".into());
            }
            expect_len("values", values.len, usize::try_from(offs[len]).ok())?;
            if ty.id == TypeId::Utf8 {
                let text = std::str::from_utf8(data).map_err(|_| "values are not UTF-8")?;
                if !offs.iter().all(|&o| text.is_char_boundary(o as usize)) {
                    return Err("an offset splits a UTF-8 character".into());
                }
            }
            raw.offsets = offsets;
        }
        id => {
            let width = id.fixed_width().unwrap_or(1) as usize;
            expect_len("values", values.len, len.checked_mul(width))?;
            if !(values.ptr as usize).is_multiple_of(width) {
                return Err(format!("values are not {width}-byte aligned"));
            }
        }
    }
    raw.values = values;
    Ok(raw)
}

/// A result and everything it points to, kept alive until the next call.
#[derive(Debug, Default)]
pub(crate) struct Retained {
    pub(crate) result: ResultDesc,
    pub(crate) descs: Vec<ColumnDesc>,
    /// In `writes` order; `None` for an optional column the transform left out.
    pub(crate) columns: Vec<Option<Column>>,
    pub(crate) selection: Option<Selection>,
    pub(crate) message: String,
}

impl Retained {
    pub(crate) fn error(code: u32, message: impl Into<String>) -> Self {
        Self {
            result: ResultDesc {
                status: code,
                ..ResultDesc::default()
            },
            message: message.into(),
            ..Self::default()
        }
    }

    pub(crate) fn ok() -> Self {
        Self::default()
    }

    /// The result of a filter over `num_rows` input rows.
    pub(crate) fn filter(selection: Selection, num_rows: usize) -> Self {
        if selection.len() != num_rows {
            return Self::error(
                status::GUEST_ERROR,
                format!(
                    "the filter returned a selection of {} rows for a batch of {num_rows}",
                    selection.len()
                ),
            );
        }
        Self {
            result: ResultDesc {
                num_rows: selection.count() as u32,
                ..ResultDesc::default()
            },
            selection: Some(selection),
            ..Self::default()
        }
    }

    /// The result of a transform, checked against the declared `writes`.
    pub(crate) fn transform(spec: &PolicySpec, input_rows: usize, out: Output) -> Self {
        match check_output(spec, input_rows, out) {
            Ok((columns, rows, selection)) => Self {
                result: ResultDesc {
                    num_rows: rows as u32,
                    ..ResultDesc::default()
                },
                columns,
                selection,
                ..Self::default()
            },
            Err(e) => Self::error(status::GUEST_ERROR, e),
        }
    }

    /// Fills in the descriptors; `addr` gives the ABI address of a non-empty buffer.
    pub(crate) fn encode(&mut self, addr: &dyn Fn(*const u8) -> u32) {
        let buf = |b: &[u8]| {
            if b.is_empty() {
                BufferRef::EMPTY
            } else {
                BufferRef {
                    ptr: addr(b.as_ptr()),
                    len: b.len() as u32,
                }
            }
        };
        self.descs = self
            .columns
            .iter()
            .map(|c| {
                // A left-out optional column is an all-zero descriptor (ABI.md §6).
                let Some(c) = c else {
                    return ColumnDesc::default();
                };
                let mut flags = COLUMN_PRESENT;
                if c.validity.is_some() {
                    flags |= COLUMN_HAS_VALIDITY;
                }
                ColumnDesc {
                    type_id: c.id as u8,
                    time_unit: c.unit.map_or(0, |u| u as u8),
                    flags,
                    _pad0: 0,
                    byte_width: c.width,
                    len: c.len as u32,
                    null_count: c.null_count as u32,
                    validity: buf(c.validity.as_deref().unwrap_or_default()),
                    offsets: c
                        .offsets
                        .as_deref()
                        .map_or(BufferRef::EMPTY, |o| buf(crate::types::as_bytes(o))),
                    values: buf(c.values_bytes()),
                }
            })
            .collect();
        self.result.num_columns = self.descs.len() as u32;
        self.result.columns = if self.descs.is_empty() {
            0
        } else {
            addr(self.descs.as_ptr().cast())
        };
        self.result.selection = self
            .selection
            .as_ref()
            .map_or(BufferRef::EMPTY, |s| buf(selection_bytes(s)));
        self.result.message = buf(self.message.as_bytes());
    }
}

type Checked = (Vec<Option<Column>>, usize, Option<Selection>);

fn check_output(
    spec: &PolicySpec,
    input_rows: usize,
    out: Output,
) -> core::result::Result<Checked, String> {
    let Output {
        mut columns,
        selection,
    } = out;
    if let Some((extra, _)) = columns
        .iter()
        .find(|(n, _)| !spec.writes.iter().any(|w| w.name == n))
    {
        return Err(format!(
            "output column `{extra}` is not declared in `writes`"
        ));
    }
    let rows = if spec.passthrough_none {
        columns.first().map_or(0, |(_, c)| c.len())
    } else {
        input_rows
    };
    let mut ordered = Vec::with_capacity(spec.writes.len());
    for w in spec.writes {
        let Some(pos) = columns.iter().position(|(n, _)| n == w.name) else {
            if w.optional {
                // Left out for this batch: the host omits the column.
                ordered.push(None);
                continue;
            }
            return Err(format!(
                "output column `{}` declared in `writes` without `?` is missing",
                w.name
            ));
        };
        let (_, col) = columns.swap_remove(pos);
        if columns.iter().any(|(n, _)| n == w.name) {
            return Err(format!("output column `{}` given twice", w.name));
        }
        let ty = w.ty;
        let type_ok = col.id == ty.id
            && (ty.id != TypeId::Timestamp || col.unit == ty.unit)
            && (ty.id != TypeId::FixedSizeBinary || col.width == ty.byte_width);
        if !type_ok {
            let got = ParsedType {
                id: col.id,
                byte_width: col.width,
                unit: col.unit,
                tz: ty.tz,
            };
            return Err(format!(
                "output column `{}` is {got}, declared {ty}",
                w.name
            ));
        }
        if col.len() != rows {
            return Err(format!(
                "output column `{}` has {} rows, expected {rows}",
                w.name,
                col.len()
            ));
        }
        if !w.optional && col.null_count() > 0 {
            return Err(format!(
                "output column `{}` is not optional but has {} nulls",
                w.name,
                col.null_count()
            ));
        }
        ordered.push(Some(col));
    }
    if let Some(s) = &selection {
        if spec.passthrough_none {
            return Err("a selection needs passthrough other than `none`".into());
        }
        if s.len() != rows {
            return Err(format!(
                "output selection covers {} rows, expected {rows}",
                s.len()
            ));
        }
    }
    Ok((ordered, rows, selection))
}
