//! The memory tier: stored responses by primary key (the request's absolute URI), each key
//! holding its variants (one per `Vary` secondary key), bounded in bytes.
//!
//! Eviction and admission are moka's: a window TinyLFU, so a scan of one-hit objects does
//! not flush the popular ones. A variant is immutable once stored, except for the soft-purge
//! mark; a 304 that freshens it replaces it with an updated copy.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use crate::encode::Coding;
use crate::semantics::{ResponseDirectives, Vary};

/// One stored response.
#[derive(Debug)]
pub struct Stored {
    /// Its status.
    pub status: StatusCode,
    /// Its headers, as stored (hop-by-hop fields removed).
    pub headers: HeaderMap,
    /// Its whole body.
    pub body: Bytes,
    /// Its `Vary`, and the request's values of those fields when it was stored.
    pub vary: Vary,
    /// The secondary key: the varied request fields' normalised values.
    pub secondary: Vec<Option<String>>,
    /// When the request that fetched it was sent.
    pub request_time: SystemTime,
    /// When its response was received.
    pub response_time: SystemTime,
    /// Its corrected initial age (RFC 9111 §4.2.3).
    pub initial_age: Duration,
    /// How long it is fresh (RFC 9111 §4.2.1).
    pub lifetime: Duration,
    /// Its `Cache-Control` directives, with the route's stale windows filled in where the
    /// origin gave none.
    pub directives: ResponseDirectives,
    /// Surrogate keys (`Surrogate-Key` / `Cache-Tag`), for purging by tag.
    pub tags: Vec<String>,
    /// Marked stale by a soft purge: served only after revalidation (or as stale-if-error).
    pub soft_purged: AtomicBool,
    /// The body compressed, per coding, made the first time a client asked for it.
    pub encoded: std::sync::Mutex<Vec<(Coding, Bytes)>>,
}

impl Stored {
    /// Its current age at `now` (RFC 9111 §4.2.3).
    pub fn age(&self, now: SystemTime) -> Duration {
        self.initial_age
            + now
                .duration_since(self.response_time)
                .unwrap_or(Duration::ZERO)
    }

    /// How long it is fresh, as it stands now: no time at all once soft-purged.
    pub fn current_lifetime(&self) -> Duration {
        if self.soft_purged.load(Ordering::Relaxed) {
            Duration::ZERO
        } else {
            self.lifetime
        }
    }

    /// Seconds of freshness left at `now`; negative once stale (a soft purge makes it stale).
    pub fn ttl(&self, now: SystemTime) -> f64 {
        self.current_lifetime().as_secs_f64() - self.age(now).as_secs_f64()
    }

    /// Whether it is fresh at `now`.
    pub fn is_fresh(&self, now: SystemTime) -> bool {
        self.ttl(now) > 0.0
    }

    /// Its body in `coding`, compressed now if no one asked for it before.
    pub fn encoded(&self, coding: Coding) -> Bytes {
        let mut encoded = self.encoded.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, body)) = encoded.iter().find(|(c, _)| *c == coding) {
            return body.clone();
        }
        let body = coding.compress(&self.body);
        encoded.push((coding, body.clone()));
        body
    }

    /// Bytes it holds, as the memory tier counts them (compressed copies, made later, are
    /// at most a fraction of the body more).
    pub fn weight(&self) -> u32 {
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 32)
            .sum();
        (self.body.len() + headers + 256).min(u32::MAX as usize) as u32
    }
}

/// The variants of one primary key.
#[derive(Debug, Default)]
pub struct Variants {
    /// Newest first.
    pub list: Vec<Arc<Stored>>,
}

/// Counts kept by the memory tier.
#[derive(Debug, Default)]
pub struct StoreCounters {
    /// Entries evicted for room (not purged, not replaced).
    pub evictions: AtomicU64,
}

/// The memory tier, shared by every caching route of a proxy.
pub struct MemoryStore {
    entries: moka::sync::Cache<String, Arc<Variants>>,
    max_object_bytes: usize,
    counters: Arc<StoreCounters>,
}

/// Most variants kept per primary key (the oldest goes first).
const MAX_VARIANTS: usize = 16;

