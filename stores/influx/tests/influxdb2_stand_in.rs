//! `InfluxStore` against an in-process HTTP stand-in for InfluxDB 2 (axum on 127.0.0.1). This is
//! NOT a real InfluxDB 2: it records what the store sends and answers with canned responses in
//! InfluxDB 2's documented formats (annotated CSV with `#datatype`/`#group`/`#default`, JSON
//! errors, 204 for writes). The line protocol itself is checked against a real influxd in
//! `real_influxd_1_6.rs`. `POST /api/v2/query/ast` is answered by the real Flux parser
//! (libflux as WebAssembly: `support/flux_parser.rs`), as InfluxDB answers it.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ogm_protocol::{DeviceId, LogEntry, LogLevel, Measurement, Payload};
use ogm_store::{
    EventQuery, ExportQuery, Field, HistoryQuery, LogQuery, Record, Store, StoreError, StoredEvent,
};
use ogm_store_influx::annotated_csv::{self, CsvError};
use ogm_store_influx::{FluxLimits, InfluxConfig, InfluxStore};
use support::{Served, authorization, flux_parser, free_addr};

const T0: i64 = 1_703_123_456_789_123;
const HOST: &str = "stand-in-host";

type Responder = Box<dyn Fn(&str) -> (u16, String) + Send + Sync>;

#[derive(Debug, Clone)]
struct WriteRequest {
    params: HashMap<String, String>,
    auth: Option<String>,
    body: String,
}

/// A `POST /api/v2/delete`: query parameters, Authorization, body.
type DeleteRequest = (HashMap<String, String>, Option<String>, serde_json::Value);

#[derive(Debug, Clone)]
struct QueryRequest {
    params: HashMap<String, String>,
    auth: Option<String>,
    json: serde_json::Value,
}

impl QueryRequest {
    fn flux(&self) -> &str {
        self.json["query"].as_str().unwrap_or_default()
    }
}

/// How `/api/v2/query` answers: at once, never, or with the answer and then nothing more.
const ANSWER: u8 = 0;
const STALL_BEFORE_ANSWER: u8 = 1;
const STALL_AFTER_ANSWER: u8 = 2;

struct StandInState {
    write_status: AtomicU16,
    health_status: AtomicU16,
    write_attempts: AtomicUsize,
    /// Writes answered 204.
    accepted: Mutex<Vec<WriteRequest>>,
    queries: Mutex<Vec<QueryRequest>>,
    /// `POST /api/v2/query/ast` requests: (Authorization, query).
    parsed: Mutex<Vec<(Option<String>, String)>>,
    responder: Mutex<Responder>,
    /// `POST /api/v2/delete` requests: (query parameters, Authorization, body).
    deleted: Mutex<Vec<DeleteRequest>>,
    stall: AtomicU8,
    /// A stalled answer's body was dropped: the client went away.
    stalled_answer_dropped: Arc<AtomicBool>,
}

/// The stand-in. Dropping it stops serving.
struct StandIn {
    server: Served,
    state: Arc<StandInState>,
}

fn auth(headers: &HeaderMap) -> Option<String> {
    authorization(headers).map(str::to_owned)
}

async fn write_route(
    State(s): State<Arc<StandInState>>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    s.write_attempts.fetch_add(1, Ordering::SeqCst);
    let status = s.write_status.load(Ordering::SeqCst);
    if status == 204 {
        s.accepted.lock().unwrap().push(WriteRequest {
            params,
            auth: auth(&headers),
            body,
        });
        return (StatusCode::NO_CONTENT, String::new());
    }
    let code = if status == 400 {
        "invalid"
    } else {
        "unavailable"
    };
    (
        StatusCode::from_u16(status).unwrap(),
        format!(r#"{{"code":"{code}","message":"stand-in says {status}"}}"#),
    )
}

/// Sets a flag when dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

async fn query_route(
    State(s): State<Arc<StandInState>>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let request = QueryRequest {
        params,
        auth: auth(&headers),
        json,
    };
    let flux = request.flux().to_owned();
    s.queries.lock().unwrap().push(request);
    let (status, text) = (s.responder.lock().unwrap())(&flux);
    let content_type = if status == 200 {
        "text/csv; charset=utf-8"
    } else {
        "application/json; charset=utf-8"
    };
    let status = StatusCode::from_u16(status).unwrap();
    match s.stall.load(Ordering::SeqCst) {
        STALL_BEFORE_ANSWER => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            status.into_response()
        }
        STALL_AFTER_ANSWER => {
            let flag = DropFlag(s.stalled_answer_dropped.clone());
            let stream = futures_util::stream::unfold((Some(text), flag), |(text, flag)| async {
                match text {
                    Some(t) => Some((Ok::<_, std::io::Error>(t), (None, flag))),
                    None => std::future::pending().await,
                }
            });
            let mut res = Body::from_stream(stream).into_response();
            *res.status_mut() = status;
            res.headers_mut()
                .insert(header::CONTENT_TYPE, content_type.parse().unwrap());
            res
        }
        _ => (status, [(header::CONTENT_TYPE, content_type)], text).into_response(),
    }
}

