//! The HTTP cache end to end, organised by RFC section: a real origin on loopback, the proxy
//! with a caching route, and a client. Each test counts what reached the origin.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use http::Request;
use watertight_proxy::Proxy;
use watertight_proxy::body::{empty, full};

use support::origin::{Origin, Reply};
use support::{Answer, get, h1, proxy, send};

/// A proxy caching everything it sends to `origin`, with `cache` lines on the route.
async fn caching(origin: &Origin, cache: &str) -> (Proxy, SocketAddr) {
    proxy(&format!(
        "access_log: \"off\"\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    routes:\n      - name: all\n        cluster: origin\n        cache: {cache}\nclusters:\n  - name: origin\n    endpoints:\n      - address: \"{}\"\n",
        origin.address
    ))
    .await
}

async fn fetch(proxy: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Answer {
    get(&h1(), proxy, path, headers).await
}

fn cache_status(answer: &Answer) -> String {
    answer.header("cache-status").unwrap_or_default().to_owned()
}

// RFC 9111 §4.2: freshness

#[tokio::test]
async fn s4_2_a_fresh_response_is_served_from_the_cache_with_its_age() {
    let origin = Origin::start(Reply::ok("hello", &[("cache-control", "max-age=60")])).await;
    let (_proxy, address) = caching(&origin, "{}").await;
    let first = fetch(address, "/a", &[]).await;
    assert_eq!(first.text(), "hello");
    assert!(
        cache_status(&first).contains("fwd=uri-miss"),
        "{}",
        cache_status(&first)
    );
    assert!(cache_status(&first).contains("stored"));
    let second = fetch(address, "/a", &[]).await;
    assert_eq!(second.text(), "hello");
    assert!(
        cache_status(&second).starts_with("watertight; hit"),
        "{}",
        cache_status(&second)
    );
    assert!(second.header("age").is_some());
    assert_eq!(origin.requests(), 1);
    // Another URL is another entry.
    fetch(address, "/b", &[]).await;
    assert_eq!(origin.requests(), 2);
}

#[tokio::test]
async fn s4_2_1_s_maxage_overrides_max_age_for_a_shared_cache() {
    let origin = Origin::start(Reply::ok(
        "x",
        &[("cache-control", "max-age=60, s-maxage=0")],
    ))
    .await;
    let (_proxy, address) = caching(&origin, "{}").await;
    fetch(address, "/", &[]).await;
    fetch(address, "/", &[]).await;
    assert_eq!(
        origin.requests(),
        2,
        "s-maxage=0: stale at once for a shared cache"
    );
}

#[tokio::test]
async fn s4_2_1_an_expires_in_the_past_is_stale() {
    let origin = Origin::start(Reply::ok(
        "x",
        &[("expires", "Thu, 01 Jan 1970 00:00:00 GMT")],
    ))
    .await;
    let (_proxy, address) = caching(&origin, "{}").await;
    fetch(address, "/", &[]).await;
    fetch(address, "/", &[]).await;
    assert_eq!(origin.requests(), 2);
}

#[tokio::test]
async fn s4_2_2_a_heuristically_cacheable_response_with_last_modified_is_reused() {
    let long_ago =
        httpdate::fmt_http_date(std::time::SystemTime::now() - Duration::from_secs(100 * 86_400));
    let origin = Origin::start(Reply::ok("x", &[("last-modified", &long_ago)])).await;
    let (_proxy, address) = caching(&origin, "{}").await;
    fetch(address, "/", &[]).await;
    let second = fetch(address, "/", &[]).await;
    assert!(
        cache_status(&second).contains("hit"),
        "{}",
        cache_status(&second)
    );
    assert_eq!(origin.requests(), 1);
}

// RFC 9111 §3 and §5.2.2: what a shared cache may store

#[tokio::test]
async fn s5_2_2_no_store_private_set_cookie_and_authorization_are_not_stored() {
    for (headers, request) in [
        (vec![("cache-control", "no-store, max-age=60")], vec![]),
        (vec![("cache-control", "private, max-age=60")], vec![]),
        (
            vec![("cache-control", "max-age=60"), ("set-cookie", "id=1")],
            vec![],
        ),
        (
            vec![("cache-control", "max-age=60")],
            vec![("authorization", "Bearer x")],
        ),
    ] {
        let origin = Origin::start(Reply::ok("x", &headers)).await;
        let (_proxy, address) = caching(&origin, "{}").await;
        fetch(address, "/", &request).await;
        let second = fetch(address, "/", &request).await;
        assert_eq!(origin.requests(), 2, "{headers:?} {request:?}");
        assert!(!cache_status(&second).contains("hit"));
    }
}

#[tokio::test]
async fn s3_5_authorization_with_public_is_stored() {
    let origin = Origin::start(Reply::ok("x", &[("cache-control", "public, max-age=60")])).await;
    let (_proxy, address) = caching(&origin, "{}").await;
    fetch(address, "/", &[("authorization", "Bearer x")]).await;
    fetch(address, "/", &[("authorization", "Bearer x")]).await;
    assert_eq!(origin.requests(), 1);
}

// RFC 9111 §5.2.1: request directives

#[tokio::test]
async fn s5_2_1_request_no_cache_revalidates_and_only_if_cached_answers_504_on_a_miss() {
    let origin = Origin::start(Reply::ok("x", &[("cache-control", "max-age=60")])).await;
    let (_proxy, address) = caching(&origin, "{}").await;
    let miss = fetch(address, "/", &[("cache-control", "only-if-cached")]).await;
    assert_eq!(miss.status, 504);
    assert_eq!(origin.requests(), 0);
    fetch(address, "/", &[]).await;
    fetch(address, "/", &[("cache-control", "no-cache")]).await;
    assert_eq!(origin.requests(), 2);
    let hit = fetch(address, "/", &[("cache-control", "only-if-cached")]).await;
    assert_eq!(hit.status, 200);
    assert_eq!(origin.requests(), 2);
}

// RFC 9111 §4.3: validation

#[tokio::test]
async fn s4_3_a_stale_response_is_revalidated_and_a_304_freshens_it() {
    let origin = Origin::start(Reply::ok(
        "body",
        &[("cache-control", "max-age=0"), ("etag", "\"v1\"")],
    ))
    .await;
    let (_proxy, address) = caching(&origin, "{}").await;
    fetch(address, "/", &[]).await;
    origin.reply(Reply::status(
        304,
        "",
        &[("cache-control", "max-age=60"), ("etag", "\"v1\"")],
    ));
    let revalidated = fetch(address, "/", &[]).await;
    assert_eq!(revalidated.status, 200);
    assert_eq!(revalidated.text(), "body", "the stored body, freshened");
    assert!(
        cache_status(&revalidated).contains("fwd-status=304"),
        "{}",
        cache_status(&revalidated)
    );
    assert_eq!(origin.request_headers(1)["if-none-match"], "\"v1\"");
    // The 304's max-age=60 now applies: a hit.
    let hit = fetch(address, "/", &[]).await;
    assert!(cache_status(&hit).contains("hit"));
    assert_eq!(origin.requests(), 2);
}

#[tokio::test]
async fn s4_3_2_a_client_conditional_is_answered_304_from_the_cache() {
    let origin = Origin::start(Reply::ok(
        "body",
        &[("cache-control", "max-age=60"), ("etag", "W/\"v1\"")],
    ))
    .await;
    let (_proxy, address) = caching(&origin, "{}").await;
    fetch(address, "/", &[]).await;
    let not_modified = fetch(address, "/", &[("if-none-match", "\"v1\"")]).await;
    assert_eq!(
        not_modified.status, 304,
        "weak comparison for If-None-Match"
    );
    assert!(not_modified.body.is_empty());
    assert_eq!(not_modified.header("etag"), Some("W/\"v1\""));
    let modified = fetch(address, "/", &[("if-none-match", "\"v2\"")]).await;
    assert_eq!(modified.status, 200);
    assert_eq!(origin.requests(), 1);
}

// RFC 9111 §4.1: Vary

#[tokio::test]
async fn s4_1_variants_are_kept_per_varied_request_field_and_vary_star_never_matches() {
    let origin = Origin::start(Reply::ok("x", &[])).await;
    origin.handle(|request| {
        let language = request
            .headers()
            .get("accept-language")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_owned();
        Reply::ok(
            &language,
            &[("cache-control", "max-age=60"), ("vary", "Accept-Language")],
        )
    });
    let (_proxy, address) = caching(&origin, "{}").await;
    assert_eq!(
        fetch(address, "/", &[("accept-language", "fr")])
            .await
            .text(),
        "fr"
    );
    let second_variant = fetch(address, "/", &[("accept-language", "de")]).await;
    assert_eq!(second_variant.text(), "de");
    assert!(
        cache_status(&second_variant).contains("fwd=vary-miss"),
        "{}",
        cache_status(&second_variant)
    );
    assert_eq!(
        fetch(address, "/", &[("accept-language", "fr")])
            .await
            .text(),
        "fr"
    );
    assert_eq!(
        fetch(address, "/", &[("accept-language", "de")])
            .await
            .text(),
        "de"
    );
    assert_eq!(origin.requests(), 2);

    let star = Origin::start(Reply::ok(
        "x",
        &[("cache-control", "max-age=60"), ("vary", "*")],
    ))
    .await;
    let (_proxy, address) = caching(&star, "{}").await;
    fetch(address, "/", &[]).await;
    fetch(address, "/", &[]).await;
    assert_eq!(star.requests(), 2);
}

// RFC 9111 §4.4: invalidation

#[tokio::test]
async fn s4_4_an_unsafe_method_invalidates_its_target() {
    let origin = Origin::start(Reply::ok("v1", &[("cache-control", "max-age=60")])).await;
    let (_proxy, address) = caching(&origin, "{}").await;
    fetch(address, "/item", &[]).await;
    fetch(address, "/item", &[]).await;
    assert_eq!(origin.requests(), 1);
    let post = Request::post(format!("http://{address}/item"))
        .body(full("change"))
        .unwrap();
    assert_eq!(send(&h1(), post).await.status, 200);
    origin.reply(Reply::ok("v2", &[("cache-control", "max-age=60")]));
    assert_eq!(fetch(address, "/item", &[]).await.text(), "v2");
    assert_eq!(origin.requests(), 3);
}

// RFC 9110 §9.3.2: HEAD from a stored GET

#[tokio::test]
async fn head_is_answered_from_a_stored_get() {
    let origin = Origin::start(Reply::ok("body", &[("cache-control", "max-age=60")])).await;
    let (_proxy, address) = caching(&origin, "{}").await;
    fetch(address, "/", &[]).await;
    let head = Request::head(format!("http://{address}/"))
        .body(empty())
        .unwrap();
    let answer = send(&h1(), head).await;
    assert_eq!(answer.status, 200);
    assert!(answer.body.is_empty());
    assert_eq!(origin.requests(), 1);
}

// RFC 5861: stale-while-revalidate and stale-if-error

#[tokio::test]
async fn rfc5861_stale_if_error_serves_the_stale_response_when_the_origin_fails() {
    let origin = Origin::start(Reply::ok(
        "good",
        &[("cache-control", "max-age=0, stale-if-error=60")],
    ))
    .await;
    let (_proxy, address) = caching(&origin, "{}").await;
    fetch(address, "/", &[]).await;
    origin.reply(Reply::status(503, "down", &[]));
    let answer = fetch(address, "/", &[]).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), "good");
    assert_eq!(
        answer.header("x-watertight-degraded"),
        Some("stale-if-error")
    );
    assert!(
        cache_status(&answer).contains("stale-if-error"),
        "{}",
        cache_status(&answer)
    );
}

