//! [`MqttIngest`]: the only code that talks to the broker.
//!
//! Two tasks: the connection task polls rumqttc's event loop (it must keep polling for
//! keep-alive and to send acknowledgements) and hands each PUBLISH to the writer task, which
//! takes whatever has queued up (up to `batch_max`), classifies it, commits the records in one
//! store write, and only then acknowledges every message of the batch, in order. A failing
//! store is retried with backoff and nothing is acknowledged meanwhile; the broker's in-flight
//! window then stops the flow, and the bounded hand-off channel holds back the connection
//! task, so memory stays bounded. No task ever waits on one that waits on it: the writer
//! hands acknowledgements over without waiting (`pay`), and the connection task's wait for the
//! writer gives way to shutdown.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use ogm_protocol::{BrokerAddr, Kind, TOPIC_PREFIX, TimestampFix, topic};
use ogm_store::Store;
use rumqttc::{
    AsyncClient, Event, MqttOptions, Outgoing, Packet, Publish, QoS, SubscribeReasonCode,
};
use tokio::sync::{mpsc, watch};

use super::budget::{BudgetLimits, Budgets};
use super::session::{Action, Session};
use super::{Presences, RejectedRing, classify};
use crate::alerts::Alerts;
use crate::grid_watch::GridWatch;
use crate::metrics::Metrics;
use crate::time::now_us;

/// Largest packet the ingest reads: above the broker's `max_packet_size`, so any message the
/// broker accepts can be read, rejected and acknowledged instead of breaking the connection.
const MAX_INCOMING_PACKET: usize = 512 * 1024;

/// Room for every acknowledgement the writer can owe at once, so acknowledging never waits.
///
/// rumqttc's event loop takes at most one request (an acknowledgement) from this channel per
/// poll, while one poll can read ten publishes; under a backlog, acknowledgements pile up. Had
/// the channel room for fewer than the writer may owe, the writer would wait on it while the
/// connection task waits on the writer (its hand-off channel full), and nobody would poll the
/// event loop: the ingest stalled for good after a store outage (seen with Debian's Mosquitto
/// and a full disk). Unacknowledged messages, hence owed acknowledgements, never exceed the
/// 65 535 packet ids of a connection.
const REQUESTS_CAPACITY: usize = u16::MAX as usize + 64;

/// Mosquitto's count of PUBLISH packets it has received, sent every `sys_interval` (10 s by
/// default). Every publish a client may make is a device's, so while this grows the ingest
/// must be receiving: health compares the two (`crate::health::stalled`).
pub const BROKER_PUBLISHES: &str = "$SYS/broker/publish/messages/received";

/// How the ingest connects.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Where the broker is.
    pub url: BrokerAddr,
    pub username: String,
    pub password: String,
    /// Stable: the broker keeps the persistent session under it.
    pub client_id: String,
    /// `$share/<group>/...` subscriptions, to split the stream among servers.
    pub share_group: Option<String>,
    /// Most messages committed in one store write.
    pub batch_max: usize,
    /// MQTT keep-alive.
    pub keep_alive: Duration,
    /// What one device may store per second of its timestamps.
    pub budget: BudgetLimits,
}

/// The subscriptions: the three device kinds, optionally through a shared subscription.
pub fn filters(share_group: Option<&str>) -> Vec<String> {
    Kind::ALL
        .into_iter()
        .map(|k| {
            let f = topic::filter(TOPIC_PREFIX, k);
            match share_group {
                Some(g) => format!("$share/{g}/{f}"),
                None => f,
            }
        })
        .collect()
}

/// The ingest: owns how it connects; [`MqttIngest::run`] runs it.
#[derive(Debug, Clone)]
pub struct MqttIngest {
    config: IngestConfig,
}

impl MqttIngest {
    pub fn new(config: IngestConfig) -> Self {
        Self { config }
    }

