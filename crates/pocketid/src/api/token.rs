//! The OIDC token endpoint, used only to ask whether PocketID accepts a client secret
//! (`pocketid-logs-and-access.md` §2: client authentication comes before the grant).

use super::{ApiError, PocketIdApi};
use ansible_module::Secret;
use httpx::{Body, Retry};
use serde_json::Value;

/// PocketID's verdict on a client secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretCheck {
    /// Client authentication passed (the unusable code was then refused with `invalid_grant`).
    Accepted,
    /// `invalid_client`: wrong, retired or expired secret, or an unknown client.
    Refused,
}

impl PocketIdApi {
    /// Presents `secret` for `client_id` at `POST /api/oidc/token` (`client_secret_post`) with
    /// `grant_type=authorization_code`, a random code no PocketID ever issued and, when given, a
    /// registered callback URL. fosite authenticates the client before it looks at the code, so
    /// 401 `invalid_client` means refused and 400 `invalid_grant` accepted; nothing can be issued
    /// or changed, which also makes a repeat after a 429 or 5xx harmless.
    pub fn check_client_secret(
        &self,
        client_id: &str,
        secret: &Secret,
        redirect_uri: Option<&str>,
    ) -> Result<SecretCheck, ApiError> {
        let code = unusable_code()?;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("client_id", client_id),
            ("client_secret", secret.expose()),
        ];
        if let Some(r) = redirect_uri {
            form.push(("redirect_uri", r));
        }
        let body: Vec<String> = form
            .iter()
            .map(|(k, v)| format!("{k}={}", httpx::encode(v)))
            .collect();
        let resp = self.http.send(
            "POST",
            "/api/oidc/token",
            &[("Accept", "application/json")],
            Body::Raw {
                content_type: "application/x-www-form-urlencoded",
                bytes: body.join("&").into_bytes(),
            },
            Retry::Safe,
        )?;
        let parsed: Option<Value> = resp.json().ok();
        let error = parsed
            .as_ref()
            .and_then(|v| v.get("error"))
            .and_then(Value::as_str)
            .unwrap_or("");
        match (resp.status, error) {
            (401, "invalid_client") => Ok(SecretCheck::Refused),
            (400, "invalid_grant") => Ok(SecretCheck::Accepted),
            _ => Err(ApiError::TokenCheck {
                status: resp.status,
                error: if error.is_empty() {
                    resp.safe_text()
                } else {
                    httpx::safe_text(error)
                },
            }),
        }
    }
}

/// 32 random bytes in hex: never a code PocketID issued (its codes carry its own signature).
fn unusable_code() -> Result<String, ApiError> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| ApiError::Random(e.to_string()))?;
    Ok(format!(
        "secret-check-{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    ))
}
