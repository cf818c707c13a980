//! [`TickClock`]: the kernel's tick count (`jiffies`), which the flows program stamps on every
//! packet, as `CLOCK_MONOTONIC` nanoseconds.
//!
//! Reading `jiffies` in the program is one load; a clock helper is a call that cost ~25 ns a
//! packet here. The kernel advances `jiffies` from `CLOCK_MONOTONIC` itself, by whole ticks
//! of `TICK_NSEC`, so the two never drift: one observed tick edge and the tick's length fix
//! the conversion for good. [`TickClock::calibrate`] finds both from [`ClockSample`]s (both
//! clocks read together by the never-attached `flows_clock` program).

use weir_ebpf_common::ClockSample;

/// The `CONFIG_HZ` choices the kernel offers on x86_64 and aarch64 (`kernel/Kconfig.hz`).
const HZ_CHOICES: [u64; 4] = [100, 250, 300, 1000];
/// A tick edge counts only when the samples on either side of it are at most this far apart
/// (a preempted sampler brackets the edge too loosely).
const MAX_BRACKET_NS: u64 = 100_000;
/// The second edge is taken at least this long after the first, so the bracket errors are a
/// small part of the span.
const MIN_SPAN_NS: u64 = 10_000_000;
/// A measured tick within this fraction of a `CONFIG_HZ` choice's is that choice's.
const SNAP_TOLERANCE: f64 = 0.08;
/// Calibration gives up after this long without two good edges.
const CALIBRATION_LIMIT_NS: u64 = 2_000_000_000;

/// Why [`TickClock::calibrate`] failed.
#[derive(Debug, thiserror::Error)]
pub enum TickClockError<E: std::error::Error + 'static> {
    /// Reading a sample failed.
    #[error("reading the kernel clocks: {cause}")]
    Sample {
        /// The cause.
        #[source]
        cause: E,
    },
    /// No two cleanly bracketed tick edges within the time limit.
    #[error(
        "the kernel's tick count did not advance cleanly within {} s ({edges} clean tick edges \
         seen)",
        CALIBRATION_LIMIT_NS / 1_000_000_000
    )]
    NoEdges {
        /// Clean edges seen (fewer than two).
        edges: usize,
    },
    /// The measured tick matches no `CONFIG_HZ` the kernel offers.
    #[error(
        "a kernel tick measured {tick_ns} ns, which matches no CONFIG_HZ of {HZ_CHOICES:?} \
         within {}%",
        SNAP_TOLERANCE * 100.0
    )]
    UnknownHz {
        /// The measured tick length.
        tick_ns: u64,
    },
}

/// A tick edge: the tick `jiffies` began at about `monotonic_ns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Edge {
    jiffies: u64,
    monotonic_ns: u64,
}

/// Converts tick counts to `CLOCK_MONOTONIC` nanoseconds: the start of the tick, as the
/// kernel's coarse clock would have read during it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TickClock {
    edge: Edge,
    tick_ns: u64,
}

impl TickClock {
    /// Samples the two clocks until it has seen two cleanly bracketed tick edges at least
    /// 10 ms apart, and takes the tick length as the `CONFIG_HZ` choice the span matches.
    /// Takes one to three ticks (at most ~30 ms at HZ=100) of back-to-back sampling.
    ///
    /// # Errors
    /// A sample failed, no clean edges within 2 s, or a tick length no `CONFIG_HZ` gives.
    pub fn calibrate<E: std::error::Error + 'static>(
        mut sample: impl FnMut() -> Result<ClockSample, E>,
    ) -> Result<Self, TickClockError<E>> {
        let mut read = || sample().map_err(|cause| TickClockError::Sample { cause });
        let mut previous = read()?;
        let start = previous.monotonic_ns;
        let mut first: Option<Edge> = None;
        let mut edges = 0;
        loop {
            let now = read()?;
            if now.monotonic_ns.saturating_sub(start) > CALIBRATION_LIMIT_NS {
                return Err(TickClockError::NoEdges { edges });
            }
            let bracket = now.monotonic_ns.saturating_sub(previous.monotonic_ns);
            if now.jiffies == previous.jiffies + 1 && bracket <= MAX_BRACKET_NS {
                edges += 1;
                let edge = Edge {
                    jiffies: now.jiffies,
                    monotonic_ns: previous.monotonic_ns + bracket / 2,
                };
                match first {
                    None => first = Some(edge),
                    Some(first) if edge.monotonic_ns - first.monotonic_ns >= MIN_SPAN_NS => {
                        let ticks = edge.jiffies - first.jiffies;
                        let measured = (edge.monotonic_ns - first.monotonic_ns) / ticks;
                        return Ok(Self {
                            edge: first,
                            tick_ns: snap(measured)
                                .ok_or(TickClockError::UnknownHz { tick_ns: measured })?,
                        });
                    }
                    Some(_) => {}
                }
            }
            previous = now;
        }
    }

    /// The tick's length.
    #[must_use]
    pub fn tick_ns(&self) -> u64 {
        self.tick_ns
    }

    /// `CLOCK_MONOTONIC` nanoseconds at the start of tick `jiffies`.
    #[must_use]
    pub fn monotonic_ns(&self, jiffies: u64) -> u64 {
        // Wrapping differences: ticks before the calibration edge come out as negative.
        let ticks = jiffies.wrapping_sub(self.edge.jiffies) as i64;
        self.edge
            .monotonic_ns
            .saturating_add_signed(ticks.saturating_mul(self.tick_ns as i64))
    }
}

