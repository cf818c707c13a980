//! [`CaptureCounters`].

/// What the capture did, including every path where data could be lost. Shown in the run
/// summary and by `weir capture`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CaptureCounters {
    /// Flow records emitted.
    pub flows: u64,
    /// Packets counted (in emitted records).
    pub packets: u64,
    /// Bytes counted (in emitted records).
    pub bytes: u64,
    /// Packets the flow map had no room for, sent as ring-buffer events instead (not a loss:
    /// they are in the records).
    pub map_full: u64,
    /// Ring-buffer events received (equals `map_full` once drained).
    pub ring_events: u64,
    /// Packets lost: the map was full and the ring buffer too.
    pub ringbuf_full: u64,
    /// Frames that are not IPv4 or IPv6 (ARP, LLDP, ...): not counted in any flow.
    pub unsupported: u64,
    /// IP packets too short for the headers they announce: not counted in any flow.
    pub truncated: u64,
    /// Packets lost because the map refused an insert for another reason.
    pub map_error: u64,
    /// Times an interface disappeared (its flows ended with `interface_gone`).
    pub interface_lost: u64,
    /// Times an interface came back and the program was attached again.
    pub interface_reattached: u64,
}

impl CaptureCounters {
    /// Packets that reached the program but are in no flow record: lost or unsupported.
    #[must_use]
    pub fn lost_packets(&self) -> u64 {
        self.ringbuf_full + self.map_error
    }
}

impl std::fmt::Display for CaptureCounters {
    /// One line: `flows 12, packets 40, bytes 4.1 kB; map full 0 (ring events 0), ring
    /// buffer full 0, map errors 0, unsupported 2, truncated 0`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "flows {}, packets {}, bytes {}; map full {} (ring events {}), lost: ring buffer \
             full {}, map errors {}; not IP {}, truncated {}",
            self.flows,
            self.packets,
            self.bytes,
            self.map_full,
            self.ring_events,
            self.ringbuf_full,
            self.map_error,
            self.unsupported,
            self.truncated
        )?;
        if self.interface_lost + self.interface_reattached > 0 {
            write!(
                f,
                "; interfaces lost {}, re-attached {}",
                self.interface_lost, self.interface_reattached
            )?;
        }
        Ok(())
    }
}
