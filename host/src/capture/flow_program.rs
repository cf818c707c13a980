//! [`FlowProgram`]: the embedded `weir-flows` object, loaded, attached and drained.

use std::ffi::CString;
use std::os::fd::{AsRawFd as _, OwnedFd, RawFd};
use std::time::Duration;

use aya::maps::{Array, HashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::tc::SchedClassifierLinkId;
use aya::programs::{SchedClassifier, TcAttachType};
use aya::{Ebpf, EbpfLoader, TestRun as _, TestRunOptions};
use weir_ebpf_common::{
    CLOCK_MAP, CLOCK_PROGRAM, COUNTER_MAP_ERROR, COUNTER_MAP_FULL, COUNTER_RINGBUF_FULL,
    COUNTER_TRUNCATED, COUNTER_UNSUPPORTED, COUNTERS_MAP, ClockSample, EPOCH_MAP, EVENTS_MAP,
    FLOWS_MAP, FlowEvent, FlowKey, FlowValue,
};

use super::{CaptureError, TickClock};

/// The `weir-flows` eBPF object, built by `host/build.rs` (aya-build) from `ebpf/flows`.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/weir-flows"));

/// The two programs and the hooks they attach to.
const PROGRAMS: [(&str, TcAttachType); 2] = [
    ("flows_ingress", TcAttachType::Ingress),
    ("flows_egress", TcAttachType::Egress),
];

/// `membarrier(2)`'s `MEMBARRIER_CMD_GLOBAL`: returns after an RCU grace period.
const MEMBARRIER_CMD_GLOBAL: libc::c_long = 1;

/// Run-time statistics of one program (with `kernel.bpf_stats_enabled`, see
/// [`FlowProgram::enable_run_time_stats`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramStats {
    /// The program's name.
    pub name: &'static str,
    /// Times it ran.
    pub run_count: u64,
    /// Total time it ran.
    pub run_time: Duration,
    /// Instructions after the kernel's translation.
    pub instructions: Option<u32>,
    /// Instructions the verifier processed.
    pub verified_instructions: Option<u32>,
}

/// One configured interface and, while it exists, its links.
#[derive(Debug)]
struct Interface {
    name: String,
    /// The index the program is attached at, `None` while the interface is gone.
    ifindex: Option<u32>,
    links: Vec<(&'static str, SchedClassifierLinkId)>,
}

/// What [`FlowProgram::refresh_interfaces`] saw.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct InterfaceChanges {
    /// Indexes of interfaces that disappeared (or were replaced): their flows have ended.
    pub gone: Vec<u32>,
    /// Interfaces attached again.
    pub reattached: u64,
}

/// The loaded flows program: two TC classifiers, the flow map, the ring buffer for packets
/// the map has no room for, the loss counters and the epoch switch. Dropping it detaches every
/// link and frees the maps.
pub struct FlowProgram {
    // Field order matters for drop: the maps before the object that holds the links.
    flows: HashMap<MapData, FlowKey, FlowValue>,
    events: RingBuf<MapData>,
    counters: PerCpuArray<MapData, u64>,
    epoch_map: Array<MapData, u32>,
    epoch: u32,
    clock: TickClock,
    interfaces: Vec<Interface>,
    ebpf: Ebpf,
}

impl std::fmt::Debug for FlowProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowProgram")
            .field("epoch", &self.epoch)
            .field("clock", &self.clock)
            .field("interfaces", &self.interfaces)
            .finish_non_exhaustive()
    }
}

