//! Flow records → Arrow: [`flow_schema`] and [`FlowBatchBuilder`].
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `ts` | timestamp[us, UTC] | first packet (wall clock) |
//! | `ts_end` | timestamp[us, UTC] | last packet |
//! | `src_addr`, `dst_addr` | utf8 | `10.0.0.1`, `fd00::1` (RFC 5952 text) |
//! | `src_port`, `dst_port` | uint16 | TCP and UDP; 0 for other protocols |
//! | `proto` | uint8 | IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6) |
//! | `icmp_type`, `icmp_code` | uint8, nullable | ICMP and ICMPv6 only |
//! | `ip_version` | uint8 | 4 or 6 |
//! | `packets` | uint64 | wire packets (GSO/GRO segments counted one by one) |
//! | `bytes` | uint64 | wire frame bytes: Ethernet header on, FCS off |
//! | `tcp_flags` | uint8 | union of the TCP flags (FIN 0x01 … CWR 0x80); 0 if not TCP |
//! | `ifindex` | uint32 | interface index in the capturing network namespace |
//! | `interface` | utf8 | its name |
//! | `direction` | utf8 | `ingress` or `egress` |
//! | `end_reason` | utf8 | `idle_timeout`, `active_timeout`, `interface_gone`, `shutdown` |

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, OnceLock};

use arrow_array::builder::{StringBuilder, UInt8Builder};
use arrow_array::{
    ArrayRef, RecordBatch, TimestampMicrosecondArray, UInt8Array, UInt16Array, UInt32Array,
    UInt64Array,
};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};
use weir_ebpf_common::{DIRECTION_INGRESS, FAMILY_IPV4, FlowKey, PROTO_ICMP, PROTO_ICMPV6};

use super::FlowRecord;

/// The schema of the `ebpf_flows` source (see the module docs).
#[must_use]
pub fn flow_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
            Arc::new(Schema::new(vec![
                Field::new("ts", ts.clone(), false),
                Field::new("ts_end", ts, false),
                Field::new("src_addr", DataType::Utf8, false),
                Field::new("dst_addr", DataType::Utf8, false),
                Field::new("src_port", DataType::UInt16, false),
                Field::new("dst_port", DataType::UInt16, false),
                Field::new("proto", DataType::UInt8, false),
                Field::new("icmp_type", DataType::UInt8, true),
                Field::new("icmp_code", DataType::UInt8, true),
                Field::new("ip_version", DataType::UInt8, false),
                Field::new("packets", DataType::UInt64, false),
                Field::new("bytes", DataType::UInt64, false),
                Field::new("tcp_flags", DataType::UInt8, false),
                Field::new("ifindex", DataType::UInt32, false),
                Field::new("interface", DataType::Utf8, false),
                Field::new("direction", DataType::Utf8, false),
                Field::new("end_reason", DataType::Utf8, false),
            ]))
        })
        .clone()
}

/// A flow key's address as an [`IpAddr`].
#[must_use]
pub fn address(key: &FlowKey, bytes: &[u8; 16]) -> IpAddr {
    if key.family == FAMILY_IPV4 {
        IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(*bytes))
    }
}

/// Converts `CLOCK_MONOTONIC` nanoseconds (the kernel's `bpf_ktime_get_ns`) to wall-clock
/// microseconds since the Unix epoch.
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    offset_ns: i128,
}

impl WallClock {
    /// The offset between the two clocks now.
    #[must_use]
    pub fn now() -> Self {
        let read = |clock| {
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: `ts` is a valid, writable timespec.
            unsafe { libc::clock_gettime(clock, &raw mut ts) };
            i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
        };
        let mono = read(libc::CLOCK_MONOTONIC);
        let real = read(libc::CLOCK_REALTIME);
        Self {
            offset_ns: real - mono,
        }
    }

    /// `CLOCK_MONOTONIC` now, in nanoseconds.
    #[must_use]
    pub fn monotonic_ns() -> u64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
        u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000
            + u64::try_from(ts.tv_nsec).unwrap_or(0)
    }

    /// Wall-clock microseconds for a monotonic timestamp.
    #[must_use]
    pub fn micros(&self, monotonic_ns: u64) -> i64 {
        i64::try_from((i128::from(monotonic_ns) + self.offset_ns) / 1000).unwrap_or(i64::MAX)
    }
}

/// Builds [`flow_schema`] batches from [`FlowRecord`]s.
#[derive(Debug, Default)]
pub struct FlowBatchBuilder {
    names: HashMap<u32, Arc<str>>,
}

impl FlowBatchBuilder {
    /// A builder that knows no interface names yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Remembers the name of `ifindex` (records of a vanished interface keep its name).
    pub fn name_interface(&mut self, ifindex: u32, name: &str) {
        self.names.insert(ifindex, name.into());
    }

