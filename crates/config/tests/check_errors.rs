//! What `watertight check` reports: one test per class of problem, each asserting the exact
//! `FILE:LINE:COL: message` and hint on a small config.

use watertight_config::{Config, Diagnostic, Endpoint, Listener, Route, RouteMatch, load_str};

/// The rendered diagnostics for `yaml`, which must fail to load.
fn problems(yaml: &str) -> Vec<String> {
    match load_str(yaml, "config.yaml") {
        Ok(_) => panic!("expected the config to be rejected:\n{yaml}"),
        Err(diagnostics) => diagnostics.0.iter().map(Diagnostic::to_string).collect(),
    }
}

/// A valid config; tests splice their mistake into it.
const VALID: &str = "\
listeners:
  - name: main
    address: 127.0.0.1:8080
    routes:
      - name: all
        cluster: web
clusters:
  - name: web
    endpoints:
      - address: 127.0.0.1:8000
";

#[test]
fn valid_config_loads_with_a_version() {
    let loaded = load_str(VALID, "config.yaml").unwrap();
    assert_eq!(loaded.config.listeners[0].routes[0].cluster, "web");
    assert_eq!(loaded.version.len(), 12);
}

// 1. YAML syntax

#[test]
fn yaml_syntax_error_points_at_the_offending_character() {
    let yaml = "listeners:\n  - name: main\n   address: 127.0.0.1:8080\n";
    assert_eq!(
        problems(yaml),
        [
            "config.yaml:3:4: invalid YAML: while parsing a block collection, did not find expected '-' indicator"
        ]
    );
    assert_eq!(
        problems("listeners:\n  - name: [main\n"),
        ["config.yaml:2:11: invalid YAML: unclosed bracket '['"]
    );
}

#[test]
fn empty_file_and_second_document_are_reported() {
    assert_eq!(
        problems("# nothing yet\n"),
        [
            "config.yaml:1:1: the config is empty\n  hint: a config needs at least \"listeners:\"; see docs/configuration.md"
        ]
    );
    assert_eq!(
        problems(&format!("{VALID}---\nlisteners: []\n")),
        [
            "config.yaml:11:1: the file holds more than one YAML document\n  hint: a config is one document; remove this \"---\" and merge what follows"
        ]
    );
}

// 2. Unknown fields

#[test]
fn every_unknown_field_is_reported_with_the_closest_known_name() {
    let yaml = "\
listeners:
  - name: main
    adress: 127.0.0.1:8080
    address: 127.0.0.1:8080
    routes:
      - name: all
        cluster: web
clusters:
  - name: web
    endpont: []
    endpoints:
      - address: 127.0.0.1:8000
";
    assert_eq!(
        problems(yaml),
        [
            "config.yaml:3:5: unknown field \"adress\" in listeners[0]\n  hint: did you mean \"address\"?",
            "config.yaml:10:5: unknown field \"endpont\" in clusters[0]\n  hint: did you mean \"endpoints\"?",
        ]
    );
}

#[test]
fn unknown_field_with_no_close_name_lists_the_known_fields() {
    let yaml = VALID.replace(
        "      - address: 127.0.0.1:8000\n",
        "      - address: 127.0.0.1:8000\n        zone: eu\n",
    );
    assert_eq!(
        problems(&yaml),
        [
            "config.yaml:11:9: unknown field \"zone\" in clusters[0].endpoints[0]\n  hint: known fields: address, weight, priority, health_check_port"
        ]
    );
}

#[test]
fn unknown_top_level_field_is_reported_at_its_key() {
    let yaml = format!("{VALID}upstreams: 3\n");
    assert_eq!(
        problems(&yaml),
        [
            "config.yaml:11:1: unknown field \"upstreams\" at the top level\n  hint: known fields: admin, access_log, drain_timeout, listeners, clusters, metrics, tracing, cache"
        ]
    );
}

