//! Open Grid Monitor server: one binary that persists what devices publish and serves the HTTP
//! API and the built dashboard.
//!
//! Layout:
//! - [`config`]: typed configuration from flags and `OGM_*` environment variables.
//! - [`ingest`]: the MQTT ingest task (QoS 1, persistent session, ack after commit).
//! - [`grid_watch`]: the grid's events, found from every committed measurement and stored.
//! - [`http`]: the axum router: `/api/*` routes, JSON errors, and the dashboard with SPA fallback.
//! - [`metrics`]: counters behind `GET /metrics`.
//! - [`time`]: the API's time parameters.
//! - [`provision`]: the deployment subcommands (`setup`, `device`, `influxdb-tokens`,
//!   `health`), which never run inside the serving process.
//!
//! The store is an `Arc<dyn ogm_store::Store>` chosen at start-up ([`open_store`]); nothing
//! else knows which one it is. [`run`] takes the config and a shutdown future; `main.rs` only
//! parses and calls it.

pub mod alerts;
pub mod config;
pub mod grid_watch;
pub mod health;
pub mod home_assistant;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod provision;
pub mod publisher;
pub mod store_size;
pub mod time;
pub mod watch_feed;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use ogm_store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;

use alerts::Alerts;
pub use config::{Cli, Command, Config, StoreChoice};
use grid_watch::GridWatch;
use ingest::{IngestConfig, MqttIngest, Observers, Presences, RejectedRing};
use metrics::Metrics;
use ogm_grid::EventRules;

/// State shared by every request handler.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub rejected: Arc<RejectedRing>,
    /// What the ingest learnt about each device, for `GET /api/devices`.
    pub presences: Arc<Presences>,
    /// The grid watch the ingest feeds; its events are in the store.
    pub grid: Arc<GridWatch>,
    /// The alert rules and their outbox (set by [`run`]; none in tests that make no server).
    pub alerts: Option<Arc<Alerts>>,
    /// The per-client limit on `/api/*`; `None` when turned off.
    pub limiter: Option<Arc<http::limits::RateLimiter>>,
    /// The store's size on this disk over the last day (the embedded store's).
    pub store_size: Arc<store_size::StoreSize>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("store", &self.store.kind())
            .finish_non_exhaustive()
    }
}

impl AppState {
    pub fn new(config: Config, store: Arc<dyn Store>) -> Self {
        let limiter =
            http::limits::RateLimiter::new(config.rate_limit_per_sec, config.rate_limit_burst)
                .map(Arc::new);
        let rules = EventRules::of(config.grid_area, f64::from(config.nominal_hz));
        let window = ogm_grid::DEFAULT_ROCOF_WINDOW_US;
        let grid = if config.mqtt_share_group.is_some() {
            GridWatch::shared(rules, window)
        } else {
            GridWatch::new(rules, window)
        };
        Self {
            limiter,
            config: Arc::new(config),
            store,
            metrics: Arc::default(),
            rejected: Arc::default(),
            presences: Arc::default(),
            grid: Arc::new(grid),
            alerts: None,
            store_size: Arc::default(),
        }
    }
}

/// Opens the configured store. The embedded one also gets a task that seals closed windows
/// into compressed blocks every minute and applies the tiered retention once an hour.
pub async fn open_store(
    config: &Config,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Arc<dyn Store>> {
    match config.store {
        StoreChoice::Embedded => {
            let options = ogm_store_sqlite::SqliteOptions {
                raw_retention: (!config.raw_retention.is_zero()).then_some(config.raw_retention),
                second_rollup_retention: (!config.second_retention.is_zero())
                    .then_some(config.second_retention),
                log_retention: (!config.log_retention.is_zero()).then_some(config.log_retention),
                log_max_bytes: (config.log_retention_mb > 0)
                    .then(|| config.log_retention_mb.saturating_mul(1024 * 1024)),
                ..Default::default()
            };
            let store = Arc::new(
                ogm_store_sqlite::SqliteStore::open(&config.data_dir, options).with_context(
                    || {
                        format!(
                            "opening the embedded store in {}",
                            config.data_dir.display()
                        )
                    },
                )?,
            );
            tokio::spawn(compact_periodically(store.clone(), shutdown));
            Ok(store)
        }
        StoreChoice::Influxdb => {
            use ogm_store_influx::{InfluxConfig, InfluxStore};
            use provision::influx_tokens::read_secret_file;
            let token = match &config.influxdb_token_file {
                Some(path) => read_secret_file(path)?,
                None => config.influxdb_token.clone(),
            };
            let read_token = match &config.influxdb_read_token_file {
                Some(path) => Some(read_secret_file(path)?),
                None => config.influxdb_read_token.clone(),
            };
            if config.flux_proxy {
                tracing::warn!("{}", http::data::FLUX_PROXY_ON_WARNING);
            }
            if config.flux_proxy
                && read_token
                    .as_deref()
                    .is_none_or(|r| r.is_empty() || r == token)
            {
                tracing::warn!(
                    "the Flux proxy (POST /api/flux) is off: it needs a read-only InfluxDB token \
                     of its own (INFLUXDB_READ_TOKEN or INFLUXDB_READ_TOKEN_FILE); history, logs \
                     and export use the write token"
                );
            }
            let store = InfluxStore::open(InfluxConfig {
                url: config.influxdb_url.clone(),
                token,
                read_token,
                org: config.influxdb_org.clone(),
                bucket: config.influxdb_bucket.clone(),
                host: config
                    .influxdb_host_tag
                    .clone()
                    .unwrap_or_else(ogm_store_influx::default_host),
                spool_dir: config.data_dir.join("influx-spool"),
                spool_max_bytes: config.spool_max_mb.saturating_mul(1024 * 1024),
                flux: ogm_store_influx::FluxLimits {
                    timeout: config.flux_timeout,
                    max_bytes: config.flux_max_mb.saturating_mul(1024 * 1024),
                    max_range: (!config.flux_max_range.is_zero()).then_some(config.flux_max_range),
                },
            })
            .context("opening the InfluxDB store")?;
            Ok(Arc::new(store))
        }
    }
}

/// Seals every minute and prunes every hour, both at once on start.
async fn compact_periodically(
    store: Arc<ogm_store_sqlite::SqliteStore>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut seal = tokio::time::interval(std::time::Duration::from_secs(60));
    let mut prune = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        tokio::select! {
            () = ingest::mqtt::stopped(&mut shutdown) => return,
            _ = prune.tick() => {
                if let Err(e) = store.prune(time::now_us()).await {
                    tracing::warn!(error = %e, "retiring and pruning old data failed");
                }
            }
            _ = seal.tick() => {
                if let Err(e) = store.seal(time::now_us()).await {
                    tracing::warn!(error = %e, "sealing closed windows failed");
                }
            }
        }
    }
}

