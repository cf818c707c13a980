//! Network namespaces for the flow-capture tests and benchmarks: two fresh namespaces joined
//! by a veth pair, and traffic of known shape between them.
//!
//! Every address used lives only inside the two namespaces a [`Testbed`] creates
//! (10.77.0.0/24 and fd00:77::/64 on the veth pair); both namespaces are deleted on drop.
//! Namespace names carry a tag and the process id, so parallel tests and leftovers from a
//! crashed run never collide. Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_NET_RAW).

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};

/// Address of namespace A's veth end (where the program is attached).
pub const A_V4: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// Address of namespace B's veth end.
pub const B_V4: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
/// IPv6 address of namespace A's veth end.
pub const A_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 1);
/// IPv6 address of namespace B's veth end.
pub const B_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 2);

/// Name of the veth end in namespace A.
pub const VETH_A: &str = "va";
/// Name of the veth end in namespace B.
pub const VETH_B: &str = "vb";

/// Runs `ip ARGS`; a failure is an error with its stderr.
pub fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .with_context(|| format!("running ip {}", args.join(" ")))?;
    ensure!(
        out.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// Two fresh network namespaces joined by a veth pair (`va` in A, `vb` in B), deleted on drop.
pub struct Testbed {
    /// Namespace A's name (`/run/netns/<name>`).
    pub a: String,
    /// Namespace B's name.
    pub b: String,
    created: Vec<String>,
    ipv6: bool,
}

impl Testbed {
    /// Creates the namespaces, the veth pair and the addresses. With `ipv6` false, the veth
    /// ends get no IPv6 address at all (not even link-local), so the only IP traffic on the
    /// pair is what the caller sends.
    pub fn new(tag: &str, ipv6: bool) -> Result<Self> {
        let pid = std::process::id();
        let mut bed = Self {
            a: format!("weirA-{tag}-{pid}"),
            b: format!("weirB-{tag}-{pid}"),
            created: Vec::new(),
            ipv6,
        };
        for ns in [bed.a.clone(), bed.b.clone()] {
            ip(&["netns", "add", &ns])?;
            bed.created.push(ns);
        }
        bed.add_veth()?;
        Ok(bed)
    }

    /// Creates the veth pair (`va` in A, `vb` in B) with its addresses and brings it up: done
    /// by [`Testbed::new`]; call it again to re-create the pair after deleting it (same names,
    /// same addresses, new interface indexes).
    pub fn add_veth(&self) -> Result<()> {
        let (a, b) = (self.a.as_str(), self.b.as_str());
        ip(&[
            "-n", a, "link", "add", VETH_A, "type", "veth", "peer", "name", VETH_B, "netns", b,
        ])?;
        for (ns, dev, v4, v6) in [(a, VETH_A, A_V4, A_V6), (b, VETH_B, B_V4, B_V6)] {
            if !self.ipv6 {
                ip(&["-n", ns, "link", "set", dev, "addrgenmode", "none"])?;
            }
            ip(&["-n", ns, "addr", "add", &format!("{v4}/24"), "dev", dev])?;
            if self.ipv6 {
                ip(&[
                    "-n",
                    ns,
                    "addr",
                    "add",
                    &format!("{v6}/64"),
                    "dev",
                    dev,
                    "nodad",
                ])?;
            }
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        Ok(())
    }

    /// The index of interface `dev` in namespace `ns`.
    pub fn ifindex(ns: &str, dev: &str) -> Result<u32> {
        let name = std::ffi::CString::new(dev)?;
        Self::in_netns(ns, || {
            // SAFETY: `name` is a NUL-terminated string that outlives the call.
            let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
            ensure!(index != 0, "no interface {dev} in {ns}");
            Ok(index)
        })
    }

    /// Runs `f` on a thread that has entered namespace `ns` (the host's
    /// [`weir_host::capture::in_netns`]). Sockets created there stay in that namespace;
    /// interface names and indexes are that namespace's.
    pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
        weir_host::capture::in_netns(ns, f)
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end inside it, and so the pair.
        for ns in &self.created {
            if let Err(err) = ip(&["netns", "del", ns]) {
                eprintln!("cleanup: {err:#}");
            }
        }
    }
}

/// A UDP exchange: `count` requests of `request_len` bytes from B to A, each answered by a
/// reply of `reply_len` bytes. Returns `(a_port, b_port)`.
pub fn udp_exchange(
    bed: &Testbed,
    a_ip: IpAddr,
    b_ip: IpAddr,
    count: usize,
    request_len: usize,
    reply_len: usize,
) -> Result<(u16, u16)> {
    udp_exchange_between(
        bed,
        SocketAddr::new(a_ip, 0),
        SocketAddr::new(b_ip, 0),
        count,
        request_len,
        reply_len,
    )
}

/// As [`udp_exchange`], between given socket addresses (port 0: any free port).
pub fn udp_exchange_between(
    bed: &Testbed,
    a_addr: SocketAddr,
    b_addr: SocketAddr,
    count: usize,
    request_len: usize,
    reply_len: usize,
) -> Result<(u16, u16)> {
    let a = Testbed::in_netns(&bed.a, || Ok(UdpSocket::bind(a_addr)?))?;
    let b = Testbed::in_netns(&bed.b, || Ok(UdpSocket::bind(b_addr)?))?;
    for s in [&a, &b] {
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
    }
    let (a_addr, b_addr) = (a.local_addr()?, b.local_addr()?);
    let mut buf = [0_u8; 2048];
    for _ in 0..count {
        b.send_to(&vec![0xab; request_len], a_addr)?;
        let (n, from) = a.recv_from(&mut buf).context("A waiting for a request")?;
        ensure!(
            n == request_len && from == b_addr,
            "unexpected request {n} from {from}"
        );
        a.send_to(&vec![0xcd; reply_len], b_addr)?;
        let (n, from) = b.recv_from(&mut buf).context("B waiting for a reply")?;
        ensure!(
            n == reply_len && from == a_addr,
            "unexpected reply {n} from {from}"
        );
    }
    Ok((a_addr.port(), b_addr.port()))
}

/// Internet checksum (RFC 1071) of `data`.
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// `count` ICMP (or ICMPv6) echo requests with `payload_len` bytes of payload from B to A over
/// a raw socket, waiting for each echo reply. Returns the identifier used.
pub fn icmp_echo(bed: &Testbed, v6: bool, count: u16, payload_len: usize) -> Result<u16> {
    let ident = (std::process::id() & 0xffff) as u16;
    Testbed::in_netns(&bed.b, || {
        let (domain, proto) = if v6 {
            (libc::AF_INET6, libc::IPPROTO_ICMPV6)
        } else {
            (libc::AF_INET, libc::IPPROTO_ICMP)
        };
        // SAFETY: plain socket(2) call; the result is checked and owned below.
        let fd = unsafe { libc::socket(domain, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto) };
        ensure!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
        // SAFETY: `fd` is a fresh descriptor nothing else owns.
        let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        // std's datagram calls (sendto, recv, SO_RCVTIMEO) work on any datagram-like socket;
        // `UdpSocket` is only the wrapper that offers them for this raw one.
        let sender = UdpSocket::from(fd);
        sender.set_read_timeout(Some(Duration::from_secs(2)))?;
        let (request, reply) = if v6 { (128_u8, 129_u8) } else { (8, 0) };
        for seq in 0..count {
            let mut pkt = vec![request, 0, 0, 0];
            pkt.extend_from_slice(&ident.to_be_bytes());
            pkt.extend_from_slice(&seq.to_be_bytes());
            pkt.resize(8 + payload_len, 0x5a);
            if !v6 {
                // The kernel fills in the ICMPv6 checksum itself, not the ICMPv4 one.
                let sum = checksum(&pkt);
                pkt[2..4].copy_from_slice(&sum.to_be_bytes());
            }
            // Port 0: ignored by raw IPv4 sockets, "this socket's protocol" for raw IPv6 ones.
            let to = if v6 {
                SocketAddr::new(IpAddr::V6(A_V6), 0)
            } else {
                SocketAddr::new(IpAddr::V4(A_V4), 0)
            };
            sender.send_to(&pkt, to).context("sendto")?;
            // Wait for the matching reply (a raw socket also sees other ICMP traffic).
            let mut buf = [0_u8; 2048];
            loop {
                let n = sender
                    .recv(&mut buf)
                    .with_context(|| format!("waiting for echo reply {seq}"))?;
                // An ICMPv4 raw socket receives the IP header too; ICMPv6 does not.
                let icmp = if v6 { &buf[..n] } else { &buf[20.min(n)..n] };
                if icmp.len() >= 8
                    && icmp[0] == reply
                    && icmp[4..6] == ident.to_be_bytes()
                    && icmp[6..8] == seq.to_be_bytes()
                {
                    break;
                }
            }
        }
        Ok(ident)
    })
}

/// One TCP connection from B to A carrying `hello`, closed by both sides. Returns A's port.
pub fn tcp_exchange(bed: &Testbed) -> Result<u16> {
    let listener = Testbed::in_netns(&bed.a, || Ok(TcpListener::bind((A_V4, 0))?))?;
    let port = listener.local_addr()?.port();
    let server = std::thread::spawn(move || -> Result<Vec<u8>> {
        let (mut conn, _) = listener.accept()?;
        let mut got = Vec::new();
        conn.read_to_end(&mut got)?;
        Ok(got)
    });
    let mut client = Testbed::in_netns(&bed.b, || {
        Ok(TcpStream::connect_timeout(
            &SocketAddr::new(IpAddr::V4(A_V4), port),
            Duration::from_secs(2),
        )?)
    })?;
    client.write_all(b"hello")?;
    client.shutdown(std::net::Shutdown::Write)?;
    let got = server
        .join()
        .map_err(|_| anyhow::anyhow!("server thread panicked"))??;
    ensure!(got == b"hello", "server got {got:?}");
    let mut rest = Vec::new();
    client.read_to_end(&mut rest)?;
    Ok(port)
}

/// Runs `PROGRAM ARGS` inside namespace `ns` (`ip netns exec`) and returns its stdout; a
/// missing program or a failure is an error naming it.
pub fn netns_exec(ns: &str, program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, program])
        .args(args)
        .output()
        .with_context(|| format!("running ip netns exec {ns} {program}"))?;
    ensure!(
        out.status.success(),
        "{program} {} (in {ns}) failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim(),
        if out.status.code() == Some(255) || out.status.code() == Some(127) {
            format!(" (is {program} installed? Debian package: {program})")
        } else {
            String::new()
        }
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The segmentation offloads [`set_offloads`] switches: `ethtool -k` names.
pub const OFFLOADS: [&str; 3] = [
    "tcp-segmentation-offload",
    "generic-segmentation-offload",
    "tx-udp-segmentation",
];

/// Switches TSO, GSO and UDP segmentation offload of `dev` in `ns` on or off with
/// `ethtool -K`, and checks with `ethtool -k` that each took.
pub fn set_offloads(ns: &str, dev: &str, on: bool) -> Result<()> {
    let v = if on { "on" } else { "off" };
    let _ = netns_exec(
        ns,
        "ethtool",
        &["-K", dev, "tso", v, "gso", v, "tx-udp-segmentation", v],
    )?;
    let now = netns_exec(ns, "ethtool", &["-k", dev])?;
    for feature in OFFLOADS {
        let state = now
            .lines()
            .find_map(|l| l.trim().strip_prefix(feature)?.strip_prefix(": "))
            .with_context(|| format!("ethtool -k {dev} shows no {feature}"))?;
        ensure!(
            state.split_whitespace().next() == Some(v),
            "{dev}: {feature} is {state}, wanted {v}"
        );
    }
    Ok(())
}

/// Switches generic receive offload of `dev` in `ns` on or off (on a veth, GRO on also turns
/// on its NAPI receive path, where GRO merges segments), and checks that it took.
pub fn set_gro(ns: &str, dev: &str, on: bool) -> Result<()> {
    let v = if on { "on" } else { "off" };
    let _ = netns_exec(ns, "ethtool", &["-K", dev, "gro", v])?;
    let now = netns_exec(ns, "ethtool", &["-k", dev])?;
    ensure!(
        now.lines()
            .any(|l| l.trim() == format!("generic-receive-offload: {v}")),
        "{dev}: GRO is not {v}:\n{now}"
    );
    Ok(())
}

/// `count` datagrams of `len` bytes from `src` to `dst`, one way, each received before the
/// next is sent. The sender is in B if `from_b`, else in A; the receiver in the other.
/// Returns the sender's address (its port, if `src` asked for port 0).
pub fn udp_send(
    bed: &Testbed,
    from_b: bool,
    src: SocketAddr,
    dst: SocketAddr,
    count: usize,
    len: usize,
) -> Result<SocketAddr> {
    let (tx_ns, rx_ns) = if from_b {
        (&bed.b, &bed.a)
    } else {
        (&bed.a, &bed.b)
    };
    let rx = Testbed::in_netns(rx_ns, || Ok(UdpSocket::bind(dst)?))?;
    let tx = Testbed::in_netns(tx_ns, || Ok(UdpSocket::bind(src)?))?;
    rx.set_read_timeout(Some(Duration::from_secs(2)))?;
    let from = tx.local_addr()?;
    let payload = vec![0x5c; len];
    let mut buf = vec![0_u8; len + 1];
    for i in 0..count {
        tx.send_to(&payload, dst)?;
        let (n, got_from) = rx
            .recv_from(&mut buf)
            .with_context(|| format!("waiting for datagram {i} of {count}"))?;
        ensure!(
            n == len && got_from == from,
            "unexpected datagram {n} from {got_from}"
        );
    }
    Ok(from)
}

/// `UDP_SEGMENT` (`SOL_UDP` level): the segment size of UDP GSO.
const UDP_SEGMENT: libc::c_int = 103;

/// `UDP_GRO` (`SOL_UDP` level): the socket accepts GRO-merged datagrams.
const UDP_GRO: libc::c_int = 104;

fn set_int(
    fd: &impl std::os::fd::AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
    what: &str,
) -> Result<()> {
    // SAFETY: `value` is a valid c_int for the duration of the call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    ensure!(rc == 0, "{what}: {}", std::io::Error::last_os_error());
    Ok(())
}

/// One `send()` of `segments × segment_len` bytes with `UDP_SEGMENT` set to `segment_len`
/// (UDP GSO: one super-packet that the stack or the device cuts into `segments` datagrams),
/// from `src` (in B if `from_b`, else in A) to `dst`, whose socket receives every byte. With
/// `receiver_gro`, the receiving socket sets `UDP_GRO`, so that GRO on the receiving interface
/// may merge the segments again.
pub fn udp_gso_send(
    bed: &Testbed,
    from_b: bool,
    src: SocketAddr,
    dst: SocketAddr,
    segments: usize,
    segment_len: usize,
    receiver_gro: bool,
) -> Result<()> {
    let (tx_ns, rx_ns) = if from_b {
        (&bed.b, &bed.a)
    } else {
        (&bed.a, &bed.b)
    };
    let rx = Testbed::in_netns(rx_ns, || Ok(UdpSocket::bind(dst)?))?;
    let tx = Testbed::in_netns(tx_ns, || Ok(UdpSocket::bind(src)?))?;
    rx.set_read_timeout(Some(Duration::from_secs(2)))?;
    if receiver_gro {
        set_int(&rx, libc::SOL_UDP, UDP_GRO, 1, "UDP_GRO")?;
    }
    let size = libc::c_int::try_from(segment_len)?;
    set_int(&tx, libc::SOL_UDP, UDP_SEGMENT, size, "UDP_SEGMENT")?;
    let total = segments * segment_len;
    let sent = tx.send_to(&vec![0x3e; total], dst)?;
    ensure!(sent == total, "sent {sent} bytes");
    let from = tx.local_addr()?;
    let mut buf = vec![0_u8; total + 1];
    let mut got = 0;
    while got < total {
        let (n, got_from) = rx
            .recv_from(&mut buf)
            .with_context(|| format!("waiting for bytes {got}.. of {total}"))?;
        ensure!(
            n > 0 && n % segment_len == 0 && got_from == from,
            "a datagram of {n} bytes from {got_from}"
        );
        got += n;
    }
    ensure!(got == total, "received {got} of {total} bytes");
    Ok(())
}

/// A socket's counters from `TCP_INFO`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpCounters {
    /// `tcpi_state` (7 = `TCP_CLOSE`).
    pub state: u8,
    /// Segments sent, retransmissions included, a TSO packet counted as its segments.
    pub segs_out: u32,
    /// Segments received.
    pub segs_in: u32,
    /// Payload bytes sent, retransmissions included.
    pub bytes_sent: u64,
    /// Payload bytes received.
    pub bytes_received: u64,
    /// Retransmitted segments.
    pub total_retrans: u32,
    /// Duplicate segments reported by D-SACK.
    pub dsack_dups: u32,
    /// `tcpi_options` (`TCPI_OPT_TIMESTAMPS` = 1, `TCPI_OPT_SACK` = 2).
    pub options: u8,
}

