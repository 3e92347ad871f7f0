//! The PocketID emulator's authorization-code flow against `pocketid-logs-and-access.md` §2 and
//! §3: each row of the failure table (where the browser goes, what the token endpoint answers,
//! what PocketID logs), client authentication before the grant, single-use codes, and the audit
//! entries of the authorize step.

use base64::Engine;
use httpx::{Body, Client, HttpConfig, Response, Retry};
use lab::login::{self, Session};
use lab::pocketid::{Level, PocketId, PocketIdOptions};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const CB: &str = "https://app.example.org/oauth2/callback";
/// The client's registered post-logout redirect URI.
const LOGGED_OUT: &str = "https://app.example.org/logged-out";
const VERIFIER: &str = "verifier-verifier-verifier-verifier-verifier-0123456789";

struct Fixture {
    pid: PocketId,
    c: Client,
    session: Session,
    secret: String,
}

/// An emulator with client `app` (PKCE required, restricted to group `members`), a user `alice`
/// in that group, signed in, and the client's secret.
fn fixture(version: &str) -> Fixture {
    fixture_with(PocketIdOptions::version(version))
}

fn fixture_with(options: PocketIdOptions) -> Fixture {
    let pid = PocketId::start(options).unwrap();
    pid.seed_groups(&["members", "others"]);
    pid.seed_client(
        Some("app"),
        json!({"name": "My App", "callbackURLs": [CB], "logoutCallbackURLs": [LOGGED_OUT],
               "pkceEnabled": true}),
    );
    pid.restrict_client_to_groups("app", &["members"]);
    let alice = pid.add_user("alice", Some("alice@example.org"), false);
    assert!(pid.add_user_to_group(&alice, "members"));
    let (_, secret) = pid.add_client_secret("app").unwrap();
    let session = login::sign_in(pid.url(), pid.admin_key(), "alice").unwrap();
    let mut cfg = HttpConfig::new("PocketID", pid.url());
    cfg.retries = 0;
    Fixture {
        c: Client::new(cfg).unwrap(),
        pid,
        session,
        secret,
    }
}

fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn enc(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", httpx::encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `GET /authorize` with the usual parameters, `overrides` replacing or removing (empty) some.
fn authorize(f: &Fixture, cookie: Option<&str>, overrides: &[(&str, &str)]) -> Response {
    let ch = challenge(VERIFIER);
    let mut p: Vec<(&str, &str)> = vec![
        ("client_id", "app"),
        ("redirect_uri", CB),
        ("response_type", "code"),
        ("scope", "openid profile email"),
        ("state", "state-0123456789"),
        ("code_challenge", &ch),
        ("code_challenge_method", "S256"),
        ("nonce", "n-0S6_WzA2Mj"),
    ];
    for (k, v) in overrides {
        p.retain(|(n, _)| n != k);
        if !v.is_empty() {
            p.push((k, v));
        }
    }
    let headers: Vec<(&str, &str)> = cookie.map(|c| ("Cookie", c)).into_iter().collect();
    f.c.send(
        "GET",
        &format!("/authorize?{}", enc(&p)),
        &headers,
        Body::None,
        Retry::Never,
    )
    .unwrap()
}

fn location(r: &Response) -> (String, Vec<(String, String)>) {
    let loc = r.header("location").expect("a redirect").to_string();
    let (base, q) = loc.split_once('?').unwrap_or((&loc, ""));
    let q = q
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect();
    (base.to_string(), q)
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

fn q<'a>(q: &'a [(String, String)], k: &str) -> Option<&'a str> {
    q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

/// A code for alice through a successful authorize.
fn code(f: &Fixture) -> String {
    let r = authorize(f, Some(f.session.cookie()), &[]);
    assert_eq!(r.status, 303);
    let (base, query) = location(&r);
    assert_eq!(base, CB);
    assert_eq!(q(&query, "state"), Some("state-0123456789"));
    q(&query, "code").expect("a code").to_string()
}

/// `POST /api/oidc/token`: `basic` sends the credentials in the header, else in the form.
fn token(f: &Fixture, creds: (&str, &str), basic: bool, form: &[(&str, &str)]) -> Response {
    let mut form: Vec<(&str, &str)> = form.to_vec();
    let auth;
    let mut headers = vec![];
    if basic {
        auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                httpx::encode(creds.0),
                httpx::encode(creds.1)
            ))
        );
        headers.push(("Authorization", auth.as_str()));
    } else {
        form.push(("client_id", creds.0));
        form.push(("client_secret", creds.1));
    }
    let body = Body::Raw {
        content_type: "application/x-www-form-urlencoded",
        bytes: enc(&form).into_bytes(),
    };
    f.c.send("POST", "/api/oidc/token", &headers, body, Retry::Never)
        .unwrap()
}

