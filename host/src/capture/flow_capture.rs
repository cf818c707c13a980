//! [`FlowCapture`]: a [`FlowProgram`] and a [`FlowTable`] driven by a poll loop.

use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_schema::ArrowError;
use weir_ebpf_common::{FlowKey, FlowValue};

use super::flow_batch::WallClock;
use super::{
    CaptureCounters, CaptureError, EndReason, FlowBatchBuilder, FlowProgram, FlowRecord, FlowTable,
    FlowTotals,
};

/// How to capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureOptions {
    /// Interfaces of the current network namespace, attached ingress and egress.
    pub interfaces: Vec<String>,
    /// Entries of the kernel flow map (both epochs share it).
    pub map_entries: u32,
    /// Bytes of the ring buffer for packets the map has no room for (power of two).
    pub ring_buffer_bytes: u32,
    /// A flow ends after this long without a packet.
    pub idle_timeout: Duration,
    /// A flow that lasts this long is ended and a new record starts.
    pub active_timeout: Duration,
    /// How often the kernel map is drained and the timeouts applied.
    pub drain_interval: Duration,
}

impl Default for CaptureOptions {
    fn default() -> Self {
        Self {
            interfaces: Vec::new(),
            map_entries: 16_384,
            ring_buffer_bytes: 1 << 20,
            idle_timeout: Duration::from_secs(15),
            active_timeout: Duration::from_secs(60),
            drain_interval: Duration::from_secs(1),
        }
    }
}

impl CaptureOptions {
    /// Checks the settings against each other.
    ///
    /// # Errors
    /// A [`CaptureError::Config`] naming the setting.
    pub fn validate(&self) -> Result<(), CaptureError> {
        let bad = |setting, message: &str| {
            Err(CaptureError::Config {
                setting,
                message: message.to_owned(),
            })
        };
        if self.interfaces.is_empty() {
            return bad("interfaces", "name at least one interface");
        }
        if self.drain_interval.is_zero() {
            return bad("drain_interval", "must be more than zero");
        }
        if self.idle_timeout < self.drain_interval {
            return bad("idle_timeout", "must be at least drain_interval");
        }
        if self.active_timeout < self.idle_timeout {
            return bad("active_timeout", "must be at least idle_timeout");
        }
        Ok(())
    }
}

/// Flow capture on the configured interfaces: attach, then [`poll`](Self::poll) for ended
/// flows, then [`finish`](Self::finish).
#[derive(Debug)]
pub struct FlowCapture {
    program: FlowProgram,
    table: FlowTable,
    batches: FlowBatchBuilder,
    counters: CaptureCounters,
    drain_interval: Duration,
    next_drain: Instant,
}

impl FlowCapture {
    /// Loads the program and attaches it to every interface.
    ///
    /// # Errors
    /// Bad options, an interface that does not exist, no privileges, a verifier refusal.
    pub fn open(options: &CaptureOptions) -> Result<Self, CaptureError> {
        options.validate()?;
        let mut program = FlowProgram::load(options.map_entries, options.ring_buffer_bytes)?;
        let mut batches = FlowBatchBuilder::new();
        for name in &options.interfaces {
            let ifindex = program.attach(name)?;
            batches.name_interface(ifindex, name);
        }
        Ok(Self {
            program,
            table: FlowTable::new(options.idle_timeout, options.active_timeout),
            batches,
            counters: CaptureCounters::default(),
            drain_interval: options.drain_interval,
            next_drain: Instant::now() + options.drain_interval,
        })
    }

    /// The configured interfaces and their current indexes (`None` while one is gone).
    #[must_use]
    pub fn interfaces(&self) -> Vec<(String, Option<u32>)> {
        self.program.interfaces()
    }