/// `TCP_CLOSE`, the state of a socket whose connection is over.
pub const TCP_CLOSE: u8 = 7;

/// `getsockopt(TCP_INFO)` on `fd`.
pub fn tcp_counters(fd: &impl std::os::fd::AsRawFd) -> Result<TcpCounters> {
    // SAFETY: all-zero is a valid tcp_info.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` and `len` are valid for writes during the call; the kernel writes at
    // most `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &raw mut len,
        )
    };
    ensure!(rc == 0, "TCP_INFO: {}", std::io::Error::last_os_error());
    let needed = std::mem::offset_of!(libc::tcp_info, tcpi_dsack_dups) + 4;
    ensure!(
        len as usize >= needed,
        "the kernel's tcp_info has {len} bytes, fewer than the {needed} read here"
    );
    Ok(TcpCounters {
        state: info.tcpi_state,
        segs_out: info.tcpi_segs_out,
        segs_in: info.tcpi_segs_in,
        bytes_sent: info.tcpi_bytes_sent,
        bytes_received: info.tcpi_bytes_received,
        total_retrans: info.tcpi_total_retrans,
        dsack_dups: info.tcpi_dsack_dups,
        options: info.tcpi_options,
    })
}

/// A finished TCP connection from B (client) to A (server), with both sides' `TCP_INFO`
/// read once nothing more could be sent.
#[derive(Debug, Clone, Copy)]
pub struct TcpTransfer {
    /// The client's address (in B).
    pub client: SocketAddr,
    /// The server's address (in A).
    pub server: SocketAddr,
    /// The client's counters.
    pub client_info: TcpCounters,
    /// The server's counters.
    pub server_info: TcpCounters,
}

