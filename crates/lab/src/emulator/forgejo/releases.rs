//! Releases and release assets of the Forgejo emulator, as Forgejo v15 serves them
//! (`routers/api/v1/repo/release*.go`, the stored swagger spec):
//!
//! - `POST /releases` → 201 `Release`; 409 when a release of that tag exists; 422 without `tag_name`.
//! - `GET /releases`, `/releases/{id}`, `/releases/tags/{tag}`, `/releases/latest` (the newest
//!   release that is neither a draft nor a prerelease) → 200, or 404 `The target couldn't be found.`
//! - `DELETE /releases/{id}` → 204.
//! - `GET /releases/{id}/assets` → `[Attachment]`; `GET …/assets/{attachment_id}` → `Attachment`.
//! - `POST /releases/{id}/assets[?name=]` with `multipart/form-data` (field `attachment`) or a raw
//!   `application/octet-stream` body → 201 `Attachment`; the `name` query wins over the file name.
//! - `DELETE …/assets/{attachment_id}` → 204.
//! - Downloads at `browser_download_url`: `GET /{owner}/{repo}/releases/download/{tag}/{name}`
//!   when the release's asset names are unique (as Forgejo 15 hands them out), else
//!   `GET /attachments/{uuid}` (both web routes, not the API): Forgejo accepts an API token in
//!   `Authorization` there (`isAttachmentDownload`), and the lab's repository is private, so an
//!   anonymous download is a 404.

use crate::emulator::time::rfc3339_at;
use serde_json::{json, Value};
use std::time::SystemTime;

#[derive(Debug, Clone)]
pub struct Asset {
    pub id: i64,
    pub uuid: String,
    pub name: String,
    pub data: Vec<u8>,
    pub created: SystemTime,
    pub downloads: i64,
}

#[derive(Debug, Clone)]
pub struct Release {
    pub id: i64,
    pub tag: String,
    pub name: String,
    pub body: String,
    pub target: String,
    pub draft: bool,
    pub prerelease: bool,
    pub created: SystemTime,
    pub assets: Vec<Asset>,
}

/// The releases of the emulator's one repository.
#[derive(Debug, Clone, Default)]
pub struct Releases {
    pub releases: Vec<Release>,
    next_id: i64,
}

impl Releases {
    /// The asset `name` of release `tag`.
    pub fn asset_mut(&mut self, tag: &str, name: &str) -> Option<&mut Asset> {
        self.releases
            .iter_mut()
            .find(|r| r.tag == tag)?
            .assets
            .iter_mut()
            .find(|a| a.name == name)
    }
    fn next(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }
}

/// Who asks, and where the repository lives.
pub struct Ctx<'a> {
    pub base_url: &'a str,
    pub owner: &'a str,
    pub repo: &'a str,
    /// The token may write to the repository.
    pub can_write: bool,
}

/// An answer: a status and a JSON body, raw bytes or nothing.
pub enum Answer {
    Json(u16, Value),
    Bytes(u16, Vec<u8>),
    Empty(u16),
}

fn error(ctx: &Ctx, status: u16, message: &str) -> Answer {
    Answer::Json(
        status,
        json!({"message": message, "url": format!("{}/api/swagger", ctx.base_url)}),
    )
}

fn not_found(ctx: &Ctx) -> Answer {
    Answer::Json(
        404,
        json!({"errors": [], "message": "The target couldn't be found.",
               "url": format!("{}/api/swagger", ctx.base_url)}),
    )
}

