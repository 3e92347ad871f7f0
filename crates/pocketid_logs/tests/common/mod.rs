//! What the module tests share: running the binary, and PocketID lines as the contract shows
//! them (pocketid-logs-and-access §1.4, §2), with one-time codes and authorize secrets in them.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::path::Path;
use testkit::module::{run_module, ModuleRun, CI_VARS};

pub const BIN: &str = env!("CARGO_BIN_EXE_pocketid_logs");

/// Environment variables the module reads, removed so a developer's own cannot leak in.
const ENV: [&str; 7] = [
    "LOKI_ADDR",
    "LOKI_ORG_ID",
    "LOKI_USERNAME",
    "LOKI_PASSWORD",
    "LOKI_BEARER_TOKEN",
    "POCKETID_URL",
    "POCKETID_API_KEY",
];

pub fn run(args: Value) -> ModuleRun {
    let mut remove: Vec<&str> = CI_VARS.to_vec();
    remove.extend(ENV);
    run_module(Path::new(BIN), &args, &remove, &[])
}

/// `args` with `extra` merged in.
pub fn merged(mut args: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        args[k] = v;
    }
    args
}

pub fn now_ns() -> u128 {
    httpx::time::now_ns() as u128
}

/// Secrets the lines below hold; none may appear in any output.
pub const SECRETS: [&str; 6] = [
    "Xk7pQ2",
    "Zz9Yy8Ww7Vv6",
    "st4te-s3cret",
    "ch4llenge-s3cret",
    "n0nce-s3cret",
    "c0de-s3cret",
];

