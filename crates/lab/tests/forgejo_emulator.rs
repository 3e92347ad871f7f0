//! The Forgejo emulator against `contracts/forgejo-api.md`, its answers checked against the stored
//! v15.0.3 swagger spec.

use httpx::{Body, Client, HttpConfig, Response, Retry};
use lab::forgejo::{Behaviour, Forgejo, ForgejoOpts, RunOutcome, Token, DEFAULT_TOKEN};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        // Forgejo v15.0.3's own API spec, kept in the repository (tests/data/).
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/forgejo-v15.0.3.swagger.v1.json");
        serde_json::from_slice(
            &std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
        )
        .unwrap()
    })
}

/// Checks `v` against definition `def`: every property present has the schema's type (recursing
/// into `$ref`s and arrays), and no property is unknown to the schema.
fn check(v: &Value, schema: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/definitions/");
        return check(v, &spec()["definitions"][name], at, errors);
    }
    let ty = schema
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("object");
    let ok = match (ty, v) {
        (_, Value::Null) => true, // Go pointers and omitted content
        ("integer", Value::Number(n)) => n.is_i64() || n.is_u64(),
        ("number", Value::Number(_)) => true,
        ("string", Value::String(_)) => true,
        ("boolean", Value::Bool(_)) => true,
        ("array", Value::Array(items)) => {
            for (i, it) in items.iter().enumerate() {
                check(it, &schema["items"], &format!("{at}[{i}]"), errors);
            }
            true
        }
        ("object", Value::Object(m)) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, x) in m {
                    match props.get(k) {
                        Some(ps) => check(x, ps, &format!("{at}.{k}"), errors),
                        None => errors.push(format!("{at}.{k}: not in the schema")),
                    }
                }
            }
            true
        }
        _ => false,
    };
    if !ok {
        errors.push(format!("{at}: expected {ty}, got {v}"));
    }
    if ty == "string" && schema.get("format").and_then(Value::as_str) == Some("date-time") {
        if let Some(s) = v.as_str() {
            if s.len() < 20 || !s.contains('T') {
                errors.push(format!("{at}: {s:?} is not RFC 3339"));
            }
        }
    }
}

fn assert_schema(v: &Value, def: &str, required: &[&str]) {
    let mut errors = Vec::new();
    check(
        v,
        &json!({"$ref": format!("#/definitions/{def}")}),
        def,
        &mut errors,
    );
    for r in required {
        if v.get(r).is_none() {
            errors.push(format!("{def}.{r} missing"));
        }
    }
    assert!(errors.is_empty(), "{def}: {errors:?}\n{v}");
}

struct Api {
    http: Client,
    repo: String,
}

impl Api {
    fn new(fj: &Forgejo) -> Self {
        let mut cfg = HttpConfig::new("Forgejo", fj.url());
        cfg.timeout = Duration::from_secs(20);
        Api {
            http: Client::new(cfg).unwrap(),
            repo: fj.repo(),
        }
    }
    fn call(&self, method: &str, path: &str, auth: Option<&str>, body: Option<Value>) -> Response {
        let path = path.replace("{repo}", &format!("/api/v1/repos/{}", self.repo));
        let mut headers = vec![];
        if let Some(a) = auth {
            headers.push(("Authorization", a));
        }
        let body = match body {
            Some(v) => Body::Json(v),
            None => Body::None,
        };
        self.http
            .send(method, &path, &headers, body, Retry::Never)
            .unwrap()
    }
    fn get(&self, path: &str) -> (u16, Value) {
        let r = self.call("GET", path, Some(&format!("token {DEFAULT_TOKEN}")), None);
        (r.status, r.json().unwrap_or(Value::Null))
    }
    fn dispatch(&self, file: &str, body: Value) -> (u16, Value) {
        let r = self.call(
            "POST",
            &format!("{{repo}}/actions/workflows/{file}/dispatches"),
            Some(&format!("Bearer {DEFAULT_TOKEN}")),
            Some(body),
        );
        (r.status, r.json().unwrap_or(Value::Null))
    }
}

fn wait_status(api: &Api, id: i64, want: &str) -> Value {
    lab::proc::wait_for(Duration::from_secs(30), || {
        let (_, run) = api.get(&format!("{{repo}}/actions/runs/{id}"));
        (run["status"] == want).then_some(run)
    })
    .unwrap_or_else(|| panic!("run {id} never became {want}"))
}

