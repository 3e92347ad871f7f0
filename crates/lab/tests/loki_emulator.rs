//! The Loki emulator against `contracts/loki-api.md`: query_range's parameters, its response
//! shape and 400 texts, streams split by `detected_level`, `limit` over all streams, tenancy,
//! the labels endpoints, push, and "Loki down" (not ready, dropped).

use httpx::{encode, Body, Client, HttpConfig, Response, Retry};
use lab::emulator::loki::{Loki, LokiOptions, NOT_READY};
use serde_json::{json, Value};

const SEL: &str = r#"{job="auth", container="pocketid"}"#;
const S: u128 = 1_000_000_000;

fn now_ns() -> u128 {
    httpx::time::now_ns() as u128
}

fn client(loki: &Loki) -> Client {
    Client::new(HttpConfig::new("Loki", loki.url())).unwrap()
}

fn get(c: &Client, path: &str, params: &[(&str, &str)], headers: &[(&str, &str)]) -> Response {
    let q: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    let url = if q.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", q.join("&"))
    };
    c.send("GET", &url, headers, Body::None, Retry::Never)
        .unwrap()
}

fn range(c: &Client, params: &[(&str, &str)]) -> Response {
    get(c, "/loki/api/v1/query_range", params, &[])
}

fn text(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// A 400 with exactly `want` as plain text.
fn assert_400(r: &Response, want: &str) {
    assert_eq!((r.status, text(r).as_str()), (400, want));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
}

/// Every `[ts, line]` of every stream, merged newest first.
fn merged(v: &Value) -> Vec<(u128, String)> {
    let mut out: Vec<(u128, String)> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["values"].as_array().unwrap().clone())
        .map(|e| {
            (
                e[0].as_str().unwrap().parse().unwrap(),
                e[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort_by_key(|e| std::cmp::Reverse(e.0));
    out
}

fn seeded() -> (Loki, u128) {
    let loki = Loki::start(LokiOptions::default()).unwrap();
    let t0 = now_ns() - 60 * S;
    let labels = [("job", "auth"), ("container", "pocketid")];
    loki.push(
        &labels,
        t0,
        "Aug 20 10:11:12 INF HTTP request completed app=pocket-id status=200 path=/api/users/me",
    );
    loki.push(
        &labels,
        t0 + S,
        "Aug 20 10:12:01 ERR Failed to create access request app=pocket-id error=invalid_client",
    );
    loki.push(
        &labels,
        t0 + S,
        "Aug 20 10:12:01 INF HTTP request completed app=pocket-id status=401 path=/api/oidc/token",
    );
    loki.push(
        &labels,
        t0 + 2 * S,
        "<b> & </b> INF HTTP request completed status=302 path=/authorize",
    );
    loki.push(&[("job", "other")], t0, "unrelated info line");
    (loki, t0)
}

#[test]
fn query_range_shape_order_and_levels() {
    let (loki, t0) = seeded();
    let c = client(&loki);
    let r = range(&c, &[("query", SEL)]);
    assert_eq!(r.status, 200, "{}", text(&r));
    let raw = text(&r);
    assert!(
        raw.starts_with(r#"{"status":"success","data":{"resultType":"streams","result":["#),
        "{raw}"
    );
    assert!(
        raw.contains(r"\u003cb\u003e \u0026"),
        "HTML-escaped as Loki writes: {raw}"
    );
    let v: Value = r.json().unwrap();
    assert!(v["data"]["stats"]["summary"]["execTime"].is_number());
    // One pushed stream comes back split by detected_level, with service_name added.
    let streams = v["data"]["result"].as_array().unwrap();
    let levels: Vec<&str> = streams
        .iter()
        .map(|s| s["stream"]["detected_level"].as_str().unwrap())
        .collect();
    assert!(
        levels.contains(&"error") && levels.contains(&"unknown"),
        "{levels:?}"
    );
    for s in streams {
        assert_eq!(s["stream"]["service_name"], "pocketid");
        let ts: Vec<u128> = s["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e[0].as_str().unwrap().parse().unwrap())
            .collect();
        assert!(
            ts.windows(2).all(|w| w[0] >= w[1]),
            "backward: newest first {ts:?}"
        );
    }
    assert_eq!(merged(&v).len(), 4);
    // Forward, limit over all streams together: the two oldest, oldest first in each stream.
    let r = range(
        &c,
        &[("query", SEL), ("direction", "FORWARD"), ("limit", "2")],
    );
    let got = merged(&r.json().unwrap());
    assert_eq!(got.iter().map(|e| e.0).collect::<Vec<_>>(), [t0 + S, t0]);
    // start inclusive, end exclusive (ns, seconds, float seconds and RFC 3339 all read).
    let (start, end) = ((t0 + S).to_string(), (t0 + 2 * S).to_string());
    let r = range(&c, &[("query", SEL), ("start", &start), ("end", &end)]);
    assert_eq!(merged(&r.json().unwrap()).len(), 2);
    let secs = ((t0 + 2 * S) / S + 1).to_string();
    let r = range(
        &c,
        &[
            ("query", SEL),
            ("end", &secs),
            ("start", &format!("{}.0", t0 / S)),
        ],
    );
    assert_eq!(merged(&r.json().unwrap()).len(), 4);
    let r = range(&c, &[("query", SEL), ("start", &start), ("end", &start)]);
    assert_eq!(r.status, 200, "end = start is accepted and returns nothing");
    assert!(merged(&r.json().unwrap()).is_empty());
    let r = range(
        &c,
        &[
            ("query", SEL),
            ("start", "2026-08-20T10:00:00Z"),
            ("end", "2026-08-20T11:00:00Z"),
        ],
    );
    assert!(merged(&r.json().unwrap()).is_empty());
    // Older than the default hour: not found without a start.
    loki.push(
        &[("job", "auth"), ("container", "pocketid")],
        t0 - 3600 * S,
        "old info",
    );
    assert_eq!(
        merged(&range(&c, &[("query", SEL)]).json().unwrap()).len(),
        4
    );
    let r = range(&c, &[("query", SEL), ("since", "2h")]);
    assert_eq!(merged(&r.json().unwrap()).len(), 5);
}

#[test]
fn line_filters_parsers_and_form_posts() {
    let (loki, _) = seeded();
    let c = client(&loki);
    let q =
        format!(r#"{SEL} |= "HTTP request completed" != "status=200" | logfmt | status >= 400"#);
    let v: Value = range(&c, &[("query", &q)]).json().unwrap();
    let got = merged(&v);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].1.contains("status=401"));
    assert_eq!(
        v["data"]["result"][0]["stream"]["status"], "401",
        "extracted fields are labels"
    );
    let q = r#"{container=~"pocket.*"} |~ "error=invalid_\\w+""#;
    assert_eq!(merged(&range(&c, &[("query", q)]).json().unwrap()).len(), 1);
    // Anchored selector regexes.
    let q = r#"{container=~"pocket"}"#;
    assert!(merged(&range(&c, &[("query", q)]).json().unwrap()).is_empty());
    // A form-encoded POST is the same query.
    let form = format!("query={}&limit=1", encode(SEL));
    let r = c
        .send(
            "POST",
            "/loki/api/v1/query_range",
            &[],
            Body::Raw {
                content_type: "application/x-www-form-urlencoded",
                bytes: form.into_bytes(),
            },
            Retry::Never,
        )
        .unwrap();
    assert_eq!(merged(&r.json().unwrap()).len(), 1);
}

#[test]
fn errors_are_plain_text_400s() {
    let (loki, _) = seeded();
    let c = client(&loki);
    assert_400(
        &range(&c, &[("query", r#"job="auth""#)]),
        "parse error at line 1, col 1: syntax error: unexpected IDENTIFIER",
    );
    assert_400(
        &range(&c, &[("query", r#"{job=~".*"}"#)]),
        "parse error : queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will",
    );
    assert_400(
        &range(&c, &[("query", SEL), ("limit", "5001")]),
        "max entries limit per query exceeded, limit > max_entries_limit_per_query (5001 > 5000)",
    );
    assert_400(
        &range(&c, &[("query", SEL), ("limit", "0")]),
        "limit must be a positive value",
    );
    assert_400(
        &range(&c, &[("query", SEL), ("limit", "-3")]),
        "limit must be a positive value",
    );
    assert_400(
        &range(&c, &[("query", SEL), ("direction", "up")]),
        "invalid direction 'up'",
    );
    assert_400(
        &range(
            &c,
            &[
                ("query", SEL),
                ("start", "1787220672"),
                ("end", "1787220671"),
            ],
        ),
        "end timestamp must not be before or equal to start time",
    );
    let r = range(&c, &[("query", SEL), ("start", "yesterday")]);
    assert!(r.status == 400 && text(&r).starts_with("could not parse 'start' parameter: "));
    assert_400(
        &get(&c, "/loki/api/v1/query", &[("query", SEL)], &[]),
        "log queries are not supported as an instant query type, please change your query to a range query type",
    );
    assert!(range(&c, &[("query", r#"{job="\d"}"#)]).status == 400);
}

#[test]
fn labels_buildinfo_and_ready() {
    let (loki, _) = seeded();
    let c = client(&loki);
    let v: Value = get(&c, "/loki/api/v1/labels", &[], &[]).json().unwrap();
    assert_eq!(
        v,
        json!({"status": "success", "data": ["container", "job", "service_name"]})
    );
    let v: Value = get(
        &c,
        "/loki/api/v1/label/container/values",
        &[("query", r#"{job="auth"}"#)],
        &[],
    )
    .json()
    .unwrap();
    assert_eq!(v["data"], json!(["pocketid"]));
    let v: Value = get(&c, "/loki/api/v1/label/nope/values", &[], &[])
        .json()
        .unwrap();
    assert_eq!(v, json!({"status": "success"}), "an empty list drops data");
    let v: Value = get(&c, "/loki/api/v1/status/buildinfo", &[], &[])
        .json()
        .unwrap();
    assert_eq!(v["version"], "3.7.6");
    let r = get(&c, "/ready", &[], &[]);
    assert_eq!((r.status, text(&r).as_str()), (200, "ready\n"));
    loki.set_ready(false);
    let r = get(&c, "/ready", &[], &[]);
    assert_eq!((r.status, text(&r).as_str()), (503, NOT_READY));
    assert_eq!(range(&c, &[("query", SEL)]).status, 503);
    loki.set_ready(true);
    assert_eq!(range(&c, &[("query", SEL)]).status, 200);
    assert!(loki
        .requests()
        .iter()
        .any(|r| r.path.starts_with("/loki/api/v1/query_range")));
}

#[test]
fn tenants() {
    let loki = Loki::start(LokiOptions {
        tenant: Some("homelab".into()),
        ..Default::default()
    })
    .unwrap();
    loki.push(
        &[("job", "auth"), ("container", "pocketid")],
        now_ns() - S,
        "info line",
    );
    let c = client(&loki);
    let r = range(&c, &[("query", SEL)]);
    assert_eq!((r.status, text(&r).as_str()), (401, "no org id"));
    let r = get(
        &c,
        "/loki/api/v1/query_range",
        &[("query", SEL)],
        &[("X-Scope-OrgID", "homelab")],
    );
    assert_eq!(merged(&r.json().unwrap()).len(), 1);
    let r = get(
        &c,
        "/loki/api/v1/query_range",
        &[("query", SEL)],
        &[("X-Scope-OrgID", "other")],
    );
    assert_eq!(r.status, 200);
    assert!(
        merged(&r.json().unwrap()).is_empty(),
        "another tenant sees nothing"
    );
}

#[test]
fn push_over_http() {
    let loki = Loki::start(LokiOptions::default()).unwrap();
    let c = client(&loki);
    let ts = (now_ns() - S).to_string();
    let body = json!({"streams": [{"stream": {"job": "auth", "container": "pocketid"},
        "values": [[ts, "line one"], [ts, "line two", {"trace_id": "abc"}]]}]});
    let r = c
        .send(
            "POST",
            "/loki/api/v1/push",
            &[],
            Body::Json(body),
            Retry::Never,
        )
        .unwrap();
    assert_eq!(r.status, 204, "{}", text(&r));
    assert_eq!(loki.len(), 2);
    let v: Value = range(&c, &[("query", SEL)]).json().unwrap();
    assert_eq!(merged(&v).len(), 2);
    assert!(
        v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["stream"]["trace_id"] == "abc"),
        "structured metadata is a stream label"
    );
    // Numbers as timestamps, no labels, too old: 400.
    let bad = |body: Value| {
        c.send(
            "POST",
            "/loki/api/v1/push",
            &[],
            Body::Json(body),
            Retry::Never,
        )
        .unwrap()
    };
    assert_eq!(
        bad(json!({"streams": [{"stream": {"a": "b"}, "values": [[1, "x"]]}]})).status,
        400
    );
    assert_400(
        &bad(json!({"streams": [{"stream": {}, "values": [[ts, "x"]]}]})),
        "error at least one label pair is required per stream",
    );
    let old = (now_ns() - 8 * 86400 * S).to_string();
    let r = bad(json!({"streams": [{"stream": {"a": "b"}, "values": [[old, "x"]]}]}));
    assert!(r.status == 400 && text(&r).contains("has timestamp too old"));
    // No Content-Type at all: Go's mime error.
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(loki.url().trim_start_matches("http://")).unwrap();
    s.write_all(b"POST /loki/api/v1/push HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert!(out.ends_with("\r\n\r\nmime: no media type"), "{out}");
}
