//! The one place that talks to InfluxDB: writes through the `influxdb2` client, queries and
//! health through reqwest (the same 0.11 that `influxdb2` uses).
//!
//! `influxdb2` 0.5.2's query helpers are not used: they unwrap response bodies and panic on
//! empty CSV values. Its write call is safe (every failure is a `RequestError`); its builder
//! panics on an invalid URL, so the URL is validated first ([`crate::InfluxConfig`]).

use std::time::Duration;

use bytes::Bytes;
use influxdb2::RequestError;
use influxdb2::api::write::TimestampPrecision;
use ogm_store::StoreError;
use reqwest::StatusCode;

use crate::InfluxConfig;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const WRITE_TIMEOUT: Duration = Duration::from_secs(15);
const QUERY_TIMEOUT: Duration = Duration::from_secs(60);
const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest answer read into memory for the store's own queries.
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;
/// Largest syntax tree read for a proxied query (a tree is much larger than its query).
const MAX_AST_BYTES: usize = 32 * 1024 * 1024;
/// Largest error body kept for a message.
const MAX_ERROR_BYTES: usize = 16 * 1024;

/// Why a write did not go through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WriteError {
    /// Try again later: unreachable, timeout, 5xx, 429, or a token/bucket problem (401, 403,
    /// 404) that the operator can fix without the data being at fault.
    Unavailable(String),
    /// InfluxDB refused the data itself (400, 413, 422): retrying cannot help.
    Rejected(String),
}

/// Which token a query uses and how long it may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QueryKind {
    /// The store's own queries: whole-answer timeout.
    Internal,
    /// The Flux proxy: the caller enforces the query's deadline (so long answers can stream);
    /// InfluxDB's 4xx answers become [`StoreError::Refused`] so the user sees them.
    Proxy,
}

pub(crate) struct Http {
    writer: influxdb2::Client,
    http: reqwest::Client,
    base: reqwest::Url,
    org: String,
    bucket: String,
    read_auth: Option<String>,
    write_auth: Option<String>,
    /// Whether queries go with a read token of their own, not the write token.
    separate_read_token: bool,
}

impl Http {
    pub(crate) fn new(config: &InfluxConfig, base: reqwest::Url) -> Result<Self, String> {
        let builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(WRITE_TIMEOUT);
        let writer = influxdb2::ClientBuilder::with_builder(
            builder,
            base.as_str(),
            config.org.clone(),
            config.token.clone(),
        )
        .build()
        .map_err(|e| format!("building the InfluxDB client: {e}"))?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        let read_token = config.read_token.as_deref().unwrap_or(&config.token);
        let separate_read_token = !read_token.is_empty() && read_token != config.token;
        Ok(Self {
            writer,
            http,
            base,
            org: config.org.clone(),
            bucket: config.bucket.clone(),
            read_auth: (!read_token.is_empty()).then(|| format!("Token {read_token}")),
            write_auth: (!config.token.is_empty()).then(|| format!("Token {}", config.token)),
            separate_read_token,
        })
    }

    /// Whether queries use a read token that is not the write token.
    pub(crate) fn has_separate_read_token(&self) -> bool {
        self.separate_read_token
    }

    fn url(&self, path: &str) -> reqwest::Url {
        let mut url = self.base.clone();
        url.set_path(path);
        url
    }

    /// Writes line protocol with µs precision.
    pub(crate) async fn write(&self, body: Vec<u8>) -> Result<(), WriteError> {
        let result = self
            .writer
            .write_line_protocol_with_precision(
                &self.org,
                &self.bucket,
                body,
                TimestampPrecision::Microseconds,
            )
            .await;
        match result {
            Ok(()) => Ok(()),
            Err(RequestError::Http { status, text }) => Err(classify_write(status, &text)),
            Err(e) => Err(WriteError::Unavailable(e.to_string())),
        }
    }

