//! Part 5 of the demo, as root: network flows captured in the kernel (`examples/flows`).
//!
//! Two fresh network namespaces joined by a veth pair; `weir run` inside the first captures on
//! `wdemo0`; known UDP flows and a TCP transfer cross from the second; the Parquet output is
//! read back and compared with what was sent. Only addresses inside the two namespaces are
//! used, and both are deleted at the end.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use arrow_array::cast::AsArray as _;
use arrow_array::types::{UInt8Type, UInt16Type, UInt64Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use weir_host::capture::in_netns;

const A_ADDR: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
const B_ADDR: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
/// UDP flows B → A: destination port, datagrams, payload bytes each.
const UDP_FLOWS: [(u16, u64, usize); 3] = [(5000, 10, 100), (5001, 40, 512), (5002, 5, 1200)];
/// Bytes of the TCP transfer B → A.
const TCP_BYTES: usize = 1 << 20;

/// Two namespaces and the veth pair between them; deleted on drop.
struct Namespaces {
    a: String,
    b: String,
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip")?;
    ensure!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

impl Namespaces {
    fn create() -> Result<Self> {
        let pid = std::process::id();
        let ns = Self {
            a: format!("wdemoA-{pid}"),
            b: format!("wdemoB-{pid}"),
        };
        ip(&["netns", "add", &ns.a])?;
        ip(&["netns", "add", &ns.b])?;
        let (a, b) = (ns.a.as_str(), ns.b.as_str());
        ip(&[
            "-n", a, "link", "add", "wdemo0", "type", "veth", "peer", "name", "wdemo1", "netns", b,
        ])?;
        ip(&["-n", a, "addr", "add", "10.99.0.1/24", "dev", "wdemo0"])?;
        ip(&["-n", b, "addr", "add", "10.99.0.2/24", "dev", "wdemo1"])?;
        for (n, dev) in [(a, "wdemo0"), (b, "wdemo1")] {
            ip(&["-n", n, "link", "set", "lo", "up"])?;
            ip(&["-n", n, "link", "set", dev, "up"])?;
        }
        Ok(ns)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("  cleanup: {e:#}");
            }
        }
    }
}

/// One flow row read back.
struct Flow {
    src: String,
    dst: String,
    src_port: u16,
    dst_port: u16,
    proto: u8,
    direction: String,
    packets: u64,
    bytes: u64,
    tcp_flags: u8,
    end_reason: String,
}

fn read_flows(out: &Path) -> Result<Vec<Flow>> {
    let mut flows = Vec::new();
    for entry in std::fs::read_dir(out)?.filter_map(Result::ok) {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "parquet") {
            continue;
        }
        let file = std::fs::File::open(&path)?;
        for batch in ParquetRecordBatchReaderBuilder::try_new(file)?.build()? {
            let b = batch?;
            let col = |n: &str| {
                b.column_by_name(n)
                    .with_context(|| format!("no column {n}"))
            };
            let (src, dst) = (
                col("src_addr")?.as_string::<i32>(),
                col("dst_addr")?.as_string::<i32>(),
            );
            let (sp, dp) = (
                col("src_port")?.as_primitive::<UInt16Type>(),
                col("dst_port")?.as_primitive::<UInt16Type>(),
            );
            let proto = col("proto")?.as_primitive::<UInt8Type>();
            let flags = col("tcp_flags")?.as_primitive::<UInt8Type>();
            let (packets, bytes) = (
                col("packets")?.as_primitive::<UInt64Type>(),
                col("bytes")?.as_primitive::<UInt64Type>(),
            );
            let (dir, reason) = (
                col("direction")?.as_string::<i32>(),
                col("end_reason")?.as_string::<i32>(),
            );
            for i in 0..b.num_rows() {
                flows.push(Flow {
                    src: src.value(i).to_owned(),
                    dst: dst.value(i).to_owned(),
                    src_port: sp.value(i),
                    dst_port: dp.value(i),
                    proto: proto.value(i),
                    direction: dir.value(i).to_owned(),
                    packets: packets.value(i),
                    bytes: bytes.value(i),
                    tcp_flags: flags.value(i),
                    end_reason: reason.value(i).to_owned(),
                });
            }
        }
    }
    Ok(flows)
}

