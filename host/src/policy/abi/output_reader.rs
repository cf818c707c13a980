//! Reading what a guest returns (ABI.md §6, §7): every pointer and length is checked against
//! linear memory with checked arithmetic, every buffer is checked against the declaration, and
//! only then copied into host Arrow buffers and validated in full.

use std::fmt;

use arrow_array::{ArrayRef, make_array};
use arrow_buffer::{BooleanBuffer, BooleanBufferBuilder, MutableBuffer};
use arrow_data::ArrayData;
use weir_abi::{
    BufferRef, COLUMN_HAS_VALIDITY, COLUMN_PRESENT, ColumnDesc, ResultDesc, TypeId, bitmap_len,
};

use super::declared::DeclaredColumn;

/// The check a guest's output failed (names as in ABI.md §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputCheck {
    /// A pointer or length points outside linear memory.
    Bounds,
    /// `ptr + len` (or a size computed from the output) overflows.
    Overflow,
    /// Two output buffers overlap.
    Overlap,
    /// The selection bitmap has the wrong length.
    SelectionLength,
    /// A row count disagrees with the input, the bitmap or another column.
    RowCount,
    /// The output columns differ from the declared schema.
    Schema,
    /// A bitmap, offsets or values buffer has the wrong length.
    BufferLength,
    /// Offsets do not start at 0 or decrease.
    Offsets,
    /// A Utf8 column holds invalid UTF-8.
    Utf8,
    /// A column declared without nulls has nulls.
    Nulls,
    /// `null_count` disagrees with the validity bitmap.
    NullCount,
    /// Arrow's full validation refused the assembled array.
    ArrowValidation,
}

impl OutputCheck {
    /// The check's stable name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Bounds => "bounds",
            Self::Overflow => "overflow",
            Self::Overlap => "overlap",
            Self::SelectionLength => "selection_length",
            Self::RowCount => "row_count",
            Self::Schema => "schema",
            Self::BufferLength => "buffer_length",
            Self::Offsets => "offsets",
            Self::Utf8 => "utf8",
            Self::Nulls => "nulls",
            Self::NullCount => "null_count",
            Self::ArrowValidation => "arrow_validation",
        }
    }
}

impl fmt::Display for OutputCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A guest output that failed a check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad output, check `{check}` failed: {detail}")]
pub struct OutputError {
    /// The check that failed.
    pub check: OutputCheck,
    /// What exactly was wrong.
    pub detail: String,
}

fn fail<T>(check: OutputCheck, detail: impl Into<String>) -> Result<T, OutputError> {
    Err(OutputError {
        check,
        detail: detail.into(),
    })
}

/// The bytes of `r` in `mem`, or the check it fails.
fn region<'m>(mem: &'m [u8], r: BufferRef, what: &str) -> Result<&'m [u8], OutputError> {
    let Some(end) = r.ptr.checked_add(r.len) else {
        return fail(
            OutputCheck::Overflow,
            format!("{what}: {:#x} + {} overflows", r.ptr, r.len),
        );
    };
    match mem.get(r.ptr as usize..end as usize) {
        Some(bytes) => Ok(bytes),
        None => fail(
            OutputCheck::Bounds,
            format!(
                "{what}: [{:#x}, {end:#x}) is outside the {}-byte memory",
                r.ptr,
                mem.len()
            ),
        ),
    }
}

/// Reads the [`ResultDesc`] at `ptr`.
///
/// # Errors
/// When it lies outside memory.
pub fn read_result(mem: &[u8], ptr: u32) -> Result<ResultDesc, OutputError> {
    let len = size_of::<ResultDesc>() as u32;
    let bytes = region(mem, BufferRef { ptr, len }, "result descriptor")?;
    Ok(bytemuck::pod_read_unaligned(bytes))
}

/// Reads a guest message (error status or panic), bounds-checked, lossily decoded, capped.
#[must_use]
pub fn read_message(mem: &[u8], r: BufferRef, cap: usize) -> String {
    match region(mem, r, "message") {
        Ok(bytes) => String::from_utf8_lossy(&bytes[..bytes.len().min(cap)]).into_owned(),
        Err(e) => format!("<unreadable message: {e}>"),
    }
}

