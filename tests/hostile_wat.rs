//! Hand-written hostile guests. WAT is the right tool here: the SDK cannot produce these
//! outputs, which is the point.
//!
//! Each module behaves as a well-formed policy except on batches whose row count is a "magic"
//! number, where it misbehaves in one specific way. That lets a test send a bad batch and then a
//! good one through the same policy slot.

/// Row counts that trigger a filter module's misbehaviour.
pub mod filter_magic {
    /// Loops forever in `weir_process`.
    pub const INFINITE_LOOP: usize = 13;
    /// Grows memory without bound.
    pub const MEMORY_BOMB: usize = 14;
    /// Returns a selection bitmap one byte too long.
    pub const BITMAP_LENGTH: usize = 15;
    /// Claims one selected row fewer than its bitmap selects.
    pub const SELECTED_COUNT: usize = 16;
    /// Reports a panic through `weir.panic` and traps.
    pub const PANIC: usize = 17;
    /// Returns status GUEST_ERROR with a message.
    pub const STATUS_ERROR: usize = 18;
    /// Returns a result pointer outside memory.
    pub const RESULT_OUT_OF_BOUNDS: usize = 19;
    /// Returns a selection whose `ptr + len` overflows 32 bits.
    pub const SELECTION_OVERFLOW: usize = 20;
    /// Calls a WASI function the host does not provide (`path_open`).
    pub const FORBIDDEN_WASI_CALL: usize = 21;
}

/// Row counts that trigger a transform module's misbehaviour.
pub mod transform_magic {
    /// Utf8 output holding `\xff\xfe`.
    pub const INVALID_UTF8: usize = 13;
    /// Offsets that go down.
    pub const NON_MONOTONIC_OFFSETS: usize = 14;
    /// One output row more than input rows.
    pub const ROW_COUNT: usize = 15;
    /// An Int64 column where Utf8 is declared.
    pub const WRONG_TYPE: usize = 16;
    /// A validity bitmap that overlaps the offsets.
    pub const OVERLAP: usize = 17;
    /// A values buffer whose `ptr + len` overflows 32 bits.
    pub const OFFSET_OVERFLOW: usize = 18;
    /// A column descriptor table outside memory.
    pub const DESCRIPTOR_OUT_OF_BOUNDS: usize = 19;
    /// Two columns where one is declared.
    pub const COLUMN_COUNT: usize = 20;
}

/// Variations on the module's shape (not its behaviour per batch).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shape {
    /// Omit the `weir_process` export.
    pub missing_process: bool,
    /// Import `env.socket_connect`, which no policy may import.
    pub foreign_import: bool,
    /// A start function that loops forever.
    pub looping_start: bool,
    /// Leave out the `weir.policy` manifest section.
    pub no_manifest: bool,
}

const FILTER_MANIFEST: &str =
    r#"{"abi_version":1,"name":"hostile-filter","kind":"filter","reads":[]}"#;
const TRANSFORM_MANIFEST: &str = r#"{"abi_version":1,"name":"hostile-transform","kind":"transform","reads":[],"writes":[{"name":"s","type":"utf8","optional":true}],"passthrough":"all"}"#;