fn grant<'a>(code: &'a str, verifier: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", CB),
        ("code_verifier", verifier),
    ]
}

fn error_of(r: &Response) -> (u16, String, String) {
    let v: Value = r.json().unwrap_or(Value::Null);
    (
        r.status,
        v["error"].as_str().unwrap_or("").to_string(),
        v["error_description"].as_str().unwrap_or("").to_string(),
    )
}

/// The messages PocketID logged for the last request, with their `error` attribute.
/// The logged records: level, message and the RFC 6749 name of the `error` value (text mode
/// logs the name, a newline and fosite's stack trace; the description is not logged).
fn logged(pid: &PocketId) -> Vec<(Level, String, Value)> {
    pid.last_log_records()
        .into_iter()
        .map(|r| {
            let e = r
                .attrs
                .iter()
                .find(|(k, _)| k == "error")
                .and_then(|(_, v)| v.as_str())
                .map(|v| json!(v.split('\n').next().unwrap_or("")))
                .unwrap_or(Value::Null);
            (r.level, r.msg, e)
        })
        .collect()
}

fn audit(f: &Fixture) -> Vec<Value> {
    let path = "/api/audit-logs/all?sort%5Bcolumn%5D=createdAt&sort%5Bdirection%5D=asc&filters%5BclientName%5D=My%20App";
    let r =
        f.c.send(
            "GET",
            path,
            &[("X-API-Key", f.pid.admin_key())],
            Body::None,
            Retry::Never,
        )
        .unwrap();
    let v: Value = r.json().unwrap();
    v["data"].as_array().cloned().unwrap_or_default()
}

#[test]
fn a_member_logs_in_and_the_authorize_step_writes_the_audit_entries() {
    for v in ["2.14.0", "2.13.0"] {
        let f = fixture(v);
        let c = code(&f);
        let entries = audit(&f);
        assert_eq!(entries.len(), 1, "{v}: {entries:?}");
        assert_eq!(entries[0]["event"], json!("NEW_CLIENT_AUTHORIZATION"));
        assert_eq!(entries[0]["data"]["clientName"], json!("My App"));
        assert_eq!(entries[0]["username"], json!("alice"));
        let r = token(&f, ("app", &f.secret), true, &grant(&c, VERIFIER));
        let body: Value = r.json().unwrap();
        assert_eq!(r.status, 200, "{v}: {body}");
        assert_eq!(body["token_type"], json!("bearer"));
        assert_eq!(body["expires_in"], json!(3599));
        assert_eq!(body["scope"], json!("openid profile email"));
        assert!(body["access_token"].is_string() && body["id_token"].is_string());
        assert!(
            body.get("refresh_token").is_none(),
            "no offline_access asked"
        );
        let id_token = body["id_token"].as_str().unwrap();
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(id_token.split('.').nth(1).unwrap())
            .unwrap();
        let claims: Value = serde_json::from_slice(&claims).unwrap();
        assert_eq!(claims["aud"], json!(["app"]));
        assert_eq!(claims["nonce"], json!("n-0S6_WzA2Mj"));
        assert_eq!(claims["iss"], json!(f.pid.url()));
        assert!(f
            .pid
            .access_token_active(body["access_token"].as_str().unwrap()));

        // The second authorization of the same client is no longer "new"; offline_access gives
        // a refresh token; client_secret_post works as well as basic.
        let r = authorize(
            &f,
            Some(f.session.cookie()),
            &[("scope", "openid offline_access")],
        );
        let c2 = q(&location(&r).1, "code").unwrap().to_string();
        let events: Vec<Value> = audit(&f).iter().map(|e| e["event"].clone()).collect();
        assert_eq!(
            events,
            [
                json!("NEW_CLIENT_AUTHORIZATION"),
                json!("CLIENT_AUTHORIZATION")
            ]
        );
        let r = token(&f, ("app", &f.secret), false, &grant(&c2, VERIFIER));
        let body: Value = r.json().unwrap();
        assert_eq!(r.status, 200, "{v}: {body}");
        assert!(body["refresh_token"].is_string());
    }
}

