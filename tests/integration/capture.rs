//! Kernel flow capture end to end: the real `weir` runs inside namespace A of a [`Testbed`],
//! capturing on `va`, while known traffic crosses the veth pair; its Parquet output (or
//! `weir capture --json`) is read back and compared exactly with what was sent.
//!
//! Ground truth comes from the traffic itself (UDP and ICMP sizes are chosen), from the
//! sockets' `TCP_INFO` counters, and from an `AF_PACKET` sniffer on `vb`, which sees every
//! frame crossing the veth, independently of the eBPF program.
//!
//! Counting (host/src/capture/mod.rs): bytes are frame bytes with the 14-byte Ethernet header
//! and without FCS; a GSO/TSO packet counts as the wire segments it carries. Frame sizes used
//! below: UDP/IPv4 14 + 20 + 8 + payload, UDP/IPv6 14 + 40 + 8 + payload, ICMP echo
//! 14 + 20 (or 40) + 8 + payload.
//!
//! These tests need root (namespaces, eBPF, raw sockets) plus `bpftool` and `ethtool`, and
//! fail, never skip, without them.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use weir_tests::bundle_tools::sign_policy;
use weir_tests::flow_rows::{
    CaptureConfig, CaptureLine, Direction, Expected, FlowRow, Key, NetnsWeir, assert_flow,
    now_micros, rows_of,
};
use weir_tests::netns::{
    A_V4, A_V6, B_V4, B_V6, Sniffed, Sniffer, TcpTransfer, Testbed, VETH_A, VETH_B, WireTotals,
    bpftool_json, icmp_echo, ip, mac, packet_send_vnet, set_gro, set_offloads, tcp_transfer,
    tcp_transfer_to, tcx_attached, udp_exchange, udp_exchange_between, udp_gso_frame, udp_gso_send,
    udp_send,
};
use weir_tests::weir_process::Scratch;

use Direction::{Egress, Ingress};

/// Ethernet + IPv4 + UDP (or ICMP) headers.
const V4_HDRS: u64 = 14 + 20 + 8;
/// Ethernet + IPv6 + UDP (or ICMPv6) headers.
const V6_HDRS: u64 = 14 + 40 + 8;
/// TCP flags.
const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

fn testbed(tag: &str, ipv6: bool) -> Testbed {
    Testbed::new(tag, ipv6)
        .unwrap_or_else(|e| panic!("creating network namespaces (these tests need root): {e:#}"))
}

/// Starts `weir run` with `config` in namespace A and waits until it is ready (the program is
/// attached by then).
fn start(bed: &Testbed, scratch: &Scratch, config: &CaptureConfig) -> NetnsWeir {
    let path = config.write(scratch);
    let mut weir = NetnsWeir::run(&bed.a, scratch, &path);
    weir.wait_ready();
    weir
}

/// `va`'s name and current index in namespace A.
fn va(bed: &Testbed) -> (&'static str, u32) {
    (VETH_A, Testbed::ifindex(&bed.a, VETH_A).expect("va exists"))
}

fn sock(ip: impl Into<IpAddr>, port: u16) -> SocketAddr {
    SocketAddr::new(ip.into(), port)
}

fn shutdown(packets: u64, bytes: u64) -> Expected {
    Expected {
        packets,
        bytes,
        tcp_flags: 0,
        end_reason: "shutdown",
    }
}

/// A UDP exchange between A and B as records: B → A (ingress at `va`) and A → B (egress).
fn udp_pair(
    a: SocketAddr,
    b: SocketAddr,
    count: u64,
    request: u64,
    reply: u64,
) -> [(Key, Expected); 2] {
    let hdrs = if a.is_ipv4() { V4_HDRS } else { V6_HDRS };
    [
        (
            Key::udp(b, a, Ingress),
            shutdown(count, count * (hdrs + request)),
        ),
        (
            Key::udp(a, b, Egress),
            shutdown(count, count * (hdrs + reply)),
        ),
    ]
}

