//! [`Feeder`]: writes sensor readings as NDJSON to weir's standard input at a steady rate.
//!
//! A thread paces itself against the wall clock (every [`TICK`] it writes the rows it owes).
//! When weir falls behind, the pipe fills and the write waits: nothing is dropped, the achieved
//! rate just falls below the target (the report shows both). A small share of lines is garbage
//! (the source rejects them to dead-letter) and a small share of rows is marked for the hostile
//! policy (`"hostile": "error" | "trap" | "loop" | "alloc"`, in turn).

use std::io::Write;
use std::process::ChildStdin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// How often the feeder writes what it owes.
const TICK: Duration = Duration::from_millis(50);

/// At most this much time's worth of rows is written at once after the feeder fell behind, so
/// a stall is followed by a bounded burst, not by an attempt to catch up on everything.
const MAX_BURST: Duration = Duration::from_millis(500);

/// The marks the hostile policy understands, used in turn.
pub const MARKS: [&str; 4] = ["error", "trap", "loop", "alloc"];

/// Sensor models and how each names temperature and humidity (see `sensor-normalize`).
const MODELS: [(&str, &str, &str); 4] = [
    ("acme-t1", "temperature_celsius", "humidity_percent"),
    ("boreal-f", "temp_f", "rh"),
    ("cirrus-x", "temp_value", "hum"),
    ("delta-h", "temperature_celsius", "hum"),
];

/// What the feeder writes.
#[derive(Debug, Clone, Copy)]
pub struct FeedPlan {
    /// Target rows (lines) per second.
    pub rate: u64,
    /// Every this many lines, one is garbage (not JSON).
    pub garbage_every: u64,
    /// Every this many lines, one row carries a hostile mark.
    pub hostile_every: u64,
}

/// Counts shared between the feeder thread and the soak's main loop.
#[derive(Debug, Default)]
pub struct FeedCounts {
    /// Lines written (rows and garbage).
    pub lines: AtomicU64,
    /// Garbage lines among them.
    pub garbage: AtomicU64,
    /// Rows with a hostile mark, per mark in [`MARKS`] order.
    pub marks: [AtomicU64; 4],
}

impl FeedCounts {
    /// Hostile marks written in all.
    pub fn marks_total(&self) -> u64 {
        self.marks.iter().map(|m| m.load(Ordering::Relaxed)).sum()
    }
}

/// The running feeder thread.
#[derive(Debug)]
pub struct Feeder {
    stop: Arc<AtomicBool>,
    counts: Arc<FeedCounts>,
    thread: JoinHandle<Result<ChildStdin>>,
}

impl Feeder {
    /// Starts writing to `stdin` according to `plan`.
    pub fn start(stdin: ChildStdin, plan: FeedPlan) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(FeedCounts::default());
        let thread = {
            let (stop, counts) = (Arc::clone(&stop), Arc::clone(&counts));
            std::thread::spawn(move || feed(stdin, plan, &stop, &counts))
        };
        Self {
            stop,
            counts,
            thread,
        }
    }

    /// The live counts.
    pub fn counts(&self) -> &FeedCounts {
        &self.counts
    }

    /// Whether the thread ended (it only does on its own when a write fails).
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Stops writing and hands back the pipe, still open (closing it would end weir's input).
    pub fn stop(self) -> Result<(ChildStdin, Arc<FeedCounts>)> {
        self.stop.store(true, Ordering::Relaxed);
        let stdin = self
            .thread
            .join()
            .map_err(|_| anyhow::anyhow!("the feeder thread panicked"))??;
        Ok((stdin, self.counts))
    }
}