/// Text-format lines (tint) of a morning's failures, oldest first, as offsets in ms.
pub fn text_lines() -> Vec<(u64, String)> {
    let v = "app=pocket-id version=2.14.0";
    let ua =
        r#"user_agent="Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0""#;
    vec![
        (
            0,
            format!(
                r#"Aug 20 10:11:12 INF HTTP request completed {v} request_id=6f1d2c7e status=200 method=GET path=/api/users/me query="" route=/api/users/me ip=192.168.1.20 latency=1.84ms referer=https://id.example.org/settings {ua} body_size=412"#
            ),
        ),
        // Token step: wrong client secret.
        (
            1000,
            format!("Aug 20 10:12:01 ERR Failed to create access request {v} error=invalid_client"),
        ),
        (
            1002,
            format!(
                r#"Aug 20 10:12:01 INF HTTP request completed {v} request_id=0c8e1111 status=401 method=POST path=/api/oidc/token query="" route=/api/oidc/token ip=172.18.0.7 latency=2.9ms referer="" user_agent=Go-http-client/1.1 body_size=156"#
            ),
        ),
        // Authorize step: callback URL not allowed, hint on /interaction/error.
        (
            2000,
            format!(
                "Aug 20 10:12:30 ERR Failed to create authorize request {v} error=invalid_request"
            ),
        ),
        (
            2001,
            format!(
                r#"Aug 20 10:12:30 INF HTTP request completed {v} request_id=a1 status=302 method=GET path=/authorize query="client_id=grafana&redirect_uri=https%3A%2F%2Fgrafana.example.org%2Flogin%2Fgeneric_oauth&state=st4te-s3cret&code_challenge=ch4llenge-s3cret&code_challenge_method=S256&nonce=n0nce-s3cret&response_type=code" route="" ip=192.168.1.20 latency=3ms referer="" {ua} body_size=0"#
            ),
        ),
        (
            2300,
            format!(
                r#"Aug 20 10:12:30 INF HTTP request completed {v} request_id=a2 status=200 method=GET path=/interaction/error query="error=The+%27redirect_uri%27+parameter+does+not+match+any+of+the+OAuth+2.0+Client%27s+pre-registered+redirect+urls." route="" ip=192.168.1.20 latency=1ms referer="" {ua} body_size=900"#
            ),
        ),
        // Authorize step: user not in an allowed group.
        (
            3000,
            format!("Aug 20 10:13:00 ERR Failed to authorize request {v} error=access_denied"),
        ),
        (
            3001,
            format!(
                r#"Aug 20 10:13:00 INF HTTP request completed {v} request_id=b1 status=302 method=GET path=/authorize query="client_id=n8n&redirect_uri=https%3A%2F%2Fn8n.example.org%2Fcallback%3Fcode%3Dc0de-s3cret&state=st4te-s3cret" route="" ip=192.168.1.20 latency=3ms referer="" {ua} body_size=0"#
            ),
        ),
        (
            3100,
            format!(
                r#"Aug 20 10:13:00 INF HTTP request completed {v} request_id=b2 status=200 method=GET path=/interaction/error query="error=You+are+not+allowed+to+access+this+service." route="" ip=192.168.1.20 latency=1ms referer="" {ua} body_size=900"#
            ),
        ),
        // A login code refused, the code in the path and in the referer.
        (
            4000,
            format!(
                r#"Aug 20 10:13:40 INF HTTP request completed {v} request_id=9a41 error_code=token_invalid_or_expired status=401 method=POST path=/api/one-time-access-token/Xk7pQ2 query="" route=/api/one-time-access-token/:token ip=192.168.1.20 latency=3.1ms referer=https://id.example.org/login/alternative/code?code=Xk7pQ2 {ua} body_size=131"#
            ),
        ),
        (
            4100,
            format!(
                r#"Aug 20 10:13:41 INF HTTP request completed {v} request_id=9a42 status=200 method=GET path=/lc/Zz9Yy8Ww7Vv6 query="" route="" ip=192.168.1.20 latency=3.1ms referer="" {ua} body_size=131"#
            ),
        ),
        // An API key refused (a script, not a browser).
        (
            5000,
            format!(
                r#"Aug 20 10:14:00 INF HTTP request completed {v} request_id=c1 error_code=not_signed_in status=401 method=GET path=/api/oidc/clients query="" route=/api/oidc/clients ip=10.0.0.5 latency=1ms referer="" user_agent=homelab-sso/0.1.0 body_size=80"#
            ),
        ),
        // Passkey, logout callback, rate limit, disabled user, a server error.
        (
            6000,
            format!(
                r#"Aug 20 10:14:10 INF HTTP request completed {v} request_id=d1 error_code=webauthn_authentication_failed status=401 method=POST path=/api/webauthn/login/finish query="" route=/api/webauthn/login/finish ip=192.168.1.20 latency=1ms referer="" {ua} body_size=80"#
            ),
        ),
        // A logout callback PocketID does not accept: a WRN record and a 302, never a 400.
        (
            6100,
            format!(
                r#"Aug 20 10:14:11 WRN Error getting logout callback URL, the user has to confirm the logout manually {v} error="Callback URL is invalid and may need to be corrected by an administrator""#
            ),
        ),
        (
            6101,
            format!(
                r#"Aug 20 10:14:11 INF HTTP request completed {v} request_id=d2 status=302 method=GET path=/api/oidc/end-session query="" route=/api/oidc/end-session ip=192.168.1.20 latency=1ms referer="" {ua} body_size=-1"#
            ),
        ),
        (
            6200,
            format!(
                r#"Aug 20 10:14:12 WRN HTTP request completed {v} request_id=d3 error_code=rate_limited status=429 method=POST path=/api/one-time-access-token/Xk7pQ2 query="" route=/api/one-time-access-token/:token ip=192.168.1.20 latency=1ms referer="" {ua} body_size=80"#
            ),
        ),
        (
            6300,
            format!(
                r#"Aug 20 10:14:13 INF HTTP request completed {v} request_id=d4 error_code=user_disabled status=403 method=GET path=/authorize query="client_id=grafana&state=st4te-s3cret" route="" ip=192.168.1.20 latency=1ms referer="" {ua} body_size=80"#
            ),
        ),
        (
            6400,
            format!(
                r#"Aug 20 10:14:14 ERR Request failed {v} error_code=unexpected_error error_type=*errors.errorString http_status=500 request_id=e1 http_method=GET http_path=/api/users error="database is locked""#
            ),
        ),
        (
            6401,
            format!(
                r#"Aug 20 10:14:14 ERR HTTP request completed {v} request_id=e1 error_code=unexpected_error status=500 method=GET path=/api/users query="" route=/api/users ip=10.0.0.5 latency=5s referer="" user_agent=homelab-sso/0.1.0 body_size=80"#
            ),
        ),
    ]
}

/// The failures [`text_lines`] hold, per kind.
pub fn text_counts() -> Value {
    json!({
        "invalid_client": 1, "redirect_uri_not_allowed": 1, "access_denied": 1,
        "login_code_refused": 1, "api_key_refused": 1, "passkey_failed": 1,
        "logout_callback_invalid": 1, "rate_limited": 1, "user_disabled": 1, "server_error": 1,
    })
}
