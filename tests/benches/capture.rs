//! Flow-capture benchmarks for `cargo xtask bench`, on the real kernel: two fresh network
//! namespaces joined by a veth pair ([`Testbed`]), the `ebpf/flows` program attached (TCX,
//! ingress and egress) to `va` in namespace A. Needs root.
//!
//! * **Per-packet overhead.** A sender in namespace B blasts UDP datagrams with 64 bytes of
//!   payload (92-byte IP packets, 106-byte frames) with `sendmmsg` over a raw socket to a
//!   receiver in namespace A, which counts them with `recvmmsg` without ever sleeping (so the
//!   sender never pays for a wake-up); the two are pinned to different cores. Rounds of 1 s
//!   alternate without and with the program attached (10 pairs, the order swapped every pair:
//!   drift and noise of the shared machine hit both alike). The datagrams cross one hook, the
//!   ingress of `va` (`vb` has no program; the egress of `va` sees only what A sends, nothing
//!   here). On a veth pair the whole receive path, that hook included, runs in the sender's
//!   syscalls (softirq work done in its context), so two estimates of the overhead follow:
//!   - from the sender thread's CPU time per packet (`CLOCK_THREAD_CPUTIME_ID`), with minus
//!     without: what the hook costs, whatever share of a core the sender got;
//!   - from throughput, `1e9 / pps_with − 1e9 / pps_without` over all rounds of each kind
//!     (datagrams sent, each of which crossed the hook before its send call returned; the
//!     receiver's count checks that they arrived): the same figure when the sender has a whole
//!     core, larger by 1 / its share when other work competes for that core (reported with
//!     the share).
//!
//!   One more round with the kernel's run-time statistics on (`kernel.bpf_stats_enabled`,
//!   [`FlowProgram::enable_run_time_stats`]) gives the kernel's own figure: `run_time /
//!   run_count` of `flows_ingress`, the average time of one program run (the hook's dispatch
//!   around it not included). Measured for 1 flow and for 1024 flows (1024 source ports).
//! * **User-space CPU per 10k flows/s.** 10,000 new flows a second for 10 s (2 datagrams
//!   each, from 64 source addresses × distinct source ports) through [`FlowCapture`] with a
//!   16,384-entry map, a 1 s drain interval and a 2 s idle timeout. The thread that polls
//!   and builds the Arrow batches measures its CPU time (user + system,
//!   `getrusage(RUSAGE_THREAD)`) from the first packet until the last flow has ended on its
//!   idle timeout; that time over the 10 s of traffic is the share of one core the capture
//!   needs at that rate. The records must match what was sent, exactly: one ingress record
//!   per flow holding both of its packets, nothing else. A mismatch is reported loudly (and
//!   in the summary), not a panic.
//!
//! Writes rows and figures as JSON to `$WEIR_CAPTURE_SUMMARY` (default:
//! `<target dir>/bench/capture.json`), which `cargo xtask bench` merges into its report.

use std::collections::HashSet;
use std::net::{Ipv4Addr, UdpSocket};
use std::ops::Range;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use serde_json::{Value, json};
use weir_host::capture::{CaptureCounters, CaptureOptions, FlowCapture, FlowProgram, FlowRecord};
use weir_tests::netns::{A_V4, B_V4, Testbed, VETH_A};

/// Payload bytes of every datagram.
const PAYLOAD: usize = 64;
/// IPv4 header + UDP header + payload.
const IP_LEN: usize = 20 + 8 + PAYLOAD;
/// Frame bytes the program counts per datagram (Ethernet header included).
const FRAME_LEN: u64 = 14 + IP_LEN as u64;
/// Datagrams per `sendmmsg` and `recvmmsg`.
const BATCH: usize = 64;
/// Pairs of rounds (without, with) per case.
const PAIRS: usize = 10;
/// One measured round.
const ROUND: Duration = Duration::from_secs(1);
/// The round with the kernel's run-time statistics on.
const STATS_ROUND: Duration = Duration::from_secs(2);
/// Traffic before the first round.
const WARMUP: Duration = Duration::from_millis(500);
/// Time after attaching or detaching before a round is measured.
const SETTLE: Duration = Duration::from_millis(100);
/// The target: at most this many ns more per packet with the program attached.
const TARGET_NS: f64 = 200.0;
/// First source port of the overhead cases.
const BLAST_PORT: u16 = 40_000;
/// New flows a second in the CPU measurement.
const FLOW_RATE: u64 = 10_000;
/// Seconds of traffic in the CPU measurement.
const FLOW_SECONDS: u64 = 10;
/// Datagrams per flow in the CPU measurement.
const PACKETS_PER_FLOW: u64 = 2;
/// Source addresses of the CPU measurement: 10.77.0.64 up to 10.77.0.127. Only a raw socket
/// sends from them; nothing answers them.
const SOURCES: u64 = 64;
/// Last octet of the first of [`SOURCES`].
const FIRST_SOURCE: u8 = 64;
/// First source port of the CPU measurement.
const FLOW_PORT: u16 = 20_000;
/// Kernel flow map entries (the default of `CaptureOptions`).
const MAP_ENTRIES: u32 = 16_384;
/// Ring-buffer bytes (the default of `CaptureOptions`).
const RING_BYTES: u32 = 1 << 20;
/// Drain interval of the CPU measurement.
const DRAIN: Duration = Duration::from_secs(1);
/// Idle timeout of the CPU measurement.
const IDLE: Duration = Duration::from_secs(2);
/// IP protocol number of UDP.
const PROTO_UDP: u8 = 17;
/// `FlowKey::direction` of the ingress hook.
const DIRECTION_INGRESS: u8 = 0;

fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; arguments are ignored.
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "the capture benchmark needs root: it creates network namespaces and loads eBPF \
             programs (CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_BPF). Run `cargo xtask bench` (or \
             `cargo bench -p weir-tests --bench capture`) as root"
        );
    }
    let started = Instant::now();
    let bed = Testbed::new("cbench", false).context("creating the network namespaces")?;
    let cpus = allowed_cpus()?;
    let one = measure_overhead(&bed, 1, &cpus).context("overhead, 1 flow")?;
    let many = measure_overhead(&bed, 1024, &cpus).context("overhead, 1024 flows")?;
    let flows = measure_flows(&bed).context("user-space CPU per 10k flows/s")?;
    drop(bed);

    let (mut rows, mut figures) = (Vec::new(), Vec::new());
    for result in [&one, &many] {
        result.report(&mut rows, &mut figures);
    }
    flows.report(&mut figures);
    println!("capture bench: {:.0} s", started.elapsed().as_secs_f64());

    let path = summary_path()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let summary = json!({"rows": rows, "figures": figures, "method": METHOD});
    std::fs::write(&path, serde_json::to_vec_pretty(&summary)?)
        .with_context(|| format!("writing {}", path.display()))?;
    println!("capture summary: {}", path.display());
    Ok(())
}

/// How the figures are measured, for the summary file.
const METHOD: &str = "veth pair between two fresh network namespaces; program attached (TCX) to va \
    ingress+egress in namespace A. Overhead: UDP with 64-byte payloads from B (raw socket, \
    sendmmsg) to A (recvmmsg, never sleeping), sender and receiver pinned to different cores; 10 \
    interleaved pairs of 1 s rounds without/with the program. ns/packet from sender CPU = \
    CLOCK_THREAD_CPUTIME_ID of the sender (whose syscalls carry each packet through the whole \
    receive path, the TC hook included) per packet, with minus without; ns/packet from pps = \
    1e9/pps_with - 1e9/pps_without (datagrams sent; received checked), inflated by 1/share when \
    the sender has less than a whole core; kernel = flows_ingress run_time/run_count with \
    kernel.bpf_stats_enabled, in a separate 2 s round. CPU: 10k new UDP flows/s (2 packets each) \
    for 10 s, FlowCapture with 16384 map entries, drain 1 s, idle 2 s; getrusage(RUSAGE_THREAD) \
    user+sys of the poll + Arrow thread from the first packet until every flow ended, divided by \
    the 10 s of traffic";

/// `$WEIR_CAPTURE_SUMMARY`, else `<target dir>/bench/capture.json` (the bench runs from
/// `<target dir>/<profile>/deps/`).
fn summary_path() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("WEIR_CAPTURE_SUMMARY") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().context("locating the bench binary")?;
    let target = exe
        .ancestors()
        .nth(3)
        .context("the bench binary is not in <target>/<profile>/deps/")?;
    Ok(target.join("bench").join("capture.json"))
}

// ---------------------------------------------------------------------------------------------
// Per-packet overhead

/// What the sender and the receiver count, read at the edges of each round.
#[derive(Debug, Default)]
struct Tally {
    /// Datagrams the receiver got.
    received: AtomicU64,
    /// Datagrams the sender handed to the kernel.
    sent: AtomicU64,
    /// The sender thread's CPU time (ns) when `sent` was last updated.
    sender_cpu_ns: AtomicU64,
}

impl Tally {
    fn read(&self) -> (u64, u64, u64, Instant) {
        (
            self.received.load(Ordering::Relaxed),
            self.sent.load(Ordering::Relaxed),
            self.sender_cpu_ns.load(Ordering::Relaxed),
            Instant::now(),
        )
    }
}

/// One measured round.
#[derive(Debug, Clone, Copy)]
struct Round {
    attached: bool,
    received: u64,
    sent: u64,
    /// CPU time of the sender thread: the send path and, on a veth pair, the whole receive
    /// path of each packet (softirq work done in its context), the TC hook included.
    sender_cpu_ns: u64,
    seconds: f64,
}

impl Round {
    /// Datagrams a second through the ingress hook of `va`: those sent, each of which has
    /// crossed it before its send call returned. (The receiver's count, which can trail by a
    /// socket buffer when it is starved of CPU, is the check on this.)
    fn pps(&self) -> f64 {
        self.sent as f64 / self.seconds
    }

    fn cpu_ns_per_packet(&self) -> f64 {
        self.sender_cpu_ns as f64 / self.sent.max(1) as f64
    }
}

/// What one overhead case measured.
#[derive(Debug)]
struct Overhead {
    flows: u16,
    rounds: Vec<Round>,
    /// `flows_ingress` during the statistics round: total run time and runs.
    kernel_run_time: Duration,
    kernel_runs: u64,
    /// Datagrams sent during the statistics round.
    kernel_round_sent: u64,
    /// `flows_ingress`'s instructions after the verifier's rewrite.
    instructions: Option<u32>,
}

