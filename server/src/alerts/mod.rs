//! Alerts: rules from a TOML file ([`rules`]), evaluated on every committed measurement and the
//! server's health by a pure engine ([`engine`]); each transition is written with its
//! notifications to an on-disk outbox ([`outbox`]) before anything is sent, and a delivery task
//! hands them to the channels ([`channels`]: webhook, e-mail, MQTT), retrying with backoff.
//!
//! Who feeds whom: the ingest calls [`Alerts::observe`] with each committed batch; [`run`]
//! ticks the engine every [`TICK`], asks the store for the grid time once a minute, records
//! transitions and delivers what is due; `GET /api/alerts` reads the outbox.

pub mod channels;
pub mod engine;
pub mod outbox;
pub mod rules;

use std::path::Path;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ogm_protocol::http::{AlertNotice, AlertsAnswer, Field};
use ogm_protocol::{DeviceId, Payload};
use ogm_store::{HistoryQuery, Record, Store};
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::publisher::Publisher;
use crate::time::now_us;
use channels::Senders;
use engine::{Change, Engine, Extreme, Subject, Transition};
use outbox::Outbox;
use rules::{Kind, Rules};

/// How often the rules are evaluated.
pub const TICK: Duration = Duration::from_millis(250);
/// How often the grid time over the last 24 h is asked of the store.
pub const GRID_TIME_EVERY: Duration = Duration::from_secs(60);
/// Resolved alerts `GET /api/alerts` lists.
pub const PAST_LISTED: u32 = 100;

/// The alert rules, their engine and their outbox.
#[derive(Debug)]
pub struct Alerts {
    rules: Rules,
    engine: Mutex<Engine>,
    outbox: Outbox,
    /// Alerts active, as last recorded (read each second for Home Assistant and `/metrics`).
    active: AtomicUsize,
    nominal_hz: f64,
}

impl Alerts {
    /// Opens the outbox in `data_dir` and restores the alerts active when the server stopped.
    pub fn open(
        rules: Rules,
        data_dir: &Path,
        nominal_hz: f64,
        rocof_window_us: i64,
    ) -> anyhow::Result<Self> {
        let outbox = Outbox::open(&data_dir.join("alerts.sqlite"))
            .map_err(|e| anyhow::anyhow!("opening the alerts' outbox: {e}"))?;
        let now = now_us();
        let mut engine = Engine::new(rules.rules.clone(), nominal_hz, rocof_window_us, now);
        for a in outbox.active()? {
            let subject = Subject::parse(&a.subject);
            let unit = rules
                .rules
                .iter()
                .find(|r| r.name == a.rule)
                .map(|r| engine::unit(&r.kind));
            match (subject, unit) {
                (Some(subject), Some(unit)) => engine.restore(
                    &a.rule,
                    subject,
                    a.started_us,
                    Extreme {
                        value: a.extreme,
                        unit,
                        device: a.device.as_deref().and_then(|d| DeviceId::new(d).ok()),
                    },
                ),
                // Its rule left the file: it can no longer resolve by itself.
                _ => outbox.close(a.id, now)?,
            }
        }
        let active = AtomicUsize::new(outbox.active()?.len());
        Ok(Self {
            rules,
            engine: Mutex::new(engine),
            outbox,
            active,
            nominal_hz,
        })
    }

    fn engine(&self) -> std::sync::MutexGuard<'_, Engine> {
        self.engine.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Committed records, received about now.
    pub fn observe(&self, records: &[Record]) {
        let rx = now_us();
        let mut engine = self.engine();
        for r in records {
            if let Payload::Measurement(m) = &r.payload {
                engine.observe(&r.device_id, m.timestamp, m.frequency, rx);
            }
        }
    }

    /// The grid as the devices heard in the last 5 s see it.
    pub fn grid(&self) -> engine::GridFacts {
        self.engine().grid(now_us())
    }

    /// Every device heard (or known from the store).
    pub fn device_ids(&self) -> Vec<DeviceId> {
        self.engine().device_ids()
    }

    /// Whether a rule notifies over MQTT (the server then needs its publishing session).
    pub fn uses_mqtt(&self) -> bool {
        self.rules
            .channels
            .values()
            .any(|c| matches!(c, rules::Channel::Mqtt))
    }

    /// Alerts active now, as last recorded.
    pub fn active_count(&self) -> usize {
        self.active.load(Relaxed)
    }

