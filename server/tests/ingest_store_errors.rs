//! The ingest against the real broker with a store that fails: it must stop acknowledging,
//! retry with backoff, and once the store recovers have stored every message exactly once.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ogm_devstack::{BrokerPorts, Credentials, Mosquitto, MqttProbe, SERVER_USER, wait};
use ogm_grid::EventRules;
use ogm_protocol::{DeviceId, GridArea, Kind, Measurement, TOPIC_PREFIX, Topic};
use ogm_server::grid_watch::GridWatch;
use ogm_server::ingest::budget::BudgetLimits;
use ogm_server::ingest::{IngestConfig, MqttIngest, Observers, RejectedRing};
use ogm_server::metrics::Metrics;
use ogm_store::{
    DeviceSummary, ExportQuery, ExportStream, History, HistoryQuery, LogQuery, LogRow, Record,
    Store, StoreError, StoreKind, WriteOutcome,
};
use ogm_store_sqlite::{SqliteOptions, SqliteStore};
use tokio::sync::watch;

/// The real embedded store behind a switch that makes writes fail.
struct Flaky {
    inner: SqliteStore,
    failures_left: AtomicUsize,
    failed: AtomicUsize,
}

#[async_trait::async_trait]
impl Store for Flaky {
    fn kind(&self) -> StoreKind {
        self.inner.kind()
    }
    async fn write(&self, batch: Vec<Record>) -> Result<WriteOutcome, StoreError> {
        if self
            .failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            self.failed.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::Unavailable("disk unplugged (test)".into()));
        }
        self.inner.write(batch).await
    }
    async fn healthy(&self) -> bool {
        self.inner.healthy().await
    }
    async fn history(&self, q: HistoryQuery) -> Result<History, StoreError> {
        self.inner.history(q).await
    }
    async fn logs(&self, q: LogQuery) -> Result<Vec<LogRow>, StoreError> {
        self.inner.logs(q).await
    }
    async fn devices(&self) -> Result<Vec<DeviceSummary>, StoreError> {
        self.inner.devices().await
    }
    async fn export(&self, q: ExportQuery) -> Result<ExportStream, StoreError> {
        self.inner.export(q).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_store_holds_back_acks_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let creds = Credentials::generate();
    let mut users = creds.service_users().to_vec();
    users.push(("dev-x", "pw"));
    let broker = Mosquitto::start(&dir.path().join("broker"), BrokerPorts::free(), &users).unwrap();
    let store = Arc::new(Flaky {
        inner: SqliteStore::open(&dir.path().join("data"), SqliteOptions::default()).unwrap(),
        failures_left: AtomicUsize::new(5),
        failed: AtomicUsize::new(0),
    });
    let metrics = Arc::new(Metrics::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let ingest = tokio::spawn(
        MqttIngest::new(IngestConfig {
            url: broker.mqtt_url().parse().unwrap(),
            username: SERVER_USER.into(),
            password: creds.server.clone(),
            client_id: format!("{SERVER_USER}-test"),
            share_group: None,
            batch_max: 100,
            keep_alive: Duration::from_secs(30),
            budget: BudgetLimits {
                messages_per_sec: 100,
                bytes_per_sec: 64 * 1024,
            },
        })
        .run(
            store.clone(),
            metrics.clone(),
            Observers {
                rejected: Arc::new(RejectedRing::default()),
                presences: Arc::default(),
                grid: Some(Arc::new(GridWatch::new(
                    EventRules::of(GridArea::default(), 50.0),
                    ogm_grid::DEFAULT_ROCOF_WINDOW_US,
                ))),
                alerts: None,
            },
            stop_rx,
        ),
    );
    wait::expect_async("subscribed", Duration::from_secs(20), || async {
        metrics.mqtt_subscribed.load(Ordering::Relaxed)
    })
    .await;
    let mut dev = MqttProbe::connect(broker.ports.mqtt, "dev-x", "pw")
        .await
        .unwrap();
    let topic =
        Topic::new(DeviceId::new("dev-x").unwrap(), Kind::Measurement).to_topic(TOPIC_PREFIX);
    let base = 1_790_000_000_000_000;
    // 50 Hz, as fast as the broker takes them: within every device's budget.
    for i in 0..500 {
        let m = Measurement {
            timestamp: base + i * 20_000,
            frequency: 50.0,
            voltage: 230.0,
            current: 1.0,
            power: 230.0,
        };
        dev.publish(&topic, m.to_json(), false).await.unwrap();
    }
    wait::expect_async("all 500 stored", Duration::from_secs(60), || async {
        metrics.stored.load(Ordering::Relaxed) >= 500
    })
    .await;
    assert_eq!(
        store.failed.load(Ordering::SeqCst),
        5,
        "the store failed and was retried"
    );
    assert_eq!(metrics.store_errors.load(Ordering::Relaxed), 5);
    let rows = store.inner.devices().await.unwrap();
    assert_eq!(
        rows[0].last_measurement.unwrap().timestamp,
        base + 499 * 20_000
    );
    stop_tx.send(true).unwrap();
    ingest.await.unwrap().unwrap();
    assert_eq!(
        metrics.stored.load(Ordering::Relaxed),
        500,
        "each message stored once"
    );
}
