//! [`MqttLink`]: one simulated device's MQTT client, the only code here that talks to the broker.
//!
//! Each device is a separate client (client id and username = its device id) with a retained
//! last will `online: false` on its status topic. A background task polls the rumqttc event loop,
//! which reconnects by itself; the task adds a growing pause after each failure, logs only when
//! the connection state changes, and reports [`LinkEvent`]s so the fleet can publish a retained
//! `online: true` status after every CONNACK.
//!
//! Publishing never waits: a message goes into the client's request channel or is refused when
//! the channel is full. Measurements wait in the board's own offline buffer (the firmware core's)
//! while the broker is unreachable; the fleet moves them into the channel once connected.
//! Topics and payload bytes are the firmware core's ([`ogm_firmware_core::Topics`]).

use std::time::Duration;

use ogm_firmware_core::{Message, Topics};
use ogm_protocol::{BrokerAddr, DeviceId, Status};
use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, LastWill, MqttOptions, Outgoing};
use rumqttc::{Packet, QoS};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::config::Password;

/// The keep-alive the brief and the firmware use.
pub const KEEP_ALIVE: Duration = Duration::from_secs(30);
/// First pause after a failed connection; doubles up to [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_millis(500);
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long to wait, after sending DISCONNECT, for the broker to close the connection.
pub const LINGER: Duration = Duration::from_secs(1);

/// Every message is QoS 1. The ingest's at-least-once path (persistent session, acknowledge after
/// the store commits, idempotent writes on (device, kind, timestamp)) only holds end to end if
/// the device's own hop is acknowledged too; at QoS 0 a reading lost on a dropped connection is
/// gone silently. Duplicates from a redelivery are harmless because writes are idempotent.
pub const QOS: QoS = QoS::AtLeastOnce;
const _: () = assert!(
    ogm_firmware_core::messages::QOS == 1,
    "the core's QoS is 1 too"
);

/// A change in a device's connection, reported to the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkEvent {
    /// CONNACK received (the first time or after a reconnect).
    Up {
        device: usize,
        session_present: bool,
    },
    /// An established connection was lost; the link keeps reconnecting.
    Down { device: usize },
}

/// Why a message was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the device's outgoing queue is full or closed")]
pub struct QueueFull;

/// The settings a link needs.
#[derive(Debug, Clone)]
pub struct LinkOptions {
    pub broker: BrokerAddr,
    pub password: Option<Password>,
    /// Messages held while the broker is unreachable.
    pub queue_capacity: usize,
}

/// One device's connection to the broker.
#[derive(Debug)]
pub struct MqttLink {
    id: DeviceId,
    client: AsyncClient,
    task: JoinHandle<()>,
}

impl MqttLink {
    /// Creates the client for device number `index` and starts driving it. `will` is the status
    /// the broker publishes (retained) if the device vanishes; its timestamp is refreshed before
    /// each reconnect.
    pub fn start(
        index: usize,
        topics: Topics,
        options: &LinkOptions,
        will: Status,
        events: mpsc::UnboundedSender<LinkEvent>,
    ) -> Self {
        let id = topics.device_id().clone();
        let mut mqtt = MqttOptions::new(id.as_str(), &options.broker.host, options.broker.port);
        mqtt.set_keep_alive(KEEP_ALIVE);
        // A persistent session: if the connection drops with QoS 1 messages unacknowledged, the
        // broker reports `session_present` on reconnect and rumqttc sends them again.
        mqtt.set_clean_session(false);
        if let Some(password) = &options.password {
            mqtt.set_credentials(id.as_str(), password.expose());
        }
        mqtt.set_last_will(last_will(&topics, &will));
        let (client, eventloop) = AsyncClient::new(mqtt, options.queue_capacity.max(10));
        let driver = Driver {
            index,
            id: id.clone(),
            broker: options.broker.clone(),
            topics,
            will,
            events,
        };
        Self {
            id,
            client,
            task: tokio::spawn(driver.run(eventloop)),
        }
    }

