//! Answers kept for reuse, both keyed by the rendered Converse request
//! (its JSON with the per-call correlation id taken out, hashed with
//! SHA-256):
//! - the response cache (operations with `cache: { ttl_secs }`): the valid
//!   answer per request and target, for the operation's TTL;
//! - the last-good store (operations with `on_failure: cache`): the last
//!   valid answer per request whatever target gave it, kept past any TTL
//!   (bounded by entries only), answered — marked degraded — when every
//!   target fails.
//!
//! An answer is a response payload or a declared fault the model chose
//! ([`Answer`]): both are the model's valid decision about that request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;
use sha2::{Digest, Sha256};

use crate::converse::Request;
use crate::mapping::{Answer, ModelTarget};

/// A request's hash.
pub type CacheKey = [u8; 32];

/// The hash of a rendered request, taken once per call: every key of that
/// call (each target's, and the last-good one) is derived from it.
#[derive(Debug, Clone, Copy)]
pub struct RequestDigest([u8; 32]);

impl RequestDigest {
    pub fn of(request: &Request) -> RequestDigest {
        let mut request = request.clone();
        // The correlation id differs on every call: identical requests must
        // meet.
        if let Some(meta) = &mut request.request_metadata {
            meta.remove("correlation_id");
            if meta.is_empty() {
                request.request_metadata = None;
            }
        }
        // Serialising our own serde types cannot fail; an empty body would
        // only make keys meet that should not, so say what we hash.
        RequestDigest(Sha256::digest(serde_json::to_vec(&request).unwrap_or_default()).into())
    }

    /// The key for `target` (the response cache) or for none (the
    /// last-good store).
    pub fn key(&self, target: Option<&ModelTarget>) -> CacheKey {
        let mut hasher = Sha256::new();
        hasher.update(self.0);
        if let Some(t) = target {
            hasher.update([0u8]);
            hasher.update(t.region.as_deref().unwrap_or("-").as_bytes());
            hasher.update([0u8]);
            hasher.update(t.model.as_bytes());
        }
        hasher.finalize().into()
    }
}

#[derive(Debug, Clone)]
struct Entry {
    payload: Arc<Answer>,
    ttl: Duration,
}

/// Each entry lives for the TTL of the operation that stored it.
struct PerEntryTtl;

impl Expiry<CacheKey, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _: &CacheKey, entry: &Entry, _: Instant) -> Option<Duration> {
        Some(entry.ttl)
    }
}

/// The response cache and the last-good store.
#[derive(Clone)]
pub struct ResponseCache {
    fresh: Cache<CacheKey, Entry>,
    last_good: Cache<CacheKey, Arc<Answer>>,
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache")
            .field("fresh", &self.fresh.entry_count())
            .field("last_good", &self.last_good.entry_count())
            .finish()
    }
}

impl ResponseCache {
    pub fn new(entries: u64, last_good_entries: u64) -> ResponseCache {
        ResponseCache {
            fresh: Cache::builder()
                .max_capacity(entries)
                .expire_after(PerEntryTtl)
                .build(),
            last_good: Cache::builder().max_capacity(last_good_entries).build(),
        }
    }

    pub async fn get(&self, key: &CacheKey) -> Option<Arc<Answer>> {
        self.fresh.get(key).await.map(|e| e.payload)
    }

    pub async fn put(&self, key: CacheKey, payload: Arc<Answer>, ttl: Duration) {
        self.fresh.insert(key, Entry { payload, ttl }).await;
    }

    pub async fn last_good(&self, key: &CacheKey) -> Option<Arc<Answer>> {
        self.last_good.get(key).await
    }

    pub async fn put_last_good(&self, key: CacheKey, payload: Arc<Answer>) {
        self.last_good.insert(key, payload).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(request: &Request, target: Option<&ModelTarget>) -> CacheKey {
        RequestDigest::of(request).key(target)
    }

    #[test]
    fn keys_ignore_the_correlation_id_and_depend_on_the_target() {
        let mut a = Request::user_text("hello");
        a.request_metadata = Some([("correlation_id".to_string(), "1".to_string())].into());
        let mut b = a.clone();
        b.request_metadata = Some([("correlation_id".to_string(), "2".to_string())].into());
        assert_eq!(key(&a, None), key(&b, None));
        assert_ne!(key(&a, None), key(&Request::user_text("hullo"), None));
        let t1 = ModelTarget {
            model: "m1".into(),
            region: None,
        };
        let t2 = ModelTarget {
            model: "m2".into(),
            region: None,
        };
        assert_ne!(key(&a, Some(&t1)), key(&a, Some(&t2)));
        assert_ne!(key(&a, Some(&t1)), key(&a, None));
    }

    #[tokio::test]
    async fn entries_expire_after_their_own_ttl_and_last_good_stays() {
        let cache = ResponseCache::new(100, 100);
        let k = key(&Request::user_text("x"), None);
        let payload = Arc::new(Answer::Response(Vec::new()));
        cache
            .put(k, payload.clone(), Duration::from_millis(50))
            .await;
        cache.put_last_good(k, payload).await;
        assert!(cache.get(&k).await.is_some());
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(cache.get(&k).await.is_none(), "expired");
        assert!(cache.last_good(&k).await.is_some(), "kept past the TTL");
    }
}