#[test]
fn duplicate_yaml_key_points_at_the_second_and_names_the_line_of_the_first() {
    let yaml = VALID.replace(
        "  - name: web\n",
        "  - name: web\n    balancer: round_robin\n    balancer: least_request\n",
    );
    assert_eq!(
        problems(&yaml),
        [
            "config.yaml:10:5: duplicate key \"balancer\" in clusters[0] (first defined at line 9)\n  hint: keys must be unique within a mapping; remove one of them"
        ]
    );
}

// 3. Types, enum values, durations, required fields

#[test]
fn bad_balancer_lists_the_allowed_values() {
    let yaml = VALID.replace("  - name: web\n", "  - name: web\n    balancer: fastest\n");
    assert_eq!(
        problems(&yaml),
        [
            "config.yaml:9:15: clusters[0].balancer: unknown value \"fastest\"\n  hint: allowed values: round_robin, least_request, peak_ewma, hash"
        ]
    );
}

#[test]
fn misspelled_enum_value_gets_a_suggestion() {
    let yaml = VALID.replace("  - name: web\n", "  - name: web\n    protocol: http/2\n");
    assert_eq!(
        problems(&yaml),
        [
            "config.yaml:9:15: clusters[0].protocol: unknown value \"http/2\"\n  hint: did you mean \"http2\"? allowed values: http1, http2"
        ]
    );
}

#[test]
fn duration_without_unit_points_at_the_value_with_a_unit_hint() {
    let yaml = VALID.replace("  - name: web\n", "  - name: web\n    connect_timeout: 5\n");
    assert_eq!(
        problems(&yaml),
        [
            "config.yaml:9:22: clusters[0].connect_timeout: duration \"5\" has no unit\n  hint: write e.g. \"5s\" or \"5ms\""
        ]
    );
}

#[test]
fn missing_required_field_points_at_the_mapping_that_lacks_it() {
    let yaml = VALID.replace("    address: 127.0.0.1:8080\n", "");
    assert_eq!(
        problems(&yaml),
        [
            "config.yaml:2:5: missing required field \"address\" in listeners[0]\n  hint: add \"address:\" with a value to this mapping"
        ]
    );
}

#[test]
fn wrong_type_names_the_field_what_it_expects_and_what_it_found() {
    let yaml = VALID.replace(
        "      - address: 127.0.0.1:8000\n",
        "      - address: 127.0.0.1:8000\n        weight: heavy\n",
    );
    assert_eq!(
        problems(&yaml),
        [
            "config.yaml:11:17: clusters[0].endpoints[0].weight: expected a whole number from 0 to 4294967295, found \"heavy\""
        ]
    );
    assert_eq!(
        problems("listeners:\n  name: main\n"),
        ["config.yaml:2:3: listeners: expected a list, found a mapping"]
    );
}

#[test]
fn type_error_is_reported_with_the_unknown_fields_found_before_it() {
    let yaml = VALID.replace(
        "  - name: web\n",
        "  - name: web\n    retries: 3\n    request_timeout: soon\n",
    );
    assert_eq!(
        problems(&yaml),
        [
            "config.yaml:9:5: unknown field \"retries\" in clusters[0]\n  hint: known fields: name, endpoints, balancer, hash, protocol, host_rewrite, connect_timeout, request_timeout, pool, circuit_breaker, outlier_detection, adaptive_concurrency, endpoint_bulkhead, bulkhead, health_check, failback, on_endpoint_down, proxy_protocol",
            "config.yaml:10:22: clusters[0].request_timeout: invalid duration \"soon\": expected number at 0\n  hint: write e.g. \"250ms\", \"2s\", \"1m30s\"",
        ]
    );
}

// 4. References

#[test]
fn route_to_undefined_cluster_lists_the_defined_clusters() {
    let yaml = "\
listeners:
  - name: main
    address: 127.0.0.1:8080
    routes:
      - name: api
        cluster: backend
clusters:
  - name: catalog
    endpoints: [{address: 10.0.0.1:80}]
  - name: checkout
    endpoints: [{address: 10.0.0.2:80}]
";
    assert_eq!(
        problems(yaml),
        [
            "config.yaml:6:18: route \"api\" points to cluster \"backend\", which is not defined\n  hint: defined clusters: catalog, checkout"
        ]
    );
}

