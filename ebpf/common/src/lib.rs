//! The `#[repr(C)]` types shared between the flows eBPF program (`ebpf/flows`) and user space.
//!
//! Every type here crosses the kernel boundary byte for byte, so each one:
//! - is `#[repr(C)]` with every padding byte spelled out as a `_pad` field (the kernel hashes
//!   map keys as raw bytes, so implicit padding would make equal flows hash differently);
//! - uses only integers and byte arrays (no `bool`, no enums: any bit pattern is valid);
//! - has its size and alignment checked by a `const` assertion.
//!
//! Addresses are in network byte order; ports, counters and timestamps in host byte order.
#![no_std]

use core::mem::{align_of, offset_of, size_of};

/// `FlowKey::family` for IPv4 (the kernel's `AF_INET`). The address is in bytes `0..4` of the
/// 16-byte arrays; bytes `4..16` are zero.
pub const FAMILY_IPV4: u8 = 2;
/// `FlowKey::family` for IPv6 (the kernel's `AF_INET6`).
pub const FAMILY_IPV6: u8 = 10;

/// `FlowKey::direction` for packets seen on the TC ingress hook.
pub const DIRECTION_INGRESS: u8 = 0;
/// `FlowKey::direction` for packets seen on the TC egress hook.
pub const DIRECTION_EGRESS: u8 = 1;

/// IP protocol number of ICMP.
pub const PROTO_ICMP: u8 = 1;
/// IP protocol number of TCP.
pub const PROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const PROTO_UDP: u8 = 17;
/// IP protocol number of ICMPv6.
pub const PROTO_ICMPV6: u8 = 58;

/// Name of the `HASH` map from [`FlowKey`] to [`FlowValue`].
pub const FLOWS_MAP: &str = "FLOWS";
/// Name of the ring buffer of [`FlowEvent`]s used when the flow map is full.
pub const EVENTS_MAP: &str = "FLOW_EVENTS";
/// Name of the per-CPU array of `u64` loss counters, indexed by the `COUNTER_*` constants.
pub const COUNTERS_MAP: &str = "FLOW_COUNTERS";
/// Name of the one-entry `ARRAY` of `u32` holding the current epoch (see [`FlowKey::epoch`]).
pub const EPOCH_MAP: &str = "FLOW_EPOCH";
/// Name of the one-entry `ARRAY` of [`ClockSample`] that [`CLOCK_PROGRAM`] writes.
pub const CLOCK_MAP: &str = "FLOW_CLOCK";
/// Name of the classifier that is never attached: user space test-runs it
/// (`BPF_PROG_TEST_RUN`) to read a [`ClockSample`].
pub const CLOCK_PROGRAM: &str = "flows_clock";

/// Counter: the flow map was full, so the packet went to the ring buffer as a [`FlowEvent`].
pub const COUNTER_MAP_FULL: u32 = 0;
/// Counter: the flow map was full and the ring buffer too; the packet is not accounted anywhere.
pub const COUNTER_RINGBUF_FULL: u32 = 1;
/// Counter: not IPv4 or IPv6 (ARP, LLDP, ...); not accounted.
pub const COUNTER_UNSUPPORTED: u32 = 2;
/// Counter: an IP packet too short for the header its fields announce; not accounted.
pub const COUNTER_TRUNCATED: u32 = 3;
/// Counter: the flow map refused an insert for a reason other than being full; not accounted.
pub const COUNTER_MAP_ERROR: u32 = 4;
/// Number of counters (the per-CPU array's size).
pub const COUNTERS: u32 = 5;

/// The identity of a flow: the key of the flow map. Aligned to 8 bytes so that the program
/// zeroes a fresh key with six 8-byte stores.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Source address, network byte order (IPv4 in bytes `0..4`).
    pub src_addr: [u8; 16],
    /// Destination address, network byte order (IPv4 in bytes `0..4`).
    pub dst_addr: [u8; 16],
    /// Interface index the packet was seen on.
    pub ifindex: u32,
    /// Source port for TCP and UDP, else 0.
    pub src_port: u16,
    /// Destination port for TCP and UDP, else 0.
    pub dst_port: u16,
    /// [`FAMILY_IPV4`] or [`FAMILY_IPV6`].
    pub family: u8,
    /// IP protocol number (after IPv6 extension headers).
    pub protocol: u8,
    /// ICMP or ICMPv6 type, else 0.
    pub icmp_type: u8,
    /// ICMP or ICMPv6 code, else 0.
    pub icmp_code: u8,
    /// [`DIRECTION_INGRESS`] or [`DIRECTION_EGRESS`].
    pub direction: u8,
    /// The epoch (0 or 1) the entry was counted in: the low bit of the `FLOW_EPOCH` array when
    /// the packet was seen. User space flips the epoch, waits an RCU grace period, and then
    /// drains the entries of the old epoch, which no program run can touch any more. That is
    /// what makes eviction exact: no packet lands in an entry between its read and its delete.
    pub epoch: u8,
    /// Explicit padding; always zero.
    pub _pad: [u8; 2],
}

