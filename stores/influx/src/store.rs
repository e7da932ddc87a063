//! [`InfluxStore`]: the [`Store`] on InfluxDB 2, with the spool and its replay task.
//!
//! Writes: a batch is encoded once ([`crate::line_protocol::encode`]). While the spool is
//! empty it goes straight to InfluxDB; if InfluxDB cannot take it (unreachable, timeout, 5xx,
//! 429, or 401/403/404 until the operator fixes the token or bucket), it is appended to the
//! spool, fsync'd, and `write` returns `Ok`: the ingest may acknowledge the broker. While the
//! spool holds anything, new batches are appended behind it, so InfluxDB receives batches in
//! the order they were written. The replay task sends the spool oldest first (several files
//! per request) as soon as InfluxDB answers again, deleting each file once InfluxDB took it.
//! When the spool is full, `write` returns [`StoreError::Unavailable`]: the ingest stops
//! acknowledging and retries, and the broker keeps the messages.
//!
//! A batch InfluxDB refuses as data (400, 413, 422: a field type conflict, a point outside
//! the retention period) would be refused forever, so it is kept in `spool_dir/rejected/` and
//! logged at error level instead of blocking the ingest or the spool. InfluxDB writes the valid
//! lines of a partially refused batch.
//!
//! Every write is idempotent because InfluxDB keeps one point per series and timestamp: a
//! replayed or redelivered batch overwrites the same points. InfluxDB cannot tell a duplicate
//! apart, so [`WriteOutcome::duplicates`] is always 0.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use ogm_protocol::{DeviceId, Measurement};
use ogm_store::{
    DeviceSummary, EventQuery, ExportQuery, ExportStream, FluxStream, History, HistoryQuery,
    LogQuery, LogRow, Record, Store, StoreError, StoreKind, StoredEvent, WriteOutcome,
    bucket_interval_us,
};
use tokio::sync::{Mutex, Notify, mpsc};

use crate::annotated_csv::{self, Section};
use crate::http::{Http, QueryKind, WriteError};
use crate::spool::{self, Entry, Spool};
use crate::{InfluxConfig, answers, flux, flux_guard, line_protocol};

/// First and longest wait between replay attempts while InfluxDB is down.
const REPLAY_BACKOFF: (Duration, Duration) = (Duration::from_millis(250), Duration::from_secs(15));
/// At most this many spooled batches, and about this many bytes, per replay request.
const REPLAY_MAX_FILES: usize = 256;
const REPLAY_MAX_BYTES: u64 = 4 * 1024 * 1024;
/// Points per series per export page.
const EXPORT_PAGE: usize = 5_000;

/// The InfluxDB 2 store. Dropping it stops the replay task; what is spooled stays on disk and
/// is replayed by the next [`InfluxStore::open`] on the same `spool_dir`.
pub struct InfluxStore {
    inner: Arc<Inner>,
    replay: tokio::task::AbortHandle,
}

struct Inner {
    http: Http,
    host: String,
    bucket: String,
    spool: Mutex<Spool>,
    max_spool_bytes: u64,
    flux: crate::FluxLimits,
    /// Told when a batch is spooled.
    wake: Notify,
}

impl std::fmt::Debug for InfluxStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InfluxStore")
            .field("bucket", &self.inner.bucket)
            .field("host", &self.inner.host)
            .finish_non_exhaustive()
    }
}

