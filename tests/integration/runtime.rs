//! The runtime around the policies: every type through the SDK and back, morsels, sliced input,
//! input errors, Rust guests that fail, chains and fail modes, background compilation.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::builder::{BinaryBuilder, FixedSizeBinaryBuilder};
use arrow_array::types::*;
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, PrimitiveArray, RecordBatch,
    StringArray,
};
use weir_host::engine::{Engine, Limits};
use weir_host::policy::{
    ErrorKind, FailMode, Isolation, LoadErrorKind, Phase, PolicyChain, PolicyError, PolicyModule,
    PolicyRunner, compile_in_background,
};
use weir_host::sources::generate::{flow_batch, sensor_batch};
use weir_tests::{engine, load, policy_bytes, runner};

/// `rows` rows of every ABI type, every third value null.
fn every_type(rows: usize) -> RecordBatch {
    fn nth<T>(i: usize, v: T) -> Option<T> {
        (i % 3 != 1).then_some(v)
    }
    fn prim<T: ArrowPrimitiveType>(
        rows: usize,
        f: impl Fn(usize) -> T::Native,
    ) -> PrimitiveArray<T> {
        (0..rows).map(|i| nth(i, f(i))).collect()
    }
    let mut binary = BinaryBuilder::new();
    let mut fsb = FixedSizeBinaryBuilder::new(4);
    for i in 0..rows {
        match nth(i, ()) {
            Some(()) => {
                binary.append_value(vec![i as u8; i % 5]);
                fsb.append_value((i as u32).to_le_bytes()).unwrap();
            }
            None => {
                binary.append_null();
                fsb.append_null();
            }
        }
    }
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "bool",
            Arc::new(
                (0..rows)
                    .map(|i| nth(i, i % 2 == 0))
                    .collect::<BooleanArray>(),
            ),
        ),
        (
            "i8",
            Arc::new(prim::<Int8Type>(rows, |i| (i as i8).wrapping_sub(64))),
        ),
        (
            "i16",
            Arc::new(prim::<Int16Type>(rows, |i| (i as i16).wrapping_neg())),
        ),
        ("i32", Arc::new(prim::<Int32Type>(rows, |i| i as i32 * -7))),
        (
            "i64",
            Arc::new(prim::<Int64Type>(rows, |i| i as i64 * i64::from(i32::MAX))),
        ),
        ("u8", Arc::new(prim::<UInt8Type>(rows, |i| i as u8))),
        (
            "u16",
            Arc::new(prim::<UInt16Type>(rows, |i| (i as u16).wrapping_mul(3))),
        ),
        (
            "u32",
            Arc::new(prim::<UInt32Type>(rows, |i| u32::MAX - i as u32)),
        ),
        (
            "u64",
            Arc::new(prim::<UInt64Type>(rows, |i| u64::MAX - i as u64)),
        ),
        (
            "f32",
            Arc::new(prim::<Float32Type>(rows, |i| i as f32 / 3.0)),
        ),
        (
            "f64",
            Arc::new(prim::<Float64Type>(rows, |i| -(i as f64) / 7.0)),
        ),
        (
            "utf8",
            Arc::new(
                (0..rows)
                    .map(|i| nth(i, format!("ü-{i}-℃")))
                    .collect::<StringArray>(),
            ),
        ),
        ("binary", Arc::new(binary.finish())),
        ("fsb", Arc::new(fsb.finish())),
        (
            "ts_s",
            Arc::new(prim::<TimestampSecondType>(rows, |i| {
                1_700_000_000 + i as i64
            })),
        ),
        (
            "ts_ms",
            Arc::new(prim::<TimestampMillisecondType>(rows, |i| i as i64 * 1000)),
        ),
        (
            "ts_us",
            Arc::new(prim::<TimestampMicrosecondType>(rows, |i| i as i64).with_timezone("UTC")),
        ),
        (
            "ts_ns",
            Arc::new(prim::<TimestampNanosecondType>(rows, |i| -(i as i64))),
        ),
        (
            "date32",
            Arc::new(prim::<Date32Type>(rows, |i| 19_000 + i as i32)),
        ),
    ];
    RecordBatch::try_from_iter(columns).unwrap()
}