impl Overhead {
    /// The rounds with or without the program, summed into one.
    fn total(&self, attached: bool) -> Round {
        self.rounds.iter().filter(|r| r.attached == attached).fold(
            Round {
                attached,
                received: 0,
                sent: 0,
                sender_cpu_ns: 0,
                seconds: 0.0,
            },
            |t, r| Round {
                attached,
                received: t.received + r.received,
                sent: t.sent + r.sent,
                sender_cpu_ns: t.sender_cpu_ns + r.sender_cpu_ns,
                seconds: t.seconds + r.seconds,
            },
        )
    }

    fn pps(&self, attached: bool) -> f64 {
        self.total(attached).pps()
    }

    /// `1e9 / pps_with − 1e9 / pps_without` over all rounds.
    fn overhead_ns(&self) -> f64 {
        1e9 / self.pps(true) - 1e9 / self.pps(false)
    }

    /// Sender CPU ns per packet with the program minus without, over all rounds.
    fn cpu_overhead_ns(&self) -> f64 {
        self.total(true).cpu_ns_per_packet() - self.total(false).cpu_ns_per_packet()
    }

    /// `(from pps, from sender CPU)` overhead of each pair of rounds, each list sorted.
    fn pair_overheads_ns(&self) -> (Vec<f64>, Vec<f64>) {
        let (mut pps, mut cpu): (Vec<f64>, Vec<f64>) = self
            .rounds
            .chunks(2)
            .filter_map(|pair| {
                let with = pair.iter().find(|r| r.attached)?;
                let without = pair.iter().find(|r| !r.attached)?;
                Some((
                    1e9 / with.pps() - 1e9 / without.pps(),
                    with.cpu_ns_per_packet() - without.cpu_ns_per_packet(),
                ))
            })
            .unzip();
        pps.sort_by(f64::total_cmp);
        cpu.sort_by(f64::total_cmp);
        (pps, cpu)
    }

    /// The share of a core the sender got, over all rounds.
    fn sender_share(&self) -> f64 {
        let (with, without) = (self.total(true), self.total(false));
        (with.sender_cpu_ns + without.sender_cpu_ns) as f64 / 1e9 / (with.seconds + without.seconds)
    }

    fn kernel_ns_per_run(&self) -> f64 {
        self.kernel_run_time.as_nanos() as f64 / self.kernel_runs.max(1) as f64
    }

    /// Datagrams sent but not received, as a share of those sent.
    fn loss(&self) -> f64 {
        let (with, without) = (self.total(true), self.total(false));
        1.0 - (with.received + without.received) as f64 / (with.sent + without.sent).max(1) as f64
    }

    fn label(&self) -> String {
        if self.flows == 1 {
            "1 flow".to_owned()
        } else {
            format!("{} flows", self.flows)
        }
    }

    fn print(&self) {
        let (without, with) = (self.pps(false), self.pps(true));
        let (pps_pairs, cpu_pairs) = self.pair_overheads_ns();
        let rounded = |v: &[f64]| v.iter().map(|x| x.round() as i64).collect::<Vec<_>>();
        println!(
            "  pps: {without:.0} without, {with:.0} with (ratio {:.3}): {:+.1} ns/packet \
             (pairs {:?})\n  sender CPU: {:.0} ns/packet without, {:.0} with: {:+.1} ns/packet \
             (pairs {:?})\n  kernel: flows_ingress {:.1} ns/run over {} runs ({} datagrams \
             sent in that round, {} instructions); datagrams lost sender→receiver {:.3}%; \
             the sender had {:.0}% of a core",
            without / with,
            self.overhead_ns(),
            rounded(&pps_pairs),
            self.total(false).cpu_ns_per_packet(),
            self.total(true).cpu_ns_per_packet(),
            self.cpu_overhead_ns(),
            rounded(&cpu_pairs),
            self.kernel_ns_per_run(),
            self.kernel_runs,
            self.kernel_round_sent,
            self.instructions
                .map_or_else(|| "?".to_owned(), |n| n.to_string()),
            self.loss() * 100.0,
            self.sender_share() * 100.0
        );
        if self.loss() > 0.01 {
            eprintln!(
                "WARNING: {:.2}% of the datagrams sent were not received (the receiver did not \
                 keep up, or the kernel dropped them)",
                self.loss() * 100.0
            );
        }
    }

