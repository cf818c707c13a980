//! `top-talkers`: the top `n` (source, destination) address pairs by bytes in each tumbling time
//! window of network-flow records. Weir's example of an **aggregate** policy: its totals live in
//! the instance across batches, its output schema has nothing to do with its input's, and its
//! output row count has nothing to do with the batch it is given (`passthrough = "none"`).
//!
//! # Input
//!
//! | column | type | use |
//! |---|---|---|
//! | `ts` | `timestamp(us, UTC)` | the flow record's start; places it in a window |
//! | `src_addr`, `dst_addr` | `utf8` | the pair, compared as text exactly as given |
//! | `bytes`, `packets` | `uint64` | summed per pair |
//!
//! These are the names and types of the `generate` source (`kind = "flows"`) and the
//! `ebpf_flows` source; every other column of the batch (ports, protocol, `ts_end`, interface,
//! ...) is ignored and not copied into the module. Addresses are not parsed or normalized:
//! `::ffff:10.0.0.1` and `10.0.0.1` are different addresses.
//!
//! # Output
//!
//! One row per reported pair per closed window:
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `window_start` | `timestamp(us, UTC)` | the window's first microsecond |
//! | `window_end` | `timestamp(us, UTC)` | the next window's start (exclusive end) |
//! | `src_addr`, `dst_addr` | `utf8`, nullable | the pair; **both null** on the overflow row |
//! | `bytes`, `packets` | `uint64` | the pair's sums over the window |
//! | `flows` | `uint64` | how many flow records the sums cover |
//! | `rank` | `uint32`, nullable | 1 for the top pair, 2, ... up to `n`; **null** on the overflow row |
//!
//! Rows come window by window, oldest first; in a window, by rank, then the overflow row (if
//! any). The order is total and deterministic: `bytes` descending, then `packets` descending,
//! then `flows` descending, then `src_addr` and `dst_addr` ascending (byte-wise). A window
//! without a valid row emits nothing.
//!
//! # Parameters
//!
//! ```json
//! {"window": 10, "n": 10, "max_pairs": 100000, "lateness": 0}
//! ```
//!
//! | key | default | range | meaning |
//! |---|---|---|---|
//! | `window` | 10 | 1–86 400 | window length in seconds; windows are aligned to the Unix epoch (`[k·window, (k+1)·window)`) |
//! | `n` | 10 | 1–10 000 | pairs reported per window |
//! | `max_pairs` | 100 000 | 1–1 000 000 | distinct pairs held at once, over all open windows (the state bound, below) |
//! | `lateness` | 0 | 0–86 400 | seconds a window stays open past its end, for records that arrive out of order |
//!
//! Unknown keys, and values out of range, are refused at init (`BAD_CONFIG`, naming the key).
//!
//! # Windows and when they close
//!
//! A record belongs to the window that contains its `ts`. The policy tracks the latest `ts` it
//! has accepted; a window closes, and is emitted, once that latest `ts` is at least
//! `window_end + lateness`. With the default `lateness` of 0 that is exactly: **the first batch
//! holding a record of a later window closes the open one**. A batch is taken as a whole: its
//! records are first added to their windows, in any order, and then every window the batch's
//! latest `ts` closes is emitted (several, oldest first, if the batch spans several windows).
//! A batch that closes no window outputs zero rows.
//!
//! # Late and invalid records
//!
//! A record whose window has **already been closed** (emitted by an earlier batch) is **late**:
//! it is dropped, never added to another window, so every emitted total covers exactly the
//! records that started in its window. Late records are counted; a batch that had any logs one
//! warning (through the host's rate-limited policy log) with the batch's and the instance's
//! running count of late records and bytes. Out-of-order sources need `lateness`: the
//! `ebpf_flows` source emits a record when its flow ends (idle timeout 15 s, active timeout
//! 60 s by default), so its `ts` (the first packet) can be more than a minute old on arrival;
//! `lateness` of about `active_timeout + idle_timeout` (75) keeps those records in their
//! windows at the cost of emitting each window that much later.
//!
//! A record with a null `ts`, `src_addr` or `dst_addr`, an address longer than
//! [`MAX_ADDR_LEN`] bytes, or a `ts` so far from 1970 that its window does not fit in an `i64`
//! is **invalid**: skipped, and counted and logged the same way. A null `bytes` or `packets`
//! counts as 0 (the record still counts as a flow). Sums saturate at `u64::MAX`.
//!
//! A single record far in the future closes every open window, and makes every record after
//! it late until real time catches up: the warnings say so.
//!
//! # The state bound
//!
//! At most `max_pairs` distinct pairs are held, summed over all open windows. A record of a pair
//! already held is added to it; a record of a new pair when `max_pairs` are held is added to its
//! window's **overflow row** instead (both addresses null, `rank` null), emitted after the
//! ranked rows, and the window's close logs a warning. Nothing is refused and no byte is lost:
//! the ranked rows and the overflow row together sum every valid, on-time record of the window.
//! A pair counted in the overflow row cannot be ranked, so once a window overflowed its ranking
//! covers only the pairs that were held; raise `max_pairs` if that happens, and with it the
//! policy's memory limit (default 64 MiB) beyond about 200 000 pairs. Addresses are capped at
//! [`MAX_ADDR_LEN`] bytes, so the state's size is bounded by `max_pairs`. Measured: the default
//! 100 000 pairs, each of two addresses seen nowhere else (IPv4 to IPv6 text), run in a 20 MiB
//! memory limit and not in 16 MiB, about 190 bytes a pair.
//!
//! # State is per instance
//!
//! The open windows live in the module instance's memory, and **nothing persists them**. They
//! are lost, without being emitted, when:
//!
//! * the host hot-swaps the policy (a new version starts with fresh instances; the canary runs
//!   on instances of its own, which are then discarded);
//! * the instance is discarded after any failure on a batch (trap, time or memory limit, bad
//!   input or output), or the pipeline restarts;
//! * the input ends: the ABI has no end-of-stream call, so the last open window is never emitted.
//!
//! A fresh instance knows nothing of what came before: a window cut by the loss is later emitted
//! with only the records that arrived after it, and a window already emitted can be emitted
//! again, with the records that arrive for it afterwards (nothing is late to a fresh instance).
//! Use the fail mode `dead_letter` (the default) or `drop` for this policy: with `pass`, a failed
//! batch's flow records would go downstream in place of aggregate rows.