impl FlowProgram {
    /// Loads the object with a flow map of `map_entries` and a ring buffer of `ring_bytes`
    /// (a power of two, at least a page), has the verifier check the programs, and measures
    /// the kernel's tick ([`TickClock::calibrate`], a few ms). Nothing is attached yet.
    ///
    /// # Errors
    /// Bad sizes, no privileges, a verifier refusal, or a tick that could not be measured.
    pub fn load(map_entries: u32, ring_bytes: u32) -> Result<Self, CaptureError> {
        if map_entries == 0 {
            return Err(CaptureError::Config {
                setting: "map_entries",
                message: "must be at least 1".into(),
            });
        }
        // SAFETY: sysconf has no preconditions.
        let page = u32::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        if !ring_bytes.is_power_of_two() || ring_bytes < page {
            return Err(CaptureError::Config {
                setting: "ring_buffer",
                message: format!(
                    "{ring_bytes} bytes: must be a power of two and at least a page ({page} bytes)"
                ),
            });
        }
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(FLOWS_MAP, map_entries)
            .map_max_entries(EVENTS_MAP, ring_bytes)
            .load(OBJECT)
            .map_err(|cause| CaptureError::Load {
                cause: Box::new(cause),
            })?;
        for name in PROGRAMS
            .map(|(name, _)| name)
            .into_iter()
            .chain([CLOCK_PROGRAM])
        {
            classifier(&mut ebpf, name)?.load().map_err(|e| {
                CaptureError::program(
                    name,
                    "load (the verifier; needs root, or CAP_BPF, CAP_NET_ADMIN and \
                         CAP_PERFMON)",
                    e,
                )
            })?;
        }
        let mut take = |name: &'static str| {
            ebpf.take_map(name).ok_or(CaptureError::Config {
                setting: "object",
                message: format!("the eBPF object has no map {name}"),
            })
        };
        let (flows, events, counters, epoch_map, clock_map) = (
            take(FLOWS_MAP)?,
            take(EVENTS_MAP)?,
            take(COUNTERS_MAP)?,
            take(EPOCH_MAP)?,
            take(CLOCK_MAP)?,
        );
        let clock_map =
            Array::try_from(clock_map).map_err(|e| CaptureError::map(CLOCK_MAP, "open", e))?;
        let clock =
            TickClock::calibrate(|| clock_sample(&mut ebpf, &clock_map)).map_err(|cause| {
                CaptureError::Clock {
                    cause: Box::new(cause),
                }
            })?;
        tracing::debug!(tick_ns = clock.tick_ns(), "kernel tick measured");
        Ok(Self {
            flows: HashMap::try_from(flows).map_err(|e| CaptureError::map(FLOWS_MAP, "open", e))?,
            events: RingBuf::try_from(events)
                .map_err(|e| CaptureError::map(EVENTS_MAP, "open", e))?,
            counters: PerCpuArray::try_from(counters)
                .map_err(|e| CaptureError::map(COUNTERS_MAP, "open", e))?,
            epoch_map: Array::try_from(epoch_map)
                .map_err(|e| CaptureError::map(EPOCH_MAP, "open", e))?,
            epoch: 0,
            clock,
            interfaces: Vec::new(),
            ebpf,
        })
    }

    /// Attaches both programs (TCX on kernels ≥ 6.6) to the ingress and egress of `name`, an
    /// interface of the calling thread's network namespace. Returns its index.
    ///
    /// # Errors
    /// The interface does not exist, or attaching failed.
    pub fn attach(&mut self, name: &str) -> Result<u32, CaptureError> {
        let ifindex = interface_index(name).ok_or_else(|| CaptureError::NoInterface {
            interface: name.to_owned(),
        })?;
        let mut links = Vec::with_capacity(PROGRAMS.len());
        for (program, hook) in PROGRAMS {
            let attached = classifier(&mut self.ebpf, program)?.attach(name, hook);
            match attached {
                Ok(id) => links.push((program, id)),
                Err(e) => {
                    self.detach_links(&mut links);
                    return Err(CaptureError::program(
                        program,
                        "attach (needs root, or CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON)",
                        e,
                    ));
                }
            }
        }
        tracing::info!(
            interface = name,
            ifindex,
            "flow capture attached (ingress and egress)"
        );
        match self.interfaces.iter_mut().find(|i| i.name == name) {
            Some(i) => {
                i.ifindex = Some(ifindex);
                i.links = links;
            }
            None => self.interfaces.push(Interface {
                name: name.to_owned(),
                ifindex: Some(ifindex),
                links,
            }),
        }
        Ok(ifindex)
    }

    fn detach_links(&mut self, links: &mut Vec<(&'static str, SchedClassifierLinkId)>) {
        for (program, id) in links.drain(..) {
            if let Ok(p) = classifier(&mut self.ebpf, program) {
                // A link whose interface is gone is already detached by the kernel.
                if let Err(error) = p.detach(id) {
                    tracing::debug!(program, %error, "detaching a flow-capture link");
                }
            }
        }
    }

    /// The attached interfaces: name and index.
    #[must_use]
    pub fn interfaces(&self) -> Vec<(String, Option<u32>)> {
        self.interfaces
            .iter()
            .map(|i| (i.name.clone(), i.ifindex))
            .collect()
    }

    /// Looks at every configured interface: one that disappeared (or was replaced by another
    /// of the same name) is detached and reported in `gone`; one that came back is attached
    /// again.
    pub fn refresh_interfaces(&mut self) -> InterfaceChanges {
        let mut changes = InterfaceChanges::default();
        for i in 0..self.interfaces.len() {
            let name = self.interfaces[i].name.clone();
            let now = interface_index(&name);
            if let Some(old) = self.interfaces[i].ifindex
                && now != Some(old)
            {
                let mut links = std::mem::take(&mut self.interfaces[i].links);
                self.detach_links(&mut links);
                self.interfaces[i].ifindex = None;
                changes.gone.push(old);
                tracing::warn!(interface = %name, ifindex = old, "interface disappeared; \
                    its flows end, capture resumes when it is back");
            }
            if self.interfaces[i].ifindex.is_none() && now.is_some() {
                match self.attach(&name) {
                    Ok(_) => changes.reattached += 1,
                    Err(error) => {
                        tracing::warn!(interface = %name, %error, "re-attaching flow capture failed; retrying");
                    }
                }
            }
        }
        changes
    }

    /// Detaches every link (the maps stay readable).
    pub fn detach_all(&mut self) {
        let mut all: Vec<_> = self
            .interfaces
            .iter_mut()
            .flat_map(|i| {
                i.ifindex = None;
                std::mem::take(&mut i.links)
            })
            .collect();
        self.detach_links(&mut all);
    }

    /// Moves every flow counted so far out of the kernel map, exactly: flips the epoch that
    /// new packets are keyed under, waits an RCU grace period (every program run that could
    /// have read the old epoch has then finished), and reads and deletes the old epoch's
    /// entries, which nothing writes any more. Returns how many entries were drained.
    ///
    /// # Errors
    /// A map operation failed.
    pub fn drain(
        &mut self,
        mut each: impl FnMut(FlowKey, FlowValue),
    ) -> Result<usize, CaptureError> {
        let old = (self.epoch & 1) as u8;
        let next = self.epoch.wrapping_add(1);
        self.epoch_map
            .set(0, next, 0)
            .map_err(|e| CaptureError::map(EPOCH_MAP, "flip", e))?;
        self.epoch = next;
        grace_period();
        let mut keys = Vec::new();
        for key in self.flows.keys() {
            let key = key.map_err(|e| CaptureError::map(FLOWS_MAP, "iterate", e))?;
            if key.epoch == old {
                keys.push(key);
            }
        }
        for key in &keys {
            let value = self
                .flows
                .get(key, 0)
                .map_err(|e| CaptureError::map(FLOWS_MAP, "read", e))?;
            self.flows
                .remove(key)
                .map_err(|e| CaptureError::map(FLOWS_MAP, "delete", e))?;
            each(*key, value);
        }
        Ok(keys.len())
    }

    /// The conversion of the maps' tick counts (`*_jiffies`) to `CLOCK_MONOTONIC`.
    #[must_use]
    pub fn tick_clock(&self) -> TickClock {
        self.clock
    }

    /// Reads every ring-buffer event waiting (packets the map had no room for).
    pub fn read_events(&mut self, mut each: impl FnMut(&FlowEvent)) -> u64 {
        let mut n = 0;
        while let Some(item) = self.events.next() {
            if item.len() >= size_of::<FlowEvent>() {
                // SAFETY: the item holds at least `size_of::<FlowEvent>()` bytes, written by
                // the program as a `FlowEvent`; every bit pattern is a valid `FlowEvent` (plain
                // integers, explicit padding), and `read_unaligned` needs no alignment.
                let event = unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<FlowEvent>()) };
                each(&event);
                n += 1;
            }
        }
        n
    }

    /// The ring buffer's file descriptor, readable when events wait.
    #[must_use]
    pub fn events_fd(&self) -> RawFd {
        self.events.as_raw_fd()
    }

    /// The kernel's counters summed over CPUs: `[map_full, ringbuf_full, unsupported,
    /// truncated, map_error]`.
    ///
    /// # Errors
    /// Reading the per-CPU array failed.
    pub fn kernel_counters(&self) -> Result<[u64; 5], CaptureError> {
        let mut out = [0; 5];
        for (slot, index) in out.iter_mut().zip([
            COUNTER_MAP_FULL,
            COUNTER_RINGBUF_FULL,
            COUNTER_UNSUPPORTED,
            COUNTER_TRUNCATED,
            COUNTER_MAP_ERROR,
        ]) {
            let values = self
                .counters
                .get(&index, 0)
                .map_err(|e| CaptureError::map(COUNTERS_MAP, "read", e))?;
            *slot = values.iter().sum();
        }
        Ok(out)
    }

    /// Turns on the kernel's run-time statistics for as long as the returned descriptor is
    /// open (for benchmarks: it costs two clock reads per run).
    ///
    /// # Errors
    /// The kernel refused (needs `CAP_SYS_ADMIN`).
    pub fn enable_run_time_stats() -> std::io::Result<OwnedFd> {
        aya::sys::enable_stats(aya::sys::Stats::RunTime).map_err(|e| e.io_error)
    }

    /// Both programs' statistics.
    ///
    /// # Errors
    /// Reading a program's info failed.
    pub fn program_stats(&mut self) -> Result<Vec<ProgramStats>, CaptureError> {
        let mut out = Vec::new();
        for (name, _) in PROGRAMS {
            let info = classifier(&mut self.ebpf, name)?
                .info()
                .map_err(|e| CaptureError::program(name, "info", e))?;
            out.push(ProgramStats {
                name,
                run_count: info.run_count(),
                run_time: info.run_time(),
                instructions: info.size_translated().map(|b| b / 8),
                verified_instructions: info.verified_instruction_count(),
            });
        }
        Ok(out)
    }
}

