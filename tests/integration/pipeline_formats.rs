//! Every source format end to end through `weir run`: the same records as NDJSON, CSV,
//! Parquet, Arrow IPC (file and stream), a glob over several files, stdin, UDP and the
//! generator; the Parquet output is read back and compared value for value.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::cast::AsArray as _;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use weir_tests::weir_process::{
    Running, Scratch, free_udp_port, read_ipc_dir, read_parquet_dir, run_weir, run_weir_with_stdin,
};

const ROWS: usize = 300;

/// The reference records: id, name (some null), value.
fn reference() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("value", DataType::Float64, true),
    ]));
    let ids: Int64Array = (0..ROWS as i64).collect();
    let names: StringArray = (0..ROWS)
        .map(|i| (i % 7 != 3).then(|| format!("n-{i}, \"q\"")))
        .collect();
    let values: Float64Array = (0..ROWS)
        .map(|i| (i % 11 != 5).then_some(i as f64 * 0.25 - 10.0))
        .collect();
    RecordBatch::try_new(
        schema,
        vec![Arc::new(ids) as ArrayRef, Arc::new(names), Arc::new(values)],
    )
    .unwrap()
}

fn ndjson(batch: &RecordBatch) -> Vec<u8> {
    let mut w = arrow_json::LineDelimitedWriter::new(Vec::new());
    w.write(batch).unwrap();
    w.finish().unwrap();
    w.into_inner()
}

const COLUMNS: &str = r#"columns = ["id: int64", "name: utf8?", "value: float64?"]"#;

fn config(scratch: &Scratch, source: &str) -> std::path::PathBuf {
    scratch.write(
        "weir.toml",
        format!(
            "[pipeline]\nbatch_max_rows = 64\nbatch_max_delay = \"50ms\"\nstate_dir = \"state\"\n\n{source}\n\n\
             [sinks.out]\ntype = \"parquet\"\npath = \"out\"\n\n[dead_letter]\npath = \"dead\"\n"
        ),
    )
}

/// The output, sorted by id, equals the reference exactly.
fn assert_reference(scratch: &Scratch, times: usize) {
    let batches = read_parquet_dir(&scratch.join("out"));
    let mut rows: Vec<(i64, Option<String>, Option<f64>)> = Vec::new();
    for b in &batches {
        let id = b.column_by_name("id").unwrap().as_primitive::<Int64Type>();
        let name = b.column_by_name("name").unwrap().as_string::<i32>();
        let value = b
            .column_by_name("value")
            .unwrap()
            .as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            rows.push((
                id.value(i),
                name.is_valid(i).then(|| name.value(i).to_owned()),
                value.is_valid(i).then(|| value.value(i)),
            ));
        }
    }
    rows.sort_by_key(|r| r.0);
    let r = reference();
    let name = r.column(1).as_string::<i32>();
    let value = r.column(2).as_primitive::<Float64Type>();
    let mut want = Vec::new();
    for i in 0..ROWS {
        for _ in 0..times {
            want.push((
                i as i64,
                name.is_valid(i).then(|| name.value(i).to_owned()),
                value.is_valid(i).then(|| value.value(i)),
            ));
        }
    }
    assert_eq!(rows, want);
}

#[test]
fn ndjson_file() {
    let s = Scratch::new("fmt-ndjson");
    let _ = s.write("in.ndjson", ndjson(&reference()));
    let c = config(
        &s,
        &format!(
            "[sources.f]\ntype = \"file\"\npath = \"in.ndjson\"\n[sources.f.schema]\n{COLUMNS}"
        ),
    );
    let sum = run_weir(&s, &["run", "--config", c.to_str().unwrap()]);
    assert_eq!(sum.ok()["rows_out"], ROWS as u64);
    assert_reference(&s, 1);
}

#[test]
fn ndjson_with_an_inferred_schema_is_reported() {
    let s = Scratch::new("fmt-infer");
    let _ = s.write("in.jsonl", ndjson(&reference()));
    let c = config(&s, "[sources.f]\ntype = \"file\"\npath = \"in.jsonl\"");
    let run = run_weir(&s, &["run", "--config", c.to_str().unwrap()]);
    let sum = run.ok();
    assert!(run.stderr.contains("INFERRED"), "{}", run.stderr);
    assert!(
        sum["sources"]["f"]["schema"]
            .as_str()
            .unwrap()
            .contains("inferred"),
        "{sum}"
    );
    assert_reference(&s, 1);
}

#[test]
fn csv_file() {
    let s = Scratch::new("fmt-csv");
    let mut w = arrow_csv::WriterBuilder::new()
        .with_header(true)
        .build(Vec::new());
    w.write(&reference()).unwrap();
    let _ = s.write("in.csv", w.into_inner());
    let c = config(
        &s,
        &format!("[sources.f]\ntype = \"file\"\npath = \"in.csv\"\n[sources.f.schema]\n{COLUMNS}"),
    );
    let _ = run_weir(&s, &["run", "--config", c.to_str().unwrap()]).ok();
    assert_reference(&s, 1);
}

