//! The `pocketid_login_code` module: a single-use PocketID login code for a user who is locked out
//! or on a new device (`pocketid-logs-and-access.md` §4), made with the admin API key and handed
//! over by PocketID's own e-mail, on the operator's terminal, or in a new 0600 file. The code and
//! its `<APP_URL>/lc/<code>` URL are secrets: they are never in the result, a message or a log.

use crate::api::{connection_options, ApiError, Connection, PocketIdApi};
use crate::duration;
use crate::login_code_ssh::{self, SshParams};
use ansible_module::{Context, Failure, Module, Opt, Outcome, Secret};
use serde::Deserialize;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub struct PocketIdLoginCode;

#[derive(Debug, Deserialize)]
pub struct Params {
    #[serde(flatten)]
    pub conn: Connection,
    pub username: String,
    pub ttl: String,
    pub delivery: Delivery,
    pub path: Option<PathBuf>,
    pub fallback: Fallback,
    #[serde(flatten)]
    pub ssh: SshParams,
}

/// How the code reaches the user (the `delivery` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    Email,
    Display,
    File,
}

impl Delivery {
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Email => "email",
            Delivery::Display => "display",
            Delivery::File => "file",
        }
    }
}

impl std::fmt::Display for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to do when PocketID refuses the API key (the `fallback` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fallback {
    None,
    Ssh,
}

/// PocketID's bounds for `ttl`: more than 1 second, at most 31 days.
pub const MAX_TTL_SECS: u64 = 31 * 86400;
/// Codes that expire within this are 6 characters long, longer-lived ones 12.
pub const SHORT_CODE_TTL_SECS: u64 = 15 * 60;

/// Environment variables that mark a CI job (a workflow log is no place for a login code).
const CI_VARS: [&str; 6] = [
    "CI",
    "GITHUB_ACTIONS",
    "FORGEJO_ACTIONS",
    "GITEA_ACTIONS",
    "GITLAB_CI",
    "ACT",
];

#[derive(Debug, thiserror::Error)]
pub enum LoginCodeError {
    #[error("ttl {0:?} is not a duration: give seconds (900) or numbers with the units s, m, h, d (15m, 1h, 1h30m, 7d)")]
    BadTtl(String),
    #[error(
        "ttl {0:?} is {1} seconds: PocketID accepts more than 1 second and at most 31 days (744h)"
    )]
    TtlRange(String, u64),
    #[error("no PocketID user has the username {name:?} (its search matched {matched} other user(s)); give the exact username, which is case-sensitive")]
    NoUser { name: String, matched: usize },
    #[error("PocketID user {0:?} is disabled, so PocketID would refuse its login code (403 user_disabled): enable the user in the admin panel first")]
    Disabled(String),
    #[error("delivery display shows the code to a person at a terminal, and there is none here: {0}. Use delivery email, or file (a new file with mode 0600)")]
    NotInteractive(String),
    #[error("delivery file needs `path`, the new file to write the login URL to")]
    NoPath,
    #[error("{0} already exists: the login URL is only written to a new file, never over another one; remove it or choose another path")]
    FileExists(PathBuf),
    #[error("cannot write the login URL to {path}: {detail}")]
    FileWrite { path: PathBuf, detail: String },
    #[error("PocketID refused to e-mail a login code because its app setting for it is off (Application Configuration → Email: \"Email one-time access code as admin\", emailOneTimeAccessAsAdminEnabled); turn it on, or use delivery display or file")]
    EmailSettingOff,
    #[error("PocketID cannot e-mail a login code to {0:?}: the user has no e-mail address; set one in the admin panel, or use delivery display or file")]
    NoEmail(String),
    #[error("could not show the login code on the terminal ({0}); no code was shown, and the one made expires unused")]
    TtyWrite(String),
}

impl Module for PocketIdLoginCode {
    const NAME: &'static str = "pocketid_login_code";
    const ABOUT: &'static str =
        "Make a single-use PocketID login code for a user and deliver it by e-mail, on the terminal or in a 0600 file";
    type Params = Params;