    /// One batch holding `records`.
    ///
    /// # Errors
    /// Never for the columns built here; the `RecordBatch` constructor's check.
    pub fn build(
        &self,
        records: &[FlowRecord],
        clock: &WallClock,
    ) -> Result<RecordBatch, ArrowError> {
        let n = records.len();
        let ts = |f: fn(&FlowRecord) -> u64| -> ArrayRef {
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    records.iter().map(|r| clock.micros(f(r))),
                )
                .with_timezone("UTC"),
            )
        };
        let mut src = StringBuilder::with_capacity(n, n * 16);
        let mut dst = StringBuilder::with_capacity(n, n * 16);
        let mut icmp_type = UInt8Builder::with_capacity(n);
        let mut icmp_code = UInt8Builder::with_capacity(n);
        let mut interface = StringBuilder::with_capacity(n, n * 8);
        let mut direction = StringBuilder::with_capacity(n, n * 7);
        let mut reason = StringBuilder::with_capacity(n, n * 12);
        for r in records {
            let k = &r.key;
            src.append_value(address(k, &k.src_addr).to_string());
            dst.append_value(address(k, &k.dst_addr).to_string());
            let icmp = matches!(k.protocol, PROTO_ICMP | PROTO_ICMPV6);
            icmp_type.append_option(icmp.then_some(k.icmp_type));
            icmp_code.append_option(icmp.then_some(k.icmp_code));
            match self.names.get(&k.ifindex) {
                Some(name) => interface.append_value(name),
                None => interface.append_value(format!("if{}", k.ifindex)),
            }
            direction.append_value(if k.direction == DIRECTION_INGRESS {
                "ingress"
            } else {
                "egress"
            });
            reason.append_value(r.reason.as_str());
        }
        let u64s = |f: fn(&FlowRecord) -> u64| -> ArrayRef {
            Arc::new(UInt64Array::from_iter_values(records.iter().map(f)))
        };
        let columns: Vec<ArrayRef> = vec![
            ts(|r| r.totals.first_ns),
            ts(|r| r.totals.last_ns),
            Arc::new(src.finish()),
            Arc::new(dst.finish()),
            Arc::new(UInt16Array::from_iter_values(
                records.iter().map(|r| r.key.src_port),
            )),
            Arc::new(UInt16Array::from_iter_values(
                records.iter().map(|r| r.key.dst_port),
            )),
            Arc::new(UInt8Array::from_iter_values(
                records.iter().map(|r| r.key.protocol),
            )),
            Arc::new(icmp_type.finish()),
            Arc::new(icmp_code.finish()),
            Arc::new(UInt8Array::from_iter_values(
                records
                    .iter()
                    .map(|r| if r.key.family == FAMILY_IPV4 { 4 } else { 6 }),
            )),
            u64s(|r| r.totals.packets),
            u64s(|r| r.totals.bytes),
            Arc::new(UInt8Array::from_iter_values(
                records.iter().map(|r| r.totals.tcp_flags),
            )),
            Arc::new(UInt32Array::from_iter_values(
                records.iter().map(|r| r.key.ifindex),
            )),
            Arc::new(interface.finish()),
            Arc::new(direction.finish()),
            Arc::new(reason.finish()),
        ];
        RecordBatch::try_new(flow_schema(), columns)
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::cast::AsArray as _;
    use arrow_array::types::{TimestampMicrosecondType, UInt8Type, UInt64Type};
    use weir_ebpf_common::{DIRECTION_EGRESS, FAMILY_IPV6, PROTO_UDP};

    use super::*;
    use crate::capture::{EndReason, FlowTotals};

    #[test]
    fn records_become_rows() {
        let mut v4 = FlowKey {
            family: FAMILY_IPV4,
            protocol: PROTO_ICMP,
            icmp_type: 8,
            ifindex: 2,
            ..FlowKey::default()
        };
        v4.src_addr[..4].copy_from_slice(&[10, 77, 0, 2]);
        v4.dst_addr[..4].copy_from_slice(&[10, 77, 0, 1]);
        let v6 = FlowKey {
            family: FAMILY_IPV6,
            protocol: PROTO_UDP,
            src_addr: "fd00:77::2".parse::<Ipv6Addr>().unwrap().octets(),
            dst_addr: "fd00:77::1".parse::<Ipv6Addr>().unwrap().octets(),
            src_port: 5000,
            dst_port: 53,
            ifindex: 9,
            direction: DIRECTION_EGRESS,
            ..FlowKey::default()
        };
        let totals = FlowTotals {
            packets: 3,
            bytes: 294,
            first_ns: 1_000_000,
            last_ns: 3_000_000,
            tcp_flags: 0,
        };
        let records = [
            FlowRecord {
                key: v4,
                totals,
                reason: EndReason::IdleTimeout,
            },
            FlowRecord {
                key: v6,
                totals,
                reason: EndReason::Shutdown,
            },
        ];
        let mut b = FlowBatchBuilder::new();
        b.name_interface(2, "va");
        let clock = WallClock {
            offset_ns: 1_700_000_000_000_000_000,
        };
        let batch = b.build(&records, &clock).unwrap();
        assert_eq!(batch.schema(), flow_schema());
        let text = |c: &str| -> Vec<String> {
            batch
                .column_by_name(c)
                .unwrap()
                .as_string::<i32>()
                .iter()
                .map(|v| v.unwrap().to_owned())
                .collect()
        };
        assert_eq!(text("src_addr"), ["10.77.0.2", "fd00:77::2"]);
        assert_eq!(text("dst_addr"), ["10.77.0.1", "fd00:77::1"]);
        assert_eq!(text("interface"), ["va", "if9"]);
        assert_eq!(text("direction"), ["ingress", "egress"]);
        assert_eq!(text("end_reason"), ["idle_timeout", "shutdown"]);
        let icmp = batch
            .column_by_name("icmp_type")
            .unwrap()
            .as_primitive::<UInt8Type>();
        assert_eq!(icmp.iter().collect::<Vec<_>>(), [Some(8), None]);
        let version = batch
            .column_by_name("ip_version")
            .unwrap()
            .as_primitive::<UInt8Type>();
        assert_eq!(version.values(), &[4, 6]);
        let bytes = batch
            .column_by_name("bytes")
            .unwrap()
            .as_primitive::<UInt64Type>();
        assert_eq!(bytes.values(), &[294, 294]);
        let ts = batch
            .column_by_name("ts_end")
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>();
        assert_eq!(ts.value(0), 1_700_000_000_000_000 + 3_000);
    }
}