/// Number of set bits among the first `len` bits of `bytes`.
fn count_set_bits(bytes: &[u8], len: usize) -> usize {
    let full = len / 8;
    let mut count: usize = bytes[..full].iter().map(|b| b.count_ones() as usize).sum();
    if !len.is_multiple_of(8) {
        count += (bytes[full] & ((1u8 << (len % 8)) - 1)).count_ones() as usize;
    }
    count
}

/// Checks that no two non-empty regions overlap.
fn check_disjoint(regions: &mut Vec<(u32, u32, String)>) -> Result<(), OutputError> {
    regions.retain(|r| r.1 > 0);
    regions.sort_unstable_by_key(|r| r.0);
    for pair in regions.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        // Both regions were bounds-checked already, so `a.0 + a.1` cannot overflow.
        if a.0 + a.1 > b.0 {
            return fail(OutputCheck::Overlap, format!("{} overlaps {}", a.2, b.2));
        }
    }
    Ok(())
}

struct ColumnAccumulator {
    decl: DeclaredColumn,
    /// Whether the guest produced the column; decided by the first morsel.
    present: Option<bool>,
    len: usize,
    null_count: usize,
    validity: BooleanBufferBuilder,
    values: MutableBuffer,
    bits: BooleanBufferBuilder,
    offsets: Vec<i32>,
}

impl ColumnAccumulator {
    fn new(decl: DeclaredColumn, rows: usize) -> Self {
        let width = decl.type_id.fixed_width().unwrap_or(decl.byte_width) as usize;
        let is_var = decl.type_id.has_offsets();
        Self {
            present: None,
            len: 0,
            null_count: 0,
            validity: BooleanBufferBuilder::new(rows),
            values: MutableBuffer::new(if is_var { 0 } else { rows * width }),
            bits: BooleanBufferBuilder::new(if decl.type_id == TypeId::Boolean {
                rows
            } else {
                0
            }),
            offsets: if is_var { vec![0] } else { Vec::new() },
            decl,
        }
    }

