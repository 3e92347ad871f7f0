//! Refs and files: resolving a ref as Forgejo expands it, and `GET …/contents/{path}` for a file
//! (base64) or a directory listing.

use super::{not_found, State};
use crate::emulator::{Request, Response};
use base64::Engine;
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub(super) struct Resolved {
    pub(super) branch: String,
    pub(super) full_ref: String,
    pub(super) prettyref: String,
}

pub(super) fn commit_sha(branch: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(format!("commit:{branch}").as_bytes());
    d.iter().take(20).map(|b| format!("{b:02x}")).collect()
}

fn branch_of_sha<'a>(s: &'a State, sha: &str) -> Option<&'a String> {
    s.opts
        .branches
        .keys()
        .find(|b| commit_sha(b) == sha.to_ascii_lowercase())
}

/// `modules/git/repo_ref.go: ExpandRef` then the lookup. `Err(true)`: a full ref that does not
/// exist (404); `Err(false)`: a short ref that cannot be expanded (500).
pub(super) fn resolve_ref(s: &State, r: &str) -> std::result::Result<Resolved, bool> {
    let r = if r.starts_with("heads/") || r.starts_with("tags/") {
        format!("refs/{r}")
    } else {
        r.to_string()
    };
    let branch = |b: &str| Resolved {
        branch: b.to_string(),
        full_ref: format!("refs/heads/{b}"),
        prettyref: b.to_string(),
    };
    let tag = |t: &str, b: &str| Resolved {
        branch: b.to_string(),
        full_ref: format!("refs/tags/{t}"),
        prettyref: t.to_string(),
    };
    if let Some(b) = r.strip_prefix("refs/heads/") {
        return if s.opts.branches.contains_key(b) {
            Ok(branch(b))
        } else {
            Err(true)
        };
    }
    if let Some(t) = r.strip_prefix("refs/tags/") {
        return s.opts.tags.get(t).map(|b| tag(t, b)).ok_or(true);
    }
    if r.starts_with("refs/") {
        return Err(true);
    }
    if let Some(b) = s.opts.tags.get(&r) {
        return Ok(tag(&r, b));
    }
    if s.opts.branches.contains_key(&r) {
        return Ok(branch(&r));
    }
    if r.len() == 40 && r.chars().all(|c| c.is_ascii_hexdigit()) {
        if let Some(b) = branch_of_sha(s, &r) {
            return Ok(Resolved {
                branch: b.clone(),
                full_ref: r.clone(),
                prettyref: r.clone(),
            });
        }
    }
    Err(false)
}

pub(super) fn contents(s: &State, path: &str, req: &Request) -> Response {
    let r = req
        .q("ref")
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| s.opts.default_branch.clone());
    let resolved = match resolve_ref(s, &r) {
        Ok(x) => x,
        Err(_) => return not_found(s, &[format!("object does not exist [id: {r}, rel_path: ]")]),
    };
    let files = &s.opts.branches[&resolved.branch];
    let sha = commit_sha(&resolved.branch);
    let path = path.trim_matches('/');
    let entry = |p: &str, dir: bool| -> Value {
        let name = p.rsplit('/').next().unwrap_or(p);
        let self_url = format!(
            "{}/api/v1/repos/{}/{}/contents/{p}?ref={}",
            s.base_url, s.opts.owner, s.opts.repo, resolved.prettyref
        );
        let html = format!(
            "{}/{}/{}/src/branch/{}/{p}",
            s.base_url, s.opts.owner, s.opts.repo, resolved.branch
        );
        let blob_sha = {
            use sha2::Digest;
            let d =
                sha2::Sha256::digest(files.get(p).map(|c| c.as_bytes()).unwrap_or(p.as_bytes()));
            d.iter()
                .take(20)
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        let git_url = format!(
            "{}/api/v1/repos/{}/{}/git/{}/{blob_sha}",
            s.base_url,
            s.opts.owner,
            s.opts.repo,
            if dir { "trees" } else { "blobs" }
        );
        let mut m = json!({
            "name": name,
            "path": p,
            "sha": blob_sha,
            "last_commit_sha": sha,
            "last_commit_when": "2026-01-01T00:00:00Z",
            "type": if dir { "dir" } else { "file" },
            "size": files.get(p).map(|c| c.len()).unwrap_or(0),
            "encoding": null,
            "content": null,
            "target": null,
            "url": self_url,
            "html_url": html,
            "git_url": git_url,
            "download_url": null,
            "submodule_git_url": null,
            "_links": {"self": self_url, "git": git_url, "html": html},
        });
        if !dir {
            m["download_url"] = json!(format!(
                "{}/{}/{}/raw/branch/{}/{p}",
                s.base_url, s.opts.owner, s.opts.repo, resolved.branch
            ));
        }
        m
    };
    if let Some(content) = files.get(path) {
        let mut m = entry(path, false);
        m["encoding"] = json!("base64");
        m["content"] = json!(base64::engine::general_purpose::STANDARD.encode(content.as_bytes()));
        return Response::json(200, m);
    }
    // A directory: list its direct children.
    let prefix = if path.is_empty() {
        String::new()
    } else {
        format!("{path}/")
    };
    let mut children: BTreeMap<String, bool> = BTreeMap::new();
    for p in files.keys() {
        if let Some(rest) = p.strip_prefix(&prefix) {
            match rest.split_once('/') {
                Some((d, _)) => children.insert(format!("{prefix}{d}"), true),
                None => children.insert(format!("{prefix}{rest}"), false),
            };
        }
    }
    if children.is_empty() && !path.is_empty() {
        return not_found(
            s,
            &[format!(
                "object does not exist [id: {sha}, rel_path: {path}]"
            )],
        );
    }
    Response::json(
        200,
        Value::Array(children.iter().map(|(p, d)| entry(p, *d)).collect()),
    )
}
