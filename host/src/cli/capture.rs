//! `weir capture`: live flows on some interfaces in a top-like table, for quick checks.
//!
//! Every `--interval` the kernel map is drained and the table redrawn: the open flows with the
//! most bytes first, and the capture's counters. On a terminal each frame replaces the last;
//! otherwise frames follow each other. `--json` prints each ended flow as one JSON line (the
//! `ebpf_flows` source's schema) instead. Stops after `--duration` or on Ctrl-C, then ends
//! every open flow (`shutdown`) and prints them.

use std::io::{IsTerminal as _, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::capture::flow_batch::address;
use crate::capture::{CaptureOptions, FlowCapture, FlowRecord};

/// Arguments of `weir capture`.
#[derive(Debug, clap::Args)]
pub struct CaptureArgs {
    /// An interface to capture on (ingress and egress); repeat for several.
    #[arg(long = "iface", required = true)]
    pub interfaces: Vec<String>,
    /// How often the table is redrawn (and the kernel map drained).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Stop after this long (default: until Ctrl-C).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Rows in the table.
    #[arg(long, default_value_t = 20)]
    pub top: usize,
    /// A flow ends after this long without a packet.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// A flow is ended (and a new record started) after this long.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub active_timeout: Duration,
    /// Entries of the kernel flow map.
    #[arg(long, default_value_t = 16_384)]
    pub map_entries: u32,
    /// Print ended flows as NDJSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Capture in this named network namespace (`ip netns add NAME`) instead of the current
    /// one: the interfaces are that namespace's.
    #[arg(long)]
    pub netns: Option<String>,
}

pub(crate) fn run(args: &CaptureArgs) -> anyhow::Result<()> {
    match &args.netns {
        Some(ns) => crate::capture::in_netns(ns, || run_here(args)),
        None => run_here(args),
    }
}

fn run_here(args: &CaptureArgs) -> anyhow::Result<()> {
    let options = CaptureOptions {
        interfaces: args.interfaces.clone(),
        map_entries: args.map_entries,
        idle_timeout: args.idle_timeout,
        active_timeout: args.active_timeout,
        drain_interval: args.interval,
        ..CaptureOptions::default()
    };
    let mut capture = FlowCapture::open(&options).context("starting flow capture")?;
    let stop = Arc::new(AtomicBool::new(false));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the signal handler")?;
    {
        let stop = stop.clone();
        std::thread::spawn(move || {
            runtime.block_on(async {
                let _ = tokio::signal::ctrl_c().await;
            });
            stop.store(true, Ordering::Relaxed);
        });
    }
    eprintln!(
        "weir: capturing on {} (Ctrl-C to stop)",
        args.interfaces.join(", ")
    );
    let started = Instant::now();
    let until = args.duration.map(|d| started + d);
    let tty = std::io::stdout().is_terminal() && !args.json;
    let mut out = std::io::stdout().lock();
    let mut ended: Vec<FlowRecord> = Vec::new();
    while !stop.load(Ordering::Relaxed) && until.is_none_or(|t| Instant::now() < t) {
        let records = capture
            .poll(Duration::from_millis(100))
            .context("capturing flows")?;
        if args.json {
            write_json(&mut out, &capture, &records)?;
        } else if !records.is_empty() || started.elapsed() >= args.interval {
            ended.extend(records);
            let frame = frame(&mut capture, &ended, args.top, started.elapsed())?;
            if tty {
                write!(out, "\x1b[H\x1b[2J")?;
            }
            writeln!(out, "{frame}")?;
            out.flush()?;
            ended.clear();
        }
    }
    let (rest, counters) = capture.finish().context("detaching flow capture")?;
    if args.json {
        write_json(&mut out, &capture, &rest)?;
    } else {
        writeln!(out, "{}", table(&rest, usize::MAX, "flows at exit"))?;
    }
    out.flush()?;
    eprintln!("weir: {counters}");
    Ok(())
}

fn write_json(
    out: &mut impl std::io::Write,
    capture: &FlowCapture,
    records: &[FlowRecord],
) -> anyhow::Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let batch = capture.batch(records).context("building flow rows")?;
    let mut writer = arrow_json::LineDelimitedWriter::new(&mut *out);
    writer.write(&batch).context("writing JSON")?;
    writer.finish().context("writing JSON")?;
    out.flush()?;
    Ok(())
}

fn frame(
    capture: &mut FlowCapture,
    ended: &[FlowRecord],
    top: usize,
    elapsed: Duration,
) -> anyhow::Result<String> {
    let counters = capture.counters().context("reading the counters")?;
    let open: Vec<FlowRecord> = capture
        .open_flows()
        .map(|(key, totals)| FlowRecord {
            key: *key,
            totals: *totals,
            reason: crate::capture::EndReason::Shutdown,
        })
        .collect();
    let mut s = format!(
        "weir capture: {:.0} s, {} open flows, {} ended this interval\n{counters}\n",
        elapsed.as_secs_f64(),
        open.len(),
        ended.len()
    );
    s.push_str(&table(&open, top, "open flows (most bytes first)").to_string());
    Ok(s)
}

fn table(records: &[FlowRecord], top: usize, title: &str) -> comfy_table::Table {
    let mut sorted: Vec<&FlowRecord> = records.iter().collect();
    sorted.sort_by_key(|r| std::cmp::Reverse(r.totals.bytes));
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
    t.set_header([
        title,
        "dir",
        "if",
        "proto",
        "source",
        "destination",
        "packets",
        "bytes",
        "flags",
    ]);
    for r in sorted.into_iter().take(top) {
        let k = &r.key;
        let endpoint = |addr: &[u8; 16], port: u16| {
            let a = address(k, addr);
            match (a, port) {
                (_, 0) => a.to_string(),
                (std::net::IpAddr::V6(_), p) => format!("[{a}]:{p}"),
                (_, p) => format!("{a}:{p}"),
            }
        };
        let proto = match k.protocol {
            6 => "tcp".to_owned(),
            17 => "udp".to_owned(),
            1 | 58 => format!("icmp {}/{}", k.icmp_type, k.icmp_code),
            p => p.to_string(),
        };
        t.add_row([
            String::new(),
            if k.direction == 0 { "in" } else { "out" }.to_owned(),
            k.ifindex.to_string(),
            proto,
            endpoint(&k.src_addr, k.src_port),
            endpoint(&k.dst_addr, k.dst_port),
            r.totals.packets.to_string(),
            r.totals.bytes.to_string(),
            format!("{:#04x}", r.totals.tcp_flags),
        ]);
    }
    t
}
