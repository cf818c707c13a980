//! Writing a batch's projected columns into the guest's input arena (ABI.md §3, §5).

use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_cast::{CastOptions, can_cast_types, cast_with_options};
use arrow_data::ArrayData;
use weir_abi::{
    ABI_VERSION, BUFFER_ALIGN, BatchDesc, COLUMN_HAS_VALIDITY, COLUMN_PRESENT, ColumnDesc, TypeId,
};

use super::declared::DeclaredColumn;

/// Why a batch cannot be given to a policy. The policy never ran; the batch does not fit it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// A required column is missing from the batch.
    #[error("required input column `{column}` is missing from the batch")]
    MissingColumn {
        /// Column name.
        column: String,
    },
    /// A column's type cannot be cast losslessly to the declared type.
    #[error(
        "input column `{column}` is {found}, and cannot be cast losslessly to {declared}: {reason}"
    )]
    Type {
        /// Column name.
        column: String,
        /// The batch's type.
        found: String,
        /// The declared type.
        declared: String,
        /// Why.
        reason: String,
    },
    /// The batch does not fit the 32-bit guest address space.
    #[error("batch too large for a 32-bit guest: {reason}")]
    TooLarge {
        /// What overflowed.
        reason: String,
    },
}

struct Projected {
    template: ColumnDesc,
    /// `None`: an optional column the batch lacks.
    data: Option<ArrayData>,
    type_id: TypeId,
    width: usize,
}

/// A batch's projection onto one policy's declared inputs, ready to be written morsel by morsel.
pub struct InputPlan {
    columns: Vec<Projected>,
    num_rows: usize,
    bytes_per_row: usize,
}

impl std::fmt::Debug for InputPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputPlan")
            .field("columns", &self.columns.len())
            .field("num_rows", &self.num_rows)
            .finish_non_exhaustive()
    }
}

fn project(decl: &DeclaredColumn, batch: &RecordBatch) -> Result<Option<ArrayRef>, InputError> {
    let Some(array) = batch.column_by_name(&decl.name) else {
        return if decl.optional {
            Ok(None)
        } else {
            Err(InputError::MissingColumn {
                column: decl.name.clone(),
            })
        };
    };
    if array.data_type() == &decl.data_type {
        return Ok(Some(array.clone()));
    }
    let type_error = |reason: String| InputError::Type {
        column: decl.name.clone(),
        found: array.data_type().to_string(),
        declared: decl.data_type.to_string(),
        reason,
    };
    if !can_cast_types(array.data_type(), &decl.data_type) {
        return Err(type_error("no cast exists".into()));
    }
    let options = CastOptions {
        safe: true,
        ..CastOptions::default()
    };
    let cast = cast_with_options(array, &decl.data_type, &options)
        .map_err(|e| type_error(e.to_string()))?;
    if cast.null_count() != array.null_count() {
        return Err(type_error(format!(
            "{} values do not fit the declared type",
            cast.null_count() - array.null_count()
        )));
    }
    Ok(Some(cast))
}

const fn align_up(v: usize) -> usize {
    let a = BUFFER_ALIGN as usize;
    v.div_ceil(a) * a
}

const HEADER: usize = size_of::<BatchDesc>();
const COLUMN: usize = size_of::<ColumnDesc>();

/// Copies `len` bits starting at bit `bit_offset` of `src` to the start of `dest`, zeroing the
/// unused high bits of the last byte.
fn copy_bits(dest: &mut [u8], src: &[u8], bit_offset: usize, len: usize) {
    let nbytes = len.div_ceil(8);
    if bit_offset.is_multiple_of(8) {
        let start = bit_offset / 8;
        dest[..nbytes].copy_from_slice(&src[start..start + nbytes]);
    } else {
        let shift = bit_offset % 8;
        let start = bit_offset / 8;
        for (i, out) in dest[..nbytes].iter_mut().enumerate() {
            let lo = src[start + i] >> shift;
            let hi = src.get(start + i + 1).map_or(0, |b| b << (8 - shift));
            *out = lo | hi;
        }
    }
    if !len.is_multiple_of(8) {
        dest[nbytes - 1] &= (1u8 << (len % 8)) - 1;
    }
}

