//! The hostile-guest suite: each misbehaviour is refused with the right typed error, the host
//! stays up, and the next batch through the same policy slot works.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{Int64Array, RecordBatch};
use weir_host::engine::{Engine, Limits};
use weir_host::policy::abi::OutputCheck;
use weir_host::policy::{LoadErrorKind, Phase, PolicyError, PolicyModule, PolicyRunner};
use weir_tests::hostile_wat::{self, Shape, filter_magic, transform_magic};

fn batch(rows: usize) -> RecordBatch {
    let values: Int64Array = (0..rows as i64).collect();
    RecordBatch::try_from_iter([("x", Arc::new(values) as _)]).unwrap()
}

fn engine() -> Engine {
    Engine::new(Limits {
        memory_bytes: 16 << 20,
        ..Limits::default()
    })
    .unwrap()
}

fn runner(engine: &Engine, wat: &str) -> PolicyRunner {
    let module = PolicyModule::compile(engine, "hostile", &hostile_wat::assemble(wat)).unwrap();
    PolicyRunner::new(Arc::new(module), Vec::new()).unwrap()
}

/// Sends the magic batch, returns its error, then checks a normal batch works in the same slot.
fn misbehave(runner: &mut PolicyRunner, magic: usize) -> PolicyError {
    let err = runner
        .process(&batch(magic))
        .expect_err("the hostile batch must be refused");
    assert!(!runner.is_warm(), "the failed instance must be discarded");
    let ok = runner.process(&batch(100)).expect("the next batch works");
    assert_eq!(ok.num_rows(), 100);
    assert_eq!(
        ok.column_by_name("x").unwrap().as_ref(),
        batch(100).column(0).as_ref()
    );
    if let Some(written) = ok.column_by_name("s") {
        let strings = written
            .as_any()
            .downcast_ref::<arrow_array::StringArray>()
            .unwrap();
        assert!(strings.iter().all(|s| s == Some("")));
    }
    assert!(runner.is_warm());
    err
}

fn assert_check(err: &PolicyError, check: OutputCheck) {
    assert_eq!(
        err.output_check(),
        Some(check),
        "wanted a `{check}` refusal, got: {err}"
    );
}