/// Checks one TCP connection's two records against the sniffer and `TCP_INFO`; returns the
/// sniffer's totals (B → A, A → B).
fn check_tcp(
    rows: &[FlowRow],
    wire: &Sniffed,
    tcp: &TcpTransfer,
    va: (&str, u32),
) -> (WireTotals, WireTotals) {
    let up = Key::tcp(tcp.client, tcp.server, Ingress);
    let down = Key::tcp(tcp.server, tcp.client, Egress);
    let (wire_up, wire_down) = (wire.totals(&up), wire.totals(&down));
    // Independent ground truths agree: each socket's own count of segments sent and received,
    // and the frames crossing the veth (a TSO packet counted as its segments). The server's
    // `segs_out` leaves out its SYN-ACK, which the listener sent on its behalf.
    let (client, server) = (tcp.client_info, tcp.server_info);
    assert_eq!(
        (wire_up.packets, wire_up.packets),
        (u64::from(client.segs_out), u64::from(server.segs_in)),
        "B -> A: sniffer vs client's tcpi_segs_out and server's tcpi_segs_in: {tcp:?}"
    );
    assert_eq!(
        (wire_down.packets, wire_down.packets),
        (u64::from(client.segs_in), u64::from(server.segs_out) + 1),
        "A -> B: sniffer vs client's tcpi_segs_in and server's tcpi_segs_out + SYN-ACK: {tcp:?}"
    );
    // The client sent a SYN, ACKs, data with PSH and a FIN; the server only SYN-ACK, ACKs
    // and its FIN (it sent no data, so no PSH).
    assert_eq!(wire_up.tcp_flags, SYN | ACK | PSH | FIN);
    assert_eq!(wire_down.tcp_flags, SYN | ACK | FIN);
    assert_flow(
        rows,
        &up,
        va,
        &Expected {
            packets: wire_up.packets,
            bytes: wire_up.bytes,
            tcp_flags: SYN | ACK | PSH | FIN,
            end_reason: "shutdown",
        },
    );
    assert_flow(
        rows,
        &down,
        va,
        &Expected {
            packets: wire_down.packets,
            bytes: wire_down.bytes,
            tcp_flags: SYN | ACK | FIN,
            end_reason: "shutdown",
        },
    );
    // From first principles, independent of the sniffer: with timestamps (the default) every
    // segment carries 14 + 20 (IPv6: 40) + 32 bytes of headers, the SYN and SYN-ACK 8 more
    // (MSS, SACK permitted, window scale in place of the timestamp's padding); SACK blocks
    // appear only after loss or reordering, which retransmissions would show.
    let hdrs: u64 = if tcp.server.is_ipv4() { 66 } else { 86 };
    let clean = [tcp.client_info, tcp.server_info]
        .iter()
        .all(|i| i.total_retrans == 0 && i.dsack_dups == 0);
    if clean {
        assert_eq!(tcp.client_info.options & 1, 1, "timestamps negotiated");
        assert_eq!(
            wire_up.bytes,
            hdrs * u64::from(tcp.client_info.segs_out) + 8 + tcp.client_info.bytes_sent,
            "client bytes from TCP_INFO: {tcp:?}"
        );
        // The receiver's ACKs may carry SACK blocks when segments arrive out of order
        // (seen under load on a 2-core machine: 61 ACKs with 12 more option bytes each),
        // which no retransmission counter shows; its exact bytes are the sniffer's, compared
        // above. Here: at least the plain headers, and whole 32-bit words of options more.
        let plain = hdrs * wire_down.packets + 8 + tcp.server_info.bytes_sent;
        assert!(
            wire_down.bytes >= plain && (wire_down.bytes - plain).is_multiple_of(4),
            "server bytes {} from its segment count ({plain} without SACK options): {tcp:?}",
            wire_down.bytes
        );
    } else {
        eprintln!(
            "retransmissions on the veth ({tcp:?}): the header-size cross-check is not \
             applicable; the sniffer's counts were still compared exactly"
        );
    }
    (wire_up, wire_down)
}

/// UDP (three flows of different counts and sizes, answered), UDP over IPv6, ICMP and ICMPv6
/// echo, and one short TCP connection: every record exact, per flow and direction.
#[test]
fn traffic_is_counted_exactly() {
    let bed = testbed("exact", true);
    let s = Scratch::new("cap-exact");
    let weir = start(&bed, &s, &CaptureConfig::default());
    let va = va(&bed);
    let sniffer = Sniffer::start(&bed).expect("sniffer on vb");
    let t0 = now_micros();

    let mut expected: Vec<(Key, Expected)> = Vec::new();
    for (count, request, reply) in [(3, 100, 200), (5, 1, 60), (2, 1472, 1000)] {
        let (a_port, b_port) =
            udp_exchange(&bed, A_V4.into(), B_V4.into(), count, request, reply).unwrap();
        expected.extend(udp_pair(
            sock(A_V4, a_port),
            sock(B_V4, b_port),
            count as u64,
            request as u64,
            reply as u64,
        ));
    }
    let (a_port, b_port) = udp_exchange(&bed, A_V6.into(), B_V6.into(), 4, 300, 500).unwrap();
    expected.extend(udp_pair(
        sock(A_V6, a_port),
        sock(B_V6, b_port),
        4,
        300,
        500,
    ));
    let _ = icmp_echo(&bed, false, 4, 56).unwrap();
    expected.push((
        Key::icmp(B_V4.into(), A_V4.into(), 8, 0, Ingress),
        shutdown(4, 4 * (V4_HDRS + 56)),
    ));
    expected.push((
        Key::icmp(A_V4.into(), B_V4.into(), 0, 0, Egress),
        shutdown(4, 4 * (V4_HDRS + 56)),
    ));
    let _ = icmp_echo(&bed, true, 3, 32).unwrap();
    expected.push((
        Key::icmp(B_V6.into(), A_V6.into(), 128, 0, Ingress),
        shutdown(3, 3 * (V6_HDRS + 32)),
    ));
    expected.push((
        Key::icmp(A_V6.into(), B_V6.into(), 129, 0, Egress),
        shutdown(3, 3 * (V6_HDRS + 32)),
    ));
    let tcp = tcp_transfer(&bed, 5).unwrap();
    // IPv6 TCP with TSO on (the veth's default): super-packets at the ingress hook.
    let tcp6 = tcp_transfer_to(&bed, A_V6.into(), 256 * 1024).unwrap();
    let t1 = now_micros();

    let wire = sniffer.finish().unwrap();
    let done = weir.stop(libc::SIGINT);
    let rows = FlowRow::read_parquet_dir(&s.join("out"));

    for (key, want) in &expected {
        let r = assert_flow(&rows, key, va, want);
        // Flow times are the start of the kernel tick the packet came in (≤ 10 ms at HZ=100),
        // converted from the tick count: within the test, one tick early at most, plus 2 ms
        // for the conversion's edge bracket and the wall clock's offset.
        assert!(
            r.ts >= t0 - 12_000 && r.ts_end <= t1 + 2_000,
            "{key}: timestamps within the test ({t0}..{t1}): {r:?}"
        );
        // The chosen sizes are what crossed the veth.
        let w = wire.totals(key);
        assert_eq!(
            (w.packets, w.bytes),
            (want.packets, want.bytes),
            "sniffer on {key}"
        );
    }

    let (up, _) = check_tcp(&rows, &wire, &tcp, va);
    // First principles for the client: SYN (74 bytes), the handshake's ACK (66), "hello" with
    // PSH (71), FIN (66), and the ACK of the server's FIN (66).
    assert_eq!((up.packets, up.bytes), (5, 74 + 66 + 71 + 66 + 66));
    let (up6, _) = check_tcp(&rows, &wire, &tcp6, va);
    assert!(
        up6.frames < up6.packets,
        "TSO super-packets crossed: {up6:?}"
    );

    let line = CaptureLine::of_run(&done);
    line.assert_totals(&rows);
    line.assert_no_loss();
    assert_eq!(
        line.map_full, 0,
        "the default map has room for all: {line:?}"
    );
    // ARP (B asking for A, A answering) is not IP: counted, in no flow.
    assert!(line.not_ip >= 2, "ARP request and reply seen: {line:?}");
    assert_eq!((line.interfaces_lost, line.reattached), (None, None));
}

