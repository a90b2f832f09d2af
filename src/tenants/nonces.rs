//! The UsernameToken nonces a user sent within the Created window, to
//! refuse replays.
//!
//! One window per configured user, each bounded: no user's traffic can
//! push out another user's nonces. A user that has sent `capacity` nonces
//! still inside the window is refused until the oldest leaves it, rather
//! than forgetting one: a nonce is remembered as long as its token could be
//! accepted, whatever anyone sent meanwhile. Nonces are kept as their
//! SHA-256 (a client chooses a nonce's length), in arrival order, so
//! expired ones are dropped from the front.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// What remembering a nonce found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Seen {
    /// New, and now remembered.
    Fresh,
    /// Seen within the window.
    Replay,
    /// The user's window is full; the oldest nonce leaves it after this.
    Full(Duration),
}

#[derive(Debug)]
pub(super) struct Window {
    ttl: Duration,
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    seen: HashSet<[u8; 32]>,
    order: VecDeque<(Instant, [u8; 32])>,
}

impl Window {
    /// Nonces are remembered for `ttl`, at most `capacity` at once.
    pub(super) fn new(ttl: Duration, capacity: u64) -> Window {
        Window {
            ttl,
            capacity: usize::try_from(capacity.max(1)).unwrap_or(usize::MAX),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Remembers `nonce` unless it is a replay or the window is full. Of
    /// two concurrent copies, only the first is fresh.
    pub(super) fn remember(&self, nonce: &[u8]) -> Seen {
        self.remember_at(nonce, Instant::now())
    }

    fn remember_at(&self, nonce: &[u8], now: Instant) -> Seen {
        let key: [u8; 32] = Sha256::digest(nonce).into();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        while let Some((at, old)) = inner.order.front().copied() {
            if now.saturating_duration_since(at) < self.ttl {
                break;
            }
            inner.order.pop_front();
            inner.seen.remove(&old);
        }
        if inner.seen.contains(&key) {
            return Seen::Replay;
        }
        if inner.seen.len() >= self.capacity {
            let oldest = inner.order.front().map_or(now, |(at, _)| *at);
            let leaves = (oldest + self.ttl).saturating_duration_since(now);
            return Seen::Full(leaves);
        }
        inner.seen.insert(key);
        inner.order.push_back((now, key));
        Seen::Fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_are_refused_until_the_window_passes_and_a_full_window_refuses() {
        let w = Window::new(Duration::from_secs(10), 2);
        let t0 = Instant::now();
        assert_eq!(w.remember_at(b"a", t0), Seen::Fresh);
        assert_eq!(w.remember_at(b"a", t0), Seen::Replay);
        assert_eq!(
            w.remember_at(b"b", t0 + Duration::from_secs(1)),
            Seen::Fresh
        );
        assert_eq!(
            w.remember_at(b"c", t0 + Duration::from_secs(2)),
            Seen::Full(Duration::from_secs(8))
        );
        // Still refused as a replay: nothing was forgotten to make room.
        assert_eq!(
            w.remember_at(b"a", t0 + Duration::from_secs(9)),
            Seen::Replay
        );
        // Once "a" is out of the window, there is room, and "a" is new.
        assert_eq!(
            w.remember_at(b"c", t0 + Duration::from_secs(10)),
            Seen::Fresh
        );
        assert_eq!(
            w.remember_at(b"b", t0 + Duration::from_secs(10)),
            Seen::Replay
        );
        assert_eq!(
            w.remember_at(b"a", t0 + Duration::from_secs(11)),
            Seen::Fresh
        );
    }
}