impl InfluxStore {
    /// Checks `config`, opens the spool (queueing batches a previous run left there) and
    /// starts the replay task. Must be called within a Tokio runtime. Does not contact
    /// InfluxDB: the store opens while InfluxDB is down, and spools.
    pub fn open(config: InfluxConfig) -> Result<Self, StoreError> {
        let invalid = |e: String| StoreError::Backend(format!("InfluxDB store: {e}").into());
        let base = config.validate().map_err(invalid)?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            invalid("InfluxStore::open must be called within a Tokio runtime".into())
        })?;
        let spool = Spool::open(&config.spool_dir, config.spool_max_bytes).map_err(|e| {
            invalid(format!(
                "cannot open the spool in {}: {e}",
                config.spool_dir.display()
            ))
        })?;
        if !spool.is_empty() {
            tracing::info!(
                batches = spool.len(),
                bytes = spool.bytes(),
                dir = %config.spool_dir.display(),
                "replaying batches spooled by a previous run"
            );
        }
        let inner = Arc::new(Inner {
            http: Http::new(&config, base).map_err(invalid)?,
            host: config.host,
            bucket: config.bucket,
            spool: Mutex::new(spool),
            max_spool_bytes: config.spool_max_bytes,
            flux: config.flux,
            wake: Notify::new(),
        });
        let replay = runtime.spawn(replay(inner.clone())).abort_handle();
        Ok(Self { inner, replay })
    }

    /// How many batches wait in the spool.
    pub async fn spooled_batches(&self) -> usize {
        self.inner.spool.lock().await.len()
    }

    async fn query_sections(&self, flux: &str) -> Result<Vec<Section>, StoreError> {
        let text = self.inner.http.query_text(flux).await?;
        parse_answer(&text)
    }
}

impl Drop for InfluxStore {
    fn drop(&mut self) {
        self.replay.abort();
    }
}

fn parse_answer(text: &str) -> Result<Vec<Section>, StoreError> {
    annotated_csv::parse(text).map_err(|e| match e {
        annotated_csv::CsvError::Query(m) => {
            StoreError::Backend(format!("InfluxDB query failed: {m}").into())
        }
        e => StoreError::Backend(ogm_store::Cause::new(format!("InfluxDB's answer: {e}"), e)),
    })
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e)))
}

#[async_trait::async_trait]
impl Store for InfluxStore {
    fn kind(&self) -> StoreKind {
        StoreKind::Influxdb
    }

    async fn write(&self, batch: Vec<Record>) -> Result<WriteOutcome, StoreError> {
        let mut text = String::new();
        line_protocol::encode(&batch, &self.inner.host, &mut text);
        if text.is_empty() {
            return Ok(WriteOutcome::default());
        }
        let records = batch.len();
        let stored = WriteOutcome {
            stored: records,
            duplicates: 0,
        };
        let body = text.into_bytes();
        let mut spool = self.inner.spool.lock().await;
        if spool.is_empty() {
            match self.inner.http.write(body.clone()).await {
                Ok(()) => return Ok(stored),
                Err(WriteError::Rejected(message)) => {
                    let dir = spool.dir().to_owned();
                    let kept = blocking(move || spool::write_rejected(&dir, &body)).await;
                    return match kept {
                        Ok(path) => {
                            tracing::error!(
                                %message, records, path = %path.display(),
                                "InfluxDB refused a batch; kept it in the rejected folder"
                            );
                            Ok(WriteOutcome::default())
                        }
                        Err(e) => Err(StoreError::Unavailable(ogm_store::Cause::new(
                            format!("{message}; and the batch could not be kept: {e}"),
                            e,
                        ))),
                    };
                }
                Err(WriteError::Unavailable(message)) => {
                    tracing::warn!(%message, "InfluxDB cannot take writes; spooling them to disk");
                }
            }
        }
        let len = body.len() as u64;
        if !spool.fits(len) {
            return Err(StoreError::Unavailable(
                format!(
                    "InfluxDB cannot take writes and the spool is full ({} of {} bytes)",
                    spool.bytes(),
                    self.inner.max_spool_bytes
                )
                .into(),
            ));
        }
        let seq = spool.next_seq();
        let dir = spool.dir().to_owned();
        blocking(move || spool::write_file(&dir, seq, &body))
            .await
            .map_err(|e| {
                StoreError::Unavailable(ogm_store::Cause::new(
                    format!("InfluxDB cannot take writes and spooling failed: {e}"),
                    e,
                ))
            })?;
        spool.push(Entry { seq, len });
        drop(spool);
        self.inner.wake.notify_one();
        Ok(stored)
    }