impl MemoryStore {
    /// A store of at most `max_bytes`, refusing objects larger than `max_object_bytes`.
    pub fn new(max_bytes: u64, max_object_bytes: usize) -> Self {
        let counters = Arc::new(StoreCounters::default());
        let evicted = counters.clone();
        let entries = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_key: &String, variants: &Arc<Variants>| {
                variants
                    .list
                    .iter()
                    .map(|v| v.weight())
                    .fold(0u32, u32::saturating_add)
            })
            .eviction_listener(move |_key, _value, cause| {
                if cause == moka::notification::RemovalCause::Size {
                    evicted.evictions.fetch_add(1, Ordering::Relaxed);
                }
            })
            .support_invalidation_closures()
            .build();
        Self {
            entries,
            max_object_bytes,
            counters,
        }
    }

    /// The largest body it stores.
    pub fn max_object_bytes(&self) -> usize {
        self.max_object_bytes
    }

    /// The variants stored under `key`.
    pub fn get(&self, key: &str) -> Option<Arc<Variants>> {
        self.entries.get(key)
    }

    /// Stores `stored` under `key`, replacing a variant with the same `Vary` and secondary
    /// key; `replaced` (if given) is dropped too (a freshened copy replaces its original).
    pub fn insert(&self, key: &str, stored: Arc<Stored>, replaced: Option<&Arc<Stored>>) {
        if stored.body.len() > self.max_object_bytes {
            return;
        }
        let mut list: Vec<Arc<Stored>> = vec![stored.clone()];
        if let Some(existing) = self.entries.get(key) {
            list.extend(
                existing
                    .list
                    .iter()
                    .filter(|v| {
                        let same_variant = v.vary == stored.vary && v.secondary == stored.secondary;
                        let superseded = replaced.is_some_and(|r| Arc::ptr_eq(r, v));
                        !same_variant && !superseded
                    })
                    .take(MAX_VARIANTS - 1)
                    .cloned(),
            );
        }
        self.entries
            .insert(key.to_owned(), Arc::new(Variants { list }));
    }

    /// Forgets everything stored under `key`; true if anything was.
    pub fn remove(&self, key: &str) -> bool {
        self.entries.remove(key).is_some()
    }

    /// Hard purge: forgets the keys `matches` selects (by key, or by a variant's tags).
    /// Returns how many keys it dropped.
    pub fn purge(&self, matches: impl Fn(&str, &Variants) -> bool) -> usize {
        let victims: Vec<String> = self
            .entries
            .iter()
            .filter(|(key, variants)| matches(key, variants))
            .map(|(key, _)| key.as_ref().clone())
            .collect();
        for key in &victims {
            self.entries.invalidate(key);
        }
        victims.len()
    }

    /// Soft purge: marks the variants of the keys `matches` selects stale, so they are
    /// revalidated before use (and can still stand in when the origin fails). Returns how
    /// many keys it marked.
    pub fn mark_stale(&self, matches: impl Fn(&str, &Variants) -> bool) -> usize {
        let mut marked = 0;
        for (key, variants) in self.entries.iter() {
            if matches(&key, &variants) {
                for variant in &variants.list {
                    variant.soft_purged.store(true, Ordering::Relaxed);
                }
                marked += 1;
            }
        }
        marked
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.entries.invalidate_all();
    }

    /// Bytes and keys held now (after running the pending maintenance once).
    pub fn usage(&self) -> (u64, u64) {
        self.entries.run_pending_tasks();
        (self.entries.weighted_size(), self.entries.entry_count())
    }

    /// Bytes held now.
    pub fn bytes(&self) -> u64 {
        self.usage().0
    }

    /// Keys held now.
    pub fn len(&self) -> u64 {
        self.usage().1
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries evicted for room so far.
    pub fn evictions(&self) -> u64 {
        self.counters.evictions.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("max_object_bytes", &self.max_object_bytes)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(body: &str, tags: &[&str]) -> Arc<Stored> {
        let now = SystemTime::now();
        Arc::new(Stored {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::from(body.to_owned()),
            vary: Vary::None,
            secondary: Vec::new(),
            request_time: now,
            response_time: now,
            initial_age: Duration::ZERO,
            lifetime: Duration::from_secs(60),
            directives: ResponseDirectives::default(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            soft_purged: AtomicBool::new(false),
            encoded: Default::default(),
        })
    }

    #[test]
    fn a_new_response_replaces_the_variant_it_matches() {
        let store = MemoryStore::new(1 << 20, 1 << 16);
        store.insert("http://a/x", stored("one", &[]), None);
        store.insert("http://a/x", stored("two", &[]), None);
        let variants = store.get("http://a/x").unwrap();
        assert_eq!(variants.list.len(), 1);
        assert_eq!(variants.list[0].body, "two");
    }

    #[test]
    fn objects_over_the_size_limit_are_not_stored() {
        let store = MemoryStore::new(1 << 20, 4);
        store.insert("http://a/big", stored("too big", &[]), None);
        assert!(store.get("http://a/big").is_none());
    }

    #[test]
    fn purges_select_by_key_prefix_and_tag_and_soft_purge_marks_stale() {
        let store = MemoryStore::new(1 << 20, 1 << 16);
        store.insert("http://a/img/1", stored("1", &["img"]), None);
        store.insert("http://a/img/2", stored("2", &["img", "logo"]), None);
        store.insert("http://a/css/1", stored("3", &["css"]), None);
        let now = SystemTime::now();
        assert_eq!(
            store.mark_stale(|_, v| v.list.iter().any(|s| s.tags.iter().any(|t| t == "logo"))),
            1
        );
        assert!(!store.get("http://a/img/2").unwrap().list[0].is_fresh(now));
        assert!(store.get("http://a/img/1").unwrap().list[0].is_fresh(now));
        assert_eq!(store.purge(|k, _| k.starts_with("http://a/img/")), 2);
        assert!(store.get("http://a/img/1").is_none());
        assert!(store.get("http://a/css/1").is_some());
        store.clear();
        assert!(store.is_empty());
    }

    #[test]
    fn the_store_stays_within_its_byte_bound() {
        let store = MemoryStore::new(64 * 1024, 8 * 1024);
        let body = "x".repeat(4000);
        for i in 0..200 {
            store.insert(&format!("http://a/{i}"), stored(&body, &[]), None);
        }
        assert!(store.bytes() <= 64 * 1024, "{}", store.bytes());
        assert!(store.len() < 200);
    }
}