/// Opens the store, starts the ingest, serves HTTP; on `shutdown`, stops taking requests,
/// lets the ingest commit and acknowledge what it holds, and returns.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let nominal_hz = f64::from(config.nominal_hz);
    if !config.grid_watch {
        if config.alerts_file.is_some() {
            anyhow::bail!("OGM_ALERTS_FILE needs the grid watch: OGM_GRID_WATCH is off");
        }
        if config.home_assistant {
            anyhow::bail!("OGM_HOME_ASSISTANT needs the grid watch: OGM_GRID_WATCH is off");
        }
    }
    let rules = match &config.alerts_file {
        Some(path) => alerts::rules::Rules::load(path, config.grid_area, nominal_hz)
            .map_err(|e| anyhow::anyhow!("the alerts file: {e}"))?,
        None => alerts::rules::Rules::default(),
    };
    let listener = TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("binding {}", config.http_addr))?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let store = open_store(&config, stop_rx.clone()).await?;
    let mut state = AppState::new(config, store);
    std::fs::create_dir_all(&state.config.data_dir)
        .with_context(|| format!("creating {}", state.config.data_dir.display()))?;
    let alerts = Arc::new(Alerts::open(
        rules,
        &state.config.data_dir,
        nominal_hz,
        ogm_grid::DEFAULT_ROCOF_WINDOW_US,
    )?);
    state.alerts = Some(alerts.clone());
    let budget = ingest::budget::BudgetLimits {
        messages_per_sec: state.config.device_max_messages_per_sec,
        bytes_per_sec: state.config.device_max_bytes_per_sec,
    };
    // Who hands the watch and the rules their readings: the ingest, or in a share group (where
    // the ingest gets only its share) the watch's own subscription.
    let watching = state.config.grid_watch;
    let feed = (watching && state.config.mqtt_share_group.is_some()).then(|| {
        Arc::new(watch_feed::WatchFeed::new(
            state.grid.clone(),
            alerts.clone(),
            state.metrics.clone(),
            budget,
        ))
    });
    let publisher =
        (state.config.home_assistant || alerts.uses_mqtt() || feed.is_some()).then(|| {
            publisher::Publisher::start(
                &publisher::PublisherConfig {
                    url: state.config.mqtt_url.clone(),
                    username: state.config.mqtt_username.clone(),
                    password: state.config.mqtt_password.clone(),
                    client_id: format!("{}-pub", state.config.mqtt_client_id),
                },
                feed.clone().map(watch_feed::WatchFeed::listener),
                state.metrics.clone(),
                stop_rx.clone(),
            )
        });
    let ingest_feeds = watching && feed.is_none();
    let ingest_config = IngestConfig {
        url: state.config.mqtt_url.clone(),
        username: state.config.mqtt_username.clone(),
        password: state.config.mqtt_password.clone(),
        client_id: state.config.mqtt_client_id.clone(),
        share_group: state.config.mqtt_share_group.clone(),
        batch_max: 1000,
        keep_alive: state.config.mqtt_keep_alive,
        budget,
    };
    let ingest = tokio::spawn(MqttIngest::new(ingest_config).run(
        state.store.clone(),
        state.metrics.clone(),
        Observers {
            rejected: state.rejected.clone(),
            presences: state.presences.clone(),
            grid: ingest_feeds.then(|| state.grid.clone()),
            alerts: ingest_feeds.then(|| alerts.clone()),
        },
        stop_rx.clone(),
    ));
    let alerting = tokio::spawn(alerts::run(
        alerts.clone(),
        state.store.clone(),
        state.metrics.clone(),
        publisher.as_ref().map(|(p, _)| p.clone()),
        state.config.home_assistant,
        stop_rx.clone(),
    ));
    let home_assistant = match (&publisher, state.config.home_assistant) {
        (Some((p, _)), true) => Some(tokio::spawn(home_assistant::run(
            state.config.home_assistant_prefix.clone(),
            nominal_hz,
            alerts.clone(),
            p.clone(),
            stop_rx.clone(),
        ))),
        _ => None,
    };
    tokio::spawn(sample_store_size(
        state.store.clone(),
        state.store_size.clone(),
        state.metrics.clone(),
        stop_rx.clone(),
    ));
    let grid = watching.then(|| {
        tokio::spawn(
            state
                .grid
                .clone()
                .run(state.store.clone(), state.metrics.clone(), stop_rx),
        )
    });
    // After a restart: the intervals of recently active devices, from what the store holds.
    tokio::spawn(ingest::presence::seed_from_store(
        state.store.clone(),
        state.presences.clone(),
        time::now_us(),
    ));
    let deadline = ShutdownDeadline::new(state.config.shutdown_timeout);
    let armed = deadline.clone();
    let http_shutdown = async move {
        shutdown.await;
        armed.arm();
        let _ = stop_tx.send(true);
    };
    serve(listener, state, http_shutdown).await?;
    match ingest.await {
        Ok(res) => res?,
        Err(e) => tracing::error!(error = %e, "ingest task failed"),
    }
    if let Some(grid) = grid
        && let Err(e) = grid.await
    {
        tracing::error!(error = %e, "grid watch task failed");
    }
    let _ = alerting.await;
    if let Some(h) = home_assistant {
        let _ = h.await;
    }
    if let Some((_, task)) = publisher {
        let _ = task.await;
    }
    drop(deadline);
    Ok(())
}