    async fn healthy(&self) -> bool {
        self.inner.http.healthy().await
    }

    async fn history(&self, query: HistoryQuery) -> Result<History, StoreError> {
        let empty = History {
            interval_us: 0,
            points: Vec::new(),
        };
        if query.start_us() >= query.stop_us() || query.max_points() == 0 {
            // Flux refuses an empty range.
            return Ok(empty);
        }
        let bucket = &self.inner.bucket;
        let count = answers::count(
            &self
                .query_sections(&flux::history_count(bucket, &query))
                .await?,
        );
        if count == 0 {
            return Ok(empty);
        }
        let max_points = query.max_points() as usize;
        let interval_us =
            bucket_interval_us(query.start_us(), query.stop_us(), query.max_points(), count);
        let points = if interval_us == 0 {
            let sections = self
                .query_sections(&flux::history_raw(bucket, &query))
                .await?;
            answers::raw_points(&sections, max_points)
        } else {
            let text = flux::history_aggregated(bucket, &query, interval_us);
            answers::aggregated(&self.query_sections(&text).await?, interval_us, max_points)
        };
        Ok(History {
            interval_us,
            points,
        })
    }

    async fn logs(&self, query: LogQuery) -> Result<Vec<LogRow>, StoreError> {
        if query.limit == 0 || query.start_us >= query.stop_us {
            return Ok(Vec::new());
        }
        let sections = self
            .query_sections(&flux::logs(&self.inner.bucket, &query))
            .await?;
        let mut rows = answers::log_rows(&sections);
        ogm_store::keep_newest(&mut rows, query.limit, query.max_bytes);
        Ok(rows)
    }

    /// Device events go straight to InfluxDB (no spool): when it cannot take them, the server's
    /// grid watch keeps them and saves them again.
    async fn save_events(
        &self,
        replace_from: Option<(DeviceId, i64)>,
        events: Vec<StoredEvent>,
    ) -> Result<(), StoreError> {
        if let Some((device, from_us)) = &replace_from {
            let far = i64::MAX / 2;
            self.inner
                .http
                .delete(
                    line_protocol::GRID_EVENTS,
                    device.as_str(),
                    from_us.saturating_mul(1000),
                    far,
                )
                .await?;
        }
        let mut text = String::new();
        line_protocol::encode_events(&events, &self.inner.host, &mut text);
        if text.is_empty() {
            return Ok(());
        }
        self.inner
            .http
            .write(text.into_bytes())
            .await
            .map_err(|e| match e {
                WriteError::Rejected(m) | WriteError::Unavailable(m) => {
                    StoreError::Unavailable(format!("InfluxDB event write: {m}").into())
                }
            })
    }

    async fn events(&self, query: EventQuery) -> Result<Vec<StoredEvent>, StoreError> {
        if query.limit == 0 || query.start_us >= query.stop_us {
            return Ok(Vec::new());
        }
        let sections = self
            .query_sections(&flux::events(&self.inner.bucket, &query))
            .await?;
        let mut events = answers::stored_events(&sections);
        events.truncate(query.limit as usize);
        Ok(events)
    }

    async fn devices(&self) -> Result<Vec<DeviceSummary>, StoreError> {
        let sections = self
            .query_sections(&flux::devices(&self.inner.bucket))
            .await?;
        Ok(answers::device_summaries(&sections))
    }