/// UDP GSO, TCP TSO and GRO: a super-packet counts as its wire segments. Each kind of traffic
/// is sent three times: with the veth's offloads on (the super-packet crosses the veth whole:
/// one skb with `gso_segs` > 1 at `va`), with them off (the segments cross one by one), and
/// with them off on `vb` but GRO on at `va` (the segments cross one by one and GRO merges them
/// again before the ingress hook). All must give the same exact counts.
#[test]
fn gso_tso_and_gro_count_wire_segments() {
    const SEGMENTS: u64 = 10;
    const SEGMENT: u64 = 1000;
    let bed = testbed("gso", false);
    let s = Scratch::new("cap-gso");
    let weir = start(&bed, &s, &CaptureConfig::default());
    let va = va(&bed);
    let sniffer = Sniffer::start(&bed).expect("sniffer on vb");
    // What the hooks on `va` see (after GRO), to check that the GRO case really merged.
    let at_va = Sniffer::on(&bed.a, VETH_A, Egress).expect("sniffer on va");

    let mut cases = Vec::new();
    for (case, base) in [
        ("offloads on", 7000_u16),
        ("offloads off", 7100),
        ("gro", 7200),
    ] {
        let offloads = case == "offloads on";
        set_offloads(&bed.a, VETH_A, offloads).unwrap();
        set_offloads(&bed.b, VETH_B, offloads).unwrap();
        set_gro(&bed.a, VETH_A, case == "gro").unwrap();
        // B → A: on `vb`'s transmit side the super-packet is cut only if its offloads are
        // off; `va` sees it on ingress (merged again by GRO in the third case: the receiving
        // socket asks for UDP GRO).
        let (up_src, up_dst) = (sock(B_V4, base + 1), sock(A_V4, base + 2));
        udp_gso_send(&bed, true, up_src, up_dst, 10, 1000, case == "gro").unwrap();
        // A → B: `va`'s egress hook runs before any segmentation, so it sees the super-packet
        // either way; what crosses the veth differs (checked with the sniffer).
        let (down_src, down_dst) = (sock(A_V4, base + 3), sock(B_V4, base + 4));
        udp_gso_send(&bed, false, down_src, down_dst, 10, 1000, false).unwrap();
        let tcp = tcp_transfer(&bed, 1 << 20).unwrap();
        cases.push((
            case,
            Key::udp(up_src, up_dst, Ingress),
            Key::udp(down_src, down_dst, Egress),
            tcp,
        ));
    }

    let wire = sniffer.finish().unwrap();
    let seen_at_va = at_va.finish().unwrap();
    let done = weir.stop(libc::SIGTERM);
    let rows = FlowRow::read_parquet_dir(&s.join("out"));

    for (case, up, down, tcp) in &cases {
        for key in [up, down] {
            let w = wire.totals(key);
            let frames = if *case == "offloads on" { 1 } else { SEGMENTS };
            assert_eq!(
                (w.frames, w.packets, w.bytes),
                (frames, SEGMENTS, SEGMENTS * (V4_HDRS + SEGMENT)),
                "{case}: what crossed the veth for {key}"
            );
            assert_flow(
                &rows,
                key,
                va,
                &shutdown(SEGMENTS, SEGMENTS * (V4_HDRS + SEGMENT)),
            );
        }
        let up_key = Key::tcp(tcp.client, tcp.server, Ingress);
        let crossed_merged = wire
            .frames_of(&up_key)
            .iter()
            .filter(|f| f.segments > 1)
            .count();
        let hooked_merged = seen_at_va
            .frames_of(&up_key)
            .iter()
            .filter(|f| f.segments > 1)
            .count();
        match *case {
            "offloads on" => assert!(
                crossed_merged > 0,
                "TSO on: some TCP super-packets crossed the veth whole"
            ),
            "offloads off" => assert_eq!(
                (crossed_merged, hooked_merged),
                (0, 0),
                "TSO and GRO off: only single segments"
            ),
            _ => {
                assert_eq!(crossed_merged, 0, "TSO off: single segments crossed");
                assert!(hooked_merged > 0, "GRO on va merged some segments");
            }
        }
        let (up_totals, _) = check_tcp(&rows, &wire, tcp, va);
        assert!(
            up_totals.bytes > 1 << 20,
            "1 MiB and its headers: {up_totals:?}"
        );
    }

    let line = CaptureLine::of_run(&done);
    line.assert_totals(&rows);
    line.assert_no_loss();
    // IPv6 is off on this testbed: the records are exactly the flows sent.
    assert_eq!(rows.len(), 4 * cases.len(), "{rows:#?}");
}