/// Go's `url.PathEscape`: unreserved characters and `$&+:=@` stay, everything else is
/// percent-encoded (so `/`, `;`, `,` and `?` are).
fn path_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~$&+:=@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Where Forgejo (v15) says an asset downloads: in a release's answer and the assets list
/// (`models/repo/release.go: GetReleaseAttachments`), `<repo>/releases/download/<tag>/<name>`
/// when the release's asset names are unique; else, and in the answers about one asset (upload,
/// `GET …/assets/{id}`, which load the attachment alone), `/attachments/<uuid>`.
fn download_url(ctx: &Ctx, r: Option<&Release>, a: &Asset) -> String {
    let unique = r.filter(|r| r.assets.iter().filter(|o| o.name == a.name).count() == 1);
    if let Some(r) = unique {
        format!(
            "{}/{}/{}/releases/download/{}/{}",
            ctx.base_url,
            ctx.owner,
            ctx.repo,
            path_escape(&r.tag),
            path_escape(&a.name)
        )
    } else {
        format!("{}/attachments/{}", ctx.base_url, a.uuid)
    }
}

fn asset_json(ctx: &Ctx, r: Option<&Release>, a: &Asset) -> Value {
    json!({
        "id": a.id,
        "name": a.name,
        "size": a.data.len(),
        "download_count": a.downloads,
        "created_at": rfc3339_at(a.created),
        "uuid": a.uuid,
        "browser_download_url": download_url(ctx, r, a),
        "type": "attachment",
    })
}

fn release_json(ctx: &Ctx, r: &Release) -> Value {
    let repo = format!("{}/{}/{}", ctx.base_url, ctx.owner, ctx.repo);
    let api = format!("{}/api/v1/repos/{}/{}", ctx.base_url, ctx.owner, ctx.repo);
    json!({
        "id": r.id,
        "tag_name": r.tag,
        "target_commitish": r.target,
        "name": r.name,
        "body": r.body,
        "url": format!("{api}/releases/{}", r.id),
        "html_url": format!("{repo}/releases/tag/{}", r.tag),
        "tarball_url": format!("{repo}/archive/{}.tar.gz", r.tag),
        "zipball_url": format!("{repo}/archive/{}.zip", r.tag),
        "upload_url": format!("{api}/releases/{}/assets", r.id),
        "hide_archive_links": false,
        "archive_download_count": {"zip": 0, "tar_gz": 0},
        "draft": r.draft,
        "prerelease": r.prerelease,
        "created_at": rfc3339_at(r.created),
        "published_at": rfc3339_at(r.created),
        "author": {
            "id": 1, "login": "deploy-bot", "full_name": "Deploy bot",
            "email": "deploy-bot@example.org",
            "avatar_url": format!("{}/avatars/deploy-bot", ctx.base_url),
            "html_url": format!("{}/deploy-bot", ctx.base_url),
        },
        "assets": r.assets.iter().map(|a| asset_json(ctx, Some(r), a)).collect::<Vec<_>>(),
    })
}