#[tokio::test]
async fn the_route_grace_applies_when_the_origin_says_nothing() {
    let origin = Origin::start(Reply::ok("good", &[("cache-control", "max-age=0")])).await;
    let (_proxy, address) = caching(&origin, "{ stale_if_error: 1m }").await;
    fetch(address, "/", &[]).await;
    origin.reply(Reply::status(500, "down", &[]));
    assert_eq!(fetch(address, "/", &[]).await.text(), "good");
    // Without the grace the failure goes through.
    let strict = Origin::start(Reply::ok("good", &[("cache-control", "max-age=0")])).await;
    let (_proxy, address) = caching(&strict, "{}").await;
    fetch(address, "/", &[]).await;
    strict.reply(Reply::status(500, "down", &[]));
    assert_eq!(fetch(address, "/", &[]).await.status, 500);
}

#[tokio::test]
async fn rfc5861_stale_while_revalidate_answers_at_once_and_refreshes_in_the_background() {
    let origin = Origin::start(Reply::ok(
        "v1",
        &[("cache-control", "max-age=0, stale-while-revalidate=60")],
    ))
    .await;
    let (_proxy, address) = caching(&origin, "{}").await;
    fetch(address, "/", &[]).await;
    origin.reply(
        Reply::ok("v2", &[("cache-control", "max-age=60")]).after(Duration::from_millis(300)),
    );
    let started = std::time::Instant::now();
    let stale = fetch(address, "/", &[]).await;
    assert_eq!(stale.text(), "v1");
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "not waiting for the origin"
    );
    // The background refresh lands; then the new version is a hit.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let answer = fetch(address, "/", &[]).await;
        if answer.text() == "v2" {
            assert!(cache_status(&answer).contains("hit"));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "refreshed in the background"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(origin.requests(), 2, "one background revalidation");
}