/// A GSO packet whose segment count the kernel has not computed yet still counts as its wire
/// segments. Packets from a VM's virtio NIC (tap, vhost) or from an `AF_PACKET` socket with a
/// virtio header carry `gso_size` but `gso_segs` = 0 (`SKB_GSO_DODGY`) until segmentation;
/// here one such UDP packet of 10 × 1000 bytes leaves `va` and B receives 10 datagrams.
#[test]
fn virtio_gso_packets_count_wire_segments() {
    let bed = testbed("vnet", false);
    let s = Scratch::new("cap-vnet");
    let weir = start(&bed, &s, &CaptureConfig::default());
    let va = va(&bed);
    let sniffer = Sniffer::start(&bed).expect("sniffer on vb");
    let (src, dst) = (SocketAddrV4::new(A_V4, 7001), SocketAddrV4::new(B_V4, 7002));
    let rx = Testbed::in_netns(&bed.b, || Ok(std::net::UdpSocket::bind(dst)?)).unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let macs = (mac(&bed.a, VETH_A).unwrap(), mac(&bed.b, VETH_B).unwrap());
    let (vnet, frame) = udp_gso_frame(macs, src, dst, 10, 1000);
    packet_send_vnet(&bed.a, VETH_A, vnet, &frame).unwrap();
    let mut buf = [0_u8; 2048];
    for i in 0..10 {
        let (n, from) = rx
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("datagram {i} of 10: {e}"));
        assert_eq!((n, from), (1000, SocketAddr::V4(src)));
    }
    let wire = sniffer.finish().unwrap();
    let done = weir.stop(libc::SIGTERM);
    let rows = FlowRow::read_parquet_dir(&s.join("out"));

    let key = Key::udp(src.into(), dst.into(), Egress);
    let per = V4_HDRS + 1000;
    // It crosses the veth whole (the sniffer reads its segment size) or cut: 10 segments
    // either way.
    let w = wire.totals(&key);
    assert_eq!(
        (w.packets, w.bytes),
        (10, 10 * per),
        "ten datagrams crossed the veth: {w:?}"
    );
    let _ = assert_flow(&rows, &key, va, &shutdown(10, 10 * per));
    assert_eq!(rows.len(), 1, "{rows:#?}");
    let line = CaptureLine::of_run(&done);
    line.assert_totals(&rows);
    line.assert_no_loss();
}

/// `idle_timeout` ends a flow: 5 packets, a pause longer than the timeout, 7 more on the same
/// 5-tuple give two records.
#[test]
fn idle_timeout_splits_a_flow() {
    let bed = testbed("idle", false);
    let s = Scratch::new("cap-idle");
    let config = CaptureConfig {
        idle_timeout: "1s".into(),
        drain_interval: "200ms".into(),
        active_timeout: "60s".into(),
        ..CaptureConfig::default()
    };
    let weir = start(&bed, &s, &config);
    let va = va(&bed);
    let (src, dst) = (sock(B_V4, 6000), sock(A_V4, 7000));
    let _ = udp_send(&bed, true, src, dst, 5, 300).unwrap();
    // Idle for 1 s ends it at the next drain (200 ms later at most); 2.5 s leaves room.
    std::thread::sleep(Duration::from_millis(2500));
    let _ = udp_send(&bed, true, src, dst, 7, 300).unwrap();
    let done = weir.stop(libc::SIGTERM);
    let rows = FlowRow::read_parquet_dir(&s.join("out"));

    let key = Key::udp(src, dst, Ingress);
    let mut found = rows_of(&rows, &key);
    found.sort_by_key(|r| r.ts);
    let got: Vec<_> = found
        .iter()
        .map(|r| (r.packets, r.bytes, r.end_reason.as_str(), r.ifindex))
        .collect();
    let per = V4_HDRS + 300;
    assert_eq!(
        got,
        [
            (5, 5 * per, "idle_timeout", va.1),
            (7, 7 * per, "shutdown", va.1)
        ],
        "{rows:#?}"
    );
    assert!(
        found[1].ts - found[0].ts_end >= 2_000_000,
        "the pause lies between the records: {found:#?}"
    );
    // Nothing else is IP on this testbed (one way, no IPv6).
    assert_eq!(rows.len(), 2, "{rows:#?}");
    let line = CaptureLine::of_run(&done);
    line.assert_totals(&rows);
    line.assert_no_loss();
    assert_eq!((line.flows, line.packets, line.bytes), (2, 12, 12 * per));
}