    fn options() -> Vec<Opt> {
        let mut o = connection_options();
        o.extend([
            Opt::str("username")
                .alias("user")
                .required()
                .help("the user's exact PocketID username (case-sensitive)"),
            Opt::str("ttl").default("15m").help(
                "how long the code stays valid: seconds (900) or s/m/h/d units (15m, 1h, 1h30m, 7d); more than 1 second, at most 31 days. Up to 15m the code has 6 characters, above 12",
            ),
            Opt::str("delivery")
                .choices(&["email", "display", "file"])
                .default("email")
                .help("email: PocketID mails it to the user; display: shown once on this terminal (refused without one, and in CI); file: written to `path`, a new file with mode 0600"),
            Opt::path("path").help("the new file for delivery file (must not exist)"),
        ]);
        o.extend(login_code_ssh::options());
        o
    }

    fn run(p: Params, ctx: &mut Context) -> Result<Outcome, Failure> {
        run(p, ctx)
    }
}

/// A `ttl` in seconds: a number of seconds, or `<n><unit>` groups with units s, m, h, d.
pub fn parse_ttl(raw: &str) -> Result<u64, LoginCodeError> {
    let s = raw.trim();
    let secs = if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse::<u64>().ok()
    } else {
        duration::parse(s, duration::UNITS_TO_DAYS)
    }
    .ok_or_else(|| LoginCodeError::BadTtl(raw.to_string()))?;
    if secs <= 1 || secs > MAX_TTL_SECS {
        return Err(LoginCodeError::TtlRange(raw.to_string(), secs));
    }
    Ok(secs)
}

/// Seconds as a short duration (`15m`, `1h30m`, `31d`).
pub fn human_ttl(secs: u64) -> String {
    let mut out = String::new();
    let mut rest = secs;
    for (unit, size) in [("d", 86400), ("h", 3600), ("m", 60), ("s", 1)] {
        if rest >= size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    out
}

/// Why there is no person at a terminal to show a code to, if there is none.
fn not_interactive_reason() -> Option<String> {
    for v in CI_VARS {
        if let Ok(val) = std::env::var(v) {
            if !val.is_empty() && val != "false" && val != "0" {
                return Some(format!(
                    "this looks like a CI job ({v} is set), whose log is kept"
                ));
            }
        }
    }
    None
}

/// The controlling terminal, opened for writing (Ansible captures the module's stdout, so the
/// terminal is the only way to a person), else the one ansible-playbook runs at.
fn open_tty() -> Result<std::fs::File, LoginCodeError> {
    if let Some(why) = not_interactive_reason() {
        return Err(LoginCodeError::NotInteractive(why));
    }
    match std::fs::OpenOptions::new().write(true).open("/dev/tty") {
        Ok(f) => Ok(f),
        // Module mode under ansible-playbook: the terminal ansible-playbook was started from.
        Err(e) => crate::login_code_tty::open_session_parent_tty().map_err(|why| {
            LoginCodeError::NotInteractive(format!(
                "this process has no controlling terminal (/dev/tty: {e}), and {why}"
            ))
        }),
    }
}

/// Before any code exists: the file must be new and its directory must exist.
fn check_new_file(path: &Path) -> Result<(), LoginCodeError> {
    if std::fs::symlink_metadata(path).is_ok() {
        return Err(LoginCodeError::FileExists(path.to_path_buf()));
    }
    let dir = parent_dir(path);
    match std::fs::metadata(&dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(LoginCodeError::FileWrite {
            path: path.to_path_buf(),
            detail: format!("{} is not a directory", dir.display()),
        }),
        Err(e) => Err(LoginCodeError::FileWrite {
            path: path.to_path_buf(),
            detail: format!("its directory {}: {e}", dir.display()),
        }),
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Writes `content` to `path`, which must not exist, with mode 0600, so that the file appears
/// whole or not at all: a temporary file made exclusively in the same directory, then hard-linked
/// to `path` (which fails if `path` appeared meanwhile), then unlinked.
pub fn write_new_file(path: &Path, content: &str) -> Result<(), LoginCodeError> {
    let fail = |detail: String| LoginCodeError::FileWrite {
        path: path.to_path_buf(),
        detail,
    };
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "login-code".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| fail(format!("creating {}: {e}", tmp.display())))?;
    let written = f
        .write_all(content.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| fail(e.to_string()));
    drop(f);
    let linked = written.and_then(|_| {
        std::fs::hard_link(&tmp, path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                LoginCodeError::FileExists(path.to_path_buf())
            } else {
                fail(e.to_string())
            }
        })
    });
    let _ = std::fs::remove_file(&tmp);
    linked
}

