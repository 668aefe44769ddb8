//! A route's HTTP cache layer (RFC 9111, as a shared cache).
//!
//! ```text
//! request ─┬─ unsafe method ──────────────→ origin; a 2xx/3xx invalidates the target (§4.4)
//!          ├─ not GET/HEAD, no-store, an
//!          │  origin-only precondition ─────→ origin, untouched
//!          ├─ stored variant (memory, then
//!          │  disk), usable ────────────────→ answer from the store (Age, Cache-Status: hit;
//!          │                                  a single Range cut from it; brotli or gzip)
//!          ├─ stale, within swr ────────────→ answer stale, revalidate once in the background
//!          ├─ stale ────────────────────────→ revalidate (conditional request); 304 freshens
//!          │                                  it; a failure within stale-if-error answers stale
//!          └─ miss ─────────────────────────→ one request per key (coalescing), the answer
//!                                             stored while it streams to the client
//! ```
//!
//! Responses are stored whole (up to the store's object size) while they stream to the
//! client, in memory and, if configured, on disk. Responses with `Set-Cookie` are not
//! stored. Every answer carries `Cache-Status`
//! (RFC 9211); stale answers given for a failed origin are marked `x-watertight-degraded`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::BodyExt;

use watertight_cache::coalesce::{Coalescer, Leader, Outcome, Role};
use watertight_cache::disk::{DiskStore, Record};
use watertight_cache::encode;
use watertight_cache::semantics::{
    self, CacheStatus, Forward, RangeAnswer, RequestDirectives, ResponseDirectives, Reuse,
};
use watertight_cache::store::{MemoryStore, Stored};
use watertight_config as config;
use watertight_telemetry::trace::{RequestTrace, Value};

use crate::body::{self, Observed, Observer, ProxyBody};
use crate::edge::Arrival;
use crate::error::ProxyError;
use crate::fallback::{DEGRADED_HEADER, Degraded};
use crate::stack::{self, Layer, RouteFuture, RouteService};

/// The `Cache-Status` cache name.
const CACHE_NAME: &str = "watertight";
/// Surrogate-key headers, space or comma separated.
const TAG_HEADERS: [&str; 2] = ["surrogate-key", "cache-tag"];

/// The cache shared by every caching route of a proxy: the store, the fetches in flight,
/// and the counts.
#[derive(Debug)]
pub struct SharedCache {
    /// The memory tier.
    pub store: MemoryStore,
    /// The disk tier, if configured.
    disk: Option<Arc<DiskStore>>,
    coalescer: Arc<Coalescer>,
    /// What happened to requests, for metrics and the admin API.
    pub counts: CacheCounts,
    config: config::CacheStore,
}

/// How cached routes' requests went.
#[derive(Debug, Default)]
pub struct CacheCounts {
    /// Answered from the store, fresh.
    pub hits: AtomicU64,
    /// Went to the origin themselves for want of a usable stored response (a request that
    /// waited for another's fetch and was answered by it is `coalesced`, not a miss).
    pub misses: AtomicU64,
    /// Answered stale (while revalidating, or because the origin failed).
    pub stale: AtomicU64,
    /// Conditional requests sent to revalidate a stored response.
    pub revalidations: AtomicU64,
    /// Answered from another request's fetch of the same URL, after waiting for it.
    pub coalesced: AtomicU64,
    /// Responses stored.
    pub stored: AtomicU64,
    /// Purges asked for (hard or soft).
    pub purges: AtomicU64,
}

impl SharedCache {
    /// A cache with the store `config` describes (opening its disk tier, and rebuilding the
    /// tier's index, if it has one).
    pub fn new(config: &config::CacheStore) -> Result<Self, String> {
        let disk = config
            .disk
            .as_ref()
            .map(|disk| {
                DiskStore::open(std::path::Path::new(&disk.path), disk.max_bytes)
                    .map(Arc::new)
                    .map_err(|e| format!("cache.disk.path {:?}: {e}", disk.path))
            })
            .transpose()?;
        Ok(Self {
            store: MemoryStore::new(config.max_bytes, config.max_object_bytes),
            disk,
            coalescer: Arc::new(Coalescer::default()),
            counts: CacheCounts::default(),
            config: config.clone(),
        })
    }