#[test]
fn infinite_loop_is_stopped_at_the_deadline() {
    let engine = engine();
    let mut r = runner(&engine, &hostile_wat::filter(Shape::default()));
    let started = Instant::now();
    let err = misbehave(&mut r, filter_magic::INFINITE_LOOP);
    assert!(
        matches!(err, PolicyError::TimeLimit { phase: Phase::Batch, deadline } if deadline == engine.limits().batch_deadline),
        "{err}"
    );
    // Generous: the point is that the loop was stopped at all, not how fast.
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn memory_bomb_is_stopped_at_the_cap() {
    let engine = engine();
    let mut r = runner(&engine, &hostile_wat::filter(Shape::default()));
    let err = misbehave(&mut r, filter_magic::MEMORY_BOMB);
    match err {
        PolicyError::MemoryLimit { cap, desired, .. } => {
            assert_eq!(cap, 16 << 20);
            assert!(desired > cap);
        }
        other => panic!("wanted a memory limit, got: {other}"),
    }
}

#[test]
fn filter_output_lies_are_refused_by_name() {
    let engine = engine();
    let mut r = runner(&engine, &hostile_wat::filter(Shape::default()));
    for (magic, check) in [
        (filter_magic::BITMAP_LENGTH, OutputCheck::SelectionLength),
        (filter_magic::SELECTED_COUNT, OutputCheck::RowCount),
        (filter_magic::RESULT_OUT_OF_BOUNDS, OutputCheck::Bounds),
        (filter_magic::SELECTION_OVERFLOW, OutputCheck::Overflow),
    ] {
        assert_check(&misbehave(&mut r, magic), check);
    }
}

#[test]
fn transform_output_lies_are_refused_by_name() {
    let engine = engine();
    let mut r = runner(&engine, &hostile_wat::transform(Shape::default()));
    for (magic, check) in [
        (transform_magic::INVALID_UTF8, OutputCheck::Utf8),
        (transform_magic::NON_MONOTONIC_OFFSETS, OutputCheck::Offsets),
        (transform_magic::ROW_COUNT, OutputCheck::RowCount),
        (transform_magic::WRONG_TYPE, OutputCheck::Schema),
        (transform_magic::OVERLAP, OutputCheck::Overlap),
        (transform_magic::OFFSET_OVERFLOW, OutputCheck::Overflow),
        (
            transform_magic::DESCRIPTOR_OUT_OF_BOUNDS,
            OutputCheck::Bounds,
        ),
        (transform_magic::COLUMN_COUNT, OutputCheck::Schema),
    ] {
        let err = misbehave(&mut r, magic);
        assert_check(&err, check);
        assert!(err.to_string().contains(check.as_str()), "{err}");
    }
}

#[test]
fn panic_carries_its_message() {
    let engine = engine();
    let mut r = runner(&engine, &hostile_wat::filter(Shape::default()));
    match misbehave(&mut r, filter_magic::PANIC) {
        PolicyError::Panic {
            message,
            phase: Phase::Batch,
        } => {
            assert_eq!(message, "boom: hostile panic");
        }
        other => panic!("wanted a panic, got: {other}"),
    }
}

#[test]
fn error_status_carries_its_message() {
    let engine = engine();
    let mut r = runner(&engine, &hostile_wat::filter(Shape::default()));
    match misbehave(&mut r, filter_magic::STATUS_ERROR) {
        PolicyError::Guest {
            message, status, ..
        } => {
            assert_eq!(status, weir_abi::status::GUEST_ERROR);
            assert_eq!(message, "guest says no");
        }
        other => panic!("wanted a guest error, got: {other}"),
    }
}

#[test]
fn calling_an_unprovided_wasi_function_traps() {
    let engine = engine();
    let mut r = runner(&engine, &hostile_wat::filter(Shape::default()));
    let err = misbehave(&mut r, filter_magic::FORBIDDEN_WASI_CALL);
    assert!(matches!(&err, PolicyError::Fault { .. }), "{err}");
    assert!(err.to_string().contains("path_open"), "{err}");
}

fn load_error(wat: &str) -> LoadErrorKind {
    PolicyModule::compile(&engine(), "hostile", &hostile_wat::assemble(wat))
        .expect_err("the module must be refused")
        .kind
}

#[test]
fn missing_exports_are_refused_at_load() {
    let kind = load_error(&hostile_wat::filter(Shape {
        missing_process: true,
        ..Shape::default()
    }));
    assert!(
        matches!(
            kind,
            LoadErrorKind::MissingExport {
                name: "weir_process"
            }
        ),
        "{kind}"
    );
}

#[test]
fn foreign_imports_are_refused_at_load() {
    let kind = load_error(&hostile_wat::filter(Shape {
        foreign_import: true,
        ..Shape::default()
    }));
    match kind {
        LoadErrorKind::ForbiddenImport { module, name, .. } => {
            assert_eq!((module.as_str(), name.as_str()), ("env", "socket_connect"));
        }
        other => panic!("wanted a forbidden import, got: {other}"),
    }
}

#[test]
fn modules_without_a_manifest_are_refused_at_load() {
    let kind = load_error(&hostile_wat::filter(Shape {
        no_manifest: true,
        ..Shape::default()
    }));
    assert!(matches!(kind, LoadErrorKind::MissingManifest), "{kind}");
    let kind = load_error("(module)");
    assert!(matches!(kind, LoadErrorKind::MissingManifest), "{kind}");
    let kind = PolicyModule::compile(&engine(), "garbage", b"\0asm\x01\0\0\0\x99garbage")
        .unwrap_err()
        .kind;
    assert!(matches!(kind, LoadErrorKind::Malformed { .. }), "{kind}");
}

#[test]
fn a_start_function_that_loops_is_stopped_at_the_init_deadline() {
    let engine = engine();
    let wat = hostile_wat::filter(Shape {
        looping_start: true,
        ..Shape::default()
    });
    let module =
        Arc::new(PolicyModule::compile(&engine, "hostile", &hostile_wat::assemble(&wat)).unwrap());
    let err = PolicyRunner::new(Arc::clone(&module), Vec::new()).unwrap_err();
    assert!(
        matches!(err, PolicyError::TimeLimit { phase: Phase::Init, deadline } if deadline == engine.limits().init_deadline),
        "{err}"
    );
    // The engine is still healthy: a well-behaved module runs right after.
    let mut ok = runner(&engine, &hostile_wat::filter(Shape::default()));
    assert_eq!(ok.process(&batch(10)).unwrap().num_rows(), 10);
}