// Request coalescing

#[tokio::test]
async fn a_burst_of_misses_for_one_url_makes_one_origin_request() {
    let origin = Origin::start(
        Reply::ok("x", &[("cache-control", "max-age=60")]).after(Duration::from_millis(300)),
    )
    .await;
    let (_proxy, address) = caching(&origin, "{}").await;
    let burst: Vec<_> = (0..50)
        .map(|_| tokio::spawn(async move { fetch(address, "/cold", &[]).await }))
        .collect();
    let mut collapsed = 0;
    for request in burst {
        let answer = request.await.unwrap();
        assert_eq!(answer.status, 200);
        if cache_status(&answer).contains("collapsed") {
            collapsed += 1;
        }
    }
    assert_eq!(origin.requests(), 1);
    assert_eq!(collapsed, 49);
}

#[tokio::test]
async fn uncacheable_answers_release_the_waiters_instead_of_serialising_them() {
    let origin = Origin::start(
        Reply::ok("x", &[("cache-control", "no-store")]).after(Duration::from_millis(300)),
    )
    .await;
    let (_proxy, address) = caching(&origin, "{}").await;
    let started = std::time::Instant::now();
    let burst: Vec<_> = (0..10)
        .map(|_| tokio::spawn(async move { fetch(address, "/live", &[]).await }))
        .collect();
    for request in burst {
        assert_eq!(request.await.unwrap().status, 200);
    }
    assert_eq!(origin.requests(), 10);
    // One leader's 300 ms, then the rest at once: far from 10 × 300 ms.
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
}

