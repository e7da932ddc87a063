//! The MQTT link: the only code that talks to the broker.
//!
//! A session: resolve the broker, open TCP, send CONNECT (MQTT 5, clean start, 30 s keep-alive,
//! username = device id) with the retained last will, a status saying `online: false`, built by
//! the core. Then serve the app's publish requests one at a time: PUBLISH at QoS 1 and wait for
//! the PUBACK before answering, so the app removes a reading from its buffer only once the
//! broker has it. Between requests, PINGREQ every 15 s. Any error ends the session (the app hears
//! the link is down and keeps buffering); the next one starts after a growing pause.
//!
//! A message whose PUBACK was lost is sent again in the next session (the app still holds it):
//! at-least-once, and the server's writes are idempotent on (device, kind, timestamp).

use core::num::NonZero;

use embassy_futures::select::{Either, select};
use embassy_net::dns::DnsQueryType;
use embassy_net::tcp::TcpSocket;
use embassy_net::{IpAddress, Stack};
use embassy_time::{Duration, Timer, with_timeout};
use log::{info, warn};
use ogm_firmware_core::Topics;
use ogm_protocol::Kind;
use rust_mqtt::Bytes;
use rust_mqtt::buffer::AllocBuffer;
use rust_mqtt::client::Client;
use rust_mqtt::client::event::Event;
use rust_mqtt::client::options::{ConnectOptions, PublicationOptions, TopicReference, WillOptions};
use rust_mqtt::config::KeepAlive;
use rust_mqtt::types::{MqttBinary, MqttString, TopicName};

use crate::settings::{BROKER_HOST, BROKER_PORT, DEVICE_ID, MQTT_PASSWORD};
use crate::shared::{self, LINK_STATE, REQUESTS, RESULTS, Request};

const KEEP_ALIVE_S: u16 = 30;
const PING_EVERY: Duration = Duration::from_secs(15);
/// How long to wait for a PUBACK or PINGRESP before giving the connection up.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);
const MIN_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Why a session ended.
#[derive(Debug)]
enum LinkError {
    Dns,
    Tcp,
    /// A name or payload rust-mqtt refuses (cannot happen with validated settings).
    Encoding,
    Connect,
    Publish,
    Timeout,
    Closed,
}

type Mqtt<'a, 's> = Client<'a, 'a, TcpSocket<'s>, AllocBuffer, 1, 1, 1, 0, 0, 0, 0>;

