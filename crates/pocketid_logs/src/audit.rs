//! Audit evidence (contract pocketid-logs-and-access §3): the latest `CLIENT_AUTHORIZATION` or
//! `NEW_CLIENT_AUTHORIZATION` per client name. The audit log records successes only, and an
//! authorization is written at the authorize step, before the token exchange: a client with a
//! recent authorization whose sign-ins still fail points at the token step (secret, PKCE,
//! `redirect_uri`); one without points at authorize (callback URL, group, PKCE challenge).

use pocketid::{ApiError, Connection, PocketIdApi};
use serde_json::{json, Map, Value};

pub const EVENTS: [&str; 2] = ["CLIENT_AUTHORIZATION", "NEW_CLIENT_AUTHORIZATION"];

/// `{client name: {time, username, event}}`, the newest entry per client.
pub fn latest_authorizations(conn: &Connection) -> Result<Map<String, Value>, ApiError> {
    let entries = PocketIdApi::new(conn)?.audit_log(&EVENTS)?;
    Ok(latest_per_client(&entries))
}

/// The newest entry per `data.clientName` (RFC 3339 times in UTC compare as text only when
/// written alike, so they are parsed).
pub fn latest_per_client(entries: &[Value]) -> Map<String, Value> {
    let mut best: Map<String, Value> = Map::new();
    let mut best_ts: std::collections::HashMap<String, i128> = Default::default();
    for e in entries {
        let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("");
        let Some(client) = e.pointer("/data/clientName").and_then(Value::as_str) else {
            continue;
        };
        // Remote text: sanitised and redacted like every log value.
        let client = crate::redact::text(client, 200);
        let client = client.as_str();
        let Some(ts) = crate::time::parse_rfc3339(s("createdAt")) else {
            continue;
        };
        if best_ts.get(client).is_some_and(|b| *b >= ts) {
            continue;
        }
        best_ts.insert(client.to_string(), ts);
        best.insert(
            client.to_string(),
            json!({
                "time": crate::time::format_rfc3339(ts),
                "username": crate::redact::text(s("username"), 200),
                "event": crate::redact::text(s("event"), 60),
            }),
        );
    }
    best
}

/// The warning for audit evidence that could not be read. A status error quotes PocketID's body,
/// which may hold anything: only its status and stable code are told; other errors are redacted
/// like every remote text.
pub fn failure_warning(e: &ApiError) -> String {
    let why = match e {
        ApiError::Status(s) => {
            let code = if s.code.is_empty() {
                String::new()
            } else {
                format!(" ({})", crate::redact::text(&s.code, 80))
            };
            format!(
                "PocketID answered {} {} with HTTP {}{code}",
                s.method,
                crate::redact::path(&s.path),
                s.status
            )
        }
        other => other.to_string(),
    };
    crate::redact::text(&format!("audit evidence could not be read: {why}"), 2000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_per_client() {
        let e = |t: &str, c: &str, u: &str, ev: &str| json!({"createdAt": t, "event": ev, "username": u, "data": {"clientName": c}});
        let m = latest_per_client(&[
            e(
                "2026-08-20T10:00:00Z",
                "grafana",
                "alice",
                "CLIENT_AUTHORIZATION",
            ),
            e(
                "2026-08-20T12:00:00+02:00",
                "grafana",
                "bob",
                "NEW_CLIENT_AUTHORIZATION",
            ),
            e(
                "2026-08-20T11:00:00Z",
                "grafana",
                "carol",
                "CLIENT_AUTHORIZATION",
            ),
            e(
                "2026-08-19T11:00:00Z",
                "n8n",
                "alice",
                "CLIENT_AUTHORIZATION",
            ),
            json!({"createdAt": "2026-08-20T10:00:00Z", "event": "SIGN_IN", "data": {}}),
        ]);
        assert_eq!(m.len(), 2);
        assert_eq!(m["grafana"]["username"], "carol");
        assert_eq!(m["grafana"]["time"], "2026-08-20T11:00:00Z");
        assert_eq!(m["n8n"]["event"], "CLIENT_AUTHORIZATION");
    }
}