/// One TCP connection from B to A: the client sends `payload` bytes and closes its side; the
/// server reads them all, then closes its side. Returns when the server's socket is closed,
/// that is once the client's last ACK has reached A: every segment of the connection has then
/// crossed the veth both ways.
pub fn tcp_transfer(bed: &Testbed, payload: usize) -> Result<TcpTransfer> {
    tcp_transfer_to(bed, IpAddr::V4(A_V4), payload)
}

/// As [`tcp_transfer`], to a server listening on `server_ip` (A's IPv4 or IPv6 address).
pub fn tcp_transfer_to(bed: &Testbed, server_ip: IpAddr, payload: usize) -> Result<TcpTransfer> {
    let listener = Testbed::in_netns(&bed.a, || Ok(TcpListener::bind((server_ip, 0))?))?;
    let server_addr = listener.local_addr()?;
    let server = std::thread::spawn(move || -> Result<TcpCounters> {
        let (mut conn, _) = listener.accept()?;
        conn.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut got = 0_usize;
        let mut buf = vec![0_u8; 64 * 1024];
        loop {
            let n = conn.read(&mut buf)?;
            if n == 0 {
                break;
            }
            got += n;
        }
        ensure!(got == payload, "server read {got} of {payload} bytes");
        conn.shutdown(std::net::Shutdown::Write)?;
        let start = std::time::Instant::now();
        loop {
            let info = tcp_counters(&conn)?;
            if info.state == TCP_CLOSE {
                return Ok(info);
            }
            ensure!(
                start.elapsed() < Duration::from_secs(10),
                "the server's socket is still in state {} 10 s after its FIN",
                info.state
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    let mut client = Testbed::in_netns(&bed.b, || {
        Ok(TcpStream::connect_timeout(
            &server_addr,
            Duration::from_secs(2),
        )?)
    })?;
    let client_addr = client.local_addr()?;
    client.set_read_timeout(Some(Duration::from_secs(10)))?;
    client.write_all(&vec![0x42; payload])?;
    client.shutdown(std::net::Shutdown::Write)?;
    let mut rest = Vec::new();
    client.read_to_end(&mut rest)?;
    ensure!(rest.is_empty(), "the server sent {} bytes", rest.len());
    let server_info = server
        .join()
        .map_err(|_| anyhow::anyhow!("server thread panicked"))??;
    let client_info = tcp_counters(&client)?;
    Ok(TcpTransfer {
        client: client_addr,
        server: server_addr,
        client_info,
        server_info,
    })
}

const PACKET_STATISTICS: libc::c_int = 6;
const PACKET_VNET_HDR: libc::c_int = 15;
const PACKET_OUTGOING: u8 = 4;
const SO_RCVBUFFORCE: libc::c_int = 33;
/// `struct virtio_net_hdr`: what `PACKET_VNET_HDR` puts before each frame.
pub const VNET_HDR_LEN: usize = 10;

/// One frame seen by a [`Sniffer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Its flow as the program at `va` would key it (`None`: not IPv4/IPv6, or not parsed).
    pub key: Option<crate::flow_rows::Key>,
    /// Frame length as handed to or by `vb` (Ethernet header included).
    pub len: u64,
    /// The GSO segment size from the virtio header (0: not a GSO packet).
    pub gso_size: u16,
    /// Wire segments: 1, or for a GSO packet its payload divided by `gso_size`, rounded up.
    pub segments: u64,
    /// Wire bytes: `len` plus one copy of the headers for each segment after the first.
    pub wire_bytes: u64,
    /// TCP flags (0 if not TCP).
    pub tcp_flags: u8,
}

/// What a [`Sniffer`] saw for one flow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WireTotals {
    /// Frames as `vb` handled them (a GSO packet is one frame).
    pub frames: u64,
    /// Wire segments.
    pub packets: u64,
    /// Wire bytes.
    pub bytes: u64,
    /// Union of the TCP flags.
    pub tcp_flags: u8,
}

/// Every frame a [`Sniffer`] saw, and how many the kernel dropped before it could read them.
#[derive(Debug, Clone, Default)]
pub struct Sniffed {
    /// The frames, in order.
    pub frames: Vec<Frame>,
    /// `tp_drops` of `PACKET_STATISTICS`.
    pub drops: u32,
}

impl Sniffed {
    /// The frames of one flow.
    #[must_use]
    pub fn frames_of(&self, key: &crate::flow_rows::Key) -> Vec<&Frame> {
        self.frames
            .iter()
            .filter(|f| f.key.as_ref() == Some(key))
            .collect()
    }

    /// The totals of one flow.
    #[must_use]
    pub fn totals(&self, key: &crate::flow_rows::Key) -> WireTotals {
        let mut t = WireTotals::default();
        for f in self.frames_of(key) {
            t.frames += 1;
            t.packets += f.segments;
            t.bytes += f.wire_bytes;
            t.tcp_flags |= f.tcp_flags;
        }
        t
    }
}

/// An `AF_PACKET` socket on `vb` in namespace B: ground truth for what crosses the veth,
/// independent of the eBPF program. It sees every frame `vb` sends (B → A: ingress at `va`)
/// and receives (A → B: egress at `va`), with its length; with `PACKET_VNET_HDR` a GSO/TSO
/// packet that crosses the veth whole comes with its segment size, so its wire segments can be
/// counted too. [`Sniffer::finish`] fails if the kernel dropped any frame.
pub struct Sniffer {
    fd: Arc<OwnedFd>,
    stop: Arc<AtomicBool>,
    reader: Option<std::thread::JoinHandle<Result<Vec<Frame>>>>,
}

/// An `AF_PACKET` socket with `PACKET_VNET_HDR`, bound to `dev` in `ns` (all protocols).
/// Returns it and the interface index.
fn packet_socket(ns: &str, dev: &str) -> Result<(OwnedFd, u32)> {
    let ifindex = Testbed::ifindex(ns, dev)?;
    let protocol = (libc::ETH_P_ALL as u16).to_be();
    let fd = Testbed::in_netns(ns, || {
        // SAFETY: plain socket(2) call; the result is checked and owned below.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::c_int::from(protocol),
            )
        };
        ensure!(
            fd >= 0,
            "AF_PACKET socket: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: `fd` is a fresh descriptor nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    })?;
    set_int(&fd, libc::SOL_PACKET, PACKET_VNET_HDR, 1, "PACKET_VNET_HDR")?;
    // SAFETY: all-zero is a valid sockaddr_ll.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol;
    sll.sll_ifindex = i32::try_from(ifindex)?;
    // SAFETY: `sll` is a valid sockaddr_ll for the given length during the call.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const sll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    ensure!(
        rc == 0,
        "binding to {dev}: {}",
        std::io::Error::last_os_error()
    );
    Ok((fd, ifindex))
}

impl Sniffer {
    /// Opens the socket on `vb` (frames it sends are ingress at `va`) and starts reading.
    pub fn start(bed: &Testbed) -> Result<Self> {
        Self::on(&bed.b, VETH_B, crate::flow_rows::Direction::Ingress)
    }

    /// Opens the socket on `dev` in `ns` and starts reading; frames `dev` sends are keyed
    /// with direction `outgoing` (and those it receives with the other one).
    pub fn on(ns: &str, dev: &str, outgoing: crate::flow_rows::Direction) -> Result<Self> {
        let (fd, ifindex) = packet_socket(ns, dev)?;
        set_int(
            &fd,
            libc::SOL_SOCKET,
            SO_RCVBUFFORCE,
            64 << 20,
            "SO_RCVBUFFORCE",
        )?;
        let fd = Arc::new(fd);
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (fd, stop) = (fd.clone(), stop.clone());
            std::thread::spawn(move || read_frames(&fd, &stop, ifindex, outgoing))
        };
        Ok(Self {
            fd,
            stop,
            reader: Some(reader),
        })
    }

    /// Reads what is still queued, stops, and returns every frame seen. Call it once the
    /// traffic is over: frames are queued on the socket as `vb` handles them.
    pub fn finish(mut self) -> Result<Sniffed> {
        self.stop.store(true, Ordering::SeqCst);
        let frames = self
            .reader
            .take()
            .expect("finish is called once")
            .join()
            .map_err(|_| anyhow::anyhow!("sniffer thread panicked"))??;
        let mut stats = [0_u32; 2];
        let mut len = size_of::<[u32; 2]>() as libc::socklen_t;
        // SAFETY: `stats` (struct tpacket_stats: two u32) and `len` are valid for writes.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                PACKET_STATISTICS,
                stats.as_mut_ptr().cast(),
                &raw mut len,
            )
        };
        ensure!(
            rc == 0,
            "PACKET_STATISTICS: {}",
            std::io::Error::last_os_error()
        );
        ensure!(
            stats[1] == 0,
            "the sniffer lost {} frames: its ground truth is incomplete",
            stats[1]
        );
        Ok(Sniffed {
            frames,
            drops: stats[1],
        })
    }
}