#[test]
fn parquet_file() {
    let s = Scratch::new("fmt-parquet");
    let file = std::fs::File::create(s.join("in.parquet")).unwrap();
    let r = reference();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, r.schema(), None).unwrap();
    w.write(&r).unwrap();
    w.close().unwrap();
    let c = config(&s, "[sources.f]\ntype = \"file\"\npath = \"in.parquet\"");
    let _ = run_weir(&s, &["run", "--config", c.to_str().unwrap()]).ok();
    assert_reference(&s, 1);
}

#[test]
fn arrow_ipc_file_and_stream_under_one_glob() {
    let s = Scratch::new("fmt-ipc");
    let r = reference();
    let mut fw = arrow_ipc::writer::FileWriter::try_new(Vec::new(), &r.schema()).unwrap();
    fw.write(&r).unwrap();
    fw.finish().unwrap();
    let _ = s.write("in/a.arrow", fw.into_inner().unwrap());
    let mut sw = arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &r.schema()).unwrap();
    sw.write(&r.slice(0, 100)).unwrap();
    sw.write(&r.slice(100, ROWS - 100)).unwrap();
    sw.finish().unwrap();
    let _ = s.write("in/b.arrow", sw.into_inner().unwrap());
    let c = config(&s, "[sources.f]\ntype = \"file\"\npath = \"in/*.arrow\"");
    let sum = run_weir(&s, &["run", "--config", c.to_str().unwrap()]);
    assert_eq!(sum.ok()["sources"]["f"]["files"], 2);
    assert_reference(&s, 2);
}

#[test]
fn ndjson_on_stdin_with_the_quick_form() {
    let s = Scratch::new("fmt-stdin");
    let out = s.join("out");
    let run = run_weir_with_stdin(
        &s,
        &["run", "--input", "-", "--output", out.to_str().unwrap()],
        Some(&ndjson(&reference())),
    );
    let _ = run.ok();
    assert_reference(&s, 1);
}

#[test]
fn udp_datagrams_until_sigterm() {
    let s = Scratch::new("fmt-udp");
    let port = free_udp_port();
    let c = config(
        &s,
        &format!(
            "[sources.u]\ntype = \"udp\"\nlisten = \"127.0.0.1:{port}\"\n[sources.u.schema]\n{COLUMNS}"
        ),
    );
    let mut weir = Running::start(&s, &["run", "--config", c.to_str().unwrap()]);
    weir.wait_for("pipeline ready", Duration::from_secs(60));
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let text = ndjson(&reference());
    // Several records per datagram, as batching sensors send them; loopback only.
    for chunk in String::from_utf8(text)
        .unwrap()
        .lines()
        .collect::<Vec<_>>()
        .chunks(5)
    {
        let datagram = chunk.join("\n");
        sock.send_to(datagram.as_bytes(), ("127.0.0.1", port))
            .unwrap();
        std::thread::sleep(Duration::from_micros(300));
    }
    // Wait until everything has arrived (the summary is only written at exit, so poll the
    // output by stopping only when the counts are complete).
    std::thread::sleep(Duration::from_millis(500));
    weir.signal("TERM");
    let done = weir.wait(Duration::from_secs(30));
    assert_eq!(done.ok()["rows_in"], ROWS as u64, "{}", done.stderr);
    assert_reference(&s, 1);
}

#[test]
fn generated_rows_and_rejected_csv_records() {
    let s = Scratch::new("fmt-gen");
    let c = config(
        &s,
        "[sources.g]\ntype = \"generate\"\nkind = \"flows\"\nrows = 5000",
    );
    let sum = run_weir(&s, &["run", "--config", c.to_str().unwrap()]);
    assert_eq!(sum.ok()["rows_out"], 5000);
    let out = read_parquet_dir(&s.join("out"));
    assert_eq!(out.iter().map(RecordBatch::num_rows).sum::<usize>(), 5000);
    let expect = weir_host::sources::generate::flow_batch(64, 1);
    assert_eq!(out[0].slice(0, 64), expect, "the first batch is seed 1's");

    // A CSV record that does not fit goes to dead-letter with its line.
    let s = Scratch::new("fmt-csv-bad");
    let _ = s.write("in.csv", "id,name,value\n1,a,1.5\n2,b,notanumber\n3,c,\n");
    let c = config(
        &s,
        &format!("[sources.f]\ntype = \"file\"\npath = \"in.csv\"\n[sources.f.schema]\n{COLUMNS}"),
    );
    let run = run_weir(&s, &["run", "--config", c.to_str().unwrap()]);
    let sum = run.ok();
    assert_eq!(sum["rows_out"], 2);
    assert_eq!(sum["sources"]["f"]["rejected"], 1);
    let dead = read_ipc_dir(&s.join("dead"));
    let b = &dead[0].1;
    assert!(
        b.column_by_name("_weir_location")
            .unwrap()
            .as_string::<i32>()
            .value(0)
            .ends_with("in.csv:3")
    );
    assert_eq!(
        b.column_by_name("raw").unwrap().as_binary::<i32>().value(0),
        b"2,b,notanumber"
    );
}
