//! Helpers for the flow-capture tests: the `ebpf_flows` config, `weir` run inside a network
//! namespace, flow rows read back into a struct, the capture line of the run summary, and exact
//! comparisons of flows against what was sent.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray as _;
use arrow_array::types::{TimestampMicrosecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type};
use arrow_array::{Array as _, RecordBatch};
use serde_json::Value;

use crate::weir_process::{Finished, Scratch, weir_bin};

/// Where the program saw a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// TC ingress.
    Ingress,
    /// TC egress.
    Egress,
}

impl Direction {
    /// The other direction.
    #[must_use]
    pub fn other(self) -> Self {
        match self {
            Self::Ingress => Self::Egress,
            Self::Egress => Self::Ingress,
        }
    }

    /// The `direction` column's text.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingress => "ingress",
            Self::Egress => "egress",
        }
    }
}

/// A flow's identity as the capture keys it (interface aside).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port (0 unless TCP or UDP).
    pub src_port: u16,
    /// Destination port (0 unless TCP or UDP).
    pub dst_port: u16,
    /// IP protocol.
    pub proto: u8,
    /// ICMP type and code (ICMP and ICMPv6 only).
    pub icmp: Option<(u8, u8)>,
    /// Hook.
    pub direction: Direction,
}

impl Key {
    /// A UDP flow.
    #[must_use]
    pub fn udp(src: SocketAddr, dst: SocketAddr, direction: Direction) -> Self {
        Self::ports(17, src, dst, direction)
    }

    /// A TCP flow.
    #[must_use]
    pub fn tcp(src: SocketAddr, dst: SocketAddr, direction: Direction) -> Self {
        Self::ports(6, src, dst, direction)
    }

    fn ports(proto: u8, src: SocketAddr, dst: SocketAddr, direction: Direction) -> Self {
        Self {
            src: src.ip(),
            dst: dst.ip(),
            src_port: src.port(),
            dst_port: dst.port(),
            proto,
            icmp: None,
            direction,
        }
    }

    /// An ICMP (IPv4) or ICMPv6 (IPv6) flow.
    #[must_use]
    pub fn icmp(src: IpAddr, dst: IpAddr, icmp_type: u8, code: u8, direction: Direction) -> Self {
        Self {
            src,
            dst,
            src_port: 0,
            dst_port: 0,
            proto: if src.is_ipv4() { 1 } else { 58 },
            icmp: Some((icmp_type, code)),
            direction,
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} proto {} {}:{} -> {}:{}",
            self.direction.as_str(),
            self.proto,
            self.src,
            self.src_port,
            self.dst,
            self.dst_port
        )?;
        if let Some((t, c)) = self.icmp {
            write!(f, " icmp {t}/{c}")?;
        }
        Ok(())
    }
}

/// One row of the `ebpf_flows` schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRow {
    /// First packet, µs since the epoch.
    pub ts: i64,
    /// Last packet, µs since the epoch.
    pub ts_end: i64,
    /// `src_addr`.
    pub src_addr: String,
    /// `dst_addr`.
    pub dst_addr: String,
    /// `src_port`.
    pub src_port: u16,
    /// `dst_port`.
    pub dst_port: u16,
    /// `proto`.
    pub proto: u8,
    /// `icmp_type`.
    pub icmp_type: Option<u8>,
    /// `icmp_code`.
    pub icmp_code: Option<u8>,
    /// `ip_version`.
    pub ip_version: u8,
    /// `packets`.
    pub packets: u64,
    /// `bytes`.
    pub bytes: u64,
    /// `tcp_flags`.
    pub tcp_flags: u8,
    /// `ifindex`.
    pub ifindex: u32,
    /// `interface`.
    pub interface: String,
    /// `direction`.
    pub direction: String,
    /// `end_reason`.
    pub end_reason: String,
}

impl FlowRow {
    /// The row's key; panics on a row whose columns cannot be a key (bad address text, unknown
    /// direction).
    #[must_use]
    pub fn key(&self) -> Key {
        let addr = |s: &str| -> IpAddr {
            s.parse()
                .unwrap_or_else(|e| panic!("address {s:?} does not parse: {e}"))
        };
        Key {
            src: addr(&self.src_addr),
            dst: addr(&self.dst_addr),
            src_port: self.src_port,
            dst_port: self.dst_port,
            proto: self.proto,
            icmp: self.icmp_type.zip(self.icmp_code),
            direction: match self.direction.as_str() {
                "ingress" => Direction::Ingress,
                "egress" => Direction::Egress,
                other => panic!("direction {other:?}"),
            },
        }
    }