    /// Active alerts and the last resolved ones.
    pub fn answer(&self) -> anyhow::Result<AlertsAnswer> {
        let (active, past) = self.outbox.list(PAST_LISTED)?;
        Ok(AlertsAnswer {
            enabled: !self.rules.rules.is_empty(),
            active,
            past,
        })
    }

    /// Records a transition (and its notifications) in the outbox.
    fn record(
        &self,
        t: &Transition,
        active_ids: &mut std::collections::BTreeMap<(usize, Subject), i64>,
    ) -> anyhow::Result<()> {
        let rule = &self.rules.rules[t.rule];
        let now = now_us();
        let mut notice = self.notice(t);
        match t.change {
            Change::Fired => {
                let hour_ago = now - 3_600_000_000;
                let notify = self.outbox.notified_since(&rule.name, hour_ago)? < rule.max_per_hour;
                if !notify {
                    tracing::warn!(rule = %rule.name, "alert held back by its rule's rate limit");
                }
                let id = self
                    .outbox
                    .fired(&mut notice, &rule.channels, notify, now)?;
                active_ids.insert((t.rule, t.subject.clone()), id);
                tracing::warn!(rule = %rule.name, subject = t.subject.as_str(), summary = %notice.summary, "alert");
            }
            Change::Resolved => {
                let id = match active_ids.remove(&(t.rule, t.subject.clone())) {
                    Some(id) => id,
                    None => self
                        .outbox
                        .active()?
                        .into_iter()
                        .find(|a| a.rule == rule.name && a.subject == t.subject.as_str())
                        .map(|a| a.id)
                        .ok_or_else(|| anyhow::anyhow!("no active alert to resolve"))?,
                };
                notice.alert_id = id;
                self.outbox.resolved(&mut notice, &rule.channels, now)?;
                tracing::info!(rule = %rule.name, subject = t.subject.as_str(), "alert resolved");
            }
        }
        Ok(())
    }

    fn notice(&self, t: &Transition) -> AlertNotice {
        let rule = &self.rules.rules[t.rule];
        let device = t.extreme.device.as_ref().map(|d| d.to_string());
        let at = device
            .as_deref()
            .map_or(String::new(), |d| format!(" at {d}"));
        let x = t.extreme.value;
        let summary = match &rule.kind {
            Kind::Frequency { limit_mhz, .. } => format!(
                "Grid frequency {x:+.1} mHz off nominal ({:.3} Hz){at}; the limit is ±{limit_mhz} mHz.",
                self.nominal_hz + x / 1000.0
            ),
            Kind::Rocof { limit, .. } => {
                format!("RoCoF {x:+.3} Hz/s{at}; the limit is ±{limit} Hz/s.")
            }
            Kind::GridTime { limit_s } => format!(
                "Grid time deviation {x:+.1} s over the last 24 h; the limit is ±{limit_s} s."
            ),
            Kind::Silent { after, .. } => format!(
                "{} sent no measurement for {x:.1} s (the limit is {} s).",
                t.subject.as_str(),
                after.as_secs()
            ),
            Kind::Clock { limit_s, .. } => format!(
                "{}'s clock is {x:+.1} s off the server's; the limit is ±{limit_s} s.",
                t.subject.as_str()
            ),
            Kind::Server { .. } => {
                "The server's ingest is cut off from the broker, or its store is failing.".into()
            }
        };
        AlertNotice {
            id: String::new(),
            alert_id: 0,
            rule: rule.name.clone(),
            kind: rule.kind.as_str().into(),
            subject: t.subject.as_str().into(),
            state: t.change.as_str().into(),
            started_us: t.started_us,
            at_us: t.at_us,
            extreme: x,
            unit: t.extreme.unit.into(),
            device_id: device,
            summary,
            link: self.link(t),
        }
    }

    /// The dashboard's view of the alert: a minute either side of it.
    fn link(&self, t: &Transition) -> String {
        let start = t.started_us - 60_000_000;
        let stop = t.at_us + 60_000_000;
        let range = format!("range=custom&start={start}&stop={stop}");
        let base = &self.rules.dashboard_url;
        match (&t.subject, &t.extreme.device) {
            (Subject::Device(d), _) => format!("{base}/?view=device&device={d}&{range}"),
            (Subject::Grid, Some(d)) => format!("{base}/?view=insight&device={d}&{range}"),
            (Subject::Grid, None) => format!("{base}/?view=insight&{range}"),
            (Subject::Server, _) => format!("{base}/?view=devices"),
        }
    }
}