use std::cmp::Ordering;
use std::collections::HashMap;

use serde::Deserialize;
use weir_sdk::prelude::*;

/// The longest address kept, in bytes. The longest IPv6 text form is 45 bytes; a longer value is
/// not an address, and capping it bounds the state.
pub const MAX_ADDR_LEN: usize = 255;

const MICROS_PER_SECOND: i64 = 1_000_000;
const MAX_WINDOW_SECONDS: u64 = 86_400;
const MAX_LATENESS_SECONDS: u64 = 86_400;
const MAX_N: u32 = 10_000;
const MAX_MAX_PAIRS: u32 = 1_000_000;

/// The parameters, as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Window length in seconds (default 10).
    #[serde(default = "default_window")]
    pub window: u64,
    /// Pairs reported per window (default 10).
    #[serde(default = "default_n")]
    pub n: u32,
    /// Distinct pairs held at once over all open windows (default 100 000).
    #[serde(default = "default_max_pairs")]
    pub max_pairs: u32,
    /// Seconds a window stays open past its end (default 0).
    #[serde(default)]
    pub lateness: u64,
}

fn default_window() -> u64 {
    10
}

fn default_n() -> u32 {
    10
}

fn default_max_pairs() -> u32 {
    100_000
}

impl Default for Params {
    fn default() -> Self {
        Self {
            window: default_window(),
            n: default_n(),
            max_pairs: default_max_pairs(),
            lateness: 0,
        }
    }
}

/// Sums over flow records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Sum of `bytes`.
    pub bytes: u64,
    /// Sum of `packets`.
    pub packets: u64,
    /// Number of flow records.
    pub flows: u64,
}