/// Connects, serves and reconnects forever.
#[embassy_executor::task]
pub async fn link_task(stack: Stack<'static>, topics: Topics) -> ! {
    let mut rx = [0u8; 1024];
    let mut tx = [0u8; 2048];
    let mut backoff = MIN_BACKOFF;
    loop {
        stack.wait_config_up().await;
        let started = embassy_time::Instant::now();
        let result = session(stack, &topics, &mut rx, &mut tx).await;
        LINK_STATE.signal(false);
        warn!(
            "mqtt: session ended: {result:?}; retrying in {} ms",
            backoff.as_millis()
        );
        // A session that lasted is not a failure streak.
        if started.elapsed() > Duration::from_secs(60) {
            backoff = MIN_BACKOFF;
        }
        Timer::after(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn session(
    stack: Stack<'static>,
    topics: &Topics,
    rx: &mut [u8],
    tx: &mut [u8],
) -> Result<(), LinkError> {
    let address = resolve(stack).await?;
    let mut socket = TcpSocket::new(stack, rx, tx);
    socket.set_timeout(Some(Duration::from_secs(u64::from(KEEP_ALIVE_S) * 2)));
    socket
        .connect((address, BROKER_PORT))
        .await
        .map_err(|_| LinkError::Tcp)?;

    let will = topics.last_will(
        shared::unix_now().unwrap_or(0),
        shared::health(),
        shared::DROPPED.lock(core::cell::Cell::get),
    );
    let will_topic = topic_name(will.topic)?;
    let will_payload =
        MqttBinary::try_from(will.payload.as_slice()).map_err(|_| LinkError::Encoding)?;
    let user = MqttString::try_from(DEVICE_ID).map_err(|_| LinkError::Encoding)?;
    let password = MqttBinary::try_from(MQTT_PASSWORD).map_err(|_| LinkError::Encoding)?;
    let keep_alive = NonZero::new(KEEP_ALIVE_S).map_or(KeepAlive::Infinite, KeepAlive::Seconds);
    let options = ConnectOptions::new()
        .clean_start()
        .keep_alive(keep_alive)
        .user_name(user.clone())
        .password(password)
        .will(
            WillOptions::new(will_topic, will_payload)
                .at_least_once()
                .retain(),
        );

    let mut buffer = AllocBuffer;
    let mut client: Mqtt<'_, '_> = Client::new(&mut buffer);
    client
        .connect(socket, &options, Some(user))
        .await
        .map_err(|e| {
            warn!("mqtt: CONNECT refused or failed: {e:?}");
            LinkError::Connect
        })?;
    info!("mqtt: connected to {BROKER_HOST}:{BROKER_PORT} as {DEVICE_ID}");
    LINK_STATE.signal(true);

    loop {
        match select(REQUESTS.receive(), Timer::after(PING_EVERY)).await {
            Either::First(request) => {
                let result = publish(&mut client, topics, &request).await;
                RESULTS.signal(result.is_ok());
                result?;
            }
            Either::Second(()) => {
                client.ping().await.map_err(|_| LinkError::Closed)?;
                wait_for(&mut client, |e| matches!(e, Event::Pingresp)).await?;
            }
        }
    }
}

async fn resolve(stack: Stack<'static>) -> Result<IpAddress, LinkError> {
    let addresses = stack
        .dns_query(BROKER_HOST, DnsQueryType::A)
        .await
        .map_err(|_| LinkError::Dns)?;
    addresses.first().copied().ok_or(LinkError::Dns)
}

fn topic_name(topic: &str) -> Result<TopicName<'_>, LinkError> {
    let s = MqttString::try_from(topic).map_err(|_| LinkError::Encoding)?;
    TopicName::new(s).ok_or(LinkError::Encoding)
}

/// PUBLISH at QoS 1 and wait for its PUBACK.
async fn publish(
    client: &mut Mqtt<'_, '_>,
    topics: &Topics,
    request: &Request,
) -> Result<(), LinkError> {
    let topic = TopicReference::Name(topic_name(topics.topic(request.kind))?);
    let mut options = PublicationOptions::new(topic).at_least_once();
    if request.retain {
        options = options.retain();
    }
    let id = client
        .publish(&options, Bytes::from(request.payload.as_slice()))
        .await
        .map_err(|e| {
            warn!("mqtt: PUBLISH failed: {e:?}");
            LinkError::Publish
        })?;
    if request.kind == Kind::Status {
        info!("mqtt: status published");
    }
    wait_for(client, |e| match (e, id) {
        (Event::PublishAcknowledged(ack), Some(id)) => ack.packet_identifier == id,
        _ => false,
    })
    .await
}

/// Reads packets until one satisfies `done`, within [`ACK_TIMEOUT`]. A timeout leaves the
/// client mid-packet, so it ends the session.
async fn wait_for(
    client: &mut Mqtt<'_, '_>,
    mut done: impl FnMut(&Event<'_, 0, 0>) -> bool,
) -> Result<(), LinkError> {
    with_timeout(ACK_TIMEOUT, async {
        loop {
            match client.poll().await {
                Ok(event) if done(&event) => return Ok(()),
                Ok(Event::PublishRejected(rejected)) => {
                    warn!(
                        "mqtt: broker rejected a publication: {:?}",
                        rejected.reason_code
                    );
                    return Err(LinkError::Publish);
                }
                Ok(_) => {}
                Err(e) => {
                    warn!("mqtt: connection error: {e:?}");
                    return Err(LinkError::Closed);
                }
            }
        }
    })
    .await
    .map_err(|_| LinkError::Timeout)?
}