/// The user with exactly this username among PocketID's search results (a wildcard substring
/// match).
pub fn pick_user(
    found: Vec<serde_json::Value>,
    username: &str,
) -> Result<serde_json::Value, Failure> {
    let matched = found.len();
    found
        .into_iter()
        .find(|u| u.get("username").and_then(|v| v.as_str()) == Some(username))
        .ok_or_else(|| {
            LoginCodeError::NoUser {
                name: username.to_string(),
                matched,
            }
            .into()
        })
}

fn run(p: Params, ctx: &mut Context) -> Result<Outcome, Failure> {
    let ttl = parse_ttl(&p.ttl)?;
    let ttl_text = human_ttl(ttl);
    // Every refusal that depends only on this machine comes before a code exists.
    let mut tty = None;
    match p.delivery {
        Delivery::Display => tty = Some(open_tty()?),
        Delivery::File => check_new_file(p.path.as_deref().ok_or(LoginCodeError::NoPath)?)?,
        Delivery::Email => {
            if p.path.is_some() {
                ctx.warn(format!(
                    "`path` is only used with delivery file; delivery is {}",
                    p.delivery
                ));
            }
        }
    }
    let api = PocketIdApi::new(&p.conn)?;
    let found = match api.search_users(&p.username) {
        Ok(f) => f,
        // A refused key (unknown, revoked and expired look the same): PocketID's CLI needs none.
        Err(e) if p.fallback == Fallback::Ssh && e.status() == Some(401) => {
            return ssh_fallback(p, ctx, tty, e, ttl);
        }
        Err(e) => return Err(e.into()),
    };
    let user = pick_user(found, &p.username)?;
    let user_id = user
        .get("id")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    if user.get("disabled").and_then(|v| v.as_bool()) == Some(true) {
        return Err(LoginCodeError::Disabled(p.username).into());
    }
    let code_length = if ttl <= SHORT_CODE_TTL_SECS { 6 } else { 12 };
    let mut out = Outcome::new(true)
        .set("username", p.username.clone())
        .set("user_id", user_id.clone())
        .set("delivery", p.delivery.as_str())
        .set("via", "api")
        .set("ttl_seconds", ttl)
        .set("code_length", code_length);
    if let (Some(path), Delivery::File) = (&p.path, p.delivery) {
        out.insert("path", path.display().to_string());
    }
    let what = format!(
        "a single-use login code for {} (valid {ttl_text})",
        p.username
    );
    if ctx.check_mode {
        return Ok(out
            .msg(format!("would make {what} and deliver it by {}", p.delivery))
            .diff(
                serde_json::json!({"login_code": null}),
                serde_json::json!({"login_code": {"username": p.username, "delivery": p.delivery, "ttl_seconds": ttl}}),
            ));
    }

    let base = p.conn.server.url.trim_end_matches('/').to_string();
    let msg = match p.delivery {
        Delivery::Email => {
            api.email_login_code(&user_id, ttl)
                .map_err(|e| email_error(e, &p.username))?;
            format!(
                "PocketID made {what} and e-mails it to the user's address in the background; if it does not arrive, look for \"Failed to send one-time access token email\" in PocketID's log (SMTP settings)"
            )
        }
        Delivery::Display | Delivery::File => {
            let code = api.create_login_code(&user_id, ttl)?;
            let url = Secret::new(format!("{base}/lc/{}", code.expose()));
            hand_over(&p, tty, &url, &what)?
        }
    };
    Ok(out.msg(msg).diff(
        serde_json::json!({"login_code": null}),
        serde_json::json!({"login_code": {"username": p.username, "delivery": p.delivery, "ttl_seconds": ttl}}),
    ))
}

/// Shows the login URL on the terminal or writes it to the new file; returns the message.
fn hand_over(
    p: &Params,
    tty: Option<std::fs::File>,
    url: &Secret,
    what: &str,
) -> Result<String, Failure> {
    let (base, code) = url.expose().rsplit_once("/lc/").unwrap_or(("", ""));
    if p.delivery == Delivery::Display {
        let mut tty = tty.ok_or(LoginCodeError::NotInteractive("no terminal".into()))?;
        write!(
            tty,
            "\nPocketID login: {what}\n\n    {url}\n\n(or enter {code} at {base}/lc) Give it to {user} only, over a channel you trust.\n\n",
            url = url.expose(),
            user = p.username,
        )
        .and_then(|_| tty.flush())
        .map_err(|e| LoginCodeError::TtyWrite(e.to_string()))?;
        return Ok(format!("made {what} and showed it on the terminal"));
    }
    let path = p.path.as_deref().ok_or(LoginCodeError::NoPath)?;
    write_new_file(path, &format!("{}\n", url.expose())).map_err(|e| {
        Failure::new(format!(
            "{e}; the code that was made is not shown anywhere and expires unused"
        ))
        .set("changed", true)
    })?;
    Ok(format!(
        "made {what} and wrote its URL to {} (mode 0600); hand it over, then delete the file",
        path.display()
    ))
}