    /// The rows of `batches`, after checking their schema is the `ebpf_flows` one (names,
    /// types, nullability).
    #[must_use]
    pub fn from_batches(batches: &[RecordBatch]) -> Vec<Self> {
        let want = weir_host::capture::flow_schema();
        let mut rows = Vec::new();
        for b in batches {
            let got = b.schema();
            let fields = |s: &arrow_schema::Schema| -> Vec<_> {
                s.fields()
                    .iter()
                    .map(|f| (f.name().clone(), f.data_type().clone(), f.is_nullable()))
                    .collect()
            };
            assert_eq!(
                fields(&got),
                fields(&want),
                "flow rows have the flow schema"
            );
            let col = |n: &str| b.column_by_name(n).unwrap();
            let ts = |n| col(n).as_primitive::<TimestampMicrosecondType>().clone();
            let text = |n| col(n).as_string::<i32>().clone();
            let u8s = |n| col(n).as_primitive::<UInt8Type>().clone();
            let u16s = |n| col(n).as_primitive::<UInt16Type>().clone();
            let u64s = |n| col(n).as_primitive::<UInt64Type>().clone();
            let (t0, t1) = (ts("ts"), ts("ts_end"));
            let (src, dst) = (text("src_addr"), text("dst_addr"));
            let (sp, dp) = (u16s("src_port"), u16s("dst_port"));
            let (proto, it, ic, ver, flags) = (
                u8s("proto"),
                u8s("icmp_type"),
                u8s("icmp_code"),
                u8s("ip_version"),
                u8s("tcp_flags"),
            );
            let (packets, bytes) = (u64s("packets"), u64s("bytes"));
            let ifindex = col("ifindex").as_primitive::<UInt32Type>().clone();
            let (iface, dir, reason) = (text("interface"), text("direction"), text("end_reason"));
            let opt = |a: &arrow_array::UInt8Array, i| (!a.is_null(i)).then(|| a.value(i));
            for i in 0..b.num_rows() {
                rows.push(Self {
                    ts: t0.value(i),
                    ts_end: t1.value(i),
                    src_addr: src.value(i).to_owned(),
                    dst_addr: dst.value(i).to_owned(),
                    src_port: sp.value(i),
                    dst_port: dp.value(i),
                    proto: proto.value(i),
                    icmp_type: opt(&it, i),
                    icmp_code: opt(&ic, i),
                    ip_version: ver.value(i),
                    packets: packets.value(i),
                    bytes: bytes.value(i),
                    tcp_flags: flags.value(i),
                    ifindex: ifindex.value(i),
                    interface: iface.value(i).to_owned(),
                    direction: dir.value(i).to_owned(),
                    end_reason: reason.value(i).to_owned(),
                });
            }
        }
        rows
    }

    /// Every row of every final Parquet file in `dir`.
    #[must_use]
    pub fn read_parquet_dir(dir: &Path) -> Vec<Self> {
        Self::from_batches(&crate::weir_process::read_parquet_dir(dir))
    }
}

/// The rows of `rows` with key `key`.
#[must_use]
pub fn rows_of<'a>(rows: &'a [FlowRow], key: &Key) -> Vec<&'a FlowRow> {
    rows.iter().filter(|r| r.key() == *key).collect()
}

/// What one flow record must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
    /// TCP flags union.
    pub tcp_flags: u8,
    /// End reason.
    pub end_reason: &'static str,
}

/// The parts of a row that [`Expected`] and the interface fix.
#[derive(Debug, PartialEq, Eq)]
struct Observed<'a> {
    packets: u64,
    bytes: u64,
    tcp_flags: u8,
    end_reason: &'a str,
    interface: &'a str,
    ifindex: u32,
    ip_version: u8,
    icmp_type: Option<u8>,
    icmp_code: Option<u8>,
}