    fn report(&self, rows: &mut Vec<Value>, figures: &mut Vec<Value>) {
        let label = self.label();
        let (without, with) = (self.total(false), self.total(true));
        let (overhead, cpu_overhead) = (self.overhead_ns(), self.cpu_overhead_ns());
        let kernel = self.kernel_ns_per_run();
        let (pps_pairs, cpu_pairs) = self.pair_overheads_ns();
        let spread = |v: &[f64]| match (v.first(), v.last()) {
            (Some(lo), Some(hi)) => format!("{lo:+.0}…{hi:+.0}"),
            _ => String::new(),
        };
        rows.push(json!({
            "name": format!("capture overhead per packet (sender CPU), {label}, veth 64-byte UDP"),
            "weir_ns": with.cpu_ns_per_packet(),
            "baseline_ns": without.cpu_ns_per_packet(),
            "ratio": with.cpu_ns_per_packet() / without.cpu_ns_per_packet(),
            "target": format!("≤ +{TARGET_NS:.0} ns/packet"),
            "pass": cpu_overhead <= TARGET_NS,
            "note": format!(
                "{cpu_overhead:+.0} ns/packet (pairs {}); CPU time of the thread whose \
                 syscalls carry each packet through both ends",
                spread(&cpu_pairs)
            ),
        }));
        rows.push(json!({
            "name": format!("capture overhead per packet (pps), {label}, veth 64-byte UDP"),
            "weir_ns": 1e9 / with.pps(),
            "baseline_ns": 1e9 / without.pps(),
            "ratio": without.pps() / with.pps(),
            "target": "(information)",
            "note": format!(
                "{overhead:+.0} ns/packet (pairs {}); {:.0} → {:.0} pps; the sender had {:.0}% \
                 of a core, and wall time per packet ≈ CPU time / that share",
                spread(&pps_pairs),
                without.pps(),
                with.pps(),
                self.sender_share() * 100.0
            ),
        }));
        rows.push(json!({
            "name": format!("capture flows_ingress run time (kernel bpf stats), {label}"),
            "weir_ns": kernel,
            "target": format!("≤ {TARGET_NS:.0} ns/run"),
            "pass": kernel <= TARGET_NS,
            "note": format!(
                "run_time/run_count over {} runs; the hook's dispatch not included",
                self.kernel_runs
            ),
        }));
        for (name, value, unit) in [
            ("pps without the program", without.pps(), "packets/s"),
            ("pps with the program", with.pps(), "packets/s"),
            ("overhead per packet from pps", overhead, "ns"),
            (
                "sender CPU per packet without the program",
                without.cpu_ns_per_packet(),
                "ns",
            ),
            ("overhead per packet from sender CPU", cpu_overhead, "ns"),
            (
                "flows_ingress run_time/run_count (kernel bpf stats)",
                kernel,
                "ns/run",
            ),
        ] {
            figures.push(json!({
                "name": format!("capture {name}, {label}"),
                "value": (value * 10.0).round() / 10.0,
                "unit": unit,
            }));
        }
    }
}

/// Sends 1 or `flows` flows from B to A as fast as one core can, measuring rounds without and
/// with the program attached to `va`.
fn measure_overhead(bed: &Testbed, flows: u16, cpus: &[usize]) -> Result<Overhead> {
    let receiver = receiver(bed)?;
    let port = receiver.local_addr()?.port();
    let raw = Testbed::in_netns(&bed.b, raw_socket)?;
    // A whole number of batches that holds every flow.
    let count = usize::from(flows).div_ceil(BATCH) * BATCH;
    let packets: Vec<Vec<u8>> = (0..count)
        .map(|i| {
            let sport = BLAST_PORT + (i % usize::from(flows)) as u16;
            udp_datagram(B_V4, sport, port)
        })
        .collect();
    let mut program =
        FlowProgram::load(MAP_ENTRIES, RING_BYTES).context("loading the flows program")?;
    let (tally, stop) = (Tally::default(), AtomicBool::new(false));
    // Sender and receiver on different cores; left to the scheduler with fewer than two.
    let (tx_cpu, rx_cpu) = match cpus {
        [a, b, ..] => (Some(*a), Some(*b)),
        _ => (None, None),
    };
    println!(
        "capture overhead, {flows} flow(s): {PAIRS} pairs of {:.1} s rounds",
        ROUND.as_secs_f64()
    );
    std::thread::scope(|s| {
        let rx = s.spawn(|| -> Result<()> {
            if let Some(cpu) = rx_cpu {
                pin(cpu)?;
            }
            receive(&receiver, &tally.received, &stop, true)
        });
        let tx = s.spawn(|| -> Result<()> {
            if let Some(cpu) = tx_cpu {
                pin(cpu)?;
            }
            let mut outbox = Outbox::new(packets);
            let mut at = 0;
            while !stop.load(Ordering::Relaxed) {
                let n = outbox.send(raw.as_raw_fd(), at..at + BATCH)?;
                let cpu = thread_cpu_ns()?;
                tally.sent.fetch_add(n, Ordering::Relaxed);
                tally.sender_cpu_ns.store(cpu, Ordering::Relaxed);
                at = (at + BATCH) % count;
            }
            Ok(())
        });
        let measured = rounds(bed, &mut program, &tally);
        stop.store(true, Ordering::Relaxed);
        program.detach_all();
        let rx = rx.join().map_err(|_| anyhow!("the receiver panicked"))?;
        let tx = tx.join().map_err(|_| anyhow!("the sender panicked"))?;
        tx.context("sender")?;
        rx.context("receiver")?;
        let (rounds, kernel) = measured?;
        let result = Overhead {
            flows,
            rounds,
            kernel_run_time: kernel.run_time,
            kernel_runs: kernel.runs,
            kernel_round_sent: kernel.sent,
            instructions: kernel.instructions,
        };
        result.print();
        Ok(result)
    })
}

/// What the statistics round measured of `flows_ingress`.
struct KernelStats {
    run_time: Duration,
    runs: u64,
    sent: u64,
    instructions: Option<u32>,
}