    pub fn id(&self) -> &DeviceId {
        &self.id
    }

    /// Queues `message` at QoS 1, retained if the core says so (statuses).
    pub fn publish(&self, message: Message<'_>) -> Result<(), QueueFull> {
        self.client
            .try_publish(message.topic, QOS, message.retain, message.payload)
            .map_err(|_| QueueFull)
    }

    /// Sends a clean DISCONNECT after everything already queued and waits up to `grace` for it
    /// to be written. A clean DISCONNECT suppresses the last will, so queue a status with
    /// `online: false` first. Gives up (dropping the connection) if the broker is unreachable.
    pub async fn close(self, grace: Duration) {
        let Self {
            id, client, task, ..
        } = self;
        if client.try_disconnect().is_err() {
            task.abort();
            return;
        }
        let abort = task.abort_handle();
        match tokio::time::timeout(grace, task).await {
            Ok(_) => debug!(device = %id, "closed"),
            Err(_) => {
                abort.abort();
                warn!(device = %id, "broker did not take the disconnect in time; dropped the connection");
            }
        }
    }

    /// Drops the connection at once, without a DISCONNECT (the broker will publish the will).
    pub fn abort(self) {
        self.task.abort();
    }
}

/// The status will, retained at QoS 1.
fn last_will(topics: &Topics, will: &Status) -> LastWill {
    let m = topics.status(will);
    LastWill::new(m.topic, m.payload, QOS, m.retain)
}

/// Polls one event loop until the client disconnects cleanly or is dropped.
struct Driver {
    index: usize,
    id: DeviceId,
    broker: BrokerAddr,
    topics: Topics,
    will: Status,
    events: mpsc::UnboundedSender<LinkEvent>,
}

impl Driver {
    async fn run(mut self, mut eventloop: EventLoop) {
        let mut connected = false;
        let mut failures: u32 = 0;
        let mut backoff = MIN_BACKOFF;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    info!(
                        device = %self.id,
                        broker = %self.broker,
                        session_present = ack.session_present,
                        after_failures = failures,
                        "connected"
                    );
                    (connected, failures, backoff) = (true, 0, MIN_BACKOFF);
                    self.report(LinkEvent::Up {
                        device: self.index,
                        session_present: ack.session_present,
                    });
                }
                Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                    // Read what the broker still sends (PUBACKs) until it closes its end. Closing
                    // with unread data would send a TCP reset, which can make the broker discard
                    // our DISCONNECT and publish the will instead.
                    let drain = async { while eventloop.poll().await.is_ok() {} };
                    let _ = tokio::time::timeout(LINGER, drain).await;
                    info!(device = %self.id, "disconnected");
                    return;
                }
                Ok(_) => {}
                Err(ConnectionError::RequestsDone) => {
                    debug!(device = %self.id, "client dropped; stopping");
                    return;
                }
                Err(error) => {
                    if connected {
                        warn!(device = %self.id, %error, "connection lost; reconnecting");
                        self.report(LinkEvent::Down { device: self.index });
                    } else if failures == 0 {
                        warn!(
                            device = %self.id,
                            broker = %self.broker,
                            %error,
                            "cannot connect; retrying with backoff"
                        );
                    } else if failures.is_multiple_of(10) {
                        warn!(device = %self.id, %error, failures, "still cannot connect");
                    } else {
                        debug!(device = %self.id, %error, failures, "still cannot connect");
                    }
                    connected = false;
                    failures = failures.saturating_add(1);
                    // The will's timestamp says when the device was last heard of, roughly.
                    self.will.timestamp = crate::now_us();
                    eventloop
                        .mqtt_options
                        .set_last_will(last_will(&self.topics, &self.will));
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    fn report(&self, event: LinkEvent) {
        // The fleet only goes away at shutdown, when nobody needs the news.
        let _ = self.events.send(event);
    }
}
