//! [`Trend`]: what the samples of a soak say about memory and file descriptors after warm-up.
//!
//! * **Warm-up** is the first 20 % of the run or its first 2 minutes, whichever is longer, but
//!   at most half the run (so a 1-minute check still has a measured half). Caches, pools, the
//!   compile cache and the first files fill during it.
//! * The **level** at a point is taken over a window before it (60 s, or a quarter of the
//!   warm-up if that is shorter): the median RSS (so a transient peak, e.g. a guest filling its
//!   memory just as a sample is taken, does not count as a level) and the lowest count of fds
//!   other than the output files (transient fds — an admin connection, a compile-cache file —
//!   only add; a leaked fd stays, so it raises the minimum).
//! * **Output files** (the Parquet file and the dead-letter files being written; the
//!   dead-letter sink keeps one per schema) are open between rotations, once a minute here, so
//!   over a 60 s window one may be open at every sample or at none. They are counted apart: the
//!   most open at once in the end window against the most open at once during the whole
//!   warm-up (every stream of the soak has written by then). A leaked output file would add to
//!   the count.
//! * **Growth** compares the level at the end of the run with the level at the end of warm-up.
//!   The highest RSS and fd count seen after warm-up are reported too.

use serde::Serialize;

use super::proc_sample::ProcSample;

/// The longest window a level is taken over, seconds.
const WINDOW_SECS: f64 = 60.0;

/// Memory and descriptors after warm-up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trend {
    /// Length of the warm-up, seconds from the start of input.
    pub warmup_secs: f64,
    /// The window levels are taken over, seconds.
    pub window_secs: f64,
    /// Samples in the warm-up window / the end window.
    pub samples_warmup_window: usize,
    /// Samples in the end window.
    pub samples_end_window: usize,
    /// Median RSS over the window ending at warm-up, KiB.
    pub rss_warmup_kib: u64,
    /// Median RSS over the window ending at the last sample, KiB.
    pub rss_end_kib: u64,
    /// Highest RSS sampled after warm-up, KiB.
    pub rss_max_kib: u64,
    /// RSS of the last sample, KiB.
    pub rss_last_kib: u64,
    /// `rss_end_kib` over `rss_warmup_kib`, in percent (+ is growth).
    pub rss_growth_pct: f64,
    /// `rss_max_kib` over `rss_warmup_kib`, in percent.
    pub rss_max_growth_pct: f64,
    /// Fewest fds, output files not counted, over the window ending at warm-up.
    pub fds_warmup: u64,
    /// Fewest fds, output files not counted, over the window ending at the last sample.
    pub fds_end: u64,
    /// Most fds (all of them) sampled after warm-up.
    pub fds_max: u64,
    /// Fds (all of them) of the last sample.
    pub fds_last: u64,
    /// Most output files open at once during warm-up.
    pub output_fds_warmup: u64,
    /// Most output files open at once in the window ending at the last sample.
    pub output_fds_end: u64,
    /// Threads at the end of warm-up (last sample in its window) and at the last sample.
    pub threads_warmup: u64,
    /// Threads at the last sample.
    pub threads_last: u64,
}

/// The warm-up for a run of `duration_secs`: max(20 %, 120 s), at most half the run.
#[must_use]
pub fn warmup_secs(duration_secs: f64) -> f64 {
    (duration_secs * 0.2).max(120.0).min(duration_secs * 0.5)
}

impl Trend {
    /// The trend of `samples` (in time order) for a run of `duration_secs`; `None` when a window
    /// holds no sample.
    #[must_use]
    pub fn of(samples: &[ProcSample], duration_secs: f64) -> Option<Self> {
        let warmup = warmup_secs(duration_secs);
        let window = WINDOW_SECS.min(warmup / 4.0);
        let last = samples.last()?;
        let samples_in = |end: f64| -> Vec<ProcSample> {
            samples
                .iter()
                .filter(|s| in_window(s.t_secs, end, window))
                .copied()
                .collect()
        };
        let warm = samples_in(warmup);
        let end = samples_in(last.t_secs);
        let after: Vec<&ProcSample> = samples.iter().filter(|s| s.t_secs >= warmup).collect();
        let rss_warmup_kib = median(warm.iter().map(|s| s.rss_kib))?;
        let rss_end_kib = median(end.iter().map(|s| s.rss_kib))?;
        let rss_max_kib = after.iter().map(|s| s.rss_kib).max()?;
        let pct = |v: u64| (v as f64 / rss_warmup_kib as f64 - 1.0) * 100.0;
        Some(Self {
            warmup_secs: warmup,
            window_secs: window,
            samples_warmup_window: warm.len(),
            samples_end_window: end.len(),
            rss_warmup_kib,
            rss_end_kib,
            rss_max_kib,
            rss_last_kib: last.rss_kib,
            rss_growth_pct: pct(rss_end_kib),
            rss_max_growth_pct: pct(rss_max_kib),
            fds_warmup: warm.iter().map(ProcSample::other_fds).min()?,
            fds_end: end.iter().map(ProcSample::other_fds).min()?,
            fds_max: after.iter().map(|s| s.fds).max()?,
            fds_last: last.fds,
            output_fds_warmup: samples
                .iter()
                .filter(|s| s.t_secs <= warmup)
                .map(|s| s.output_fds)
                .max()?,
            output_fds_end: end.iter().map(|s| s.output_fds).max()?,
            threads_warmup: warm.last()?.threads,
            threads_last: last.threads,
        })
    }
}