#[test]
fn every_type_with_nulls_round_trips_through_the_sdk() {
    let engine = engine();
    let mut r = runner(&engine, "weir-guest-roundtrip", "");
    let batch = every_type(1000);
    let out = r.process(&batch).unwrap();
    assert_eq!(out.num_columns(), batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let back = out.column_by_name(field.name()).unwrap();
        assert_eq!(back.data_type(), field.data_type(), "{}", field.name());
        assert_eq!(
            back.as_ref(),
            column.as_ref(),
            "column `{}` changed",
            field.name()
        );
    }
    // Sliced input (offsets not on a byte boundary) must round-trip too.
    let sliced = batch.slice(3, 501);
    let out = r.process(&sliced).unwrap();
    for (field, column) in sliced.schema().fields().iter().zip(sliced.columns()) {
        let back = out.column_by_name(field.name()).unwrap();
        assert_eq!(
            back.as_ref(),
            column.as_ref(),
            "sliced column `{}` changed",
            field.name()
        );
    }
    // Absent optional columns come back all null.
    let only = RecordBatch::try_from_iter([("u8", batch.column(5).clone())]).unwrap();
    let out = r.process(&only).unwrap();
    assert_eq!(
        out.column_by_name("u8").unwrap().as_ref(),
        batch.column(5).as_ref()
    );
    assert_eq!(out.column_by_name("utf8").unwrap().null_count(), 1000);
}

fn small_morsels() -> Engine {
    // 4 KiB morsels: a few hundred rows each, so every batch below is split many times.
    Engine::new(Limits {
        morsel_bytes: 4 << 10,
        ..Limits::default()
    })
    .unwrap()
}

#[test]
fn morsels_give_the_same_answer_as_whole_batches() {
    let big = engine();
    let small = small_morsels();
    let flows = flow_batch(20_011, 3).slice(5, 20_000);
    let a = runner(&big, "bench-filter", "").process(&flows).unwrap();
    let b = runner(&small, "bench-filter", "").process(&flows).unwrap();
    assert_eq!(a, b);
    let sensors = sensor_batch(10_007, 4);
    let a = runner(&big, "sensor-normalize", "")
        .process(&sensors)
        .unwrap();
    let b = runner(&small, "sensor-normalize", "")
        .process(&sensors)
        .unwrap();
    assert_eq!(a, b);
    let types = every_type(3001).slice(1, 3000);
    let a = runner(&big, "weir-guest-roundtrip", "")
        .process(&types)
        .unwrap();
    let b = runner(&small, "weir-guest-roundtrip", "")
        .process(&types)
        .unwrap();
    assert_eq!(
        a, b,
        "passthrough-none transforms see whole batches either way"
    );
}

#[test]
fn input_that_does_not_fit_the_declaration_is_refused_by_name() {
    let engine = engine();
    let mut r = runner(&engine, "bench-filter", "");
    let err = r.process(&sensor_batch(10, 1)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadInput);
    assert!(err.to_string().contains("`proto`"), "{err}");
    // proto = 300 cannot be a uint8: a lossy cast is refused, not silently nulled.
    let flows = flow_batch(3, 1);
    let mut columns = flows.columns().to_vec();
    columns[5] = Arc::new(Int64Array::from(vec![6, 300, 17]));
    let schema = Arc::new(arrow_schema::Schema::new(
        flows
            .schema()
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| {
                if i == 5 {
                    f.as_ref()
                        .clone()
                        .with_data_type(arrow_schema::DataType::Int64)
                } else {
                    f.as_ref().clone()
                }
            })
            .collect::<Vec<_>>(),
    ));
    let err = r
        .process(&RecordBatch::try_new(schema, columns).unwrap())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadInput);
    assert!(
        err.to_string().contains("`proto`") && err.to_string().contains("1 values"),
        "{err}"
    );
    // The instance is still warm: the policy never ran.
    assert!(r.is_warm());
    assert_eq!(r.process(&flow_batch(100, 2)).unwrap().num_columns(), 8);
}

