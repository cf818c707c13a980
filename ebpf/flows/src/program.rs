//! Ethernet → IPv4/IPv6 → TCP/UDP/ICMP/ICMPv6 parsing and flow accounting.
//!
//! Every packet is passed on (`TC_ACT_PIPE`): the program observes, it never drops. Each packet
//! ends up in exactly one place: the `FLOWS` map, a `FLOW_EVENTS` ring-buffer event (map full),
//! or one of the `FLOW_COUNTERS` loss counters.
//!
//! Per-packet cost (docs/capture.md has the figures): every function here is
//! `#[inline(always)]`, so a classifier is one BPF function with no BPF-to-BPF calls (a
//! subprogram's call and return cost ~8 ns a packet where returns go through a
//! return-thunk mitigation); packets are stamped with the tick count (`bpf_jiffies64`,
//! which the verifier turns into one load); and the key is zeroed inline (see `build.rs`).
//! What remains is mostly the flow map's lookup, a kernel call.

use core::intrinsics::{AtomicOrdering, atomic_xadd};

use aya_ebpf::{
    EbpfContext as _,
    bindings::{BPF_NOEXIST, TC_ACT_PIPE},
    helpers::generated::{bpf_jiffies64, bpf_ktime_get_ns},
    macros::{classifier, map},
    maps::{Array, HashMap, PerCpuArray, RingBuf},
    programs::TcContext,
};
use weir_ebpf_common::{
    COUNTER_MAP_ERROR, COUNTER_MAP_FULL, COUNTER_RINGBUF_FULL, COUNTER_TRUNCATED,
    COUNTER_UNSUPPORTED, COUNTERS, ClockSample, DIRECTION_EGRESS, DIRECTION_INGRESS, FAMILY_IPV4,
    FAMILY_IPV6, FlowEvent, FlowKey, FlowValue, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP,
};

/// The license the kernel sees. None of the helpers used here is GPL-only.
#[unsafe(no_mangle)]
#[unsafe(link_section = "license")]
static LICENSE: [u8; 11] = *b"Apache-2.0\0";

/// Flow table. The size here is a default: user space sets it from the config before loading.
#[map]
static FLOWS: HashMap<FlowKey, FlowValue> = HashMap::with_max_entries(16_384, 0);

/// Per-packet events for packets the flow table had no room for.
#[map]
static FLOW_EVENTS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

/// Loss counters, indexed by `COUNTER_*`.
#[map]
static FLOW_COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTERS, 0);

/// The current epoch in entry 0 (only its low bit is used); user space flips it to drain.
#[map]
static FLOW_EPOCH: Array<u32> = Array::with_max_entries(1, 0);

/// Entry 0: the latest [`ClockSample`], written by `flows_clock`.
#[map]
static FLOW_CLOCK: Array<ClockSample> = Array::with_max_entries(1, 0);

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const IPV6_HLEN: usize = 40;
/// IPv6 extension headers walked before giving up on finding the transport header.
const MAX_IPV6_EXT: usize = 4;
/// Offsets beyond this are read through the helper only (it keeps the verifier's range of
/// packet offsets small; real headers end far earlier).
const MAX_HEADER_OFFSET: usize = 4096;
const E2BIG: i32 = 7;
const ENOMEM: i32 = 12;
const EEXIST: i32 = 17;

/// Ingress hook.
#[classifier]
pub fn flows_ingress(ctx: TcContext) -> i32 {
    observe(&ctx, DIRECTION_INGRESS);
    TC_ACT_PIPE
}

/// Egress hook.
#[classifier]
pub fn flows_egress(ctx: TcContext) -> i32 {
    observe(&ctx, DIRECTION_EGRESS);
    TC_ACT_PIPE
}

/// Never attached: user space test-runs it to read the tick count and `CLOCK_MONOTONIC`
/// together (see `ClockSample`).
#[classifier]
pub fn flows_clock(_ctx: TcContext) -> i32 {
    if let Some(sample) = FLOW_CLOCK.get_ptr_mut(0) {
        // SAFETY: helpers without arguments or preconditions; `sample` points to entry 0 of
        // this program's own array, live for the run.
        unsafe {
            let jiffies = bpf_jiffies64();
            *sample = ClockSample {
                jiffies,
                monotonic_ns: bpf_ktime_get_ns(),
            };
        }
    }
    TC_ACT_PIPE
}

/// Why a packet was not turned into a flow key.
enum Skip {
    Unsupported,
    Truncated,
}