/// Ends the process if it is still running `limit` after shutdown began. Every orderly step of
/// shutting down has its own bound; this one is for whatever was not foreseen (a blocking store
/// call that never returns, a runtime waiting for its blocking threads). Exiting loses nothing:
/// messages are acknowledged only after their commit, so the broker redelivers the rest. A
/// plain thread, so it fires even when the async runtime is stuck; it goes away when every
/// handle is dropped (when [`run`] returns), so an in-process caller lives on.
#[derive(Debug, Clone)]
struct ShutdownDeadline(std::sync::mpsc::Sender<()>);

impl ShutdownDeadline {
    fn new(limit: std::time::Duration) -> Self {
        use std::sync::mpsc::RecvTimeoutError;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            if rx.recv().is_err() {
                return;
            }
            if let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                tracing::error!(?limit, "shutdown took too long; exiting now");
                std::process::exit(1);
            }
        });
        Self(tx)
    }

    /// Shutdown has begun: the clock runs.
    fn arm(&self) {
        let _ = self.0.send(());
    }
}

/// Serves on an already-bound listener (tests bind `127.0.0.1:0`) until `shutdown` completes;
/// then open connections get `--http-shutdown-grace` to finish, and those still open are
/// dropped: it always returns.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    if !state.config.dist_dir.join("index.html").exists() {
        tracing::warn!(dist_dir = %state.config.dist_dir.display(), "dashboard not built; run `trunk build --release`");
    }
    tracing::info!(%addr, "serving HTTP API and dashboard");
    let header_read = state.config.http_header_timeout;
    let timeouts = http::accept::Timeouts {
        header_read: (!header_read.is_zero()).then_some(header_read),
        shutdown_grace: state.config.http_shutdown_grace,
    };
    http::accept::serve_connections(listener, http::router(state), timeouts, shutdown).await;
    tracing::info!("HTTP server stopped");
    Ok(())
}

/// Runs what the command line asks: a deployment subcommand, or (without one) the server until
/// Ctrl-C or SIGTERM.
pub async fn run_cli(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None | Some(Command::Serve) => run(cli.config, shutdown_signal()).await,
        Some(command) => provision::run(command, &cli.config).await,
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested");
}

/// Samples the store's size on disk every [`store_size::EVERY`] until `shutdown` (a store
/// kept elsewhere has none: it returns at once).
async fn sample_store_size(
    store: Arc<dyn Store>,
    size: Arc<store_size::StoreSize>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(store_size::EVERY);
    loop {
        tokio::select! {
            () = ingest::mqtt::stopped(&mut shutdown) => return,
            _ = tick.tick() => {}
        }
        let s = store.clone();
        let Ok(Some(bytes)) = tokio::task::spawn_blocking(move || s.disk_bytes()).await else {
            return;
        };
        size.record(time::now_us(), bytes);
        metrics
            .store_bytes
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
        if let Some(g) = size.growth_per_day() {
            metrics
                .store_growth_bytes_per_day
                .store(g as i64, std::sync::atomic::Ordering::Relaxed);
        }
    }
}
