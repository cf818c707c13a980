//! Operating a failing or leaking policy: poison-batch isolation (only the rows a policy fails
//! on meet its fail mode; the rest go on, in order) and instance recycling (after N batches, or
//! at a memory high-water mark). Real wasmtime, the real `guest-poison` test guest, and
//! `weir run` end to end with Parquet and dead-letter output read back.

use std::collections::BTreeSet;
use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::cast::AsArray as _;
use arrow_array::types::UInt16Type;
use arrow_array::{RecordBatch, UInt16Array};
use arrow_schema::{DataType, Field, Schema};
use weir_host::engine::{Engine, Limits};
use weir_host::policy::{
    ErrorKind, FailMode, Isolation, PolicyChain, PolicyModule, PolicyRunner, Recycle,
};
use weir_host::sources::generate::flow_batch;
use weir_tests::bundle_tools::sign_policy;
use weir_tests::policy_bytes;
use weir_tests::weir_process::{Scratch, read_ipc_dir, read_parquet_dir, run_weir};

const GUEST: &str = "weir-guest-poison";

/// An engine with a short batch deadline and a small memory cap, so the `loop` and `alloc`
/// modes fail fast.
fn engine() -> Engine {
    Engine::new(Limits {
        batch_deadline: Duration::from_millis(20),
        memory_bytes: 8 << 20,
        ..Limits::default()
    })
    .expect("engine starts")
}

fn poison(engine: &Engine, params: &str) -> PolicyRunner {
    let module = PolicyModule::compile(engine, GUEST, &policy_bytes(GUEST)).expect("loads");
    PolicyRunner::new(Arc::new(module), params.as_bytes().to_vec()).expect("starts")
}

fn ports(batch: &RecordBatch) -> Vec<u16> {
    batch
        .column_by_name("src_port")
        .expect("src_port")
        .as_primitive::<UInt16Type>()
        .values()
        .to_vec()
}

/// A batch of one `src_port` column.
fn port_batch(values: &[u16]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new(
        "src_port",
        DataType::UInt16,
        false,
    )]));
    RecordBatch::try_new(schema, vec![Arc::new(UInt16Array::from(values.to_vec()))]).unwrap()
}

#[test]
fn only_the_poison_rows_meet_the_fail_mode_in_every_failure_kind() {
    let engine = engine();
    let batch = flow_batch(1000, 7);
    let all = ports(&batch);
    // Two poison rows far apart (the generated ports are nearly unique: every row with one
    // of these ports is poison).
    let poison_ports = [all[137], all[802]];
    let is_poison = |p: &u16| poison_ports.contains(p);
    let expected_bad = all.iter().filter(|p| is_poison(p)).count();
    assert!(expected_bad >= 2);
    for (mode, kind) in [
        ("error", ErrorKind::GuestError),
        ("panic", ErrorKind::GuestError),
        ("loop", ErrorKind::TimeLimit),
        ("alloc", ErrorKind::MemoryLimit),
    ] {
        let params = format!(
            r#"{{"poison": [{}, {}], "mode": "{mode}"}}"#,
            all[137], all[802]
        );
        let mut chain = PolicyChain::new();
        chain.push(poison(&engine, &params), FailMode::DeadLetter);
        let out = chain.run(batch.clone());
        let stats = &chain.policies()[0].stats;

        let dead: Vec<u16> = out
            .dead_letters
            .iter()
            .flat_map(|d| ports(&d.rows))
            .collect();
        assert_eq!(
            dead.len(),
            expected_bad,
            "{mode}: only the poison rows are dead"
        );
        assert!(dead.iter().all(is_poison), "{mode}: {dead:?}");
        for letter in &out.dead_letters {
            assert_eq!(letter.error.kind(), kind, "{mode}: {}", letter.error);
            assert_eq!(letter.index, 0);
        }
        // Everything else went on, in the original order, whole rows.
        let passed = out.batch.expect("the rest goes on");
        let want: Vec<u16> = all.iter().copied().filter(|p| !is_poison(p)).collect();
        assert_eq!(ports(&passed), want, "{mode}: the rest, in order");
        assert_eq!(passed.schema(), batch.schema());
        assert_eq!(passed.num_columns(), batch.num_columns());

        assert_eq!(stats.rows_in, 1000);
        assert_eq!(stats.rows_out, want.len() as u64);
        assert_eq!(stats.rows_dead_lettered, expected_bad as u64);
        assert_eq!(stats.rows_rescued, want.len() as u64);
        assert!(stats.batch_splits >= 10, "{mode}: {stats:?}");
        // Every failed call is counted: the first, and each failed piece on the way down.
        let failed_calls: u64 = stats.errors.values().sum();
        assert!(failed_calls > stats.batch_splits, "{mode}: {stats:?}");
        assert_eq!(stats.errors.keys().copied().collect::<Vec<_>>(), vec![kind]);
    }
}