    async fn export(&self, query: ExportQuery) -> Result<ExportStream, StoreError> {
        let (tx, rx) = mpsc::channel(2);
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let mut start_ns = query.start_us.saturating_mul(1_000);
            let stop_ns = query.stop_us.saturating_mul(1_000);
            while start_ns < stop_ns {
                let text = flux::export_page(
                    &inner.bucket,
                    &query.device_id,
                    start_ns,
                    stop_ns,
                    EXPORT_PAGE,
                );
                let page = match inner
                    .http
                    .query_text(&text)
                    .await
                    .and_then(|t| parse_answer(&t))
                {
                    Ok(sections) => answers::export_page(&sections, EXPORT_PAGE),
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                let (rows, next): (Vec<Measurement>, Option<i64>) = page;
                if !rows.is_empty() && tx.send(Ok(rows)).await.is_err() {
                    return;
                }
                match next {
                    Some(next) if next > start_ns => start_ns = next,
                    _ => return,
                }
            }
        });
        Ok(rx)
    }

    /// Runs a user's Flux query: InfluxDB parses it, [`flux_guard::check`] decides on the
    /// parse, and only then does InfluxDB run it, with the read token; its annotated CSV is
    /// streamed through within [`crate::FluxLimits`]. Off (`Unavailable`) without a read token
    /// of its own: a user's query never runs with the write token.
    async fn flux(&self, query: String) -> Result<FluxStream, StoreError> {
        let inner = &self.inner;
        if !inner.http.has_separate_read_token() {
            return Err(StoreError::Unavailable(NO_READ_TOKEN.into()));
        }
        if query.len() > flux_guard::MAX_QUERY_BYTES {
            return Err(StoreError::Refused(format!(
                "Flux query refused: longer than {} bytes",
                flux_guard::MAX_QUERY_BYTES
            )));
        }
        let limits = inner.flux;
        let deadline = tokio::time::Instant::now() + limits.timeout;
        let late = || {
            StoreError::Unavailable(
                format!(
                    "InfluxDB did not answer the Flux query within the proxy's limit of {:?}",
                    limits.timeout
                )
                .into(),
            )
        };
        let ast = tokio::time::timeout_at(deadline, inner.http.parse_flux(&query))
            .await
            .map_err(|_| late())??;
        let policy = flux_guard::Policy {
            bucket: &inner.bucket,
            max_range_ns: limits.max_range.map(|d| d.as_nanos() as i128),
            now_ns: now_ns(),
        };
        flux_guard::check(&ast, &policy).map_err(StoreError::Refused)?;
        let response =
            tokio::time::timeout_at(deadline, inner.http.query(&query, QueryKind::Proxy))
                .await
                .map_err(|_| late())??;
        let (tx, rx) = mpsc::channel(8);
        tokio::spawn(stream_answer(response, tx, deadline, limits));
        Ok(rx)
    }
}

/// Why the Flux proxy is off.
const NO_READ_TOKEN: &str = "the Flux proxy is off: it needs a read-only InfluxDB token of its \
    own (INFLUXDB_READ_TOKEN or INFLUXDB_READ_TOKEN_FILE), so that users' queries never run \
    with the write token";

fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// Streams a proxied answer to `tx` in whole rows until it ends, the receiver goes away, or a
/// limit is reached; then drops the response, which cancels the query in InfluxDB. Past a
/// limit the answer ends with an error section saying which.
async fn stream_answer(
    mut response: reqwest::Response,
    tx: mpsc::Sender<Result<bytes::Bytes, StoreError>>,
    deadline: tokio::time::Instant,
    limits: crate::FluxLimits,
) {
    let mut rows = annotated_csv::RowLimiter::new(limits.max_bytes);
    let stopped = loop {
        let next = tokio::select! {
            () = tx.closed() => return,
            next = tokio::time::timeout_at(deadline, crate::http::next_chunk(&mut response)) => next,
        };
        let passed = match next {
            Ok(Ok(Some(chunk))) => rows.push(&chunk),
            Ok(Ok(None)) => {
                let rest = rows.finish();
                if !rest.is_empty() {
                    let _ = tx.send(Ok(rest.into())).await;
                }
                return;
            }
            Ok(Err(e)) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
            Err(_) => {
                tracing::warn!(limit = ?limits.timeout, bytes = rows.passed(), "a Flux proxy query ran out of time; stopped");
                break format!(
                    "the query was stopped at the proxy's time limit of {:?}",
                    limits.timeout
                );
            }
        };
        match passed {
            Ok(whole_rows) if whole_rows.is_empty() => {}
            Ok(whole_rows) => {
                if tx.send(Ok(whole_rows.into())).await.is_err() {
                    return;
                }
            }
            Err(last_rows) => {
                if !last_rows.is_empty() && tx.send(Ok(last_rows.into())).await.is_err() {
                    return;
                }
                tracing::warn!(
                    limit = limits.max_bytes,
                    "a Flux proxy answer reached the size limit; stopped"
                );
                break format!(
                    "the answer was stopped at the proxy's size limit of {} bytes; narrow the \
                     query (range, filter, aggregateWindow)",
                    limits.max_bytes
                );
            }
        }
    };
    drop(response);
    let separator = if rows.passed() > 0 { "\r\n" } else { "" };
    let end = format!("{separator}{}", annotated_csv::error_table(&stopped));
    let _ = tx.send(Ok(end.into())).await;
}