#[test]
fn version_and_auth() {
    let fj = Forgejo::start(ForgejoOpts::default().token(Token::new(
        "ro-token-55aa",
        &["read:repository"],
        true,
    )))
    .unwrap();
    let api = Api::new(&fj);
    let (s, v) = api.get("/api/v1/version");
    assert_eq!(s, 200);
    assert_eq!(v, json!({"version": "15.0.3+gitea-1.22.0"}));
    assert_schema(&v, "ServerVersion", &["version"]);
    let path = "{repo}/actions/workflows/deploy-n8n.yml/dispatches";
    let r = api.call("POST", path, None, Some(json!({"ref": "main"})));
    assert_eq!(
        (r.status, r.json::<Value>().unwrap()["message"].clone()),
        (401, json!("token is required"))
    );
    let r = api.call(
        "POST",
        path,
        Some("token wrong"),
        Some(json!({"ref": "main"})),
    );
    assert_eq!(r.status, 401);
    assert_schema(&r.json::<Value>().unwrap(), "APIError", &["message", "url"]);
    let r = api.call(
        "POST",
        path,
        Some("TOKEN ro-token-55aa"),
        Some(json!({"ref": "main"})),
    );
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json::<Value>().unwrap()["message"],
        "token does not have at least one of required scope(s): [write:repository]"
    );
    let r = api.call(
        "GET",
        "{repo}/actions/runs",
        Some("bearer ro-token-55aa"),
        None,
    );
    assert_eq!(r.status, 200);
    // The log never holds a header value.
    let log = format!("{:?}", fj.request_log());
    assert!(
        !log.contains(DEFAULT_TOKEN) && !log.contains("ro-token-55aa") && !log.contains("wrong")
    );
    assert_eq!(fj.requests(), fj.request_log().len() as u64);
}

#[test]
fn dispatch_answers_and_traps() {
    let fj = Forgejo::start(ForgejoOpts::default()).unwrap();
    let api = Api::new(&fj);
    let (s, v) = api.dispatch(
        "deploy-n8n.yml",
        json!({"ref": "main", "inputs": {"reason": "x"}, "return_run_info": true}),
    );
    assert_eq!(s, 201, "{v}");
    assert_schema(&v, "DispatchWorkflowRun", &["id", "run_number", "jobs"]);
    assert_eq!(v["jobs"], json!(["deploy"]));
    let (s, v) = api.dispatch("deploy-n8n.yml", json!({"ref": "refs/heads/main"}));
    assert_eq!((s, v), (204, Value::Null));
    let cases = [
        ("deploy-n8n.yml", json!({"ref": ""}), 400, "ref is empty"),
        ("deploy-nope.yml", json!({"ref": "main"}), 500, ""),
        ("deploy-n8n.yml", json!({"ref": "nope"}), 500, ""),
        (
            "deploy-n8n.yml",
            json!({"ref": "main", "inputs": {"dry_run": true}}),
            422,
            "[]: json: cannot unmarshal bool",
        ),
    ];
    for (file, body, status, msg) in cases {
        let (s, v) = api.dispatch(file, body.clone());
        assert_eq!(s, status, "{body}: {v}");
        assert!(
            v["message"].as_str().unwrap().starts_with(msg),
            "{body}: {v}"
        );
        assert_schema(&v, "APIError", &["message", "url"]);
    }
    let (s, v) = api.dispatch("deploy-n8n.yml", json!({"ref": "refs/heads/nope"}));
    assert_eq!(s, 404, "{v}");
    // Unknown inputs are dropped; a required input names its description.
    let strict = "on:\n  workflow_dispatch:\n    inputs:\n      t:\n        description: Ticket\n        required: true\njobs:\n  a:\n    runs-on: self-hosted\n    steps:\n      - run: 'true'\n";
    fj.set_file("main", ".forgejo/workflows/strict.yml", strict);
    let (s, v) = api.dispatch("strict.yml", json!({"ref": "main", "inputs": {"zzz": "1"}}));
    assert_eq!(
        (s, v["message"].clone()),
        (400, json!("input required for 'Ticket'"))
    );
    let (s, _) = api.dispatch(
        "strict.yml",
        json!({"ref": "main", "inputs": {"t": "1", "zzz": "1"}}),
    );
    assert_eq!(s, 204);
    let last = fj.runs().pop().unwrap();
    assert_eq!(last.info.inputs.keys().collect::<Vec<_>>(), vec!["t"]);
    assert_eq!(last.info.git_ref, "refs/heads/main");
}