impl Drop for Sniffer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

fn read_frames(
    fd: &OwnedFd,
    stop: &AtomicBool,
    ifindex: u32,
    outgoing: crate::flow_rows::Direction,
) -> Result<Vec<Frame>> {
    let mut frames = Vec::new();
    let mut buf = [0_u8; 512];
    loop {
        // Frames are queued before `stop` is set, so an empty queue seen after `stop` was set
        // means everything was read.
        let stopping = stop.load(Ordering::SeqCst);
        // SAFETY: all-zero is a valid sockaddr_ll.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut from_len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: `buf`, `from` and `from_len` are valid for writes of their sizes.
        let n = unsafe {
            libc::recvfrom(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_TRUNC | libc::MSG_DONTWAIT,
                (&raw mut from).cast(),
                &raw mut from_len,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            match e.kind() {
                std::io::ErrorKind::WouldBlock if stopping => return Ok(frames),
                std::io::ErrorKind::WouldBlock => {
                    let mut pfd = libc::pollfd {
                        fd: fd.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    // SAFETY: `pfd` is one valid pollfd for the duration of the call.
                    unsafe { libc::poll(&raw mut pfd, 1, 20) };
                    continue;
                }
                std::io::ErrorKind::Interrupted => continue,
                _ => bail!("reading the sniffer: {e}"),
            }
        }
        if u32::try_from(from.sll_ifindex).ok() != Some(ifindex) {
            continue;
        }
        let total = usize::try_from(n)?;
        ensure!(total >= VNET_HDR_LEN, "a frame of {total} bytes");
        let have = &buf[..total.min(buf.len())];
        frames.push(parse_frame(
            &have[..VNET_HDR_LEN],
            &have[VNET_HDR_LEN..],
            (total - VNET_HDR_LEN) as u64,
            if from.sll_pkttype == PACKET_OUTGOING {
                outgoing
            } else {
                outgoing.other()
            },
        ));
    }
}

/// Reads a frame the way the wire would count it, from its first bytes and its length.
fn parse_frame(
    vnet: &[u8],
    frame: &[u8],
    len: u64,
    direction: crate::flow_rows::Direction,
) -> Frame {
    use crate::flow_rows::Key;
    let gso_type = vnet[1];
    let gso_size = u16::from_le_bytes([vnet[4], vnet[5]]);
    let mut out = Frame {
        key: None,
        len,
        gso_size: 0,
        segments: 1,
        wire_bytes: len,
        tcp_flags: 0,
    };
    let byte = |i: usize| frame.get(i).copied();
    let (Some(t0), Some(t1)) = (byte(12), byte(13)) else {
        return out;
    };
    let (src, dst, proto, l4) = match u16::from_be_bytes([t0, t1]) {
        0x0800 if frame.len() >= 34 => {
            let ihl = usize::from(frame[14] & 0x0f) * 4;
            let src: [u8; 4] = frame[26..30].try_into().unwrap();
            let dst: [u8; 4] = frame[30..34].try_into().unwrap();
            (
                IpAddr::V4(src.into()),
                IpAddr::V4(dst.into()),
                frame[23],
                14 + ihl,
            )
        }
        0x86dd if frame.len() >= 54 => {
            let src: [u8; 16] = frame[22..38].try_into().unwrap();
            let dst: [u8; 16] = frame[38..54].try_into().unwrap();
            (
                IpAddr::V6(src.into()),
                IpAddr::V6(dst.into()),
                frame[20],
                54,
            )
        }
        _ => return out,
    };
    let l4_bytes = frame.get(l4..).unwrap_or_default();
    let mut key = Key {
        src,
        dst,
        src_port: 0,
        dst_port: 0,
        proto,
        icmp: None,
        direction,
    };
    let l4_len = match proto {
        6 | 17 if l4_bytes.len() >= 4 => {
            key.src_port = u16::from_be_bytes([l4_bytes[0], l4_bytes[1]]);
            key.dst_port = u16::from_be_bytes([l4_bytes[2], l4_bytes[3]]);
            if proto == 6 {
                let (Some(off), Some(flags)) = (l4_bytes.get(12), l4_bytes.get(13)) else {
                    return out;
                };
                out.tcp_flags = *flags;
                u64::from(off >> 4) * 4
            } else {
                8
            }
        }
        1 | 58 if l4_bytes.len() >= 2 => {
            key.icmp = Some((l4_bytes[0], l4_bytes[1]));
            8
        }
        _ => return out,
    };
    out.key = Some(key);
    if gso_type != 0 && gso_size > 0 {
        let headers = l4 as u64 + l4_len;
        out.gso_size = gso_size;
        out.segments = (len - headers).div_ceil(u64::from(gso_size));
        out.wire_bytes = len + (out.segments - 1) * headers;
    }
    out
}

/// The programs attached with TCX to `dev` in `ns`: `(program id, link id)` for ingress and
/// for egress, from `BPF_PROG_QUERY` (the kernel's own view, whatever tool attached them).
pub fn tcx_attached(ns: &str, dev: &str) -> Result<[Vec<(u32, u32)>; 2]> {
    const BPF_PROG_QUERY: libc::c_long = 16;
    const BPF_TCX_INGRESS: u32 = 46;
    const BPF_TCX_EGRESS: u32 = 47;
    let ifindex = Testbed::ifindex(ns, dev)?;
    let query = |attach_type: u32| -> Result<Vec<(u32, u32)>> {
        let mut prog_ids = [0_u32; 64];
        let mut link_ids = [0_u32; 64];
        // `union bpf_attr`'s `query` member: target_ifindex, attach_type, query_flags,
        // attach_flags (u32 each), prog_ids (u64 pointer), count (u32), 4 bytes padding,
        // prog_attach_flags, link_ids, link_attach_flags (u64 pointers), revision (u64).
        let mut attr = [0_u64; 8];
        attr[0] = u64::from(ifindex) | (u64::from(attach_type) << 32);
        attr[2] = prog_ids.as_mut_ptr() as u64;
        attr[3] = prog_ids.len() as u64;
        attr[5] = link_ids.as_mut_ptr() as u64;
        // SAFETY: `attr` is a valid bpf_attr of the given size; the kernel writes at most
        // `count` ids into each array, which outlive the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_PROG_QUERY,
                attr.as_mut_ptr(),
                size_of::<[u64; 8]>(),
            )
        };
        ensure!(
            rc == 0,
            "BPF_PROG_QUERY on {dev}: {}",
            std::io::Error::last_os_error()
        );
        let count = (attr[3] & 0xffff_ffff) as usize;
        Ok(prog_ids[..count]
            .iter()
            .copied()
            .zip(link_ids[..count].iter().copied())
            .collect())
    };
    Testbed::in_netns(ns, || Ok([query(BPF_TCX_INGRESS)?, query(BPF_TCX_EGRESS)?]))
}

