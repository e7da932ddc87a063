//! The token set-up (`ogm_store_influx::tokens`) against an in-process stand-in for InfluxDB 2's
//! organisations, buckets and authorizations API (axum on 127.0.0.1). This is NOT a real
//! InfluxDB 2: it keeps authorizations in memory and answers in the documented shapes
//! (`{"orgs": [...]}`, `{"buckets": [...]}`, `{"authorizations": [...]}`, 201 with `token` on
//! create, 404 for unknown ids and for an organisation that does not exist yet, 401 for a wrong
//! token, 400 for a permission on an unknown bucket).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use ogm_store_influx::tokens::{
    ScopedTokens, TokenAdmin, TokenError, read_description, write_description,
};
use serde_json::{Value, json};
use support::{Served, authorization, free_addr};

const ADMIN: &str = "admin-token-123";
const ORG: &str = "open_grid_monitor";
const ORG_ID: &str = "0a1b2c3d4e5f6a7b";
const BUCKET: &str = "open_grid_monitor";
const BUCKET_ID: &str = "b0b1b2b3b4b5b6b7";

#[derive(Default)]
struct Influx {
    /// False until "the init" has made the org and bucket.
    ready: AtomicBool,
    next: AtomicUsize,
    posts: AtomicUsize,
    authorizations: Mutex<Vec<Value>>,
}

type S = State<Arc<Influx>>;
type Answer = (StatusCode, String);

fn answer(status: StatusCode, v: Value) -> Answer {
    (status, v.to_string())
}

fn error(status: StatusCode, code: &str, message: &str) -> Answer {
    answer(status, json!({"code": code, "message": message}))
}

fn not_found(what: &str) -> Answer {
    error(
        StatusCode::NOT_FOUND,
        "not found",
        &format!("{what} not found"),
    )
}

fn authorized(headers: &HeaderMap) -> Result<(), Answer> {
    if authorization(headers) == Some(&format!("Token {ADMIN}")) {
        Ok(())
    } else {
        Err(error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "unauthorized access",
        ))
    }
}