/// The interleaved rounds, then the round with the kernel's statistics on.
fn rounds(
    bed: &Testbed,
    program: &mut FlowProgram,
    tally: &Tally,
) -> Result<(Vec<Round>, KernelStats)> {
    let set = |program: &mut FlowProgram, attached: bool| -> Result<()> {
        if attached {
            Testbed::in_netns(&bed.a, || {
                program
                    .attach(VETH_A)
                    .map(drop)
                    .context("attaching the program to va")
            })
        } else {
            program.detach_all();
            Ok(())
        }
    };
    let measure = |attached: bool, length: Duration| {
        let (r0, s0, c0, t0) = tally.read();
        std::thread::sleep(length);
        let (r1, s1, c1, t1) = tally.read();
        Round {
            attached,
            received: r1 - r0,
            sent: s1 - s0,
            sender_cpu_ns: c1 - c0,
            seconds: (t1 - t0).as_secs_f64(),
        }
    };
    std::thread::sleep(WARMUP);
    ensure!(
        tally.received.load(Ordering::Relaxed) > 0,
        "no datagram arrived during the warm-up"
    );
    let mut out = Vec::new();
    let mut now_attached = false;
    for pair in 0..PAIRS {
        // Swapped every pair: without, with, with, without, without, with, ...
        let order = if pair % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for attached in order {
            if attached != now_attached {
                set(program, attached)?;
                now_attached = attached;
            }
            std::thread::sleep(SETTLE);
            let round = measure(attached, ROUND);
            println!(
                "  {:>7}: {:>7.0} pps ({:.0} received), sender CPU {:.0} ns/packet, {:.0}% of a \
                 core",
                if attached { "with" } else { "without" },
                round.pps(),
                round.received as f64 / round.seconds,
                round.cpu_ns_per_packet(),
                round.sender_cpu_ns as f64 / 1e7 / round.seconds
            );
            out.push(round);
        }
    }

    if !now_attached {
        set(program, true)?;
    }
    let stats_on = FlowProgram::enable_run_time_stats()
        .context("turning on the kernel's BPF run-time statistics")?;
    std::thread::sleep(SETTLE);
    let ingress = |program: &mut FlowProgram| {
        let stats = program
            .program_stats()
            .context("reading program statistics")?;
        stats
            .into_iter()
            .find(|s| s.name == "flows_ingress")
            .context("no statistics for flows_ingress")
    };
    let before = ingress(program)?;
    let round = measure(true, STATS_ROUND);
    let after = ingress(program)?;
    drop(stats_on);
    program.detach_all();
    let runs = after.run_count - before.run_count;
    ensure!(
        runs > 0,
        "flows_ingress did not run during the statistics round"
    );
    Ok((
        out,
        KernelStats {
            run_time: after.run_time - before.run_time,
            runs,
            sent: round.sent,
            instructions: after.instructions,
        },
    ))
}

// ---------------------------------------------------------------------------------------------
// User-space CPU per 10k flows/s

/// What the capture thread saw.
#[derive(Debug)]
struct CaptureRun {
    /// Records ended by `poll` while measured.
    records: Vec<FlowRecord>,
    /// Records left for `finish` (shutdown).
    leftover: Vec<FlowRecord>,
    /// Rows of the Arrow batches built.
    rows: usize,
    /// CPU time of the thread: user, system.
    user: Duration,
    system: Duration,
    /// Wall time measured.
    wall: Duration,
    counters: CaptureCounters,
}

/// What the sender did.
#[derive(Debug, Clone, Copy)]
struct Sent {
    flows: u64,
    packets: u64,
    seconds: f64,
}

/// The CPU measurement's results.
#[derive(Debug)]
struct FlowsResult {
    sent: Sent,
    capture: CaptureRun,
    port: u16,
    delivered: u64,
}

impl FlowsResult {
    fn is_bench_flow(&self, r: &FlowRecord) -> bool {
        r.key.direction == DIRECTION_INGRESS
            && r.key.protocol == PROTO_UDP
            && r.key.dst_port == self.port
            && r.key.dst_addr[..4] == A_V4.octets()
    }

    /// Share of one core (1.0 = a whole core) per 10k flows/s.
    fn cpu_per_10k(&self) -> f64 {
        let cpu = (self.capture.user + self.capture.system).as_secs_f64();
        let rate = self.sent.flows as f64 / self.sent.seconds;
        cpu / self.sent.seconds * (10_000.0 / rate)
    }

    /// `Ok(summary)` when the records are exactly what was sent, else `Err(what differs)`.
    fn exactness(&self) -> Result<String, String> {
        let bench: Vec<&FlowRecord> = self
            .capture
            .records
            .iter()
            .filter(|r| self.is_bench_flow(r))
            .collect();
        let others = self.capture.records.len() - bench.len();
        let packets: u64 = bench.iter().map(|r| r.totals.packets).sum();
        let bytes: u64 = bench.iter().map(|r| r.totals.bytes).sum();
        let distinct: HashSet<([u8; 16], u16)> = bench
            .iter()
            .map(|r| (r.key.src_addr, r.key.src_port))
            .collect();
        let not_two = bench
            .iter()
            .filter(|r| r.totals.packets != PACKETS_PER_FLOW)
            .count();
        let sent = self.sent;
        let c = &self.capture.counters;
        let mut problems = Vec::new();
        if bench.len() as u64 != sent.flows {
            problems.push(format!(
                "{} ingress records for {} flows sent",
                bench.len(),
                sent.flows
            ));
        }
        if distinct.len() != bench.len() {
            problems.push(format!(
                "{} records but {} distinct flows",
                bench.len(),
                distinct.len()
            ));
        }
        if packets != sent.packets {
            problems.push(format!(
                "{packets} packets in records, {} sent",
                sent.packets
            ));
        }
        if bytes != sent.packets * FRAME_LEN {
            problems.push(format!(
                "{bytes} bytes in records, {} sent",
                sent.packets * FRAME_LEN
            ));
        }
        if not_two > 0 {
            problems.push(format!(
                "{not_two} records without exactly {PACKETS_PER_FLOW} packets"
            ));
        }
        if others > 0 {
            problems.push(format!("{others} other records (egress or other traffic)"));
        }
        if !self.capture.leftover.is_empty() {
            problems.push(format!(
                "{} flows still open after the idle timeout",
                self.capture.leftover.len()
            ));
        }
        if self.capture.rows != self.capture.records.len() {
            problems.push(format!(
                "{} Arrow rows for {} records",
                self.capture.rows,
                self.capture.records.len()
            ));
        }
        if c.lost_packets() > 0 {
            problems.push(format!("{} packets lost in the kernel", c.lost_packets()));
        }
        if problems.is_empty() {
            Ok(format!(
                "exact: {} flows sent → {} ingress records, {packets} packets, 0 egress/other",
                sent.flows,
                bench.len()
            ))
        } else {
            Err(problems.join("; "))
        }
    }