/// `active_timeout` cuts a long flow into records: a packet every 100 ms for 3 s, with both
/// timeouts at 1 s, gives records ended by `active_timeout` and a last one by `shutdown`,
/// with exact totals.
#[test]
fn active_timeout_cuts_a_long_flow() {
    const COUNT: usize = 30;
    let bed = testbed("active", false);
    let s = Scratch::new("cap-active");
    let config = CaptureConfig {
        idle_timeout: "1s".into(),
        active_timeout: "1s".into(),
        drain_interval: "100ms".into(),
        ..CaptureConfig::default()
    };
    let weir = start(&bed, &s, &config);
    let va = va(&bed);
    let (src, dst) = (sock(B_V4, 6000), sock(A_V4, 7000));
    let rx = Testbed::in_netns(&bed.a, || Ok(std::net::UdpSocket::bind(dst)?)).unwrap();
    let tx = Testbed::in_netns(&bed.b, || Ok(std::net::UdpSocket::bind(src)?)).unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0_u8; 256];
    for _ in 0..COUNT {
        let _ = tx.send_to(&[0x33; 100], dst).unwrap();
        assert_eq!(rx.recv_from(&mut buf).unwrap(), (100, src));
        std::thread::sleep(Duration::from_millis(100));
    }
    let done = weir.stop(libc::SIGTERM);
    let rows = FlowRow::read_parquet_dir(&s.join("out"));

    let mut found = rows_of(&rows, &Key::udp(src, dst, Ingress));
    found.sort_by_key(|r| r.ts);
    let reasons: Vec<&str> = found.iter().map(|r| r.end_reason.as_str()).collect();
    assert!(
        reasons.contains(&"active_timeout"),
        "a 3 s flow with a 1 s active timeout is cut: {reasons:?}: {found:#?}"
    );
    // The last record ends at shutdown, or by active timeout just before it.
    assert!(
        ["shutdown", "active_timeout"].contains(reasons.last().unwrap()),
        "{reasons:?}: {found:#?}"
    );
    for (i, pair) in found.windows(2).enumerate() {
        let gap = pair[1].ts - pair[0].ts_end;
        assert!(gap > 0, "records do not overlap: {pair:#?}");
        match reasons[i] {
            "active_timeout" => assert!(
                pair[0].ts_end - pair[0].ts >= 800_000,
                "a record cut by the 1 s active timeout spans about 1 s: {pair:#?}"
            ),
            // Packets come every 100 ms; on a loaded machine the sender can still stall for
            // a second, and then the idle timeout rightly ends the record first.
            "idle_timeout" => assert!(
                gap >= 900_000,
                "an idle timeout needs a pause of 1 s: {pair:#?}"
            ),
            other => panic!("record {i} ended by {other}: {found:#?}"),
        }
    }
    for r in &found {
        assert_eq!(r.bytes, r.packets * (V4_HDRS + 100), "{r:?}");
        assert_eq!((r.interface.as_str(), r.ifindex), va);
    }
    assert_eq!(
        found.iter().map(|r| r.packets).sum::<u64>(),
        COUNT as u64,
        "{found:#?}"
    );
    assert_eq!(rows.len(), found.len(), "{rows:#?}");
    let line = CaptureLine::of_run(&done);
    line.assert_totals(&rows);
    line.assert_no_loss();
}