#[test]
fn booleans_by_version() {
    for (version, sent, got) in [
        ("13.0.0", "true", "false"),
        ("13.0.0", "on", "true"),
        ("14.0.0", "true", "true"),
        ("15.0.3", "on", "true"),
        ("15.0.3", "false", "false"),
    ] {
        let fj = Forgejo::start(ForgejoOpts::version(version)).unwrap();
        let api = Api::new(&fj);
        let (s, _) = api.dispatch(
            "deploy-glance.yml",
            json!({"ref": "main", "inputs": {"dry_run": sent}}),
        );
        assert_eq!(s, 204);
        assert_eq!(fj.runs()[0].info.inputs["dry_run"], got, "{version} {sent}");
    }
}

#[test]
fn runs_progress_filter_and_validate_against_the_spec() {
    let fj = Forgejo::start(ForgejoOpts::default()).unwrap();
    fj.set_behaviour(
        "deploy-n8n.yml",
        Behaviour::lasting(Duration::from_millis(300)),
    );
    fj.set_behaviour(
        "deploy-gatus.yml",
        Behaviour::lasting(Duration::from_millis(300)).outcome(RunOutcome::Failure),
    );
    fj.set_behaviour("deploy-glance.yml", Behaviour::no_runner());
    let hook_seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = hook_seen.clone();
    fj.set_hook(
        "deploy-n8n.yml",
        Box::new(move |run| {
            seen.lock().unwrap().push(run.inputs.clone());
            Ok(())
        }),
    );
    fj.set_hook(
        "deploy-seedbox.yml",
        Box::new(|_| Err("vault sealed".into())),
    );
    let api = Api::new(&fj);
    let mut ids = Vec::new();
    for f in [
        "deploy-n8n.yml",
        "deploy-gatus.yml",
        "deploy-glance.yml",
        "deploy-seedbox.yml",
    ] {
        let (s, v) = api.dispatch(f, json!({"ref": "main", "return_run_info": true}));
        assert_eq!(s, 201);
        ids.push(v["id"].as_i64().unwrap());
    }
    let (_, first) = api.get(&format!("{{repo}}/actions/runs/{}", ids[2]));
    assert_eq!(first["status"], "waiting");
    assert_eq!(first["started"], "1970-01-01T00:00:00Z");
    assert!(first.get("duration").is_none());
    let done = wait_status(&api, ids[0], "success");
    assert_schema(
        &done,
        "ActionRun",
        &[
            "id",
            "status",
            "html_url",
            "index_in_repo",
            "workflow_id",
            "duration",
            "prettyref",
        ],
    );
    assert_eq!(done["prettyref"], "main");
    assert!(done["duration"].as_i64().unwrap() >= 300_000_000);
    assert!(done["html_url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/actions/runs/{}", done["index_in_repo"])));
    assert_eq!(hook_seen.lock().unwrap().len(), 1);
    wait_status(&api, ids[1], "failure");
    wait_status(&api, ids[3], "failure");
    assert_eq!(fj.runs()[3].hook_error.as_deref(), Some("vault sealed"));
    let (_, still) = api.get(&format!("{{repo}}/actions/runs/{}", ids[2]));
    assert_eq!(still["status"], "waiting");

    let (s, list) = api.get("{repo}/actions/runs?status=failure");
    assert_eq!(s, 200);
    assert_schema(
        &list,
        "ListActionRunResponse",
        &["workflow_runs", "total_count"],
    );
    assert_eq!(list["total_count"], 2);
    let (_, list) = api.get("{repo}/actions/runs?workflow_id=deploy-n8n.yml&ref=refs/heads/main");
    assert_eq!(list["total_count"], 1);
    let (_, page) = api.get("{repo}/actions/runs?limit=3&page=2");
    assert_eq!(
        (
            page["total_count"].clone(),
            page["workflow_runs"].as_array().unwrap().len()
        ),
        (json!(4), 1)
    );
    assert_eq!(page["workflow_runs"][0]["id"], json!(ids[0]), "id DESC");
    let (s, v) = api.get("{repo}/actions/runs?status=bogus");
    assert_eq!(
        (s, v["message"].clone()),
        (400, json!("unknown status: bogus"))
    );
    let (s, v) = api.get("{repo}/actions/runs/999999");
    assert_eq!(s, 404);
    assert_schema(&v, "APINotFound", &["message", "errors"]);
    let (_, tasks) = api.get("{repo}/actions/tasks");
    assert_schema(
        &tasks,
        "ActionTaskResponse",
        &["workflow_runs", "total_count"],
    );
    assert_eq!(
        tasks["total_count"], 3,
        "the run nobody picked up has no task"
    );
}

