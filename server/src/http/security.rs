//! What every answer tells the browser, and addresses that must not lead elsewhere.
//!
//! - [`BrowserPolicy`] and [`security_headers`]: a Content-Security-Policy that allows exactly
//!   what the dashboard needs (its own files; the inline scripts of Trunk's `index.html`, by
//!   hash; compiling its WebAssembly; requests to this server and to the broker WebSocket that
//!   `GET /api/config` names; framing its own pages, which is how a page shows the dashboard
//!   at a phone's size), `X-Content-Type-Options: nosniff`, `Referrer-Policy:
//!   no-referrer`, and who may show the page in a frame (`--frame-ancestors`, also as
//!   `X-Frame-Options` when that header can say it).
//! - [`collapse_slashes`]: the page builds its links from its own path, and a path that starts
//!   with `//` (`http://host//evil.example/`) would make them point at another host; such
//!   paths are redirected to the path with every run of slashes made one.

use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use sha2::Digest as _;

use crate::config::Config;

/// What [`security_headers`] needs: the configuration and what was read from `index.html`.
#[derive(Debug)]
pub struct BrowserPolicy {
    config: Arc<Config>,
    /// `script-src`: the page's own files, WebAssembly, and `index.html`'s inline scripts.
    script_src: String,
    x_frame_options: Option<HeaderValue>,
}

impl BrowserPolicy {
    /// Reads the inline scripts of the built dashboard's `index.html` (none when it is not
    /// built) to allow them by hash.
    pub fn new(config: Arc<Config>) -> Self {
        let mut script_src = String::from("'self' 'wasm-unsafe-eval'");
        for hash in read_index_hashes(&config.dist_dir) {
            script_src.push(' ');
            script_src.push_str(&hash);
        }
        let x_frame_options = match config.frame_ancestors.as_str() {
            "'self'" => Some(HeaderValue::from_static("SAMEORIGIN")),
            "'none'" => Some(HeaderValue::from_static("DENY")),
            // X-Frame-Options cannot name other sites; frame-ancestors alone says it.
            _ => None,
        };
        Self {
            config,
            script_src,
            x_frame_options,
        }
    }

    /// The policy for an answer to a request with these headers: `connect-src` names the broker
    /// WebSocket that `GET /api/config` would give the same page.
    pub fn content_security_policy(&self, request: &HeaderMap) -> String {
        let broker = super::api::broker_ws_url(&self.config, request);
        let connect = match connect_source(&broker) {
            Some(source) => format!("'self' {source}"),
            None => "'self'".to_owned(),
        };
        format!(
            "default-src 'none'; script-src {}; style-src 'self'; style-src-attr 'unsafe-inline'; \
             img-src 'self'; connect-src {connect}; frame-src 'self'; base-uri 'none'; \
             form-action 'none'; frame-ancestors {}",
            self.script_src, self.config.frame_ancestors
        )
    }
}

fn read_index_hashes(dist: &Path) -> Vec<String> {
    match std::fs::read_to_string(dist.join("index.html")) {
        Ok(html) => inline_script_hashes(&html),
        Err(_) => Vec::new(),
    }
}

/// CSP hashes (`'sha256-…'`) of the inline `<script>`s of `html` (those without `src`), over
/// their text as the browser's parser sees it (line breaks made `\n`).
pub fn inline_script_hashes(html: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(open) = lower[at..].find("<script").map(|i| at + i) {
        let Some(tag_end) = lower[open..].find('>').map(|i| open + i) else {
            break;
        };
        let Some(close) = lower[tag_end..].find("</script").map(|i| tag_end + i) else {
            break;
        };
        let attributes = &lower[open + "<script".len()..tag_end];
        let external = attributes
            .split(|c: char| c.is_ascii_whitespace())
            .any(|a| a == "src" || a.starts_with("src="));
        if !external {
            let text = html[tag_end + 1..close]
                .replace("\r\n", "\n")
                .replace('\r', "\n");
            let digest = sha2::Sha256::digest(text.as_bytes());
            out.push(format!(
                "'sha256-{}'",
                base64::engine::general_purpose::STANDARD.encode(digest)
            ));
        }
        at = close;
    }
    out
}

/// The CSP source for the broker's WebSocket URL: `scheme://host[:port][/path]`; `None` for a
/// relative URL (`'self'` covers it) or one that cannot be written as a source safely.
fn connect_source(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if !matches!(scheme, "ws" | "wss" | "http" | "https") {
        return None;
    }
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let authority_ok = !authority.is_empty()
        && authority
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    let path_ok = path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '-' | '_' | '~' | '%'));
    if !authority_ok || !path_ok {
        return None;
    }
    if authority.starts_with('[') {
        // CSP has no syntax for an IPv6 address: any host on the broker's port.
        let port = authority.rsplit_once("]:").map(|(_, p)| p);
        return Some(match port {
            Some(p) => format!("{scheme}://*:{p}"),
            None => format!("{scheme}://*"),
        });
    }
    Some(format!("{scheme}://{authority}{path}"))
}