    /// Stores `stored` in memory (replacing `replaced`) and writes it to the disk tier in the
    /// background.
    fn keep(&self, key: &str, stored: Arc<Stored>, replaced: Option<&Arc<Stored>>) {
        self.store.insert(key, stored.clone(), replaced);
        if let Some(disk) = &self.disk
            && stored.body.len() <= self.store.max_object_bytes()
        {
            let disk = disk.clone();
            let key = key.to_owned();
            tokio::task::spawn_blocking(move || {
                let record = Record {
                    key,
                    status: stored.status,
                    headers: stored.headers.clone(),
                    secondary: stored.secondary.clone(),
                    request_time: stored.request_time,
                    response_time: stored.response_time,
                    stale_while_revalidate: stored.directives.stale_while_revalidate,
                    stale_if_error: stored.directives.stale_if_error,
                };
                if let Err(error) = disk.write(&record, &stored.body) {
                    tracing::warn!(%error, "cache: disk write failed");
                }
            });
        }
    }

    /// The disk tier's variant of `key` matching a request with `headers`, read and checked,
    /// and promoted to memory.
    async fn load(&self, key: &str, headers: &HeaderMap) -> Option<Arc<Stored>> {
        let disk = self.disk.clone()?;
        let secondary =
            disk.variants(key)
                .into_iter()
                .find_map(|(stored_headers, secondary)| {
                    let vary = semantics::vary(&stored_headers);
                    semantics::variant_matches(&vary, &secondary, headers).then_some(secondary)
                })?;
        let owned_key = key.to_owned();
        let (record, body) = tokio::task::spawn_blocking(move || disk.read(&owned_key, &secondary))
            .await
            .ok()??;
        let vary = semantics::vary(&record.headers);
        let mut stored = build_stored(
            record.status,
            record.headers,
            body,
            (vary, record.secondary),
            (record.request_time, record.response_time),
            &config::RouteCache::default(),
        );
        stored.directives.stale_while_revalidate = record.stale_while_revalidate;
        stored.directives.stale_if_error = record.stale_if_error;
        let stored = Arc::new(stored);
        self.store.insert(key, stored.clone(), None);
        Some(stored)
    }

    /// Bytes held by the disk tier, if there is one.
    pub fn disk_bytes(&self) -> Option<u64> {
        self.disk.as_ref().map(|d| d.bytes())
    }

    /// Forgets `key` in both tiers.
    fn forget(&self, key: &str) {
        self.store.remove(key);
        if let Some(disk) = &self.disk {
            disk.remove(|k, _| k == key);
        }
    }

    /// The store config it was built from (compared on reload).
    pub fn config(&self) -> &config::CacheStore {
        &self.config
    }
}

/// What a purge selects.
#[derive(Clone, Debug)]
pub enum PurgeTarget {
    /// One URL (`http://host/path?query`).
    Url(String),
    /// Every URL starting with this.
    Prefix(String),
    /// Every response carrying this surrogate key.
    Tag(String),
    /// Everything.
    All,
}

impl SharedCache {
    /// Hard purge (forget) or soft purge (mark stale) of `target`; how many URLs it hit.
    pub fn purge(&self, target: &PurgeTarget, soft: bool) -> usize {
        self.counts.purges.fetch_add(1, Ordering::Relaxed);
        let matches = |key: &str, variants: &watertight_cache::store::Variants| match target {
            PurgeTarget::Url(url) => key == url,
            PurgeTarget::Prefix(prefix) => key.starts_with(prefix.as_str()),
            PurgeTarget::Tag(tag) => variants
                .list
                .iter()
                .any(|v| v.tags.iter().any(|t| t == tag)),
            PurgeTarget::All => true,
        };
        // The disk copies go either way: a soft-purged memory copy still stands in for a
        // failed origin, the disk one would come back fresh after a restart.
        let on_disk = self.disk.as_ref().map_or(0, |disk| {
            disk.remove(|key, headers| match target {
                PurgeTarget::Url(url) => key == url,
                PurgeTarget::Prefix(prefix) => key.starts_with(prefix.as_str()),
                PurgeTarget::Tag(tag) => tags_of(headers).iter().any(|t| t == tag),
                PurgeTarget::All => true,
            })
        });
        let in_memory = if soft {
            self.store.mark_stale(matches)
        } else if matches!(target, PurgeTarget::All) {
            let count = self.store.len() as usize;
            self.store.clear();
            count
        } else {
            self.store.purge(matches)
        };
        in_memory.max(on_disk)
    }
}