impl Totals {
    fn add(&mut self, other: Self) {
        self.bytes = self.bytes.saturating_add(other.bytes);
        self.packets = self.packets.saturating_add(other.packets);
        self.flows = self.flows.saturating_add(other.flows);
    }

    /// Descending by bytes, then packets, then flows.
    fn rank_order(&self, other: &Self) -> Ordering {
        other
            .bytes
            .cmp(&self.bytes)
            .then(other.packets.cmp(&self.packets))
            .then(other.flows.cmp(&self.flows))
    }
}

/// One open window: its addresses (interned, so a pair is two `u32`s), its pairs and its
/// overflow row.
#[derive(Debug, Default)]
struct Window {
    ids: HashMap<Box<str>, u32>,
    pairs: HashMap<(u32, u32), Totals>,
    overflow: Totals,
}

impl Window {
    fn id(&mut self, address: &str) -> u32 {
        if let Some(&id) = self.ids.get(address) {
            return id;
        }
        // At most 2 × MAX_MAX_PAIRS addresses are interned: far below u32::MAX.
        let id = u32::try_from(self.ids.len()).expect("address count fits in u32");
        self.ids.insert(address.into(), id);
        id
    }

    /// Adds a record of `(src, dst)`; a new pair is held only while `held < max_pairs`.
    fn add(&mut self, src: &str, dst: &str, t: Totals, held: &mut usize, max_pairs: usize) {
        if let (Some(&s), Some(&d)) = (self.ids.get(src), self.ids.get(dst))
            && let Some(totals) = self.pairs.get_mut(&(s, d))
        {
            totals.add(t);
            return;
        }
        if *held >= max_pairs {
            self.overflow.add(t);
            return;
        }
        let key = (self.id(src), self.id(dst));
        self.pairs.insert(key, t);
        *held += 1;
    }
}

/// The output columns being built.
struct Rows {
    window_start: TimestampBuilder,
    window_end: TimestampBuilder,
    src_addr: Utf8Builder,
    dst_addr: Utf8Builder,
    bytes: UInt64Builder,
    packets: UInt64Builder,
    flows: UInt64Builder,
    rank: UInt32Builder,
}

impl Rows {
    fn new() -> Self {
        Self {
            window_start: TimestampBuilder::new(TimeUnit::Microsecond),
            window_end: TimestampBuilder::new(TimeUnit::Microsecond),
            src_addr: Utf8Builder::new(),
            dst_addr: Utf8Builder::new(),
            bytes: UInt64Builder::new(),
            packets: UInt64Builder::new(),
            flows: UInt64Builder::new(),
            rank: UInt32Builder::new(),
        }
    }

    fn push(
        &mut self,
        bounds: (i64, i64),
        pair: Option<(&str, &str)>,
        t: Totals,
        rank: Option<u32>,
    ) {
        self.window_start.append_value(bounds.0);
        self.window_end.append_value(bounds.1);
        self.src_addr.append_option(pair.map(|p| p.0));
        self.dst_addr.append_option(pair.map(|p| p.1));
        self.bytes.append_value(t.bytes);
        self.packets.append_value(t.packets);
        self.flows.append_value(t.flows);
        self.rank.append_option(rank);
    }

    fn finish(self) -> Output {
        Output::new()
            .with("window_start", self.window_start)
            .with("window_end", self.window_end)
            .with("src_addr", self.src_addr)
            .with("dst_addr", self.dst_addr)
            .with("bytes", self.bytes)
            .with("packets", self.packets)
            .with("flows", self.flows)
            .with("rank", self.rank)
    }
}

/// The policy's state: its parameters, the open windows and the running counters. Made by
/// [`init`], kept in the instance across batches.
#[derive(Debug)]
pub struct TopTalkers {
    window_us: i64,
    lateness_us: i64,
    n: usize,
    max_pairs: usize,
    /// Open windows and their starts, oldest first (usually one or two).
    windows: Vec<(i64, Window)>,
    /// Pairs held over all open windows.
    held: usize,
    /// The latest `ts` accepted.
    latest: Option<i64>,
    late: Totals,
    invalid: u64,
}

