//! MQTT clients for tests: [`MqttProbe`] (rumqttc, waits for every acknowledgement so tests
//! never race the broker) and [`mosquitto_pub`] (the real command-line client, as an outside
//! user would publish).

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rumqttc::{
    AsyncClient, ConnectReturnCode, Event, LastWill, MqttOptions, Packet, QoS, SubscribeReasonCode,
};
use tokio::sync::mpsc;

/// A message a probe received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

enum ProbeEvent {
    ConnAck(ConnectReturnCode),
    SubAck(Vec<SubscribeReasonCode>),
    PubAck,
    Message(Received),
    Closed(String),
}

/// A connected MQTT 3.1.1 client driven by a background task.
pub struct MqttProbe {
    client: AsyncClient,
    task: tokio::task::JoinHandle<()>,
    events: mpsc::UnboundedReceiver<ProbeEvent>,
    messages: std::collections::VecDeque<Received>,
}

impl std::fmt::Debug for MqttProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttProbe").finish_non_exhaustive()
    }
}

impl MqttProbe {
    /// Connects to `127.0.0.1:port` and waits for the CONNACK; an error if it is refused.
    pub async fn connect(port: u16, user: &str, password: &str) -> anyhow::Result<Self> {
        Self::connect_with(port, user, password, None).await
    }

