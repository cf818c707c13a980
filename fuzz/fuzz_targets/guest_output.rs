//! Validation of guest output against real guest memory: the fuzz input is written into the
//! linear memory of a live instance of a real policy module (`weir_fuzz::guest`) and read back
//! with the host's own code (`read_result`, `read_message`, `OutputAssembler`), morsel by
//! morsel, as `PolicyInstance::run_batch` does. Asserts (docs/fuzzing.md):
//!
//! * the host returns an error or arrays, never panics (the reads are bounds-checked slices of
//!   the real memory, so an out-of-bounds read would panic here);
//! * an error names its check and says what was wrong;
//! * accepted output is what the guest declared: the declared Arrow type, the right length,
//!   Arrow's full validation passes, no nulls where none are allowed, the selection's length
//!   and count agree with the row counts;
//! * accepted values are exactly the bytes the descriptors point at in guest memory.
#![no_main]

use std::cell::RefCell;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef};
use libfuzzer_sys::fuzz_target;
use weir_abi::{COLUMN_HAS_VALIDITY, COLUMN_PRESENT, ColumnDesc, ResultDesc, TypeId, status};
use weir_fuzz::guest::{Case, Guest, Morsel, POLICIES, Shape};
use weir_host::engine::{Engine, Limits};
use weir_host::policy::abi::{
    Assembled, DeclaredColumn, OutputAssembler, OutputError, read_message, read_result,
};

/// The engine and one live instance per policy.
struct Guests {
    _engine: Engine,
    guests: Vec<Guest>,
}

thread_local! {
    static GUESTS: RefCell<Guests> = RefCell::new({
        let engine = Engine::new(Limits::default()).expect("the host engine");
        let guests = POLICIES.iter().map(|name| Guest::load(&engine, name)).collect();
        Guests { _engine: engine, guests }
    });
}

/// The longest message read back.
const MESSAGE_CAP: usize = 256;

fn check_error(error: &OutputError) {
    assert!(
        !error.detail.trim().is_empty(),
        "{:?} without detail",
        error.check
    );
    assert!(error.to_string().contains(error.check.as_str()));
}

/// The bytes of a region the host accepted (it checked them; they must be in memory).
fn bytes(mem: &[u8], r: weir_abi::BufferRef) -> &[u8] {
    &mem[r.ptr as usize..r.ptr as usize + r.len as usize]
}

fn bit(bytes: &[u8], i: usize) -> bool {
    bytes[i / 8] & (1 << (i % 8)) != 0
}

/// Compares rows `at..at + desc.len` of `array` with what `desc` points at.
fn check_values(mem: &[u8], decl: &DeclaredColumn, desc: &ColumnDesc, array: &ArrayRef, at: usize) {
    let rows = desc.len as usize;
    let name = &decl.name;
    let validity = bytes(mem, desc.validity);
    for i in 0..rows {
        let valid = desc.flags & COLUMN_HAS_VALIDITY == 0 || bit(validity, i);
        assert_eq!(
            array.is_valid(at + i),
            valid,
            "column `{name}` row {i} validity"
        );
    }
    let values = bytes(mem, desc.values);
    match decl.type_id {
        TypeId::Boolean => {
            let array = array.as_boolean();
            for i in 0..rows {
                assert_eq!(
                    array.value(at + i),
                    bit(values, i),
                    "column `{name}` row {i}"
                );
            }
        }
        TypeId::Utf8 | TypeId::Binary => {
            let offsets: Vec<i32> = bytemuck::pod_collect_to_vec(bytes(mem, desc.offsets));
            for i in 0..rows {
                let want = &values[offsets[i] as usize..offsets[i + 1] as usize];
                let got: &[u8] = if decl.type_id == TypeId::Utf8 {
                    array.as_string::<i32>().value(at + i).as_bytes()
                } else {
                    array.as_binary::<i32>().value(at + i)
                };
                assert_eq!(got, want, "column `{name}` row {i}");
            }
        }
        id => {
            let width = id.fixed_width().unwrap_or(decl.byte_width) as usize;
            let data = array.to_data();
            let buffer = data.buffers()[0].as_slice();
            let start = (data.offset() + at) * width;
            assert_eq!(
                &buffer[start..start + rows * width],
                values,
                "column `{name}` values"
            );
        }
    }
}