    /// Runs until `shutdown` turns true; then commits and acknowledges what it holds and
    /// disconnects. Messages received after that stay unacknowledged for the broker to
    /// redeliver to the next run.
    pub async fn run(
        self,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        observers: Observers,
        mut shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let config = self.config;
        let mut opts = MqttOptions::new(
            config.client_id.clone(),
            config.url.host.clone(),
            config.url.port,
        );
        opts.set_credentials(config.username.clone(), config.password.clone())
            .set_keep_alive(config.keep_alive)
            .set_clean_session(false)
            .set_manual_acks(true)
            .set_max_packet_size(MAX_INCOMING_PACKET, 64 * 1024)
            .set_request_channel_capacity(REQUESTS_CAPACITY);
        let (client, mut eventloop) = AsyncClient::new(opts, REQUESTS_CAPACITY);
        let (tx, rx) = mpsc::channel::<Publish>(config.batch_max * 4 + 64);
        let mut session = Session::new(filters(config.share_group.as_deref()));

        let mut writer = tokio::spawn(write_batches(
            rx,
            client.clone(),
            store,
            metrics.clone(),
            observers,
            Admission {
                batch_max: config.batch_max,
                budgets: Budgets::new(config.budget),
            },
            shutdown.clone(),
        ));
        'events: loop {
            let ev = tokio::select! {
                () = stopped(&mut shutdown) => break,
                ev = eventloop.poll() => ev,
            };
            let actions = match ev {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    session.on_connack(ack.session_present)
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    let refused = ack
                        .return_codes
                        .iter()
                        .any(|c| matches!(c, SubscribeReasonCode::Failure));
                    session.on_suback(refused).into_iter().collect()
                }
                Ok(Event::Incoming(Packet::Publish(p))) if p.topic == BROKER_PUBLISHES => {
                    if session.on_broker_count(&p.payload, metrics.own_publishes.load(Relaxed)) {
                        metrics.broker_published_us.store(now_us(), Relaxed);
                    }
                    continue;
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    metrics.last_received_us.store(now_us(), Relaxed);
                    let queued = tx.max_capacity() - tx.capacity();
                    metrics.handoff_queued.store(queued as u64, Relaxed);
                    // Waiting for the writer must not outlast a shutdown request.
                    let sent = tokio::select! {
                        () = stopped(&mut shutdown) => break,
                        sent = tx.send(p) => sent,
                    };
                    if sent.is_err() {
                        break;
                    }
                    continue;
                }
                Ok(_) => continue,
                Err(e) => {
                    let wait = session.on_error();
                    if let Action::Wait {
                        delay,
                        failures,
                        log: true,
                    } = &wait
                    {
                        tracing::warn!(error = %e, failures, retry_in = ?delay, "broker connection failed");
                    }
                    vec![wait]
                }
            };
            for action in actions {
                if !carry_out(action, &client, &metrics, &session, &mut shutdown).await {
                    break 'events;
                }
            }
        }

        // Shutdown: let the writer commit and acknowledge what it has, keep polling so the
        // acknowledgements go out, then disconnect.
        drop(tx);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            tokio::select! {
                res = &mut writer => {
                    if let Err(e) = res {
                        tracing::error!(error = %e, "ingest writer failed");
                    }
                    break;
                }
                ev = eventloop.poll() => if ev.is_err() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                },
                () = tokio::time::sleep_until(deadline) => {
                    tracing::warn!("ingest writer did not finish in time; unacknowledged messages will be redelivered");
                    writer.abort();
                    break;
                }
            }
        }
        let _ = client.try_disconnect();
        let until = tokio::time::Instant::now() + Duration::from_secs(3);
        while tokio::time::Instant::now() < until {
            match tokio::time::timeout_at(until, eventloop.poll()).await {
                Ok(Ok(Event::Outgoing(Outgoing::Disconnect))) | Ok(Err(_)) | Err(_) => break,
                Ok(Ok(_)) => {}
            }
        }
        metrics.mqtt_connected.store(false, Relaxed);
        tracing::info!("ingest stopped");
        Ok(())
    }
}