/// Middleware on every answer: the headers [`BrowserPolicy`] says.
pub async fn security_headers(
    State(policy): State<Arc<BrowserPolicy>>,
    req: Request,
    next: Next,
) -> Response {
    let csp = policy.content_security_policy(req.headers());
    let mut res = next.run(req).await;
    let headers = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if let Some(v) = &policy.x_frame_options {
        headers.insert(header::X_FRAME_OPTIONS, v.clone());
    }
    res
}

/// Middleware: a path with `//` (or `\`, which browsers read as `/`) is redirected (308) to
/// the same path with each run of slashes made one, query kept.
pub async fn collapse_slashes(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if !path.contains("//") && !path.contains('\\') {
        return next.run(req).await;
    }
    let mut target = String::with_capacity(path.len());
    for c in path.chars().map(|c| if c == '\\' { '/' } else { c }) {
        if !(c == '/' && target.ends_with('/')) {
            target.push(c);
        }
    }
    if let Some(q) = req.uri().query() {
        target.push('?');
        target.push_str(q);
    }
    Redirect::permanent(&target).into_response()
}

/// `--frame-ancestors`: `'self'`, `'none'` (alone), `*`, `https:`, or origins such as
/// `https://wall.example.org` or `https://*.example.org`, separated by spaces or commas.
/// `self` and `none` may be given without quotes (they are hard to quote in a `.env`).
pub fn parse_frame_ancestors(s: &str) -> Result<String, String> {
    let mut sources = Vec::new();
    for token in s
        .split(|c: char| c == ',' || c.is_ascii_whitespace())
        .filter(|t| !t.is_empty())
    {
        let source = match token.to_ascii_lowercase().as_str() {
            "self" | "'self'" => "'self'".to_owned(),
            "none" | "'none'" => "'none'".to_owned(),
            "*" => "*".to_owned(),
            t if is_scheme_source(t) || is_host_source(t) => t.trim_end_matches('/').to_owned(),
            _ => {
                return Err(format!(
                    "frame ancestor {token:?} must be 'self', 'none', *, a scheme such as \
                     https:, or an origin such as https://wall.example.org"
                ));
            }
        };
        sources.push(source);
    }
    if sources.is_empty() {
        return Err("give at least one frame ancestor ('none' for no framing)".into());
    }
    if sources.len() > 1 && sources.iter().any(|s| s == "'none'") {
        return Err("'none' cannot be combined with other frame ancestors".into());
    }
    Ok(sources.join(" "))
}

fn is_scheme_source(t: &str) -> bool {
    t.strip_suffix(':').is_some_and(|scheme| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    })
}

fn is_host_source(t: &str) -> bool {
    let rest = t
        .strip_prefix("https://")
        .or_else(|| t.strip_prefix("http://"))
        .unwrap_or(t);
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    !rest.is_empty()
        && rest.chars().next().is_some_and(|c| c != ':')
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '*'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_scripts_are_hashed_and_external_ones_are_not() {
        let html = "<head><script type=\"module\">\nimport init from '/a.js';\r\n</script>\
                    <script src=\"/b.js\"></script></head><body><SCRIPT>x()</SCRIPT></body>";
        let hashes = inline_script_hashes(html);
        let expect = |text: &str| {
            format!(
                "'sha256-{}'",
                base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(text))
            )
        };
        assert_eq!(
            hashes,
            [expect("\nimport init from '/a.js';\n"), expect("x()")]
        );
        // A known vector: sha256("") is 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=.
        assert_eq!(
            inline_script_hashes("<script></script>"),
            ["'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"]
        );
        assert!(inline_script_hashes("<script>unclosed").is_empty());
    }

    #[test]
    fn the_broker_url_becomes_a_connect_source_only_when_safe() {
        assert_eq!(
            connect_source("ws://grid.example:9001").as_deref(),
            Some("ws://grid.example:9001")
        );
        assert_eq!(
            connect_source("wss://grid.example/mqtt?x=1").as_deref(),
            Some("wss://grid.example/mqtt")
        );
        assert_eq!(
            connect_source("ws://[::1]:9001").as_deref(),
            Some("ws://*:9001")
        );
        for bad in [
            "/mqtt",
            "ws://a; script-src *",
            "ws://a b",
            "ftp://x",
            "ws://",
        ] {
            assert_eq!(connect_source(bad), None, "{bad}");
        }
    }

    #[test]
    fn frame_ancestors_are_checked_and_normalised() {
        assert_eq!(parse_frame_ancestors("'self'").unwrap(), "'self'");
        assert_eq!(parse_frame_ancestors("none").unwrap(), "'none'");
        assert_eq!(
            parse_frame_ancestors("self, https://Wall.example.org/ https://*.example.net:8443")
                .unwrap(),
            "'self' https://wall.example.org https://*.example.net:8443"
        );
        assert_eq!(parse_frame_ancestors("*").unwrap(), "*");
        assert_eq!(parse_frame_ancestors("https:").unwrap(), "https:");
        for bad in [
            "",
            "'none' 'self'",
            "https://a;script-src",
            "'unsafe-inline'",
            "javascript:alert(1)",
            "https://a/b",
        ] {
            assert!(parse_frame_ancestors(bad).is_err(), "{bad}");
        }
    }
}