/// `µs` as `2026-12-04 03:25:52 UTC`.
pub fn utc(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us).map_or_else(
        || us.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

/// Evaluates the rules, records transitions, and delivers notifications, until `shutdown`.
/// `grid_time`: ask the store for the grid time even without a grid time rule (Home
/// Assistant shows it).
pub async fn run(
    alerts: Arc<Alerts>,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    publisher: Option<Arc<Publisher>>,
    grid_time: bool,
    shutdown: watch::Receiver<bool>,
) {
    let senders = match Senders::new(publisher) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "alerts cannot notify");
            return;
        }
    };
    let deliver = tokio::spawn(deliver(
        alerts.clone(),
        senders,
        metrics.clone(),
        shutdown.clone(),
    ));
    evaluate(alerts, store, metrics, grid_time, shutdown).await;
    let _ = deliver.await;
}

async fn evaluate(
    alerts: Arc<Alerts>,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    grid_time_wanted: bool,
    mut shutdown: watch::Receiver<bool>,
) {
    let wants_grid_time = grid_time_wanted
        || alerts
            .rules
            .rules
            .iter()
            .any(|r| matches!(r.kind, Kind::GridTime { .. }));
    if alerts
        .rules
        .rules
        .iter()
        .any(|r| matches!(r.kind, Kind::Silent { .. }))
    {
        // The devices the store knows, silent from now on unless heard.
        if let Ok(devices) = store.devices().await {
            let now = now_us();
            let mut engine = alerts.engine();
            for d in devices
                .iter()
                .filter(|d| now - d.last_seen < 7 * 86_400_000_000)
            {
                engine.know(&d.device_id, now);
            }
        }
    }
    // Alerts restored from the outbox are active from the start.
    metrics
        .alerts_active
        .store(alerts.active_count() as u64, Relaxed);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first a few seconds in, when the devices have been heard again.
    let mut grid_time_at = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut active_ids = std::collections::BTreeMap::new();
    let mut unrecorded: Vec<Transition> = Vec::new();
    loop {
        tokio::select! {
            () = crate::ingest::mqtt::stopped(&mut shutdown) => return,
            _ = tick.tick() => {}
        }
        if wants_grid_time && tokio::time::Instant::now() >= grid_time_at {
            grid_time_at = tokio::time::Instant::now() + GRID_TIME_EVERY;
            let g = grid_time(&*store, alerts.nominal_hz).await;
            alerts.engine().set_grid_time(g);
        }
        let server_ok =
            metrics.mqtt_subscribed.load(Relaxed) && !metrics.store_failing.load(Relaxed);
        let transitions = {
            let mut engine = alerts.engine();
            engine.set_server_ok(server_ok);
            engine.tick(now_us())
        };
        unrecorded.extend(transitions);
        if unrecorded.is_empty() {
            continue;
        }
        let batch = std::mem::take(&mut unrecorded);
        let a = alerts.clone();
        let result = tokio::task::spawn_blocking(move || {
            let mut left = Vec::new();
            let mut ids = active_ids;
            for t in batch {
                if let Err(e) = a.record(&t, &mut ids) {
                    tracing::error!(error = %e, "recording an alert failed; retrying");
                    left.push(t);
                }
            }
            (left, ids)
        })
        .await;
        match result {
            Ok((left, ids)) => {
                unrecorded = left;
                active_ids = ids;
            }
            Err(e) => {
                tracing::error!(error = %e, "the alert recorder failed");
                active_ids = std::collections::BTreeMap::new();
            }
        }
        if let Ok(n) = alerts.outbox.active() {
            alerts.active.store(n.len(), Relaxed);
        }
        metrics
            .alerts_active
            .store(alerts.active_count() as u64, Relaxed);
    }
}