#[test]
fn route_to_misspelled_cluster_suggests_the_close_name() {
    let yaml = VALID.replace("cluster: web", "cluster: wbe");
    assert_eq!(
        problems(&yaml),
        [
            "config.yaml:6:18: route \"all\" points to cluster \"wbe\", which is not defined\n  hint: did you mean \"web\"?"
        ]
    );
}

// 5. Addresses

#[test]
fn bad_listen_admin_and_endpoint_addresses_are_each_reported() {
    let yaml = format!(
        "admin:\n  address: localhost:9901\n{}",
        VALID
            .replace("address: 127.0.0.1:8080", "address: 127.0.0.1")
            .replace("address: 127.0.0.1:8000", "address: db.internal")
    );
    assert_eq!(
        problems(&yaml),
        [
            "config.yaml:2:12: admin API: invalid listen address \"localhost:9901\"\n  hint: expected IP:port, e.g. \"127.0.0.1:8080\" or \"[::1]:8080\"",
            "config.yaml:5:14: listener \"main\": invalid listen address \"127.0.0.1\"\n  hint: expected IP:port, e.g. \"127.0.0.1:8080\" or \"[::1]:8080\"",
            "config.yaml:12:18: cluster \"web\": invalid endpoint address \"db.internal\": no port\n  hint: expected host:port, e.g. \"10.0.0.5:8080\" or \"catalog.internal:80\"",
        ]
    );
}

// 6. Duplicates

#[test]
fn duplicate_cluster_name_points_at_the_second_and_names_the_line_of_the_first() {
    let yaml = format!("{VALID}  - name: web\n    endpoints: [{{address: 127.0.0.1:8001}}]\n");
    assert_eq!(
        problems(&yaml),
        [
            "config.yaml:11:11: duplicate cluster name \"web\" (first defined at line 8)\n  hint: rename one of them: cluster names must be unique"
        ]
    );
}

#[test]
fn duplicate_listener_name_and_address_are_both_reported() {
    let yaml = VALID.replace(
        "clusters:\n",
        "  - name: main\n    address: 127.0.0.1:8080\n    routes: [{name: all, cluster: web}]\nclusters:\n",
    );
    assert_eq!(
        problems(&yaml),
        [
            "config.yaml:7:11: duplicate listener name \"main\" (first defined at line 2)\n  hint: rename one of them: listener names must be unique",
            "config.yaml:8:14: listener \"main\" cannot listen on 127.0.0.1:8080: listener \"main\" already listens on 127.0.0.1:8080 (defined at line 3)\n  hint: give each listener, and the admin API, its own port",
        ]
    );
}

#[test]
fn listener_on_a_wildcard_overlapping_another_or_the_admin_api_is_reported() {
    let yaml = VALID.replace(
        "clusters:\n",
        "  - name: metrics\n    address: 0.0.0.0:9901\n    routes: [{name: all, cluster: web}]\nclusters:\n",
    );
    assert_eq!(
        problems(&yaml),
        [
            "config.yaml:8:14: listener \"metrics\" cannot listen on 0.0.0.0:9901: the admin API already listens on 127.0.0.1:9901\n  hint: give each listener, and the admin API, its own port"
        ]
    );
}

#[test]
fn duplicate_route_name_within_a_listener_is_reported() {
    let yaml = VALID.replace(
        "        cluster: web\n",
        "        match: {methods: [GET]}\n        cluster: web\n      - name: all\n        match: {methods: [POST]}\n        cluster: web\n",
    );
    assert_eq!(
        problems(&yaml),
        [
            "config.yaml:8:15: duplicate route name \"all\" (first defined at line 5)\n  hint: rename one of them: route names must be unique within a listener"
        ]
    );
}

// 7. Other semantic checks