/// Does what the session asks; false when shutdown came first.
async fn carry_out(
    action: Action,
    client: &AsyncClient,
    metrics: &Metrics,
    session: &Session,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    match action {
        Action::Connected {
            session_present,
            reconnect,
        } => {
            if reconnect {
                metrics.mqtt_reconnects.fetch_add(1, Relaxed);
            }
            metrics.mqtt_connected.store(true, Relaxed);
            metrics.mqtt_subscribed.store(false, Relaxed);
            tracing::info!(session_present, "connected to the broker");
        }
        Action::Subscribe(filter) => {
            if let Err(e) = client.try_subscribe(filter.as_str(), QoS::AtLeastOnce) {
                tracing::error!(filter = %filter, error = %e, "could not queue a subscription");
            }
        }
        Action::Refused => {
            tracing::error!("the broker refused a subscription; check the ACL");
        }
        Action::Subscribed => {
            metrics.mqtt_subscribed.store(true, Relaxed);
            tracing::info!(filters = ?session.filters(), "subscribed");
            // Optional: an ACL may refuse it; health then cannot tell a starved ingest from a
            // quiet grid.
            let _ = client.try_subscribe(BROKER_PUBLISHES, QoS::AtMostOnce);
        }
        Action::Wait { delay, .. } => {
            metrics.mqtt_connected.store(false, Relaxed);
            metrics.mqtt_subscribed.store(false, Relaxed);
            return tokio::select! {
                () = stopped(shutdown) => false,
                () = tokio::time::sleep(delay) => true,
            };
        }
    }
    true
}

/// Completes once shutdown is requested (or its sender is gone).
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// What the writer tells the HTTP API besides the store.
/// Who is told what the writer saw.
#[derive(Debug)]
pub struct Observers {
    /// Rejected messages.
    pub rejected: Arc<RejectedRing>,
    /// Committed records, for each device's interval and last word.
    pub presences: Arc<Presences>,
    /// Committed measurements, for the grid's events (none when the watch is off, or fed by
    /// its own subscription in a share group).
    pub grid: Option<Arc<GridWatch>>,
    /// Committed measurements, for the alert rules (likewise).
    pub alerts: Option<Arc<Alerts>>,
}

/// How much the writer takes: per batch, and per device.
struct Admission {
    /// Most messages committed in one store write.
    batch_max: usize,
    budgets: Budgets,
}

