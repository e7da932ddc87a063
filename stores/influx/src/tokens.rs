//! Scoped API tokens for the server, made once with InfluxDB's admin token, so the running server
//! never holds the admin token: a write-only token for the ingest and a read-only token for
//! history and the Flux proxy, both limited to the one bucket (`POST /api/v2/authorizations`).
//!
//! [`TokenAdmin::ensure`] is idempotent: tokens it made before (their ids and values, kept by
//! the caller) are checked and kept while InfluxDB still has them active; otherwise stale
//! authorizations with the same descriptions are deleted and new ones made. The request bodies
//! and the checks of answers are pure functions beside it.
//!
//! This module and `http.rs` are the only code of the crate that talks to InfluxDB.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One authorization: its id (to check and delete it) and its token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopedToken {
    pub id: String,
    pub token: String,
}

impl std::fmt::Debug for ScopedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopedToken")
            .field("id", &self.id)
            .field("token", &"<hidden>")
            .finish()
    }
}

/// The server's two tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopedTokens {
    /// Write to the bucket: the ingest.
    pub write: ScopedToken,
    /// Read the bucket: history, logs, devices, export, the Flux proxy; Grafana.
    pub read: ScopedToken,
}

/// What [`TokenAdmin::ensure`] did.
#[derive(Debug, Clone)]
pub struct Ensured {
    pub tokens: ScopedTokens,
    /// False when the known tokens were still valid and kept.
    pub created: bool,
    /// Stale authorizations of ours that were deleted.
    pub deleted: usize,
}

/// Why tokens could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// InfluxDB is not up, or its initial set-up has not made the org or bucket yet: retry.
    #[error("InfluxDB is not ready: {0}")]
    NotReady(String),
    /// The admin token is wrong or lacks rights: retrying cannot help.
    #[error("InfluxDB refused the admin token: {0}")]
    Unauthorized(String),
    #[error("{0}")]
    Other(String),
}

impl TokenError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, TokenError::NotReady(_))
    }
}

/// The description of the write token: how operators recognise it in InfluxDB's UI.
pub fn write_description(bucket: &str) -> String {
    format!("ogm-server ingest: write bucket {bucket}")
}

/// The description of the read token.
pub fn read_description(bucket: &str) -> String {
    format!("ogm-server history and Flux proxy: read bucket {bucket}")
}

/// The permissions of one token: `action` (`read` or `write`) on the bucket, and reading the
/// organisation itself so requests that name the org (`?org=<name>`) resolve.
pub fn permissions(action: &str, org_id: &str, bucket_id: &str) -> Value {
    json!([
        { "action": action, "resource": { "type": "buckets", "id": bucket_id, "orgID": org_id } },
        { "action": "read", "resource": { "type": "orgs", "id": org_id } },
    ])
}

/// The body of `POST /api/v2/authorizations`.
pub fn create_body(org_id: &str, description: &str, permissions: Value) -> Value {
    json!({
        "orgID": org_id,
        "description": description,
        "status": "active",
        "permissions": permissions,
    })
}

/// Whether an authorization InfluxDB returned is the live one we made for `known`: active, with
/// our description and, where InfluxDB shows token values (OSS does), the same token.
pub fn still_valid(answer: &Value, known: &ScopedToken, description: &str) -> bool {
    answer["id"].as_str() == Some(known.id.as_str())
        && answer["status"].as_str() == Some("active")
        && answer["description"].as_str() == Some(description)
        && answer["token"]
            .as_str()
            .is_none_or(|t| t == known.token || t.is_empty() || t == "redacted")
}

/// The ids of `list`'s authorizations (the answer of `GET /api/v2/authorizations`) whose
/// description is one of `descriptions`.
pub fn ours(list: &Value, descriptions: &[&str]) -> Vec<String> {
    list["authorizations"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|a| {
            a["description"]
                .as_str()
                .is_some_and(|d| descriptions.contains(&d))
        })
        .filter_map(|a| a["id"].as_str().map(str::to_owned))
        .collect()
}

/// The first `id` of `key`'s array in a list answer (`{"orgs": [...]}`, `{"buckets": [...]}`)
/// whose `name` is `name`.
fn id_by_name(list: &Value, key: &str, name: &str) -> Option<String> {
    list[key]
        .as_array()?
        .iter()
        .find(|o| o["name"].as_str() == Some(name))
        .and_then(|o| o["id"].as_str())
        .map(str::to_owned)
}