#[test]
fn config_without_listeners_is_rejected() {
    assert_eq!(
        problems("listeners: []\n"),
        [
            "config.yaml:1:12: no listeners are defined, so the proxy would accept no traffic\n  hint: add a listener with a name, an address such as \"0.0.0.0:8080\" and routes"
        ]
    );
}

#[test]
fn cluster_without_endpoints_and_endpoint_of_weight_zero_are_rejected() {
    let yaml = VALID.replace(
        "      - address: 127.0.0.1:8000\n",
        "      - address: 127.0.0.1:8000\n        weight: 0\n",
    ) + "  - name: empty\n    endpoints: []\n";
    assert_eq!(
        problems(&yaml),
        [
            "config.yaml:11:17: cluster \"web\": endpoint \"127.0.0.1:8000\" has weight 0, so it would never be picked\n  hint: use a weight of 1 or more, or remove the endpoint",
            "config.yaml:13:16: cluster \"empty\" has no endpoints, so every request routed to it would fail\n  hint: add at least one endpoint, e.g. \"- address: 10.0.0.5:8080\"",
        ]
    );
}

#[test]
fn route_with_both_path_and_prefix_and_without_leading_slash_is_rejected() {
    let yaml = VALID.replace(
        "        cluster: web\n",
        "        match:\n          path: /health\n          prefix: api\n        cluster: web\n",
    );
    assert_eq!(
        problems(&yaml),
        [
            "config.yaml:8:19: route \"all\" has both match.path and match.prefix\n  hint: keep one: \"path\" matches one exact path, \"prefix\" every path under it",
            "config.yaml:8:19: route \"all\": match.prefix \"api\" does not start with \"/\"\n  hint: write \"/api\"",
        ]
    );
}

#[test]
fn invalid_methods_header_names_and_host_patterns_are_rejected() {
    let yaml = VALID.replace(
        "        cluster: web\n",
        "        match:\n          methods: [get, \"PO ST\"]\n          headers: [{name: \"x tenant\"}]\n          hosts: [\"api.*.com\"]\n        cluster: web\n",
    );
    assert_eq!(
        problems(&yaml),
        [
            "config.yaml:7:21: route \"all\": method \"get\" is not \"GET\": methods are case-sensitive\n  hint: write \"GET\"",
            "config.yaml:7:26: route \"all\": \"PO ST\" is not a valid HTTP method\n  hint: a method is a token such as GET, POST or PURGE (RFC 9110)",
            "config.yaml:8:28: route \"all\": \"x tenant\" is not a valid header name\n  hint: a header name is a token: letters, digits and !#$%&'*+-.^_`|~ (RFC 9110)",
            "config.yaml:9:19: route \"all\": host pattern \"api.*.com\" has a wildcard that is not a leading \"*.\"\n  hint: write an exact name such as \"api.example.com\" or a wildcard such as \"*.example.com\"",
        ]
    );
}

#[test]
fn host_rewrite_must_be_a_valid_authority() {
    let yaml = VALID.replace(
        "  - name: web\n",
        "  - name: web\n    host_rewrite: \"https://api.internal\"\n",
    );
    assert_eq!(
        problems(&yaml),
        [
            "config.yaml:9:19: cluster \"web\": host_rewrite: \"https://api.internal\" is not a valid host[:port]\n  hint: write a host name with an optional port, e.g. \"api.internal\" or \"api.internal:8443\""
        ]
    );
}

#[test]
fn access_log_that_looks_like_a_keyword_is_rejected() {
    assert_eq!(
        problems(&format!("access_log: false\n{VALID}")),
        [
            "config.yaml:1:13: access_log \"false\" would be a file named \"false\"\n  hint: write \"off\", or \"./false\" for a file with that name"
        ]
    );
    assert_eq!(
        problems(&format!("access_log: \"\"\n{VALID}")),
        [
            "config.yaml:1:13: access_log is empty\n  hint: write stdout, stderr, off, or a file path such as \"/var/log/watertight/access.log\""
        ]
    );
    for ok in [
        "stdout",
        "stderr",
        "off",
        "/var/log/access.log",
        "logs/access.log",
    ] {
        assert!(
            load_str(&format!("access_log: {ok}\n{VALID}"), "c.yaml").is_ok(),
            "{ok}"
        );
    }
}

