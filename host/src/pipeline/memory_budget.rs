//! [`MemoryBudget`]: one device-wide cap on what the pipeline holds in memory: the guests'
//! linear memories and the batches between the sources and the sinks. Past it, sources wait
//! before they hand over their next chunk; nothing is dropped.
//!
//! Batches are charged by [`MemoryTicket`]s: a source's chunk gets one when it is sent, the
//! batcher carries its chunks' tickets into the batch, and the chain hands them to the sinks
//! with the batch's output, so a ticket is released (on drop) when the last sink has taken
//! its rows. Guest memory is the chain's total after each batch.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio_util::sync::CancellationToken;

/// The budget. Cheap to share (`Arc`); every method is thread-safe.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: u64,
    queued: AtomicU64,
    guest: AtomicU64,
    peak: AtomicU64,
    pauses: AtomicU64,
    paused_ns: AtomicU64,
    lock: Mutex<()>,
    room: Condvar,
    notify: tokio::sync::Notify,
}

/// What the budget saw: for the run summary and the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct BudgetReport {
    /// The configured limit, bytes.
    pub limit: u64,
    /// Bytes of batches held now.
    pub queued: u64,
    /// Bytes of guest linear memory now.
    pub guest: u64,
    /// The most held at once (batches + guests), bytes.
    pub peak: u64,
    /// Times a source waited for room.
    pub pauses: u64,
    /// Time sources spent waiting, in all.
    pub paused_ms: u64,
}

/// Bytes charged to a [`MemoryBudget`] until dropped.
#[derive(Debug)]
pub struct MemoryTicket {
    budget: Arc<MemoryBudget>,
    bytes: u64,
}

impl Drop for MemoryTicket {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    #[must_use]
    pub fn new(limit: u64) -> Arc<Self> {
        Arc::new(Self {
            limit,
            queued: AtomicU64::new(0),
            guest: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            pauses: AtomicU64::new(0),
            paused_ns: AtomicU64::new(0),
            lock: Mutex::new(()),
            room: Condvar::new(),
            notify: tokio::sync::Notify::new(),
        })
    }

    /// The limit, bytes.
    #[must_use]
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes held now: batches and guest memory.
    #[must_use]
    pub fn used(&self) -> u64 {
        self.queued.load(Ordering::Acquire) + self.guest.load(Ordering::Acquire)
    }

    /// Whether a source may hand over a chunk now: under the limit, or nothing is queued at
    /// all (so the pipeline always makes progress, even when the guests alone are near the
    /// limit).
    #[must_use]
    pub fn has_room(&self) -> bool {
        self.used() < self.limit || self.queued.load(Ordering::Acquire) == 0
    }

    /// Charges `bytes` of batches until the ticket is dropped.
    pub fn charge(self: &Arc<Self>, bytes: u64) -> MemoryTicket {
        let queued = self.queued.fetch_add(bytes, Ordering::AcqRel) + bytes;
        self.peak.fetch_max(
            queued + self.guest.load(Ordering::Acquire),
            Ordering::Relaxed,
        );
        MemoryTicket {
            budget: Arc::clone(self),
            bytes,
        }
    }

    /// Sets the guests' linear memory in all (after each batch through the chain).
    pub fn set_guest_memory(&self, bytes: u64) {
        let before = self.guest.swap(bytes, Ordering::AcqRel);
        self.peak.fetch_max(
            bytes + self.queued.load(Ordering::Acquire),
            Ordering::Relaxed,
        );
        if bytes < before {
            self.wake();
        }
    }

    fn release(&self, bytes: u64) {
        self.queued.fetch_sub(bytes, Ordering::AcqRel);
        self.wake();
    }

    fn wake(&self) {
        let _guard = self.lock.lock();
        self.room.notify_all();
        self.notify.notify_waiters();
    }

    /// Waits on a blocking thread until there is room or `shutdown` is cancelled (a source
    /// that stops hands over what it holds).
    pub fn wait_blocking(&self, shutdown: &CancellationToken) {
        if self.has_room() {
            return;
        }
        let start = Instant::now();
        let mut guard = self.lock.lock();
        while !self.has_room() && !shutdown.is_cancelled() {
            // The timeout only bounds how late a cancellation is seen.
            self.room.wait_for(&mut guard, Duration::from_millis(20));
        }
        drop(guard);
        self.paused(start);
    }

    /// As [`wait_blocking`](Self::wait_blocking), from a task.
    pub async fn wait(&self, shutdown: &CancellationToken) {
        if self.has_room() {
            return;
        }
        let start = Instant::now();
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Registered before the check, so a release in between is not missed.
            notified.as_mut().enable();
            if self.has_room() || shutdown.is_cancelled() {
                break;
            }
            tokio::select! {
                () = notified => {}
                () = shutdown.cancelled() => break,
            }
        }
        self.paused(start);
    }

    fn paused(&self, start: Instant) {
        self.pauses.fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.paused_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// What it saw so far.
    #[must_use]
    pub fn report(&self) -> BudgetReport {
        BudgetReport {
            limit: self.limit,
            queued: self.queued.load(Ordering::Acquire),
            guest: self.guest.load(Ordering::Acquire),
            peak: self.peak.load(Ordering::Relaxed),
            pauses: self.pauses.load(Ordering::Relaxed),
            paused_ms: self.paused_ns.load(Ordering::Relaxed) / 1_000_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_charge_until_dropped() {
        let budget = MemoryBudget::new(1000);
        let a = budget.charge(600);
        let b = budget.charge(300);
        assert_eq!(budget.used(), 900);
        assert!(budget.has_room());
        budget.set_guest_memory(200);
        assert_eq!(budget.used(), 1100);
        assert!(!budget.has_room());
        drop(a);
        assert_eq!(budget.used(), 500);
        assert!(budget.has_room());
        drop(b);
        let r = budget.report();
        assert_eq!((r.queued, r.guest, r.peak), (0, 200, 1100));
    }

    #[test]
    fn nothing_queued_always_has_room() {
        let budget = MemoryBudget::new(100);
        budget.set_guest_memory(500);
        assert!(
            budget.has_room(),
            "progress: guests alone never stop the sources"
        );
        let _t = budget.charge(1);
        assert!(!budget.has_room());
    }

    #[test]
    fn a_blocked_source_goes_on_when_a_ticket_is_released() {
        let budget = MemoryBudget::new(100);
        let ticket = budget.charge(150);
        let shutdown = CancellationToken::new();
        let waiter = {
            let budget = Arc::clone(&budget);
            let shutdown = shutdown.clone();
            std::thread::spawn(move || {
                budget.wait_blocking(&shutdown);
                budget.used()
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            !waiter.is_finished(),
            "the source waits while over the limit"
        );
        drop(ticket);
        assert_eq!(waiter.join().unwrap(), 0);
        let r = budget.report();
        assert_eq!(r.pauses, 1);
        assert!(r.paused_ms >= 90, "{r:?}");
    }

    #[test]
    fn shutdown_ends_a_wait() {
        let budget = MemoryBudget::new(10);
        let _ticket = budget.charge(20);
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        budget.wait_blocking(&shutdown);
        assert_eq!(budget.report().pauses, 1);
    }

    #[tokio::test]
    async fn an_async_wait_wakes_on_release() {
        let budget = MemoryBudget::new(100);
        let ticket = budget.charge(150);
        let shutdown = CancellationToken::new();
        let waiter = {
            let budget = Arc::clone(&budget);
            tokio::spawn(async move { budget.wait(&shutdown).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        drop(ticket);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .unwrap();
    }
}