/// Whether a sample taken at `t_secs` lies in the window of `window` seconds ending at `end`.
pub(super) fn in_window(t_secs: f64, end: f64, window: f64) -> bool {
    t_secs >= end - window && t_secs <= end
}

/// The median (the upper one of an even count).
pub(super) fn median<T: Copy + PartialOrd>(values: impl Iterator<Item = T>) -> Option<T> {
    let mut v: Vec<T> = values.collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v.get(v.len() / 2).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(n: usize, step: f64, f: impl Fn(usize) -> (u64, u64)) -> Vec<ProcSample> {
        (0..n)
            .map(|i| {
                let (rss_kib, fds) = f(i);
                ProcSample {
                    t_secs: i as f64 * step,
                    rss_kib,
                    fds,
                    output_fds: 0,
                    threads: 10,
                }
            })
            .collect()
    }

    #[test]
    fn warmup_is_a_fifth_or_two_minutes_at_most_half() {
        assert_eq!(warmup_secs(1800.0), 360.0);
        assert_eq!(warmup_secs(300.0), 120.0);
        assert_eq!(warmup_secs(60.0), 30.0);
    }

    #[test]
    fn flat_with_a_spike_is_no_growth_but_the_max_shows_it() {
        // 30 minutes, a sample every 2 s; RSS 100 MiB with one 164 MiB spike after warm-up.
        let s = series(901, 2.0, |i| (if i == 600 { 167_936 } else { 102_400 }, 20));
        let t = Trend::of(&s, 1800.0).unwrap();
        assert_eq!(t.warmup_secs, 360.0);
        assert_eq!(t.window_secs, 60.0);
        assert_eq!((t.rss_warmup_kib, t.rss_end_kib), (102_400, 102_400));
        assert_eq!(t.rss_growth_pct, 0.0);
        assert_eq!(t.rss_max_kib, 167_936);
        assert!((t.rss_max_growth_pct - 64.0).abs() < 1e-9);
        assert_eq!((t.fds_warmup, t.fds_end, t.fds_max), (20, 20, 20));
    }

    #[test]
    fn a_leak_shows_as_growth_and_a_leaked_fd_raises_the_minimum() {
        // +10 KiB per sample, and one more fd every 100 samples; transient fds on odd samples.
        let s = series(901, 2.0, |i| {
            (
                100_000 + 10 * i as u64,
                20 + i as u64 / 100 + (i as u64 % 2) * 3,
            )
        });
        let t = Trend::of(&s, 1800.0).unwrap();
        // Warm-up window 300..360 s = samples 150..=180, median sample 165; end 1740..1800 s.
        assert_eq!(t.rss_warmup_kib, 101_650);
        assert_eq!(t.rss_end_kib, 108_850);
        assert!(t.rss_growth_pct > 7.0);
        assert_eq!((t.fds_warmup, t.fds_end), (21, 28));
        assert_eq!(t.fds_max, 31);
    }

    #[test]
    fn output_files_open_over_a_whole_window_are_not_growth() {
        // 18 fds, plus an output file open at every sample of the end window only (and at
        // some samples before): a rotation, not a leak.
        let mut s = series(901, 2.0, |_| (100_000, 18));
        for (i, sample) in s.iter_mut().enumerate() {
            if i >= 870 || i % 7 == 0 {
                sample.fds += 1;
                sample.output_fds = 1;
            }
        }
        let t = Trend::of(&s, 1800.0).unwrap();
        assert_eq!((t.fds_warmup, t.fds_end), (18, 18));
        assert_eq!(
            (t.fds_max, t.output_fds_warmup, t.output_fds_end),
            (19, 1, 1)
        );
        // The same extra fd, not an output file: growth.
        for sample in &mut s {
            sample.output_fds = 0;
        }
        let t = Trend::of(&s, 1800.0).unwrap();
        assert_eq!((t.fds_warmup, t.fds_end), (18, 19));
    }

    #[test]
    fn no_samples_in_a_window_is_none() {
        assert!(Trend::of(&[], 60.0).is_none());
        let s = series(3, 1.0, |_| (1, 1));
        assert!(Trend::of(&s, 60.0).is_none());
    }
}