#[test]
fn absurd_pool_size_is_rejected() {
    let yaml = VALID.replace(
        "  - name: web\n",
        "  - name: web\n    pool:\n      max_idle_per_endpoint: 1000000\n",
    );
    assert_eq!(
        problems(&yaml),
        [
            "config.yaml:10:30: cluster \"web\": pool.max_idle_per_endpoint is 1000000, more idle connections per endpoint than a proxy can sensibly hold\n  hint: use at most 10000 (the default is 64)"
        ]
    );
}

#[test]
fn zero_connect_timeout_is_an_error_but_zero_request_timeout_disables_the_limit() {
    let zero_request = VALID.replace(
        "  - name: web\n",
        "  - name: web\n    request_timeout: 0s\n",
    );
    assert!(load_str(&zero_request, "config.yaml").is_ok());
    let zero_connect = VALID.replace(
        "  - name: web\n",
        "  - name: web\n    connect_timeout: 0s\n",
    );
    assert_eq!(
        problems(&zero_connect),
        [
            "config.yaml:9:22: cluster \"web\": connect_timeout is 0s, so every connection attempt would fail at once\n  hint: use a positive duration, e.g. \"2s\" (the default); only request_timeout accepts 0s, meaning no limit"
        ]
    );
}

#[test]
fn zero_listener_timeouts_are_rejected() {
    let yaml = VALID.replace("    routes:\n", "    idle_timeout: 0s\n    routes:\n");
    assert_eq!(
        problems(&yaml),
        [
            "config.yaml:4:19: listener \"main\": idle_timeout is 0s, so every client connection would be closed at once\n  hint: use a positive duration; leave it out for the default"
        ]
    );
}

#[test]
fn route_after_a_catch_all_can_never_match() {
    let yaml = VALID.replace(
        "        cluster: web\n",
        "        cluster: web\n      - name: api\n        match: {prefix: /api}\n        cluster: web\n",
    );
    assert_eq!(
        problems(&yaml),
        [
            "config.yaml:7:9: route \"api\" can never match: route \"all\" before it matches every request it would (defined at line 5)\n  hint: routes are tried in order; move route \"api\" above route \"all\", or narrow route \"all\""
        ]
    );
}

#[test]
fn narrower_route_before_a_wider_one_is_fine() {
    let yaml = VALID.replace(
        "      - name: all\n",
        "      - name: api\n        match: {prefix: /api, methods: [GET]}\n        cluster: web\n      - name: all\n",
    );
    assert!(load_str(&yaml, "config.yaml").is_ok());
}

#[test]
fn problems_from_every_section_are_reported_together_in_file_order() {
    let yaml = "\
access_log: ''
listeners:
  - name: main
    address: 127.0.0.1:8080
    routes:
      - name: api
        cluster: backend
clusters:
  - name: web
    endpoints: []
";
    let lines: Vec<String> = load_str(yaml, "config.yaml")
        .unwrap_err()
        .0
        .iter()
        .map(|d| format!("{}:{}", d.line, d.column))
        .collect();
    assert_eq!(lines, ["1:13", "7:18", "10:16"]);
}

// validate() on a config built in code

#[test]
fn validate_without_a_file_names_the_path_in_the_message() {
    let route = Route {
        name: "api".into(),
        matches: RouteMatch::default(),
        cluster: "backend".into(),
        timeout: None,
        retry: None,
        bulkhead: None,
        fallback: None,
        cache: None,
    };
    let config = Config::new(
        vec![Listener::http("main", "127.0.0.1:8080", vec![route])],
        vec![watertight_config::Cluster::with_endpoints(
            "web",
            vec![Endpoint::new("127.0.0.1:8000")],
        )],
    );
    let problems = watertight_config::validate(&config);
    assert_eq!(problems.len(), 1);
    assert_eq!((problems[0].line, problems[0].column), (0, 0));
    assert_eq!(
        problems[0].message,
        "listeners[0].routes[0].cluster: route \"api\" points to cluster \"backend\", which is not defined"
    );
    assert_eq!(problems[0].hint.as_deref(), Some("defined clusters: web"));
}