/// A route's cache layer.
#[derive(Clone)]
pub struct Caching {
    inner: RouteService,
    cache: Arc<SharedCache>,
    config: Arc<config::RouteCache>,
}

impl Caching {
    /// Caches `inner`'s answers in `cache` as `config` says.
    pub fn new(inner: RouteService, cache: Arc<SharedCache>, config: config::RouteCache) -> Self {
        Self {
            inner,
            cache,
            config: Arc::new(config),
        }
    }
}

impl Layer for Caching {
    fn handle(&self, request: Request<ProxyBody>, arrival: Arrival) -> RouteFuture {
        let this = self.clone();
        Box::pin(async move { this.handle(request, arrival).await })
    }
}

impl Caching {
    async fn handle(
        self,
        request: Request<ProxyBody>,
        arrival: Arrival,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let method = request.method().clone();
        if semantics::is_unsafe(&method) {
            return self.invalidating(request, arrival).await;
        }
        let directives = semantics::request_directives(request.headers());
        // A cache must not evaluate If-Match / If-Unmodified-Since / If-Range itself.
        // A single byte range is answered from a complete stored response; a miss with a
        // Range goes to the origin as it is (partial answers are not stored).
        let cacheable_request = (method == Method::GET || method == Method::HEAD)
            && !semantics::has_origin_preconditions(request.headers())
            && !directives.no_store;
        let Some(key) = cacheable_request.then(|| primary_key(&request)).flatten() else {
            return stack::call(self.inner.clone(), request, arrival).await;
        };
        let trace = request.extensions().get::<Arc<RequestTrace>>().cloned();
        let now = SystemTime::now();
        let found = match self.lookup(&key, request.headers()) {
            Some(stored) => Some(stored),
            None => self.cache.load(&key, request.headers()).await,
        };
        let answer = if let Some(stored) = found {
            self.with_stored(request, arrival, key, stored, &directives, now)
                .await
        } else if directives.only_if_cached {
            Ok(status_answer(
                StatusCode::GATEWAY_TIMEOUT,
                fwd_status(Forward::UriMiss, None),
            ))
        } else {
            // Stored variants that do not match this request make it a Vary miss.
            let forward = if self.cache.store.get(&key).is_some() {
                Forward::VaryMiss
            } else {
                Forward::UriMiss
            };
            self.miss(request, arrival, key, forward).await
        };
        // The cache's decision, as a span event: what Cache-Status says.
        if let (Some(trace), Ok(response)) = (&trace, &answer)
            && let Some(status) = response
                .headers()
                .get("cache-status")
                .and_then(|v| v.to_str().ok())
        {
            trace.event(
                "cache",
                vec![("watertight.cache_status", Value::Str(status.to_owned()))],
            );
        }
        answer
    }

    /// The stored variant of `key` that matches a request with `headers`.
    fn lookup(&self, key: &str, headers: &HeaderMap) -> Option<Arc<Stored>> {
        let variants = self.cache.store.get(key)?;
        variants
            .list
            .iter()
            .find(|v| semantics::variant_matches(&v.vary, &v.secondary, headers))
            .cloned()
    }