#[inline(always)]
fn observe(ctx: &TcContext, direction: u8) {
    let skb = ctx.as_ptr().cast::<aya_ebpf::bindings::__sk_buff>();
    // SAFETY: `skb` is the context pointer the kernel passed to this program; the verifier
    // allows reading these `__sk_buff` fields.
    let (len, ifindex, gso_segs, gso_size) =
        unsafe { ((*skb).len, (*skb).ifindex, (*skb).gso_segs, (*skb).gso_size) };
    let epoch = FLOW_EPOCH.get(0).map_or(0, |e| (*e & 1) as u8);
    let mut key = FlowKey {
        ifindex,
        direction,
        epoch,
        ..FlowKey::default()
    };
    let parsed = match parse(ctx, &mut key) {
        Ok(parsed) => parsed,
        Err(Skip::Unsupported) => return count(COUNTER_UNSUPPORTED),
        Err(Skip::Truncated) => return count(COUNTER_TRUNCATED),
    };
    // A GSO (egress) or GRO (ingress) packet carries `gso_segs` wire segments, each with its
    // own copy of the headers; `skb->len` holds one copy. Count what the wire carries. A
    // packet that came with a virtio header (tap, vhost, `PACKET_VNET_HDR`) has its
    // `gso_size` set but `gso_segs` still 0 until the kernel segments it: count the segments
    // its payload makes.
    let len = u64::from(len);
    let segments = if gso_segs > 0 {
        u64::from(gso_segs)
    } else if gso_size > 0 && len > parsed.headers {
        (len - parsed.headers).div_ceil(u64::from(gso_size))
    } else {
        1
    };
    let packets = segments.max(1);
    let bytes = len + (packets - 1) * parsed.headers;
    // The tick count (4 ms at HZ=250; flow times need no finer grain): the verifier turns this
    // helper into one load, where a clock helper is a call (~25 ns a packet, measured).
    // SAFETY: a helper without arguments or preconditions.
    let now = unsafe { bpf_jiffies64() };
    account(&key, packets, bytes, parsed.tcp_flags, now);
}

/// What [`parse`] found besides the key.
struct Parsed {
    /// The TCP flags; 0 for non-TCP.
    tcp_flags: u32,
    /// Bytes from the start of the frame to the transport payload (the headers each GSO
    /// segment repeats).
    headers: u64,
}

/// Fills the addresses, ports, protocol and ICMP fields of `key`.
#[inline(always)]
fn parse(ctx: &TcContext, key: &mut FlowKey) -> Result<Parsed, Skip> {
    let ethertype = u16::from_be(load::<u16>(ctx, 12)?);
    let (protocol, l4) = match ethertype {
        ETH_P_IP => {
            let vihl: u8 = load(ctx, ETH_HLEN)?;
            let ihl = usize::from(vihl & 0x0f) * 4;
            if vihl >> 4 != 4 || ihl < 20 {
                return Err(Skip::Truncated);
            }
            let frag = u16::from_be(load::<u16>(ctx, ETH_HLEN + 6)?);
            let protocol: u8 = load(ctx, ETH_HLEN + 9)?;
            let src: [u8; 4] = load(ctx, ETH_HLEN + 12)?;
            let dst: [u8; 4] = load(ctx, ETH_HLEN + 16)?;
            key.family = FAMILY_IPV4;
            key.src_addr[..4].copy_from_slice(&src);
            key.dst_addr[..4].copy_from_slice(&dst);
            // A non-first fragment carries no transport header.
            let l4 = (frag & 0x1fff == 0).then_some(ETH_HLEN + ihl);
            (protocol, l4)
        }
        ETH_P_IPV6 => {
            let mut next: u8 = load(ctx, ETH_HLEN + 6)?;
            key.family = FAMILY_IPV6;
            key.src_addr = load(ctx, ETH_HLEN + 8)?;
            key.dst_addr = load(ctx, ETH_HLEN + 24)?;
            let mut off = ETH_HLEN + IPV6_HLEN;
            let mut l4 = Some(off);
            for _ in 0..MAX_IPV6_EXT {
                match next {
                    // Hop-by-hop, routing, destination options: length in 8-octet units.
                    0 | 43 | 60 => {
                        let hdr: [u8; 2] = load(ctx, off)?;
                        next = hdr[0];
                        off += (usize::from(hdr[1]) + 1) * 8;
                        l4 = Some(off);
                    }
                    // Fragment header: 8 octets; only the first fragment has the ports.
                    44 => {
                        let hdr: [u8; 4] = load(ctx, off)?;
                        next = hdr[0];
                        off += 8;
                        let offset = u16::from_be_bytes([hdr[2], hdr[3]]) & 0xfff8;
                        l4 = (offset == 0).then_some(off);
                    }
                    _ => break,
                }
            }
            (next, l4)
        }
        _ => return Err(Skip::Unsupported),
    };
    key.protocol = protocol;
    let Some(l4) = l4 else {
        return Ok(Parsed {
            tcp_flags: 0,
            headers: 0,
        });
    };
    let (tcp_flags, l4_header) = match protocol {
        PROTO_TCP => {
            let head: [u8; 14] = load(ctx, l4)?;
            key.src_port = u16::from_be_bytes([head[0], head[1]]);
            key.dst_port = u16::from_be_bytes([head[2], head[3]]);
            // Data offset: the TCP header's length in 32-bit words, options included.
            (u32::from(head[13]), usize::from(head[12] >> 4) * 4)
        }
        PROTO_UDP => {
            let ports: [u8; 4] = load(ctx, l4)?;
            key.src_port = u16::from_be_bytes([ports[0], ports[1]]);
            key.dst_port = u16::from_be_bytes([ports[2], ports[3]]);
            (0, 8)
        }
        PROTO_ICMP | PROTO_ICMPV6 => {
            let tc: [u8; 2] = load(ctx, l4)?;
            key.icmp_type = tc[0];
            key.icmp_code = tc[1];
            (0, 8)
        }
        // Other protocols (GRE, SCTP, ...) are flows without ports.
        _ => (0, 0),
    };
    Ok(Parsed {
        tcp_flags,
        headers: (l4 + l4_header) as u64,
    })
}