fn count_zero_bits(bytes: &[u8], len: usize) -> usize {
    let ones: usize = bytes.iter().map(|b| b.count_ones() as usize).sum();
    len - ones
}

fn to_u32(v: usize, what: &str) -> Result<u32, InputError> {
    u32::try_from(v).map_err(|_| InputError::TooLarge {
        reason: format!("{what} is {v}"),
    })
}

impl InputPlan {
    /// Projects `batch` onto `inputs`: finds each declared column, casting where the batch's type
    /// differs and the cast loses nothing.
    ///
    /// # Errors
    /// See [`InputError`].
    pub fn new(inputs: &[DeclaredColumn], batch: &RecordBatch) -> Result<Self, InputError> {
        let mut columns = Vec::with_capacity(inputs.len());
        let mut bytes_per_row = 0;
        for decl in inputs {
            let array = project(decl, batch)?;
            let width = decl.type_id.fixed_width().map_or(
                if decl.type_id == TypeId::FixedSizeBinary {
                    decl.byte_width as usize
                } else {
                    0
                },
                |w| w as usize,
            );
            let data = array.map(|a| a.to_data());
            if let Some(data) = &data {
                bytes_per_row += match decl.type_id {
                    TypeId::Utf8 | TypeId::Binary => {
                        4 + data.buffers()[1].len() / data.len().max(1)
                    }
                    TypeId::Boolean => 1,
                    _ => width,
                };
            }
            columns.push(Projected {
                template: decl.desc_template(),
                data,
                type_id: decl.type_id,
                width,
            });
        }
        to_u32(batch.num_rows(), "the row count")?;
        Ok(Self {
            columns,
            num_rows: batch.num_rows(),
            bytes_per_row: bytes_per_row.max(1),
        })
    }

    /// Rows in the batch.
    #[must_use]
    pub fn num_rows(&self) -> usize {
        self.num_rows
    }

    /// Rows per morsel for about `morsel_bytes` of projected input: a multiple of 64, at least 64.
    #[must_use]
    pub fn morsel_rows(&self, morsel_bytes: usize) -> usize {
        let rows = (morsel_bytes / self.bytes_per_row).max(64);
        rows / 64 * 64
    }

    /// Value bytes of a Utf8/Binary column for rows `[off, off + len)`.
    fn var_range(data: &ArrayData, off: usize, len: usize) -> (usize, usize) {
        let offsets = data.buffer::<i32>(0);
        let first = offsets[data.offset() + off];
        let last = offsets[data.offset() + off + len];
        (
            usize::try_from(first).unwrap_or(0),
            usize::try_from(last).unwrap_or(0),
        )
    }

    /// Bytes of arena needed to write rows `[off, off + len)`.
    #[must_use]
    pub fn arena_size(&self, off: usize, len: usize) -> usize {
        let mut size = align_up(HEADER + COLUMN * self.columns.len());
        for col in &self.columns {
            let Some(data) = &col.data else { continue };
            if data.null_count() > 0 {
                size += align_up(len.div_ceil(8));
            }
            size += match col.type_id {
                TypeId::Boolean => align_up(len.div_ceil(8)),
                TypeId::Utf8 | TypeId::Binary => {
                    let (first, last) = Self::var_range(data, off, len);
                    align_up((len + 1) * 4) + align_up(last - first)
                }
                _ => align_up(len * col.width),
            };
        }
        size
    }