/// Checks the parameters and makes the empty state.
///
/// # Errors
/// When a parameter is out of range; the message names it.
pub fn init(p: Params) -> Result<TopTalkers> {
    let range = |key: &str, value: u64, min: u64, max: u64| -> Result<()> {
        if (min..=max).contains(&value) {
            Ok(())
        } else {
            Err(Error::new(format!(
                "{key}: must be between {min} and {max}, got {value}"
            )))
        }
    };
    range("window", p.window, 1, MAX_WINDOW_SECONDS)?;
    range("n", p.n.into(), 1, MAX_N.into())?;
    range("max_pairs", p.max_pairs.into(), 1, MAX_MAX_PAIRS.into())?;
    range("lateness", p.lateness, 0, MAX_LATENESS_SECONDS)?;
    let micros = |s: u64| i64::try_from(s).expect("checked above") * MICROS_PER_SECOND;
    Ok(TopTalkers {
        window_us: micros(p.window),
        lateness_us: micros(p.lateness),
        n: p.n as usize,
        max_pairs: p.max_pairs as usize,
        windows: Vec::new(),
        held: 0,
        latest: None,
        late: Totals::default(),
        invalid: 0,
    })
}

impl TopTalkers {
    /// The window `[start, end)` holding `ts`, if it fits in an `i64`.
    fn window_of(&self, ts: i64) -> Option<(i64, i64)> {
        let start = ts.div_euclid(self.window_us).checked_mul(self.window_us)?;
        Some((start, start.checked_add(self.window_us)?))
    }

    /// Whether the window ending at `end` has been closed.
    fn closed(&self, end: i64) -> bool {
        self.latest
            .is_some_and(|latest| end <= latest.saturating_sub(self.lateness_us))
    }

    /// Late records dropped since the instance started.
    #[must_use]
    pub fn late(&self) -> Totals {
        self.late
    }

    /// Invalid records skipped since the instance started.
    #[must_use]
    pub fn invalid(&self) -> u64 {
        self.invalid
    }

    /// Distinct pairs held over all open windows.
    #[must_use]
    pub fn pairs_held(&self) -> usize {
        self.held
    }

    /// Starts of the open windows, oldest first.
    pub fn open_windows(&self) -> impl Iterator<Item = i64> + '_ {
        self.windows.iter().map(|(start, _)| *start)
    }

    /// Adds a batch's records and returns the rows of the windows it closes.
    ///
    /// # Errors
    /// When `ts` is not in microseconds (the host casts it; only a native caller can get this
    /// wrong) or a column is missing or of another type.
    pub fn process(&mut self, batch: &Batch) -> Result<Output> {
        let ts = batch.timestamp("ts")?;
        if ts.unit() != TimeUnit::Microsecond {
            return Err("ts: expected microseconds".into());
        }
        let src = batch.utf8("src_addr")?;
        let dst = batch.utf8("dst_addr")?;
        let bytes = batch.u64("bytes")?;
        let packets = batch.u64("packets")?;

        let (mut late, mut invalid) = (Totals::default(), 0u64);
        let mut latest = self.latest;
        for i in 0..batch.num_rows() {
            let t = Totals {
                bytes: bytes.get(i).unwrap_or(0),
                packets: packets.get(i).unwrap_or(0),
                flows: 1,
            };
            let (Some(at), Some(s), Some(d)) = (ts.get(i), src.get(i), dst.get(i)) else {
                invalid += 1;
                continue;
            };
            let Some((start, end)) = self
                .window_of(at)
                .filter(|_| s.len() <= MAX_ADDR_LEN && d.len() <= MAX_ADDR_LEN)
            else {
                invalid += 1;
                continue;
            };
            // Closed by an earlier batch: `self.latest` moves only after the whole batch.
            if self.closed(end) {
                late.add(t);
                continue;
            }
            open_window(&mut self.windows, start).add(s, d, t, &mut self.held, self.max_pairs);
            latest = latest.max(Some(at));
        }
        self.latest = latest;
        self.report(late, invalid);

        let mut rows = Rows::new();
        let closing = self
            .windows
            .partition_point(|(start, _)| self.closed(start.saturating_add(self.window_us)));
        for (start, window) in self.windows.drain(..closing) {
            self.held -= window.pairs.len();
            let end = start.saturating_add(self.window_us);
            emit(window, (start, end), self.n, &mut rows);
        }
        Ok(rows.finish())
    }

    /// One warning per batch with late or invalid records, never one per record.
    fn report(&mut self, late: Totals, invalid: u64) {
        if late.flows > 0 {
            self.late.add(late);
            weir_sdk::log::warn(&format!(
                "dropped {} late flow records ({} bytes) of windows already closed; {} ({} bytes) \
                 since this instance started. Raise `lateness` if the source delivers records \
                 out of order",
                late.flows, late.bytes, self.late.flows, self.late.bytes
            ));
        }
        if invalid > 0 {
            self.invalid = self.invalid.saturating_add(invalid);
            weir_sdk::log::warn(&format!(
                "skipped {invalid} invalid flow records (null ts or address, address over \
                 {MAX_ADDR_LEN} bytes, or ts out of range); {} since this instance started",
                self.invalid
            ));
        }
    }
}