    fn report(&self, figures: &mut Vec<Value>) {
        let cap = &self.capture;
        let rate = self.sent.flows as f64 / self.sent.seconds;
        let cpu = self.cpu_per_10k() * 100.0;
        let cpu_s = (cap.user + cap.system).as_secs_f64();
        let per_record_us = cpu_s * 1e6 / cap.records.len().max(1) as f64;
        let exact = self.exactness();
        println!(
            "capture CPU: {} flows in {:.2} s ({rate:.0} flows/s), {} packets ({} delivered); \
             capture thread {:.3} s user + {:.3} s system over {:.2} s wall = {cpu:.2}% of one \
             core per 10k flows/s ({per_record_us:.2} µs per record); {}",
            self.sent.flows,
            self.sent.seconds,
            self.sent.packets,
            self.delivered,
            cap.user.as_secs_f64(),
            cap.system.as_secs_f64(),
            cap.wall.as_secs_f64(),
            cap.counters
        );
        let exact_text = match &exact {
            Ok(text) => {
                println!("capture records: {text}");
                text.clone()
            }
            Err(problems) => {
                let line = "!".repeat(78);
                eprintln!(
                    "{line}\nCAPTURE RECORD MISMATCH: {problems}\n  counters: {}\n{line}",
                    cap.counters
                );
                format!("MISMATCH: {problems}")
            }
        };
        figures.push(json!({
            "name": "capture user-space CPU per 10k flows/s (poll + drain + Arrow, 1 s drain)",
            "value": (cpu * 100.0).round() / 100.0,
            "unit": "% of one core",
        }));
        figures.push(json!({
            "name": "capture user-space CPU per flow record",
            "value": (per_record_us * 100.0).round() / 100.0,
            "unit": "µs",
        }));
        figures.push(json!({
            "name": "capture CPU run: new flows driven",
            "value": rate.round(),
            "unit": "flows/s",
        }));
        figures.push(json!({
            "name": "capture CPU run: flow records vs flows sent",
            "value": exact_text,
            "unit": "",
        }));
        figures.push(json!({
            "name": "capture CPU run: packets that went to the ring buffer (map full)",
            "value": cap.counters.map_full,
            "unit": "packets",
        }));
    }
}

/// 10,000 new flows a second for 10 s through a [`FlowCapture`] in namespace A.
fn measure_flows(bed: &Testbed) -> Result<FlowsResult> {
    let receiver = receiver(bed)?;
    let port = receiver.local_addr()?.port();
    let raw = Testbed::in_netns(&bed.b, raw_socket)?;
    let (delivered, stop_receiver) = (AtomicU64::new(0), AtomicBool::new(false));
    let (sender_done, flows_sent) = (AtomicBool::new(false), AtomicU64::new(0));
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    println!(
        "capture CPU: {FLOW_RATE} new flows/s for {FLOW_SECONDS} s, {PACKETS_PER_FLOW} \
         datagrams each; map {MAP_ENTRIES}, drain {} s, idle {} s",
        DRAIN.as_secs(),
        IDLE.as_secs()
    );
    std::thread::scope(|s| {
        let rx = s.spawn(|| receive(&receiver, &delivered, &stop_receiver, false));
        let tx = s.spawn(|| -> Result<Option<Sent>> {
            let ready = ready_rx; // Moved here: a Receiver is not Sync.
            if ready.recv().is_err() {
                return Ok(None); // The capture did not start; its error is reported.
            }
            let sent = send_flows(raw.as_raw_fd(), port, &flows_sent);
            sender_done.store(true, Ordering::Release);
            sent.map(Some)
        });
        let capture = Testbed::in_netns(&bed.a, || {
            capture_flows(port, ready_tx, &sender_done, &flows_sent)
        });
        stop_receiver.store(true, Ordering::Relaxed);
        let tx = tx.join().map_err(|_| anyhow!("the sender panicked"))?;
        let rx = rx.join().map_err(|_| anyhow!("the receiver panicked"))?;
        let capture = capture?;
        let sent = tx?.context("the sender never started")?;
        rx?;
        Ok(FlowsResult {
            sent,
            capture,
            port,
            delivered: delivered.load(Ordering::Relaxed),
        })
    })
}