fn common(shape: Shape, manifest: &str) -> String {
    let mut wat = String::from(
        r#"
  (import "weir" "panic" (func $panic (param i32 i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (memory (export "memory") 4)
  (global $bump (mut i32) (i32.const 0x20000))
  (data (i32.const 0x100) "boom: hostile panic")
  (data (i32.const 0x200) "guest says no")
  (data (i32.const 0x300) "\ff\fe")
  (func (export "weir_abi_version") (result i32) (i32.const 1))
  (func (export "weir_alloc") (param $size i32) (param $align i32) (result i32)
    (local $ptr i32) (local $end i32)
    (local.set $ptr
      (i32.and
        (i32.add (global.get $bump) (i32.sub (local.get $align) (i32.const 1)))
        (i32.sub (i32.const 0) (local.get $align))))
    (local.set $end (i32.add (local.get $ptr) (local.get $size)))
    (if (i32.gt_u (local.get $end) (i32.mul (memory.size) (i32.const 65536)))
      (then
        (if (i32.eq
              (memory.grow
                (i32.sub
                  (i32.shr_u (i32.add (local.get $end) (i32.const 65535)) (i32.const 16))
                  (memory.size)))
              (i32.const -1))
          (then (return (i32.const 0))))))
    (global.set $bump (local.get $end))
    (local.get $ptr))
  (func (export "weir_free") (param i32 i32 i32))
  (func (export "weir_init") (param i32 i32) (result i32)
    (memory.fill (i32.const 0x1000) (i32.const 0) (i32.const 32))
    (i32.const 0x1000))
  (func $result (param $status i32) (param $rows i32) (param $sel i32) (param $sel_len i32)
                (param $ncols i32) (param $cols i32)
    (i32.store offset=0 (i32.const 0x1000) (local.get $status))
    (i32.store offset=4 (i32.const 0x1000) (local.get $rows))
    (i32.store offset=8 (i32.const 0x1000) (local.get $sel))
    (i32.store offset=12 (i32.const 0x1000) (local.get $sel_len))
    (i32.store offset=16 (i32.const 0x1000) (local.get $ncols))
    (i32.store offset=20 (i32.const 0x1000) (local.get $cols))
    (i32.store offset=24 (i32.const 0x1000) (i32.const 0))
    (i32.store offset=28 (i32.const 0x1000) (i32.const 0)))
  ;; Stores `value` into offsets[from..=n] (i32s at 0x4000).
  (func $fill_offsets (param $from i32) (param $n i32) (param $value i32)
    (block $done
      (loop $next
        (br_if $done (i32.gt_u (local.get $from) (local.get $n)))
        (i32.store (i32.add (i32.const 0x4000) (i32.shl (local.get $from) (i32.const 2)))
                   (local.get $value))
        (local.set $from (i32.add (local.get $from) (i32.const 1)))
        (br $next))))
"#,
    );
    if shape.foreign_import {
        wat.insert_str(
            0,
            r#"  (import "env" "socket_connect" (func (param i32) (result i32)))"#,
        );
    }
    if shape.looping_start {
        wat.push_str("  (func $spin (loop $l (br $l)))\n  (start $spin)\n");
    }
    if !shape.no_manifest {
        wat.push_str(&format!(
            "  (@custom \"weir.policy\" \"{}\")\n",
            manifest.replace('"', "\\\"")
        ));
    }
    wat
}

fn process_export(shape: Shape) -> &'static str {
    if shape.missing_process {
        ""
    } else {
        r#"(export "weir_process")"#
    }
}

/// A filter (no input columns) that keeps every row, except on the magic row counts of
/// [`filter_magic`].
#[must_use]
pub fn filter(shape: Shape) -> String {
    use filter_magic as m;
    format!(
        r#"(module
{common}
  (func {export} (param $batch i32) (result i32)
    (local $n i32) (local $bytes i32)
    (local.set $n (i32.load offset=4 (local.get $batch)))
    (local.set $bytes (i32.shr_u (i32.add (local.get $n) (i32.const 7)) (i32.const 3)))
    (memory.fill (i32.const 0x2000) (i32.const 0xff) (local.get $bytes))
    (call $result (i32.const 0) (local.get $n) (i32.const 0x2000) (local.get $bytes)
                  (i32.const 0) (i32.const 0))
    (if (i32.eq (local.get $n) (i32.const {loop_}))
      (then (loop $l (br $l))))
    (if (i32.eq (local.get $n) (i32.const {bomb}))
      (then (loop $l (drop (memory.grow (i32.const 16))) (br $l))))
    (if (i32.eq (local.get $n) (i32.const {bitmap}))
      (then (i32.store offset=12 (i32.const 0x1000) (i32.add (local.get $bytes) (i32.const 1)))))
    (if (i32.eq (local.get $n) (i32.const {count}))
      (then (i32.store offset=4 (i32.const 0x1000) (i32.sub (local.get $n) (i32.const 1)))))
    (if (i32.eq (local.get $n) (i32.const {panic}))
      (then (call $panic (i32.const 0x100) (i32.const 19)) (unreachable)))
    (if (i32.eq (local.get $n) (i32.const {status}))
      (then
        (i32.store offset=0 (i32.const 0x1000) (i32.const 1))
        (i32.store offset=24 (i32.const 0x1000) (i32.const 0x200))
        (i32.store offset=28 (i32.const 0x1000) (i32.const 13))))
    (if (i32.eq (local.get $n) (i32.const {oob}))
      (then (return (i32.const 0xffffff00))))
    (if (i32.eq (local.get $n) (i32.const {overflow}))
      (then
        (i32.store offset=8 (i32.const 0x1000) (i32.const 0xfffffff0))
        (i32.store offset=12 (i32.const 0x1000) (i32.const 0x20))))
    (if (i32.eq (local.get $n) (i32.const {wasi}))
      (then (drop (call $path_open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 0)
                                   (i32.const 0) (i64.const 0) (i64.const 0) (i32.const 0)
                                   (i32.const 0)))))
    (i32.const 0x1000))
)"#,
        common = common(shape, FILTER_MANIFEST),
        export = process_export(shape),
        loop_ = m::INFINITE_LOOP,
        bomb = m::MEMORY_BOMB,
        bitmap = m::BITMAP_LENGTH,
        count = m::SELECTED_COUNT,
        panic = m::PANIC,
        status = m::STATUS_ERROR,
        oob = m::RESULT_OUT_OF_BOUNDS,
        overflow = m::SELECTION_OVERFLOW,
        wasi = m::FORBIDDEN_WASI_CALL,
    )
}