/// An InfluxDB 2 reached with its admin token.
pub struct TokenAdmin {
    http: reqwest::Client,
    base: reqwest::Url,
    admin_auth: String,
    org: String,
    bucket: String,
}

impl std::fmt::Debug for TokenAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAdmin")
            .field("base", &self.base.as_str())
            .field("org", &self.org)
            .field("bucket", &self.bucket)
            .finish_non_exhaustive()
    }
}

impl TokenAdmin {
    pub fn new(url: &str, admin_token: &str, org: &str, bucket: &str) -> Result<Self, TokenError> {
        let base = reqwest::Url::parse(url)
            .map_err(|e| TokenError::Other(format!("InfluxDB URL {url:?}: {e}")))?;
        if admin_token.is_empty() {
            return Err(TokenError::Other("the admin token is empty".into()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| TokenError::Other(format!("building the HTTP client: {e}")))?;
        Ok(Self {
            http,
            base,
            admin_auth: format!("Token {admin_token}"),
            org: org.to_owned(),
            bucket: bucket.to_owned(),
        })
    }

    /// One request; 2xx and 404 come back with their JSON body (`Null` when empty).
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), TokenError> {
        let mut url = self.base.clone();
        url.set_path(path);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut request = self
            .http
            .request(method.clone(), url)
            .header(reqwest::header::AUTHORIZATION, &self.admin_auth);
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let response = request
            .send()
            .await
            .map_err(|e| TokenError::NotReady(format!("{method} {path}: {e}")))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| TokenError::NotReady(format!("{method} {path}: {e}")))?;
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let message = || {
            value["message"].as_str().map_or_else(
                || String::from_utf8_lossy(&bytes).chars().take(300).collect(),
                str::to_owned,
            )
        };
        match status.as_u16() {
            200..=299 | 404 => Ok((status, value)),
            401 | 403 => Err(TokenError::Unauthorized(format!(
                "{method} {path}: {status}: {}",
                message()
            ))),
            408 | 429 | 500..=599 => Err(TokenError::NotReady(format!(
                "{method} {path}: {status}: {}",
                message()
            ))),
            _ => Err(TokenError::Other(format!(
                "{method} {path}: {status}: {}",
                message()
            ))),
        }
    }

    async fn org_and_bucket_ids(&self) -> Result<(String, String), TokenError> {
        let (_, orgs) = self
            .call(Method::GET, "/api/v2/orgs", &[("org", &self.org)], None)
            .await?;
        let org_id = id_by_name(&orgs, "orgs", &self.org).ok_or_else(|| {
            TokenError::NotReady(format!("organisation {:?} does not exist (yet)", self.org))
        })?;
        let (_, buckets) = self
            .call(
                Method::GET,
                "/api/v2/buckets",
                &[("orgID", &org_id), ("name", &self.bucket)],
                None,
            )
            .await?;
        let bucket_id = id_by_name(&buckets, "buckets", &self.bucket).ok_or_else(|| {
            TokenError::NotReady(format!(
                "bucket {:?} does not exist (yet) in organisation {:?}",
                self.bucket, self.org
            ))
        })?;
        Ok((org_id, bucket_id))
    }

    async fn is_live(&self, known: &ScopedToken, description: &str) -> Result<bool, TokenError> {
        if known.id.is_empty() || known.id.contains(['/', '?', '#']) {
            return Ok(false);
        }
        let (status, answer) = self
            .call(
                Method::GET,
                &format!("/api/v2/authorizations/{}", known.id),
                &[],
                None,
            )
            .await?;
        Ok(status.is_success() && still_valid(&answer, known, description))
    }

    async fn create(
        &self,
        org_id: &str,
        description: &str,
        permissions: Value,
    ) -> Result<ScopedToken, TokenError> {
        let body = create_body(org_id, description, permissions);
        let (status, answer) = self
            .call(Method::POST, "/api/v2/authorizations", &[], Some(&body))
            .await?;
        match (
            status.is_success(),
            answer["id"].as_str(),
            answer["token"].as_str(),
        ) {
            (true, Some(id), Some(token)) if !token.is_empty() => Ok(ScopedToken {
                id: id.to_owned(),
                token: token.to_owned(),
            }),
            _ => Err(TokenError::Other(format!(
                "creating the token {description:?}: unexpected answer {status}"
            ))),
        }
    }