#[test]
fn contents_serve_workflow_files_base64() {
    let fj = Forgejo::start(ForgejoOpts::default()).unwrap();
    let api = Api::new(&fj);
    let (s, v) = api.get("{repo}/contents/.forgejo/workflows/deploy-n8n.yml?ref=main");
    assert_eq!(s, 200);
    assert_schema(
        &v,
        "ContentsResponse",
        &["content", "encoding", "sha", "type"],
    );
    assert_eq!(v["encoding"], "base64");
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD
        .decode(v["content"].as_str().unwrap())
        .unwrap();
    let on_disk =
        std::fs::read(lab::tools::repo_root().join(".forgejo/workflows/deploy-n8n.yml")).unwrap();
    assert_eq!(text, on_disk);
    let (s, dir) = api.get("{repo}/contents/.forgejo/workflows");
    assert_eq!(s, 200);
    assert!(dir.as_array().unwrap().len() >= 9);
    assert_eq!(api.get("{repo}/contents/.forgejo/workflows/x.yml").0, 404);
    assert_eq!(api.get("{repo}/contents?ref=nope").0, 404);
}

/// Answers leave in one write on a TCP_NODELAY connection (lab::http), so an answer of several
/// KiB is whole in the client's first read; a head and body sent apart would make the body wait
/// for the client's delayed ACK. Checked on a keep-alive connection, without timing anything.
#[test]
fn answers_arrive_whole_in_one_read() {
    use std::io::{Read, Write};
    let fj = Forgejo::start(ForgejoOpts::default()).unwrap();
    let addr = fj.url().trim_start_matches("http://").to_string();
    let mut c = std::net::TcpStream::connect(&addr).unwrap();
    let request = format!(
        "GET /api/v1/repos/{}/contents/.forgejo/workflows/deploy-n8n.yml?ref=main HTTP/1.1\r\nHost: {addr}\r\nAuthorization: token {}\r\n\r\n",
        fj.repo(),
        fj.token()
    );
    for _ in 0..3 {
        c.write_all(request.as_bytes()).unwrap();
        let mut buf = vec![0u8; 256 * 1024];
        let n = c.read(&mut buf).unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        let (head, body) = text.split_once("\r\n\r\n").expect("a whole head");
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|v| v.trim().parse().ok())
            .expect("Content-Length");
        assert!(
            length > 1024,
            "a body past tiny_http's 1 KiB buffer: {length}"
        );
        assert_eq!(body.len(), length, "the first read holds the whole answer");
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["encoding"], "base64");
    }
}

#[test]
fn old_versions_lack_newer_endpoints() {
    let fj = Forgejo::start(ForgejoOpts::version("11.0.0")).unwrap();
    let api = Api::new(&fj);
    let (s, v) = api.dispatch(
        "deploy-n8n.yml",
        json!({"ref": "main", "return_run_info": true}),
    );
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        api.get(&format!("{{repo}}/actions/runs/{}", v["id"])).0,
        404
    );
    assert_eq!(api.get("{repo}/actions/tasks").0, 200);
    let fj = Forgejo::start(ForgejoOpts::version("8.0.0")).unwrap();
    let api = Api::new(&fj);
    let (s, _) = api.dispatch(
        "deploy-n8n.yml",
        json!({"ref": "main", "return_run_info": true}),
    );
    assert_eq!(s, 204);
}

