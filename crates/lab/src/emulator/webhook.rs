//! A webhook receiver, the lab's stand-in for the n8n webhook the workflows' alerts post to
//! (`scripts/notify-webhook.sh`): it takes JSON POSTs on one unguessable path, as an n8n
//! production webhook URL is (`/webhook/<id>`), and records each delivery for the tests: the body
//! and whether the token header (`Authorization: Bearer <token>`, n8n's header auth) was absent,
//! matched or wrong.
//!
//! Answers: 200 `{"message":"Workflow was started"}` (n8n's default answer); 403
//! `Authorization data is wrong!` when a token is configured and the header lacks it or differs
//! (recorded too); 404 on any other path or method (n8n's "not registered"); and
//! [`Webhook::refuse`] makes every delivery answer a given status (a refused delivery).

use crate::emulator::{Body, Emulator, Listener, Options, Request, Response};
use crate::error::Result;
use crate::servers::openbao::random_hex;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex, MutexGuard};

pub use crate::emulator::LoggedRequest;

/// The token header of a delivery, as the receiver saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSeen {
    /// No `Authorization` header.
    Absent,
    /// `Authorization: Bearer <the configured token>`.
    Matched,
    /// An `Authorization` header that is not the configured token (or none is configured).
    Wrong,
}

/// One delivery to the webhook path.
#[derive(Debug, Clone)]
pub struct Received {
    /// The body as text (lossy UTF-8).
    pub body: String,
    /// The body parsed as JSON (`Null` when it is not JSON).
    pub json: Value,
    /// Whether `Content-Type` declared JSON.
    pub json_type: bool,
    pub token: TokenSeen,
    /// The status the receiver answered.
    pub status: u16,
}

struct State {
    path: String,
    token: Option<String>,
    refuse: Option<u16>,
    received: Vec<Received>,
}

/// The running receiver; stopped on drop.
pub struct Webhook {
    state: Arc<Mutex<State>>,
    emulator: Emulator,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Webhook")
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl Webhook {
    /// Starts the receiver on a free 127.0.0.1 port; with `token`, deliveries need
    /// `Authorization: Bearer <token>`.
    pub fn start(token: Option<String>) -> Result<Webhook> {
        let listener = Listener::bind(Options::new("webhook receiver"))?;
        let state = Arc::new(Mutex::new(State {
            path: format!("/webhook/{}", random_hex(16)),
            token,
            refuse: None,
            received: Vec::new(),
        }));
        let emulator = {
            let state = Arc::clone(&state);
            listener.serve(move |req| route(&mut lock(&state), req))?
        };
        Ok(Webhook { state, emulator })
    }

    /// The webhook's URL, its unguessable path included (a capability, like n8n's).
    pub fn url(&self) -> String {
        format!("{}{}", self.emulator.url(), lock(&self.state).path)
    }

    /// The token deliveries must carry, if any.
    pub fn token(&self) -> Option<String> {
        lock(&self.state).token.clone()
    }

    /// Every delivery to the webhook path so far, oldest first.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.state).received.clone()
    }

    pub fn clear(&self) {
        lock(&self.state).received.clear();
    }

    /// From now on every delivery is answered `status` (`None`: accepted again).
    pub fn refuse(&self, status: Option<u16>) {
        lock(&self.state).refuse = status;
    }

    /// Every request answered, the webhook path's and others.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.emulator.requests()
    }
}

fn route(st: &mut State, req: &Request) -> Response {
    if req.method != "POST" || req.path != st.path {
        let what = format!("{} {}", req.method, req.path.trim_start_matches('/'));
        return Response::json(
            404,
            json!({"code": 404, "message": format!("The requested webhook \"{what}\" is not registered.")}),
        );
    }
    let token = match (req.header("authorization"), &st.token) {
        (None, _) => TokenSeen::Absent,
        (Some(_), Some(t)) if req.authorization(&["Bearer"]) == Some(t.as_str()) => {
            TokenSeen::Matched
        }
        (Some(_), _) => TokenSeen::Wrong,
    };
    let status = match (st.refuse, &st.token, token) {
        (Some(s), _, _) => s,
        (None, Some(_), TokenSeen::Matched) | (None, None, TokenSeen::Absent) => 200,
        (None, _, _) => 403,
    };
    st.received.push(Received {
        body: String::from_utf8_lossy(&req.body).into_owned(),
        json: serde_json::from_slice(&req.body).unwrap_or(Value::Null),
        json_type: req.has_json_body(),
        token,
        status,
    });
    match status {
        200 => Response::json(200, json!({"message": "Workflow was started"})),
        403 => Response {
            status,
            body: Body::Text("Authorization data is wrong!".into()),
            headers: Vec::new(),
        },
        s => Response::json(s, json!({"code": s, "message": "Error in workflow"})),
    }
}
