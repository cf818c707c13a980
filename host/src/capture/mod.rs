//! Kernel flow capture (DESIGN.md section 5): the `ebpf/flows` TC program, attached as TCX on
//! the ingress and egress of each configured interface, counts packets and bytes per flow in
//! one `HASH` map; user space drains it exactly, ends flows on idle and active timeouts, and
//! turns them into Arrow batches ([`flow_schema`]).
//!
//! * [`FlowProgram`]: the loaded program, its maps and its links (load, attach, re-attach
//!   when an interface comes back, exact drain, loss counters).
//! * [`FlowTable`]: flows being accumulated in user space, and when each one ends.
//! * [`FlowCapture`]: both together, driven by a poll loop; what the `ebpf_flows` source and
//!   `weir capture` run.
//! * [`flow_batch`]: flow records → Arrow.
//! * [`TickClock`]: the program stamps packets with the kernel's tick count; this converts
//!   it to `CLOCK_MONOTONIC`.
//!
//! **Counting convention.** `bytes` are frame bytes as the wire carries them: the Ethernet
//! header and everything after it, without the FCS. A packet merged by GSO (egress) or GRO
//! (ingress) counts as the segments it carries, each with its own headers, so the counts are
//! the same whether offloads are on or off. See docs/capture.md.

mod capture_counters;
mod error;
pub mod flow_batch;
mod flow_capture;
mod flow_program;
mod flow_table;
pub mod netns;
mod tick_clock;

pub use capture_counters::CaptureCounters;
pub use error::CaptureError;
pub use flow_batch::{FlowBatchBuilder, flow_schema};
pub use flow_capture::{CaptureOptions, FlowCapture};
pub use flow_program::{FlowProgram, ProgramStats};
pub use flow_table::{EndReason, FlowRecord, FlowTable, FlowTotals};
pub use netns::{NetnsError, in_netns};
pub use tick_clock::{TickClock, TickClockError};
