//! Network namespaces for the flow-capture tests and benchmarks: two fresh namespaces joined
//! by a veth pair, and traffic of known shape between them.
//!
//! Every address used lives only inside the two namespaces a [`Testbed`] creates
//! (10.77.0.0/24 and fd00:77::/64 on the veth pair); both namespaces are deleted on drop.
//! Namespace names carry a tag and the process id, so parallel tests and leftovers from a
//! crashed run never collide. Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_NET_RAW).

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd as _;
use std::process::Command;
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
        };
        for ns in [bed.a.clone(), bed.b.clone()] {
            ip(&["netns", "add", &ns])?;
            bed.created.push(ns);
        }
        let (a, b) = (bed.a.as_str(), bed.b.as_str());
        ip(&[
            "-n", a, "link", "add", VETH_A, "type", "veth", "peer", "name", VETH_B, "netns", b,
        ])?;
        for (ns, dev, v4, v6) in [(a, VETH_A, A_V4, A_V6), (b, VETH_B, B_V4, B_V6)] {
            if !ipv6 {
                ip(&["-n", ns, "link", "set", dev, "addrgenmode", "none"])?;
            }
            ip(&["-n", ns, "addr", "add", &format!("{v4}/24"), "dev", dev])?;
            if ipv6 {
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
        Ok(bed)
    }

    /// Runs `f` on a thread that has entered namespace `ns`. Sockets created there stay in
    /// that namespace; interface names and indexes are that namespace's.
    pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
        let path = format!("/run/netns/{ns}");
        std::thread::scope(|s| {
            s.spawn(|| {
                let file = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
                // SAFETY: `file` is an open namespace file; setns only changes this thread's
                // network namespace, and the thread ends when `f` returns.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                if rc != 0 {
                    bail!("setns({path}): {}", std::io::Error::last_os_error());
                }
                f()
            })
            .join()
            .map_err(|_| anyhow::anyhow!("thread in {ns} panicked"))?
        })
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
    let a = Testbed::in_netns(&bed.a, || Ok(UdpSocket::bind(SocketAddr::new(a_ip, 0))?))?;
    let b = Testbed::in_netns(&bed.b, || Ok(UdpSocket::bind(SocketAddr::new(b_ip, 0))?))?;
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
        let timeout = libc::timeval {
            tv_sec: 2,
            tv_usec: 0,
        };
        // SAFETY: `timeout` is a valid timeval for the duration of the call.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const timeout).cast(),
                size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        ensure!(rc == 0, "SO_RCVTIMEO: {}", std::io::Error::last_os_error());
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
            let rc = if v6 {
                // SAFETY: all-zero is a valid sockaddr_in6.
                let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
                sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sa.sin6_addr.s6_addr = A_V6.octets();
                // SAFETY: `pkt` and `sa` are valid for the given lengths during the call.
                unsafe {
                    libc::sendto(
                        fd.as_raw_fd(),
                        pkt.as_ptr().cast(),
                        pkt.len(),
                        0,
                        (&raw const sa).cast(),
                        size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                    )
                }
            } else {
                // SAFETY: all-zero is a valid sockaddr_in.
                let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
                sa.sin_family = libc::AF_INET as libc::sa_family_t;
                sa.sin_addr.s_addr = u32::from_ne_bytes(A_V4.octets());
                // SAFETY: `pkt` and `sa` are valid for the given lengths during the call.
                unsafe {
                    libc::sendto(
                        fd.as_raw_fd(),
                        pkt.as_ptr().cast(),
                        pkt.len(),
                        0,
                        (&raw const sa).cast(),
                        size_of::<libc::sockaddr_in>() as libc::socklen_t,
                    )
                }
            };
            ensure!(rc >= 0, "sendto: {}", std::io::Error::last_os_error());
            // Wait for the matching reply (a raw socket also sees other ICMP traffic).
            let mut buf = [0_u8; 2048];
            loop {
                // SAFETY: `buf` is valid for writes of its length during the call.
                let n =
                    unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
                ensure!(
                    n >= 0,
                    "waiting for echo reply {seq}: {}",
                    std::io::Error::last_os_error()
                );
                // An ICMPv4 raw socket receives the IP header too; ICMPv6 does not.
                let icmp = if v6 {
                    &buf[..n as usize]
                } else {
                    &buf[20.min(n as usize)..n as usize]
                };
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
