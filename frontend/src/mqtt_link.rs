//! [`MqttLink`]: the dashboard's MQTT 3.1.1 session as a pure state machine. No I/O.
//!
//! It takes socket events (opened, bytes, closed) and clock ticks, and returns [`Action`]s for
//! the adapter (`mqtt_ws` in the browser, plain calls in tests) to carry out. The MQTT
//! packets themselves come from `mqtt-protocol-core`'s sans-I/O `Connection`; this module adds
//! what a kiosk screen needs around it:
//! - CONNECT with credentials, a clean session and a 30 s keep-alive;
//! - SUBSCRIBE to the dashboard filter at QoS 0 after *every* CONNACK, so a reconnect never
//!   leaves the page silently unsubscribed;
//! - PINGREQ every keep-alive (the library's timer, driven by [`MqttLink::tick`]), and a
//!   watchdog that gives up on a connection that has been silent for 1.5 × keep-alive;
//! - a connect timeout, and reconnection with [`Backoff`] (reset once subscribed).
//!
//! Lifecycle: `Waiting → Opening → Handshake → Subscribing → Live`, and from any of the last
//! four back to `Waiting` on close, error or timeout.

use mqtt_protocol_core::mqtt::common::Cursor;
use mqtt_protocol_core::mqtt::connection::{ConnectionOptions, Event, TimerKind};
use mqtt_protocol_core::mqtt::packet::v3_1_1;
use mqtt_protocol_core::mqtt::packet::{GenericPacket, GenericPacketTrait, Qos, SubEntry, SubOpts};
use mqtt_protocol_core::mqtt::result_code::ConnectReturnCode;
use mqtt_protocol_core::mqtt::{Connection, Version, role};

use crate::backoff::Backoff;

/// Keep-alive sent in CONNECT, seconds.
pub const KEEP_ALIVE_S: u16 = 30;
/// How long opening the socket, CONNECT/CONNACK and SUBSCRIBE/SUBACK may take together, ms.
pub const CONNECT_TIMEOUT_MS: u64 = 10_000;
/// Largest MQTT packet accepted: the broker's own `max_packet_size`, so that every message the
/// broker lets through reaches the store and is counted there rather than killing the link.
pub const MAX_PACKET_BYTES: u32 = 262_144;

/// Who to be and what to subscribe to.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Topic filter subscribed after every CONNACK, e.g. `open_grid_monitor/#`.
    pub filter: String,
    pub keep_alive_s: u16,
}

/// The link as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// Opening the socket or in the MQTT handshake.
    Connecting,
    /// Subscribed; messages flow.
    Connected,
    /// Down; the next attempt starts at `retry_at_ms`.
    Offline { retry_at_ms: u64, reason: String },
}

/// What the link tells the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    State(LinkState),
    /// A PUBLISH; `retained` when it is the broker's stored copy (sent on subscribing).
    Message {
        topic: String,
        payload: Vec<u8>,
        retained: bool,
    },
}

/// What the adapter must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a new socket (dropping any previous one) and report it with [`MqttLink::on_open`].
    Open,
    /// Send these bytes as one binary frame.
    Send(Vec<u8>),
    /// Close the socket; the link has already moved on, so its close event is not needed.
    Close,
    /// Pass this on to the page.
    Notify(LinkEvent),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Waiting { retry_at_ms: u64 },
    Opening { since_ms: u64 },
    Handshake { since_ms: u64 },
    Subscribing { since_ms: u64 },
    Live,
}

/// The MQTT session and its reconnect loop.
pub struct MqttLink {
    config: LinkConfig,
    conn: Connection<role::Client>,
    phase: Phase,
    backoff: Backoff,
    last_rx_ms: u64,
    timers: Vec<(TimerKind, u64)>,
    last_error: Option<String>,
}

impl std::fmt::Debug for MqttLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttLink")
            .field("phase", &self.phase)
            .field("backoff", &self.backoff)
            .finish_non_exhaustive()
    }
}