    /// Checks one morsel's column and appends it.
    fn append(&mut self, mem: &[u8], desc: &ColumnDesc, rows: usize) -> Result<(), OutputError> {
        let name = &self.decl.name;
        let present = desc.flags & COLUMN_PRESENT != 0;
        if *self.present.get_or_insert(present) != present {
            return fail(
                OutputCheck::Schema,
                format!("column `{name}` is present in some morsels of the batch and not others"),
            );
        }
        if !present {
            if !self.decl.optional {
                return fail(
                    OutputCheck::Schema,
                    format!("column `{name}` is declared without nulls and cannot be left out"),
                );
            }
            if *desc != ColumnDesc::default() {
                return fail(
                    OutputCheck::Schema,
                    format!("column `{name}` is left out but its descriptor is not all zero"),
                );
            }
            return Ok(());
        }
        if desc.type_id != self.decl.type_id as u8
            || desc.time_unit != self.decl.time_unit
            || desc.byte_width != self.decl.byte_width
        {
            return fail(
                OutputCheck::Schema,
                format!(
                    "column `{name}`: type id {} unit {} width {} does not match the declared {}",
                    desc.type_id, desc.time_unit, desc.byte_width, self.decl.data_type
                ),
            );
        }
        if desc.len as usize != rows {
            return fail(
                OutputCheck::RowCount,
                format!(
                    "column `{name}` has {} rows, the result has {rows}",
                    desc.len
                ),
            );
        }
        let validity = region(mem, desc.validity, &format!("column `{name}` validity"))?;
        let offsets = region(mem, desc.offsets, &format!("column `{name}` offsets"))?;
        let values = region(mem, desc.values, &format!("column `{name}` values"))?;
        let bitmap_bytes = bitmap_len(desc.len) as usize;
        let exact = |buf: &[u8], want: usize, what: &str| -> Result<(), OutputError> {
            if buf.len() == want {
                Ok(())
            } else {
                fail(
                    OutputCheck::BufferLength,
                    format!(
                        "column `{name}` {what} is {} bytes, must be {want}",
                        buf.len()
                    ),
                )
            }
        };
        // Validity and null count.
        let nulls = if desc.flags & COLUMN_HAS_VALIDITY != 0 {
            exact(validity, bitmap_bytes, "validity bitmap")?;
            rows - count_set_bits(validity, rows)
        } else {
            exact(validity, 0, "validity bitmap (flag clear)")?;
            0
        };
        if nulls != desc.null_count as usize {
            return fail(
                OutputCheck::NullCount,
                format!(
                    "column `{name}` says {} nulls, its bitmap has {nulls}",
                    desc.null_count
                ),
            );
        }
        if nulls > 0 && !self.decl.optional {
            return fail(
                OutputCheck::Nulls,
                format!("column `{name}` is declared without nulls and has {nulls}"),
            );
        }
        // Values.
        match self.decl.type_id {
            TypeId::Boolean => {
                exact(offsets, 0, "offsets")?;
                exact(values, bitmap_bytes, "values bitmap")?;
                self.bits.append_packed_range(0..rows, values);
            }
            TypeId::Utf8 | TypeId::Binary => {
                exact(offsets, (rows + 1) * 4, "offsets")?;
                let offs: Vec<i32> = bytemuck::pod_collect_to_vec(offsets);
                if offs[0] != 0 {
                    return fail(
                        OutputCheck::Offsets,
                        format!("column `{name}` offsets start at {}, not 0", offs[0]),
                    );
                }
                if let Some(i) = offs.windows(2).position(|w| w[1] < w[0]) {
                    return fail(
                        OutputCheck::Offsets,
                        format!(
                            "column `{name}` offsets decrease at row {i}: {} then {}",
                            offs[i],
                            offs[i + 1]
                        ),
                    );
                }
                exact(
                    values,
                    usize::try_from(offs[rows]).unwrap_or(usize::MAX),
                    "values",
                )?;
                if self.decl.type_id == TypeId::Utf8
                    && let Err(e) = std::str::from_utf8(values)
                {
                    return fail(OutputCheck::Utf8, format!("column `{name}`: {e}"));
                }
                let base = self.offsets[self.offsets.len() - 1];
                let Some(total) = base.checked_add(offs[rows]) else {
                    return fail(
                        OutputCheck::Overflow,
                        format!(
                            "column `{name}` holds more than {} bytes of values",
                            i32::MAX
                        ),
                    );
                };
                debug_assert!(total >= base);
                self.offsets.extend(offs[1..].iter().map(|o| o + base));
                self.values.extend_from_slice(values);
            }
            _ => {
                exact(offsets, 0, "offsets")?;
                let width = self
                    .decl
                    .type_id
                    .fixed_width()
                    .unwrap_or(self.decl.byte_width);
                exact(values, rows * width as usize, "values")?;
                self.values.extend_from_slice(values);
            }
        }
        if nulls > 0 {
            self.validity.append_packed_range(0..rows, validity);
        } else {
            self.validity.append_n(rows, true);
        }
        self.null_count += nulls;
        self.len += rows;
        Ok(())
    }

    fn finish(mut self) -> Result<Option<ArrayRef>, OutputError> {
        if self.present == Some(false) {
            return Ok(None);
        }
        let name = self.decl.name.clone();
        let mut builder = ArrayData::builder(self.decl.data_type.clone()).len(self.len);
        if self.null_count > 0 {
            builder = builder.null_bit_buffer(Some(self.validity.finish().into_inner()));
        }
        builder = match self.decl.type_id {
            TypeId::Boolean => builder.add_buffer(self.bits.finish().into_inner()),
            TypeId::Utf8 | TypeId::Binary => builder
                .add_buffer(arrow_buffer::Buffer::from_vec(self.offsets))
                .add_buffer(self.values.into()),
            _ => builder.add_buffer(self.values.into()),
        };
        // SAFETY: nothing reads `data` before `validate_full` below has accepted it; a refused
        // array is dropped without being used.
        let data = unsafe { builder.build_unchecked() };
        if let Err(e) = data.validate_full() {
            return fail(
                OutputCheck::ArrowValidation,
                format!("column `{name}`: {e}"),
            );
        }
        Ok(Some(make_array(data)))
    }
}