// Purge

#[tokio::test]
async fn purges_forget_by_url_prefix_and_tag_and_a_soft_purge_forces_revalidation() {
    use watertight_proxy::cache::PurgeTarget;
    let origin = Origin::start(Reply::ok(
        "x",
        &[
            ("cache-control", "max-age=60"),
            ("surrogate-key", "product-1 catalog"),
        ],
    ))
    .await;
    let (proxy, address) = caching(&origin, "{}").await;
    let cache = proxy
        .current()
        .cache
        .clone()
        .expect("a caching route has a cache");
    for path in ["/p/1", "/p/2", "/q"] {
        fetch(address, path, &[]).await;
    }
    assert_eq!(origin.requests(), 3);
    let url = |path: &str| format!("http://{address}{path}");
    assert_eq!(cache.purge(&PurgeTarget::Url(url("/q")), false), 1);
    assert_eq!(cache.purge(&PurgeTarget::Prefix(url("/p/")), true), 2);
    fetch(address, "/p/1", &[]).await;
    assert_eq!(origin.requests(), 4, "a soft-purged entry is revalidated");
    fetch(address, "/q", &[]).await;
    assert_eq!(origin.requests(), 5, "a hard-purged entry is fetched again");
    assert!(cache.purge(&PurgeTarget::Tag("catalog".into()), false) >= 3);
    fetch(address, "/p/2", &[]).await;
    assert_eq!(origin.requests(), 6);
    assert!(cache.purge(&PurgeTarget::All, false) >= 1);
}

// RFC 9110 §14: a range of a complete stored response

