//! Scripted model latency, kept to a fraction of a millisecond.
//!
//! tokio's timer counts whole milliseconds: it rounds each deadline up to
//! the next tick and fires every deadline of a tick together, so a
//! scripted 50 ms answer came after 50–52 ms, in bursts on the tick, and a
//! caller that came back a little later than the last one waited a whole
//! tick more. A real model's latency is not tied to a clock shared by all
//! its callers. Here one thread sleeps until the earliest deadline on the
//! kernel's high-resolution timers and wakes the calls that are due.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// Waits `delay`. Falls back to tokio's timer if the delay thread could not
/// be started or has gone, and for a delay past the end of `Instant` (a
/// script may ask for any number of milliseconds).
pub(super) async fn sleep(delay: Duration) {
    let Some(at) = Instant::now().checked_add(delay) else {
        return tokio::time::sleep(delay).await;
    };
    if let Some(timer) = timer() {
        let (wake, woken) = oneshot::channel();
        timer.add(at, wake);
        if woken.await.is_ok() {
            return;
        }
    }
    tokio::time::sleep_until(at.into()).await;
}

/// The one delay thread of the process, started on first use.
fn timer() -> Option<&'static Timer> {
    static TIMER: OnceLock<Option<&'static Timer>> = OnceLock::new();
    *TIMER.get_or_init(|| {
        let timer: &'static Timer = Box::leak(Box::default());
        std::thread::Builder::new()
            .name("emulator-delay".into())
            .spawn(|| timer.run())
            .map(|_| timer)
            .map_err(
                |e| tracing::warn!(error = %e, "no delay thread; delays in whole milliseconds"),
            )
            .ok()
    })
}

#[derive(Default)]
struct Timer {
    pending: Mutex<Pending>,
    /// Signalled when a deadline earlier than every other one arrives.
    earlier: Condvar,
}

#[derive(Default)]
struct Pending {
    due: BinaryHeap<Reverse<Due>>,
    /// Orders calls with the same deadline by arrival.
    next_seq: u64,
}

struct Due {
    at: Instant,
    seq: u64,
    wake: oneshot::Sender<()>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Due {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

impl Timer {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn add(&self, at: Instant, wake: oneshot::Sender<()>) {
        let mut pending = self.lock();
        let seq = pending.next_seq;
        pending.next_seq += 1;
        pending.due.push(Reverse(Due { at, seq, wake }));
        let first = pending.due.peek().is_some_and(|Reverse(d)| d.seq == seq);
        drop(pending);
        if first {
            self.earlier.notify_one();
        }
    }

    fn run(&self) {
        let mut ready = Vec::new();
        let mut pending = self.lock();
        loop {
            let now = Instant::now();
            while pending.due.peek().is_some_and(|Reverse(d)| d.at <= now) {
                if let Some(Reverse(due)) = pending.due.pop() {
                    ready.push(due.wake);
                }
            }
            if !ready.is_empty() {
                // Woken outside the lock: waking a task may take a syscall.
                drop(pending);
                for wake in ready.drain(..) {
                    // The call may have gone (its client hung up).
                    let _ = wake.send(());
                }
                pending = self.lock();
                continue;
            }
            pending = match pending.due.peek() {
                Some(Reverse(next)) => {
                    let wait = next.at.saturating_duration_since(now);
                    self.earlier
                        .wait_timeout(pending, wait)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                None => self
                    .earlier
                    .wait(pending)
                    .unwrap_or_else(PoisonError::into_inner),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_wake_in_deadline_order_and_not_early() {
        let started = Instant::now();
        let order = std::sync::Arc::new(Mutex::new(Vec::new()));
        let mut calls = Vec::new();
        // Registered out of order, with two sharing a deadline.
        for (name, ms) in [("c", 30u64), ("a", 10), ("b", 20), ("b2", 20)] {
            let order = order.clone();
            calls.push(tokio::spawn(async move {
                sleep(Duration::from_millis(ms)).await;
                let waited = started.elapsed();
                order.lock().unwrap().push(name);
                waited >= Duration::from_millis(ms)
            }));
            tokio::task::yield_now().await;
        }
        for call in calls {
            assert!(call.await.unwrap(), "a call woke before its deadline");
        }
        let order = order.lock().unwrap().clone();
        assert_eq!(order[0], "a");
        assert_eq!(order[3], "c");
    }

    #[tokio::test]
    async fn a_delay_beyond_any_instant_waits_without_panicking() {
        let waited = tokio::time::timeout(Duration::from_millis(20), sleep(Duration::MAX)).await;
        assert!(waited.is_err(), "the endless delay ended");
    }
}