    /// A stored response exists: use it, revalidate it, or refetch.
    async fn with_stored(
        &self,
        request: Request<ProxyBody>,
        arrival: Arrival,
        key: String,
        stored: Arc<Stored>,
        directives: &RequestDirectives,
        now: SystemTime,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let age = stored.age(now);
        let ttl = stored.ttl(now);
        let hit = |detail: Option<&'static str>| {
            CacheStatus {
                hit: true,
                ttl: Some(ttl.floor() as i64),
                detail,
                ..ours()
            }
            .to_header_value()
        };
        // Content-addressed (`immutable`) and fresh: a client's reload (`no-cache`,
        // `max-age=0`) does not make it revalidate (RFC 8246).
        let immutable_fresh = stored.directives.immutable && ttl > 0.0;
        let reuse = if immutable_fresh {
            Reuse::Fresh
        } else {
            semantics::reuse(
                directives,
                &stored.directives,
                Some(stored.current_lifetime()),
                age,
            )
        };
        match reuse {
            Reuse::Fresh => {
                self.cache.counts.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(answer_from(&stored, Head::of(&request), now, hit(None)).await);
            }
            Reuse::StaleAllowed => {
                self.cache.counts.stale.fetch_add(1, Ordering::Relaxed);
                return Ok(
                    answer_from(&stored, Head::of(&request), now, hit(Some("max-stale"))).await,
                );
            }
            Reuse::StaleWhileRevalidate => {
                // One background request revalidates it; everyone meanwhile gets it stale.
                if let Role::Leader(leader) = self.cache.coalescer.join(&key) {
                    let (parts, _) = request_parts(&request);
                    let this = self.clone();
                    let stored = stored.clone();
                    tokio::spawn(async move {
                        let revalidated = this
                            .revalidate(parts, arrival, key, stored, Some(leader))
                            .await;
                        // A full answer is stored as its body is read: read it.
                        if let Ok(Revalidated::Replaced(response)) = revalidated {
                            let mut body = response.into_body();
                            while let Some(Ok(_)) = body.frame().await {}
                        }
                    });
                }
                self.cache.counts.stale.fetch_add(1, Ordering::Relaxed);
                return Ok(answer_from(
                    &stored,
                    Head::of(&request),
                    now,
                    hit(Some("stale-while-revalidate")),
                )
                .await);
            }
            Reuse::Revalidate => {}
        }
        if directives.only_if_cached {
            return Ok(status_answer(
                StatusCode::GATEWAY_TIMEOUT,
                fwd_status(Forward::Stale, None),
            ));
        }
        let (parts, client) = request_parts(&request);
        let forward = if ttl > 0.0 {
            Forward::Request
        } else {
            Forward::Stale
        };
        match self
            .revalidate(parts, arrival, key, stored.clone(), None)
            .await
        {
            Ok(Revalidated::Fresh(fresh, upstream)) => {
                let now = SystemTime::now();
                let status = CacheStatus {
                    fwd: Some(forward),
                    fwd_status: Some(upstream),
                    ttl: ttl_at(&fresh, now),
                    stored: true,
                    ..ours()
                };
                Ok(answer_from(&fresh, Head::of(&client), now, status.to_header_value()).await)
            }
            Ok(Revalidated::Replaced(mut response)) => {
                let status = response.status();
                set_cache_status(&mut response, fwd_status(forward, Some(status)));
                Ok(response)
            }
            Err(failure) => {
                let now = SystemTime::now();
                let usable = semantics::stale_if_error(
                    directives,
                    &stored.directives,
                    Some(stored.current_lifetime()),
                    stored.age(now),
                );
                if !usable {
                    return failure.into_result();
                }
                self.cache.counts.stale.fetch_add(1, Ordering::Relaxed);
                let status = CacheStatus {
                    hit: true,
                    fwd: Some(Forward::Stale),
                    fwd_status: failure.status(),
                    ttl: ttl_at(&stored, now),
                    detail: Some("stale-if-error"),
                    ..ours()
                };
                let mut response =
                    answer_from(&stored, Head::of(&client), now, status.to_header_value()).await;
                response
                    .headers_mut()
                    .insert(DEGRADED_HEADER, HeaderValue::from_static("stale-if-error"));
                response.extensions_mut().insert(Degraded("stale-if-error"));
                Ok(response)
            }
        }
    }

    /// Sends a conditional request for `stored`; a 304 that selects it freshens it in the
    /// store, any other answer is handled as a fetch. `leader`, if given, is told how it went.
    async fn revalidate(
        &self,
        parts: http::request::Parts,
        arrival: Arrival,
        key: String,
        stored: Arc<Stored>,
        leader: Option<Leader>,
    ) -> Result<Revalidated, Failure> {
        self.cache
            .counts
            .revalidations
            .fetch_add(1, Ordering::Relaxed);
        let mut conditional = Request::from_parts(parts.clone(), body::empty());
        // The client's own validators are not ours to send: ask about the stored (whole)
        // response.
        for name in [
            header::IF_NONE_MATCH,
            header::IF_MODIFIED_SINCE,
            header::IF_MATCH,
            header::IF_UNMODIFIED_SINCE,
            header::RANGE,
        ] {
            conditional.headers_mut().remove(name);
        }
        *conditional.method_mut() = Method::GET;
        for (name, value) in &semantics::revalidation_headers(&stored.headers) {
            conditional
                .headers_mut()
                .insert(name.clone(), value.clone());
        }
        let request_time = SystemTime::now();
        let response = stack::call(self.inner.clone(), conditional, arrival).await;
        let response_time = SystemTime::now();
        let response = match response {
            Ok(response) if response.status().is_server_error() => {
                return Err(Failure::Status(response));
            }
            Ok(response) => response,
            Err(error) => return Err(Failure::Error(error)),
        };
        if response.status() == StatusCode::NOT_MODIFIED
            && semantics::freshens(&stored.headers, response.headers())
        {
            let mut headers = stored.headers.clone();
            semantics::merge_not_modified(&mut headers, response.headers());
            semantics::ensure_date(&mut headers, response_time);
            let fresh = Arc::new(build_stored(
                stored.status,
                headers,
                stored.body.clone(),
                (stored.vary.clone(), stored.secondary.clone()),
                (request_time, response_time),
                &self.config,
            ));
            self.cache.keep(&key, fresh.clone(), Some(&stored));
            if let Some(leader) = leader {
                leader.finish(Outcome::Stored);
            }
            return Ok(Revalidated::Fresh(fresh, 304));
        }
        // A full answer (or a 304 for another representation): treat it as a fetch.
        let request = Request::from_parts(parts, body::empty());
        let response = self.store_while_streaming(
            &request,
            key,
            response,
            request_time,
            response_time,
            leader,
        );
        Ok(Revalidated::Replaced(response))
    }

    /// No usable stored response: fetch, coalescing concurrent misses for `key`.
    async fn miss(
        &self,
        request: Request<ProxyBody>,
        arrival: Arrival,
        key: String,
        forward: Forward,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let leader = if request.method() == Method::GET {
            match self.cache.coalescer.join(&key) {
                Role::Leader(leader) => Some(leader),
                Role::Follower(follower) => {
                    let outcome = follower.wait(self.config.coalesce_timeout.get()).await;
                    if outcome == Outcome::Stored
                        && let Some(stored) = self.lookup(&key, request.headers())
                    {
                        // Answered by another request's fetch: coalesced, not a miss.
                        self.cache.counts.coalesced.fetch_add(1, Ordering::Relaxed);
                        let now = SystemTime::now();
                        let status = CacheStatus {
                            hit: true,
                            ttl: ttl_at(&stored, now),
                            collapsed: true,
                            ..ours()
                        };
                        return Ok(answer_from(
                            &stored,
                            Head::of(&request),
                            now,
                            status.to_header_value(),
                        )
                        .await);
                    }
                    None
                }
            }
        } else {
            None
        };
        // This request goes to the origin itself: a miss.
        self.cache.counts.misses.fetch_add(1, Ordering::Relaxed);
        let (parts, client) = request_parts(&request);
        let request_time = SystemTime::now();
        let mut response = stack::call(self.inner.clone(), request, arrival).await?;
        let response_time = SystemTime::now();
        let status = response.status();
        if parts.method == Method::GET {
            response = self.store_while_streaming(
                &client,
                key,
                response,
                request_time,
                response_time,
                leader,
            );
        }
        let stored = response.extensions().get::<Storing>().is_some();
        set_cache_status(
            &mut response,
            CacheStatus {
                fwd: Some(forward),
                fwd_status: Some(status.as_u16()),
                stored,
                ..ours()
            }
            .to_header_value(),
        );
        Ok(response)
    }

    /// If `response` may be stored, tees its body into the store as it streams; `leader`
    /// (if any) learns whether it was stored.
    fn store_while_streaming(
        &self,
        request: &Request<ProxyBody>,
        key: String,
        response: Response<ProxyBody>,
        request_time: SystemTime,
        response_time: SystemTime,
        leader: Option<Leader>,
    ) -> Response<ProxyBody> {
        let verdict = semantics::storable(
            request.method(),
            request.headers(),
            response.status(),
            response.headers(),
        )
        .and_then(|()| {
            if response.headers().contains_key(header::SET_COOKIE) {
                Err("set-cookie")
            } else {
                Ok(())
            }
        });
        let too_big =
            response.body().size_hint().lower() > self.cache.store.max_object_bytes() as u64;
        if verdict.is_err() || too_big {
            if let Some(leader) = leader {
                leader.finish(Outcome::Released);
            }
            return response;
        }
        let vary = semantics::vary(response.headers());
        let secondary = match &vary {
            semantics::Vary::Fields(fields) => semantics::secondary_key(fields, request.headers()),
            _ => Vec::new(),
        };
        let (mut parts, body) = response.into_parts();
        let mut headers = parts.headers.clone();
        semantics::strip_for_storage(&mut headers);
        semantics::ensure_date(&mut headers, response_time);
        let pending = Pending {
            route: self.config.clone(),
            cache: self.cache.clone(),
            key,
            status: parts.status,
            headers,
            vary,
            secondary,
            request_time,
            response_time,
            leader,
        };
        parts.extensions.insert(Storing);
        let recording = Recording {
            buffer: BytesMut::new(),
            limit: self.cache.store.max_object_bytes(),
            pending: Some(pending),
        };
        Response::from_parts(parts, body::boxed(Observed::new(body, recording)))
    }

    /// An unsafe method goes to the origin; a non-error answer invalidates what it changed.
    async fn invalidating(
        &self,
        request: Request<ProxyBody>,
        arrival: Arrival,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let method = request.method().clone();
        let target = absolute_uri(&request);
        let response = stack::call(self.inner.clone(), request, arrival).await?;
        if let Some(target) = target {
            for uri in
                semantics::invalidated_uris(&method, &target, response.status(), response.headers())
            {
                self.cache.forget(&uri);
            }
        }
        Ok(response)
    }
}