    /// Connects, retrying for up to `timeout` while the broker refuses: a user added at run
    /// time is accepted once the broker has reloaded its password file.
    pub async fn connect_eventually(
        port: u16,
        user: &str,
        password: &str,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let deadline = Instant::now() + timeout;
        loop {
            match Self::connect(port, user, password).await {
                Ok(p) => return Ok(p),
                Err(e) if Instant::now() > deadline => {
                    bail!("{user} never accepted within {timeout:?}: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Connects as [`Self::connect`] and subscribes to `filter` at QoS 1; an error if the broker
    /// refuses either (the server's view of the broker, for instance).
    pub async fn subscribed(
        port: u16,
        user: &str,
        password: &str,
        filter: &str,
    ) -> anyhow::Result<Self> {
        let mut probe = Self::connect(port, user, password).await?;
        if !probe.subscribe(filter, QoS::AtLeastOnce).await? {
            bail!("{user}: the subscription to {filter} was refused");
        }
        Ok(probe)
    }

    /// As [`Self::connect`], with a last will (QoS 1, retained) that the broker publishes when
    /// the connection drops without a DISCONNECT ([`Self::drop_connection`]).
    pub async fn connect_with_will(
        port: u16,
        user: &str,
        password: &str,
        topic: &str,
        payload: impl Into<Vec<u8>>,
    ) -> anyhow::Result<Self> {
        let will = LastWill::new(topic, payload.into(), QoS::AtLeastOnce, true);
        Self::connect_with(port, user, password, Some(will)).await
    }

    async fn connect_with(
        port: u16,
        user: &str,
        password: &str,
        will: Option<LastWill>,
    ) -> anyhow::Result<Self> {
        let id = format!("probe-{}", crate::credentials::random_password());
        let mut opts = MqttOptions::new(id, "127.0.0.1", port);
        opts.set_credentials(user, password)
            .set_keep_alive(Duration::from_secs(30));
        opts.set_max_packet_size(1 << 20, 1 << 20);
        if let Some(will) = will {
            opts.set_last_will(will);
        }
        let (client, mut eventloop) = AsyncClient::new(opts, 1000);
        let (tx, events) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                let ev = match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(a))) => ProbeEvent::ConnAck(a.code),
                    Ok(Event::Incoming(Packet::SubAck(a))) => ProbeEvent::SubAck(a.return_codes),
                    Ok(Event::Incoming(Packet::PubAck(_))) => ProbeEvent::PubAck,
                    Ok(Event::Incoming(Packet::Publish(p))) => ProbeEvent::Message(Received {
                        topic: p.topic,
                        payload: p.payload.to_vec(),
                        retain: p.retain,
                    }),
                    Ok(_) => continue,
                    Err(e) => {
                        let _ = tx.send(ProbeEvent::Closed(e.to_string()));
                        return;
                    }
                };
                if tx.send(ev).is_err() {
                    return;
                }
            }
        });
        let mut probe = Self {
            client,
            task,
            events,
            messages: Default::default(),
        };
        match probe.next_event(Duration::from_secs(10)).await? {
            ProbeEvent::ConnAck(ConnectReturnCode::Success) => Ok(probe),
            ProbeEvent::ConnAck(code) => bail!("connection refused: {code:?}"),
            ProbeEvent::Closed(e) => bail!("connection failed: {e}"),
            _ => bail!("unexpected first packet"),
        }
    }

    /// The next acknowledgement or failure; messages that arrive meanwhile are queued.
    async fn next_event(&mut self, timeout: Duration) -> anyhow::Result<ProbeEvent> {
        loop {
            match self.recv(timeout).await? {
                ProbeEvent::Message(m) => self.messages.push_back(m),
                other => return Ok(other),
            }
        }
    }

    async fn recv(&mut self, timeout: Duration) -> anyhow::Result<ProbeEvent> {
        tokio::time::timeout(timeout, self.events.recv())
            .await
            .context("timed out waiting for the broker")?
            .context("probe task ended")
    }

    /// Subscribes and waits for the SUBACK; returns whether the broker granted it.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> anyhow::Result<bool> {
        self.client.subscribe(filter, qos).await?;
        match self.next_event(Duration::from_secs(10)).await? {
            ProbeEvent::SubAck(codes) => Ok(codes
                .iter()
                .all(|c| matches!(c, SubscribeReasonCode::Success(_)))),
            ProbeEvent::Closed(e) => bail!("connection closed: {e}"),
            _ => bail!("expected a SUBACK"),
        }
    }

    /// Publishes at QoS 1 and waits for the PUBACK. (Mosquitto acknowledges a publish that the
    /// ACL forbids too, and drops it; a test proves delivery from the subscriber's side.)
    pub async fn publish(
        &mut self,
        topic: &str,
        payload: impl Into<Vec<u8>>,
        retain: bool,
    ) -> anyhow::Result<()> {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload.into())
            .await?;
        match self.next_event(Duration::from_secs(10)).await? {
            ProbeEvent::PubAck => Ok(()),
            ProbeEvent::Closed(e) => bail!("connection closed: {e}"),
            _ => bail!("expected a PUBACK"),
        }
    }

    /// The next message, waiting up to `timeout`.
    pub async fn next_message(&mut self, timeout: Duration) -> anyhow::Result<Received> {
        loop {
            if let Some(m) = self.messages.pop_front() {
                return Ok(m);
            }
            match self.recv(timeout).await? {
                ProbeEvent::Message(m) => return Ok(m),
                ProbeEvent::Closed(e) => bail!("connection closed: {e}"),
                _ => continue,
            }
        }
    }

    /// Messages up to and including the first on `topic`, waiting up to `timeout` for each.
    pub async fn messages_until(
        &mut self,
        topic: &str,
        timeout: Duration,
    ) -> anyhow::Result<Vec<Received>> {
        self.messages_until_one(|m| m.topic == topic, timeout).await
    }

    /// Messages up to and including the first with `payload`, waiting up to `timeout` for each.
    pub async fn messages_until_payload(
        &mut self,
        payload: &[u8],
        timeout: Duration,
    ) -> anyhow::Result<Vec<Received>> {
        self.messages_until_one(|m| m.payload == payload, timeout)
            .await
    }

    async fn messages_until_one(
        &mut self,
        last: impl Fn(&Received) -> bool,
        timeout: Duration,
    ) -> anyhow::Result<Vec<Received>> {
        let mut got = Vec::new();
        loop {
            let m = self.next_message(timeout).await?;
            let done = last(&m);
            got.push(m);
            if done {
                return Ok(got);
            }
        }
    }

    pub async fn disconnect(self) {
        let _ = self.client.disconnect().await;
    }

    /// Drops the connection at once, without a DISCONNECT: the broker publishes the last will.
    pub fn drop_connection(self) {
        self.task.abort();
    }
}

/// Runs `mosquitto_pub` against `127.0.0.1:port` at QoS 1; returns its exit status and stderr.
pub fn mosquitto_pub(
    port: u16,
    user: &str,
    password: &str,
    topic: &str,
    payload: &[u8],
) -> anyhow::Result<(bool, String)> {
    let file = std::env::temp_dir().join(format!(
        "ogm-pub-{}-{}",
        std::process::id(),
        crate::credentials::random_password()
    ));
    std::fs::write(&file, payload)?;
    let out = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-u",
            user,
            "-P",
            password,
            "-q",
            "1",
            "-t",
            topic,
            "-f",
        ])
        .arg(&file)
        .output()
        .context("running mosquitto_pub (Debian's mosquitto-clients)")?;
    let _ = std::fs::remove_file(&file);
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}