/// Test-runs [`CLOCK_PROGRAM`] (on a zeroed frame, which it ignores) and reads the sample it
/// wrote.
fn clock_sample(
    ebpf: &mut Ebpf,
    map: &Array<MapData, ClockSample>,
) -> Result<ClockSample, CaptureError> {
    let frame = [0_u8; 64];
    classifier(ebpf, CLOCK_PROGRAM)?
        .test_run(TestRunOptions {
            data_in: Some(&frame),
            ..TestRunOptions::default()
        })
        .map_err(|e| CaptureError::program(CLOCK_PROGRAM, "test run", e))?;
    map.get(&0, 0)
        .map_err(|e| CaptureError::map(CLOCK_MAP, "read", e))
}

fn classifier<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut SchedClassifier, CaptureError> {
    let program = ebpf.program_mut(name).ok_or(CaptureError::Config {
        setting: "object",
        message: format!("the eBPF object has no program {name}"),
    })?;
    program
        .try_into()
        .map_err(|e| CaptureError::program(name, "open", e))
}

/// The index of interface `name` in the calling thread's network namespace.
#[must_use]
pub fn interface_index(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: `c` is a NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (index != 0).then_some(index)
}

/// Waits until every BPF program run that started before the call has finished:
/// `membarrier(MEMBARRIER_CMD_GLOBAL)` is an RCU grace period, and TC programs run inside RCU
/// read-side sections. Where that command is refused (`nohz_full` kernels), sleeps 20 ms,
/// far longer than a program run.
fn grace_period() {
    // SAFETY: membarrier takes no pointers; an unsupported command only returns an error.
    let rc = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) };
    if rc != 0 {
        std::thread::sleep(Duration::from_millis(20));
    }
}