#[test]
fn a_reused_code_is_invalid_grant_and_revokes_its_tokens() {
    let f = fixture("2.14.0");
    let c = code(&f);
    let r = token(&f, ("app", &f.secret), true, &grant(&c, VERIFIER));
    let access: Value = r.json().unwrap();
    let access = access["access_token"].as_str().unwrap().to_string();
    let r = token(&f, ("app", &f.secret), true, &grant(&c, VERIFIER));
    let (status, error, desc) = error_of(&r);
    assert_eq!((status, error.as_str()), (400, "invalid_grant"));
    assert!(
        desc.ends_with("The authorization code has already been used."),
        "{desc}"
    );
    assert!(
        !f.pid.access_token_active(&access),
        "tokens of a replayed code are revoked"
    );
    let log = logged(&f.pid);
    assert_eq!(log[0].0, Level::Error);
    assert_eq!(log[0].1, "Failed to create access request");
    assert_eq!(log[0].2, json!("invalid_grant"));
}

#[test]
fn client_authentication_comes_before_the_grant() {
    for v in ["2.14.0", "2.13.0"] {
        let f = fixture(v);
        let bogus = grant("not-a-code", VERIFIER);
        for basic in [true, false] {
            // Wrong secret and unknown client look the same: 401 invalid_client.
            for creds in [
                ("app", "wrong-secret-0123456789"),
                ("ghost", f.secret.as_str()),
            ] {
                let (status, error, desc) = error_of(&token(&f, creds, basic, &bogus));
                assert_eq!(
                    (status, error.as_str()),
                    (401, "invalid_client"),
                    "{v} {creds:?}"
                );
                assert!(desc.starts_with("Client authentication failed"), "{desc}");
                assert!(!desc.contains(&f.secret));
                let log = logged(&f.pid);
                assert_eq!(log.len(), 1);
                assert_eq!(log[0].1, "Failed to create access request");
                assert_eq!(log[0].2, json!("invalid_client"));
            }
            // The right secret with an unusable code gets past authentication: invalid_grant.
            let (status, error, _) = error_of(&token(&f, ("app", &f.secret), basic, &bogus));
            assert_eq!((status, error.as_str()), (400, "invalid_grant"), "{v}");
        }
        // No credentials at all.
        let r = token(&f, ("", ""), false, &bogus);
        assert_eq!(error_of(&r).1, "invalid_request");
        // A secret made stale elsewhere is refused like a wrong one.
        assert!(f.pid.make_client_secrets_stale("app"));
        let (status, error, _) = error_of(&token(&f, ("app", &f.secret), true, &bogus));
        assert_eq!((status, error.as_str()), (401, "invalid_client"), "{v}");
        assert!(!f.pid.client_secret_valid("app", &f.secret));
    }
}

#[test]
fn grant_checks_redirect_uri_pkce_and_expiry_without_consuming_the_code() {
    let f = fixture("2.14.0");
    let c = code(&f);
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![
                ("grant_type", "authorization_code"),
                ("code", &c),
                ("redirect_uri", "https://app.example.org/other"),
                ("code_verifier", VERIFIER),
            ],
            "The \"redirect_uri\" from this request does not match the one from the authorize request.",
        ),
        (
            grant(&c, "too-short"),
            "The PKCE code verifier must be at least 43 characters.",
        ),
        (
            grant(&c, "another-verifier-another-verifier-another-verifier"),
            "The PKCE code challenge did not match the code verifier.",
        ),
    ];
    for (form, hint) in cases {
        let (status, error, desc) = error_of(&token(&f, ("app", &f.secret), true, &form));
        assert_eq!((status, error.as_str()), (400, "invalid_grant"), "{hint}");
        assert!(desc.ends_with(hint), "{desc}");
    }
    // Failed exchanges leave the code usable.
    let r = token(&f, ("app", &f.secret), true, &grant(&c, VERIFIER));
    assert_eq!(r.status, 200);
    // A code older than 15 minutes is invalid_grant.
    let c = code(&f);
    f.pid.expire_authorization_codes();
    let (status, error, _) = error_of(&token(&f, ("app", &f.secret), true, &grant(&c, VERIFIER)));
    assert_eq!((status, error.as_str()), (400, "invalid_grant"));
}

#[test]
fn unknown_client_goes_to_interaction_error_with_the_hint() {
    let f = fixture("2.14.0");
    let r = authorize(&f, Some(f.session.cookie()), &[("client_id", "ghost")]);
    assert_eq!(r.status, 302);
    let loc = r.header("location").unwrap().to_string();
    assert_eq!(
        loc,
        "/interaction/error?error=The+requested+OAuth+2.0+Client+does+not+exist."
    );
    let log = logged(&f.pid);
    assert_eq!(
        (log[0].0, log[0].1.as_str(), &log[0].2),
        (
            Level::Error,
            "Failed to create authorize request",
            &json!("invalid_client")
        )
    );
    assert_eq!(log[1].0, Level::Debug);
    assert_eq!(log[1].1, "Fosite authorize error details");
    // The frontend page answers.
    let page =
        f.c.send("GET", &loc, &[], Body::None, Retry::Never)
            .unwrap();
    assert_eq!(page.status, 200);
    assert!(audit(&f).is_empty(), "failures write no audit entry");
}