fn feed(
    mut stdin: ChildStdin,
    plan: FeedPlan,
    stop: &AtomicBool,
    counts: &FeedCounts,
) -> Result<ChildStdin> {
    let started = Instant::now();
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut buf = String::with_capacity(1 << 20);
    let mut line = 0u64;
    let burst = plan.rate * MAX_BURST.as_millis() as u64 / 1000;
    while !stop.load(Ordering::Relaxed) {
        let due = (started.elapsed().as_secs_f64() * plan.rate as f64) as u64;
        let owed = due.saturating_sub(line).min(burst.max(1));
        if owed == 0 {
            std::thread::sleep(TICK);
            continue;
        }
        buf.clear();
        for _ in 0..owed {
            write_line(&mut buf, line, plan, &mut rng, counts);
            line += 1;
        }
        stdin
            .write_all(buf.as_bytes())
            .context("writing to weir's stdin (did weir exit?)")?;
        counts.lines.store(line, Ordering::Relaxed);
        if line < due {
            // Behind (the pipe was full): skip what cannot be caught up within a burst.
            continue;
        }
        std::thread::sleep(TICK);
    }
    stdin.flush().context("flushing weir's stdin")?;
    Ok(stdin)
}

/// Appends line number `n` to `buf`.
fn write_line(buf: &mut String, n: u64, plan: FeedPlan, rng: &mut XorShift, counts: &FeedCounts) {
    use std::fmt::Write as _;
    if plan.garbage_every > 0 && n % plan.garbage_every == plan.garbage_every / 2 {
        counts.garbage.fetch_add(1, Ordering::Relaxed);
        let _ = writeln!(buf, "{n} WARN not a reading (garbage on purpose)");
        return;
    }
    let ts = 1_767_225_600_000u64 + n;
    let device = rng.below(5000);
    let (model, t_name, h_name) = MODELS[rng.below(4) as usize];
    let mut celsius = -10.0 + rng.unit() * 50.0;
    let humidity = 5.0 + rng.unit() * 90.0;
    if rng.below(100) == 0 {
        celsius = 95.0; // an outlier for drop-outliers
    }
    let t_value = if t_name == "temp_f" {
        celsius * 9.0 / 5.0 + 32.0
    } else {
        celsius
    };
    let h_value = if h_name == "rh" {
        humidity / 100.0
    } else {
        humidity
    };
    let battery = 2.8 + rng.unit() * 0.5;
    let _ = write!(
        buf,
        r#"{{"ts":{ts},"seq":{n},"device_id":"dev-{device:05}","model":"{model}","{t_name}":{t_value:.2},"{h_name}":{h_value:.3},"battery_v":{battery:.3}"#
    );
    if plan.hostile_every > 0 && n % plan.hostile_every == plan.hostile_every - 1 {
        let i = ((n / plan.hostile_every) % MARKS.len() as u64) as usize;
        counts.marks[i].fetch_add(1, Ordering::Relaxed);
        let _ = write!(buf, r#","hostile":"{}""#, MARKS[i]);
    }
    buf.push_str("}\n");
}

/// A small deterministic generator (xorshift64*): the soak needs variety, not statistics.
#[derive(Debug)]
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_json_except_the_garbage_and_marks_rotate() {
        let plan = FeedPlan {
            rate: 1,
            garbage_every: 10,
            hostile_every: 7,
        };
        let counts = FeedCounts::default();
        let mut rng = XorShift(1);
        let mut buf = String::new();
        for n in 0..70 {
            write_line(&mut buf, n, plan, &mut rng, &counts);
        }
        let lines: Vec<&str> = buf.lines().collect();
        assert_eq!(lines.len(), 70);
        let mut garbage = 0;
        let mut marks = Vec::new();
        for l in &lines {
            match serde_json::from_str::<serde_json::Value>(l) {
                Ok(v) => {
                    assert!(v["seq"].is_u64(), "{l}");
                    if let Some(m) = v["hostile"].as_str() {
                        marks.push(m.to_owned());
                    }
                }
                Err(_) => garbage += 1,
            }
        }
        assert_eq!(garbage, 7);
        assert_eq!(counts.garbage.load(Ordering::Relaxed), 7);
        // Lines 6, 13, 20, ... carry marks, in MARKS order; line 55 is garbage instead
        // (55 % 10 == 5), and only written marks are counted.
        assert_eq!(marks.len(), 9);
        assert_eq!(counts.marks_total(), 9);
        assert_eq!(&marks[..4], &["error", "trap", "loop", "alloc"]);
    }
}