/// Sends the spool to InfluxDB, oldest first, whenever it holds something.
async fn replay(inner: Arc<Inner>) {
    let mut backoff = REPLAY_BACKOFF.0;
    let mut failures = 0u32;
    // After a refused multi-batch request: one batch per request, to find the refused one.
    let mut one_at_a_time = false;
    loop {
        let (batch, dir) = {
            let spool = inner.spool.lock().await;
            let max_files = if one_at_a_time { 1 } else { REPLAY_MAX_FILES };
            (
                spool.front(max_files, REPLAY_MAX_BYTES),
                spool.dir().to_owned(),
            )
        };
        let Some(first) = batch.first().copied() else {
            inner.wake.notified().await;
            continue;
        };
        let entries = batch.clone();
        let read_dir = dir.clone();
        let body = match blocking(move || spool::read_files(&read_dir, &entries)).await {
            Ok(body) => body,
            Err(e) => {
                // Not readable now, not readable later: set it aside rather than block the rest.
                let moved_dir = dir.clone();
                let moved = blocking(move || spool::reject_file(&moved_dir, first.seq)).await;
                tracing::error!(error = %e, seq = first.seq, moved = ?moved.map(|p| p.display().to_string()), "cannot read a spooled batch; set it aside");
                inner.spool.lock().await.pop(first);
                continue;
            }
        };
        match inner.http.write(body).await {
            Ok(()) => {
                let remaining = {
                    let mut spool = inner.spool.lock().await;
                    for e in &batch {
                        spool.pop(*e);
                    }
                    spool.len()
                };
                let removed = batch.clone();
                let rm_dir = dir.clone();
                if let Err(e) = blocking(move || {
                    removed
                        .iter()
                        .try_for_each(|e| spool::remove_file(&rm_dir, e.seq))
                })
                .await
                {
                    tracing::warn!(error = %e, "cannot delete a replayed spool file; it will be replayed again (harmless)");
                }
                if failures > 0 || remaining == 0 {
                    tracing::info!(
                        replayed = batch.len(),
                        remaining,
                        "spooled batches written to InfluxDB"
                    );
                }
                backoff = REPLAY_BACKOFF.0;
                failures = 0;
                if one_at_a_time && batch.len() == 1 {
                    one_at_a_time = false;
                }
            }
            Err(WriteError::Rejected(message)) if batch.len() > 1 => {
                tracing::warn!(%message, batches = batch.len(), "InfluxDB refused replayed batches; retrying them one by one");
                one_at_a_time = true;
            }
            Err(WriteError::Rejected(message)) => {
                let moved_dir = dir.clone();
                let moved = blocking(move || spool::reject_file(&moved_dir, first.seq)).await;
                tracing::error!(%message, seq = first.seq, moved = ?moved.map(|p| p.display().to_string()), "InfluxDB refused a spooled batch; kept it in the rejected folder");
                inner.spool.lock().await.pop(first);
            }
            Err(WriteError::Unavailable(message)) => {
                failures += 1;
                if failures.is_power_of_two() {
                    tracing::warn!(%message, failures, retry_in = ?backoff, "InfluxDB still cannot take the spooled batches");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(REPLAY_BACKOFF.1);
            }
        }
    }
}