#[test]
fn load_file_names_the_file_in_every_diagnostic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("watertight.yaml");
    std::fs::write(&path, VALID.replace("cluster: web", "cluster: nope")).unwrap();
    let err = watertight_config::load_file(&path).unwrap_err();
    assert_eq!(err.0[0].file, path.display().to_string());
    assert_eq!((err.0[0].line, err.0[0].column), (6, 18));
    let missing = watertight_config::load_file(&dir.path().join("absent.yaml")).unwrap_err();
    assert!(missing.0[0].message.starts_with("cannot read config file"));
}

// JSON Schema

#[test]
fn json_schema_describes_sections_enums_and_durations() {
    let schema = watertight_config::json_schema();
    let properties = &schema["properties"];
    assert!(properties.get("listeners").is_some(), "{schema:#}");
    assert!(properties.get("clusters").is_some(), "{schema:#}");
    assert_eq!(schema["additionalProperties"], false);
    let text = schema.to_string();
    assert!(text.contains("\"round_robin\"") && text.contains("\"least_request\""));
    let duration = &schema["$defs"]["Duration"];
    assert_eq!(duration["type"], "string");
    assert!(
        duration["pattern"]
            .as_str()
            .is_some_and(|p| p.contains("ms"))
    );
    let route = &schema["$defs"]["Route"]["properties"];
    assert!(
        route.get("match").is_some(),
        "the match field keeps its YAML name"
    );
}

// 8. Telemetry

#[test]
fn tracing_ratio_endpoint_and_batch_problems_are_located() {
    let yaml = format!(
        "{VALID}tracing:\n  head_ratio: 1.5\n  propagation: [w3c, b3, w3c]\n  otlp:\n    endpoint: https://collector:4317\n    batch_size: 100\n    queue_size: 10\n"
    );
    assert_eq!(
        problems(&yaml),
        [
            "config.yaml:12:15: head_ratio 1.5 is not a share between 0 and 1\n  hint: write e.g. 0.01 to sample 1% of new traces, 1 for all, 0 for none",
            "config.yaml:13:26: propagation lists w3c twice",
            "config.yaml:15:15: endpoint \"https://collector:4317\" uses https, which the exporter does not speak yet\n  hint: write http://host:port, e.g. http://127.0.0.1:4317 for gRPC or http://127.0.0.1:4318 for HTTP",
            "config.yaml:17:17: queue_size 10 is smaller than batch_size 100: a batch could never fill\n  hint: make queue_size a few batches large",
        ]
    );
}

#[test]
fn tracing_needs_an_otlp_endpoint_and_knows_its_fields() {
    let yaml = format!("{VALID}tracing:\n  head_ratio: 0.1\n  tail: {{latency_treshold: 1s}}\n");
    assert_eq!(
        problems(&yaml),
        [
            "config.yaml:12:3: missing required field \"otlp\" in tracing\n  hint: add \"otlp:\" with a value to this mapping",
            "config.yaml:13:10: unknown field \"latency_treshold\" in tracing.tail\n  hint: did you mean \"latency_threshold\"?",
        ]
    );
}

// 9. Resilience