async fn orgs(State(s): S, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Answer {
    if let Err(e) = authorized(&headers) {
        return e;
    }
    if !s.ready.load(Ordering::SeqCst) || q.get("org").map(String::as_str) != Some(ORG) {
        return not_found("organization");
    }
    answer(
        StatusCode::OK,
        json!({"links": {}, "orgs": [{"id": ORG_ID, "name": ORG}]}),
    )
}

async fn buckets(
    State(s): S,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Answer {
    if let Err(e) = authorized(&headers) {
        return e;
    }
    let found = s.ready.load(Ordering::SeqCst)
        && q.get("orgID").map(String::as_str) == Some(ORG_ID)
        && q.get("name").map(String::as_str) == Some(BUCKET);
    let list: Vec<Value> = if found {
        vec![json!({"id": BUCKET_ID, "name": BUCKET, "orgID": ORG_ID, "retentionRules": []})]
    } else {
        vec![]
    };
    answer(StatusCode::OK, json!({"buckets": list}))
}

async fn list_authorizations(
    State(s): S,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Answer {
    if let Err(e) = authorized(&headers) {
        return e;
    }
    let all = s.authorizations.lock().unwrap().clone();
    let list: Vec<Value> = all
        .into_iter()
        .filter(|a| q.get("orgID").is_none_or(|o| a["orgID"] == *o))
        .collect();
    answer(StatusCode::OK, json!({"authorizations": list}))
}

async fn create_authorization(State(s): S, headers: HeaderMap, body: String) -> Answer {
    if let Err(e) = authorized(&headers) {
        return e;
    }
    let req: Value = serde_json::from_str(&body).unwrap_or_default();
    let permissions = req["permissions"].as_array().cloned().unwrap_or_default();
    let known_resource = |p: &Value| match p["resource"]["type"].as_str() {
        Some("buckets") => p["resource"]["id"] == BUCKET_ID,
        Some("orgs") => p["resource"]["id"] == ORG_ID,
        _ => false,
    };
    if req["orgID"] != ORG_ID || permissions.is_empty() || !permissions.iter().all(known_resource) {
        return error(StatusCode::BAD_REQUEST, "invalid", "invalid permissions");
    }
    s.posts.fetch_add(1, Ordering::SeqCst);
    let n = s.next.fetch_add(1, Ordering::SeqCst);
    let auth = json!({
        "id": format!("auth{n:04}"),
        "token": format!("token-{n}-{}", "x".repeat(40)),
        "status": req["status"].as_str().unwrap_or("active"),
        "description": req["description"],
        "orgID": ORG_ID,
        "org": ORG,
        "permissions": permissions,
    });
    s.authorizations.lock().unwrap().push(auth.clone());
    answer(StatusCode::CREATED, auth)
}

async fn get_authorization(State(s): S, headers: HeaderMap, Path(id): Path<String>) -> Answer {
    if let Err(e) = authorized(&headers) {
        return e;
    }
    match s
        .authorizations
        .lock()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id.as_str())
    {
        Some(a) => answer(StatusCode::OK, a.clone()),
        None => not_found("authorization"),
    }
}

async fn delete_authorization(State(s): S, headers: HeaderMap, Path(id): Path<String>) -> Answer {
    if let Err(e) = authorized(&headers) {
        return e;
    }
    let mut all = s.authorizations.lock().unwrap();
    let before = all.len();
    all.retain(|a| a["id"] != id.as_str());
    if all.len() == before {
        return not_found("authorization");
    }
    (StatusCode::NO_CONTENT, String::new())
}

struct StandIn {
    server: Served,
    state: Arc<Influx>,
}

impl StandIn {
    async fn start(ready: bool) -> Self {
        let state = Arc::new(Influx::default());
        state.ready.store(ready, Ordering::SeqCst);
        // InfluxDB's init makes an all-access token for the admin; it must survive.
        state.authorizations.lock().unwrap().push(json!({
            "id": "admin-auth", "token": ADMIN, "status": "active",
            "description": "admin's Token", "orgID": ORG_ID, "permissions": [],
        }));
        let app = Router::new()
            .route("/api/v2/orgs", get(orgs))
            .route("/api/v2/buckets", get(buckets))
            .route(
                "/api/v2/authorizations",
                get(list_authorizations).post(create_authorization),
            )
            .route(
                "/api/v2/authorizations/{id}",
                get(get_authorization).delete(delete_authorization),
            )
            .with_state(state.clone());
        Self {
            server: Served::on_free_port(app).await,
            state,
        }
    }

    fn admin(&self, token: &str) -> TokenAdmin {
        TokenAdmin::new(&self.server.url(), token, ORG, BUCKET).unwrap()
    }

    fn authorization(&self, id: &str) -> Option<Value> {
        self.state
            .authorizations
            .lock()
            .unwrap()
            .iter()
            .find(|a| a["id"] == id)
            .cloned()
    }

    fn ids(&self) -> Vec<String> {
        self.state
            .authorizations
            .lock()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn actions(auth: &Value) -> Vec<(String, String, String)> {
    let mut v: Vec<(String, String, String)> = auth["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["action"].as_str().unwrap().to_owned(),
                p["resource"]["type"].as_str().unwrap().to_owned(),
                p["resource"]["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    v.sort();
    v
}

fn perm(action: &str, kind: &str, id: &str) -> (String, String, String) {
    (action.into(), kind.into(), id.into())
}

#[tokio::test]
async fn makes_a_write_token_and_a_read_token_for_the_bucket_only() {
    let influx = StandIn::start(true).await;
    let done = influx.admin(ADMIN).ensure(None).await.unwrap();
    assert!(done.created);
    let ScopedTokens { write, read } = &done.tokens;
    assert_ne!(write.token, read.token);
    assert_ne!(write.token, ADMIN);

    let w = influx.authorization(&write.id).unwrap();
    assert_eq!(w["token"], write.token.as_str());
    assert_eq!(w["description"], write_description(BUCKET).as_str());
    assert_eq!(
        actions(&w),
        [
            perm("read", "orgs", ORG_ID),
            perm("write", "buckets", BUCKET_ID)
        ],
        "the ingest's token writes the bucket and cannot read it"
    );
    let r = influx.authorization(&read.id).unwrap();
    assert_eq!(r["description"], read_description(BUCKET).as_str());
    assert_eq!(
        actions(&r),
        [
            perm("read", "buckets", BUCKET_ID),
            perm("read", "orgs", ORG_ID)
        ],
        "the query token only reads"
    );
    assert!(influx.authorization("admin-auth").is_some());
}

#[tokio::test]
async fn keeps_live_tokens_and_replaces_lost_ones() {
    let influx = StandIn::start(true).await;
    let admin = influx.admin(ADMIN);
    let first = admin.ensure(None).await.unwrap().tokens;
    assert_eq!(influx.state.posts.load(Ordering::SeqCst), 2);

    let again = admin.ensure(Some(&first)).await.unwrap();
    assert!(!again.created);
    assert_eq!(again.tokens, first);
    assert_eq!(influx.state.posts.load(Ordering::SeqCst), 2, "nothing new");

    // Someone revokes the read token in InfluxDB's UI: both are made again, and the orphaned
    // write token is deleted rather than left behind.
    influx
        .state
        .authorizations
        .lock()
        .unwrap()
        .retain(|a| a["id"] != first.read.id.as_str());
    let replaced = admin.ensure(Some(&first)).await.unwrap();
    assert!(replaced.created);
    assert_eq!(replaced.deleted, 1);
    assert_ne!(replaced.tokens.write, first.write);
    let mut ids = influx.ids();
    ids.sort();
    let mut expected = vec![
        "admin-auth".to_owned(),
        replaced.tokens.write.id.clone(),
        replaced.tokens.read.id.clone(),
    ];
    expected.sort();
    assert_eq!(ids, expected);

    // A tokens file from another InfluxDB (ids unknown here) is replaced as well.
    let foreign = ScopedTokens {
        write: ogm_store_influx::tokens::ScopedToken {
            id: "zzz".into(),
            token: "t".into(),
        },
        read: replaced.tokens.read.clone(),
    };
    assert!(admin.ensure(Some(&foreign)).await.unwrap().created);
    assert_eq!(influx.ids().len(), 3);
}

#[tokio::test]
async fn waits_for_influxdb_to_finish_its_init() {
    let influx = StandIn::start(false).await;
    let state = influx.state.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(600)).await;
        state.ready.store(true, Ordering::SeqCst);
    });
    let admin = influx.admin(ADMIN);
    let e = admin.ensure(None).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    let done = admin
        .ensure_waiting(None, Duration::from_secs(20))
        .await
        .unwrap();
    assert!(done.created);

    // Nothing listening: retried until the wait is over, then a clear error.
    let gone = TokenAdmin::new(&format!("http://{}", free_addr()), ADMIN, ORG, BUCKET).unwrap();
    let started = Instant::now();
    let e = gone
        .ensure_waiting(None, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(matches!(e, TokenError::NotReady(_)), "{e}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_wrong_admin_token_fails_at_once() {
    let influx = StandIn::start(true).await;
    let started = Instant::now();
    let e = influx
        .admin("not-the-admin-token")
        .ensure_waiting(None, Duration::from_secs(30))
        .await
        .unwrap_err();
    assert!(matches!(e, TokenError::Unauthorized(_)), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "not retried: {:?}",
        started.elapsed()
    );
    assert_eq!(influx.ids(), ["admin-auth"]);
}