/// `POST /api/v2/query/ast`, answered by the real Flux parser as InfluxDB answers it.
async fn ast_route(
    State(s): State<Arc<StandInState>>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let query = json["query"].as_str().unwrap_or_default().to_owned();
    s.parsed
        .lock()
        .unwrap()
        .push((auth(&headers), query.clone()));
    let parsed = tokio::task::spawn_blocking(move || flux_parser::parse_text(&query))
        .await
        .unwrap();
    match parsed {
        Ok(ast) => (StatusCode::OK, ast),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            serde_json::json!({"code": "invalid", "message": format!("invalid AST: {e}")})
                .to_string(),
        ),
    }
}

async fn delete_route(
    State(s): State<Arc<StandInState>>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let json = serde_json::from_str(&body).unwrap_or_default();
    s.deleted
        .lock()
        .unwrap()
        .push((params, auth(&headers), json));
    StatusCode::NO_CONTENT
}

async fn health_route(State(s): State<Arc<StandInState>>) -> (StatusCode, String) {
    let status = s.health_status.load(Ordering::SeqCst);
    let word = if status == 200 { "pass" } else { "fail" };
    (
        StatusCode::from_u16(status).unwrap(),
        format!(r#"{{"name":"influxdb","message":"stand-in","status":"{word}","checks":[]}}"#),
    )
}

impl StandIn {
    async fn start() -> Self {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    async fn start_on(addr: SocketAddr) -> Self {
        let state = Arc::new(StandInState {
            write_status: AtomicU16::new(204),
            health_status: AtomicU16::new(200),
            write_attempts: AtomicUsize::new(0),
            accepted: Mutex::new(Vec::new()),
            queries: Mutex::new(Vec::new()),
            parsed: Mutex::new(Vec::new()),
            responder: Mutex::new(Box::new(|_| (200, String::new()))),
            deleted: Mutex::new(Vec::new()),
            stall: AtomicU8::new(ANSWER),
            stalled_answer_dropped: Arc::default(),
        });
        let app = Router::new()
            .route("/api/v2/write", post(write_route))
            .route("/api/v2/query", post(query_route))
            .route("/api/v2/query/ast", post(ast_route))
            .route("/api/v2/delete", post(delete_route))
            .route("/health", get(health_route))
            .with_state(state.clone());
        Self {
            server: Served::start(addr, app).await,
            state,
        }
    }

    fn url(&self) -> String {
        self.server.url()
    }

    fn set_write_status(&self, status: u16) {
        self.state.write_status.store(status, Ordering::SeqCst);
    }

    fn respond(&self, f: impl Fn(&str) -> (u16, String) + Send + Sync + 'static) {
        *self.state.responder.lock().unwrap() = Box::new(f);
    }

    fn accepted(&self) -> Vec<WriteRequest> {
        self.state.accepted.lock().unwrap().clone()
    }

    fn queries(&self) -> Vec<QueryRequest> {
        self.state.queries.lock().unwrap().clone()
    }

    fn parsed(&self) -> Vec<(Option<String>, String)> {
        self.state.parsed.lock().unwrap().clone()
    }
}

fn config(url: &str, spool_dir: &Path) -> InfluxConfig {
    InfluxConfig {
        url: url.to_owned(),
        token: "write-token".into(),
        read_token: Some("read-token".into()),
        org: "grid org".into(),
        bucket: "open_grid_monitor".into(),
        host: HOST.into(),
        spool_dir: spool_dir.to_owned(),
        spool_max_bytes: 1024 * 1024,
        flux: FluxLimits::default(),
    }
}

fn device() -> DeviceId {
    DeviceId::new("esp-1").unwrap()
}

/// Batch `n`: two measurements with timestamps of their own.
fn batch(n: i64) -> Vec<Record> {
    (0..2)
        .map(|i| Record {
            device_id: device(),
            payload: Payload::Measurement(Measurement {
                timestamp: T0 + n * 10 + i,
                frequency: 50.0 + n as f64 / 1000.0,
                voltage: 230.0,
                current: 1.0,
                power: 230.0,
            }),
        })
        .collect()
}

fn encoded(batches: impl IntoIterator<Item = i64>) -> String {
    let mut out = String::new();
    for n in batches {
        ogm_store_influx::encode(&batch(n), HOST, &mut out);
    }
    out
}

/// Spooled batch files (not counting `rejected/`).
fn spool_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".lp"))
        .count()
}