/// `bpftool -j ARGS` run inside namespace `ns`: its JSON answer.
pub fn bpftool_json(ns: &str, args: &[&str]) -> Result<serde_json::Value> {
    let mut all = vec!["-j"];
    all.extend_from_slice(args);
    let out = netns_exec(ns, "bpftool", &all)?;
    serde_json::from_str(&out).with_context(|| format!("bpftool {args:?} printed {out}"))
}

/// The MAC address of `dev` in `ns`.
pub fn mac(ns: &str, dev: &str) -> Result<[u8; 6]> {
    let out = netns_exec(ns, "ip", &["-j", "link", "show", "dev", dev])?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    let text = v[0]["address"]
        .as_str()
        .with_context(|| format!("no address in {out}"))?;
    let mut mac = [0_u8; 6];
    let parts: Vec<&str> = text.split(':').collect();
    ensure!(parts.len() == 6, "MAC {text}");
    for (m, p) in mac.iter_mut().zip(parts) {
        *m = u8::from_str_radix(p, 16)?;
    }
    Ok(mac)
}

/// Sends one frame out of `dev` in `ns` through an `AF_PACKET` socket with `PACKET_VNET_HDR`:
/// the way a VM's virtio NIC hands packets to the host (tap, vhost), GSO included. `vnet` is
/// the `struct virtio_net_hdr` (little-endian fields).
pub fn packet_send_vnet(ns: &str, dev: &str, vnet: [u8; VNET_HDR_LEN], frame: &[u8]) -> Result<()> {
    let (fd, _) = packet_socket(ns, dev)?;
    let mut buf = vnet.to_vec();
    buf.extend_from_slice(frame);
    // SAFETY: `buf` is valid for reads of its length during the call.
    let n = unsafe { libc::send(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), 0) };
    ensure!(
        usize::try_from(n).ok() == Some(buf.len()),
        "AF_PACKET send of {} bytes: {n}, {}",
        buf.len(),
        std::io::Error::last_os_error()
    );
    Ok(())
}

