//! MQTT clients for tests: [`MqttProbe`] (rumqttc, waits for every acknowledgement so tests
//! never race the broker; over TCP or, through [`crate::ws_bridge`], over the broker's WebSocket
//! listener as browsers connect) and [`mosquitto_pub`] (the real command-line client, as an
//! outside user would publish).
//!
//! Client ids follow the broker's policy ([`client_id_for`]): a device connects as itself, a
//! service user with its name and a random suffix, so a probe never takes over the server's
//! connection or another probe's.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, LastWill, MqttOptions, Packet, QoS,
    SubscribeReasonCode,
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

/// Which of the broker's listeners a probe connects to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// MQTT over TCP (devices, the server); the port given is the MQTT port.
    #[default]
    Tcp,
    /// MQTT over WebSocket (browsers); the port given is the WebSocket port.
    WebSocket,
}

/// How a probe connects, beyond user and password.
#[derive(Debug, Clone, Default)]
pub struct ProbeOptions {
    pub transport: Transport,
    /// The client id; [`client_id_for`] the user when `None`.
    pub client_id: Option<String>,
    /// Ask for a persistent session (clean session = false).
    pub persistent_session: bool,
    /// A last will the broker publishes when the connection drops without DISCONNECT.
    pub will: Option<LastWill>,
}

impl ProbeOptions {
    pub fn over(transport: Transport) -> Self {
        Self {
            transport,
            ..Self::default()
        }
    }

    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = Some(id.into());
        self
    }

    pub fn persistent_session(mut self) -> Self {
        self.persistent_session = true;
        self
    }

    pub fn will(mut self, will: LastWill) -> Self {
        self.will = Some(will);
        self
    }
}

/// The client id the broker's policy lets `user` use (the rule of
/// `mosquitto/plugin/src/policy.rs`): a device's (no `.`) is its own name; a service user's is
/// `<user>-probe-<random>`, so it never collides with the server's.
pub fn client_id_for(user: &str) -> String {
    if user.is_empty() {
        format!("probe-{}", crate::credentials::random_password())
    } else if user.contains('.') {
        format!("{user}-probe-{}", crate::credentials::random_password())
    } else {
        user.to_owned()
    }
}