/// How a revalidation ended.
enum Revalidated {
    /// 304: the stored response, freshened, and the upstream status.
    Fresh(Arc<Stored>, u16),
    /// A new full answer (being stored if it may be).
    Replaced(Response<ProxyBody>),
}

/// A failed revalidation: an error, or a 5xx answer.
enum Failure {
    Error(ProxyError),
    Status(Response<ProxyBody>),
}

impl Failure {
    fn status(&self) -> Option<u16> {
        match self {
            Failure::Error(e) => Some(e.kind().status().as_u16()),
            Failure::Status(r) => Some(r.status().as_u16()),
        }
    }

    fn into_result(self) -> Result<Response<ProxyBody>, ProxyError> {
        match self {
            Failure::Error(e) => Err(e),
            Failure::Status(r) => Ok(r),
        }
    }
}

/// Put on a response whose body is being stored.
#[derive(Clone, Copy, Debug)]
struct Storing;

/// A response waiting for its body to be stored.
struct Pending {
    route: Arc<config::RouteCache>,
    cache: Arc<SharedCache>,
    key: String,
    status: StatusCode,
    headers: HeaderMap,
    vary: semantics::Vary,
    secondary: Vec<Option<String>>,
    request_time: SystemTime,
    response_time: SystemTime,
    leader: Option<Leader>,
}