/// A UDP/IPv4 GSO frame as a virtio NIC would pass it: `segments × segment_len` bytes of
/// payload behind one set of headers (IP total length and UDP length of the whole, UDP checksum
/// seeded with the pseudo-header sum for the stack to complete), with the virtio header asking
/// for UDP segmentation (`VIRTIO_NET_HDR_GSO_UDP_L4`) into `segment_len` pieces.
#[must_use]
pub fn udp_gso_frame(
    macs: ([u8; 6], [u8; 6]),
    src: std::net::SocketAddrV4,
    dst: std::net::SocketAddrV4,
    segments: usize,
    segment_len: usize,
) -> ([u8; VNET_HDR_LEN], Vec<u8>) {
    let payload = segments * segment_len;
    let udp_len = u16::try_from(8 + payload).expect("fits a UDP length");
    let ip_len = 20 + udp_len;
    let mut f = Vec::with_capacity(14 + usize::from(ip_len));
    f.extend_from_slice(&macs.1);
    f.extend_from_slice(&macs.0);
    f.extend_from_slice(&0x0800_u16.to_be_bytes());
    let mut iph = vec![0x45, 0];
    iph.extend_from_slice(&ip_len.to_be_bytes());
    iph.extend_from_slice(&[0x12, 0x34, 0, 0, 64, 17, 0, 0]);
    iph.extend_from_slice(&src.ip().octets());
    iph.extend_from_slice(&dst.ip().octets());
    let sum = checksum(&iph);
    iph[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&iph);
    // Pseudo-header sum, not complemented: what CHECKSUM_PARTIAL expects in the field.
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.ip().octets());
    pseudo.extend_from_slice(&dst.ip().octets());
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&udp_len.to_be_bytes());
    let seed = !checksum(&pseudo);
    f.extend_from_slice(&src.port().to_be_bytes());
    f.extend_from_slice(&dst.port().to_be_bytes());
    f.extend_from_slice(&udp_len.to_be_bytes());
    f.extend_from_slice(&seed.to_be_bytes());
    f.resize(f.len() + payload, 0x6d);
    let mut vnet = [0_u8; VNET_HDR_LEN];
    vnet[0] = 1; // VIRTIO_NET_HDR_F_NEEDS_CSUM
    vnet[1] = 5; // VIRTIO_NET_HDR_GSO_UDP_L4
    vnet[2..4].copy_from_slice(&42_u16.to_le_bytes()); // hdr_len
    vnet[4..6].copy_from_slice(&u16::try_from(segment_len).expect("fits").to_le_bytes());
    vnet[6..8].copy_from_slice(&34_u16.to_le_bytes()); // csum_start: the UDP header
    vnet[8..10].copy_from_slice(&6_u16.to_le_bytes()); // csum_offset: its checksum field
    (vnet, f)
}