/// What a policy produced for one whole batch, assembled from its morsels.
#[derive(Debug)]
pub struct Assembled {
    /// Rows to keep (filters always; transforms when they returned one). `None`: keep all.
    pub selection: Option<BooleanBuffer>,
    /// Number of rows the selection keeps (or all rows).
    pub selected: usize,
    /// Transform output columns in `writes` order (empty for filters); `None` for an optional
    /// column the guest left out.
    pub columns: Vec<Option<ArrayRef>>,
    /// Rows in the output columns (transforms), or input rows (filters).
    pub num_rows: usize,
}

/// Collects and checks a policy's output morsel by morsel.
pub struct OutputAssembler {
    filter: bool,
    row_preserving: bool,
    input_rows: usize,
    num_rows: usize,
    selection: Option<BooleanBufferBuilder>,
    selected: usize,
    columns: Vec<ColumnAccumulator>,
}

impl fmt::Debug for OutputAssembler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutputAssembler")
            .field("filter", &self.filter)
            .field("input_rows", &self.input_rows)
            .finish_non_exhaustive()
    }
}

impl OutputAssembler {
    /// An assembler for a batch of `rows` rows through a policy with these outputs.
    #[must_use]
    pub fn new(
        outputs: &[DeclaredColumn],
        filter: bool,
        row_preserving: bool,
        rows: usize,
    ) -> Self {
        Self {
            filter,
            row_preserving,
            input_rows: 0,
            num_rows: 0,
            selection: None,
            selected: 0,
            columns: outputs
                .iter()
                .map(|d| ColumnAccumulator::new(d.clone(), rows))
                .collect(),
        }
    }