impl Pending {
    fn complete(self, body: Bytes) {
        let stored = Arc::new(build_stored(
            self.status,
            self.headers,
            body,
            (self.vary, self.secondary),
            (self.request_time, self.response_time),
            &self.route,
        ));
        self.cache.keep(&self.key, stored, None);
        self.cache.counts.stored.fetch_add(1, Ordering::Relaxed);
        if let Some(leader) = self.leader {
            leader.finish(Outcome::Stored);
        }
    }
}

/// Keeps a copy of a response body as it streams to the client; when it ends (within the
/// size limit) the copy is stored. Dropped early, failed, or too big: nothing is stored, and
/// the waiting requests are released (the pending store's leader goes with it).
struct Recording {
    buffer: BytesMut,
    limit: usize,
    pending: Option<Pending>,
}

impl Observer for Recording {
    fn data(&mut self, data: &Bytes) {
        if self.buffer.len() + data.len() > self.limit {
            // Too big to keep: stream on, store nothing.
            self.pending.take();
            self.buffer = BytesMut::new();
        } else if self.pending.is_some() {
            self.buffer.extend_from_slice(data);
        }
    }

    fn failed(&mut self) {
        self.pending.take();
    }

    fn end(&mut self) {
        if let Some(pending) = self.pending.take() {
            pending.complete(std::mem::take(&mut self.buffer).freeze());
        }
    }
}