fn fail(engine: &Engine, mode: &str) -> PolicyRunner {
    runner(
        engine,
        "weir-guest-fail",
        &format!(r#"{{"mode": "{mode}"}}"#),
    )
}

#[test]
fn rust_guest_failures_become_typed_errors() {
    let engine = Engine::new(Limits {
        memory_bytes: 32 << 20,
        ..Limits::default()
    })
    .unwrap();
    let batch = flow_batch(77, 1);
    match fail(&engine, "error").process(&batch).unwrap_err() {
        PolicyError::Guest {
            message,
            status,
            phase: Phase::Batch,
        } => {
            assert_eq!(status, weir_abi::status::GUEST_ERROR);
            assert_eq!(message, "deliberate failure: 77");
        }
        other => panic!("{other}"),
    }
    match fail(&engine, "panic").process(&batch).unwrap_err() {
        PolicyError::Panic { message, .. } => {
            assert!(message.contains("deliberate panic"), "{message}");
            assert!(
                message.contains("lib.rs"),
                "the location is included: {message}"
            );
        }
        other => panic!("{other}"),
    }
    let err = fail(&engine, "loop").process(&batch).unwrap_err();
    assert!(
        matches!(
            err,
            PolicyError::TimeLimit {
                phase: Phase::Batch,
                ..
            }
        ),
        "{err}"
    );
    let err = fail(&engine, "alloc").process(&batch).unwrap_err();
    assert!(
        matches!(err, PolicyError::MemoryLimit { cap, .. } if cap == 32 << 20),
        "{err}"
    );
    let err = PolicyRunner::new(
        load(&engine, "weir-guest-fail"),
        br#"{"mode": "panic_init"}"#.to_vec(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, PolicyError::Panic { phase: Phase::Init, message } if message.contains("in init")),
        "{err}"
    );
    let err = PolicyRunner::new(
        load(&engine, "weir-guest-fail"),
        br#"{"mode": "sideways"}"#.to_vec(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, PolicyError::Config { message } if message.contains("sideways")),
        "{err}"
    );
    // The host is fine: the same engine runs a good policy.
    assert_eq!(fail(&engine, "ok").process(&batch).unwrap().num_rows(), 77);
}

#[test]
fn the_chain_accounts_for_every_row() {
    let engine = engine();
    let mut chain = PolicyChain::new();
    chain.push(
        runner(&engine, "sensor-normalize", ""),
        FailMode::DeadLetter,
    );
    chain.push(
        runner(
            &engine,
            "drop-outliers",
            r#"{"temperature": {"min": -5, "max": 35}}"#,
        ),
        FailMode::DeadLetter,
    );
    chain.push(
        runner(&engine, "redact", r#"{"key": "k"}"#),
        FailMode::DeadLetter,
    );
    let mut rows_out = 0;
    for seed in 0..5 {
        let out = chain.run(sensor_batch(2000, seed));
        assert!(out.dead_letters.is_empty());
        let batch = out.batch.unwrap();
        rows_out += batch.num_rows() as u64;
        let temps = batch.column_by_name("sensor.temperature.celsius").unwrap();
        let temps = temps.as_any().downcast_ref::<Float64Array>().unwrap();
        assert!(temps.iter().flatten().all(|t| (-5.0..=35.0).contains(&t)));
        let ids = batch.column_by_name("device_id").unwrap();
        let ids = ids.as_any().downcast_ref::<StringArray>().unwrap();
        assert!(ids.iter().flatten().all(|id| id.starts_with("h:")));
    }
    let stats: Vec<_> = chain.policies().iter().map(|p| p.stats.clone()).collect();
    assert_eq!(stats[0].rows_in, 10_000);
    assert!(stats[1].rows_filtered > 0);
    for s in &stats {
        assert_eq!(
            s.rows_in,
            s.rows_out + s.rows_filtered + s.rows_dead_lettered + s.rows_dropped
        );
        assert_eq!(s.batches, 5);
    }
    assert_eq!(stats[2].rows_out, rows_out);
}

#[test]
fn a_dead_letter_names_the_failing_position_when_names_repeat() {
    let engine = engine();
    // The same module twice: only the position tells which instance failed.
    let mut chain = PolicyChain::new();
    chain.push(fail(&engine, "ok"), FailMode::DeadLetter);
    chain.push(fail(&engine, "error"), FailMode::DeadLetter);
    let out = chain.run(flow_batch(10, 1));
    assert_eq!(out.dead_letters.len(), 1);
    assert_eq!(out.dead_letters[0].policy, "weir-guest-fail");
    assert_eq!(out.dead_letters[0].index, 1);
}

#[test]
fn fail_modes_dead_letter_drop_or_pass() {
    let engine = engine();
    let batch = flow_batch(50, 1);
    for mode in [FailMode::DeadLetter, FailMode::Drop, FailMode::Pass] {
        let mut chain = PolicyChain::new();
        chain.push(fail(&engine, "error"), mode);
        chain.push(fail(&engine, "ok"), FailMode::DeadLetter);
        let out = chain.run(batch.clone());
        let first = &chain.policies()[0].stats;
        // `dead_letter` and `drop` first split the batch to find the rows that fail; this
        // guest fails on every piece, so the retries run out and the whole batch meets the
        // fail mode with the first call's error. `pass` passes the batch without retries.
        let retries = match mode {
            FailMode::Pass => 0,
            _ => u64::from(Isolation::default().max_retries),
        };
        assert_eq!(
            first.errors.get(&ErrorKind::GuestError),
            Some(&(1 + retries))
        );
        assert_eq!(first.batch_splits, retries / 2);
        assert_eq!(first.rows_rescued, 0);
        match mode {
            FailMode::DeadLetter => {
                assert!(out.batch.is_none());
                assert_eq!(out.dead_letters.len(), 1);
                let dl = &out.dead_letters[0];
                assert_eq!(dl.policy, "weir-guest-fail");
                assert_eq!(dl.index, 0);
                assert_eq!(dl.rows, batch, "the original rows, untouched");
                assert!(dl.error.to_string().contains("deliberate failure: 50"));
                assert_eq!(first.rows_dead_lettered, 50);
            }
            FailMode::Drop => {
                assert!(out.batch.is_none() && out.dead_letters.is_empty());
                assert_eq!(first.rows_dropped, 50);
            }
            FailMode::Pass => {
                assert_eq!(out.batch.as_ref(), Some(&batch));
                assert_eq!(first.rows_passed_on_error, 50);
                assert_eq!(chain.policies()[1].stats.rows_in, 50);
            }
        }
    }
}

#[test]
fn compilation_runs_in_the_background_with_a_timeout() {
    let engine = engine();
    let task = compile_in_background(&engine, "drop-outliers", policy_bytes("drop-outliers"));
    let module = task.wait().unwrap();
    assert_eq!(module.name(), "drop-outliers");
    assert_eq!(module.sha256_hex().len(), 64);

    let impatient = Engine::new(Limits {
        compile_timeout: Duration::from_nanos(1),
        ..Limits::default()
    })
    .unwrap();
    let err = compile_in_background(&impatient, "flow-filter", policy_bytes("flow-filter"))
        .wait()
        .unwrap_err();
    assert!(
        matches!(err.kind, LoadErrorKind::CompileTimeout { .. }),
        "{err}"
    );

    let tiny = Engine::new(Limits {
        max_module_bytes: 1000,
        ..Limits::default()
    })
    .unwrap();
    let err = PolicyModule::compile(&tiny, "redact", &policy_bytes("redact")).unwrap_err();
    assert!(
        matches!(err.kind, LoadErrorKind::TooLarge { cap: 1000, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("`redact`"),
        "errors name the module: {err}"
    );
}

#[test]
fn empty_batches_keep_the_output_schema() {
    let engine = engine();
    let out = runner(&engine, "sensor-normalize", "")
        .process(&sensor_batch(10, 1).slice(0, 0))
        .unwrap();
    assert_eq!(out.num_rows(), 0);
    assert!(out.column_by_name("sensor.temperature.celsius").is_some());
    assert!(out.column_by_name("temp_f").is_none());
}