impl MqttLink {
    /// A link that will connect at its first [`tick`](Self::tick); `seed` drives the jitter.
    pub fn new(config: LinkConfig, seed: u64) -> Self {
        Self {
            config,
            conn: new_connection(),
            phase: Phase::Waiting { retry_at_ms: 0 },
            backoff: Backoff::new(seed),
            last_rx_ms: 0,
            timers: Vec::new(),
            last_error: None,
        }
    }

    /// Whether messages are flowing.
    pub fn is_live(&self) -> bool {
        self.phase == Phase::Live
    }

    /// The watchdog limit: 1.5 × keep-alive, ms.
    pub fn watchdog_ms(&self) -> u64 {
        u64::from(self.config.keep_alive_s) * 1500
    }

    /// The socket opened: send CONNECT.
    pub fn on_open(&mut self, now_ms: u64) -> Vec<Action> {
        if !matches!(self.phase, Phase::Opening { .. }) {
            return Vec::new();
        }
        self.conn = new_connection();
        self.timers.clear();
        self.last_error = None;
        self.last_rx_ms = now_ms;
        self.phase = Phase::Handshake { since_ms: now_ms };
        let connect = match self.connect_packet() {
            Ok(p) => p,
            Err(e) => return self.fail(now_ms, format!("cannot build CONNECT: {e}"), true),
        };
        let events = self.conn.checked_send(connect);
        self.handle(events, now_ms)
    }

    /// Bytes arrived (one WebSocket frame; MQTT packets may span or share frames).
    pub fn on_bytes(&mut self, bytes: &[u8], now_ms: u64) -> Vec<Action> {
        if matches!(self.phase, Phase::Waiting { .. } | Phase::Opening { .. }) {
            return Vec::new();
        }
        self.last_rx_ms = now_ms;
        let mut out = Vec::new();
        let mut cursor = Cursor::new(bytes);
        while (cursor.position() as usize) < bytes.len() {
            let before = cursor.position();
            let events = self.conn.recv(&mut cursor);
            out.extend(self.handle(events, now_ms));
            if matches!(self.phase, Phase::Waiting { .. }) || cursor.position() == before {
                break;
            }
        }
        out
    }

    /// The socket closed or failed by itself.
    pub fn on_closed(&mut self, now_ms: u64, reason: &str) -> Vec<Action> {
        if matches!(self.phase, Phase::Waiting { .. }) {
            return Vec::new();
        }
        self.fail(now_ms, reason.to_owned(), false)
    }