/// The API key was refused: PocketID's CLI in its container, over SSH, makes a 1-hour code.
fn ssh_fallback(
    p: Params,
    ctx: &mut Context,
    tty: Option<std::fs::File>,
    refused: ApiError,
    ttl: u64,
) -> Result<Outcome, Failure> {
    if p.delivery == Delivery::Email {
        return Err(Failure::new(format!(
            "{refused}; {}",
            login_code_ssh::SshFallbackError::Email
        )));
    }
    ctx.warn(
        "PocketID refused the API key (401): the code comes from PocketID's CLI in its container, over SSH. Put a working key in Vault (playbooks/pocketid-api-key.yml)",
    );
    if ttl != login_code_ssh::CLI_TTL_SECS {
        ctx.warn(format!(
            "ttl {} is ignored: PocketID's CLI makes 1-hour codes",
            human_ttl(ttl)
        ));
    }
    let what = format!("a single-use login code for {} (valid 1h)", p.username);
    let mut out = Outcome::new(true)
        .set("username", p.username.clone())
        .set("delivery", p.delivery.as_str())
        .set("via", "ssh")
        .set("ttl_seconds", login_code_ssh::CLI_TTL_SECS)
        .set("code_length", 12);
    if let (Some(path), Delivery::File) = (&p.path, p.delivery) {
        out.insert("path", path.display().to_string());
    }
    if ctx.check_mode {
        return Ok(out.msg(format!(
            "the API key was refused; would make {what} with PocketID's CLI over SSH and deliver it by {}",
            p.delivery
        )));
    }
    let made = login_code_ssh::make_code(&p.ssh, &p.username)
        .map_err(|e| Failure::new(format!("{refused}; the SSH fallback failed: {e}")))?;
    let msg = hand_over(&p, tty, &made.url, &what)?;
    let user = if made.detected {
        format!("as {}, the owner of /app/data", made.user)
    } else {
        format!("as {}", made.user)
    };
    Ok(out.set("container_user", made.user.clone()).msg(format!(
        "{msg} (PocketID's CLI over SSH {user}: the API key was refused)"
    )))
}

/// The e-mail endpoint's refusals, told apart: the app setting, or the user's address.
fn email_error(e: ApiError, username: &str) -> Failure {
    match e.code() {
        Some("one_time_access_disabled") => LoginCodeError::EmailSettingOff.into(),
        Some("user_email_not_set") => LoginCodeError::NoEmail(username.to_string()).into(),
        _ => e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_forms_and_bounds() {
        assert_eq!(parse_ttl("15m").unwrap(), 900);
        assert_eq!(parse_ttl("1h").unwrap(), 3600);
        assert_eq!(parse_ttl("1h30m").unwrap(), 5400);
        assert_eq!(parse_ttl("900").unwrap(), 900);
        assert_eq!(parse_ttl("31d").unwrap(), MAX_TTL_SECS);
        assert_eq!(parse_ttl("744h").unwrap(), MAX_TTL_SECS);
        for bad in ["", "abc", "15", "1x", "m", "1.5h", "-5m"] {
            let r = parse_ttl(bad);
            if bad == "15" {
                assert_eq!(r.unwrap(), 15);
                continue;
            }
            assert!(matches!(r, Err(LoginCodeError::BadTtl(_))), "{bad}");
        }
        for out in ["1", "1s", "0", "32d", "745h"] {
            assert!(
                matches!(parse_ttl(out), Err(LoginCodeError::TtlRange(..))),
                "{out}"
            );
        }
        assert_eq!(human_ttl(5400), "1h30m");
        assert_eq!(human_ttl(900), "15m");
    }

    #[test]
    fn new_file_is_exclusive_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("code.txt");
        write_new_file(&p, "x\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(matches!(
            write_new_file(&p, "y\n"),
            Err(LoginCodeError::FileExists(_))
        ));
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "x\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
