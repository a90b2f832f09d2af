//! Failed authentications, counted per user name and per source address,
//! so guesses are refused before any password is checked.
//!
//! Each key has a bucket of failures that drains at
//! `failed_auth_per_minute`; while it holds `failed_auth_burst` failures,
//! attempts under that key are refused with the wait until one more would
//! be let through. A check only reads the buckets; a failure is recorded
//! once the attempt has failed, so a client sending the right password
//! many times at once is never counted.
//!
//! The configured user names have buckets of their own for the life of the
//! process, so no flood of other names can evict one (and reset its
//! count). Unknown names (keyed by their SHA-256: their length is the
//! caller's choice) and addresses (IPv6 by /64, which one client usually
//! has whole) live in bounded caches whose entries go once idle for as
//! long as a full bucket takes to drain.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Unknown user names and source addresses remembered at once.
const REMEMBERED: u64 = 100_000;

#[derive(Debug)]
struct Bucket {
    failures: f64,
    at: Instant,
}

impl Bucket {
    fn new(now: Instant) -> Bucket {
        Bucket {
            failures: 0.0,
            at: now,
        }
    }

    /// The failures left after draining up to `now`.
    fn drain(&mut self, now: Instant, per_sec: f64) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.failures = (self.failures - elapsed * per_sec).max(0.0);
        self.at = now;
        self.failures
    }
}

/// Which key refused an attempt (for the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Key {
    User,
    Address,
}

impl Key {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Key::User => "user name",
            Key::Address => "source address",
        }
    }
}

pub(super) struct Throttle {
    burst: f64,
    per_sec: f64,
    known: HashMap<String, Mutex<Bucket>>,
    unknown: moka::sync::Cache<[u8; 32], Arc<Mutex<Bucket>>>,
    addresses: moka::sync::Cache<IpAddr, Arc<Mutex<Bucket>>>,
}

impl Throttle {
    /// `burst` and `per_minute` are at least 1 (checked by the caller).
    pub(super) fn new(burst: u32, per_minute: u32) -> Throttle {
        let burst = f64::from(burst.max(1));
        let per_sec = f64::from(per_minute.max(1)) / 60.0;
        // Idle this long, a bucket is empty again.
        let idle = Duration::from_secs_f64(burst / per_sec) + Duration::from_secs(1);
        Throttle {
            burst,
            per_sec,
            known: HashMap::new(),
            unknown: moka::sync::Cache::builder()
                .max_capacity(REMEMBERED)
                .time_to_idle(idle)
                .build(),
            addresses: moka::sync::Cache::builder()
                .max_capacity(REMEMBERED)
                .time_to_idle(idle)
                .build(),
        }
    }

    /// Gives a configured user name a bucket of its own.
    pub(super) fn add_user(&mut self, user: &str) {
        self.known
            .entry(user.to_string())
            .or_insert_with(|| Mutex::new(Bucket::new(Instant::now())));
    }

    /// `Some` (the key and the wait) when an attempt for `user` from
    /// `source` must be refused unchecked.
    pub(super) fn refused(&self, user: &str, source: Option<IpAddr>) -> Option<(Key, Duration)> {
        let now = Instant::now();
        let user_wait = match self.known.get(user) {
            Some(bucket) => self.wait(bucket, now),
            None => self
                .unknown
                .get(&name_key(user))
                .and_then(|bucket| self.wait(&bucket, now)),
        };
        if let Some(wait) = user_wait {
            return Some((Key::User, wait));
        }
        let address = source.map(address_key)?;
        let bucket = self.addresses.get(&address)?;
        self.wait(&bucket, now).map(|wait| (Key::Address, wait))
    }

    /// Records a failed attempt for `user` from `source`.
    pub(super) fn failed(&self, user: &str, source: Option<IpAddr>) {
        let now = Instant::now();
        match self.known.get(user) {
            Some(bucket) => self.add(bucket, now),
            None => {
                let bucket = self
                    .unknown
                    .get_with(name_key(user), || Arc::new(Mutex::new(Bucket::new(now))));
                self.add(&bucket, now);
            }
        }
        if let Some(address) = source.map(address_key) {
            let bucket = self
                .addresses
                .get_with(address, || Arc::new(Mutex::new(Bucket::new(now))));
            self.add(&bucket, now);
        }
    }

    fn wait(&self, bucket: &Mutex<Bucket>, now: Instant) -> Option<Duration> {
        let mut b = bucket.lock().unwrap_or_else(|e| e.into_inner());
        let failures = b.drain(now, self.per_sec);
        // Refused while one more failure would go over the burst.
        let over = failures - (self.burst - 1.0);
        (over > 0.0).then(|| Duration::from_secs_f64(over / self.per_sec))
    }

    fn add(&self, bucket: &Mutex<Bucket>, now: Instant) {
        let mut b = bucket.lock().unwrap_or_else(|e| e.into_inner());
        b.drain(now, self.per_sec);
        b.failures += 1.0;
    }
}

fn name_key(user: &str) -> [u8; 32] {
    Sha256::digest(user.as_bytes()).into()
}

/// An IPv4 address as it is (IPv4-mapped IPv6 too); an IPv6 address by
/// its /64.
pub(super) fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_failures_then_refusals_per_user_and_address() {
        let mut t = Throttle::new(3, 60);
        t.add_user("alice");
        let here: IpAddr = "192.0.2.1".parse().expect("ip");
        for _ in 0..3 {
            assert_eq!(t.refused("alice", Some(here)), None);
            t.failed("alice", Some(here));
        }
        let (key, wait) = t.refused("alice", Some(here)).expect("refused");
        assert_eq!(key, Key::User);
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        // Another name from the same address: the address is spent too.
        assert_eq!(
            t.refused("bob", Some(here)).map(|(k, _)| k),
            Some(Key::Address)
        );
        // The same name from elsewhere: still refused by name.
        let there: IpAddr = "198.51.100.7".parse().expect("ip");
        assert_eq!(
            t.refused("alice", Some(there)).map(|(k, _)| k),
            Some(Key::User)
        );
        // Unknown names count like known ones.
        for _ in 0..3 {
            assert_eq!(t.refused("mallory", None), None);
            t.failed("mallory", None);
        }
        assert!(t.refused("mallory", None).is_some());
        assert_eq!(t.refused("carol", Some(there)), None);
    }

    #[test]
    fn ipv6_clients_are_one_key_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().expect("ip");
        assert_eq!(
            address_key(mapped),
            "192.0.2.1".parse::<IpAddr>().expect("ip")
        );
    }
}