fn uuid(rel: &Releases, id: i64, name: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(format!("{id}:{name}:{}", rel.releases.len()).as_bytes());
    let h: String = d.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// `rest`: the path after `/repos/{owner}/{repo}/releases`.
pub fn api(
    rel: &mut Releases,
    ctx: &Ctx,
    method: &str,
    rest: &[&str],
    query: &[(String, String)],
    body: &[u8],
) -> Answer {
    if method != "GET" && !ctx.can_write {
        return error(ctx, 403, "user should have a permission to write to a repo");
    }
    let find = |rel: &Releases, id: &str| {
        id.parse::<i64>()
            .ok()
            .and_then(|id| rel.releases.iter().position(|r| r.id == id))
    };
    match (method, rest) {
        ("GET", []) => {
            let mut list: Vec<&Release> = rel.releases.iter().collect();
            list.sort_by_key(|r| std::cmp::Reverse(r.id));
            Answer::Json(
                200,
                Value::Array(list.into_iter().map(|r| release_json(ctx, r)).collect()),
            )
        }
        ("POST", []) => create(rel, ctx, body),
        ("GET", ["latest"]) => rel
            .releases
            .iter()
            .filter(|r| !r.draft && !r.prerelease)
            .max_by_key(|r| (r.created, r.id))
            .map(|r| Answer::Json(200, release_json(ctx, r)))
            .unwrap_or_else(|| not_found(ctx)),
        ("GET", ["tags", tag]) => rel
            .releases
            .iter()
            .find(|r| r.tag == *tag)
            .map(|r| Answer::Json(200, release_json(ctx, r)))
            .unwrap_or_else(|| not_found(ctx)),
        ("GET", [id]) => match find(rel, id) {
            Some(i) => Answer::Json(200, release_json(ctx, &rel.releases[i])),
            None => not_found(ctx),
        },
        ("DELETE", [id]) => match find(rel, id) {
            Some(i) => {
                rel.releases.remove(i);
                Answer::Empty(204)
            }
            None => not_found(ctx),
        },
        ("GET", [id, "assets"]) => match find(rel, id) {
            Some(i) => Answer::Json(
                200,
                Value::Array(
                    rel.releases[i]
                        .assets
                        .iter()
                        .map(|a| asset_json(ctx, Some(&rel.releases[i]), a))
                        .collect(),
                ),
            ),
            None => not_found(ctx),
        },
        ("POST", [id, "assets"]) => match find(rel, id) {
            Some(i) => upload(rel, ctx, i, query, body),
            None => not_found(ctx),
        },
        (m @ ("GET" | "DELETE"), [id, "assets", aid]) => {
            let Some(i) = find(rel, id) else {
                return not_found(ctx);
            };
            let r = &mut rel.releases[i];
            let Some(j) = r.assets.iter().position(|a| a.id.to_string() == *aid) else {
                return not_found(ctx);
            };
            if m == "GET" {
                Answer::Json(200, asset_json(ctx, None, &r.assets[j]))
            } else {
                r.assets.remove(j);
                Answer::Empty(204)
            }
        }
        _ => not_found(ctx),
    }
}

fn create(rel: &mut Releases, ctx: &Ctx, body: &[u8]) -> Answer {
    let Ok(Value::Object(doc)) = serde_json::from_slice::<Value>(body) else {
        return error(ctx, 422, "[]: invalid JSON");
    };
    let s = |k: &str| doc.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let b = |k: &str| doc.get(k).and_then(Value::as_bool).unwrap_or(false);
    let tag = s("tag_name");
    if tag.trim().is_empty() {
        return Answer::Json(
            422,
            json!([{"fieldNames": ["TagName"], "classification": "RequiredError", "message": "Required"}]),
        );
    }
    if rel.releases.iter().any(|r| r.tag == tag) {
        return error(
            ctx,
            409,
            &format!("release tag already exist [tag_name: {tag}]"),
        );
    }
    let id = rel.next();
    let target = Some(s("target_commitish"))
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "main".into());
    let r = Release {
        id,
        name: Some(s("name"))
            .filter(|n| !n.is_empty())
            .unwrap_or(tag.clone()),
        tag,
        body: s("body"),
        target,
        draft: b("draft"),
        prerelease: b("prerelease"),
        created: SystemTime::now(),
        assets: Vec::new(),
    };
    let answer = Answer::Json(201, release_json(ctx, &r));
    rel.releases.push(r);
    answer
}