/// The writer task: batch, classify, commit (retrying), tell [`Presences`], then acknowledge.
async fn write_batches(
    mut rx: mpsc::Receiver<Publish>,
    client: AsyncClient,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    observers: Observers,
    admission: Admission,
    shutdown: watch::Receiver<bool>,
) {
    let Observers {
        rejected,
        presences,
        grid,
        alerts,
    } = observers;
    let Admission {
        batch_max,
        mut budgets,
    } = admission;
    let mut batch: Vec<Publish> = Vec::with_capacity(batch_max);
    // Committed, and not yet handed to the event loop: acknowledging never waits for it.
    let mut owed: VecDeque<Publish> = VecDeque::new();
    let mut receive_clock = 0i64;
    loop {
        let next = if owed.is_empty() {
            rx.recv().await
        } else {
            tokio::select! {
                p = rx.recv() => p,
                () = tokio::time::sleep(Duration::from_millis(10)) => {
                    pay(&client, &mut owed);
                    continue;
                }
            }
        };
        let Some(first) = next else {
            pay(&client, &mut owed);
            return;
        };
        batch.push(first);
        while batch.len() < batch_max {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        metrics.count_received(batch.len() as u64);
        metrics.uncommitted_since_us.store(now_us(), Relaxed);
        let mut records = Vec::with_capacity(batch.len());
        for p in &batch {
            // A strictly increasing receive clock: two messages whose timestamps are replaced by
            // it must not collide on (device, kind, timestamp) and be taken for one.
            receive_clock = now_us().max(receive_clock + 1);
            let now = receive_clock;
            let admitted =
                classify(TOPIC_PREFIX, &p.topic, &p.payload, now).and_then(|(record, fix)| {
                    // Delivered again because we subscribed, stamped anew because its own
                    // timestamp was unusable: it was stored when it first came, under another
                    // time, and would be stored once more at every reconnect.
                    if p.retain && fix != TimestampFix::Kept {
                        return Err(super::Rejection {
                            reason: "stale_retained",
                            detail: "retained message without a usable timestamp, already \
                                     stored when it was first received"
                                .into(),
                        });
                    }
                    budgets
                        .admit(
                            &record.device_id,
                            record.payload.timestamp(),
                            p.payload.len(),
                        )
                        .map_err(|over| super::Rejection {
                            reason: over.reason(),
                            detail: format!(
                                "device {} is over its budget for the second of {}",
                                record.device_id.as_str(),
                                record.payload.timestamp()
                            ),
                        })?;
                    Ok((record, fix))
                });
            match admitted {
                Ok((record, fix)) => {
                    metrics.count_timestamp_fix(fix);
                    records.push(record);
                }
                Err(r) => {
                    metrics.count_rejected(r.reason);
                    rejected.push(now, &p.topic, r.reason, r.detail, &p.payload);
                }
            }
        }
        if !records.is_empty() {
            if !commit(&*store, &records, &metrics, &shutdown).await {
                // Shutting down with a failing store: leave the batch unacknowledged.
                return;
            }
            presences.observe(&records);
            if let Some(g) = &grid {
                metrics
                    .watch_readings
                    .fetch_add(g.observe(&records), Relaxed);
            }
            if let Some(a) = &alerts {
                a.observe(&records);
            }
        }
        owed.extend(batch.drain(..).map(|mut p| {
            p.payload = Default::default();
            p
        }));
        pay(&client, &mut owed);
        metrics.uncommitted_since_us.store(0, Relaxed);
    }
}

/// Hands what it can of `owed` to the event loop, in order, without waiting: the writer must
/// never wait on the event loop, which waits on the connection task, which may be waiting on
/// the writer (see [`REQUESTS_CAPACITY`]).
fn pay(client: &AsyncClient, owed: &mut VecDeque<Publish>) {
    while let Some(p) = owed.front() {
        if client.try_ack(p).is_err() {
            return;
        }
        owed.pop_front();
    }
}

/// Writes until it succeeds; false if shutdown came first.
async fn commit(
    store: &dyn Store,
    records: &[ogm_store::Record],
    metrics: &Metrics,
    shutdown: &watch::Receiver<bool>,
) -> bool {
    let n = records.len();
    let mut backoff = Duration::from_millis(100);
    let mut attempt = 0u32;
    loop {
        let started = Instant::now();
        match store.write(records.to_vec()).await {
            Ok(outcome) => {
                metrics
                    .commit_seconds
                    .observe(started.elapsed().as_secs_f64());
                metrics.batch_size.observe(n as f64);
                metrics.store_failing.store(false, Relaxed);
                metrics.stored.fetch_add(outcome.stored as u64, Relaxed);
                metrics
                    .duplicates
                    .fetch_add(outcome.duplicates as u64, Relaxed);
                if attempt > 0 {
                    tracing::info!(attempts = attempt + 1, "store write succeeded again");
                }
                return true;
            }
            Err(e) => {
                metrics.store_errors.fetch_add(1, Relaxed);
                metrics.store_failing.store(true, Relaxed);
                attempt += 1;
                if attempt == 1 || attempt.is_power_of_two() {
                    tracing::error!(error = %e, attempt, retry_in = ?backoff, "store write failed; not acknowledging");
                }
                let mut shutdown = shutdown.clone();
                let stop = tokio::select! {
                    () = stopped(&mut shutdown) => true,
                    () = tokio::time::sleep(backoff) => false,
                };
                if stop {
                    return false;
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_name_the_three_kinds() {
        assert_eq!(filters(None)[0], "open_grid_monitor/+/measurement");
        assert_eq!(
            filters(Some("ogm"))[2],
            "$share/ogm/open_grid_monitor/+/logs"
        );
    }
}