    /// Makes sure the two scoped tokens exist; see the module docs.
    pub async fn ensure(&self, known: Option<&ScopedTokens>) -> Result<Ensured, TokenError> {
        let (org_id, bucket_id) = self.org_and_bucket_ids().await?;
        let write_desc = write_description(&self.bucket);
        let read_desc = read_description(&self.bucket);
        if let Some(k) = known
            && self.is_live(&k.write, &write_desc).await?
            && self.is_live(&k.read, &read_desc).await?
        {
            return Ok(Ensured {
                tokens: k.clone(),
                created: false,
                deleted: 0,
            });
        }
        let (_, list) = self
            .call(
                Method::GET,
                "/api/v2/authorizations",
                &[("orgID", &org_id)],
                None,
            )
            .await?;
        let stale = ours(&list, &[&write_desc, &read_desc]);
        for id in &stale {
            self.call(
                Method::DELETE,
                &format!("/api/v2/authorizations/{id}"),
                &[],
                None,
            )
            .await?;
        }
        let write = self
            .create(
                &org_id,
                &write_desc,
                permissions("write", &org_id, &bucket_id),
            )
            .await?;
        let read = self
            .create(
                &org_id,
                &read_desc,
                permissions("read", &org_id, &bucket_id),
            )
            .await?;
        Ok(Ensured {
            tokens: ScopedTokens { write, read },
            created: true,
            deleted: stale.len(),
        })
    }

    /// [`Self::ensure`], retried while InfluxDB is not ready, for up to `wait`.
    pub async fn ensure_waiting(
        &self,
        known: Option<&ScopedTokens>,
        wait: Duration,
    ) -> Result<Ensured, TokenError> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut backoff = Duration::from_millis(200);
        loop {
            match self.ensure(known).await {
                Err(e) if e.is_retryable() && tokio::time::Instant::now() + backoff < deadline => {
                    tracing::info!(error = %e, retry_in = ?backoff, "waiting for InfluxDB");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> ScopedToken {
        ScopedToken {
            id: "a1".into(),
            token: "tok".into(),
        }
    }

    #[test]
    fn bodies_name_one_bucket_and_one_action() {
        let body = create_body("o1", "d", permissions("read", "o1", "b1"));
        assert_eq!(body["orgID"], "o1");
        assert_eq!(body["status"], "active");
        let p = body["permissions"].as_array().unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0]["action"], "read");
        assert_eq!(p[0]["resource"]["type"], "buckets");
        assert_eq!(p[0]["resource"]["id"], "b1");
        assert_eq!(p[1]["resource"]["type"], "orgs");
        assert_eq!(p[1]["action"], "read", "never write to the org");
    }

    #[test]
    fn validity_of_known_tokens() {
        let ok = json!({"id": "a1", "status": "active", "description": "d", "token": "tok"});
        assert!(still_valid(&ok, &known(), "d"));
        let mut redacted = ok.clone();
        redacted["token"] = json!("redacted");
        assert!(still_valid(&redacted, &known(), "d"));
        for (field, value) in [
            ("status", json!("inactive")),
            ("description", json!("other")),
            ("token", json!("another")),
            ("id", json!("a2")),
        ] {
            let mut bad = ok.clone();
            bad[field] = value;
            assert!(!still_valid(&bad, &known(), "d"), "{field}");
        }
    }

    #[test]
    fn finds_our_authorizations_and_ids_by_name() {
        let list = json!({"authorizations": [
            {"id": "1", "description": "w"}, {"id": "2", "description": "admin's token"},
            {"id": "3", "description": "r"}, {"id": "4"}
        ]});
        assert_eq!(ours(&list, &["w", "r"]), ["1", "3"]);
        assert!(ours(&json!({}), &["w"]).is_empty());
        let orgs = json!({"orgs": [{"id": "x", "name": "other"}, {"id": "o1", "name": "grid"}]});
        assert_eq!(id_by_name(&orgs, "orgs", "grid").as_deref(), Some("o1"));
        assert_eq!(id_by_name(&orgs, "orgs", "none"), None);
        assert_eq!(
            format!("{:?}", known()),
            r#"ScopedToken { id: "a1", token: "<hidden>" }"#
        );
    }
}