/// A `T` at `offset`: read straight from the packet when the bytes are in its linear part
/// (headers nearly always are; a direct read costs a bounds check, where the
/// `bpf_skb_load_bytes` helper costs a call), else through that helper, which also reads
/// paged data. A short packet is `Skip::Truncated`.
#[inline(always)]
fn load<T>(ctx: &TcContext, offset: usize) -> Result<T, Skip> {
    let (start, end) = (ctx.data(), ctx.data_end());
    if offset < MAX_HEADER_OFFSET && start + offset + size_of::<T>() <= end {
        // SAFETY: `start..end` is the packet's linear data, which the kernel keeps readable
        // for this program run, and `offset + size_of::<T>()` lies inside it (checked just
        // above, in a form the verifier tracks). `T` is a plain integer or byte array, valid
        // for any bytes, and `read_unaligned` needs no alignment.
        return Ok(unsafe { ((start + offset) as *const T).read_unaligned() });
    }
    ctx.load::<T>(offset).map_err(|_| Skip::Truncated)
}

#[inline(always)]
fn account(key: &FlowKey, packets: u64, bytes: u64, tcp_flags: u32, now: u64) {
    if let Some(value) = FLOWS.get_ptr_mut(key) {
        update(value, packets, bytes, tcp_flags, now);
        return;
    }
    let value = FlowValue {
        packets,
        bytes,
        first_seen_jiffies: now,
        last_seen_jiffies: now,
        tcp_flags,
        _pad: [0; 4],
    };
    match FLOWS.insert(key, value, u64::from(BPF_NOEXIST)) {
        Ok(()) => {}
        // Another CPU inserted the same flow in between: add to its entry.
        Err(err) if err == -EEXIST => match FLOWS.get_ptr_mut(key) {
            Some(value) => update(value, packets, bytes, tcp_flags, now),
            None => count(COUNTER_MAP_ERROR),
        },
        Err(err) if err == -E2BIG || err == -ENOMEM => {
            fallback(key, packets, bytes, tcp_flags, now);
        }
        Err(_) => count(COUNTER_MAP_ERROR),
    }
}

/// Adds one packet to an existing entry. Packets and bytes are atomic adds, so concurrent
/// CPUs lose nothing; `last_seen_jiffies` and `tcp_flags` are plain stores (the bpf target has no
/// atomic OR below `-mcpu=v3`), so a race between CPUs can keep an older timestamp or drop a
/// flag bit, never a count.
#[inline(always)]
fn update(value: *mut FlowValue, packets: u64, bytes: u64, tcp_flags: u32, now: u64) {
    // SAFETY: `value` came from a map lookup in this program run, so it points to a live,
    // aligned `FlowValue` for the rest of the run (the kernel holds the RCU read lock).
    unsafe {
        atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(&raw mut (*value).packets, packets);
        atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(&raw mut (*value).bytes, bytes);
        (*value).last_seen_jiffies = now;
        if tcp_flags != 0 {
            (*value).tcp_flags |= tcp_flags;
        }
    }
}

/// The map is full: send the packet as an event, or count it lost if the ring buffer is full.
#[inline(always)]
fn fallback(key: &FlowKey, packets: u64, bytes: u64, tcp_flags: u32, now: u64) {
    match FLOW_EVENTS.reserve::<FlowEvent>(0) {
        Some(mut entry) => {
            entry.write(FlowEvent {
                key: *key,
                jiffies: now,
                // `skb->len` and `gso_segs` are `u32` in the kernel; these only widened them.
                bytes: bytes as u32,
                packets: packets as u32,
                tcp_flags,
                _pad: [0; 4],
            });
            entry.submit(0);
            count(COUNTER_MAP_FULL);
        }
        None => count(COUNTER_RINGBUF_FULL),
    }
}

#[inline(always)]
fn count(index: u32) {
    if let Some(counter) = FLOW_COUNTERS.get_ptr_mut(index) {
        // SAFETY: a per-CPU slot of this program's own array; TC programs run with migration
        // disabled, so nothing else writes this CPU's slot meanwhile.
        unsafe { *counter += 1 };
    }
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    // Nothing above can panic (no indexing, no unwrap). Were a panic path ever compiled in,
    // this loop would make the verifier reject the program at load time instead of running it.
    loop {}
}