/// A connected MQTT 3.1.1 client driven by a background task.
pub struct MqttProbe {
    client: AsyncClient,
    task: tokio::task::JoinHandle<()>,
    /// The WebSocket bridge's task, for [`Transport::WebSocket`]; it ends with the connection.
    _bridge: Option<tokio::task::JoinHandle<()>>,
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
        Self::connect_with(port, user, password, ProbeOptions::default()).await
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
        Self::connect_with(port, user, password, ProbeOptions::default().will(will)).await
    }

    /// Connects with `options` and waits for the CONNACK; an error if it is refused.
    pub async fn connect_with(
        port: u16,
        user: &str,
        password: &str,
        options: ProbeOptions,
    ) -> anyhow::Result<Self> {
        match Self::try_connect(port, user, password, options).await? {
            Ok(probe) => Ok(probe),
            Err(code) => bail!("connection refused: {code:?}"),
        }
    }

    /// Connects with `options` and waits for the CONNACK: `Ok(Err(code))` when the broker
    /// answered with a refusal, an error when it did not answer at all.
    pub async fn try_connect(
        port: u16,
        user: &str,
        password: &str,
        options: ProbeOptions,
    ) -> anyhow::Result<Result<Self, ConnectReturnCode>> {
        let (port, bridge) = match options.transport {
            Transport::Tcp => (port, None),
            Transport::WebSocket => {
                let b = crate::ws_bridge::ws_bridge(port).await?;
                (b.port, Some(b.task))
            }
        };
        let id = options.client_id.unwrap_or_else(|| client_id_for(user));
        let mut opts = MqttOptions::new(id, "127.0.0.1", port);
        opts.set_credentials(user, password)
            .set_keep_alive(Duration::from_secs(30))
            .set_clean_session(!options.persistent_session);
        opts.set_max_packet_size(1 << 20, 1 << 20);
        if let Some(will) = options.will {
            opts.set_last_will(will);
        }
        let (client, mut eventloop) = AsyncClient::new(opts, 1000);
        let (tx, events) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                let ev = match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(a))) => ProbeEvent::ConnAck(a.code),
                    // rumqttc reports a refusing CONNACK as an error.
                    Err(ConnectionError::ConnectionRefused(code)) => {
                        let _ = tx.send(ProbeEvent::ConnAck(code));
                        return;
                    }
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
            _bridge: bridge,
            events,
            messages: Default::default(),
        };
        match probe.next_event(Duration::from_secs(10)).await? {
            ProbeEvent::ConnAck(ConnectReturnCode::Success) => Ok(Ok(probe)),
            ProbeEvent::ConnAck(code) => {
                probe.drop_connection();
                Ok(Err(code))
            }
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
        Ok(self
            .suback(filter, qos)
            .await?
            .iter()
            .all(|c| matches!(c, SubscribeReasonCode::Success(_))))
    }

    /// Subscribes and returns the SUBACK's return codes (`Failure` is MQTT 3.1.1's 0x80).
    pub async fn suback(
        &mut self,
        filter: &str,
        qos: QoS,
    ) -> anyhow::Result<Vec<SubscribeReasonCode>> {
        self.client.subscribe(filter, qos).await?;
        match self.next_event(Duration::from_secs(10)).await? {
            ProbeEvent::SubAck(codes) => Ok(codes),
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
    /// Over WebSocket, the bridge sees its TCP side close and closes the WebSocket, as a browser
    /// tab that goes away does.
    pub fn drop_connection(self) {
        self.task.abort();
    }
}

/// Connects with MQTT 5 (clean start, the given session expiry interval in seconds), returns
/// the broker's CONNACK reason and disconnects. For the rules about sessions, which MQTT 5
/// expresses differently from 3.1.1 (a clean start can still leave a session behind).
pub async fn mqtt5_connack(
    port: u16,
    transport: Transport,
    user: &str,
    password: &str,
    client_id: &str,
    session_expiry_s: Option<u32>,
) -> anyhow::Result<rumqttc::v5::mqttbytes::v5::ConnectReturnCode> {
    use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode as Code, Packet as P5};
    use rumqttc::v5::{ConnectionError as E5, Event as Ev5};
    let (port, _bridge) = match transport {
        Transport::Tcp => (port, None),
        Transport::WebSocket => {
            let b = crate::ws_bridge::ws_bridge(port).await?;
            (b.port, Some(b.task))
        }
    };
    let mut opts = rumqttc::v5::MqttOptions::new(client_id, "127.0.0.1", port);
    opts.set_credentials(user, password)
        .set_clean_start(true)
        .set_session_expiry_interval(session_expiry_s);
    let (client, mut eventloop) = rumqttc::v5::AsyncClient::new(opts, 10);
    let code = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match eventloop.poll().await {
                Ok(Ev5::Incoming(P5::ConnAck(ack))) => return Ok(ack.code),
                Err(E5::ConnectionRefused(code)) => return Ok(code),
                Ok(_) => continue,
                Err(e) => return Err(anyhow::anyhow!("MQTT 5 connection failed: {e}")),
            }
        }
    })
    .await
    .context("timed out waiting for the CONNACK")??;
    if code == Code::Success {
        let _ = client.try_disconnect();
        let _ = tokio::time::timeout(Duration::from_secs(2), eventloop.poll()).await;
    }
    Ok(code)
}

/// Runs `mosquitto_pub` against `127.0.0.1:port` at QoS 1 with the client id [`client_id_for`]
/// `user`; returns its exit status and stderr.
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
            "-i",
            &client_id_for(user),
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