/// Runs in namespace A: opens the capture, lets the sender start, and polls until every flow
/// sent has ended (or long after it should have).
fn capture_flows(
    port: u16,
    ready: mpsc::Sender<()>,
    sender_done: &AtomicBool,
    flows_sent: &AtomicU64,
) -> Result<CaptureRun> {
    let options = CaptureOptions {
        interfaces: vec![VETH_A.to_owned()],
        map_entries: MAP_ENTRIES,
        ring_buffer_bytes: RING_BYTES,
        idle_timeout: IDLE,
        drain_interval: DRAIN,
        ..CaptureOptions::default()
    };
    let mut capture = FlowCapture::open(&options).context("opening the capture on va")?;
    let is_bench = |r: &FlowRecord| {
        r.key.direction == DIRECTION_INGRESS
            && r.key.protocol == PROTO_UDP
            && r.key.dst_port == port
    };
    let (cpu0, wall0) = (thread_cpu()?, Instant::now());
    ready.send(()).map_err(|_| anyhow!("the sender is gone"))?;
    let (mut records, mut rows, mut bench) = (Vec::new(), 0, 0_u64);
    let mut done_at = None;
    // Longest a flow can take to end after its last packet: the idle timeout, plus a drain
    // interval before the drain that sees it, plus one before the expiry that ends it.
    let grace = IDLE + 2 * DRAIN + Duration::from_secs(2);
    loop {
        let ended = capture
            .poll(Duration::from_millis(250))
            .context("polling the capture")?;
        if !ended.is_empty() {
            let batch = capture.batch(&ended).context("building an Arrow batch")?;
            rows += batch.num_rows();
            bench += ended.iter().filter(|r| is_bench(r)).count() as u64;
            records.extend(ended);
        }
        if sender_done.load(Ordering::Acquire) {
            let at = *done_at.get_or_insert_with(Instant::now);
            if bench >= flows_sent.load(Ordering::Acquire) || at.elapsed() > grace {
                break;
            }
        }
    }
    let (cpu1, wall) = (thread_cpu()?, wall0.elapsed());
    let (leftover, counters) = capture.finish().context("finishing the capture")?;
    Ok(CaptureRun {
        records,
        leftover,
        rows,
        user: cpu1.0 - cpu0.0,
        system: cpu1.1 - cpu0.1,
        wall,
        counters,
    })
}

/// Flow `i` of the CPU measurement: its source address and port.
fn flow_source(i: u64) -> (Ipv4Addr, u16) {
    let host = FIRST_SOURCE + (i % SOURCES) as u8;
    let port = FLOW_PORT + (i / SOURCES) as u16;
    (Ipv4Addr::new(10, 77, 0, host), port)
}

/// Sends `FLOW_RATE × FLOW_SECONDS` flows of `PACKETS_PER_FLOW` datagrams to `port`, paced
/// every millisecond against the start time.
fn send_flows(fd: RawFd, port: u16, flows_sent: &AtomicU64) -> Result<Sent> {
    let total = FLOW_RATE * FLOW_SECONDS;
    // Every flow must be a new 5-tuple.
    ensure!(
        u64::from(FLOW_PORT) + total / SOURCES < 65_536,
        "too many flows for the source ports"
    );
    let start = Instant::now();
    let (mut next, mut packets) = (0, 0);
    while next < total {
        let due = ((start.elapsed().as_secs_f64() * FLOW_RATE as f64) as u64 + 1).min(total);
        if due > next {
            let datagrams: Vec<Vec<u8>> = (next..due)
                .flat_map(|i| {
                    let (addr, sport) = flow_source(i);
                    let d = udp_datagram(addr, sport, port);
                    std::iter::repeat_n(d, PACKETS_PER_FLOW as usize)
                })
                .collect();
            let n = datagrams.len();
            packets += Outbox::new(datagrams).send(fd, 0..n)?;
            next = due;
            flows_sent.store(next, Ordering::Release);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(Sent {
        flows: next,
        packets,
        seconds: start.elapsed().as_secs_f64(),
    })
}

// ---------------------------------------------------------------------------------------------
// Sockets and threads

/// A UDP socket of namespace A on `A_V4`, with a large receive buffer and a short timeout.
fn receiver(bed: &Testbed) -> Result<UdpSocket> {
    let socket = Testbed::in_netns(&bed.a, || {
        UdpSocket::bind((A_V4, 0)).context("binding the receiver")
    })?;
    let size: libc::c_int = 8 << 20;
    // SAFETY: `size` is a valid c_int for the duration of the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&raw const size).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    ensure!(
        rc == 0,
        "SO_RCVBUFFORCE: {}",
        std::io::Error::last_os_error()
    );
    socket.set_read_timeout(Some(Duration::from_millis(50)))?;
    Ok(socket)
}

/// Counts the datagrams arriving on `socket` until `stop`. With `spin`, never sleeps (so the
/// sender never pays for waking it up); else waits up to the socket's timeout.
fn receive(socket: &UdpSocket, count: &AtomicU64, stop: &AtomicBool, spin: bool) -> Result<()> {
    let mut buffers = vec![[0_u8; 256]; BATCH];
    let mut iovecs: Vec<libc::iovec> = buffers
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        })
        .collect();
    let mut headers: Vec<libc::mmsghdr> = iovecs
        .iter_mut()
        .map(|iov| {
            // SAFETY: all-zero is a valid mmsghdr (null pointers, zero lengths).
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
            h
        })
        .collect();
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: every header points to one live iovec over a live buffer of `buffers`; none
        // of them moves or is freed during the call.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                if spin {
                    libc::MSG_DONTWAIT
                } else {
                    libc::MSG_WAITFORONE
                },
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            match e.kind() {
                std::io::ErrorKind::WouldBlock
                | std::io::ErrorKind::TimedOut
                | std::io::ErrorKind::Interrupted => continue,
                _ => return Err(e).context("recvmmsg"),
            }
        }
        count.fetch_add(n as u64, Ordering::Relaxed);
    }
    Ok(())
}