/// A stored response built from what was received, with its freshness worked out and the
/// route's stale windows filled in where the origin gave none.
fn build_stored(
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    (vary, secondary): (semantics::Vary, Vec<Option<String>>),
    (request_time, response_time): (SystemTime, SystemTime),
    route: &config::RouteCache,
) -> Stored {
    let mut directives: ResponseDirectives = semantics::response_directives(&headers);
    let lifetime = semantics::freshness_lifetime(status, &headers, &directives, response_time)
        .unwrap_or(Duration::ZERO);
    let initial_age = semantics::initial_age(&headers, request_time, response_time);
    let grace = |window: config::Duration| window.non_zero();
    if directives.stale_while_revalidate.is_none() {
        directives.stale_while_revalidate = grace(route.stale_while_revalidate);
    }
    if directives.stale_if_error.is_none() {
        directives.stale_if_error = grace(route.stale_if_error);
    }
    let tags = tags_of(&headers);
    Stored {
        status,
        body,
        vary,
        secondary,
        request_time,
        response_time,
        initial_age,
        lifetime,
        directives,
        tags,
        soft_purged: AtomicBool::new(false),
        encoded: Default::default(),
        headers,
    }
}

/// The surrogate keys a response carries (`Surrogate-Key`, `Cache-Tag`).
fn tags_of(headers: &HeaderMap) -> Vec<String> {
    TAG_HEADERS
        .iter()
        .flat_map(|name| headers.get_all(*name))
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([' ', ',']))
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The answer to `request` from `stored`: 304 if the request's conditionals say so, no body
/// for HEAD, `Age` and `Cache-Status` set.
async fn answer_from(
    stored: &Arc<Stored>,
    request: Head<'_>,
    now: SystemTime,
    cache_status: HeaderValue,
) -> Response<ProxyBody> {
    let not_modified = semantics::answer_not_modified_for(
        request.method(),
        stored.status,
        request.headers(),
        &stored.headers,
    );
    let mut response = if not_modified {
        let mut response = Response::new(body::empty());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        // RFC 9110 §15.4.5: the fields a 200 would have carried that describe the cache state.
        for name in [
            header::CACHE_CONTROL,
            header::CONTENT_LOCATION,
            header::DATE,
            header::ETAG,
            header::EXPIRES,
            header::VARY,
            header::LAST_MODIFIED,
        ] {
            for value in stored.headers.get_all(&name) {
                response.headers_mut().append(name.clone(), value.clone());
            }
        }
        response
    } else {
        let range = request
            .headers()
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .filter(|_| request.method() == Method::GET && stored.status == StatusCode::OK)
            .map(|v| semantics::evaluate_range(v, stored.body.len() as u64))
            .unwrap_or(RangeAnswer::Full);
        let length = stored.body.len();
        let (status, body, content_range) = match range {
            RangeAnswer::Full => (stored.status, stored.body.clone(), None),
            RangeAnswer::Partial { start, end } => (
                StatusCode::PARTIAL_CONTENT,
                stored.body.slice(start as usize..=end as usize),
                Some(format!("bytes {start}-{end}/{length}")),
            ),
            RangeAnswer::Unsatisfiable => (
                StatusCode::RANGE_NOT_SATISFIABLE,
                Bytes::new(),
                Some(format!("bytes */{length}")),
            ),
        };
        let body = if request.method() == Method::HEAD {
            body::empty()
        } else {
            body::full(body)
        };
        let mut response = Response::new(body);
        *response.status_mut() = status;
        *response.headers_mut() = stored.headers.clone();
        if content_range.is_none() && status == StatusCode::OK {
            encode(&mut response, stored, request).await;
        }
        if let Some(content_range) = content_range {
            // The length is the part's, set from the body.
            response.headers_mut().remove(header::CONTENT_LENGTH);
            if let Ok(value) = HeaderValue::from_str(&content_range) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
        }
        response
    };
    let age = stored.age(now).as_secs();
    response
        .headers_mut()
        .insert(header::AGE, HeaderValue::from(age));
    response
        .headers_mut()
        .insert(HeaderName::from_static("cache-status"), cache_status);
    response
}