#[tokio::test]
async fn s14_a_byte_range_is_cut_from_the_stored_response() {
    let origin = Origin::start(Reply::ok("0123456789", &[("cache-control", "max-age=60")])).await;
    let (_proxy, address) = caching(&origin, "{}").await;
    fetch(address, "/r", &[]).await;
    let part = fetch(address, "/r", &[("range", "bytes=2-5")]).await;
    assert_eq!(part.status, 206);
    assert_eq!(part.text(), "2345");
    assert_eq!(part.header("content-range"), Some("bytes 2-5/10"));
    let suffix = fetch(address, "/r", &[("range", "bytes=-3")]).await;
    assert_eq!(suffix.text(), "789");
    let beyond = fetch(address, "/r", &[("range", "bytes=20-")]).await;
    assert_eq!(beyond.status, 416);
    assert_eq!(beyond.header("content-range"), Some("bytes */10"));
    let several = fetch(address, "/r", &[("range", "bytes=0-1,4-5")]).await;
    assert_eq!(several.status, 200, "several ranges: the whole response");
    assert_eq!(origin.requests(), 1);
    // If-Range is the origin's to judge: forwarded.
    fetch(
        address,
        "/r",
        &[("range", "bytes=0-1"), ("if-range", "\"x\"")],
    )
    .await;
    assert_eq!(origin.requests(), 2);
}

// Tiered caching: edges send misses to shield caches picked by a consistent hash of the URL

#[tokio::test]
async fn with_shields_each_object_is_fetched_from_the_origin_once_whatever_the_edge() {
    let origin = Origin::start(Reply::ok("x", &[("cache-control", "max-age=60")])).await;
    // Two shields, each caching in front of the origin.
    let (_shield_a, a) = caching(&origin, "{}").await;
    let (_shield_b, b) = caching(&origin, "{}").await;
    // Two edges, each caching, hashing misses onto the shields by URL.
    let edge = |_: usize| {
        format!(
            "access_log: \"off\"\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    routes:\n      - name: all\n        cluster: shields\n        cache: {{}}\nclusters:\n  - name: shields\n    balancer: hash\n    hash: {{ key: url }}\n    endpoints:\n      - address: \"{a}\"\n      - address: \"{b}\"\n"
        )
    };
    let (_edge_1, one) = proxy(&edge(1)).await;
    let (_edge_2, two) = proxy(&edge(2)).await;
    // Clients ask for one site, whichever edge they reach.
    let site = [("host", "www.example.com")];
    let paths: Vec<String> = (0..20).map(|i| format!("/object/{i}")).collect();
    for path in &paths {
        assert_eq!(fetch(one, path, &site).await.status, 200);
    }
    // The other edge in another order: a balancer that is not keyed on the URL would send
    // objects to the other shield.
    for path in paths.iter().rev() {
        assert_eq!(fetch(two, path, &site).await.status, 200);
    }
    // Both edges missed every object, but each object reached the origin once: both edges
    // picked the same shield for it.
    assert_eq!(origin.requests(), 20);
}

// Compression on the way out

#[tokio::test]
async fn uncompressed_text_is_compressed_for_clients_that_accept_it_and_varies_on_it() {
    use std::io::Read;
    let page = "<p>watertight keeps cascades out</p>\n".repeat(200);
    let origin = Origin::start(Reply::ok(
        &page,
        &[
            ("cache-control", "max-age=60"),
            ("content-type", "text/html"),
            ("etag", "\"p1\""),
        ],
    ))
    .await;
    let (_proxy, address) = caching(&origin, "{}").await;
    let identity = fetch(address, "/page", &[]).await;
    assert_eq!(identity.text(), page);
    let gzip = fetch(address, "/page", &[("accept-encoding", "gzip")]).await;
    assert_eq!(gzip.header("content-encoding"), Some("gzip"));
    assert_eq!(
        gzip.header("etag"),
        Some("\"p1-gzip\""),
        "another representation"
    );
    let mut text = String::new();
    flate2::read::GzDecoder::new(&gzip.body[..])
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, page);
    let br = fetch(
        address,
        "/page",
        &[("accept-encoding", "gzip, deflate, br")],
    )
    .await;
    assert_eq!(br.header("content-encoding"), Some("br"));
    let mut bytes = Vec::new();
    brotli::Decompressor::new(&br.body[..], 4096)
        .read_to_end(&mut bytes)
        .unwrap();
    assert_eq!(bytes, page.as_bytes());
    assert!(br.body.len() < page.len() / 5);
    // Every answer of it says it varies on Accept-Encoding, the identity one too.
    let identity = fetch(address, "/page", &[]).await;
    assert!(identity.header("content-encoding").is_none());
    for answer in [&identity, &gzip, &br] {
        assert!(
            answer
                .header("vary")
                .is_some_and(|v| v.to_ascii_lowercase().contains("accept-encoding"))
        );
    }
    assert_eq!(origin.requests(), 1);
}

