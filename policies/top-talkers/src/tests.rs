use super::*;

const S: i64 = MICROS_PER_SECOND;
/// 2026-01-01T00:00:00Z in µs, a multiple of every window used here.
const T0: i64 = 1_767_225_600 * S;

type In<'a> = (
    Option<i64>,
    Option<&'a str>,
    Option<&'a str>,
    Option<u64>,
    Option<u64>,
);

/// One output row: window start and end (µs), src, dst, bytes, packets, flows, rank.
type Out = (
    i64,
    i64,
    Option<String>,
    Option<String>,
    u64,
    u64,
    u64,
    Option<u32>,
);

fn state(json: &str) -> Result<TopTalkers> {
    init(weir_sdk::__rt::parse_json(json.as_bytes())?)
}

fn flow<'a>(ts: i64, src: &'a str, dst: &'a str, bytes: u64, packets: u64) -> In<'a> {
    (Some(ts), Some(src), Some(dst), Some(bytes), Some(packets))
}

fn batch(rows: &[In<'_>]) -> Batch {
    let mut ts = TimestampBuilder::new(TimeUnit::Microsecond);
    let mut src = Utf8Builder::new();
    let mut dst = Utf8Builder::new();
    let mut bytes = UInt64Builder::new();
    let mut packets = UInt64Builder::new();
    for &(t, s, d, b, p) in rows {
        ts.append_option(t);
        src.append_option(s);
        dst.append_option(d);
        bytes.append_option(b);
        packets.append_option(p);
    }
    Batch::from_columns(vec![
        ("ts", Column::from(ts)),
        ("src_addr", src.into()),
        ("dst_addr", dst.into()),
        ("bytes", bytes.into()),
        ("packets", packets.into()),
    ])
}

fn run(state: &mut TopTalkers, rows: &[In<'_>]) -> Vec<Out> {
    let out = state.process(&batch(rows)).unwrap().into_batch();
    let start = out.timestamp("window_start").unwrap();
    let end = out.timestamp("window_end").unwrap();
    let src = out.utf8("src_addr").unwrap();
    let dst = out.utf8("dst_addr").unwrap();
    let bytes = out.u64("bytes").unwrap();
    let packets = out.u64("packets").unwrap();
    let flows = out.u64("flows").unwrap();
    let rank = out.u32("rank").unwrap();
    (0..out.num_rows())
        .map(|i| {
            (
                start.get(i).unwrap(),
                end.get(i).unwrap(),
                src.get(i).map(str::to_owned),
                dst.get(i).map(str::to_owned),
                bytes.get(i).unwrap(),
                packets.get(i).unwrap(),
                flows.get(i).unwrap(),
                rank.get(i),
            )
        })
        .collect()
}

#[expect(clippy::too_many_arguments, reason = "one argument per output column")]
fn row(
    start: i64,
    end: i64,
    src: &str,
    dst: &str,
    bytes: u64,
    packets: u64,
    flows: u64,
    rank: u32,
) -> Out {
    (
        start,
        end,
        Some(src.into()),
        Some(dst.into()),
        bytes,
        packets,
        flows,
        Some(rank),
    )
}

#[test]
fn parameters_have_defaults_and_ranges() {
    let s = state("{}").unwrap();
    assert_eq!(
        (s.window_us, s.n, s.max_pairs, s.lateness_us),
        (10 * S, 10, 100_000, 0)
    );
    let s = state(r#"{"window": 60, "n": 3, "max_pairs": 5, "lateness": 75}"#).unwrap();
    assert_eq!(
        (s.window_us, s.n, s.max_pairs, s.lateness_us),
        (60 * S, 3, 5, 75 * S)
    );
    for (json, message) in [
        (
            r#"{"window": 0}"#,
            "window: must be between 1 and 86400, got 0",
        ),
        (
            r#"{"window": 86401}"#,
            "window: must be between 1 and 86400",
        ),
        (r#"{"n": 0}"#, "n: must be between 1 and 10000, got 0"),
        (
            r#"{"max_pairs": 0}"#,
            "max_pairs: must be between 1 and 1000000",
        ),
        (
            r#"{"max_pairs": 1000001}"#,
            "max_pairs: must be between 1 and 1000000",
        ),
        (
            r#"{"lateness": 90000}"#,
            "lateness: must be between 0 and 86400",
        ),
        (r#"{"top": 3}"#, "unknown field `top`"),
        (r#"{"window": -1}"#, "window"),
        (r#"{"window": "10s"}"#, "window"),
    ] {
        let e = state(json).unwrap_err();
        assert!(e.message().contains(message), "{json}: {e}");
    }
}

#[test]
fn sums_per_pair_and_emits_when_a_later_window_arrives() {
    let mut s = state(r#"{"window": 10, "n": 10}"#).unwrap();
    let first = run(
        &mut s,
        &[
            flow(T0, "10.0.0.1", "10.0.0.2", 100, 1),
            flow(T0 + 3 * S, "10.0.0.3", "10.0.0.4", 500, 5),
            flow(T0 + 4 * S, "10.0.0.1", "10.0.0.2", 300, 2),
        ],
    );
    assert_eq!(first, [], "no window closes");
    let second = run(
        &mut s,
        &[
            // Still window 0, and the reverse direction is another pair.
            flow(T0 + 9 * S, "10.0.0.2", "10.0.0.1", 50, 1),
            flow(T0 + 10 * S, "10.0.0.1", "10.0.0.2", 7, 1),
        ],
    );
    assert_eq!(
        second,
        [
            row(T0, T0 + 10 * S, "10.0.0.3", "10.0.0.4", 500, 5, 1, 1),
            row(T0, T0 + 10 * S, "10.0.0.1", "10.0.0.2", 400, 3, 2, 2),
            row(T0, T0 + 10 * S, "10.0.0.2", "10.0.0.1", 50, 1, 1, 3),
        ]
    );
    assert_eq!(s.open_windows().collect::<Vec<_>>(), [T0 + 10 * S]);
    assert_eq!(s.pairs_held(), 1);
    let third = run(&mut s, &[flow(T0 + 25 * S, "a", "b", 1, 1)]);
    assert_eq!(
        third,
        [row(
            T0 + 10 * S,
            T0 + 20 * S,
            "10.0.0.1",
            "10.0.0.2",
            7,
            1,
            1,
            1
        )]
    );
}

#[test]
fn a_batch_spanning_windows_closes_them_oldest_first_whatever_its_row_order() {
    let rows = [
        flow(T0 + 21 * S, "c", "d", 1, 1),
        flow(T0 + 5 * S, "a", "b", 10, 1),
        flow(T0 + 12 * S, "a", "b", 20, 1),
        flow(T0 + S, "a", "b", 30, 1),
    ];
    let expected = [
        row(T0, T0 + 10 * S, "a", "b", 40, 2, 2, 1),
        row(T0 + 10 * S, T0 + 20 * S, "a", "b", 20, 1, 1, 1),
    ];
    let mut s = state("{}").unwrap();
    assert_eq!(run(&mut s, &rows), expected);
    let mut reversed = rows;
    reversed.reverse();
    let mut s = state("{}").unwrap();
    assert_eq!(run(&mut s, &reversed), expected);
    assert_eq!(s.late(), Totals::default(), "nothing in one batch is late");
}

#[test]
fn ranks_the_top_n_with_deterministic_ties() {
    let mut s = state(r#"{"n": 4}"#).unwrap();
    run(
        &mut s,
        &[
            flow(T0, "b", "x", 100, 2),
            flow(T0, "a", "y", 100, 2),
            flow(T0, "a", "x", 100, 2),
            flow(T0, "z", "z", 100, 3),
            // Same bytes and packets as `z z` in two records: more flows ranks first.
            flow(T0, "y", "y", 50, 1),
            flow(T0, "y", "y", 50, 2),
            flow(T0, "small", "x", 1, 1),
        ],
    );
    let out = run(&mut s, &[flow(T0 + 10 * S, "a", "b", 1, 1)]);
    let end = T0 + 10 * S;
    assert_eq!(
        out,
        [
            row(T0, end, "y", "y", 100, 3, 2, 1),
            row(T0, end, "z", "z", 100, 3, 1, 2),
            row(T0, end, "a", "x", 100, 2, 1, 3),
            row(T0, end, "a", "y", 100, 2, 1, 4),
        ]
    );
}

#[test]
fn late_records_are_dropped_and_counted_not_added_elsewhere() {
    let mut s = state("{}").unwrap();
    run(&mut s, &[flow(T0, "a", "b", 1, 1)]);
    let out = run(
        &mut s,
        &[
            flow(T0 + 10 * S, "a", "b", 2, 1),
            // Window 0 is still open while this batch is added: not late.
            flow(T0 + 9 * S, "a", "b", 4, 1),
        ],
    );
    assert_eq!(out, [row(T0, T0 + 10 * S, "a", "b", 5, 2, 2, 1)]);
    // Window 0 is closed now.
    let out = run(
        &mut s,
        &[
            flow(T0 + 2 * S, "a", "b", 1000, 10),
            flow(T0 + 3 * S, "c", "d", 24, 2),
        ],
    );
    assert_eq!(out, []);
    assert_eq!(
        s.late(),
        Totals {
            bytes: 1024,
            packets: 12,
            flows: 2
        }
    );
    let out = run(&mut s, &[flow(T0 + 20 * S, "a", "b", 1, 1)]);
    assert_eq!(
        out,
        [row(T0 + 10 * S, T0 + 20 * S, "a", "b", 2, 1, 1, 1)],
        "late bytes went nowhere"
    );
}

#[test]
fn lateness_keeps_windows_open_past_their_end() {
    let mut s = state(r#"{"window": 10, "lateness": 15}"#).unwrap();
    assert_eq!(run(&mut s, &[flow(T0 + S, "a", "b", 1, 1)]), []);
    assert_eq!(run(&mut s, &[flow(T0 + 24 * S, "a", "b", 2, 1)]), []);
    // Window 0 is still open: a record of it 23 s behind the latest is on time.
    assert_eq!(run(&mut s, &[flow(T0 + S, "a", "b", 4, 1)]), []);
    assert_eq!(s.open_windows().collect::<Vec<_>>(), [T0, T0 + 20 * S]);
    // 25 = 10 + 15: window 0 closes, window 20 does not.
    let out = run(&mut s, &[flow(T0 + 25 * S, "c", "d", 8, 1)]);
    assert_eq!(out, [row(T0, T0 + 10 * S, "a", "b", 5, 2, 2, 1)]);
    assert_eq!(s.late(), Totals::default());
    run(&mut s, &[flow(T0 + 5 * S, "a", "b", 16, 1)]);
    assert_eq!(s.late().bytes, 16);
}

#[test]
fn pairs_beyond_max_pairs_go_to_the_overflow_row() {
    let mut s = state(r#"{"n": 2, "max_pairs": 3}"#).unwrap();
    run(
        &mut s,
        &[
            flow(T0, "a", "b", 10, 1),
            flow(T0, "c", "d", 20, 1),
            flow(T0, "e", "f", 30, 1),
            // A fourth and fifth pair: overflow.
            flow(T0, "g", "h", 1000, 7),
            flow(T0, "a", "z", 5, 1),
            // A held pair still sums.
            flow(T0, "a", "b", 25, 1),
        ],
    );
    assert_eq!(s.pairs_held(), 3);
    // The next window's first pair overflows too: the bound covers all open windows.
    let out = run(
        &mut s,
        &[
            flow(T0 + 10 * S, "p", "q", 1, 1),
            flow(T0 + 9 * S, "a", "b", 0, 0),
        ],
    );
    let end = T0 + 10 * S;
    assert_eq!(
        out,
        [
            row(T0, end, "a", "b", 35, 2, 3, 1),
            row(T0, end, "e", "f", 30, 1, 1, 2),
            (T0, end, None, None, 1005, 8, 2, None),
        ]
    );
    assert_eq!(s.pairs_held(), 0, "window 10's only record overflowed");
    let out = run(&mut s, &[flow(T0 + 20 * S, "p", "q", 1, 1)]);
    assert_eq!(out, [(end, end + 10 * S, None, None, 1, 1, 1, None)]);
    assert_eq!(s.pairs_held(), 1);
}

#[test]
fn invalid_records_are_skipped_and_null_counts_are_zero() {
    let mut s = state("{}").unwrap();
    let long = "x".repeat(MAX_ADDR_LEN + 1);
    let fits = "y".repeat(MAX_ADDR_LEN);
    run(
        &mut s,
        &[
            (None, Some("a"), Some("b"), Some(1), Some(1)),
            (Some(T0), None, Some("b"), Some(1), Some(1)),
            (Some(T0), Some("a"), None, Some(1), Some(1)),
            flow(T0, &long, "b", 1, 1),
            flow(i64::MAX, "a", "b", 1, 1),
            (Some(T0), Some("a"), Some("b"), None, Some(3)),
            (Some(T0), Some("a"), Some("b"), Some(9), None),
            flow(T0, &fits, "b", 1, 1),
        ],
    );
    assert_eq!(s.invalid(), 5);
    let out = run(&mut s, &[flow(T0 + 10 * S, "a", "b", 1, 1)]);
    assert_eq!(
        out,
        [
            row(T0, T0 + 10 * S, "a", "b", 9, 3, 2, 1),
            row(T0, T0 + 10 * S, &fits, "b", 1, 1, 1, 2),
        ]
    );
}

#[test]
fn windows_before_1970_align_to_the_epoch_too() {
    let mut s = state(r#"{"window": 7}"#).unwrap();
    run(&mut s, &[flow(-S, "a", "b", 1, 1)]);
    let out = run(&mut s, &[flow(0, "a", "b", 1, 1)]);
    assert_eq!(out, [row(-7 * S, 0, "a", "b", 1, 1, 1, 1)]);
}

#[test]
fn the_manifest_declares_an_aggregate() {
    let m = __WEIR_MANIFEST_JSON;
    assert!(m.contains(r#""passthrough":"none""#), "{m}");
    assert!(m.contains(r#""kind":"transform""#), "{m}");
}
