//! PocketID's log output in the emulator (contract pocketid-logs-and-access §1, §5): the 2.13+
//! request line with its attributes in order, levels by status, `LOG_LEVEL` and `LOG_JSON`,
//! unlogged paths, `Request failed` for a 5xx, seeded records, Loki shipping under the runbook's
//! selector, and the lab's `docker logs` route.

use httpx::{encode, Body, Client, HttpConfig, Response, Retry};
use lab::loki::{Loki, LokiOptions};
use lab::pocketid::{Level, LogRecord, PocketId, PocketIdOptions};
use serde_json::Value;

fn client(pid: &PocketId) -> Client {
    let mut cfg = HttpConfig::new("PocketID", pid.url());
    cfg.retries = 0;
    Client::new(cfg).unwrap()
}

fn call(c: &Client, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    c.send(method, path, headers, Body::None, Retry::Never)
        .unwrap()
}

fn start(json: bool, level: Level) -> PocketId {
    PocketId::start(PocketIdOptions {
        log_json: json,
        log_level: level,
        ..Default::default()
    })
    .unwrap()
}

/// The `k=` keys of a tint line after the message, in order.
fn keys(line: &str) -> Vec<String> {
    line.split(' ')
        .filter_map(|w| w.split_once('=').map(|(k, _)| k.to_string()))
        .filter(|k| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .collect()
}

#[test]
fn request_lines_in_text() {
    let pid = start(false, Level::Info);
    let c = client(&pid);
    let key = pid.admin_key().to_string();
    let r = call(
        &c,
        "GET",
        "/api/users/me?x=1",
        &[("X-API-Key", &key), ("User-Agent", "Go-http-client/1.1")],
    );
    let rid = r.header("x-request-id").unwrap().to_string();
    let r401 = call(&c, "GET", "/api/users/me", &[]);
    call(&c, "GET", "/healthz", &[]);
    call(&c, "GET", "/_app/immutable/x.js", &[]);
    call(&c, "GET", "/api/application-images/logo", &[]);
    let lines = pid.log_lines();
    assert_eq!(
        lines.len(),
        2,
        "health checks and assets are not logged: {lines:#?}"
    );
    let ok = &lines[0];
    assert!(
        ok.contains(" INF HTTP request completed app=pocket-id version=2.14.0 request_id="),
        "{ok}"
    );
    assert_eq!(ok.as_bytes()[3], b' ');
    assert_eq!(
        keys(ok),
        [
            "app",
            "version",
            "request_id",
            "status",
            "method",
            "path",
            "query",
            "route",
            "ip",
            "latency",
            "referer",
            "user_agent",
            "body_size"
        ]
    );
    assert!(ok.contains(&format!("request_id={rid} status=200 method=GET path=/api/users/me query=\"x=1\" route=/api/users/me ip=127.0.0.1 latency=")), "{ok}");
    assert!(
        ok.contains(" referer=\"\" user_agent=Go-http-client/1.1 body_size="),
        "{ok}"
    );
    // A 4xx is INFO with its error_code after request_id; its message is not logged.
    let unauth = &lines[1];
    let rid401 = r401.header("x-request-id").unwrap();
    assert!(unauth.contains(&format!(" INF HTTP request completed app=pocket-id version=2.14.0 request_id={rid401} error_code=not_signed_in status=401 ")), "{unauth}");
    assert!(!unauth.contains("You are not signed in"));
    // 429 is WARN.
    pid.throttle_next(1);
    call(&c, "GET", "/api/version/current", &[("X-API-Key", &key)]);
    assert!(
        pid.log_lines()[2].contains(" WRN HTTP request completed "),
        "{:?}",
        pid.log_lines()
    );
    // A 5xx: `Request failed` with the cause, then the request line at ERROR.
    let id = pid.seed_client(None, serde_json::json!({"name": "x", "callbackURLs": []}));
    pid.fail_next_secret_post();
    call(
        &c,
        "POST",
        &format!("/api/oidc/clients/{id}/secrets"),
        &[("X-API-Key", &key)],
    );
    let lines = pid.log_lines();
    let n = lines.len();
    assert!(lines[n - 2].contains(" ERR Request failed app=pocket-id version=2.14.0 error_code=internal_error error_type=*apperror.Error http_status=500 request_id="), "{}", lines[n - 2]);
    assert!(
        lines[n - 1].contains(" ERR HTTP request completed ")
            && lines[n - 1].contains("route=/api/oidc/clients/:id/secrets")
    );
    // A seeded record, as PocketID's token endpoint would write it.
    pid.emit(
        LogRecord::new(Level::Error, "Failed to create access request")
            .attr("error", "invalid_client"),
    );
    assert!(pid.log_lines().last().unwrap().ends_with(
        " ERR Failed to create access request app=pocket-id version=2.14.0 error=invalid_client"
    ));
}

#[test]
fn level_warn_hides_4xx_and_json_mode() {
    let pid = start(false, Level::Warn);
    let c = client(&pid);
    call(&c, "GET", "/api/users/me", &[]);
    call(
        &c,
        "GET",
        "/api/users/me",
        &[("X-API-Key", pid.admin_key())],
    );
    assert!(pid.log_lines().is_empty(), "{:?}", pid.log_lines());
    pid.emit(LogRecord::new(Level::Info, "Pocket ID is starting"));
    assert!(pid.log_lines().is_empty());

    let pid = start(true, Level::Info);
    let c = client(&pid);
    call(&c, "GET", "/api/users/me", &[]);
    pid.emit(
        LogRecord::new(Level::Error, "Failed to create access request")
            .attr("error", serde_json::json!({"error": "invalid_client", "error_description": "Client authentication failed"})),
    );
    let lines = pid.log_lines();
    let v: Value = serde_json::from_str(&lines[0]).unwrap();
    assert!(lines[0].starts_with(r#"{"time":""#) && lines[0].contains(r#"","level":"INFO","msg":"HTTP request completed","app":"pocket-id","version":"2.14.0","request_id":""#), "{}", lines[0]);
    assert!(v["latency"].is_u64(), "latency in integer ns");
    assert_eq!(v["status"], 401);
    assert_eq!(v["error_code"], "not_signed_in");
    let v: Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(v["level"], "ERROR");
    assert_eq!(
        v["error"]["error"], "invalid_client",
        "nested objects are kept"
    );
}

#[test]
fn shipped_to_loki_and_docker_logs() {
    let loki = Loki::start(LokiOptions::default()).unwrap();
    let pid = start(false, Level::Info);
    pid.log_to_loki(&loki);
    let c = client(&pid);
    call(&c, "POST", "/api/one-time-access-token/Xk7pQ2", &[]);
    pid.emit(
        LogRecord::new(Level::Error, "Failed to create access request")
            .attr("error", "invalid_client"),
    );
    let lk = Client::new(HttpConfig::new("Loki", loki.url())).unwrap();
    let q = encode(r#"{job="auth", container="pocketid"}"#);
    let r = lk
        .send(
            "GET",
            &format!("/loki/api/v1/query_range?query={q}&direction=forward"),
            &[],
            Body::None,
            Retry::Never,
        )
        .unwrap();
    let v: Value = r.json().unwrap();
    let mut got: Vec<(String, String)> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["values"].as_array().unwrap().clone())
        .map(|e| {
            (
                e[0].as_str().unwrap().to_string(),
                e[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got.len(), 2, "{v}");
    assert!(
        got[0].1.contains("path=/api/one-time-access-token/Xk7pQ2"),
        "the code is in the path, as PocketID logs it"
    );
    assert_eq!(
        got.iter().map(|g| g.1.clone()).collect::<Vec<_>>(),
        pid.log_lines()
    );

    // docker logs: -t prefixes Docker's receive time (RFC3339Nano, 9 digits), the same as Loki's.
    let r = call(&c, "GET", "/api/__lab/docker-logs?timestamps=1&tail=1", &[]);
    let body = String::from_utf8(r.body.clone()).unwrap();
    assert_eq!(r.status, 200);
    let (stamp, line) = body.trim_end().split_once(' ').unwrap();
    assert_eq!(stamp.len(), 30, "{stamp}");
    assert!(stamp.ends_with('Z') && line == pid.log_lines()[1]);
    assert!(pid.log_lines().len() == 2, "the lab route is not logged");
    let r = call(
        &c,
        "GET",
        "/api/__lab/docker-logs?since=10m&until=2999-01-01",
        &[],
    );
    assert_eq!(String::from_utf8(r.body).unwrap().lines().count(), 2);
    let r = call(
        &c,
        "GET",
        "/api/__lab/docker-logs?since=2020-01-01T00:00:00Z&until=2020-01-02",
        &[],
    );
    assert!(r.body.is_empty());
    let r = call(&c, "GET", "/api/__lab/docker-logs?since=7d", &[]);
    assert_eq!(
        (r.status, String::from_utf8(r.body).unwrap().as_str()),
        (
            400,
            "invalid value for \"since\": failed to parse value as time or duration: \"7d\""
        )
    );
}