    /// Time passed: retries, timeouts, keep-alive and the watchdog. Call a few times a second.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Action> {
        match self.phase {
            Phase::Waiting { retry_at_ms } if now_ms >= retry_at_ms => {
                self.phase = Phase::Opening { since_ms: now_ms };
                vec![
                    Action::Notify(LinkEvent::State(LinkState::Connecting)),
                    Action::Open,
                ]
            }
            Phase::Waiting { .. } => Vec::new(),
            Phase::Opening { since_ms }
            | Phase::Handshake { since_ms }
            | Phase::Subscribing { since_ms }
                if now_ms.saturating_sub(since_ms) > CONNECT_TIMEOUT_MS =>
            {
                self.fail(now_ms, "connection timed out".to_owned(), true)
            }
            Phase::Opening { .. } => Vec::new(),
            Phase::Handshake { .. } | Phase::Subscribing { .. } | Phase::Live => {
                if now_ms.saturating_sub(self.last_rx_ms) > self.watchdog_ms() {
                    let secs = self.watchdog_ms() / 1000;
                    return self.fail(
                        now_ms,
                        format!("no data from the broker for {secs} s"),
                        true,
                    );
                }
                let mut out = Vec::new();
                while let Some(i) = self.timers.iter().position(|&(_, at)| at <= now_ms) {
                    let (kind, _) = self.timers.swap_remove(i);
                    let events = self.conn.notify_timer_fired(kind);
                    out.extend(self.handle(events, now_ms));
                    if matches!(self.phase, Phase::Waiting { .. }) {
                        break;
                    }
                }
                out
            }
        }
    }

    fn connect_packet(
        &self,
    ) -> Result<v3_1_1::Connect, mqtt_protocol_core::mqtt::result_code::MqttError> {
        let mut b = v3_1_1::Connect::builder()
            .client_id(self.config.client_id.as_str())?
            .clean_session(true)
            .keep_alive(self.config.keep_alive_s);
        if let Some(user) = &self.config.username {
            b = b.user_name(user.as_str())?;
        }
        if let Some(pass) = &self.config.password {
            b = b.password(pass.as_str())?;
        }
        b.build()
    }

    fn subscribe(&mut self, now_ms: u64) -> Vec<Action> {
        let packet = self.conn.acquire_packet_id().and_then(|pid| {
            let entry = SubEntry::new(
                self.config.filter.as_str(),
                SubOpts::new().set_qos(Qos::AtMostOnce),
            )?;
            v3_1_1::Subscribe::builder()
                .packet_id(pid)
                .entries(vec![entry])
                .build()
        });
        match packet {
            Ok(p) => {
                let events = self.conn.checked_send(p);
                self.handle(events, now_ms)
            }
            Err(e) => self.fail(now_ms, format!("cannot build SUBSCRIBE: {e}"), true),
        }
    }

    /// Turns the library's events into actions; stops at the first fatal one.
    fn handle(&mut self, events: Vec<Event>, now_ms: u64) -> Vec<Action> {
        let mut out = Vec::new();
        let mut close = false;
        for event in events {
            match event {
                Event::RequestSendPacket { packet, .. } => {
                    out.push(Action::Send(packet.to_continuous_buffer()));
                }
                Event::RequestTimerReset { kind, duration_ms } => {
                    self.timers.retain(|&(k, _)| k != kind);
                    self.timers.push((kind, now_ms.saturating_add(duration_ms)));
                }
                Event::RequestTimerCancel(kind) => self.timers.retain(|&(k, _)| k != kind),
                Event::NotifyError(e) => self.last_error = Some(format!("MQTT error: {e}")),
                Event::RequestClose => close = true,
                Event::NotifyPacketIdReleased(_) => {}
                Event::NotifyPacketReceived(packet) => {
                    if let Some(fatal) = self.on_packet(packet, now_ms, &mut out) {
                        out.extend(self.fail(now_ms, fatal, true));
                        return out;
                    }
                }
            }
        }
        if close {
            let reason = self
                .last_error
                .take()
                .unwrap_or_else(|| "the broker connection failed".to_owned());
            out.extend(self.fail(now_ms, reason, true));
        }
        out
    }

    /// Handles one received packet; returns a reason to drop the connection, if any.
    fn on_packet(
        &mut self,
        packet: GenericPacket<u16>,
        now_ms: u64,
        out: &mut Vec<Action>,
    ) -> Option<String> {
        match packet {
            GenericPacket::V3_1_1Connack(ack) => {
                let rc = ack.return_code();
                if rc != ConnectReturnCode::Accepted {
                    return Some(format!("the broker refused the connection: {rc}"));
                }
                self.phase = Phase::Subscribing { since_ms: now_ms };
                out.extend(self.subscribe(now_ms));
            }
            GenericPacket::V3_1_1Suback(ack) => {
                if ack.return_codes().iter().any(|rc| !rc.is_success()) {
                    return Some(format!(
                        "the broker refused the subscription to {}",
                        self.config.filter
                    ));
                }
                if self.phase != Phase::Live {
                    self.phase = Phase::Live;
                    self.backoff.reset();
                    out.push(Action::Notify(LinkEvent::State(LinkState::Connected)));
                }
            }
            GenericPacket::V3_1_1Publish(p) => {
                out.push(Action::Notify(LinkEvent::Message {
                    topic: p.topic_name().to_owned(),
                    payload: p.payload().as_slice().to_vec(),
                    retained: p.retain(),
                }));
            }
            _ => {}
        }
        None
    }

    fn fail(&mut self, now_ms: u64, reason: String, close_socket: bool) -> Vec<Action> {
        // Releases the library's state; its events (timer cancels) are moot here.
        let _ = self.conn.notify_closed();
        self.timers.clear();
        let retry_at_ms = now_ms.saturating_add(self.backoff.next_delay_ms());
        self.phase = Phase::Waiting { retry_at_ms };
        let mut out = Vec::with_capacity(2);
        if close_socket {
            out.push(Action::Close);
        }
        out.push(Action::Notify(LinkEvent::State(LinkState::Offline {
            retry_at_ms,
            reason,
        })));
        out
    }
}

