//! What the ingest's black-box tests share: a stream of measurements from outside devices at
//! QoS 1 (each acknowledged by the broker before the next), and the check that every one of
//! them was stored exactly once, read back through the server's own API.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ogm_protocol::Kind;

use crate::http::http_get;
use crate::page::{measurement, topic};
use crate::probe::MqttProbe;

/// 50 Hz: the fastest a board measures, so within every device's budget
/// (`OGM_DEVICE_MAX_MESSAGES_PER_SEC`) however fast a test publishes.
pub const STEP_US: i64 = 20_000;

/// The password of the outside devices these tests publish as.
pub const DEVICE_PASSWORD: &str = "device-pw";

/// A metric of the server at `http_url`; `None` while it does not answer.
pub fn metric(http_url: &str, name: &str) -> Option<f64> {
    let r = http_get(&format!("{http_url}/metrics")).ok()?;
    r.body
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The timestamps stored for `device` (from the CSV export); empty until its first is stored.
pub fn stored_timestamps(http_url: &str, device: &str) -> Vec<i64> {
    let Ok(r) = http_get(&format!(
        "{http_url}/api/export.csv?device_id={device}&start=-1d&stop=now"
    )) else {
        return Vec::new();
    };
    if r.status != 200 {
        return Vec::new();
    }
    r.body
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next()?.parse().ok())
        .collect()
}

/// How a stream ended up in the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stored {
    /// Messages sent and acknowledged by the broker.
    pub sent: usize,
    /// Distinct messages stored.
    pub stored: usize,
    /// Rows stored more than once (must be 0).
    pub duplicates: usize,
    /// Messages sent and not stored (must be 0).
    pub missing: usize,
}

impl Stored {
    pub fn exactly_once(&self) -> bool {
        self.duplicates == 0 && self.missing == 0 && self.stored == self.sent
    }
}

/// Waits up to `timeout` until each of `devices` has all of its `count` measurements stamped
/// `base + i * STEP_US` stored, and says how it stands then.
pub fn wait_exactly_once(
    http_url: &str,
    devices: &[String],
    count: usize,
    base: i64,
    timeout: Duration,
) -> Stored {
    let deadline = Instant::now() + timeout;
    loop {
        let mut s = Stored {
            sent: devices.len() * count,
            ..Stored::default()
        };
        for d in devices {
            let ts = stored_timestamps(http_url, d);
            let unique: BTreeSet<i64> = ts.iter().copied().collect();
            s.duplicates += ts.len() - unique.len();
            let expected: BTreeSet<i64> = (0..count).map(|i| base + i as i64 * STEP_US).collect();
            s.stored += unique.intersection(&expected).count();
            s.missing += expected.difference(&unique).count();
        }
        if s.exactly_once() || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Outside devices publishing measurements at QoS 1.
#[derive(Debug, Clone)]
pub struct Stream {
    pub port: u16,
    pub devices: Vec<String>,
    /// Measurements per device.
    pub count: usize,
    /// The first timestamp; the i-th is `base + i * STEP_US`.
    pub base: i64,
    /// Messages the broker has acknowledged so far.
    pub acked: Arc<AtomicUsize>,
}

impl Stream {
    pub fn new(port: u16, devices: &[String], count: usize, base: i64) -> Self {
        Self {
            port,
            devices: devices.to_vec(),
            count,
            base,
            acked: Arc::default(),
        }
    }

    /// [`Self::publish`] of measurements `0..count` in a task of its own.
    pub fn publish_in_background(
        &self,
        count: usize,
    ) -> tokio::task::JoinHandle<anyhow::Result<()>> {
        let s = self.clone();
        tokio::spawn(async move { s.publish(0, count).await })
    }

    /// Publishes measurements `from..to` of every device, round robin, each acknowledged by
    /// the broker before the next (a paused broker pauses the stream; a restarted one is
    /// reconnected to and the unacknowledged message sent again).
    pub async fn publish(&self, from: usize, to: usize) -> anyhow::Result<()> {
        let mut probes = Vec::new();
        for d in &self.devices {
            probes.push(self.connect(d).await?);
        }
        for i in from..to {
            for (d, p) in self.devices.iter().zip(probes.iter_mut()) {
                let payload = measurement(
                    self.base + i as i64 * STEP_US,
                    50.0 + (i % 100) as f64 * 0.001,
                );
                let topic = topic(d, Kind::Measurement);
                while p.publish(&topic, payload.clone(), false).await.is_err() {
                    *p = self.connect(d).await?;
                }
                self.acked.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    async fn connect(&self, device: &str) -> anyhow::Result<MqttProbe> {
        MqttProbe::connect_eventually(self.port, device, DEVICE_PASSWORD, Duration::from_secs(60))
            .await
    }
}