#[test]
fn every_redeploy_target_has_a_dispatchable_workflow() {
    let files = lab::forgejo::repo_workflow_files();
    for (svc, wf) in lab::forgejo::deploy_workflows() {
        let text = files
            .get(&format!(".forgejo/workflows/{wf}"))
            .unwrap_or_else(|| panic!("{wf} missing"));
        assert!(text.contains("workflow_dispatch:"), "{wf}");
        assert!(text.contains(&format!("vmid: \"{}\"", svc.vmid)), "{wf}");
        for (key, env) in &svc.keys {
            assert!(
                text.contains(&format!("{key}={env}")),
                "{wf} lacks {key}={env}"
            );
        }
    }
    assert_eq!(
        lab::forgejo::deploy_workflows().len(),
        lab::catalog::REDEPLOY_TARGETS.len()
    );
}

fn multipart(file: &str, data: &[u8]) -> Vec<u8> {
    let mut b = format!(
        "--b0undary\r\nContent-Disposition: form-data; name=\"attachment\"; filename=\"{file}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    b.extend_from_slice(data);
    b.extend_from_slice(b"\r\n--b0undary--\r\n");
    b
}

#[test]
fn releases_and_assets_validate_against_the_spec() {
    let fj = Forgejo::start(ForgejoOpts::default()).unwrap();
    let api = Api::new(&fj);
    let auth = format!("token {DEFAULT_TOKEN}");
    let (status, body) = api.get("{repo}/releases/latest");
    assert_eq!(status, 404, "no release yet: {body}");
    assert_eq!(body["message"], "The target couldn't be found.");

    let r = api.call(
        "POST",
        "{repo}/releases",
        Some(&auth),
        Some(json!({"tag_name": "v1.0.0", "name": "v1.0.0"})),
    );
    assert_eq!(r.status, 201);
    let rel: Value = r.json().unwrap();
    assert_schema(&rel, "Release", &["id", "tag_name", "assets", "upload_url"]);
    let id = rel["id"].as_i64().unwrap();
    let r = api.call(
        "POST",
        "{repo}/releases",
        Some(&auth),
        Some(json!({"tag_name": "v1.0.0"})),
    );
    assert_eq!(r.status, 409, "a second release of a tag is a conflict");
    assert_schema(&r.json::<Value>().unwrap(), "APIError", &["message"]);
    let r = api.call("POST", "{repo}/releases", Some(&auth), Some(json!({})));
    assert_eq!(r.status, 422, "tag_name is required");

    // Upload: multipart (name from the query, else the file name) and a raw body.
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let up = |query: &str, ct: &str, bytes: Vec<u8>| {
        api.http
            .send(
                "POST",
                &format!("/api/v1/repos/{}/releases/{id}/assets{query}", api.repo),
                &[("Authorization", auth.as_str())],
                Body::Raw {
                    content_type: ct,
                    bytes,
                },
                Retry::Never,
            )
            .unwrap()
    };
    let mp = "multipart/form-data; boundary=b0undary";
    let r = up(
        "?name=homelab-sso-1.0.0.tar.gz",
        mp,
        multipart("x.bin", &data),
    );
    assert_eq!(r.status, 201);
    let asset: Value = r.json().unwrap();
    assert_schema(
        &asset,
        "Attachment",
        &["id", "name", "size", "uuid", "browser_download_url"],
    );
    assert_eq!(asset["name"], "homelab-sso-1.0.0.tar.gz");
    assert_eq!(asset["size"], data.len());
    let r = up("", mp, multipart("SHA256SUMS", b"abc  x\n"));
    assert_eq!(r.json::<Value>().unwrap()["name"], "SHA256SUMS");
    let r = up("?name=raw.txt", "application/octet-stream", b"raw".to_vec());
    assert_eq!(r.status, 201);
    assert_eq!(r.json::<Value>().unwrap()["size"], 3);

    // Latest and by tag carry the assets; drafts and prereleases are never "latest".
    api.call(
        "POST",
        "{repo}/releases",
        Some(&auth),
        Some(json!({"tag_name": "v2.0.0-rc1", "prerelease": true})),
    );
    for path in ["{repo}/releases/latest", "{repo}/releases/tags/v1.0.0"] {
        let (status, rel) = api.get(path);
        assert_eq!(status, 200, "{path}");
        assert_schema(&rel, "Release", &["id", "assets"]);
        assert_eq!(rel["tag_name"], "v1.0.0");
        assert_eq!(rel["assets"].as_array().unwrap().len(), 3);
    }
    assert_eq!(api.get("{repo}/releases/tags/v9.9.9").0, 404);
    let (status, list) = api.get(&format!("{{repo}}/releases/{id}/assets"));
    assert_eq!(status, 200);
    for a in list.as_array().unwrap() {
        assert_schema(a, "Attachment", &["id"]);
    }
    let (_, list) = api.get("{repo}/releases");
    assert_eq!(list.as_array().unwrap().len(), 2);

    // Download at browser_download_url: with the token the bytes, anonymously a 404 (private).
    // A release's answer gives Forgejo 15's form (its tag and the asset's name); the upload's
    // answer, about the attachment alone, gives /attachments/<uuid>: both serve the bytes.
    let (_, tagged) = api.get("{repo}/releases/tags/v1.0.0");
    let listed = &tagged["assets"][0];
    let url = listed["browser_download_url"].as_str().unwrap();
    let path = url
        .strip_prefix(fj.url())
        .expect("download URL on the server");
    assert_eq!(
        path,
        format!(
            "/{}/releases/download/v1.0.0/homelab-sso-1.0.0.tar.gz",
            fj.repo()
        ),
        "{listed}"
    );
    let by_uuid = asset["browser_download_url"].as_str().unwrap();
    let by_uuid = by_uuid.strip_prefix(fj.url()).unwrap();
    assert!(by_uuid.starts_with("/attachments/"), "{asset}");
    let r = api.call("GET", by_uuid, Some(&auth), None);
    assert_eq!((r.status, &r.body), (200, &data));
    let latest = format!("/{}/releases/download/latest/SHA256SUMS", fj.repo());
    assert_eq!(
        api.call("GET", &latest, Some(&auth), None).status,
        200,
        "the latest alias"
    );
    let r = api.call("GET", path, Some(&auth), None);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, data);
    assert_eq!(api.call("GET", path, None, None).status, 404);
    assert_eq!(api.call("GET", path, Some("token wrong"), None).status, 404);

    // Delete an asset, then the release; anonymous writes are refused.
    let aid = asset["id"].as_i64().unwrap();
    let r = api.call(
        "DELETE",
        &format!("{{repo}}/releases/{id}/assets/{aid}"),
        Some(&auth),
        None,
    );
    assert_eq!(r.status, 204);
    assert_eq!(api.call("GET", path, Some(&auth), None).status, 404);
    assert_eq!(
        api.call(
            "POST",
            "{repo}/releases",
            None,
            Some(json!({"tag_name": "v3"}))
        )
        .status,
        401
    );
    let r = api.call(
        "DELETE",
        &format!("{{repo}}/releases/{id}"),
        Some(&auth),
        None,
    );
    assert_eq!(r.status, 204);
    assert_eq!(api.get(&format!("{{repo}}/releases/{id}")).0, 404);
}