    /// Checks and appends the result of one morsel of `input_rows` rows. `result_ptr` is where
    /// `result` was read from.
    ///
    /// # Errors
    /// The first failed check.
    pub fn add(
        &mut self,
        mem: &[u8],
        result_ptr: u32,
        result: &ResultDesc,
        input_rows: usize,
    ) -> Result<(), OutputError> {
        let mut regions = vec![(
            result_ptr,
            size_of::<ResultDesc>() as u32,
            "result".to_owned(),
        )];
        // Selection.
        let selection = region(mem, result.selection, "selection")?;
        if !self.filter && !self.row_preserving && !selection.is_empty() {
            return fail(
                OutputCheck::Schema,
                "a transform with `passthrough: none` cannot return a selection",
            );
        }
        if self.filter || !selection.is_empty() {
            let want = input_rows.div_ceil(8);
            if selection.len() != want {
                return fail(
                    OutputCheck::SelectionLength,
                    format!(
                        "selection is {} bytes, {input_rows} rows need {want}",
                        selection.len()
                    ),
                );
            }
            let count = count_set_bits(selection, input_rows);
            if self.filter && count != result.num_rows as usize {
                return fail(
                    OutputCheck::RowCount,
                    format!(
                        "result says {} rows selected, the bitmap selects {count}",
                        result.num_rows
                    ),
                );
            }
            regions.push((
                result.selection.ptr,
                result.selection.len,
                "selection".to_owned(),
            ));
            let builder = self.selection.get_or_insert_with(|| {
                let mut b = BooleanBufferBuilder::new(self.input_rows + input_rows);
                b.append_n(self.input_rows, true);
                b
            });
            builder.append_packed_range(0..input_rows, selection);
            self.selected += count;
        } else {
            if let Some(builder) = &mut self.selection {
                builder.append_n(input_rows, true);
            }
            self.selected += input_rows;
        }
        // Columns.
        if result.num_columns as usize != self.columns.len() {
            return fail(
                OutputCheck::Schema,
                format!(
                    "result has {} columns, the policy declares {}",
                    result.num_columns,
                    self.columns.len()
                ),
            );
        }
        if !self.filter {
            let rows = result.num_rows as usize;
            if self.row_preserving && rows != input_rows {
                return fail(
                    OutputCheck::RowCount,
                    format!("result has {rows} rows, the input had {input_rows}"),
                );
            }
            let Some(table_len) = result
                .num_columns
                .checked_mul(size_of::<ColumnDesc>() as u32)
            else {
                return fail(
                    OutputCheck::Overflow,
                    "column descriptor table size overflows",
                );
            };
            let table_ref = BufferRef {
                ptr: result.columns,
                len: table_len,
            };
            let table = region(mem, table_ref, "column descriptors")?;
            regions.push((
                table_ref.ptr,
                table_ref.len,
                "column descriptors".to_owned(),
            ));
            let descs: Vec<ColumnDesc> = bytemuck::pod_collect_to_vec(table);
            for (desc, acc) in descs.iter().zip(&self.columns) {
                for (buf, what) in [
                    (desc.validity, "validity"),
                    (desc.offsets, "offsets"),
                    (desc.values, "values"),
                ] {
                    regions.push((
                        buf.ptr,
                        buf.len,
                        format!("column `{}` {what}", acc.decl.name),
                    ));
                }
            }
            // Bounds first, so that overlap reports only real, in-memory regions.
            for (ptr, len, what) in &regions {
                region(
                    mem,
                    BufferRef {
                        ptr: *ptr,
                        len: *len,
                    },
                    what,
                )?;
            }
            check_disjoint(&mut regions)?;
            for (desc, acc) in descs.iter().zip(&mut self.columns) {
                acc.append(mem, desc, rows)?;
            }
            self.num_rows += rows;
        }
        self.input_rows += input_rows;
        Ok(())
    }

    /// Builds and fully validates the output arrays.
    ///
    /// # Errors
    /// [`OutputCheck::ArrowValidation`] when Arrow refuses an assembled array.
    pub fn finish(self) -> Result<Assembled, OutputError> {
        let columns = self
            .columns
            .into_iter()
            .map(ColumnAccumulator::finish)
            .collect::<Result<_, _>>()?;
        let selection = self.selection.map(|mut b| b.finish());
        Ok(Assembled {
            selection,
            selected: self.selected,
            columns,
            num_rows: if self.filter {
                self.input_rows
            } else {
                self.num_rows
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_bounds_and_overflow_checked() {
        let mem = [0u8; 64];
        assert!(region(&mem, BufferRef { ptr: 60, len: 4 }, "x").is_ok());
        assert_eq!(
            region(&mem, BufferRef { ptr: 61, len: 4 }, "x")
                .unwrap_err()
                .check,
            OutputCheck::Bounds
        );
        assert_eq!(
            region(
                &mem,
                BufferRef {
                    ptr: u32::MAX,
                    len: 2
                },
                "x"
            )
            .unwrap_err()
            .check,
            OutputCheck::Overflow
        );
    }

    #[test]
    fn overlapping_regions_are_refused() {
        let mut ok = vec![
            (0, 8, "a".to_owned()),
            (8, 8, "b".to_owned()),
            (100, 0, "c".to_owned()),
        ];
        assert!(check_disjoint(&mut ok).is_ok());
        let mut bad = vec![(0, 9, "a".to_owned()), (8, 8, "b".to_owned())];
        assert_eq!(
            check_disjoint(&mut bad).unwrap_err().check,
            OutputCheck::Overlap
        );
    }

    #[test]
    fn set_bits_are_counted_only_within_the_row_count() {
        assert_eq!(count_set_bits(&[0xff, 0xff], 12), 12);
        assert_eq!(count_set_bits(&[0b0000_0101], 3), 2);
    }
}