/// A transform writing one Utf8 column `s` of empty strings, except on the magic row counts of
/// [`transform_magic`].
#[must_use]
pub fn transform(shape: Shape) -> String {
    use transform_magic as m;
    format!(
        r#"(module
{common}
  (func {export} (param $batch i32) (result i32)
    (local $n i32) (local $obytes i32)
    (local.set $n (i32.load offset=4 (local.get $batch)))
    (local.set $obytes (i32.shl (i32.add (local.get $n) (i32.const 1)) (i32.const 2)))
    (memory.fill (i32.const 0x4000) (i32.const 0) (local.get $obytes))
    ;; ColumnDesc at 0x1100: utf8 (12), PRESENT (flags byte = 1), n rows, no nulls, offsets at
    ;; 0x4000, no values.
    (i32.store offset=0 (i32.const 0x1100) (i32.const 0x1000c))
    (i32.store offset=4 (i32.const 0x1100) (i32.const 0))
    (i32.store offset=8 (i32.const 0x1100) (local.get $n))
    (i32.store offset=12 (i32.const 0x1100) (i32.const 0))
    (i32.store offset=16 (i32.const 0x1100) (i32.const 0))
    (i32.store offset=20 (i32.const 0x1100) (i32.const 0))
    (i32.store offset=24 (i32.const 0x1100) (i32.const 0x4000))
    (i32.store offset=28 (i32.const 0x1100) (local.get $obytes))
    (i32.store offset=32 (i32.const 0x1100) (i32.const 0x300))
    (i32.store offset=36 (i32.const 0x1100) (i32.const 0))
    (call $result (i32.const 0) (local.get $n) (i32.const 0) (i32.const 0)
                  (i32.const 1) (i32.const 0x1100))
    (if (i32.eq (local.get $n) (i32.const {utf8}))
      (then
        (call $fill_offsets (i32.const 1) (local.get $n) (i32.const 2))
        (i32.store offset=36 (i32.const 0x1100) (i32.const 2))))
    (if (i32.eq (local.get $n) (i32.const {monotonic}))
      (then
        (call $fill_offsets (i32.const 1) (local.get $n) (i32.const 1))
        (i32.store (i32.const 0x4004) (i32.const 2))
        (i32.store offset=36 (i32.const 0x1100) (i32.const 1))))
    (if (i32.eq (local.get $n) (i32.const {rows}))
      (then
        (i32.store offset=4 (i32.const 0x1000) (i32.add (local.get $n) (i32.const 1)))
        (i32.store offset=8 (i32.const 0x1100) (i32.add (local.get $n) (i32.const 1)))))
    (if (i32.eq (local.get $n) (i32.const {wrong_type}))
      (then (i32.store offset=0 (i32.const 0x1100) (i32.const 0x10005))))
    (if (i32.eq (local.get $n) (i32.const {overlap}))
      (then
        (i32.store offset=0 (i32.const 0x1100) (i32.const 0x3000c))
        (i32.store offset=16 (i32.const 0x1100) (i32.const 0x4000))
        (i32.store offset=20 (i32.const 0x1100)
          (i32.shr_u (i32.add (local.get $n) (i32.const 7)) (i32.const 3)))))
    (if (i32.eq (local.get $n) (i32.const {overflow}))
      (then
        (i32.store offset=32 (i32.const 0x1100) (i32.const 0xfffffff0))
        (i32.store offset=36 (i32.const 0x1100) (i32.const 0x20))))
    (if (i32.eq (local.get $n) (i32.const {oob}))
      (then (i32.store offset=20 (i32.const 0x1000) (i32.const 0x7ffffff0))))
    (if (i32.eq (local.get $n) (i32.const {cols}))
      (then (i32.store offset=16 (i32.const 0x1000) (i32.const 2))))
    (i32.const 0x1000))
)"#,
        common = common(shape, TRANSFORM_MANIFEST),
        export = process_export(shape),
        utf8 = m::INVALID_UTF8,
        monotonic = m::NON_MONOTONIC_OFFSETS,
        rows = m::ROW_COUNT,
        wrong_type = m::WRONG_TYPE,
        overlap = m::OVERLAP,
        overflow = m::OFFSET_OVERFLOW,
        oob = m::DESCRIPTOR_OUT_OF_BOUNDS,
        cols = m::COLUMN_COUNT,
    )
}

/// Assembles WAT text into a module binary.
#[must_use]
pub fn assemble(wat: &str) -> Vec<u8> {
    wat::parse_str(wat).unwrap_or_else(|e| panic!("hostile WAT does not assemble: {e}"))
}