#[test]
fn actions_secrets_and_variables_validate_against_the_spec() {
    let fj = Forgejo::start(ForgejoOpts::default()).unwrap();
    let api = Api::new(&fj);
    let auth = format!("token {DEFAULT_TOKEN}");
    let put = |path: &str, body: Value| api.call("PUT", path, Some(&auth), Some(body)).status;
    assert_eq!(
        put(
            "{repo}/actions/secrets/vault_role_id",
            json!({"data": "r1\r\n"})
        ),
        201
    );
    assert_eq!(
        put(
            "{repo}/actions/secrets/VAULT_ROLE_ID",
            json!({"data": "r2"})
        ),
        204
    );
    assert_eq!(
        put("{repo}/actions/secrets/GITHUB_TOKEN", json!({"data": "x"})),
        400
    );
    assert_eq!(
        put("{repo}/actions/secrets/1BAD", json!({"data": "x"})),
        400
    );
    assert_eq!(put("{repo}/actions/secrets/NO_DATA", json!({})), 422);
    let (status, list) = api.get("{repo}/actions/secrets");
    assert_eq!(status, 200);
    let list = list.as_array().unwrap().clone();
    assert_eq!(list.len(), 1);
    assert_schema(&list[0], "Secret", &["name", "created_at"]);
    assert_eq!(list[0]["name"], "VAULT_ROLE_ID");
    assert!(
        !list[0].to_string().contains("r2"),
        "a secret is never read back"
    );
    fj.with_extras(|ex| assert_eq!(ex.1.secrets["VAULT_ROLE_ID"].0, "r2"));

    let var = |method: &str, name: &str, body: Option<Value>| {
        let r = api.call(
            method,
            &format!("{{repo}}/actions/variables/{name}"),
            Some(&auth),
            body,
        );
        (r.status, r.json().unwrap_or(Value::Null))
    };
    assert_eq!(var("GET", "VAULT_ADDR", None).0, 404);
    // Forgejo checks variable names as secret names: FORGEJO_URL cannot exist.
    assert_eq!(
        var("POST", "FORGEJO_URL", Some(json!({"value": "x"}))).0,
        400
    );
    assert_eq!(var("POST", "CI", Some(json!({"value": "x"}))).0, 400);
    assert_eq!(var("PUT", "VAULT_ADDR", Some(json!({"value": "x"}))).0, 404);
    assert_eq!(
        var(
            "POST",
            "vault_addr",
            Some(json!({"value": "https://vault.example.org:8200"}))
        )
        .0,
        204
    );
    let (status, err) = var("POST", "VAULT_ADDR", Some(json!({"value": "y"})));
    assert_eq!(status, 409);
    assert_schema(&err, "APIError", &["message"]);
    let (status, v) = var("GET", "vault_addr", None);
    assert_eq!(status, 200);
    assert_schema(&v, "ActionVariable", &["name", "data", "repo_id"]);
    assert_eq!(v["name"], "VAULT_ADDR");
    assert_eq!(v["data"], "https://vault.example.org:8200");
    assert_eq!(
        var(
            "PUT",
            "VAULT_ADDR",
            Some(json!({"value": "https://b.example.org"}))
        )
        .0,
        204
    );
    assert_eq!(
        var("GET", "VAULT_ADDR", None).1["data"],
        "https://b.example.org"
    );
    let (status, list) = api.get("{repo}/actions/variables");
    assert_eq!(status, 200);
    for v in list.as_array().unwrap() {
        assert_schema(v, "ActionVariable", &["name"]);
    }
    assert_eq!(var("DELETE", "VAULT_ADDR", None).0, 204);
    assert_eq!(var("DELETE", "VAULT_ADDR", None).0, 404);
    let r = api.call(
        "DELETE",
        "{repo}/actions/secrets/VAULT_ROLE_ID",
        Some(&auth),
        None,
    );
    assert_eq!(r.status, 204);
    // A read-only token cannot see or change Actions settings.
    let ro = Forgejo::start(ForgejoOpts::default().token(Token::new(
        "ro-token",
        &["read:repository"],
        false,
    )))
    .unwrap();
    let api = Api::new(&ro);
    let r = api.call(
        "GET",
        "{repo}/actions/secrets",
        Some("token ro-token"),
        None,
    );
    assert_eq!(r.status, 403);
}