#[test]
fn retry_and_bulkhead_problems_are_located() {
    let yaml = VALID.replace(
        "        cluster: web\n",
        "        cluster: web\n        timeout: 1s\n        retry:\n          attempts: 11\n          retry_on: [reset, 200, teapot]\n          per_try_timeout: 2s\n          backoff: {base: 1s, max: 10ms}\n          budget: {ratio: 20}\n        bulkhead: {max_concurrent: 0}\n",
    );
    assert_eq!(
        problems(&yaml),
        [
            "config.yaml:9:21: attempts 11 is not between 1 and 10\n  hint: attempts counts every try, the first included: 2 means one retry",
            "config.yaml:10:29: retry_on \"200\" is not a condition\n  hint: write one of connect-failure, reset, timeout, 5xx, gateway-error, or a status code from 400 to 599 such as \"503\"",
            "config.yaml:10:34: retry_on \"teapot\" is not a condition\n  hint: write one of connect-failure, reset, timeout, 5xx, gateway-error, or a status code from 400 to 599 such as \"503\"",
            "config.yaml:11:28: per_try_timeout 2s is longer than the route's timeout 1s\n  hint: the route's timeout bounds every try together; make per_try_timeout a fraction of it",
            "config.yaml:12:27: backoff base 1s is above its max 10ms",
            "config.yaml:13:27: budget ratio 20 is not between 0 and 10\n  hint: 0.2 lets retries add at most 20% to the route's requests",
            "config.yaml:14:36: max_concurrent is 0: nothing could be served\n  hint: leave bulkhead out for no limit",
        ]
    );
}

#[test]
fn circuit_breaker_problems_are_located() {
    let yaml = format!(
        "{VALID}    circuit_breaker:\n      window_calls: 20\n      window_seconds: 10\n      failure_rate: 50\n      half_open_calls: 0\n      failure_on: [5xx, flaky]\n"
    );
    assert_eq!(
        problems(&yaml),
        [
            "config.yaml:13:23: give window_calls or window_seconds, not both\n  hint: window_calls judges the last N calls; window_seconds the calls of the last N seconds",
            "config.yaml:14:21: failure_rate 50 is not a share above 0 and at most 1\n  hint: 0.5 opens the breaker when half the calls in the window fail",
            "config.yaml:15:24: half_open_calls is 0",
            "config.yaml:16:25: failure_on \"flaky\" is not a condition\n  hint: write one of connect-failure, reset, timeout, 5xx, gateway-error, or a status code from 400 to 599 such as \"503\"",
        ]
    );
}

#[test]
fn fallback_problems_are_located() {
    let yaml = VALID.replace(
        "        cluster: web\n",
        "        cluster: web\n        fallback:\n          on: [breaker-opn]\n          cluster: webb\n          response: {status: 700, body: x, body_file: y}\n",
    );
    assert_eq!(
        problems(&yaml),
        [
            "config.yaml:8:16: fallback on \"breaker-opn\" is not a failure reason\n  hint: did you mean \"breaker-open\"?",
            "config.yaml:9:20: fallback cluster \"webb\" is not defined\n  hint: did you mean \"web\"?",
            "config.yaml:10:30: status 700 is not between 100 and 599",
            "config.yaml:10:55: give body or body_file, not both",
        ]
    );
}

// Failover

#[test]
fn health_check_problems_are_located() {
    let yaml = format!(
        "{VALID}    health_check:\n      interval: 0s\n      rise: 0\n      jitter: 1.5\n      http: {{ method: \"G ET\", expect_status: [\"2xx\", \"700\"] }}\n      tcp: {{}}\n"
    );
    assert_eq!(
        problems(&yaml),
        [
            "config.yaml:12:7: a health check needs exactly one of http, tcp or postgres; http and tcp are given\n  hint: e.g. \"http: { path: /healthz }\", \"tcp: {}\" or \"postgres: { role: primary }\"",
            "config.yaml:12:17: interval is 0s\n  hint: use a positive duration, e.g. \"1s\"",
            "config.yaml:13:13: rise is 0\n  hint: count checks in a row: 1 acts on the first result",
            "config.yaml:14:15: jitter 1.5 is not between 0 and 1\n  hint: 0.1 adds up to 10% of the interval to each wait",
            "config.yaml:15:23: http check method: \"G ET\" is not a valid HTTP method\n  hint: a method is a token such as GET, POST or PURGE (RFC 9110)",
            "config.yaml:15:54: \"700\" is not a status, a class or a range\n  hint: write a code (200), a class (2xx) or a range (200-299) of codes 100-599",
        ]
    );
}