/// Asserts that `rows` hold exactly one record of `key`, seen on `interface`/`ifindex`, with
/// the `expected` values, consistent columns (IP version, ICMP fields null unless ICMP) and
/// `ts <= ts_end`; returns it.
#[track_caller]
pub fn assert_flow<'a>(
    rows: &'a [FlowRow],
    key: &Key,
    interface: (&str, u32),
    expected: &Expected,
) -> &'a FlowRow {
    let found = rows_of(rows, key);
    assert_eq!(
        found.len(),
        1,
        "one record of {key}, got {found:#?}\nall rows: {rows:#?}"
    );
    let r = found[0];
    let got = Observed {
        packets: r.packets,
        bytes: r.bytes,
        tcp_flags: r.tcp_flags,
        end_reason: &r.end_reason,
        interface: &r.interface,
        ifindex: r.ifindex,
        ip_version: r.ip_version,
        icmp_type: r.icmp_type,
        icmp_code: r.icmp_code,
    };
    let want = Observed {
        packets: expected.packets,
        bytes: expected.bytes,
        tcp_flags: expected.tcp_flags,
        end_reason: expected.end_reason,
        interface: interface.0,
        ifindex: interface.1,
        ip_version: if key.src.is_ipv4() { 4 } else { 6 },
        icmp_type: key.icmp.map(|(t, _)| t),
        icmp_code: key.icmp.map(|(_, c)| c),
    };
    assert_eq!(got, want, "record of {key}: {r:#?}");
    assert!(r.ts <= r.ts_end, "ts <= ts_end: {r:#?}");
    r
}

/// An `ebpf_flows` pipeline config: source `kernel` on `interfaces`, optional policies, a
/// Parquet sink writing to `out/`.
#[derive(Debug, Clone)]
pub struct CaptureConfig {
    /// Interfaces to capture on.
    pub interfaces: Vec<String>,
    /// `map_entries`, when set.
    pub map_entries: Option<u32>,
    /// `idle_timeout`.
    pub idle_timeout: String,
    /// `active_timeout`.
    pub active_timeout: String,
    /// `drain_interval`.
    pub drain_interval: String,
    /// TOML added as is (`[trust]`, `[[policies]]`).
    pub extra: String,
}

impl Default for CaptureConfig {
    /// On `va`, timeouts long enough that every flow of a short test ends at shutdown, a drain
    /// every 200 ms.
    fn default() -> Self {
        Self {
            interfaces: vec![crate::netns::VETH_A.to_owned()],
            map_entries: None,
            idle_timeout: "60s".into(),
            active_timeout: "120s".into(),
            drain_interval: "200ms".into(),
            extra: String::new(),
        }
    }
}

/// The name of the `ebpf_flows` source in [`CaptureConfig`].
pub const SOURCE: &str = "kernel";

impl CaptureConfig {
    /// The config file's text.
    #[must_use]
    pub fn toml(&self) -> String {
        let interfaces: Vec<String> = self.interfaces.iter().map(|i| format!("{i:?}")).collect();
        let map_entries = self
            .map_entries
            .map(|n| format!("map_entries = {n}\n"))
            .unwrap_or_default();
        format!(
            "[pipeline]\nbatch_max_rows = 1000\nbatch_max_delay = \"50ms\"\n\n\
             [sources.{SOURCE}]\ntype = \"ebpf_flows\"\ninterfaces = [{}]\n{map_entries}\
             idle_timeout = {:?}\nactive_timeout = {:?}\ndrain_interval = {:?}\n\n\
             [admin]\nlisten = \"off\"\n\n{}\n\n[sinks.out]\ntype = \"parquet\"\npath = \"out\"\n",
            interfaces.join(", "),
            self.idle_timeout,
            self.active_timeout,
            self.drain_interval,
            self.extra,
        )
    }

    /// Writes `weir.toml` in `scratch`.
    #[must_use]
    pub fn write(&self, scratch: &Scratch) -> PathBuf {
        scratch.write("weir.toml", self.toml())
    }
}

/// The `weir` binary running inside a network namespace (`ip netns exec NS weir ...`, which
/// execs `weir` itself: signals reach it directly). Killed on drop if still running.
#[derive(Debug)]
pub struct NetnsWeir {
    child: Option<Child>,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    summary: Option<PathBuf>,
}

impl NetnsWeir {
    /// `weir run --config CONFIG --summary-json ... --no-progress` in `ns`.
    #[must_use]
    pub fn run(ns: &str, scratch: &Scratch, config: &Path) -> Self {
        let summary = scratch.join("summary.json");
        let args = [
            "run",
            "--config",
            config.to_str().unwrap(),
            "--summary-json",
            summary.to_str().unwrap(),
            "--no-progress",
        ];
        Self::start(ns, scratch, &args, Some(summary.clone()))
    }