/// A workflow with the given `concurrency` block (YAML text after `concurrency:`, or none).
fn with_concurrency(block: Option<&str>) -> String {
    let c = block
        .map(|b| format!("concurrency:{b}\n"))
        .unwrap_or_default();
    format!("name: c\non:\n  workflow_dispatch:\n{c}jobs:\n  a:\n    runs-on: homelab-sso\n    steps:\n      - run: 'true'\n")
}

/// Dispatches `n` runs of `file` and records, until all have ended, the largest number running
/// at once and the order in which they started.
fn run_group(fj: &Forgejo, api: &Api, file: &str, n: usize) -> (usize, Vec<i64>, Vec<String>) {
    let before = fj.runs().len();
    for _ in 0..n {
        let (s, v) = api.dispatch(file, json!({"ref": "main"}));
        assert_eq!(s, 204, "{v}");
    }
    let (mut most, mut started) = (0, Vec::new());
    lab::proc::wait_for(Duration::from_secs(30), || {
        let runs: Vec<_> = fj.runs().into_iter().skip(before).collect();
        let running: Vec<_> = runs.iter().filter(|r| r.status == "running").collect();
        most = most.max(running.len());
        for r in &running {
            if !started.contains(&r.info.run_number) {
                started.push(r.info.run_number);
            }
        }
        runs.iter()
            .all(|r| ["success", "cancelled"].contains(&r.status.as_str()))
            .then_some(())
    })
    .expect("the runs end");
    let statuses = fj
        .runs()
        .into_iter()
        .skip(before)
        .map(|r| r.status)
        .collect();
    (most, started, statuses)
}