/// What a morsel the host accepted claimed.
struct Accepted {
    morsel: Morsel,
    result: ResultDesc,
    descs: Vec<ColumnDesc>,
}

fn check_assembled(guest: &Shape, mem: &[u8], accepted: &[Accepted], out: &Assembled) {
    let input_rows: usize = accepted.iter().map(|a| a.morsel.input_rows).sum();
    let result_rows: usize = accepted.iter().map(|a| a.result.num_rows as usize).sum();
    assert!(out.selected <= input_rows);
    match &out.selection {
        Some(selection) => {
            assert_eq!(selection.len(), input_rows, "selection length");
            assert_eq!(selection.count_set_bits(), out.selected, "selected count");
        }
        None => assert_eq!(out.selected, input_rows),
    }
    assert_eq!(out.columns.len(), guest.outputs.len());
    if guest.filter {
        assert!(out.selection.is_some(), "a filter without a selection");
        assert_eq!(out.selected, result_rows, "a filter's row count");
        assert_eq!(out.num_rows, input_rows);
        return;
    }
    assert_eq!(out.num_rows, result_rows);
    if guest.row_preserving {
        assert_eq!(out.num_rows, input_rows);
    }
    for (i, (decl, column)) in guest.outputs.iter().zip(&out.columns).enumerate() {
        let Some(array) = column else {
            assert!(decl.optional, "required column `{}` left out", decl.name);
            for a in accepted {
                assert_eq!(a.descs[i].flags & COLUMN_PRESENT, 0);
            }
            continue;
        };
        assert_eq!(array.data_type(), &decl.data_type, "column `{}`", decl.name);
        assert_eq!(array.len(), out.num_rows, "column `{}` length", decl.name);
        if let Err(e) = array.to_data().validate_full() {
            panic!("column `{}` was accepted but is invalid: {e}", decl.name);
        }
        if !decl.optional {
            assert_eq!(array.null_count(), 0, "nulls in required `{}`", decl.name);
        }
        let mut at = 0;
        for a in accepted {
            let desc = &a.descs[i];
            assert_ne!(desc.flags & COLUMN_PRESENT, 0);
            check_values(mem, decl, desc, array, at);
            at += desc.len as usize;
        }
    }
}

fn run(guest: &Shape, mem: &[u8], morsels: &[Morsel]) {
    let total: usize = morsels.iter().map(|m| m.input_rows).sum();
    let mut assembler =
        OutputAssembler::new(&guest.outputs, guest.filter, guest.row_preserving, total);
    let mut accepted = Vec::new();
    for &morsel in morsels {
        let result = match read_result(mem, morsel.result_ptr) {
            Ok(result) => result,
            Err(e) => return check_error(&e),
        };
        if result.status != status::OK {
            let message = read_message(mem, result.message, MESSAGE_CAP);
            assert!(
                message.len() <= 3 * MESSAGE_CAP || message.starts_with("<unreadable message"),
                "a {}-byte message",
                message.len()
            );
            return;
        }
        if let Err(e) = assembler.add(mem, morsel.result_ptr, &result, morsel.input_rows) {
            return check_error(&e);
        }
        let descs = if guest.filter {
            Vec::new()
        } else {
            let table = bytes(
                mem,
                weir_abi::BufferRef {
                    ptr: result.columns,
                    len: result.num_columns * size_of::<ColumnDesc>() as u32,
                },
            );
            bytemuck::pod_collect_to_vec(table)
        };
        accepted.push(Accepted {
            morsel,
            result,
            descs,
        });
    }
    match assembler.finish() {
        Ok(out) => check_assembled(guest, mem, &accepted, &out),
        Err(e) => check_error(&e),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(case) = Case::parse(data) else {
        return;
    };
    GUESTS.with_borrow_mut(|g| {
        g.guests[case.policy].with_image(case.image, |shape, mem| run(shape, mem, &case.morsels));
    });
});