/// Sends the UDP flows and the TCP transfer from B to A.
fn traffic(ns: &Namespaces) -> Result<()> {
    let receivers: Vec<UdpSocket> = in_netns(&ns.a, || {
        UDP_FLOWS
            .iter()
            .map(|(port, _, _)| UdpSocket::bind((A_ADDR, *port)).context("binding a receiver"))
            .collect::<Result<Vec<_>>>()
    })?;
    let sender = in_netns(&ns.b, || {
        UdpSocket::bind((B_ADDR, 0)).context("binding the sender")
    })?;
    for (port, count, size) in UDP_FLOWS {
        for _ in 0..count {
            sender.send_to(&vec![0x42; size], SocketAddr::from((A_ADDR, port)))?;
            // Paced, so no datagram is dropped at a full receive queue.
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    drop(receivers);
    let listener = in_netns(&ns.a, || {
        TcpListener::bind((A_ADDR, 6000)).context("listening")
    })?;
    let server = std::thread::spawn(move || -> Result<usize> {
        let (mut conn, _) = listener.accept()?;
        let mut got = Vec::new();
        conn.read_to_end(&mut got)?;
        Ok(got.len())
    });
    let mut client = in_netns(&ns.b, || {
        TcpStream::connect_timeout(&SocketAddr::from((A_ADDR, 6000)), Duration::from_secs(3))
            .context("connecting")
    })?;
    client.write_all(&vec![0x17; TCP_BYTES])?;
    client.shutdown(std::net::Shutdown::Write)?;
    let got = server
        .join()
        .map_err(|_| anyhow::anyhow!("server panicked"))??;
    ensure!(got == TCP_BYTES, "the TCP server got {got} bytes");
    Ok(())
}

/// Runs part 5; prints why it is skipped when not root.
pub fn run(weir_bin: &Path, sign: impl Fn(&Path, &[&str]) -> Result<()>) -> Result<()> {
    println!("\n5. Network flows counted in the kernel (eBPF, examples/flows)");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("  skipped: attaching eBPF programs needs root; run `cargo xtask demo` as root");
        return Ok(());
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/flows");
    let dir = dir.canonicalize().unwrap_or(dir);
    sign(&dir, &["flow-filter"])?;
    let out = dir.join("out");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(dir.join("state"))?;
    let ns = Namespaces::create()?;
    let log = dir.join("state/weir.log");
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.a])
        .arg(weir_bin)
        .args(["run", "--no-progress", "--config"])
        .arg(dir.join("weir.toml"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .context("starting weir in the namespace")?;
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("pipeline ready") {
            break;
        }
        if let Some(status) = child.try_wait()? {
            bail!("weir exited ({status}) before it was ready:\n{text}");
        }
        ensure!(
            started.elapsed() < Duration::from_secs(30),
            "weir was not ready after 30 s:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "  weir runs inside namespace {}, capturing on wdemo0; sending traffic from {}",
        ns.a, ns.b
    );
    traffic(&ns)?;
    std::thread::sleep(Duration::from_millis(300));
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()?;
    ensure!(status.success(), "kill -INT failed");
    let status = child.wait()?;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    ensure!(status.success(), "weir run failed ({status}):\n{text}");
    drop(ns);

    let mut flows = read_flows(&out)?;
    flows.sort_by_key(|f| std::cmp::Reverse(f.bytes));
    println!(
        "  {} flow records in {}; the largest:",
        flows.len(),
        out.strip_prefix(&dir).unwrap_or(&out).display()
    );
    println!(
        "    {:<8} {:<5} {:<22} {:<22} {:>8} {:>10} {:>6}  end",
        "dir", "proto", "source", "destination", "packets", "bytes", "flags"
    );
    for f in flows.iter().take(8) {
        println!(
            "    {:<8} {:<5} {:<22} {:<22} {:>8} {:>10} {:>#6x}  {}",
            f.direction,
            f.proto,
            format!("{}:{}", f.src, f.src_port),
            format!("{}:{}", f.dst, f.dst_port),
            f.packets,
            f.bytes,
            f.tcp_flags,
            f.end_reason
        );
    }
    println!("  sent vs counted (bytes = frames: 14 Ethernet + 20 IPv4 + 8 UDP + payload):");
    let mut exact = true;
    for (port, count, size) in UDP_FLOWS {
        let want = (count, count * (42 + size as u64));
        let got = flows
            .iter()
            .filter(|f| f.proto == 17 && f.dst_port == port && f.direction == "ingress")
            .fold((0, 0), |(p, b), f| (p + f.packets, b + f.bytes));
        exact &= got == want;
        println!(
            "    udp → :{port}  sent {:>3} × {size:>4} B = {:>6} B   counted {:>3} packets {:>6} B  {}",
            count,
            want.1,
            got.0,
            got.1,
            if got == want { "exact" } else { "MISMATCH" }
        );
    }
    let tcp: Vec<&Flow> = flows
        .iter()
        .filter(|f| f.proto == 6 && f.dst_port == 6000)
        .collect();
    if let Some(f) = tcp.first() {
        println!(
            "    tcp → :6000  {} payload bytes sent; counted {} packets, {} frame bytes, flags {:#04x}",
            TCP_BYTES, f.packets, f.bytes, f.tcp_flags
        );
    }
    for line in text.lines().skip_while(|l| !l.starts_with("rows in")) {
        println!("  {line}");
    }
    ensure!(exact, "the captured UDP counts differ from what was sent");
    Ok(())
}