/// Draining every 5 ms while two senders on both CPUs keep the program busy: every packet is
/// in exactly one drain (the epoch flip and the grace period make eviction exact), so the
/// totals equal what crossed the veth.
#[test]
fn exact_while_draining_continuously() {
    const PER_SENDER: usize = 4000;
    let bed = testbed("drain", false);
    let s = Scratch::new("cap-drain");
    let config = CaptureConfig {
        drain_interval: "5ms".into(),
        idle_timeout: "60s".into(),
        ..CaptureConfig::default()
    };
    let weir = start(&bed, &s, &config);
    let va = va(&bed);
    // Ground truth on `va` itself: its packet taps run just before the ingress hook, so a
    // datagram dropped between the two ends of the veth (a full backlog) is in neither.
    let sniffer = Sniffer::on(&bed.a, VETH_A, Egress).expect("sniffer on va");
    let dst = sock(A_V4, 7000);
    // Bound, so that A does not answer with port-unreachable errors; it need not read.
    let _rx = Testbed::in_netns(&bed.a, || Ok(std::net::UdpSocket::bind(dst)?)).unwrap();
    let senders: Vec<std::net::UdpSocket> = (0..2)
        .map(|i| {
            Testbed::in_netns(&bed.b, || {
                Ok(std::net::UdpSocket::bind(sock(B_V4, 6000 + i))?)
            })
            .unwrap()
        })
        .collect();
    std::thread::scope(|scope| {
        for tx in &senders {
            let _ = scope.spawn(move || {
                for i in 0..PER_SENDER {
                    let _ = tx.send_to(&[0x22; 64][..32 + i % 32], dst).unwrap();
                    if i % 16 == 0 {
                        // Spread over many drains.
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            });
        }
    });
    let wire = sniffer.finish().unwrap();
    let done = weir.stop(libc::SIGTERM);
    let rows = FlowRow::read_parquet_dir(&s.join("out"));

    for tx in &senders {
        let key = Key::udp(tx.local_addr().unwrap(), dst, Ingress);
        let w = wire.totals(&key);
        assert!(
            w.packets > PER_SENDER as u64 * 9 / 10,
            "most datagrams reached va: {w:?}"
        );
        let _ = assert_flow(&rows, &key, va, &shutdown(w.packets, w.bytes));
    }
    assert_eq!(rows.len(), 2, "{rows:#?}");
    let line = CaptureLine::of_run(&done);
    line.assert_totals(&rows);
    line.assert_no_loss();
}

/// A 4-entry flow map and 40 flows: packets the map has no room for travel over the ring
/// buffer; totals stay exact and nothing is lost.
#[test]
fn a_full_map_loses_nothing() {
    const FLOWS: u16 = 40;
    const ROUNDS: u64 = 3;
    const LEN: usize = 200;
    let bed = testbed("overflow", false);
    let s = Scratch::new("cap-overflow");
    let config = CaptureConfig {
        map_entries: Some(4),
        ..CaptureConfig::default()
    };
    let weir = start(&bed, &s, &config);
    let va = va(&bed);
    let dst = sock(A_V4, 7000);
    let rx = Testbed::in_netns(&bed.a, || Ok(std::net::UdpSocket::bind(dst)?)).unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let senders: Vec<std::net::UdpSocket> = (0..FLOWS)
        .map(|i| {
            Testbed::in_netns(&bed.b, || {
                Ok(std::net::UdpSocket::bind(sock(B_V4, 6000 + i))?)
            })
            .unwrap()
        })
        .collect();
    // Round-robin, so that all 40 flows are open at once.
    let mut buf = [0_u8; 2048];
    for _ in 0..ROUNDS {
        for tx in &senders {
            tx.send_to(&[0x11; LEN], dst).unwrap();
            let (n, from) = rx.recv_from(&mut buf).unwrap();
            assert_eq!((n, from), (LEN, tx.local_addr().unwrap()));
        }
    }
    let done = weir.stop(libc::SIGTERM);
    let rows = FlowRow::read_parquet_dir(&s.join("out"));

    let per = V4_HDRS + LEN as u64;
    for i in 0..FLOWS {
        let key = Key::udp(sock(B_V4, 6000 + i), dst, Ingress);
        let _ = assert_flow(&rows, &key, va, &shutdown(ROUNDS, ROUNDS * per));
    }
    assert_eq!(rows.len(), usize::from(FLOWS), "{rows:#?}");
    let total = u64::from(FLOWS) * ROUNDS;
    assert_eq!(
        (
            rows.iter().map(|r| r.packets).sum::<u64>(),
            rows.iter().map(|r| r.bytes).sum::<u64>()
        ),
        (total, total * per)
    );
    let line = CaptureLine::of_run(&done);
    line.assert_totals(&rows);
    line.assert_no_loss();
    assert!(
        line.map_full > 0,
        "a 4-entry map overflowed with 40 flows: {line:?}"
    );
}

/// The `flow-filter` policy in the pipeline drops UDP flows with port 7001 (as source or
/// destination); everything else is written, exactly.
#[test]
fn flow_filter_drops_exactly_the_matching_flows() {
    let bed = testbed("filter", false);
    let s = Scratch::new("cap-filter");
    let (bundle, public) = sign_policy(s.path(), "flow-filter");
    let config = CaptureConfig {
        extra: format!(
            "[trust]\n[[trust.keys]]\nname = \"ops\"\npublic_key = \"{}\"\n\n\
             [[policies]]\nbundle = \"{}\"\n\
             params = {{ mode = \"drop\", protocols = [17], ports = [7001] }}\n",
            public.display(),
            bundle.display()
        ),
        ..CaptureConfig::default()
    };
    let weir = start(&bed, &s, &config);
    let va = va(&bed);
    // Dropped: port 7001 as A's port, then as B's.
    let _ = udp_exchange_between(&bed, sock(A_V4, 7001), sock(B_V4, 6001), 3, 100, 100).unwrap();
    let _ = udp_exchange_between(&bed, sock(A_V4, 7004), sock(B_V4, 7001), 1, 10, 10).unwrap();
    // Kept: UDP on other ports, ICMP, TCP.
    let (a, b) = (sock(A_V4, 7002), sock(B_V4, 6002));
    let _ = udp_exchange_between(&bed, a, b, 2, 50, 70).unwrap();
    let _ = icmp_echo(&bed, false, 2, 16).unwrap();
    let tcp = tcp_transfer(&bed, 5).unwrap();
    let done = weir.stop(libc::SIGTERM);
    let rows = FlowRow::read_parquet_dir(&s.join("out"));

    let mut kept = udp_pair(a, b, 2, 50, 70).to_vec();
    kept.push((
        Key::icmp(B_V4.into(), A_V4.into(), 8, 0, Ingress),
        shutdown(2, 2 * (V4_HDRS + 16)),
    ));
    kept.push((
        Key::icmp(A_V4.into(), B_V4.into(), 0, 0, Egress),
        shutdown(2, 2 * (V4_HDRS + 16)),
    ));
    for (key, want) in &kept {
        let _ = assert_flow(&rows, key, va, want);
    }
    let tcp_keys = [
        Key::tcp(tcp.client, tcp.server, Ingress),
        Key::tcp(tcp.server, tcp.client, Egress),
    ];
    let expected: HashSet<Key> = kept.iter().map(|(k, _)| *k).chain(tcp_keys).collect();
    let got: HashSet<Key> = rows.iter().map(FlowRow::key).collect();
    assert_eq!(got, expected, "exactly the kept flows: {rows:#?}");
    assert_eq!(rows.len(), expected.len());

    let summary = done.summary.as_ref().unwrap();
    let policy = &summary["policies"][0];
    assert_eq!(policy["filtered"].as_u64(), Some(4), "{summary:#}");
    assert_eq!(summary["rows_out"].as_u64(), Some(rows.len() as u64));
    let line = CaptureLine::of_run(&done);
    line.assert_no_loss();
    assert_eq!(
        line.flows,
        rows.len() as u64 + 4,
        "the source emitted the kept and the filtered records: {line:?}"
    );
}

/// While `weir` runs, both programs are attached to `va` with TCX links (the kernel's and
/// bpftool's view agree); after SIGTERM no program, link or attachment is left.
#[test]
fn programs_and_links_are_gone_after_exit() {
    let bed = testbed("links", false);
    let s = Scratch::new("cap-links");
    let weir = start(&bed, &s, &CaptureConfig::default());

    let [ingress, egress] = tcx_attached(&bed.a, VETH_A).unwrap();
    assert_eq!(
        (ingress.len(), egress.len()),
        (1, 1),
        "one program on each hook of va: {ingress:?} {egress:?}"
    );
    let (ingress, egress) = (ingress[0], egress[0]);
    let progs = bpftool_json(&bed.a, &["prog", "show"]).unwrap();
    let links = bpftool_json(&bed.a, &["link", "show"]).unwrap();
    for ((prog, link), name) in [(ingress, "flows_ingress"), (egress, "flows_egress")] {
        let p = progs
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"].as_u64() == Some(u64::from(prog)))
            .unwrap_or_else(|| panic!("bpftool lists program {prog}: {progs:#}"));
        assert_eq!(p["name"].as_str(), Some(name), "{p:#}");
        assert_eq!(p["type"].as_str(), Some("sched_cls"), "{p:#}");
        let l = links
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["id"].as_u64() == Some(u64::from(link)))
            .unwrap_or_else(|| panic!("bpftool lists link {link}: {links:#}"));
        assert_eq!(l["prog_id"].as_u64(), Some(u64::from(prog)), "{l:#}");
        // The link is weir's: one of its descriptors.
        assert!(
            owns_link(weir.pid(), link),
            "weir (pid {}) holds link {link}",
            weir.pid()
        );
    }

    let done = weir.stop(libc::SIGTERM);
    let _ = CaptureLine::of_run(&done);

    let [ingress_after, egress_after] = tcx_attached(&bed.a, VETH_A).unwrap();
    assert!(
        ingress_after.is_empty() && egress_after.is_empty(),
        "nothing attached to va after exit: {ingress_after:?} {egress_after:?}"
    );
    // Other tests may run their own `weir` at the same time, so the check is on this run's
    // ids, not on program names.
    let progs = bpftool_json(&bed.a, &["prog", "show"]).unwrap();
    let links = bpftool_json(&bed.a, &["link", "show"]).unwrap();
    let ours = [ingress, egress];
    for p in progs.as_array().unwrap() {
        assert!(
            !ours
                .iter()
                .any(|(prog, _)| p["id"].as_u64() == Some(u64::from(*prog))),
            "program still loaded after exit: {p:#}"
        );
    }
    for l in links.as_array().unwrap() {
        assert!(
            !ours.iter().any(|(prog, link)| {
                l["id"].as_u64() == Some(u64::from(*link))
                    || l["prog_id"].as_u64() == Some(u64::from(*prog))
            }),
            "link still present after exit: {l:#}"
        );
    }
}

/// Whether process `pid` has a descriptor for BPF link `link` (from /proc/PID/fdinfo).
fn owns_link(pid: u32, link: u32) -> bool {
    let needle = format!("link_id:\t{link}\n");
    std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .expect("fdinfo")
        .filter_map(Result::ok)
        .any(|e| {
            std::fs::read_to_string(e.path())
                .map(|t| t.contains(&needle))
                .unwrap_or(false)
        })
}

/// The interface disappears while `weir` runs and comes back: the flows seen before end with
/// `interface_gone`, capture resumes on the new interface, and the summary says so.
#[test]
fn interface_gone_and_back() {
    let bed = testbed("ifgone", false);
    let s = Scratch::new("cap-ifgone");
    let mut weir = start(&bed, &s, &CaptureConfig::default());
    let before = va(&bed);
    let (a1, b1) = (sock(A_V4, 7001), sock(B_V4, 6001));
    let _ = udp_exchange_between(&bed, a1, b1, 4, 100, 150).unwrap();

    ip(&["-n", &bed.a, "link", "del", VETH_A]).unwrap();
    weir.wait_for("interface disappeared", 1, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        weir.is_running(),
        "weir keeps running without its interface"
    );
    bed.add_veth().unwrap();
    // The first "attached" was at start.
    weir.wait_for("flow capture attached", 2, Duration::from_secs(30));
    let after = va(&bed);
    assert_ne!(before.1, after.1, "the new va has a new index");
    let (a2, b2) = (sock(A_V4, 7002), sock(B_V4, 6002));
    let _ = udp_exchange_between(&bed, a2, b2, 6, 200, 250).unwrap();
    let done = weir.stop(libc::SIGTERM);
    let rows = FlowRow::read_parquet_dir(&s.join("out"));

    for (key, mut want) in udp_pair(a1, b1, 4, 100, 150) {
        want.end_reason = "interface_gone";
        let _ = assert_flow(&rows, &key, before, &want);
    }
    for (key, want) in udp_pair(a2, b2, 6, 200, 250) {
        let _ = assert_flow(&rows, &key, after, &want);
    }
    assert_eq!(rows.len(), 4, "{rows:#?}");
    let line = CaptureLine::of_run(&done);
    line.assert_totals(&rows);
    line.assert_no_loss();
    assert_eq!(
        (line.interfaces_lost, line.reattached),
        (Some(1), Some(1)),
        "{line:?}"
    );
}

/// `weir capture --json --duration` prints ended flows as NDJSON in the source's schema.
#[test]
fn weir_capture_prints_flows_as_json() {
    let bed = testbed("cli", false);
    let s = Scratch::new("cap-cli");
    let mut weir = NetnsWeir::start(
        &bed.a,
        &s,
        &[
            "capture",
            "--iface",
            VETH_A,
            "--json",
            "--duration",
            "4s",
            "--interval",
            "200ms",
        ],
        None,
    );
    weir.wait_for("capturing on", 1, Duration::from_secs(60));
    let va = va(&bed);
    let (a, b) = (sock(A_V4, 7001), sock(B_V4, 6001));
    let _ = udp_exchange_between(&bed, a, b, 3, 100, 200).unwrap();
    let done = weir.wait(Duration::from_secs(60));
    assert_eq!(done.code, Some(0), "weir capture failed:\n{}", done.stderr);

    let reader = arrow_json::ReaderBuilder::new(weir_host::capture::flow_schema())
        .build(std::io::Cursor::new(done.stdout.clone()))
        .expect("JSON reader");
    let batches: Vec<_> = reader
        .map(|b| b.expect("every line is a flow in the source's schema"))
        .collect();
    let rows = FlowRow::from_batches(&batches);
    for (key, want) in udp_pair(a, b, 3, 100, 200) {
        let _ = assert_flow(&rows, &key, va, &want);
    }
    assert_eq!(rows.len(), 2, "{rows:#?}");
    let line = CaptureLine::parse(&done.stderr, "weir: ");
    line.assert_totals(&rows);
    line.assert_no_loss();
}

/// The capabilities `examples/systemd/weir.service` grants (`AmbientCapabilities=`), in
/// `setpriv` spelling (`bpf`, `net_admin`, ...). Panics unless the bounding set is the same.
fn unit_capabilities() -> Vec<String> {
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/systemd/weir.service"),
    )
    .expect("the example unit");
    let caps = |key: &str| -> Vec<String> {
        let line = unit
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("the unit sets {key}"));
        line.split_whitespace()
            .map(|c| c.trim_start_matches("CAP_").to_ascii_lowercase())
            .collect()
    };
    let ambient = caps("AmbientCapabilities=");
    assert_eq!(ambient, caps("CapabilityBoundingSet="));
    assert!(unit.contains("\nNoNewPrivileges=yes\n"));
    ambient
}