/// A raw IPv4 socket (`IPPROTO_RAW`: the caller writes the IP header) of the calling
/// thread's namespace.
fn raw_socket() -> Result<OwnedFd> {
    // SAFETY: plain socket(2); the result is checked and owned below.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::IPPROTO_RAW,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("raw socket (needs CAP_NET_RAW)");
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An IPv4 UDP datagram from `src:sport` to `A_V4:dport` with [`PAYLOAD`] bytes. The kernel
/// fills in the IP checksum and identification; the UDP checksum is 0 (none, valid for IPv4).
fn udp_datagram(src: Ipv4Addr, sport: u16, dport: u16) -> Vec<u8> {
    let mut p = Vec::with_capacity(IP_LEN);
    p.extend_from_slice(&[0x45, 0]);
    p.extend_from_slice(&(IP_LEN as u16).to_be_bytes());
    // Identification 0, don't fragment, TTL 64, UDP, checksum 0.
    p.extend_from_slice(&[0, 0, 0x40, 0, 64, PROTO_UDP, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&A_V4.octets());
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&((8 + PAYLOAD) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.resize(IP_LEN, 0x5a);
    p
}

/// Datagrams to `A_V4`, ready for `sendmmsg` on a raw socket. The headers point into the
/// heap buffers of the other fields, which stay put when an `Outbox` moves.
struct Outbox {
    headers: Vec<libc::mmsghdr>,
    _iovecs: Vec<libc::iovec>,
    _packets: Vec<Vec<u8>>,
    _destination: Box<libc::sockaddr_in>,
}

impl Outbox {
    fn new(packets: Vec<Vec<u8>>) -> Self {
        // SAFETY: all-zero is a valid sockaddr_in.
        let mut destination: Box<libc::sockaddr_in> = Box::new(unsafe { std::mem::zeroed() });
        destination.sin_family = libc::AF_INET as libc::sa_family_t;
        destination.sin_addr.s_addr = u32::from_ne_bytes(A_V4.octets());
        let name: *mut libc::sockaddr_in = &raw mut *destination;
        let mut iovecs: Vec<libc::iovec> = packets
            .iter()
            .map(|p| libc::iovec {
                iov_base: p.as_ptr().cast_mut().cast(),
                iov_len: p.len(),
            })
            .collect();
        let headers = iovecs
            .iter_mut()
            .map(|iov| {
                // SAFETY: all-zero is a valid mmsghdr (null pointers, zero lengths).
                let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
                h.msg_hdr.msg_name = name.cast();
                h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
                h.msg_hdr.msg_iov = iov;
                h.msg_hdr.msg_iovlen = 1;
                h
            })
            .collect();
        Self {
            headers,
            _iovecs: iovecs,
            _packets: packets,
            _destination: destination,
        }
    }

    /// Sends the datagrams in `range` on the raw socket `fd`; returns how many were sent.
    fn send(&mut self, fd: RawFd, range: Range<usize>) -> Result<u64> {
        let (mut at, end) = (range.start, range.end.min(self.headers.len()));
        while at < end {
            let rest = &mut self.headers[at..end];
            // SAFETY: each header points to a live iovec, packet and address owned by `self`,
            // which outlives the call; the kernel only reads them (and writes `msg_len`).
            let n = unsafe { libc::sendmmsg(fd, rest.as_mut_ptr(), rest.len() as libc::c_uint, 0) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e).context("sendmmsg");
            }
            at += n as usize;
        }
        Ok((end - range.start) as u64)
    }
}

/// The CPUs this process may run on.
fn allowed_cpus() -> Result<Vec<usize>> {
    // SAFETY: all-zero is a valid (empty) cpu_set_t.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    let rc = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &raw mut set) };
    ensure!(
        rc == 0,
        "sched_getaffinity: {}",
        std::io::Error::last_os_error()
    );
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE, the size of `set`.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// Pins the calling thread to `cpu`.
fn pin(cpu: usize) -> Result<()> {
    // SAFETY: all-zero is a valid (empty) cpu_set_t.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` comes from `allowed_cpus`, so it is below CPU_SETSIZE.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set) };
    ensure!(
        rc == 0,
        "sched_setaffinity(cpu {cpu}): {}",
        std::io::Error::last_os_error()
    );
    Ok(())
}

/// CPU time of the calling thread in ns (`CLOCK_THREAD_CPUTIME_ID`).
fn thread_cpu_ns() -> Result<u64> {
    // SAFETY: all-zero is a valid timespec.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: `ts` is a valid timespec for the kernel to fill.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts) };
    ensure!(
        rc == 0,
        "clock_gettime(CLOCK_THREAD_CPUTIME_ID): {}",
        std::io::Error::last_os_error()
    );
    Ok(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// CPU time of the calling thread: (user, system).
fn thread_cpu() -> Result<(Duration, Duration)> {
    // SAFETY: all-zero is a valid rusage.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid rusage for the kernel to fill.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &raw mut usage) };
    ensure!(
        rc == 0,
        "getrusage(RUSAGE_THREAD): {}",
        std::io::Error::last_os_error()
    );
    let time = |tv: libc::timeval| {
        Duration::from_secs(tv.tv_sec as u64) + Duration::from_micros(tv.tv_usec as u64)
    };
    Ok((time(usage.ru_utime), time(usage.ru_stime)))
}