    /// `weir ARGS` in `ns`.
    #[must_use]
    pub fn start(ns: &str, scratch: &Scratch, args: &[&str], summary: Option<PathBuf>) -> Self {
        Self::start_wrapped(ns, scratch, &[], args, summary)
    }

    /// `WRAPPER... weir ARGS` in `ns`: `wrapper` is a command that execs the rest, such as
    /// `setpriv` with a set of capabilities.
    #[must_use]
    pub fn start_wrapped(
        ns: &str,
        scratch: &Scratch,
        wrapper: &[&str],
        args: &[&str],
        summary: Option<PathBuf>,
    ) -> Self {
        let stdout_path = scratch.join("weir-stdout.txt");
        let stderr_path = scratch.join("weir-stderr.txt");
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(wrapper)
            .arg(weir_bin())
            .args(args)
            .current_dir(scratch.path())
            .env("RUST_LOG", "weir_host=info,warn")
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
            .spawn()
            .expect("ip netns exec weir starts");
        Self {
            child: Some(child),
            stdout_path,
            stderr_path,
            summary,
        }
    }

    /// The process id (that of `weir`: `ip netns exec` execs it).
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// stderr so far.
    #[must_use]
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().expect("running").try_wait(), Ok(None))
    }

    /// Waits until stderr contains `needle` at least `times` times; panics if the process exits
    /// first or after `timeout`.
    #[track_caller]
    pub fn wait_for(&mut self, needle: &str, times: usize, timeout: Duration) {
        let start = Instant::now();
        while self.stderr().matches(needle).count() < times {
            assert!(
                self.is_running(),
                "weir exited before {needle:?} ×{times}:\n{}",
                self.stderr()
            );
            assert!(
                start.elapsed() < timeout,
                "no {needle:?} ×{times} after {timeout:?}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until stderr contains `needle` (`true`) or the process exits first (`false`);
    /// panics after `timeout`.
    pub fn wait_for_or_exit(&mut self, needle: &str, timeout: Duration) -> bool {
        let start = Instant::now();
        while !self.stderr().contains(needle) {
            if !self.is_running() {
                return self.stderr().contains(needle);
            }
            assert!(
                start.elapsed() < timeout,
                "no {needle:?} after {timeout:?}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// Waits for `pipeline ready` (the program is attached before).
    #[track_caller]
    pub fn wait_ready(&mut self) {
        self.wait_for("pipeline ready", 1, Duration::from_secs(120));
    }

    /// Sends `signal` (`libc::SIGINT`, `libc::SIGTERM`).
    pub fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.pid()).expect("pid fits");
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
    }

    /// Waits for the exit (panics after `timeout`, killing it).
    #[must_use]
    pub fn wait(mut self, timeout: Duration) -> Finished {
        let start = Instant::now();
        let mut child = self.child.take().expect("running");
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                let summary = self
                    .summary
                    .as_ref()
                    .and_then(|p| std::fs::read(p).ok())
                    .map(|b| serde_json::from_slice::<Value>(&b).expect("the summary is JSON"));
                return Finished {
                    code: status.code(),
                    stdout: std::fs::read(&self.stdout_path).unwrap_or_default(),
                    stderr: self.stderr(),
                    summary,
                };
            }
            if start.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                panic!("weir did not exit within {timeout:?}:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `signal` (SIGINT or SIGTERM), then waits for the exit and checks the run succeeded with
    /// every row accounted for; returns the result.
    #[must_use]
    pub fn stop(self, signal: libc::c_int) -> Finished {
        self.signal(signal);
        let done = self.wait(Duration::from_secs(60));
        let _ = done.ok();
        done
    }
}

impl Drop for NetnsWeir {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The capture counters as printed on one line (`capture <source>: flows N, ...` in the run
/// summary, `weir: flows N, ...` at the end of `weir capture`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureLine {
    /// Flow records.
    pub flows: u64,
    /// Packets in them.
    pub packets: u64,
    /// Bytes in them.
    pub bytes: u64,
    /// Packets sent over the ring buffer because the map was full.
    pub map_full: u64,
    /// Ring-buffer events received.
    pub ring_events: u64,
    /// Packets lost: ring buffer full.
    pub ringbuf_full: u64,
    /// Packets lost: map errors.
    pub map_errors: u64,
    /// Frames that are not IP.
    pub not_ip: u64,
    /// Truncated IP packets.
    pub truncated: u64,
    /// Interfaces lost (`None`: the line has no interface part).
    pub interfaces_lost: Option<u64>,
    /// Interfaces re-attached.
    pub reattached: Option<u64>,
}

impl CaptureLine {
    /// Parses the line of `text` that starts with `prefix` followed by `flows `; panics if there is none or it does
    /// not read as expected.
    #[must_use]
    #[track_caller]
    pub fn parse(text: &str, prefix: &str) -> Self {
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix(prefix).filter(|r| r.starts_with("flows ")))
            .unwrap_or_else(|| panic!("no line starting {prefix:?} in:\n{text}"));
        let mut values = HashMap::new();
        for part in line.split([',', ';', '(', ')']) {
            let part = part.trim();
            let part = part.strip_prefix("lost:").unwrap_or(part).trim();
            if part.is_empty() {
                continue;
            }
            let (label, n) = part
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("{part:?} in {line:?}"));
            let n: u64 = n
                .parse()
                .unwrap_or_else(|e| panic!("{part:?} in {line:?}: {e}"));
            values.insert(label.to_owned(), n);
        }
        let need = |values: &mut HashMap<String, u64>, label: &str| {
            values
                .remove(label)
                .unwrap_or_else(|| panic!("no {label:?} in {line:?}"))
        };
        let parsed = Self {
            flows: need(&mut values, "flows"),
            packets: need(&mut values, "packets"),
            bytes: need(&mut values, "bytes"),
            map_full: need(&mut values, "map full"),
            ring_events: need(&mut values, "ring events"),
            ringbuf_full: need(&mut values, "ring buffer full"),
            map_errors: need(&mut values, "map errors"),
            not_ip: need(&mut values, "not IP"),
            truncated: need(&mut values, "truncated"),
            interfaces_lost: values.remove("interfaces lost"),
            reattached: values.remove("re-attached"),
        };
        assert!(values.is_empty(), "unknown parts {values:?} in {line:?}");
        parsed
    }

    /// The same counters from the JSON summary's `sources.<source>.capture`.
    #[must_use]
    #[track_caller]
    pub fn from_summary(summary: &Value, source: &str) -> Self {
        let c = &summary["sources"][source]["capture"];
        let n = |k: &str| {
            c[k].as_u64()
                .unwrap_or_else(|| panic!("no capture.{k} in {summary:#}"))
        };
        let lost = n("interface_lost");
        let back = n("interface_reattached");
        let any = lost + back > 0;
        Self {
            flows: n("flows"),
            packets: n("packets"),
            bytes: n("bytes"),
            map_full: n("map_full"),
            ring_events: n("ring_events"),
            ringbuf_full: n("ringbuf_full"),
            map_errors: n("map_error"),
            not_ip: n("unsupported"),
            truncated: n("truncated"),
            interfaces_lost: any.then_some(lost),
            reattached: any.then_some(back),
        }
    }

    /// The summary line of the capture source in `weir run`'s stderr, checked against the
    /// JSON summary.
    #[must_use]
    #[track_caller]
    pub fn of_run(done: &Finished) -> Self {
        let line = Self::parse(&done.stderr, &format!("capture {SOURCE}: "));
        let summary = done.summary.as_ref().expect("weir wrote its summary");
        assert_eq!(
            line,
            Self::from_summary(summary, SOURCE),
            "summary line and JSON summary agree"
        );
        line
    }

    /// Asserts that flows, packets and bytes are those of `rows`.
    #[track_caller]
    pub fn assert_totals(&self, rows: &[FlowRow]) {
        assert_eq!(
            (self.flows, self.packets, self.bytes),
            (
                rows.len() as u64,
                rows.iter().map(|r| r.packets).sum(),
                rows.iter().map(|r| r.bytes).sum()
            ),
            "the capture counters are the totals of the records"
        );
    }

    /// Asserts that nothing was lost.
    #[track_caller]
    pub fn assert_no_loss(&self) {
        assert_eq!(
            (self.ringbuf_full, self.map_errors, self.truncated),
            (0, 0, 0),
            "no packet lost or truncated: {self:?}"
        );
        assert_eq!(
            self.ring_events, self.map_full,
            "every ring event received: {self:?}"
        );
    }
}

/// Microseconds since the epoch now (the `ts` columns' unit).
#[must_use]
pub fn now_micros() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970");
    i64::try_from(d.as_micros()).expect("fits")
}
