//! [`FlowTable`]: flows accumulated in user space from the kernel map's drains and the ring
//! buffer's events, and the rules that end them.

use std::collections::HashMap;
use std::time::Duration;

use weir_ebpf_common::FlowKey;

/// Why a flow record ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// No packet for `idle_timeout`.
    IdleTimeout,
    /// The flow lasted `active_timeout`; later packets start a new record.
    ActiveTimeout,
    /// The interface the flow was seen on disappeared.
    InterfaceGone,
    /// The capture stopped.
    Shutdown,
}

impl EndReason {
    /// The text in the `end_reason` column.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::IdleTimeout => "idle_timeout",
            Self::ActiveTimeout => "active_timeout",
            Self::InterfaceGone => "interface_gone",
            Self::Shutdown => "shutdown",
        }
    }
}

/// A flow's totals. Times are `CLOCK_MONOTONIC` nanoseconds (`bpf_ktime_get_ns`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowTotals {
    /// Wire packets.
    pub packets: u64,
    /// Wire frame bytes.
    pub bytes: u64,
    /// First packet.
    pub first_ns: u64,
    /// Latest packet.
    pub last_ns: u64,
    /// Union of the TCP flags.
    pub tcp_flags: u8,
}

impl FlowTotals {
    fn merge(&mut self, other: &Self) {
        if self.packets == 0 {
            *self = *other;
            return;
        }
        self.packets += other.packets;
        self.bytes += other.bytes;
        self.first_ns = self.first_ns.min(other.first_ns);
        self.last_ns = self.last_ns.max(other.last_ns);
        self.tcp_flags |= other.tcp_flags;
    }
}

/// An ended flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowRecord {
    /// Its key (with `epoch` zeroed).
    pub key: FlowKey,
    /// Its totals.
    pub totals: FlowTotals,
    /// Why it ended.
    pub reason: EndReason,
}

/// Flows being accumulated, keyed by [`FlowKey`] without its epoch.
#[derive(Debug)]
pub struct FlowTable {
    flows: HashMap<FlowKey, FlowTotals>,
    idle_timeout_ns: u64,
    active_timeout_ns: u64,
}

impl FlowTable {
    /// An empty table with these timeouts.
    #[must_use]
    pub fn new(idle_timeout: Duration, active_timeout: Duration) -> Self {
        let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Self {
            flows: HashMap::new(),
            idle_timeout_ns: ns(idle_timeout),
            active_timeout_ns: ns(active_timeout),
        }
    }

    /// Flows currently open.
    #[must_use]
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// Whether no flow is open.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// The open flows.
    pub fn iter(&self) -> impl Iterator<Item = (&FlowKey, &FlowTotals)> {
        self.flows.iter()
    }

    /// Adds counts for `key` (its epoch is ignored).
    pub fn add(&mut self, mut key: FlowKey, totals: &FlowTotals) {
        key.epoch = 0;
        self.flows.entry(key).or_default().merge(totals);
    }

    /// Ends the flows whose last packet is `idle_timeout` old or whose first packet is
    /// `active_timeout` old at `now_ns`, and appends them to `out`.
    pub fn expire(&mut self, now_ns: u64, out: &mut Vec<FlowRecord>) {
        let (idle, active) = (self.idle_timeout_ns, self.active_timeout_ns);
        self.end_where(out, |_, totals| {
            if now_ns.saturating_sub(totals.last_ns) >= idle {
                Some(EndReason::IdleTimeout)
            } else if now_ns.saturating_sub(totals.first_ns) >= active {
                Some(EndReason::ActiveTimeout)
            } else {
                None
            }
        });
    }

    /// Ends every flow seen on `ifindex` with `reason`.
    pub fn end_interface(&mut self, ifindex: u32, reason: EndReason, out: &mut Vec<FlowRecord>) {
        self.end_where(out, |key, _| (key.ifindex == ifindex).then_some(reason));
    }

    /// Moves every flow `ends` gives a reason for into `out`.
    fn end_where(
        &mut self,
        out: &mut Vec<FlowRecord>,
        ends: impl Fn(&FlowKey, &FlowTotals) -> Option<EndReason>,
    ) {
        self.flows.retain(|key, totals| match ends(key, totals) {
            Some(reason) => {
                out.push(FlowRecord {
                    key: *key,
                    totals: *totals,
                    reason,
                });
                false
            }
            None => true,
        });
    }

    /// Ends every flow with `reason`.
    pub fn end_all(&mut self, reason: EndReason, out: &mut Vec<FlowRecord>) {
        out.extend(self.flows.drain().map(|(key, totals)| FlowRecord {
            key,
            totals,
            reason,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: u16, epoch: u8) -> FlowKey {
        FlowKey {
            src_port: port,
            ifindex: 2,
            epoch,
            ..FlowKey::default()
        }
    }

    fn totals(packets: u64, first: u64, last: u64, flags: u8) -> FlowTotals {
        FlowTotals {
            packets,
            bytes: packets * 100,
            first_ns: first,
            last_ns: last,
            tcp_flags: flags,
        }
    }

    #[test]
    fn epochs_merge_into_one_flow() {
        let mut t = FlowTable::new(Duration::from_secs(10), Duration::from_secs(60));
        t.add(key(1, 0), &totals(3, 100, 200, 0x02));
        t.add(key(1, 1), &totals(2, 300, 400, 0x10));
        assert_eq!(t.len(), 1);
        let mut out = Vec::new();
        t.end_all(EndReason::Shutdown, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].totals,
            FlowTotals {
                packets: 5,
                bytes: 500,
                first_ns: 100,
                last_ns: 400,
                tcp_flags: 0x12
            }
        );
        assert_eq!(out[0].key.epoch, 0);
        assert_eq!(out[0].reason, EndReason::Shutdown);
    }

    #[test]
    fn idle_and_active_timeouts() {
        let s = 1_000_000_000;
        let mut t = FlowTable::new(Duration::from_secs(2), Duration::from_secs(10));
        t.add(key(1, 0), &totals(1, s, s, 0)); // idle since 1 s
        t.add(key(2, 0), &totals(1, s, 11 * s, 0)); // busy since 1 s
        t.add(key(3, 0), &totals(1, 5 * s, 11 * s, 0)); // young and busy
        let mut out = Vec::new();
        t.expire(2 * s, &mut out);
        assert!(out.is_empty(), "nothing is 2 s idle or 10 s old yet");
        t.expire(11 * s, &mut out);
        out.sort_by_key(|r| r.key.src_port);
        let got: Vec<_> = out.iter().map(|r| (r.key.src_port, r.reason)).collect();
        assert_eq!(
            got,
            [(1, EndReason::IdleTimeout), (2, EndReason::ActiveTimeout)]
        );
        assert_eq!(t.len(), 1);
        out.clear();
        t.end_interface(3, EndReason::InterfaceGone, &mut out);
        assert!(out.is_empty());
        t.end_interface(2, EndReason::InterfaceGone, &mut out);
        assert_eq!(out.len(), 1);
        assert!(t.is_empty());
    }
}