#[test]
fn concurrency_groups_queue_or_cancel_as_forgejo_does() {
    let fj = Forgejo::start(ForgejoOpts::default()).unwrap();
    let api = Api::new(&fj);
    let cases = [
        // `cancel-in-progress: false` with a group: one at a time, oldest first, none cancelled
        // (Forgejo keeps every pending run, where GitHub keeps only the newest).
        (
            "queue.yml",
            Some("\n  group: Deploy-X\n  cancel-in-progress: false"),
        ),
        // `true`: a dispatch cancels the group's waiting and running runs.
        (
            "cancel.yml",
            Some("\n  group: deploy-y\n  cancel-in-progress: true"),
        ),
        // A group without `cancel-in-progress`, and no block at all: a dispatch is not limited.
        ("group-only.yml", Some(" deploy-z")),
        ("none.yml", None),
    ];
    for (file, block) in cases {
        fj.set_file(
            "main",
            &format!(".forgejo/workflows/{file}"),
            &with_concurrency(block),
        );
        fj.set_behaviour(file, Behaviour::lasting(Duration::from_millis(600)));
    }
    let (most, started, statuses) = run_group(&fj, &api, "queue.yml", 3);
    assert_eq!(most, 1, "queued runs never run together");
    assert!(
        started.windows(2).all(|w| w[0] < w[1]),
        "oldest first: {started:?}"
    );
    assert_eq!(statuses, ["success"; 3]);
    let (_, _, statuses) = run_group(&fj, &api, "cancel.yml", 3);
    assert_eq!(statuses, ["cancelled", "cancelled", "success"]);
    for file in ["group-only.yml", "none.yml"] {
        let (most, _, statuses) = run_group(&fj, &api, file, 3);
        assert_eq!(
            (most, statuses),
            (3, vec!["success".to_string(); 3]),
            "{file}"
        );
    }
    // The deploy workflows queue: two dispatches of one service never run together.
    fj.set_behaviour(
        "deploy-n8n.yml",
        Behaviour::lasting(Duration::from_millis(600)),
    );
    let (most, _, statuses) = run_group(&fj, &api, "deploy-n8n.yml", 2);
    assert_eq!((most, statuses), (1, vec!["success".to_string(); 2]));
    // Before v14 there is no concurrency: queued runs of v13 run together.
    let old = Forgejo::start(ForgejoOpts::version("13.0.0")).unwrap();
    old.set_file(
        "main",
        ".forgejo/workflows/queue.yml",
        &with_concurrency(cases[0].1),
    );
    old.set_behaviour("queue.yml", Behaviour::lasting(Duration::from_millis(600)));
    let (most, _, _) = run_group(&old, &Api::new(&old), "queue.yml", 2);
    assert_eq!(most, 2);
}

#[test]
fn boolean_defaults_are_used_as_written() {
    // Forgejo maps "on" only in a value the dispatch sent (resolveDispatchInput); a default is
    // used as written, also "on".
    let wf = "on:\n  workflow_dispatch:\n    inputs:\n      flag:\n        type: boolean\n        default: 'on'\n      other:\n        type: boolean\n        default: true\njobs:\n  a:\n    runs-on: homelab-sso\n    steps:\n      - run: 'true'\n";
    for version in ["13.0.0", "15.0.3"] {
        let fj = Forgejo::start(ForgejoOpts::version(version)).unwrap();
        fj.set_file("main", ".forgejo/workflows/b.yml", wf);
        let api = Api::new(&fj);
        let (s, _) = api.dispatch("b.yml", json!({"ref": "main"}));
        assert_eq!(s, 204);
        let inputs = &fj.runs()[0].info.inputs;
        assert_eq!(
            (inputs["flag"].as_str(), inputs["other"].as_str()),
            ("on", "true"),
            "{version}"
        );
        let (s, _) = api.dispatch("b.yml", json!({"ref": "main", "inputs": {"flag": "on"}}));
        assert_eq!(s, 204);
        assert_eq!(
            fj.runs()[1].info.inputs["flag"],
            "true",
            "{version}: a sent \"on\" is mapped"
        );
    }
}