fn find_bytes(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    let first = needle[0];
    let mut i = from;
    while i + needle.len() <= hay.len() {
        let off = hay[i..=hay.len() - needle.len()]
            .iter()
            .position(|&c| c == first)?;
        i += off;
        if &hay[i..i + needle.len()] == needle {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// The `attachment` part of a multipart body: (file name, content). A multipart body starts with
/// its boundary line, which is all the parser needs (the Content-Type header carries the same).
fn multipart_file(body: &[u8]) -> Option<(String, Vec<u8>)> {
    let eol = find_bytes(body, b"\r\n", 0)?;
    let boundary = &body[..eol];
    if !boundary.starts_with(b"--") {
        return None;
    }
    let delim: Vec<u8> = [b"\r\n".as_slice(), boundary].concat();
    let mut pos = eol + 2;
    loop {
        let head_end = find_bytes(body, b"\r\n\r\n", pos)?;
        let head = String::from_utf8_lossy(&body[pos..head_end]).to_string();
        let data_start = head_end + 4;
        let data_end = find_bytes(body, &delim, data_start)?;
        let disp = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))
            .unwrap_or("");
        let param = |k: &str| {
            disp.split(';').map(str::trim).find_map(|p| {
                p.strip_prefix(&format!("{k}="))
                    .map(|v| v.trim_matches('"').to_string())
            })
        };
        if param("name").as_deref() == Some("attachment") {
            let file = param("filename").unwrap_or_default();
            return Some((file, body[data_start..data_end].to_vec()));
        }
        pos = data_end + delim.len();
        if body[pos..].starts_with(b"--") {
            return None;
        }
        pos += 2;
    }
}

fn upload(
    rel: &mut Releases,
    ctx: &Ctx,
    i: usize,
    query: &[(String, String)],
    body: &[u8],
) -> Answer {
    let qname = query
        .iter()
        .find(|(k, _)| k == "name")
        .map(|(_, v)| v.clone())
        .filter(|v| !v.is_empty());
    let (file, data) = if body.starts_with(b"--") {
        match multipart_file(body) {
            Some(x) => x,
            None => return error(ctx, 400, "GetFile: http: no such file"),
        }
    } else {
        (String::new(), body.to_vec())
    };
    let Some(name) = qname.or(Some(file).filter(|f| !f.is_empty())) else {
        return error(ctx, 400, "name: Could not determine name of attachment.");
    };
    let id = rel.next();
    let asset = Asset {
        id,
        uuid: uuid(rel, id, &name),
        name,
        data,
        created: SystemTime::now(),
        downloads: 0,
    };
    let answer = Answer::Json(201, asset_json(ctx, None, &asset));
    rel.releases[i].assets.push(asset);
    answer
}

/// `GET /{owner}/{repo}/releases/download/{tag}/{name}` (`routers/web/repo/repo.go:
/// RedirectDownload`): the asset of the release of that tag (drafts only for a writer; `latest`,
/// when no release has that tag, is the latest release), served as `/attachments/<uuid>` is.
pub fn download_by_name(
    rel: &mut Releases,
    ctx: &Ctx,
    tag: &str,
    name: &str,
    authenticated: bool,
) -> Answer {
    let uuid = {
        let visible = |r: &&Release| !r.draft || ctx.can_write;
        let mut tagged = rel.releases.iter().filter(|r| r.tag == tag).filter(visible);
        let release = match (tagged.next(), tag) {
            (Some(r), _) => Some(r),
            (None, "latest") => rel
                .releases
                .iter()
                .filter(|r| !r.draft && !r.prerelease)
                .max_by_key(|r| (r.created, r.id)),
            (None, _) => None,
        };
        release
            .and_then(|r| r.assets.iter().find(|a| a.name == name))
            .map(|a| a.uuid.clone())
    };
    match uuid {
        Some(uuid) => download(rel, ctx, &uuid, authenticated),
        None => not_found(ctx),
    }
}

/// `GET /attachments/{uuid}`; `authenticated`: a valid token was presented.
pub fn download(rel: &mut Releases, ctx: &Ctx, uuid: &str, authenticated: bool) -> Answer {
    if !authenticated {
        // The repository is private: an anonymous reader does not learn the attachment exists.
        return not_found(ctx);
    }
    for r in rel.releases.iter_mut() {
        if let Some(a) = r.assets.iter_mut().find(|a| a.uuid == uuid) {
            a.downloads += 1;
            return Answer::Bytes(200, a.data.clone());
        }
    }
    not_found(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_attachment_part() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nv\r\n--XyZ\r\nContent-Disposition: form-data; name=\"attachment\"; filename=\"a.tar.gz\"\r\nContent-Type: application/gzip\r\n\r\nbin\r\n--ary\r\n--XyZ--\r\n";
        let (f, d) = multipart_file(body).unwrap();
        assert_eq!(f, "a.tar.gz");
        assert_eq!(d, b"bin\r\n--ary");
    }
}
