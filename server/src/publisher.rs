//! The server's own MQTT session for what it publishes (the grid summary, alert states, Home
//! Assistant discovery), apart from the ingest's: QoS 1, a clean session, `ogm_server/status`
//! `online` (retained) once connected and `offline` by its last will. Retained messages it is
//! told to keep are published again at every connection, so a broker that lost them (no
//! persistence, a fresh container) has them back.
//!
//! A publish counts as delivered once the client took it while connected; rumqttc resends a
//! QoS 1 publish that the broker did not acknowledge when the connection comes back.
//!
//! The session can also subscribe (QoS 0, renewed at every connection) and hand what comes in
//! to a callback: the watch feed of a replica in a share group (`watch_feed.rs`).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ogm_protocol::BrokerAddr;
use ogm_protocol::topic::server_status;
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
use tokio::sync::watch;

use crate::metrics::Metrics;

/// How the session connects.
#[derive(Debug, Clone)]
pub struct PublisherConfig {
    pub url: BrokerAddr,
    pub username: String,
    pub password: String,
    /// `<ingest client id>-pub`: a service user may use its name and a suffix.
    pub client_id: String,
}

/// Hears a message: its topic and payload.
pub type OnMessage = Arc<dyn Fn(&str, &[u8]) + Send + Sync>;

/// What the session subscribes to, and who hears the messages.
#[derive(Clone)]
pub struct Listener {
    pub filters: Vec<String>,
    pub on_message: OnMessage,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("filters", &self.filters)
            .finish_non_exhaustive()
    }
}

/// The session: publish through it from anywhere.
#[derive(Debug)]
pub struct Publisher {
    client: AsyncClient,
    connected: Arc<AtomicBool>,
    keep: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    metrics: Arc<Metrics>,
    published: AtomicU64,
}

impl Publisher {
    /// Connects in the background until `shutdown`; the returned task ends after it.
    pub fn start(
        config: &PublisherConfig,
        listener: Option<Listener>,
        metrics: Arc<Metrics>,
        mut shutdown: watch::Receiver<bool>,
    ) -> (Arc<Self>, tokio::task::JoinHandle<()>) {
        let mut opts = MqttOptions::new(
            config.client_id.clone(),
            config.url.host.clone(),
            config.url.port,
        );
        opts.set_credentials(config.username.clone(), config.password.clone())
            .set_keep_alive(Duration::from_secs(30))
            .set_clean_session(true)
            .set_last_will(LastWill::new(
                server_status(),
                "offline",
                QoS::AtLeastOnce,
                true,
            ));
        let (client, mut eventloop) = AsyncClient::new(opts, 1024);
        let publisher = Arc::new(Self {
            client,
            connected: Arc::new(AtomicBool::new(false)),
            keep: Arc::new(Mutex::new(BTreeMap::new())),
            metrics,
            published: AtomicU64::new(0),
        });
        let p = publisher.clone();
        let task = tokio::spawn(async move {
            let mut failures = 0u32;
            loop {
                let ev = tokio::select! {
                    () = crate::ingest::mqtt::stopped(&mut shutdown) => {
                        // Said on the way out, so Home Assistant shows the grid unavailable.
                        let _ = p.client.try_publish(server_status(), QoS::AtLeastOnce, true, "offline");
                        let _ = p.client.try_disconnect();
                        let _ = tokio::time::timeout(Duration::from_millis(500), async {
                            while eventloop.poll().await.is_ok() {}
                        })
                        .await;
                        return;
                    }
                    ev = eventloop.poll() => ev,
                };
                match ev {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        failures = 0;
                        p.connected.store(true, Relaxed);
                        p.send(&server_status(), b"online".to_vec());
                        let kept: Vec<(String, Vec<u8>)> = p
                            .keep
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .iter()
                            .map(|(t, m)| (t.clone(), m.clone()))
                            .collect();
                        for (topic, payload) in kept {
                            p.send(&topic, payload);
                        }
                        for filter in listener.iter().flat_map(|l| &l.filters) {
                            if let Err(e) = p.client.try_subscribe(filter, QoS::AtMostOnce) {
                                tracing::warn!(error = %e, filter, "the server's own subscription could not be asked for");
                            }
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(m))) => {
                        if let Some(l) = &listener {
                            (l.on_message)(&m.topic, &m.payload);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        p.connected.store(false, Relaxed);
                        failures = failures.saturating_add(1);
                        if failures.is_power_of_two() {
                            tracing::warn!(error = %e, failures, "the server's publishing session to the broker failed; retrying");
                        }
                        let wait = Duration::from_millis(250 << failures.min(5));
                        tokio::select! {
                            () = crate::ingest::mqtt::stopped(&mut shutdown) => return,
                            () = tokio::time::sleep(wait) => {}
                        }
                    }
                }
            }
        });
        (publisher, task)
    }

    pub fn connected(&self) -> bool {
        self.connected.load(Relaxed)
    }

    /// Publishes a retained message now, if connected: Err says why not.
    pub fn publish_retained(&self, topic: &str, payload: Vec<u8>) -> Result<(), String> {
        if !self.connected() {
            return Err("the server is not connected to the broker".into());
        }
        if self.send(topic, payload) {
            Ok(())
        } else {
            Err("the server's MQTT session is busy".into())
        }
    }

    /// A retained message to keep on the broker: published now if connected, and again at
    /// every connection.
    pub fn keep_retained(&self, topic: &str, payload: Vec<u8>) {
        self.keep
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(topic.to_owned(), payload.clone());
        if self.connected() {
            self.send(topic, payload);
        }
    }

    /// A message that only matters now (not retained, dropped when not connected).
    pub fn publish_now(&self, topic: &str, payload: Vec<u8>) {
        if self.connected()
            && self
                .client
                .try_publish(topic, QoS::AtMostOnce, false, payload)
                .is_ok()
        {
            self.count();
        }
    }

    /// Publishes so far.
    pub fn published(&self) -> u64 {
        self.published.load(Relaxed)
    }

    fn send(&self, topic: &str, payload: Vec<u8>) -> bool {
        let ok = self
            .client
            .try_publish(topic, QoS::AtLeastOnce, true, payload)
            .is_ok();
        if ok {
            self.count();
        }
        ok
    }

    fn count(&self) {
        self.published.fetch_add(1, Relaxed);
        self.metrics.own_publishes.fetch_add(1, Relaxed);
    }
}
