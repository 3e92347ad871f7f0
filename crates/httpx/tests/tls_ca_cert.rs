//! `ca_cert` with a self-signed server certificate, as a homelab Vault has: curl and the
//! `bao`/`vault` CLIs accept the server when its certificate is the one in the CA file, whether
//! `openssl req -x509` marked it `CA:TRUE` (its default) or not. Certificates are made with the
//! `openssl` binary; the server is a tiny rustls server on 127.0.0.1.

use httpx::{Body, Client, HttpConfig, HttpError, Retry};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

/// A self-signed P-256 certificate with the given extensions; returns (cert.pem, key.pem).
fn self_signed(dir: &Path, name: &str, extensions: &str) -> (PathBuf, PathBuf) {
    let cfg = dir.join(format!("{name}.cnf"));
    std::fs::write(
        &cfg,
        format!(
            "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = {name}\n[ext]\n{extensions}\n"
        ),
    )
    .unwrap();
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec"])
        .args(["-pkeyopt", "ec_paramgen_curve:prime256v1"])
        .args(["-nodes", "-days", "2", "-config"])
        .arg(&cfg)
        .args(["-extensions", "ext", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// An HTTPS server on 127.0.0.1 answering every request `200 {"ok":true}`; returns its URL.
fn serve(cert: &Path, key: &Path) -> String {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let config = config.clone();
            std::thread::spawn(move || {
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
                let Ok(conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut buf = Vec::new();
                let mut chunk = [0u8; 2048];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let body = br#"{"ok":true}"#;
                let _ = write!(
                    tls,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = tls.write_all(body);
                let _ = tls.flush();
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    url
}

fn get(url: &str, ca_cert: Option<&Path>) -> Result<u16, HttpError> {
    let mut cfg = HttpConfig::new("Vault", url);
    cfg.ca_cert = ca_cert.map(Path::to_path_buf);
    cfg.timeout = Duration::from_secs(10);
    cfg.retries = 0;
    let client = Client::new(cfg)?;
    client
        .send("GET", "/v1/sys/health", &[], Body::None, Retry::Never)
        .map(|r| r.status)
}

#[test]
fn a_self_signed_server_certificate_given_as_ca_cert_is_trusted_with_or_without_ca_true() {
    let dir = tempfile::tempdir().unwrap();
    for (name, ext) in [
        (
            "ca-true",
            "basicConstraints = critical,CA:TRUE\nsubjectAltName = IP:127.0.0.1,DNS:localhost",
        ),
        ("leaf-only", "subjectAltName = IP:127.0.0.1,DNS:localhost"),
    ] {
        let (cert, key) = self_signed(dir.path(), name, ext);
        let url = serve(&cert, &key);
        assert_eq!(
            get(&url, Some(&cert)).map_err(|e| e.to_string()),
            Ok(200),
            "{name}"
        );
        // Without the file: the usual refusal, with its hint.
        let e = get(&url, None).unwrap_err();
        assert!(matches!(e, HttpError::Tls { .. }), "{name}: {e}");
        assert!(e.to_string().contains("set `ca_cert`"), "{e}");
    }
}

#[test]
fn the_pinned_certificate_must_still_name_the_server_and_other_certificates_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    // In the file byte for byte and CA:TRUE, but made for another host.
    let (cert, key) = self_signed(
        dir.path(),
        "other-host",
        "basicConstraints = critical,CA:TRUE\nsubjectAltName = DNS:vault.example.org",
    );
    let url = serve(&cert, &key);
    let e = get(&url, Some(&cert)).unwrap_err();
    assert!(matches!(e, HttpError::Tls { .. }), "{e}");
    let m = e.to_string();
    assert!(m.contains("not valid for name"), "{m}");
    assert!(m.contains("not made for the host in the URL"), "{m}");

    // The server's certificate is not the one in the file (a lookalike with the same name and
    // flags but another key): refused, with the hint.
    let ext = "basicConstraints = critical,CA:TRUE\nsubjectAltName = IP:127.0.0.1";
    let (served, served_key) = self_signed(dir.path(), "served", ext);
    let (lookalike, _) = self_signed(dir.path(), "lookalike", ext);
    let url = serve(&served, &served_key);
    let e = get(&url, Some(&lookalike)).unwrap_err();
    assert!(matches!(e, HttpError::Tls { .. }), "{e}");
    assert!(e.to_string().contains("set `ca_cert`"), "{e}");
}

/// An expired self-signed `CA:TRUE` certificate, in the file byte for byte: refused (webpki
/// checks the validity period before it reports `CaUsedAsEndEntity`, the one error the pinning
/// overturns). Made with `openssl ca -selfsign`, which takes explicit dates.
#[test]
fn an_expired_pinned_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("index.txt"), "").unwrap();
    std::fs::write(d.join("serial"), "01\n").unwrap();
    std::fs::write(
        d.join("ca.cnf"),
        "[ca]\ndefault_ca = c\n[c]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\n\
         default_md = sha256\npolicy = p\nunique_subject = no\n[p]\ncommonName = supplied\n\
         [req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = expired\n\
         [ext]\nbasicConstraints = critical,CA:TRUE\nsubjectAltName = IP:127.0.0.1\n",
    )
    .unwrap();
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(d)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-config",
        "ca.cnf",
        "-keyout",
        "key.pem",
        "-out",
        "req.csr",
    ]);
    openssl(&[
        "ca",
        "-batch",
        "-config",
        "ca.cnf",
        "-selfsign",
        "-keyfile",
        "key.pem",
        "-in",
        "req.csr",
        "-out",
        "cert.pem",
        "-startdate",
        "20200101000000Z",
        "-enddate",
        "20200102000000Z",
        "-extensions",
        "ext",
        "-notext",
    ]);
    let url = serve(&d.join("cert.pem"), &d.join("key.pem"));
    let e = get(&url, Some(&d.join("cert.pem"))).unwrap_err();
    assert!(matches!(e, HttpError::Tls { .. }), "{e}");
    let m = e.to_string();
    assert!(m.to_lowercase().contains("expired"), "{m}");
    assert!(m.contains("outside its validity period"), "{m}");
}