    /// Waits at most `max_wait`, taking ring-buffer events as they come. When the drain
    /// interval has passed, drains the kernel map, follows interfaces that went or came back,
    /// and returns the flows that ended (idle, active, interface gone).
    ///
    /// # Errors
    /// A map operation or the wait failed.
    pub fn poll(&mut self, max_wait: Duration) -> Result<Vec<FlowRecord>, CaptureError> {
        let deadline = Instant::now() + max_wait;
        loop {
            self.take_events();
            let now = Instant::now();
            if now >= self.next_drain {
                break;
            }
            if now >= deadline {
                return Ok(Vec::new());
            }
            self.wait_for_events(deadline.min(self.next_drain) - now)?;
        }
        self.next_drain = Instant::now() + self.drain_interval;
        let mut out = Vec::new();
        self.drain()?;
        let changes = self.program.refresh_interfaces();
        for ifindex in &changes.gone {
            self.table
                .end_interface(*ifindex, EndReason::InterfaceGone, &mut out);
        }
        self.counters.interface_lost += changes.gone.len() as u64;
        self.counters.interface_reattached += changes.reattached;
        if changes.reattached > 0 {
            for (name, ifindex) in self.program.interfaces() {
                if let Some(ifindex) = ifindex {
                    self.batches.name_interface(ifindex, &name);
                }
            }
        }
        self.table.expire(WallClock::monotonic_ns(), &mut out);
        self.count(&out);
        Ok(out)
    }

    /// The flows not ended yet, with their totals so far (as of the last drain).
    pub fn open_flows(&self) -> impl Iterator<Item = (&FlowKey, &FlowTotals)> {
        self.table.iter()
    }

    /// The counters, with the kernel's read now.
    ///
    /// # Errors
    /// Reading the kernel's counters failed.
    pub fn counters(&mut self) -> Result<CaptureCounters, CaptureError> {
        let [map_full, ringbuf_full, unsupported, truncated, map_error] =
            self.program.kernel_counters()?;
        self.counters.map_full = map_full;
        self.counters.ringbuf_full = ringbuf_full;
        self.counters.unsupported = unsupported;
        self.counters.truncated = truncated;
        self.counters.map_error = map_error;
        Ok(self.counters)
    }

    /// `records` as one Arrow batch of [`super::flow_schema`].
    ///
    /// # Errors
    /// As [`FlowBatchBuilder::build`].
    pub fn batch(&self, records: &[FlowRecord]) -> Result<RecordBatch, ArrowError> {
        self.batches.build(records, &WallClock::now())
    }

    /// Detaches from every interface, drains what was counted, and ends every flow
    /// (`shutdown`). Returns those records and the final counters. Call it once, last
    /// ([`batch`](Self::batch) still works afterwards).
    ///
    /// # Errors
    /// A map operation failed.
    pub fn finish(&mut self) -> Result<(Vec<FlowRecord>, CaptureCounters), CaptureError> {
        self.program.detach_all();
        self.drain()?;
        let mut out = Vec::new();
        self.table.end_all(EndReason::Shutdown, &mut out);
        self.count(&out);
        let counters = self.counters()?;
        tracing::info!(%counters, "flow capture detached");
        Ok((out, counters))
    }

    /// Moves the kernel map's flows and the waiting events into the table.
    fn drain(&mut self) -> Result<(), CaptureError> {
        let table = &mut self.table;
        let clock = self.program.tick_clock();
        self.program.drain(|key, value: FlowValue| {
            table.add(
                key,
                &FlowTotals {
                    packets: value.packets,
                    bytes: value.bytes,
                    first_ns: clock.monotonic_ns(value.first_seen_jiffies),
                    last_ns: clock.monotonic_ns(value.last_seen_jiffies),
                    tcp_flags: value.tcp_flags as u8,
                },
            );
        })?;
        // Events the program sent before the grace period ended are in the ring by now.
        self.take_events();
        Ok(())
    }

    fn take_events(&mut self) {
        let table = &mut self.table;
        let clock = self.program.tick_clock();
        let n = self.program.read_events(|event| {
            let at = clock.monotonic_ns(event.jiffies);
            table.add(
                event.key,
                &FlowTotals {
                    packets: u64::from(event.packets),
                    bytes: u64::from(event.bytes),
                    first_ns: at,
                    last_ns: at,
                    tcp_flags: event.tcp_flags as u8,
                },
            );
        });
        self.counters.ring_events += n;
    }

    fn count(&mut self, records: &[FlowRecord]) {
        self.counters.flows += records.len() as u64;
        for r in records {
            self.counters.packets += r.totals.packets;
            self.counters.bytes += r.totals.bytes;
        }
    }

    fn wait_for_events(&self, timeout: Duration) -> Result<(), CaptureError> {
        let mut fds = [libc::pollfd {
            fd: self.program.events_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        let ms = libc::c_int::try_from(timeout.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
        // SAFETY: `fds` is a valid array of one pollfd for the duration of the call.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), 1, ms) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(CaptureError::Poll { cause: e });
            }
        }
        Ok(())
    }
}