fn new_connection() -> Connection<role::Client> {
    let options = ConnectionOptions::new().maximum_packet_size_recv(MAX_PACKET_BYTES);
    let mut conn = Connection::<role::Client>::with_options(Version::V3_1_1, options);
    conn.set_auto_pub_response(true);
    conn
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backoff::{BASE_MS, JITTER, XorShift};
    use mqtt_protocol_core::mqtt::result_code::SubackReturnCode;

    const FILTER: &str = "open_grid_monitor/#";

    fn link() -> MqttLink {
        MqttLink::new(
            LinkConfig {
                client_id: "ogm-dash-test".into(),
                username: Some("ogm.dashboard".into()),
                password: Some("secret".into()),
                filter: FILTER.into(),
                keep_alive_s: KEEP_ALIVE_S,
            },
            42,
        )
    }

    fn connack(rc: ConnectReturnCode) -> Vec<u8> {
        v3_1_1::Connack::builder()
            .session_present(false)
            .return_code(rc)
            .build()
            .unwrap()
            .to_continuous_buffer()
    }

    fn suback(rc: SubackReturnCode) -> Vec<u8> {
        v3_1_1::Suback::builder()
            .packet_id(1)
            .return_codes(vec![rc])
            .build()
            .unwrap()
            .to_continuous_buffer()
    }

    fn publish(topic: &str, payload: &[u8]) -> Vec<u8> {
        v3_1_1::Publish::builder()
            .topic_name(topic)
            .unwrap()
            .qos(Qos::AtMostOnce)
            .payload(payload.to_vec())
            .build()
            .unwrap()
            .to_continuous_buffer()
    }

    fn pingresp() -> Vec<u8> {
        v3_1_1::Pingresp::builder()
            .build()
            .unwrap()
            .to_continuous_buffer()
    }

    /// Bytes of every `Send`, in order.
    fn sent(actions: &[Action]) -> Vec<Vec<u8>> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(b) => Some(b.clone()),
                _ => None,
            })
            .collect()
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    fn offline(actions: &[Action]) -> Option<(u64, String)> {
        actions.iter().find_map(|a| match a {
            Action::Notify(LinkEvent::State(LinkState::Offline {
                retry_at_ms,
                reason,
            })) => Some((*retry_at_ms, reason.clone())),
            _ => None,
        })
    }

    const CONNECTED: Action = Action::Notify(LinkEvent::State(LinkState::Connected));

    /// Drives a link from `Waiting` to `Live`; returns the SUBSCRIBE bytes.
    fn bring_up(l: &mut MqttLink, now: u64) -> Vec<u8> {
        assert_eq!(
            l.tick(now),
            [
                Action::Notify(LinkEvent::State(LinkState::Connecting)),
                Action::Open
            ]
        );
        let a = l.on_open(now);
        let s = sent(&a);
        assert_eq!(s.len(), 1, "{a:?}");
        assert_eq!(s[0][0], 0x10, "CONNECT");
        assert!(contains(&s[0], b"ogm-dash-test"));
        assert!(contains(&s[0], b"ogm.dashboard"));
        assert!(contains(&s[0], b"secret"));

        let a = l.on_bytes(&connack(ConnectReturnCode::Accepted), now);
        let s = sent(&a);
        assert_eq!(s.len(), 1, "{a:?}");
        assert_eq!(s[0][0], 0x82, "SUBSCRIBE");
        assert!(contains(&s[0], FILTER.as_bytes()));
        assert_eq!(s[0].last(), Some(&0), "requested QoS 0");
        assert!(!l.is_live());

        assert_eq!(
            l.on_bytes(&suback(SubackReturnCode::SuccessMaximumQos0), now),
            [CONNECTED]
        );
        assert!(l.is_live());
        s[0].clone()
    }

    #[test]
    fn connect_connack_subscribe_suback() {
        let mut l = link();
        bring_up(&mut l, 0);
    }

    #[test]
    fn publishes_become_messages_across_frame_boundaries() {
        let mut l = link();
        bring_up(&mut l, 0);
        let a = publish("open_grid_monitor/d/measurement", b"{\"x\":1}");
        let b = publish("open_grid_monitor/d/status", b"{}");
        let mut both = a.clone();
        both.extend(&b);
        let msgs = |actions: Vec<Action>| -> Vec<String> {
            actions
                .into_iter()
                .filter_map(|x| match x {
                    Action::Notify(LinkEvent::Message { topic, .. }) => Some(topic),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(
            msgs(l.on_bytes(&both, 1)).len(),
            2,
            "two packets in one frame"
        );
        let (head, tail) = a.split_at(5);
        assert!(msgs(l.on_bytes(head, 2)).is_empty());
        let got = l.on_bytes(tail, 3);
        assert_eq!(
            got,
            [Action::Notify(LinkEvent::Message {
                topic: "open_grid_monitor/d/measurement".into(),
                payload: b"{\"x\":1}".to_vec(),
                retained: false,
            })]
        );
    }

    #[test]
    fn every_reconnect_subscribes_again() {
        let mut l = link();
        let first = bring_up(&mut l, 0);
        let a = l.on_closed(1_000, "socket closed");
        assert!(!a.contains(&Action::Close), "already closed");
        let (retry_at, reason) = offline(&a).unwrap();
        assert_eq!(reason, "socket closed");
        let min = 1_000 + (BASE_MS as f64 * (1.0 - JITTER)) as u64;
        assert!((min..=1_000 + BASE_MS).contains(&retry_at), "{retry_at}");
        assert!(l.tick(retry_at - 1).is_empty());
        assert!(l.on_closed(retry_at - 1, "late duplicate close").is_empty());
        let again = bring_up(&mut l, retry_at);
        assert_eq!(first, again);
        // Subscribed again, the backoff starts over.
        let (retry_at2, _) = offline(&l.on_closed(retry_at + 5, "x")).unwrap();
        assert!(retry_at2 <= retry_at + 5 + BASE_MS);
    }

    #[test]
    fn failed_attempts_back_off_exponentially() {
        let mut l = link();
        let mut now = 0;
        let mut delays = Vec::new();
        for _ in 0..10 {
            l.tick(now);
            l.on_open(now);
            let (retry_at, _) = offline(&l.on_closed(now, "refused")).unwrap();
            delays.push(retry_at - now);
            now = retry_at;
        }
        for (i, d) in delays.iter().enumerate() {
            let nominal = Backoff::nominal_ms(i as u32);
            assert!(
                *d <= nominal && *d as f64 >= nominal as f64 * (1.0 - JITTER),
                "{delays:?}"
            );
        }
        assert!(delays[9] >= 22_500);
    }

    #[test]
    fn keep_alive_pings_and_the_watchdog_closes_a_silent_link() {
        let mut l = link();
        bring_up(&mut l, 0);
        assert!(l.tick(29_999).is_empty());
        assert_eq!(sent(&l.tick(30_000)), [vec![0xC0, 0x00]], "PINGREQ");
        assert!(l.on_bytes(&pingresp(), 30_050).is_empty());
        assert_eq!(sent(&l.tick(60_000)), [vec![0xC0, 0x00]]);
        // No PINGRESP, nothing else either: after 1.5 × keep-alive of silence, give up.
        assert!(offline(&l.tick(30_050 + 45_000)).is_none());
        let a = l.tick(30_050 + 45_001);
        assert_eq!(a.first(), Some(&Action::Close));
        assert!(offline(&a).unwrap().1.contains("45 s"));
        assert!(!l.is_live());
    }

    #[test]
    fn traffic_keeps_the_watchdog_quiet() {
        let mut l = link();
        bring_up(&mut l, 0);
        for t in (1_000..200_000).step_by(1_000) {
            l.on_bytes(&publish("open_grid_monitor/d/logs", b"{}"), t);
            assert!(offline(&l.tick(t + 500)).is_none(), "{t}");
        }
    }

    #[test]
    fn refusals_and_timeouts_close_and_retry() {
        let mut l = link();
        l.tick(0);
        l.on_open(0);
        let a = l.on_bytes(&connack(ConnectReturnCode::NotAuthorized), 5);
        assert_eq!(a.first(), Some(&Action::Close));
        assert!(offline(&a).unwrap().1.contains("refused"));

        let mut l = link();
        l.tick(0);
        l.on_open(0);
        l.on_bytes(&connack(ConnectReturnCode::Accepted), 1);
        let a = l.on_bytes(&suback(SubackReturnCode::Failure), 2);
        assert!(offline(&a).unwrap().1.contains("subscription"));

        let mut l = link();
        assert_eq!(l.tick(0).last(), Some(&Action::Open));
        assert!(l.tick(CONNECT_TIMEOUT_MS).is_empty());
        let a = l.tick(CONNECT_TIMEOUT_MS + 1);
        assert_eq!(a.first(), Some(&Action::Close));
        assert!(offline(&a).unwrap().1.contains("timed out"));
    }

    #[test]
    fn malformed_input_closes_the_link_without_panicking() {
        let mut l = link();
        bring_up(&mut l, 0);
        // A CONNACK whose remaining length is wrong.
        let a = l.on_bytes(&[0x20, 0x03, 0x00, 0x00, 0x00], 1);
        assert!(offline(&a).is_some(), "{a:?}");

        // Random frames in every phase: whatever happens, no panic and the link keeps cycling.
        let mut rng = XorShift::new(7);
        let mut l = link();
        let mut now = 0;
        for _ in 0..3_000 {
            now += 700;
            l.tick(now);
            l.on_open(now);
            let len = (rng.next_u64() % 40) as usize;
            let mut frame: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            if rng.next_u64().is_multiple_of(3) {
                frame.splice(0..0, connack(ConnectReturnCode::Accepted));
            }
            l.on_bytes(&frame, now);
        }

        // Mutated PUBLISH packets on a live link.
        let good = publish("open_grid_monitor/dev-1/measurement", b"{\"frequency\":50}");
        for _ in 0..3_000 {
            let mut l = link();
            l.tick(0);
            l.on_open(0);
            l.on_bytes(&connack(ConnectReturnCode::Accepted), 0);
            l.on_bytes(&suback(SubackReturnCode::SuccessMaximumQos0), 0);
            let mut frame = good.clone();
            for _ in 0..1 + rng.next_u64() % 4 {
                let i = (rng.next_u64() as usize) % frame.len();
                frame[i] = rng.next_u64() as u8;
            }
            if rng.next_u64().is_multiple_of(4) {
                frame.truncate((rng.next_u64() as usize) % frame.len());
            }
            l.on_bytes(&frame, 1);
            l.tick(2);
        }
    }

    #[test]
    fn events_on_a_dead_link_are_ignored() {
        let mut l = link();
        assert!(l.on_open(0).is_empty(), "no socket was asked for");
        assert!(
            l.on_bytes(&connack(ConnectReturnCode::Accepted), 0)
                .is_empty()
        );
        assert!(l.on_closed(0, "x").is_empty());
    }
}