#[test]
fn an_unregistered_redirect_uri_is_invalid_request_at_interaction_error() {
    let f = fixture("2.14.0");
    let r = authorize(
        &f,
        Some(f.session.cookie()),
        &[("redirect_uri", "https://evil.example.org/cb")],
    );
    assert_eq!(r.status, 302);
    let (base, query) = location(&r);
    assert_eq!(base, "/interaction/error");
    assert_eq!(
        q(&query, "error"),
        Some("The 'redirect_uri' parameter does not match any of the OAuth 2.0 Client's pre-registered redirect urls.")
    );
    let log = logged(&f.pid);
    assert_eq!(log[0].1, "Failed to create authorize request");
    assert_eq!(log[0].2, json!("invalid_request"));
    let hint = f.pid.last_log_records()[1]
        .attrs
        .iter()
        .find(|(k, _)| k == "hint")
        .map(|(_, v)| v.clone());
    assert_eq!(hint, Some(json!(q(&query, "error").unwrap())));
}

#[test]
fn missing_pkce_challenge_is_sent_back_to_the_callback() {
    let f = fixture("2.14.0");
    let r = authorize(&f, Some(f.session.cookie()), &[("code_challenge", "")]);
    assert_eq!(r.status, 303);
    let (base, query) = location(&r);
    assert_eq!(base, CB);
    assert_eq!(q(&query, "error"), Some("invalid_request"));
    assert!(q(&query, "error_description")
        .unwrap()
        .ends_with("This client requires PKCE, but the 'code_challenge' parameter is missing."));
    assert_eq!(q(&query, "state"), Some("state-0123456789"));
    assert_eq!(logged(&f.pid)[0].1, "Failed to authorize request");
    // A too-short state and an unknown scope are errors for the callback too.
    let r = authorize(&f, Some(f.session.cookie()), &[("state", "short")]);
    assert_eq!(q(&location(&r).1, "error"), Some("invalid_state"));
    let r = authorize(&f, Some(f.session.cookie()), &[("scope", "openid admin")]);
    assert_eq!(q(&location(&r).1, "error"), Some("invalid_scope"));
}

#[test]
fn a_user_outside_the_allowed_groups_is_denied() {
    let f = fixture("2.14.0");
    let bob = f.pid.add_user("bob", None, false);
    f.pid.add_user_to_group(&bob, "others");
    let bob = login::sign_in(f.pid.url(), f.pid.admin_key(), "bob").unwrap();
    let r = authorize(&f, Some(bob.cookie()), &[]);
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location"),
        Some("/interaction/error?error=You+are+not+allowed+to+access+this+service.")
    );
    let log = logged(&f.pid);
    assert_eq!(log[0].1, "Failed to authorize request");
    assert_eq!(log[0].2, json!("access_denied"));
    assert!(audit(&f).is_empty());
    // Through the login stand-in: the failure is at authorize, with the hint.
    let out = login::oidc_login(f.pid.url(), "app", &f.secret, CB, &bob).unwrap();
    assert_eq!(out.failed_step(), Some("authorize"));
    let lab::login::LoginOutcome::AuthorizeFailed(a) = out else {
        unreachable!()
    };
    assert_eq!(a.location.as_deref(), Some("/interaction/error"));
    assert_eq!(
        a.hint.as_deref(),
        Some("You are not allowed to access this service.")
    );
}

#[test]
fn without_a_session_the_browser_goes_to_the_login_page() {
    let f = fixture("2.14.0");
    let r = authorize(&f, None, &[]);
    assert_eq!(r.status, 302);
    let (base, query) = location(&r);
    assert_eq!(base, "/login");
    assert!(q(&query, "redirect")
        .unwrap()
        .starts_with("/authorize?client_id=app"));
    // A disabled user's session is refused by the middleware.
    let dis = f.pid.add_user("dis", None, false);
    f.pid.add_user_to_group(&dis, "members");
    let s = login::sign_in(f.pid.url(), f.pid.admin_key(), "dis").unwrap();
    f.pid.set_user_disabled(&dis, true);
    let r = authorize(&f, Some(s.cookie()), &[]);
    assert_eq!(r.status, 403);
    let v: Value = r.json().unwrap();
    assert_eq!(v["code"], json!("user_disabled"));
}

