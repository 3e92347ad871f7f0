//! Requests to the PocketID emulator, shared by its contract tests (`pocketid_emulator.rs`,
//! `pocketid_versions.rs`).
#![allow(dead_code)]

use httpx::{Body, Client, HttpConfig, Response, Retry};
use lab::pocketid::{PocketId, PocketIdOptions};
use serde_json::{json, Value};

/// An emulator with these options and a client to it that never retries.
pub fn start_with(options: PocketIdOptions) -> (PocketId, Client) {
    let pid = PocketId::start(options).unwrap();
    let mut cfg = HttpConfig::new("PocketID", pid.url());
    cfg.retries = 0;
    (pid, Client::new(cfg).unwrap())
}

/// One API request authenticated by the API key `key`.
pub fn req(c: &Client, key: &str, method: &str, path: &str, body: Option<Value>) -> Response {
    let b = body.map(Body::Json).unwrap_or(Body::None);
    c.send(method, path, &[("X-API-Key", key)], b, Retry::Never)
        .unwrap()
}

/// The answer's JSON body (`null` when there is none).
pub fn json(r: &Response) -> Value {
    r.json().unwrap_or(Value::Null)
}

/// Creates the confidential client `app` and the public client `pub`.
pub fn create_app_and_public_clients(c: &Client, key: &str) {
    for body in [
        json!({"id": "app", "name": "App"}),
        json!({"id": "pub", "name": "Pub", "isPublic": true}),
    ] {
        req(c, key, "POST", "/api/oidc/clients", Some(body));
    }
}