/// `setpriv` as user `nobody` with exactly `caps` (inheritable, ambient and bounding) and
/// no_new_privs: what the systemd unit gives the service.
fn setpriv(caps: &[String]) -> Vec<String> {
    let set = |list: &[String]| {
        std::iter::once("-all".to_owned())
            .chain(list.iter().map(|c| format!("+{c}")))
            .collect::<Vec<_>>()
            .join(",")
    };
    vec![
        "setpriv".into(),
        "--reuid=65534".into(),
        "--regid=65534".into(),
        "--clear-groups".into(),
        "--no-new-privs".into(),
        format!("--inh-caps={}", set(caps)),
        format!("--ambient-caps={}", set(caps)),
        format!("--bounding-set={}", set(caps)),
    ]
}

#[test]
fn the_systemd_units_capabilities_are_enough_and_each_is_needed() {
    let caps = unit_capabilities();
    assert_eq!(caps, ["bpf", "net_admin", "perfmon"]);
    let bed = testbed("caps", false);
    let capture = |caps: &[String], tag: &str| {
        let s = Scratch::new(&format!("cap-caps-{tag}"));
        let wrapper = setpriv(caps);
        let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
        let args = [
            "capture",
            "--iface",
            VETH_A,
            "--json",
            "--duration",
            "3s",
            "--interval",
            "200ms",
        ];
        let mut weir = NetnsWeir::start_wrapped(&bed.a, &s, &wrapper, &args, None);
        let started = weir.wait_for_or_exit("capturing on", Duration::from_secs(60));
        if started {
            let (a, b) = (sock(A_V4, 7101), sock(B_V4, 6101));
            let _ = udp_exchange_between(&bed, a, b, 4, 150, 50).unwrap();
        }
        (weir.wait(Duration::from_secs(60)), s)
    };

    // Exactly the unit's set, as an unprivileged user: counts are exact.
    let (done, _s) = capture(&caps, "all");
    assert_eq!(done.code, Some(0), "with {caps:?}:\n{}", done.stderr);
    let reader = arrow_json::ReaderBuilder::new(weir_host::capture::flow_schema())
        .build(std::io::Cursor::new(done.stdout.clone()))
        .expect("JSON reader");
    let batches: Vec<_> = reader.map(|b| b.expect("a flow")).collect();
    let rows = FlowRow::from_batches(&batches);
    let va = va(&bed);
    for (key, want) in udp_pair(sock(A_V4, 7101), sock(B_V4, 6101), 4, 150, 50) {
        let _ = assert_flow(&rows, &key, va, &want);
    }

    // Without any one of them, capture refuses to start, and says why.
    for missing in &caps {
        let fewer: Vec<String> = caps.iter().filter(|c| *c != missing).cloned().collect();
        let (done, _s) = capture(&fewer, missing);
        assert_ne!(done.code, Some(0), "capture ran without {missing}");
        assert!(
            done.stderr
                .contains("CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON"),
            "without {missing}, the error names what is needed:\n{}",
            done.stderr
        );
    }
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let s = Scratch::new("unit-verify");
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/systemd/weir.service"),
    )
    .unwrap()
    .replace(
        "/usr/local/bin/weir",
        weir_tests::weir_process::weir_bin().to_str().unwrap(),
    );
    let path = s.write("weir.service", unit);
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze runs (Debian package systemd; `cargo xtask setup`)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.trim().is_empty(),
        "systemd-analyze verify warns:\n{stderr}"
    );
}