#[test]
fn the_login_stand_in_reports_the_failing_step() {
    let f = fixture("2.14.0");
    let ok = login::oidc_login(f.pid.url(), "app", &f.secret, CB, &f.session).unwrap();
    assert!(ok.succeeded(), "{ok:?}");
    assert!(
        !format!("{ok:?}").contains("ory_at_"),
        "Debug hides the tokens"
    );
    let bad = login::oidc_login(
        f.pid.url(),
        "app",
        "wrong-secret-0123456789",
        CB,
        &f.session,
    )
    .unwrap();
    let lab::login::LoginOutcome::TokenFailed(t) = bad else {
        panic!("expected a token failure: {bad:?}")
    };
    assert_eq!((t.status, t.error.as_str()), (401, "invalid_client"));
}

/// `GET /api/oidc/end-session` with these parameters.
fn end_session(f: &Fixture, params: &[(&str, &str)]) -> Response {
    let path = format!("/api/oidc/end-session?{}", enc(params));
    f.c.send("GET", &path, &[], Body::None, Retry::Never)
        .unwrap()
}

#[test]
fn a_bad_logout_callback_is_a_warning_and_a_302_to_the_logout_page_per_version_and_format() {
    for v in ["2.12.0", "2.13.0", "2.14.0"] {
        for log_json in [false, true] {
            let f = fixture_with(PocketIdOptions {
                log_json,
                ..PocketIdOptions::version(v)
            });
            let c = code(&f);
            let r = token(&f, ("app", &f.secret), true, &grant(&c, VERIFIER));
            let body: Value = r.json().unwrap();
            let id_token = body["id_token"].as_str().unwrap().to_string();
            let access_token = body["access_token"].as_str().unwrap().to_string();
            let logout_page = format!("{}/logout", f.pid.url());

            // An unregistered post-logout redirect URI: no error answer, a warning.
            let r = end_session(
                &f,
                &[
                    ("id_token_hint", &id_token),
                    ("post_logout_redirect_uri", "https://evil.example.org/"),
                ],
            );
            assert_eq!(r.status, 302, "{v}");
            assert_eq!(r.header("location"), Some(logout_page.as_str()), "{v}");
            // PocketID's error text: common/errors.go in 2.12, apperror in 2.13+.
            let error = if v == "2.12.0" {
                "invalid callback URL, it might be necessary for an admin to fix this"
            } else {
                "Callback URL is invalid and may need to be corrected by an administrator"
            };
            let lines = f.pid.log_lines();
            let line = lines
                .iter()
                .find(|l| l.contains(lab::pocketid::LOGOUT_CALLBACK_WARNING))
                .unwrap_or_else(|| panic!("{v}: {lines:?}"));
            if log_json {
                let l: Value = serde_json::from_str(line).unwrap();
                assert_eq!(l["level"], json!("WARN"), "{line}");
                assert_eq!(l["error"], json!(error), "{line}");
            } else {
                let expected = format!(
                    " WRN {} app=pocket-id version={v} error=\"{error}\"",
                    lab::pocketid::LOGOUT_CALLBACK_WARNING
                );
                assert!(line.ends_with(&expected), "{line}");
            }
            let last = lines.last().unwrap();
            assert!(
                last.contains("302") && last.contains("/api/oidc/end-session"),
                "{v}: the request line: {last}"
            );
            assert!(!last.contains("error_code"), "{last}");
            assert!(f.pid.access_token_active(&access_token), "{v}");

            // No hint at all: the same warning, with the token error.
            let r = end_session(&f, &[("post_logout_redirect_uri", LOGGED_OUT)]);
            assert_eq!(r.header("location"), Some(logout_page.as_str()), "{v}");
            let rec = f.pid.last_log_records();
            assert_eq!(
                rec[0].attrs,
                vec![("error".to_string(), json!("Token is invalid"))],
                "{v}"
            );

            // The registered one: back to it with the state, and the tokens are revoked.
            let r = end_session(
                &f,
                &[
                    ("id_token_hint", &id_token),
                    ("post_logout_redirect_uri", LOGGED_OUT),
                    ("state", "bye-0123"),
                ],
            );
            assert_eq!(r.status, 302, "{v}");
            assert_eq!(
                r.header("location"),
                Some(format!("{LOGGED_OUT}?state=bye-0123").as_str()),
                "{v}"
            );
            assert!(f.pid.last_log_records().is_empty(), "{v}");
            assert!(!f.pid.access_token_active(&access_token), "{v}");
        }
    }
}