#[test]
fn drop_mode_drops_only_the_poison_rows() {
    let engine = engine();
    let batch = flow_batch(500, 3);
    let all = ports(&batch);
    let params = format!(r#"{{"poison": [{}], "mode": "panic"}}"#, all[250]);
    let mut chain = PolicyChain::new();
    chain.push(poison(&engine, &params), FailMode::Drop);
    let out = chain.run(batch);
    let stats = &chain.policies()[0].stats;
    assert!(out.dead_letters.is_empty());
    let bad = all.iter().filter(|p| **p == all[250]).count() as u64;
    assert_eq!(stats.rows_dropped, bad);
    assert_eq!(out.batch.unwrap().num_rows() as u64, 500 - bad);
}

#[test]
fn a_policy_that_fails_on_everything_pays_the_retries_once() {
    let engine = engine();
    let mut chain = PolicyChain::new();
    chain.push(
        poison(&engine, r#"{"poison": [7], "mode": "error"}"#),
        FailMode::DeadLetter,
    );
    chain.set_isolation(Isolation {
        max_depth: 16,
        max_retries: 8,
    });
    let errors = |chain: &PolicyChain| -> u64 { chain.policies()[0].stats.errors.values().sum() };

    // All rows poison: the split finds nothing to rescue; the whole batch is one dead letter
    // with the first call's error, after at most 8 retries.
    let out = chain.run(port_batch(&[7; 100]));
    assert_eq!(out.dead_letters.len(), 1);
    assert_eq!(out.dead_letters[0].rows.num_rows(), 100);
    assert!(
        out.dead_letters[0]
            .error
            .to_string()
            .contains("poison row 0 of 100"),
        "{}",
        out.dead_letters[0].error
    );
    assert_eq!(errors(&chain), 1 + 8);
    assert_eq!(chain.policies()[0].stats.batch_splits, 4);
    assert_eq!(chain.policies()[0].stats.rows_rescued, 0);

    // The next failing batch is not split again: one call.
    let out = chain.run(port_batch(&[7; 50]));
    assert_eq!(out.dead_letters.len(), 1);
    assert_eq!(errors(&chain), 1 + 8 + 1);
    assert_eq!(chain.policies()[0].stats.batch_splits, 4);

    // A clean batch succeeds, so isolation is back for the next poison batch.
    let out = chain.run(port_batch(&[1, 2, 3]));
    assert_eq!(out.batch.unwrap().num_rows(), 3);
    let mut mixed = vec![1_u16; 64];
    mixed[40] = 7;
    let out = chain.run(port_batch(&mixed));
    // 8 retries reach pieces of 4 rows: the poison row's piece (rows 40..44) is dead.
    assert_eq!(out.dead_letters.len(), 1);
    assert_eq!(ports(&out.dead_letters[0].rows), vec![7, 1, 1, 1]);
    assert_eq!(out.batch.unwrap().num_rows(), 60);
    assert_eq!(chain.policies()[0].stats.rows_rescued, 60);
    assert_eq!(chain.policies()[0].stats.batch_splits, 4 + 4);
    let s = &chain.policies()[0].stats;
    assert_eq!(s.rows_in, s.rows_out + s.rows_dead_lettered);
}

#[test]
fn isolation_off_or_out_of_retries_sends_the_rest_of_the_piece_whole() {
    let engine = engine();
    let mut values = vec![1_u16; 256];
    values[3] = 7;
    // Off: the whole batch.
    let mut chain = PolicyChain::new();
    chain.push(poison(&engine, r#"{"poison": [7]}"#), FailMode::DeadLetter);
    chain.set_isolation(Isolation {
        max_depth: 0,
        max_retries: 32,
    });
    let out = chain.run(port_batch(&values));
    assert!(out.batch.is_none());
    assert_eq!(out.dead_letters[0].rows.num_rows(), 256);
    assert_eq!(chain.policies()[0].stats.batch_splits, 0);
    // Two halvings: the poison row's quarter (64 rows) is dead-lettered, the other three
    // quarters go on.
    let mut chain = PolicyChain::new();
    chain.push(poison(&engine, r#"{"poison": [7]}"#), FailMode::DeadLetter);
    chain.set_isolation(Isolation {
        max_depth: 2,
        max_retries: 32,
    });
    let out = chain.run(port_batch(&values));
    assert_eq!(out.dead_letters.len(), 1);
    assert_eq!(out.dead_letters[0].rows.num_rows(), 64);
    assert_eq!(out.batch.unwrap().num_rows(), 192);
}

#[test]
fn a_leaking_guest_is_recycled_before_it_fails() {
    let engine = engine();
    let batch = port_batch(&[1, 2, 3]);
    let leaky = r#"{"poison": [], "leak_kib": 512}"#;

    // Without recycling, 512 KiB a batch reaches the 8 MiB cap within 20 batches: the call
    // fails (isolation then rescues the rows on fresh instances, so none is lost).
    let mut chain = PolicyChain::new();
    chain.push(poison(&engine, leaky), FailMode::DeadLetter);
    for _ in 0..20 {
        let out = chain.run(batch.clone());
        assert!(out.dead_letters.is_empty());
    }
    let stats = &chain.policies()[0].stats;
    assert!(
        stats.errors.contains_key(&ErrorKind::MemoryLimit),
        "{stats:?}"
    );
    assert!(stats.rows_rescued > 0, "{stats:?}");

    // At a 4 MiB high-water mark: no batch fails, and memory stays under mark + one leak.
    let mut chain = PolicyChain::new();
    chain.push(poison(&engine, leaky), FailMode::DeadLetter);
    chain.set_recycle(
        0,
        Recycle {
            after_batches: None,
            memory_bytes: Some(4 << 20),
        },
    );
    let mut peak = 0;
    for _ in 0..60 {
        let out = chain.run(batch.clone());
        assert!(out.dead_letters.is_empty());
        assert_eq!(out.batch.unwrap().num_rows(), 3);
        peak = peak.max(chain.policies()[0].runner.memory_bytes().unwrap());
    }
    let stats = &chain.policies()[0].stats;
    assert!(stats.errors.is_empty(), "{stats:?}");
    assert!(stats.instances_recycled >= 6, "{stats:?}");
    assert!(peak < (4 << 20) + (1 << 20), "peak {peak}");
}

#[test]
fn recycling_after_n_batches_is_exact() {
    let engine = engine();
    let mut chain = PolicyChain::new();
    chain.push(poison(&engine, r#"{"poison": []}"#), FailMode::DeadLetter);
    chain.set_recycle(
        0,
        Recycle {
            after_batches: NonZeroU64::new(10),
            memory_bytes: None,
        },
    );
    for _ in 0..55 {
        chain.run(port_batch(&[1]));
    }
    assert_eq!(chain.policies()[0].stats.instances_recycled, 5);
    assert!(chain.policies()[0].runner.is_warm());
}

/// The `[trust]` table and one `[[policies]]` entry running `guest-poison` (signed in `s`) with
/// `policy` as the rest of the entry (its `params = ...` and other keys).
fn poison_policy(s: &Scratch, policy: &str) -> String {
    let (bundle, public) = sign_policy(s.path(), "weir-guest-poison");
    format!(
        "[trust]\n[[trust.keys]]\nname = \"ops\"\npublic_key = \"{}\"\n\n\
         [[policies]]\nbundle = \"{}\"\n{policy}\n",
        public.display(),
        bundle.display()
    )
}

#[test]
fn weir_run_dead_letters_only_the_poison_rows_and_writes_the_rest() {
    let s = Scratch::new("isolation-run");
    // Twenty poison ports out of ~64k: a handful of the 20,000 generated rows.
    let poison: Vec<u16> = (0..20).map(|i| 2000 + i * 3001).collect();
    let config = s.write(
        "weir.toml",
        format!(
            r#"
[pipeline]
batch_max_rows = 500
state_dir = "state"

[sources.flows]
type = "generate"
kind = "flows"
rows = 20000
seed = 11

{policy}
[sinks.lake]
type = "parquet"
path = "out"

[dead_letter]
path = "dead"
"#,
            policy = poison_policy(
                &s,
                &format!("params = {{ poison = {poison:?}, mode = \"panic\" }}\nrecycle_after_batches = 7")
            ),
        ),
    );
    let run = run_weir(&s, &["run", "--config", config.to_str().unwrap()]);
    let summary = run.ok();
    let policy = &summary["policies"][0];
    assert_eq!(policy["rows_in"], 20_000);
    let out = read_parquet_dir(&s.path().join("out"));
    let dead = read_ipc_dir(&s.path().join("dead"));
    let out_ports: Vec<u16> = out.iter().flat_map(ports).collect();
    let dead_ports: Vec<u16> = dead.iter().flat_map(|(_, b)| ports(b)).collect();
    for (_, batch) in &dead {
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .unwrap()
                .as_string::<i32>()
                .clone()
        };
        let (origin, kind) = (column("_weir_origin"), column("_weir_error_kind"));
        for i in 0..batch.num_rows() {
            assert_eq!(origin.value(i), "policy:weir-guest-poison");
            assert_eq!(kind.value(i), ErrorKind::GuestError.as_str());
        }
    }
    let poison: BTreeSet<u16> = poison.into_iter().collect();
    assert!(
        !dead_ports.is_empty(),
        "some generated rows carry a poison port"
    );
    assert!(
        dead_ports.iter().all(|p| poison.contains(p)),
        "{dead_ports:?}"
    );
    assert!(out_ports.iter().all(|p| !poison.contains(p)));
    assert_eq!(out_ports.len() + dead_ports.len(), 20_000);
    let n = |key: &str| policy[key].as_u64().unwrap();
    assert_eq!(n("dead_lettered"), dead_ports.len() as u64);
    assert!(n("batch_splits") > 0);
    assert!(n("rows_rescued") > 0);
    // 40 batches and their retries, a fresh instance every 7 successful calls.
    assert!(n("instances_recycled") >= 5, "{policy}");
    assert!(
        run.stderr.contains("isolated the rows a policy fails on"),
        "{}",
        run.stderr
    );
}

/// `weir run` with a generator far faster than a slow policy, deep queues, and a memory
/// budget (`budget`); returns the summary.
fn budget_run(s: &Scratch, budget: &str) -> serde_json::Value {
    let config = s.write(
        &format!("weir-{budget}.toml"),
        format!(
            r#"
[pipeline]
batch_max_rows = 2000
queue_depth = 64
state_dir = "state-{budget}"

[limits]
memory = "4MiB"
memory_budget = "{budget}"

[sources.flows]
type = "generate"
kind = "flows"
rows = 200000

{policy}
[sinks.lake]
type = "parquet"
path = "out-{budget}"
"#,
            policy = poison_policy(s, "params = { poison = [], spin_per_row = 3000 }"),
        ),
    );
    let run = run_weir(s, &["run", "--config", config.to_str().unwrap()]);
    let summary = run.ok().clone();
    let out: usize = read_parquet_dir(&s.path().join(format!("out-{budget}")))
        .iter()
        .map(RecordBatch::num_rows)
        .sum();
    assert_eq!(out, 200_000, "every row written");
    assert!(
        run.stderr.is_empty() || !run.stderr.contains("ERROR"),
        "{}",
        run.stderr
    );
    summary
}

#[test]
fn past_the_memory_budget_sources_wait_and_nothing_is_dropped() {
    let s = Scratch::new("budget");
    // A 5 MiB budget: 4 MiB for the one guest, the rest for batches (~200 KB each).
    let tight = budget_run(&s, "5MiB");
    let b = &tight["memory_budget"];
    let n = |v: &serde_json::Value, key: &str| v[key].as_u64().unwrap();
    assert_eq!(n(b, "limit"), 5 << 20);
    assert!(n(b, "pauses") > 0, "the source waited: {b}");
    // Over the limit by one chunk at most: a source checks for room before it sends.
    assert!(n(b, "peak") <= (5 << 20) + (512 << 10), "{b}");
    assert_eq!(n(b, "queued"), 0, "every charge released: {b}");
    assert!(n(b, "guest") > 0 && n(b, "guest") <= 4 << 20, "{b}");

    // The same run with room to spare: no pause, and more held at once.
    let loose = budget_run(&s, "1GiB");
    let l = &loose["memory_budget"];
    assert_eq!(n(l, "pauses"), 0, "{l}");
    assert!(n(l, "peak") > n(b, "peak"), "tight {b} loose {l}");
    eprintln!("memory budget: tight {b}, loose {l}");
}

#[test]
fn a_budget_below_the_guests_limits_is_refused_with_the_key() {
    let s = Scratch::new("budget-check");
    let config = s.write(
        "weir.toml",
        format!(
            "[limits]\nmemory = \"8MiB\"\nmemory_budget = \"8MiB\"\n\
             [sources.g]\ntype = \"generate\"\nkind = \"flows\"\nrows = 1\n\
             [sinks.o]\ntype = \"parquet\"\npath = \"o\"\n{}",
            poison_policy(&s, "params = { poison = [] }")
        ),
    );
    let run = run_weir(&s, &["run", "--config", config.to_str().unwrap()]);
    assert_ne!(run.code, Some(0));
    assert!(
        run.stderr.contains("limits.memory_budget") && run.stderr.contains("leaves no room"),
        "{}",
        run.stderr
    );
}