/// What the flow map holds for each [`FlowKey`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowValue {
    /// Packets seen, as wire segments: a GSO/GRO packet counts as the segments it carries.
    pub packets: u64,
    /// Frame bytes seen (Ethernet header included, no FCS), as on the wire: a GSO/GRO packet
    /// of `n` segments counts `skb->len + (n - 1) × headers`, each segment's own headers.
    pub bytes: u64,
    /// `bpf_jiffies64()` (the kernel's tick count) at the first packet. Reading it costs one
    /// load, where a clock helper costs a call per packet; user space turns ticks into
    /// `CLOCK_MONOTONIC` with a [`ClockSample`] pair.
    pub first_seen_jiffies: u64,
    /// `bpf_jiffies64()` at the latest packet.
    pub last_seen_jiffies: u64,
    /// Union of the TCP flags seen (the 8 bits of byte 13 of the TCP header); 0 for non-TCP.
    /// A `u32`, room for an atomic OR; the program uses a plain `|=` (the BPF target has no
    /// atomic OR below `-mcpu=v3`), see docs/capture.md.
    pub tcp_flags: u32,
    /// Explicit padding; always zero.
    pub _pad: [u8; 4],
}

/// The kernel's tick count and `CLOCK_MONOTONIC` read together, by the [`CLOCK_PROGRAM`] into
/// entry 0 of the [`CLOCK_MAP`] each time user space test-runs it. Two of them, taken just
/// after two tick edges, give user space the tick's length and phase, from which it converts
/// the `*_jiffies` fields to `CLOCK_MONOTONIC` nanoseconds.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClockSample {
    /// `bpf_jiffies64()`.
    pub jiffies: u64,
    /// `bpf_ktime_get_ns()` (`CLOCK_MONOTONIC`), read right after.
    pub monotonic_ns: u64,
}

/// One packet the flow map had no room for, sent over the ring buffer instead.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowEvent {
    /// The packet's flow.
    pub key: FlowKey,
    /// `bpf_jiffies64()` when it was seen.
    pub jiffies: u64,
    /// Frame bytes, counted as for [`FlowValue::bytes`].
    pub bytes: u32,
    /// Segments (GSO) or 1.
    pub packets: u32,
    /// The packet's TCP flags; 0 for non-TCP.
    pub tcp_flags: u32,
    /// Explicit padding; always zero.
    pub _pad: [u8; 4],
}

const _: () = {
    assert!(size_of::<FlowKey>() == 48);
    assert!(align_of::<FlowKey>() == 8);
    assert!(offset_of!(FlowKey, ifindex) == 32);
    assert!(offset_of!(FlowKey, family) == 40);
    assert!(offset_of!(FlowKey, epoch) == 45);
    assert!(offset_of!(FlowKey, _pad) == 46);
    assert!(size_of::<FlowValue>() == 40);
    assert!(align_of::<FlowValue>() == 8);
    assert!(offset_of!(FlowValue, tcp_flags) == 32);
    assert!(size_of::<FlowEvent>() == 72);
    assert!(align_of::<FlowEvent>() == 8);
    assert!(offset_of!(FlowEvent, jiffies) == 48);
    assert!(size_of::<ClockSample>() == 16);
    assert!(align_of::<ClockSample>() == 8);
    assert!(offset_of!(FlowEvent, _pad) == 68);
};

#[cfg(feature = "user")]
mod user {
    use super::{ClockSample, FlowEvent, FlowKey, FlowValue};

    // SAFETY: `#[repr(C)]`, only integer and byte-array fields, every padding byte an explicit
    // field (checked by the size asserts above), so every bit pattern is a valid value.
    unsafe impl aya::Pod for FlowKey {}
    // SAFETY: as for `FlowKey`.
    unsafe impl aya::Pod for FlowValue {}
    // SAFETY: as for `FlowKey`.
    unsafe impl aya::Pod for FlowEvent {}
    // SAFETY: as for `FlowKey`.
    unsafe impl aya::Pod for ClockSample {}
}