    /// Deletes the points of `measurement` with tag `device_id` from `start_ns` to `stop_ns`
    /// (`POST /api/v2/delete`, with the write token).
    pub(crate) async fn delete(
        &self,
        measurement: &str,
        device_id: &str,
        start_ns: i64,
        stop_ns: i64,
    ) -> Result<(), StoreError> {
        let mut url = self.url("/api/v2/delete");
        url.query_pairs_mut()
            .append_pair("org", &self.org)
            .append_pair("bucket", &self.bucket);
        let rfc3339 = |ns: i64| {
            chrono::DateTime::from_timestamp_nanos(ns)
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
        };
        let body = serde_json::json!({
            "start": rfc3339(start_ns),
            "stop": rfc3339(stop_ns),
            "predicate": format!("_measurement=\"{measurement}\" AND device_id=\"{device_id}\""),
        });
        let mut request = self
            .http
            .post(url)
            .timeout(WRITE_TIMEOUT)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        if let Some(auth) = &self.write_auth {
            request = request.header(reqwest::header::AUTHORIZATION, auth);
        }
        let response = request.send().await.map_err(|e| {
            StoreError::Unavailable(ogm_store::Cause::new(format!("InfluxDB delete: {e}"), e))
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = read_limited(response, MAX_ERROR_BYTES)
            .await
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        Err(StoreError::Unavailable(
            format!("InfluxDB delete: HTTP {status} {text}").into(),
        ))
    }

    /// Whether `GET /health` answers 200.
    pub(crate) async fn healthy(&self) -> bool {
        let request = self.http.get(self.url("/health")).timeout(HEALTH_TIMEOUT);
        matches!(request.send().await, Ok(r) if r.status().is_success())
    }

    /// Sends a Flux query; the answer's body is annotated CSV.
    pub(crate) async fn query(
        &self,
        flux: &str,
        kind: QueryKind,
    ) -> Result<reqwest::Response, StoreError> {
        let mut url = self.url("/api/v2/query");
        url.query_pairs_mut().append_pair("org", &self.org);
        let body = serde_json::json!({
            "query": flux,
            "type": "flux",
            "dialect": {
                "header": true,
                "delimiter": ",",
                "annotations": ["datatype", "group", "default"],
                "dateTimeFormat": "RFC3339Nano",
            },
        });
        let mut request = self
            .http
            .post(url)
            .header(reqwest::header::ACCEPT, "application/csv")
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        if let Some(auth) = &self.read_auth {
            request = request.header(reqwest::header::AUTHORIZATION, auth);
        }
        if kind == QueryKind::Internal {
            request = request.timeout(QUERY_TIMEOUT);
        }
        let response = request.send().await.map_err(|e| {
            StoreError::Unavailable(ogm_store::Cause::new(format!("InfluxDB query: {e}"), e))
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = read_limited(response, MAX_ERROR_BYTES)
            .await
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        Err(classify_query(status, &text, kind))
    }

    /// Has InfluxDB parse a proxied query (`POST /api/v2/query/ast`, with the read token) and
    /// returns its answer, `{"ast": ...}`. A query InfluxDB cannot parse is
    /// [`StoreError::Refused`]. No timeout here: the caller's deadline covers it.
    pub(crate) async fn parse_flux(&self, flux: &str) -> Result<serde_json::Value, StoreError> {
        let body = serde_json::json!({ "query": flux });
        let mut request = self
            .http
            .post(self.url("/api/v2/query/ast"))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        if let Some(auth) = &self.read_auth {
            request = request.header(reqwest::header::AUTHORIZATION, auth);
        }
        let response = request.send().await.map_err(|e| {
            StoreError::Unavailable(ogm_store::Cause::new(
                format!("InfluxDB parsing the query: {e}"),
                e,
            ))
        })?;
        let status = response.status();
        let body = read_limited(response, MAX_AST_BYTES).await.map_err(|e| {
            StoreError::Unavailable(ogm_store::Cause::new(
                format!("reading InfluxDB's parse: {e}"),
                e,
            ))
        })?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body[..body.len().min(MAX_ERROR_BYTES)]);
            return Err(match classify_query(status, &text, QueryKind::Proxy) {
                StoreError::Refused(m) => StoreError::Refused(m.replacen(
                    "InfluxDB refused the query",
                    "InfluxDB cannot parse the query",
                    1,
                )),
                e => e,
            });
        }
        if body.len() > MAX_AST_BYTES {
            return Err(StoreError::Refused(
                "Flux query refused: its syntax tree is too large".into(),
            ));
        }
        serde_json::from_slice(&body).map_err(|e| {
            if e.to_string().contains("recursion limit") {
                StoreError::Refused(
                    "Flux query refused: it is nested too deeply (more than about 100 chained \
                     `|>` steps or `and`/`or` terms)"
                        .into(),
                )
            } else {
                StoreError::Backend(ogm_store::Cause::new(
                    format!("InfluxDB's parse of a query is not JSON: {e}"),
                    e,
                ))
            }
        })
    }

    /// Runs a query of the store's own and reads the whole answer.
    pub(crate) async fn query_text(&self, flux: &str) -> Result<String, StoreError> {
        let response = self.query(flux, QueryKind::Internal).await?;
        let body = read_limited(response, MAX_ANSWER_BYTES)
            .await
            .map_err(|e| {
                StoreError::Unavailable(ogm_store::Cause::new(
                    format!("reading InfluxDB's answer: {e}"),
                    e,
                ))
            })?;
        if body.len() > MAX_ANSWER_BYTES {
            return Err(StoreError::Backend(
                format!("InfluxDB's answer is larger than {MAX_ANSWER_BYTES} bytes").into(),
            ));
        }
        String::from_utf8(body)
            .map_err(|_| StoreError::Backend("InfluxDB's answer is not UTF-8".into()))
    }
}

/// Reads up to `limit` bytes, and one chunk more to tell the caller the limit was passed.
async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, reqwest::Error> {
    let mut out = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        out.extend_from_slice(&chunk);
        if out.len() > limit {
            break;
        }
    }
    Ok(out)
}

/// The next chunk of a streamed answer.
pub(crate) async fn next_chunk(
    response: &mut reqwest::Response,
) -> Result<Option<Bytes>, StoreError> {
    response.chunk().await.map_err(|e| {
        StoreError::Unavailable(ogm_store::Cause::new(
            format!("reading InfluxDB's answer: {e}"),
            e,
        ))
    })
}

/// InfluxDB's JSON error body (`{"code": "...", "message": "..."}`), or the raw text.
fn error_message(text: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Body {
        message: Option<String>,
    }
    serde_json::from_str::<Body>(text)
        .ok()
        .and_then(|b| b.message)
        .unwrap_or_else(|| text.trim().chars().take(500).collect())
}

fn classify_write(status: StatusCode, text: &str) -> WriteError {
    let message = format!("InfluxDB answered {status}: {}", error_message(text));
    match status.as_u16() {
        400 | 413 | 422 => WriteError::Rejected(message),
        _ => WriteError::Unavailable(message),
    }
}

fn classify_query(status: StatusCode, text: &str, kind: QueryKind) -> StoreError {
    let message = error_message(text);
    match status.as_u16() {
        400 | 422 if kind == QueryKind::Proxy => {
            StoreError::Refused(format!("InfluxDB refused the query: {message}"))
        }
        401 | 403 => StoreError::Backend(
            format!("InfluxDB refused the read token ({status}): {message}").into(),
        ),
        408 | 429 | 500..=599 => {
            StoreError::Unavailable(format!("InfluxDB answered {status}: {message}").into())
        }
        _ => StoreError::Backend(format!("InfluxDB answered {status}: {message}").into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_failures_are_sorted_into_retry_and_reject() {
        let code = |n: u16| StatusCode::from_u16(n).unwrap();
        let body = r#"{"code":"invalid","message":"partial write: field type conflict"}"#;
        assert_eq!(
            classify_write(code(400), body),
            WriteError::Rejected(
                "InfluxDB answered 400 Bad Request: partial write: field type conflict".into()
            )
        );
        for n in [401, 403, 404, 408, 429, 500, 503] {
            assert!(
                matches!(classify_write(code(n), "x"), WriteError::Unavailable(_)),
                "{n}"
            );
        }
        assert!(matches!(
            classify_write(code(413), ""),
            WriteError::Rejected(_)
        ));
    }

    #[test]
    fn query_failures_map_to_store_errors() {
        let code = |n: u16| StatusCode::from_u16(n).unwrap();
        let body = r#"{"code":"invalid","message":"compilation failed: error @1:1"}"#;
        assert!(matches!(
            classify_query(code(400), body, QueryKind::Proxy),
            StoreError::Refused(m) if m.contains("compilation failed")
        ));
        assert!(matches!(
            classify_query(code(400), body, QueryKind::Internal),
            StoreError::Backend(_)
        ));
        assert!(matches!(
            classify_query(code(503), "down", QueryKind::Proxy),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            classify_query(code(401), "", QueryKind::Internal),
            StoreError::Backend(m) if m.contains("read token")
        ));
    }
}