/// The kernel's `TICK_NSEC` for the `CONFIG_HZ` whose tick `measured` is near.
fn snap(measured: u64) -> Option<u64> {
    HZ_CHOICES
        .iter()
        .map(|hz| (1_000_000_000 + hz / 2) / hz)
        .find(|&tick| (measured as f64 - tick as f64).abs() <= tick as f64 * SNAP_TOLERANCE)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kernel with tick `tick_ns` whose tick 0 began at `phase_ns`, sampled every `step_ns`
    /// (with a stall of `stall_ns` once, after `stall_after` samples).
    struct FakeKernel {
        now_ns: u64,
        tick_ns: u64,
        phase_ns: u64,
        step_ns: u64,
        stall_after: usize,
        stall_ns: u64,
        samples: usize,
    }

    impl FakeKernel {
        fn new(hz: u64, phase_ns: u64, step_ns: u64) -> Self {
            Self {
                now_ns: 5_000_000_000,
                tick_ns: (1_000_000_000 + hz / 2) / hz,
                phase_ns,
                step_ns,
                stall_after: usize::MAX,
                stall_ns: 0,
                samples: 0,
            }
        }

        fn sample(&mut self) -> Result<ClockSample, std::io::Error> {
            self.samples += 1;
            self.now_ns += self.step_ns;
            if self.samples == self.stall_after {
                self.now_ns += self.stall_ns;
            }
            Ok(ClockSample {
                jiffies: 4_294_000_000 + (self.now_ns - self.phase_ns) / self.tick_ns,
                monotonic_ns: self.now_ns,
            })
        }

        fn tick_start(&self, jiffies: u64) -> u64 {
            (jiffies - 4_294_000_000) * self.tick_ns + self.phase_ns
        }
    }

    #[test]
    fn finds_each_hz_and_the_tick_phase() {
        for hz in HZ_CHOICES {
            let mut kernel = FakeKernel::new(hz, 1_234_567, 3_000);
            let clock = TickClock::calibrate(|| kernel.sample()).unwrap();
            assert_eq!(clock.tick_ns(), (1_000_000_000 + hz / 2) / hz, "HZ={hz}");
            // Any tick, long after or before the calibration, converts to its start, within
            // half a sampling step.
            for jiffies in [4_294_000_001, 4_294_100_000, 4_300_000_000] {
                let got = clock.monotonic_ns(jiffies);
                let want = kernel.tick_start(jiffies);
                assert!(
                    got.abs_diff(want) <= 1_500,
                    "HZ={hz} {jiffies}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn a_stalled_sampler_does_not_count_the_edge_it_straddled() {
        // HZ=250; the sampler stalls for 3 ms across a tick edge right after the start: that
        // edge's bracket is too loose, the next ones are used, and the phase stays exact.
        let mut kernel = FakeKernel::new(250, 0, 5_000);
        kernel.stall_after = 2;
        kernel.stall_ns = 3_000_000;
        let clock = TickClock::calibrate(|| kernel.sample()).unwrap();
        assert_eq!(clock.tick_ns(), 4_000_000);
        let j = 4_294_002_000;
        assert!(clock.monotonic_ns(j).abs_diff(kernel.tick_start(j)) <= 2_500);
    }

    #[test]
    fn refuses_a_tick_no_config_hz_gives() {
        let mut kernel = FakeKernel::new(250, 0, 2_000);
        kernel.tick_ns = 2_000_000; // HZ=500: not offered on x86_64 or aarch64
        match TickClock::calibrate(|| kernel.sample()) {
            Err(TickClockError::UnknownHz { tick_ns }) => assert_eq!(tick_ns, 2_000_000),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn gives_up_when_the_tick_count_never_moves() {
        let mut now = 0;
        let result = TickClock::calibrate(|| {
            now += 1_000_000;
            Ok::<_, std::io::Error>(ClockSample {
                jiffies: 7,
                monotonic_ns: now,
            })
        });
        assert!(matches!(result, Err(TickClockError::NoEdges { edges: 0 })));
    }

    #[test]
    fn ticks_before_the_edge_convert_backwards() {
        let clock = TickClock {
            edge: Edge {
                jiffies: 1_000,
                monotonic_ns: 10_000_000_000,
            },
            tick_ns: 4_000_000,
        };
        assert_eq!(clock.monotonic_ns(1_000), 10_000_000_000);
        assert_eq!(clock.monotonic_ns(999), 9_996_000_000);
        assert_eq!(clock.monotonic_ns(1_250), 11_000_000_000);
    }
}