/// The median over the devices heard in the last day of their grid time deviation over it.
async fn grid_time(store: &dyn Store, nominal_hz: f64) -> Option<f64> {
    let now = now_us();
    let day = 86_400_000_000;
    let devices = store.devices().await.ok()?;
    let mut values = Vec::new();
    for d in devices.iter().filter(|d| now - d.last_seen < 300_000_000) {
        let Ok(q) = HistoryQuery::new(d.device_id.clone(), Field::Frequency, now - day, now, 1440)
        else {
            continue;
        };
        let Ok(h) = store.history(q).await else {
            continue;
        };
        if h.points.len() < 2 {
            continue;
        }
        let samples: Vec<ogm_grid::Sample> = h
            .points
            .iter()
            .map(|b| ogm_grid::Sample {
                t: b.t,
                first: 0,
                last: 0,
                min: b.min,
                mean: b.mean,
                max: b.max,
                count: b.count,
            })
            .collect();
        let max_gap = 3 * h.interval_us.max(1_000_000);
        values.push(ogm_grid::grid_time_s(samples.iter(), nominal_hz, max_gap));
    }
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

async fn deliver(
    alerts: Arc<Alerts>,
    senders: Senders,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = crate::ingest::mqtt::stopped(&mut shutdown) => return,
            _ = tick.tick() => {}
        }
        let due = match alerts.outbox.due(now_us(), 50) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "reading the outbox failed");
                continue;
            }
        };
        for d in due {
            let Some(channel) = alerts.rules.channels.get(&d.channel) else {
                let _ = alerts
                    .outbox
                    .failed(&d, "the channel left the rules file", now_us());
                continue;
            };
            let sent = tokio::select! {
                () = crate::ingest::mqtt::stopped(&mut shutdown) => return,
                sent = senders.send(channel, &d.notice) => sent,
            };
            match sent {
                Ok(()) => {
                    metrics.notifications_sent.fetch_add(1, Relaxed);
                    if let Err(e) = alerts.outbox.delivered(d.id, now_us()) {
                        tracing::error!(error = %e, "marking a notification delivered failed");
                    }
                }
                Err(e) => {
                    metrics.notification_failures.fetch_add(1, Relaxed);
                    match alerts.outbox.failed(&d, &e, now_us()) {
                        Ok(true) => {
                            tracing::error!(channel = %d.channel, error = %e, "a notification was given up after a day")
                        }
                        Ok(false) => {
                            tracing::warn!(channel = %d.channel, error = %e, attempts = d.attempts + 1, "a notification failed; it will be retried")
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "recording a failed notification failed")
                        }
                    }
                }
            }
        }
        if let Ok(n) = alerts.outbox.waiting() {
            metrics.notifications_waiting.store(n, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A restless grid: a rule allowed two notifications an hour fires five times in it. Each
    /// alert is recorded; only the first two are sent (firing and resolved), the rest are
    /// listed as held back.
    #[test]
    fn a_rules_rate_limit_holds_back_what_is_over_it_and_still_records_it() {
        let dir = tempfile::tempdir().unwrap();
        let rules = rules::Rules::parse(
            r#"
[channels.hook]
kind = "webhook"
url = "http://127.0.0.1:9/alerts"

[[rules]]
name = "f"
kind = "frequency"
max_per_hour = 2
channels = ["hook"]
"#,
            ogm_protocol::GridArea::ContinentalEurope,
            50.0,
            None,
        )
        .unwrap();
        let alerts = Alerts::open(rules, dir.path(), 50.0, 500_000).unwrap();
        let mut ids = std::collections::BTreeMap::new();
        let now = now_us();
        for k in 0..5 {
            for change in [Change::Fired, Change::Resolved] {
                let t = Transition {
                    rule: 0,
                    subject: Subject::Grid,
                    change,
                    started_us: now + k * 60_000_000,
                    at_us: now + k * 60_000_000 + 2_000_000,
                    extreme: Extreme {
                        value: -250.0,
                        unit: "mHz",
                        device: None,
                    },
                };
                alerts.record(&t, &mut ids).unwrap();
            }
        }
        let a = alerts.answer().unwrap();
        assert!(a.active.is_empty());
        assert_eq!(a.past.len(), 5, "every alert recorded");
        let notified: Vec<(bool, usize)> = a
            .past
            .iter()
            .rev()
            .map(|v| (v.notified, v.deliveries.len()))
            .collect();
        assert_eq!(
            notified,
            [(true, 2), (true, 2), (false, 0), (false, 0), (false, 0)],
            "oldest first: two sent (firing and resolved each), three held back"
        );
        assert_eq!(alerts.outbox.waiting().unwrap(), 4);
    }
}
