//! The admin API's maintenance actions: drain, disable and enable an endpoint, and fail back
//! a cluster, without a config change.

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::Value;

use watertight_admin::Admin;
use watertight_demo::SampleService;
use watertight_proxy::Proxy;

async fn service(replica: usize) -> SampleService {
    SampleService::start("app", replica, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

async fn admin(primary: &SampleService, standby: &SampleService, failback: &str) -> Admin {
    let yaml = format!(
        "access_log: \"off\"\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    routes:\n      - name: all\n        cluster: app\nclusters:\n  - name: app\n    failback: {failback}\n    endpoints:\n      - {{ address: \"{}\", priority: 0 }}\n      - {{ address: \"{}\", priority: 1 }}\n",
        primary.local_addr(),
        standby.local_addr()
    );
    let loaded = watertight_config::load_str(&yaml, "test.yaml").unwrap();
    Admin::new(Proxy::start(loaded).await.unwrap())
}

async fn post(admin: &Admin, path: &str) -> (StatusCode, Value) {
    admin.answer(Method::POST, path, Bytes::new()).await
}

async fn cluster(admin: &Admin) -> Value {
    let (status, body) = admin.answer(Method::GET, "/clusters", Bytes::new()).await;
    assert_eq!(status, StatusCode::OK);
    body["clusters"][0].clone()
}

#[tokio::test]
async fn disable_fails_over_enable_restores_and_manual_failback_waits_for_the_operator() {
    let (primary, standby) = (service(0).await, service(1).await);
    let admin = admin(&primary, &standby, "manual").await;
    let address = primary.local_addr().to_string();
    assert_eq!(cluster(&admin).await["active_priority"], 0);

    let (status, endpoint) = post(
        &admin,
        &format!("/clusters/app/endpoints/{address}/disable"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(endpoint["state"], "disabled");
    assert_eq!(endpoint["reason"], "disabled by operator");
    assert_eq!(cluster(&admin).await["active_priority"], 1);

    let (_, endpoint) = post(&admin, &format!("/clusters/app/endpoints/{address}/enable")).await;
    assert_eq!(endpoint["state"], "healthy");
    // Manual failback: healthy again, but traffic stays on the standby group.
    assert_eq!(cluster(&admin).await["active_priority"], 1);
    let (status, body) = post(&admin, "/clusters/app/failback").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["active_priority"], 0);
    assert_eq!(cluster(&admin).await["active_priority"], 0);

    let (_, endpoint) = post(&admin, &format!("/clusters/app/endpoints/{address}/drain")).await;
    assert_eq!(endpoint["state"], "draining");
}

#[tokio::test]
async fn an_encoded_address_is_understood() {
    let (primary, standby) = (service(0).await, service(1).await);
    let admin = admin(&primary, &standby, "auto").await;
    let encoded = primary.local_addr().to_string().replace(':', "%3A");
    let (status, endpoint) =
        post(&admin, &format!("/clusters/app/endpoints/{encoded}/drain")).await;
    assert_eq!(status, StatusCode::OK, "{endpoint}");
    assert_eq!(endpoint["state"], "draining");
}

#[tokio::test]
async fn unknown_clusters_endpoints_and_actions_are_404_with_what_exists() {
    let (primary, standby) = (service(0).await, service(1).await);
    let admin = admin(&primary, &standby, "auto").await;
    let address = primary.local_addr().to_string();

    let (status, body) = post(&admin, &format!("/clusters/nope/endpoints/{address}/drain")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, "no cluster \"nope\"; clusters: app\n");

    let (status, body) = post(&admin, "/clusters/app/endpoints/10.0.0.1:1/drain").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let text = body.as_str().unwrap();
    assert!(
        text.starts_with("cluster \"app\" has no endpoint \"10.0.0.1:1\"; endpoints: "),
        "{text}"
    );
    assert!(text.contains(&address), "{text}");

    let (status, body) = post(&admin, &format!("/clusters/app/endpoints/{address}/reboot")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body.as_str()
            .unwrap()
            .contains("use drain, disable or enable")
    );

    let (status, _) = post(&admin, "/clusters/app/explode").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Nothing changed.
    let endpoints = &cluster(&admin).await["endpoints"];
    assert!(
        endpoints
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["state"] == "healthy")
    );
}

#[tokio::test]
async fn cache_purge_takes_a_json_target_and_says_what_it_did() {
    let origin = service(0).await;
    let yaml = format!(
        "access_log: \"off\"\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    routes:\n      - name: all\n        cluster: app\n        cache: {{}}\nclusters:\n  - name: app\n    endpoints:\n      - address: \"{}\"\n",
        origin.local_addr()
    );
    let loaded = watertight_config::load_str(&yaml, "test.yaml").unwrap();
    let admin = Admin::new(Proxy::start(loaded).await.unwrap());
    let purge = |body: &'static str| admin.answer(Method::POST, "/cache/purge", Bytes::from(body));
    let (status, body) = purge(r#"{"url": "http://example.com/a"}"#).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["purged"], 0);
    assert_eq!(body["soft"], false);
    let (status, body) = purge(r#"{"prefix": "http://example.com/", "soft": true}"#).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["soft"], true);
    assert_eq!(purge(r#"{"all": true}"#).await.0, StatusCode::OK);
    // Two targets, none, or no JSON: refused with the usage.
    for bad in [r#"{"url": "a", "tag": "b"}"#, "{}", "purge everything"] {
        let (status, body) = purge(bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(body.as_str().unwrap().contains("\"prefix\""), "{body}");
    }
}

#[tokio::test]
async fn cache_purge_without_a_caching_route_is_404() {
    let (primary, standby) = (service(0).await, service(1).await);
    let admin = admin(&primary, &standby, "auto").await;
    let (status, body) = admin
        .answer(
            Method::POST,
            "/cache/purge",
            Bytes::from(r#"{"all": true}"#),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.as_str().unwrap().contains("no route caches"));
}