    /// Writes rows `[off, off + len)` into `arena` (which starts at guest address `base`, 64-byte
    /// aligned) and returns the guest address of the [`BatchDesc`].
    ///
    /// # Errors
    /// When an address does not fit in 32 bits.
    ///
    /// # Panics
    /// When `arena` is shorter than [`Self::arena_size`] for the same rows.
    pub fn write(
        &self,
        arena: &mut [u8],
        base: u32,
        off: usize,
        len: usize,
        batch_seq: u64,
    ) -> Result<u32, InputError> {
        let mut cursor = align_up(HEADER + COLUMN * self.columns.len());
        let addr = |at: usize| -> Result<u32, InputError> {
            to_u32(base as usize + at, "an arena address")
        };
        let mut descs = Vec::with_capacity(self.columns.len());
        for col in &self.columns {
            let mut desc = col.template;
            desc.len = to_u32(len, "the morsel length")?;
            let Some(data) = &col.data else {
                descs.push(desc);
                continue;
            };
            desc.flags = COLUMN_PRESENT;
            let row0 = data.offset() + off;
            if let Some(nulls) = data.nulls().filter(|n| n.null_count() > 0) {
                let nbytes = len.div_ceil(8);
                let dest = &mut arena[cursor..cursor + nbytes];
                let bits = nulls.inner();
                copy_bits(dest, bits.values(), bits.offset() + off, len);
                desc.null_count = to_u32(count_zero_bits(dest, len), "the null count")?;
                desc.flags |= COLUMN_HAS_VALIDITY;
                desc.validity = weir_abi::BufferRef {
                    ptr: addr(cursor)?,
                    len: to_u32(nbytes, "a bitmap")?,
                };
                cursor += align_up(nbytes);
            }
            match col.type_id {
                TypeId::Boolean => {
                    let nbytes = len.div_ceil(8);
                    let values = data.buffers()[0].as_slice();
                    copy_bits(&mut arena[cursor..cursor + nbytes], values, row0, len);
                    desc.values = weir_abi::BufferRef {
                        ptr: addr(cursor)?,
                        len: to_u32(nbytes, "a bitmap")?,
                    };
                    cursor += align_up(nbytes);
                }
                TypeId::Utf8 | TypeId::Binary => {
                    let offsets = &data.buffer::<i32>(0)[row0..=row0 + len];
                    let first = offsets[0];
                    let obytes = (len + 1) * 4;
                    let dest = &mut arena[cursor..cursor + obytes];
                    if first == 0 {
                        dest.copy_from_slice(bytemuck::cast_slice(offsets));
                    } else {
                        for (chunk, o) in dest.chunks_exact_mut(4).zip(offsets) {
                            chunk.copy_from_slice(&(o - first).to_le_bytes());
                        }
                    }
                    desc.offsets = weir_abi::BufferRef {
                        ptr: addr(cursor)?,
                        len: to_u32(obytes, "offsets")?,
                    };
                    cursor += align_up(obytes);
                    let (first, last) = Self::var_range(data, off, len);
                    let values = &data.buffers()[1].as_slice()[first..last];
                    arena[cursor..cursor + values.len()].copy_from_slice(values);
                    desc.values = weir_abi::BufferRef {
                        ptr: addr(cursor)?,
                        len: to_u32(values.len(), "values")?,
                    };
                    cursor += align_up(values.len());
                }
                _ => {
                    let w = col.width;
                    let values = &data.buffers()[0].as_slice()[row0 * w..(row0 + len) * w];
                    arena[cursor..cursor + values.len()].copy_from_slice(values);
                    desc.values = weir_abi::BufferRef {
                        ptr: addr(cursor)?,
                        len: to_u32(values.len(), "values")?,
                    };
                    cursor += align_up(values.len());
                }
            }
            descs.push(desc);
        }
        let header = BatchDesc {
            abi_version: ABI_VERSION,
            num_rows: to_u32(len, "the morsel length")?,
            num_columns: to_u32(descs.len(), "the column count")?,
            columns: addr(HEADER)?,
            batch_seq,
            row_offset: off as u64,
        };
        arena[..HEADER].copy_from_slice(bytemuck::bytes_of(&header));
        arena[HEADER..HEADER + COLUMN * descs.len()].copy_from_slice(bytemuck::cast_slice(&descs));
        addr(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_bits_shifts_unaligned_bitmaps_and_masks_the_tail() {
        let src = [0b1010_1100u8, 0b0000_0011];
        let mut dest = [0xffu8; 2];
        copy_bits(&mut dest, &src, 2, 8);
        assert_eq!(dest[0], 0b1110_1011);
        let mut dest = [0xffu8; 1];
        copy_bits(&mut dest, &src, 0, 3);
        assert_eq!(dest[0], 0b100);
        assert_eq!(count_zero_bits(&dest, 3), 2);
    }
}