/// Compresses a whole answer from `stored` for a client that accepts brotli or gzip, when the
/// origin did not compress a compressible type; either way such an answer varies on
/// `Accept-Encoding`. The compressed body is made once per coding and kept with the stored
/// response (off the runtime's threads when it is large).
async fn encode(response: &mut Response<ProxyBody>, stored: &Arc<Stored>, request: Head<'_>) {
    if !encode::compressible(&stored.headers, stored.body.len()) {
        return;
    }
    add_vary_accept_encoding(response.headers_mut());
    let Some(coding) = encode::negotiate(request.headers()) else {
        return;
    };
    let body = if stored.body.len() > 256 * 1024 {
        let stored = stored.clone();
        match tokio::task::spawn_blocking(move || stored.encoded(coding)).await {
            Ok(body) => body,
            Err(_) => return,
        }
    } else {
        stored.encoded(coding)
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_ENCODING,
        HeaderValue::from_static(coding.token()),
    );
    headers.remove(header::CONTENT_LENGTH);
    // Another representation: a strong validator must differ (RFC 9110 §8.8.1).
    if let Some(etag) = headers.get(header::ETAG).and_then(|v| v.to_str().ok())
        && let Some(opaque) = etag.strip_suffix('"').filter(|_| etag.starts_with('"'))
        && let Ok(value) = HeaderValue::from_str(&format!("{opaque}-{}\"", coding.token()))
    {
        headers.insert(header::ETAG, value);
    }
    if request.method() != Method::HEAD {
        *response.body_mut() = body::full(body);
    }
}

/// What an answer from the store needs of the request (borrowed apart from its body, which
/// is not `Sync`).
#[derive(Clone, Copy)]
struct Head<'a> {
    method: &'a Method,
    headers: &'a HeaderMap,
}

impl<'a> Head<'a> {
    fn of(request: &'a Request<ProxyBody>) -> Self {
        Self {
            method: request.method(),
            headers: request.headers(),
        }
    }

    fn method(&self) -> &'a Method {
        self.method
    }

    fn headers(&self) -> &'a HeaderMap {
        self.headers
    }
}

/// Adds `Accept-Encoding` to the answer's `Vary` unless it is there (or `*`).
fn add_vary_accept_encoding(headers: &mut HeaderMap) {
    let listed = headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|f| {
            let f = f.trim();
            f == "*" || f.eq_ignore_ascii_case("accept-encoding")
        });
    if !listed {
        headers.append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
}

/// A bodiless answer the cache makes itself (`only-if-cached` without a stored response).
fn status_answer(status: StatusCode, cache_status: HeaderValue) -> Response<ProxyBody> {
    let mut response = Response::new(body::empty());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(HeaderName::from_static("cache-status"), cache_status);
    response
}

fn fwd_status(forward: Forward, upstream: Option<StatusCode>) -> HeaderValue {
    CacheStatus {
        fwd: Some(forward),
        fwd_status: upstream.map(|s| s.as_u16()),
        ..ours()
    }
    .to_header_value()
}

/// A `Cache-Status` entry of this cache, to fill in.
fn ours() -> CacheStatus<'static> {
    CacheStatus {
        cache: CACHE_NAME,
        ..CacheStatus::default()
    }
}

/// Whole seconds of freshness `stored` has left at `now` (negative once stale).
fn ttl_at(stored: &Stored, now: SystemTime) -> Option<i64> {
    Some(stored.ttl(now).floor() as i64)
}

fn set_cache_status(response: &mut Response<ProxyBody>, value: HeaderValue) {
    response
        .headers_mut()
        .insert(HeaderName::from_static("cache-status"), value);
}

/// The request's head, twice: one to send (without a body) and one to answer with.
fn request_parts(request: &Request<ProxyBody>) -> (http::request::Parts, Request<ProxyBody>) {
    let mut builder = Request::builder()
        .method(request.method().clone())
        .uri(request.uri().clone())
        .version(request.version());
    if let Some(headers) = builder.headers_mut() {
        *headers = request.headers().clone();
    }
    let (mut parts, _) = builder
        .body(())
        .expect("a copy of a valid request head is valid")
        .into_parts();
    parts.extensions = request.extensions().clone();
    let mut client = Request::new(body::empty());
    *client.method_mut() = request.method().clone();
    *client.uri_mut() = request.uri().clone();
    *client.headers_mut() = request.headers().clone();
    (parts, client)
}

/// The request's absolute URI as the cache keys it: `http://host/path?query` (host lowercase,
/// from `Host` or the URI's authority). `None` without a host.
fn primary_key(request: &Request<ProxyBody>) -> Option<String> {
    absolute_uri(request).map(|uri| uri.to_string())
}

fn absolute_uri(request: &Request<ProxyBody>) -> Option<http::Uri> {
    let host = request
        .uri()
        .authority()
        .map(|a| a.as_str().to_ascii_lowercase())
        .or_else(|| {
            request
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_ascii_lowercase)
        })?;
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    http::Uri::builder()
        .scheme("http")
        .authority(host)
        .path_and_query(path)
        .build()
        .ok()
}