#[test]
fn postgres_check_max_lag_is_for_replicas() {
    let yaml =
        format!("{VALID}    health_check:\n      postgres: {{ role: primary, max_lag: 5s }}\n");
    assert_eq!(
        problems(&yaml),
        [
            "config.yaml:12:43: max_lag applies to replicas only\n  hint: use role: replica, or leave max_lag out"
        ]
    );
}

#[test]
fn tcp_listener_problems_are_located() {
    let yaml = "\
listeners:
  - name: pg
    address: 127.0.0.1:6432
    protocol: tcp
    cluster: pgg
    routes:
      - name: all
        cluster: pg
  - name: web
    address: 127.0.0.1:8080
    cluster: pg
clusters:
  - name: pg
    proxy_protocol: v2
    endpoints:
      - address: 127.0.0.1:5432
";
    assert_eq!(
        problems(yaml),
        [
            "config.yaml:5:14: listener \"pg\" forwards to cluster \"pgg\", which is not defined\n  hint: did you mean \"pg\"?",
            "config.yaml:7:7: listener \"pg\" is a tcp listener: it has no HTTP requests to route\n  hint: remove the routes, or make it an http listener",
            "config.yaml:11:14: listener \"web\": cluster applies to tcp listeners only\n  hint: HTTP listeners send each route to its own cluster; set protocol: tcp, or put it on a route",
            "config.yaml:14:21: cluster \"pg\" sends the PROXY protocol, which only tcp listeners do, but route \"all\" sends HTTP to it\n  hint: use a separate cluster for the HTTP routes",
        ]
    );
    let no_cluster = "listeners:\n  - name: pg\n    address: 127.0.0.1:6432\n    protocol: tcp\n";
    assert_eq!(
        problems(no_cluster),
        [
            "config.yaml:4:15: listener \"pg\" is a tcp listener without a cluster to forward to\n  hint: add \"cluster: NAME\" naming one of the clusters"
        ]
    );
}

// Consistent hashing

#[test]
fn hash_balancer_problems_are_located() {
    let missing = format!("{VALID}    balancer: hash\n");
    assert_eq!(
        problems(&missing),
        [
            "config.yaml:11:15: cluster \"web\": balancer hash needs a hash section saying what the key is\n  hint: add e.g. \"hash: { key: { header: x-user-id } }\""
        ]
    );
    let wrong = format!(
        "{VALID}    hash: {{ key: {{ header: \"x user\" }}, algorithm: maglev, table_size: 1000, bounded_load: 0.9 }}\n"
    );
    assert_eq!(
        problems(&wrong),
        [
            "config.yaml:11:11: cluster \"web\": a hash section needs balancer: hash\n  hint: set \"balancer: hash\", or remove the hash section",
            "config.yaml:11:28: hash key header: \"x user\" is not a valid header name\n  hint: a header name is a token: letters, digits and !#$%&'*+-.^_`|~ (RFC 9110)",
            "config.yaml:11:71: table_size 1000 is not a prime above the endpoint count and at most 10000019\n  hint: use a prime around 100 × the endpoints or more, e.g. 65537 (the default) or 655373",
            "config.yaml:11:91: bounded_load 0.9 is not above 1 and at most 10\n  hint: 1.25 lets an endpoint carry 25% more than its fair share before keys move on",
        ]
    );
}

#[test]
fn hash_keys_read_as_words_or_single_entry_mappings() {
    for key in [
        "path",
        "client_address",
        "{ header: x-user }",
        "{ cookie: sid }",
        "{ query: u }",
    ] {
        let yaml = format!("{VALID}    balancer: hash\n    hash: {{ key: {key} }}\n");
        assert!(load_str(&yaml, "config.yaml").is_ok(), "{key}");
    }
    let yaml = format!("{VALID}    balancer: hash\n    hash: {{ key: ip }}\n");
    assert!(load_str(&yaml, "config.yaml").is_err());
}