/// The open window starting at `start` in `windows` (sorted by start), made if need be.
fn open_window(windows: &mut Vec<(i64, Window)>, start: i64) -> &mut Window {
    // Records mostly belong to the newest window.
    let at = match windows.last() {
        Some((last, _)) if *last == start => windows.len() - 1,
        _ => match windows.binary_search_by_key(&start, |(s, _)| *s) {
            Ok(at) => at,
            Err(at) => {
                windows.insert(at, (start, Window::default()));
                at
            }
        },
    };
    &mut windows[at].1
}

/// Appends a closed window's ranked rows and overflow row.
fn emit(window: Window, bounds: (i64, i64), n: usize, rows: &mut Rows) {
    let Window {
        ids,
        pairs,
        overflow,
    } = window;
    let mut names = vec![""; ids.len()];
    for (name, &id) in &ids {
        names[id as usize] = &**name;
    }
    let pair = |key: (u32, u32)| (names[key.0 as usize], names[key.1 as usize]);
    let order = |a: &((u32, u32), Totals), b: &((u32, u32), Totals)| {
        a.1.rank_order(&b.1).then_with(|| pair(a.0).cmp(&pair(b.0)))
    };
    let mut ranked: Vec<((u32, u32), Totals)> = pairs.into_iter().collect();
    // A full sort rather than a selection: 100 000 pairs sort in milliseconds, and the
    // selection would add 10 KB to the module.
    ranked.sort_unstable_by(order);
    ranked.truncate(n);
    for (rank, (key, totals)) in (1u32..).zip(ranked) {
        rows.push(bounds, Some(pair(key)), totals, Some(rank));
    }
    if overflow.flows > 0 {
        weir_sdk::log::warn(&format!(
            "window starting at {} µs: {} flow records of pairs beyond max_pairs were summed \
             into its overflow row (null addresses and rank)",
            bounds.0, overflow.flows
        ));
        rows.push(bounds, None, overflow, None);
    }
}

/// The policy: adds the batch to its windows and emits the windows it closes.
///
/// # Errors
/// Never for a batch the host has projected onto the declared columns.
#[weir_sdk::transform(
    reads = [
        "ts: timestamp(us, UTC)",
        "src_addr: utf8",
        "dst_addr: utf8",
        "bytes: uint64",
        "packets: uint64",
    ],
    writes = [
        "window_start: timestamp(us, UTC)",
        "window_end: timestamp(us, UTC)",
        "src_addr: utf8?",
        "dst_addr: utf8?",
        "bytes: uint64",
        "packets: uint64",
        "flows: uint64",
        "rank: uint32?",
    ],
    passthrough = "none",
    init = init,
)]
pub fn top_talkers(batch: &Batch, state: &mut TopTalkers) -> Result<Output> {
    state.process(batch)
}

#[cfg(test)]
mod tests;