#[tokio::test]
async fn images_no_transform_and_already_encoded_bodies_are_left_alone() {
    let big = "x".repeat(4096);
    for headers in [
        vec![
            ("cache-control", "max-age=60"),
            ("content-type", "image/png"),
        ],
        vec![
            ("cache-control", "max-age=60, no-transform"),
            ("content-type", "text/plain"),
        ],
        vec![
            ("cache-control", "max-age=60"),
            ("content-type", "text/plain"),
            ("content-encoding", "identity"),
        ],
    ] {
        let origin = Origin::start(Reply::ok(&big, &headers)).await;
        let (_proxy, address) = caching(&origin, "{}").await;
        fetch(address, "/", &[]).await;
        let answer = fetch(address, "/", &[("accept-encoding", "gzip, br")]).await;
        assert_ne!(
            answer.header("content-encoding"),
            Some("gzip"),
            "{headers:?}"
        );
        assert_ne!(answer.header("content-encoding"), Some("br"), "{headers:?}");
        assert_eq!(answer.body.len(), big.len(), "{headers:?}");
    }
}

// The disk tier

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_disk_tier_survives_a_restart_and_never_serves_a_corrupted_file() {
    let origin = Origin::start(Reply::ok("kept", &[("cache-control", "max-age=600")])).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "cache:\n  disk: {{ path: \"{}\" }}\naccess_log: \"off\"\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    routes:\n      - name: all\n        cluster: origin\n        cache: {{}}\nclusters:\n  - name: origin\n    endpoints:\n      - address: \"{}\"\n",
        dir.path().display(),
        origin.address
    );
    // The same site through each proxy (the cache key has the host).
    const SITE: [(&str, &str); 1] = [("host", "www.example.com")];
    let files = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(dir.path())
            .unwrap()
            .map(|f| f.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "wtc"))
            .collect()
    };
    {
        let (first, address) = proxy(&yaml).await;
        assert_eq!(fetch(address, "/kept", &SITE).await.text(), "kept");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while files().is_empty() {
            assert!(std::time::Instant::now() < deadline, "written to disk");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(first);
    }
    // A new process (here: a new proxy) finds it on disk.
    let (_second, address) = proxy(&yaml).await;
    let answer = fetch(address, "/kept", &SITE).await;
    assert_eq!(answer.text(), "kept");
    assert!(
        cache_status(&answer).contains("hit"),
        "{}",
        cache_status(&answer)
    );
    assert_eq!(origin.requests(), 1);

    // Corrupt the file: a third proxy does not serve it, fetches again, and drops the file.
    let path = files().pop().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() - 10;
    bytes[at] ^= 0x55;
    std::fs::write(&path, &bytes).unwrap();
    let (_third, address) = proxy(&yaml).await;
    assert_eq!(fetch(address, "/kept", &SITE).await.text(), "kept");
    assert_eq!(origin.requests(), 2, "the corrupted copy was not served");
}

// RFC 8246: immutable

#[tokio::test]
async fn rfc8246_a_fresh_immutable_response_is_not_revalidated_on_a_reload() {
    let origin = Origin::start(Reply::ok(
        "app.3f2a1c.js",
        &[("cache-control", "max-age=31536000, immutable")],
    ))
    .await;
    let (_proxy, address) = caching(&origin, "{}").await;
    fetch(address, "/app.3f2a1c.js", &[]).await;
    for reload in [
        ("cache-control", "no-cache"),
        ("cache-control", "max-age=0"),
    ] {
        let answer = fetch(address, "/app.3f2a1c.js", &[reload]).await;
        assert!(cache_status(&answer).contains("hit"), "{reload:?}");
    }
    assert_eq!(origin.requests(), 1);
    // Without immutable, a reload revalidates.
    let mutable = Origin::start(Reply::ok("x", &[("cache-control", "max-age=600")])).await;
    let (_proxy, address) = caching(&mutable, "{}").await;
    fetch(address, "/", &[]).await;
    fetch(address, "/", &[("cache-control", "no-cache")]).await;
    assert_eq!(mutable.requests(), 2);
}