async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_go_through_influxdb2_client_in_the_seed_schema_influxdb2_stand_in() {
    let s = StandIn::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = InfluxStore::open(config(&s.url(), dir.path())).unwrap();
    let mut records = batch(0);
    records.push(Record {
        device_id: device(),
        payload: Payload::Logs(LogEntry {
            timestamp: T0,
            level: LogLevel::Info,
            message: "multi\nline \"quoted\"".into(),
            module: "ade7953".into(),
        }),
    });
    let outcome = store.write(records.clone()).await.unwrap();
    assert_eq!((outcome.stored, outcome.duplicates), (3, 0));
    assert!(store.write(Vec::new()).await.is_ok());
    let accepted = s.accepted();
    assert_eq!(
        accepted.len(),
        1,
        "one request per batch, none for an empty one"
    );
    let w = &accepted[0];
    assert_eq!(w.params["bucket"], "open_grid_monitor");
    assert_eq!(w.params["org"], "grid org");
    assert_eq!(w.params["precision"], "us");
    assert_eq!(w.auth.as_deref(), Some("Token write-token"));
    let mut expected = String::new();
    ogm_store_influx::encode(&records, HOST, &mut expected);
    assert_eq!(w.body, expected);
    assert!(w.body.starts_with(
        "grid_data,device_id=esp-1,host=stand-in-host,source=mqtt frequency=50,voltage=230,current=1,power=230 1703123456789123\n"
    ));
    assert_eq!(
        spool_files(dir.path()),
        0,
        "nothing spooled while InfluxDB answers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spool_keeps_batches_while_down_and_replays_them_in_order_exactly_once_influxdb2_stand_in()
{
    let dir = tempfile::tempdir().unwrap();
    // Phase 1: nothing listens on the port.
    let addr = free_addr();
    let store = InfluxStore::open(config(&format!("http://{addr}"), dir.path())).unwrap();
    for n in 0..3 {
        let outcome = store
            .write(batch(n))
            .await
            .expect("write succeeds while down");
        assert_eq!(outcome.stored, 2);
    }
    assert_eq!(
        spool_files(dir.path()),
        3,
        "each batch is a file in spool_dir"
    );
    assert_eq!(store.spooled_batches().await, 3);

    // Phase 2: InfluxDB answers 503.
    let s = StandIn::start_on(addr).await;
    s.set_write_status(503);
    for n in 3..5 {
        store.write(batch(n)).await.expect("write succeeds on 503");
    }
    wait_for("a replay attempt", || {
        s.state.write_attempts.load(Ordering::SeqCst) > 0
    })
    .await;
    assert_eq!(spool_files(dir.path()), 5);
    assert!(s.accepted().is_empty());

    // A restart while spooled: the next store replays what the last one left.
    drop(store);
    let store = InfluxStore::open(config(&s.url(), dir.path())).unwrap();
    store.write(batch(5)).await.unwrap();
    assert_eq!(
        spool_files(dir.path()),
        6,
        "order: behind a non-empty spool, new batches are spooled too"
    );

    // Phase 3: InfluxDB recovers.
    s.set_write_status(204);
    wait_for("the spool to drain", || spool_files(dir.path()) == 0).await;
    assert_eq!(store.spooled_batches().await, 0);
    store.write(batch(6)).await.unwrap();
    assert_eq!(
        spool_files(dir.path()),
        0,
        "an empty spool means direct writes again"
    );

    let received: String = s.accepted().iter().map(|w| w.body.as_str()).collect();
    assert_eq!(
        received,
        encoded(0..7),
        "every batch arrived, in order, exactly once"
    );
    for w in s.accepted() {
        assert_eq!(w.params["precision"], "us");
        assert_eq!(w.auth.as_deref(), Some("Token write-token"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_makes_write_fail_unavailable_influxdb2_stand_in() {
    let s = StandIn::start().await;
    s.set_write_status(503);
    let dir = tempfile::tempdir().unwrap();
    let two_batches = encoded(0..2).len() as u64;
    let store = InfluxStore::open(InfluxConfig {
        spool_max_bytes: two_batches,
        ..config(&s.url(), dir.path())
    })
    .unwrap();
    store.write(batch(0)).await.unwrap();
    store.write(batch(1)).await.unwrap();
    match store.write(batch(2)).await {
        Err(StoreError::Unavailable(m)) => assert!(m.contains("spool is full"), "{m}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert_eq!(spool_files(dir.path()), 2);
    // The ingest retries the refused batch; once InfluxDB is back it goes through, in order.
    s.set_write_status(204);
    wait_for("the spool to drain", || spool_files(dir.path()) == 0).await;
    store.write(batch(2)).await.unwrap();
    let received: String = s.accepted().iter().map(|w| w.body.as_str()).collect();
    assert_eq!(received, encoded(0..3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_batches_are_kept_aside_not_retried_forever_influxdb2_stand_in() {
    let s = StandIn::start().await;
    s.set_write_status(400);
    let dir = tempfile::tempdir().unwrap();
    let store = InfluxStore::open(config(&s.url(), dir.path())).unwrap();
    let outcome = store.write(batch(0)).await.unwrap();
    assert_eq!(outcome.stored, 0, "InfluxDB refused it");
    let rejected: Vec<_> = std::fs::read_dir(dir.path().join(ogm_store_influx::REJECTED_DIR))
        .unwrap()
        .filter_map(Result::ok)
        .collect();
    assert_eq!(rejected.len(), 1);
    assert_eq!(
        std::fs::read_to_string(rejected[0].path()).unwrap(),
        encoded([0])
    );
    assert_eq!(spool_files(dir.path()), 0, "nothing blocks the spool");
    s.set_write_status(204);
    store.write(batch(1)).await.unwrap();
    assert_eq!(s.accepted().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_follows_health_influxdb2_stand_in() {
    let s = StandIn::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = InfluxStore::open(config(&s.url(), dir.path())).unwrap();
    assert!(store.healthy().await);
    s.state.health_status.store(503, Ordering::SeqCst);
    assert!(!store.healthy().await);
    let other_dir = tempfile::tempdir().unwrap();
    let down =
        InfluxStore::open(config(&format!("http://{}", free_addr()), other_dir.path())).unwrap();
    assert!(!down.healthy().await);
}

/// An annotated CSV answer of one table with `_time` and `_value` (InfluxDB 2's layout).
fn csv_answer(result: &str, value_type: &str, rows: &[(String, String)]) -> String {
    let mut out = format!(
        "#datatype,string,long,dateTime:RFC3339,{value_type}\r\n#group,false,false,false,false\r\n#default,{result},,,\r\n,result,table,_time,_value\r\n"
    );
    for (t, v) in rows {
        out.push_str(&format!(",,0,{t},{v}\r\n"));
    }
    out.push_str("\r\n");
    out
}

fn history_query(max_points: u32) -> HistoryQuery {
    // 2023-12-21T00:00:00Z, for an hour.
    HistoryQuery::new(
        device(),
        Field::Frequency,
        1_703_116_800_000_000,
        1_703_120_400_000_000,
        max_points,
    )
    .expect("a valid history query")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_reads_raw_points_when_they_fit_influxdb2_stand_in() {
    let s = StandIn::start().await;
    s.respond(|flux| {
        if flux.contains("|> count()") {
            (
                200,
                csv_answer(
                    "_result",
                    "long",
                    &[("2023-12-21T01:00:00Z".into(), "3".into())],
                ),
            )
        } else {
            (
                200,
                csv_answer(
                    "_result",
                    "double",
                    &[
                        ("2023-12-21T00:00:01.000001Z".into(), "49.99".into()),
                        ("2023-12-21T00:00:02Z".into(), "50".into()),
                        ("2023-12-21T00:00:03Z".into(), "50.01".into()),
                    ],
                ),
            )
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let store = InfluxStore::open(config(&s.url(), dir.path())).unwrap();
    let h = store.history(history_query(1000)).await.unwrap();
    assert_eq!(h.interval_us, 0);
    let points: Vec<(i64, f64, u64)> = h.points.iter().map(|b| (b.t, b.mean, b.count)).collect();
    assert_eq!(
        points,
        [
            (1_703_116_801_000_001, 49.99, 1),
            (1_703_116_802_000_000, 50.0, 1),
            (1_703_116_803_000_000, 50.01, 1)
        ]
    );
    let q = s.queries();
    assert_eq!(q.len(), 2, "a count, then the raw points");
    assert_eq!(q[0].params["org"], "grid org");
    assert_eq!(q[0].auth.as_deref(), Some("Token read-token"));
    assert_eq!(q[0].json["type"], "flux");
    assert_eq!(
        q[0].json["dialect"]["annotations"],
        serde_json::json!(["datatype", "group", "default"])
    );
    assert!(q[0].flux().contains(
        "r._measurement == \"grid_data\" and r._field == \"frequency\" and r.device_id == \"esp-1\""
    ));
    assert!(q[1].flux().contains("limit(n: 1000)"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_aggregates_min_mean_max_count_influxdb2_stand_in() {
    let s = StandIn::start().await;
    s.respond(|flux| {
        if !flux.contains("aggregateWindow") {
            return (
                200,
                csv_answer(
                    "_result",
                    "long",
                    &[("2023-12-21T01:00:00Z".into(), "36000".into())],
                ),
            );
        }
        // Four results, as four yields produce them; the first window starts at the range
        // start, the second 4 s later.
        let mut out = String::new();
        for (name, ty, a, b) in [
            ("min", "double", "49.9", "49.8"),
            ("mean", "double", "50", "49.95"),
            ("max", "double", "50.1", "50.2"),
            ("count", "long", "40", "40"),
        ] {
            out.push_str(&csv_answer(
                name,
                ty,
                &[
                    ("2023-12-21T00:00:00Z".into(), a.into()),
                    ("2023-12-21T00:00:04Z".into(), b.into()),
                ],
            ));
        }
        (200, out)
    });
    let dir = tempfile::tempdir().unwrap();
    let store = InfluxStore::open(config(&s.url(), dir.path())).unwrap();
    let h = store.history(history_query(1000)).await.unwrap();
    assert_eq!(
        h.interval_us, 4_000_000,
        "bucket_interval_us for 36000 points in 1 h"
    );
    assert_eq!(h.points.len(), 2);
    let b = h.points[1];
    assert_eq!(
        (b.t, b.min, b.mean, b.max, b.count),
        (1_703_116_804_000_000, 49.8, 49.95, 50.2, 40)
    );
    let flux = s.queries()[1].flux().to_owned();
    for f in ["min", "mean", "max", "count"] {
        assert!(
            flux.contains(&format!(
                "aggregateWindow(every: 4000000us, fn: {f}, createEmpty: false"
            )),
            "{flux}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_answers_are_errors_not_panics_influxdb2_stand_in() {
    let s = StandIn::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = InfluxStore::open(config(&s.url(), dir.path())).unwrap();
    let answers: Vec<(u16, String)> = vec![
        (
            200,
            "#datatype,string,string\r\n#group,true,true\r\n#default,,\r\n,error,reference\r\n,\"panic: runtime error\",\r\n\r\n".into(),
        ),
        (200, "<html>proxy error</html>\n,\"unterminated".into()),
        (200, ",result,table,_value\r\n,,0\r\n".into()),
        (500, r#"{"code":"internal error","message":"boom"}"#.into()),
        (401, r#"{"code":"unauthorized","message":"unauthorized access"}"#.into()),
    ];
    for (status, body) in answers {
        let body2 = body.clone();
        s.respond(move |_| (status, body2.clone()));
        let err = store.history(history_query(10)).await.expect_err(&body);
        match (status, &err) {
            (500, StoreError::Unavailable(_)) => {}
            (401, StoreError::Backend(m)) => assert!(m.contains("read token"), "{m}"),
            (200, StoreError::Backend(_)) => {}
            _ => panic!("{status} {body:?} gave {err:?}"),
        }
    }
    // An empty answer is no data.
    s.respond(|_| (200, String::new()));
    let h = store.history(history_query(10)).await.unwrap();
    assert!(h.points.is_empty());
    assert!(store.logs(log_query()).await.unwrap().is_empty());
    assert!(store.devices().await.unwrap().is_empty());
}

fn log_query() -> LogQuery {
    LogQuery {
        device_id: Some(device()),
        min_level: Some(LogLevel::Warn),
        start_us: 0,
        stop_us: T0 * 2,
        limit: 10,
        max_bytes: usize::MAX,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_and_devices_influxdb2_stand_in() {
    let s = StandIn::start().await;
    s.respond(|flux| {
        if flux.contains("device_logs\" and r.device_id") {
            return (
                200,
                "#datatype,string,long,dateTime:RFC3339,string,string,string,string\r\n\
                 #group,false,false,false,true,false,false,false\r\n\
                 #default,_result,,,,,,\r\n\
                 ,result,table,_time,device_id,level,message,module\r\n\
                 ,,0,2023-12-21T01:50:57Z,esp-1,ERROR,\"brown-out, \"\"reset\"\"\nat 0x40\",power\r\n\
                 ,,0,2023-12-21T01:50:56.789123Z,esp-1,WARN,low heap,main\r\n\r\n"
                    .into(),
            );
        }
        // devices(): last() per series; two hosts wrote esp-1, the newer wins.
        let head = "#datatype,string,long,dateTime:RFC3339,double,string,string,string\r\n\
                    #group,false,false,false,false,true,true,true\r\n\
                    #default,_result,,,,,,\r\n\
                    ,result,table,_time,_value,_field,_measurement,device_id\r\n";
        let mut out = String::from(head);
        for (table, (t, f, v)) in [
            ("2023-12-21T01:00:00Z", "frequency", "50.01"),
            ("2023-12-21T01:00:00Z", "voltage", "230.1"),
            ("2023-12-21T01:00:00Z", "current", "1.5"),
            ("2023-12-21T01:00:00Z", "power", "345"),
            ("2023-12-21T00:00:00Z", "frequency", "49"),
        ]
        .into_iter()
        .enumerate()
        {
            out.push_str(&format!(",,{table},{t},{v},{f},grid_data,esp-1\r\n"));
        }
        out.push_str("\r\n");
        out.push_str(&head.replace(",double,", ",long,"));
        out.push_str(",,0,2023-12-21T01:00:05Z,-45,rssi,device_status,esp-1\r\n");
        out.push_str(",,1,2023-12-21T01:00:05Z,234567,free_heap,device_status,esp-1\r\n");
        out.push_str(",,2,2023-12-21T01:00:05Z,-70,rssi,device_status,esp-2\r\n");
        out.push_str(",,3,2023-12-21T01:00:05Z,1000,free_heap,device_status,esp-2\r\n\r\n");
        out.push_str(&head.replace(",double,", ",bool,"));
        out.push_str(",,0,2023-12-21T01:00:05Z,false,online,device_status,esp-2\r\n\r\n");
        (200, out)
    });
    let dir = tempfile::tempdir().unwrap();
    let store = InfluxStore::open(config(&s.url(), dir.path())).unwrap();

    let logs = store.logs(log_query()).await.unwrap();
    assert_eq!(logs.len(), 2);
    assert_eq!(logs[0].level, LogLevel::Error);
    assert_eq!(logs[0].message, "brown-out, \"reset\"\nat 0x40");
    assert_eq!(logs[1].t, T0);
    let flux = s.queries()[0].flux().to_owned();
    assert!(
        flux.contains("set: [\"WARN\", \"WARNING\", \"ERROR\", \"ERR\"]"),
        "{flux}"
    );
    assert!(flux.contains("limit(n: 10)"));

    let devices = store.devices().await.unwrap();
    assert_eq!(devices.len(), 2);
    let esp1 = &devices[0];
    assert_eq!(esp1.device_id.as_str(), "esp-1");
    let m = esp1.last_measurement.unwrap();
    assert_eq!((m.frequency, m.voltage, m.power), (50.01, 230.1, 345.0));
    let st = esp1.last_status.as_ref().unwrap();
    assert_eq!((st.rssi, st.free_heap), (-45, 234_567));
    assert_eq!(esp1.last_seen, 1_703_120_405_000_000);
    let esp2 = &devices[1];
    assert_eq!(esp2.last_status.as_ref().unwrap().online, Some(false));
    assert!(esp2.last_measurement.is_none());
    assert!(s.queries()[1].flux().contains("range(start: -30d)"));
}

/// Parses `range(start: <RFC 3339>` out of a query, in ns.
fn range_start_ns(flux: &str) -> i64 {
    let rest = &flux[flux.find("range(start: ").unwrap() + 13..];
    let t = &rest[..rest.find(',').unwrap()];
    chrono::DateTime::parse_from_rfc3339(t)
        .unwrap()
        .timestamp_nanos_opt()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_streams_every_point_once_across_pages_influxdb2_stand_in() {
    const POINTS: i64 = 7_000;
    const PAGE: usize = 5_000; // the store's page size: at most this many rows per table
    let base_ns = 1_703_116_800_000_000_000i64;
    let s = StandIn::start().await;
    s.respond(move |flux| {
        let start = range_start_ns(flux);
        let mut out = String::from(
            "#datatype,string,long,dateTime:RFC3339,double,string,string,string\r\n\
             #group,false,false,false,false,true,true,true\r\n\
             #default,_result,,,,,,\r\n\
             ,result,table,_time,_value,_field,_measurement,host\r\n",
        );
        for (table, field) in ["frequency", "voltage", "current", "power"]
            .iter()
            .enumerate()
        {
            let rows = (0..POINTS)
                .map(|i| base_ns + i * 1_000_000_000)
                .filter(|t| *t >= start)
                .take(PAGE);
            for t in rows {
                let secs = t / 1_000_000_000;
                let v = (t - base_ns) / 1_000_000_000;
                let time = chrono::DateTime::from_timestamp(secs, 0)
                    .unwrap()
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                out.push_str(&format!(",,{table},{time},{v},{field},grid_data,h\r\n"));
            }
        }
        (200, out)
    });
    let dir = tempfile::tempdir().unwrap();
    let store = InfluxStore::open(config(&s.url(), dir.path())).unwrap();
    let mut rx = store
        .export(ExportQuery {
            device_id: device(),
            start_us: base_ns / 1_000,
            stop_us: base_ns / 1_000 + 24 * 3_600_000_000,
        })
        .await
        .unwrap();
    let mut all: Vec<Measurement> = Vec::new();
    let mut chunks = 0;
    while let Some(chunk) = rx.recv().await {
        all.extend(chunk.unwrap());
        chunks += 1;
    }
    assert_eq!(all.len(), POINTS as usize, "every point, once");
    for (i, m) in all.iter().enumerate() {
        assert_eq!(
            m.timestamp,
            base_ns / 1_000 + i as i64 * 1_000_000,
            "in order"
        );
        assert_eq!(m.frequency, i as f64);
        assert_eq!(m.power, i as f64);
    }
    assert_eq!(chunks, 2);
    assert_eq!(s.queries().len(), 2, "two pages");
    assert!(s.queries()[0].flux().contains("limit(n: 5000)"));
}

/// Everything a proxied answer streams, as text.
async fn collect(mut rx: ogm_store::FluxStream) -> String {
    let mut got = Vec::new();
    while let Some(chunk) = rx.recv().await {
        got.extend_from_slice(&chunk.unwrap());
    }
    String::from_utf8(got).unwrap()
}

/// `n` rows of one table, each about 30 bytes.
fn big_answer(n: usize) -> String {
    let rows: String = (0..n)
        .map(|i| format!(",,0,2023-12-21T00:00:00Z,{i}.5\r\n"))
        .collect();
    format!(
        "{}\r\n{rows}\r\n",
        csv_answer("_result", "double", &[]).trim_end()
    )
}

const READ: &str = r#"from(bucket: "open_grid_monitor") |> range(start: -1h)"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flux_proxy_checks_the_parse_then_streams_with_the_read_token_influxdb2_stand_in() {
    let s = StandIn::start().await;
    let body = big_answer(20_000);
    let expected = body.clone();
    s.respond(move |_| (200, body.clone()));
    let dir = tempfile::tempdir().unwrap();
    let store = InfluxStore::open(config(&s.url(), dir.path())).unwrap();
    let got = collect(store.flux(READ.to_owned()).await.unwrap()).await;
    assert_eq!(got, expected, "passed through unchanged");
    assert_eq!(
        s.parsed(),
        [(Some("Token read-token".to_owned()), READ.to_owned())],
        "parsed by InfluxDB first, with the read token"
    );
    let q = &s.queries()[0];
    assert_eq!(q.flux(), READ);
    assert_eq!(q.auth.as_deref(), Some("Token read-token"));

    // What InfluxDB cannot parse never runs; its parser's message reaches the user.
    match store
        .flux(r#"from(bucket: "open_grid_monitor") |> range(start: -1h"#.into())
        .await
    {
        Err(StoreError::Refused(m)) => assert!(
            m.starts_with("InfluxDB cannot parse the query: invalid AST: ") && m.contains("RPAREN"),
            "{m}"
        ),
        other => panic!("expected Refused, got {other:?}"),
    }
    // Nesting: the parser's own limit, then the depth the store reads a tree to (128).
    let parens = format!("x = {}1{}", "(".repeat(200), ")".repeat(200));
    let alternatives: String = (1..200).map(|i| format!(" or r.a == {i}")).collect();
    let chain = format!("{READ} |> filter(fn: (r) => r.a == 0{alternatives})");
    for (query, says) in [
        (
            parens,
            "InfluxDB cannot parse the query: invalid AST: Program is nested too deep",
        ),
        (chain, "Flux query refused: it is nested too deeply"),
    ] {
        match store.flux(query).await {
            Err(StoreError::Refused(m)) => assert!(m.contains(says), "{m}"),
            other => panic!("expected Refused, got {other:?}"),
        }
    }
    assert_eq!(s.queries().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flux_proxy_refuses_before_running_anything_influxdb2_stand_in() {
    let s = StandIn::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = InfluxStore::open(config(&s.url(), dir.path())).unwrap();
    // The ways around the old token-based guard (issue 13), and the plain ones.
    let refused = [
        "bucket=\"_monitoring\"\nfrom(bucket) |> range(start: -1h)",
        "bucket = \"open_grid_monitor\" host = \"http://elsewhere\" token = \"t\" org = \"o\"\n\
         from(bucket, host, token, org) |> range(start: -1h)",
        "f = (bucket=\"_tasks\") => from(bucket) |> range(start: -1h)\nf()",
        r#"import "experimental" experimental["t\x6f"](bucket: "x")"#,
        r#"from(bucket: "open_grid_monitor", "h\x6fst": "http://elsewhere:8086") |> range(start: -1h)"#,
        "from(bucket: \"open_grid_monitor\") |> range(start: -1h)\n  \
         |> filter(fn: (r) => r.a =~ /\"/)\n  |> to(bucket: \"other\") // \"",
        r#"from(bucket: "_monitoring") |> range(start: -1h)"#,
        "buckets()",
        r#"import "http" http.post(url: "http://example.com", data: bytes(v: "x"))"#,
        r#"import "influxdata/influxdb/v1" v1.databases()"#,
        r#"from(bucket: "open_grid_monitor")"#,
        r#"from(bucket: "open_grid_monitor") |> range(start: -1y)"#,
    ];
    for query in refused {
        match store.flux(query.into()).await {
            Err(StoreError::Refused(m)) => assert!(m.starts_with("Flux query refused: "), "{m}"),
            other => panic!("{query}: expected Refused, got {other:?}"),
        }
    }
    assert_eq!(
        s.parsed().len(),
        refused.len(),
        "each was parsed by InfluxDB"
    );
    assert!(s.queries().is_empty(), "none was run");
    match store.flux("x".repeat(16 * 1024 + 1)).await {
        Err(StoreError::Refused(m)) => assert!(m.contains("longer than"), "{m}"),
        other => panic!("expected Refused, got {other:?}"),
    }
    assert_eq!(
        s.parsed().len(),
        refused.len(),
        "too long to be worth parsing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flux_proxy_is_off_without_a_read_token_of_its_own_influxdb2_stand_in() {
    let s = StandIn::start().await;
    let dir = tempfile::tempdir().unwrap();
    for read_token in [None, Some("write-token".to_owned()), Some(String::new())] {
        let store = InfluxStore::open(InfluxConfig {
            read_token,
            ..config(&s.url(), dir.path())
        })
        .unwrap();
        match store.flux(READ.into()).await {
            Err(StoreError::Unavailable(m)) => {
                assert!(
                    m.contains("needs a read-only InfluxDB token of its own"),
                    "{m}"
                )
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
        // The store's own queries still run, with the write token, as before.
        assert!(store.devices().await.unwrap().is_empty());
    }
    assert!(s.parsed().is_empty(), "InfluxDB never saw a proxied query");
    assert!(
        s.queries()
            .iter()
            .all(|q| !q.flux().contains("range(start: -1h)"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flux_proxy_cuts_a_large_answer_at_a_row_and_says_so_influxdb2_stand_in() {
    let s = StandIn::start().await;
    let answer = big_answer(20_000);
    let full = answer.clone();
    s.respond(move |_| (200, answer.clone()));
    let dir = tempfile::tempdir().unwrap();
    let store = InfluxStore::open(InfluxConfig {
        flux: FluxLimits {
            max_bytes: 100_000,
            ..FluxLimits::default()
        },
        ..config(&s.url(), dir.path())
    })
    .unwrap();
    let got = collect(store.flux(READ.to_owned()).await.unwrap()).await;
    let (rows, end) = got.split_at(got.find("\r\n\r\n#datatype,string,string").unwrap() + 2);
    assert!(
        rows.len() <= 100_000 && rows.len() > 99_900,
        "{}",
        rows.len()
    );
    assert!(
        full.starts_with(rows) && rows.ends_with("\r\n"),
        "whole rows of the answer"
    );
    match annotated_csv::parse(&got) {
        Err(CsvError::Query(m)) => {
            assert!(
                m.contains("stopped at the proxy's size limit of 100000 bytes"),
                "{m}"
            )
        }
        other => panic!("expected the error table, got {other:?} after {end:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flux_proxy_stops_a_slow_query_and_cancels_it_influxdb2_stand_in() {
    let s = StandIn::start().await;
    s.respond(|_| (200, big_answer(3)));
    let dir = tempfile::tempdir().unwrap();
    let store = InfluxStore::open(InfluxConfig {
        flux: FluxLimits {
            timeout: Duration::from_secs(1),
            ..FluxLimits::default()
        },
        ..config(&s.url(), dir.path())
    })
    .unwrap();
    // InfluxDB answers part of it, then nothing more.
    s.state.stall.store(STALL_AFTER_ANSWER, Ordering::SeqCst);
    let started = Instant::now();
    let got = collect(store.flux(READ.to_owned()).await.unwrap()).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(got.starts_with(&big_answer(3).trim_end_matches("\r\n").to_owned()));
    match annotated_csv::parse(&got) {
        Err(CsvError::Query(m)) => assert!(m.contains("time limit of 1s"), "{m}"),
        other => panic!("expected the error table, got {other:?}"),
    }
    wait_for("the stalled answer's connection to close", || {
        s.state.stalled_answer_dropped.load(Ordering::SeqCst)
    })
    .await;
    // InfluxDB does not start answering at all.
    s.state.stall.store(STALL_BEFORE_ANSWER, Ordering::SeqCst);
    match store.flux(READ.to_owned()).await {
        Err(StoreError::Unavailable(m)) => {
            assert!(m.contains("within the proxy's limit of 1s"), "{m}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn open_needs_no_influxdb_and_checks_its_config_influxdb2_stand_in() {
    let dir = tempfile::tempdir().unwrap();
    let bad = InfluxStore::open(InfluxConfig {
        url: "ftp://influx".into(),
        ..config("http://127.0.0.1:1", dir.path())
    });
    assert!(matches!(bad, Err(StoreError::Backend(m)) if m.contains("scheme")));
    // Works on a current-thread runtime too, with InfluxDB down: the write is spooled.
    let store = InfluxStore::open(config(&format!("http://{}", free_addr()), dir.path())).unwrap();
    store.write(batch(0)).await.unwrap();
    assert_eq!(spool_files(dir.path()), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_events_are_written_replaced_and_read_back_influxdb2_stand_in() {
    let s = StandIn::start().await;
    s.respond(|flux| {
        if !flux.contains("\"grid_events\"") {
            return (500, String::new());
        }
        // After pivot(): one row per event, its fields as columns (end_us absent while open).
        (
            200,
            "#datatype,string,long,dateTime:RFC3339,string,string,string,double,boolean,long,long,double\r\n\
             #group,false,false,false,false,false,false,false,false,false,false,false\r\n\
             #default,_result,,,,,,,,,,\r\n\
             ,result,table,_time,_measurement,device_id,host,extreme_hz,frequency,last_us,end_us,rocof\r\n\
             ,,0,2023-12-21T01:51:00Z,grid_events,esp-1,h,49.75,true,1703123462000000,,-0.3\r\n\
             ,,0,2023-12-21T01:50:57.5Z,grid_events,esp-2,h,50.21,true,1703123458000000,1703123459000000,\r\n\
             ,,0,2023-12-21T01:50:57Z,grid_events,bad id!,h,50.2,true,1,2,\r\n\r\n"
                .into(),
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let store = InfluxStore::open(config(&s.url(), dir.path())).unwrap();
    let event = StoredEvent {
        device_id: device(),
        start_us: T0,
        end_us: None,
        last_us: T0 + 2_000_000,
        extreme_hz: 49.75,
        rocof: Some(-0.3),
        frequency: true,
    };
    store.save_events(None, vec![event.clone()]).await.unwrap();
    let w = &s.accepted()[0];
    assert_eq!(w.auth.as_deref(), Some("Token write-token"));
    assert_eq!(w.params.get("precision").map(String::as_str), Some("us"));
    assert_eq!(
        w.body.trim_end(),
        format!(
            "grid_events,device_id=esp-1,host={HOST} last_us={}i,extreme_hz=49.75,frequency=true,rocof=-0.3 {T0}",
            T0 + 2_000_000
        )
    );
    // A rewind: the device's events from then on are deleted, then the new ones written.
    let closed = StoredEvent {
        end_us: Some(T0 + 3_000_000),
        ..event
    };
    store
        .save_events(Some((device(), T0 - 5_000_000)), vec![closed])
        .await
        .unwrap();
    let deleted = s.state.deleted.lock().unwrap().clone();
    assert_eq!(deleted.len(), 1);
    let (params, auth, body) = &deleted[0];
    assert_eq!(auth.as_deref(), Some("Token write-token"));
    assert_eq!(
        params.get("bucket").map(String::as_str),
        Some("open_grid_monitor")
    );
    assert_eq!(
        body["predicate"],
        "_measurement=\"grid_events\" AND device_id=\"esp-1\""
    );
    assert_eq!(body["start"], "2023-12-21T01:50:51.789123000Z");
    assert!(
        s.accepted()[1]
            .body
            .contains(&format!("end_us={}i", T0 + 3_000_000))
    );

    let q = EventQuery {
        device_id: None,
        start_us: T0,
        stop_us: T0 + 60_000_000,
        limit: 10,
    };
    let events = store.events(q).await.unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].device_id.as_str(), "esp-1");
    assert_eq!((events[0].end_us, events[0].rocof), (None, Some(-0.3)));
    assert_eq!(events[1].end_us, Some(1_703_123_459_000_000));
    assert_eq!(events[1].start_us, 1_703_123_457_500_000);
    let flux = s.queries()[0].flux().to_owned();
    assert!(flux.contains(&format!("r.end_us >= {T0}")), "{flux}");
    assert_eq!(range_start_ns(&flux), (T0 - 86_400_000_000) * 1000);
    // The real Flux parser takes it.
    let parsed = tokio::task::spawn_blocking(move || flux_parser::parse_text(&flux))
        .await
        .unwrap();
    assert!(parsed.is_ok(), "{parsed:?}");
}
