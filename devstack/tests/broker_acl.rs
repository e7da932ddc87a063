//! The project's Mosquitto policy, ACL and broker plugin, proven against the real broker: on the
//! local stack's main config and on the docker-compose one (`mosquitto/mosquitto.conf`, paths
//! rewritten), over MQTT on TCP and over MQTT on WebSocket (the dashboard's way in).
//!
//! How "refused" is proven, never by waiting:
//! - a connection: by the CONNACK's return code;
//! - a subscription: by the SUBACK's return code (0x80), and by delivery order below;
//! - a publish: Mosquitto acknowledges a publish that the ACL forbids and drops it, so the test
//!   then has an allowed marker published (after that PUBACK) and the subscriber must see the
//!   marker with nothing forbidden before it. The broker handles one packet at a time and routes
//!   a publish before acknowledging it, so anything it had let through would come first;
//! - "not retained": a new subscriber gets retained messages before its SUBACK, so the first
//!   message it sees after subscribing must be a marker published later;
//! - a connection that was not taken over: it still receives a marker published afterwards,
//!   and the broker never logged "already connected".

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::time::Duration;

use ogm_devstack::{
    BrokerPorts, Credentials, DASHBOARD_USER, MainConfig, Mosquitto, MqttProbe, ProbeOptions,
    SERVER_USER, Transport, mosquitto_pub, mqtt5_connack,
};
use rumqttc::{ConnectReturnCode, LastWill, QoS, SubscribeReasonCode};

const T: Duration = Duration::from_secs(10);
/// The docker-compose stack's share group (`OGM_MQTT_SHARE_GROUP`'s default).
const GROUP: &str = "ogm";
/// What Mosquitto logs when a client id's connection is taken over.
const TAKEOVER: &str = "already connected";

struct Broker {
    _dir: tempfile::TempDir,
    broker: Mosquitto,
    creds: Credentials,
    main: MainConfig,
}

fn broker() -> Broker {
    broker_with(MainConfig::Local)
}

fn broker_with(main: MainConfig) -> Broker {
    let dir = tempfile::tempdir().unwrap();
    let creds = Credentials::generate();
    let mut users = creds.service_users().to_vec();
    users.extend([
        ("dev-a", creds.device.as_str()),
        ("dev-b", creds.device.as_str()),
        (LONGEST_ID, creds.device.as_str()),
    ]);
    let broker = Mosquitto::start_main(main, dir.path(), BrokerPorts::free(), &users).unwrap();
    Broker {
        _dir: dir,
        broker,
        creds,
        main,
    }
}

/// Runs `check` on a fresh broker of each main config, over each of its listeners.
async fn on_every_broker_and_listener(check: impl AsyncFn(&Broker, Transport)) {
    for main in [MainConfig::Local, MainConfig::Compose] {
        for via in [Transport::Tcp, Transport::WebSocket] {
            let b = broker_with(main);
            check(&b, via).await;
            let log = b.broker.log_text();
            assert!(!log.contains(TAKEOVER), "{main:?} over {via:?}: {log}");
        }
    }
}

impl Broker {
    fn port(&self, via: Transport) -> u16 {
        match via {
            Transport::Tcp => self.broker.ports.mqtt,
            Transport::WebSocket => self.broker.ports.ws,
        }
    }

    /// A subscriber as the server user (its own probe client id), to every device topic.
    async fn server(&self) -> MqttProbe {
        MqttProbe::subscribed(
            self.broker.ports.mqtt,
            SERVER_USER,
            &self.creds.server,
            "open_grid_monitor/#",
        )
        .await
        .unwrap()
    }

    /// Connects as the server itself does: client id `ogm.server`, persistent session, QoS 1
    /// subscription through the compose stack's share group.
    async fn the_server(&self) -> MqttProbe {
        let mut s = MqttProbe::connect_with(
            self.broker.ports.mqtt,
            SERVER_USER,
            &self.creds.server,
            ProbeOptions::default()
                .client_id(SERVER_USER)
                .persistent_session(),
        )
        .await
        .unwrap();
        let filter = format!("$share/{GROUP}/open_grid_monitor/#");
        assert!(s.subscribe(&filter, QoS::AtLeastOnce).await.unwrap());
        s
    }

    async fn device(&self, id: &str) -> MqttProbe {
        MqttProbe::connect(self.broker.ports.mqtt, id, &self.creds.device)
            .await
            .unwrap()
    }

    /// The public credential, with `options`: the CONNACK's verdict.
    async fn dashboard(
        &self,
        via: Transport,
        options: ProbeOptions,
    ) -> Result<MqttProbe, ConnectReturnCode> {
        let options = ProbeOptions {
            transport: via,
            ..options
        };
        MqttProbe::try_connect(
            self.port(via),
            DASHBOARD_USER,
            &self.creds.dashboard,
            options,
        )
        .await
        .unwrap()
    }

    /// `user` connecting over `via` with `client_id`: the CONNACK's verdict.
    async fn as_user(
        &self,
        via: Transport,
        user: &str,
        password: &str,
        client_id: &str,
    ) -> Result<MqttProbe, ConnectReturnCode> {
        MqttProbe::try_connect(
            self.port(via),
            user,
            password,
            ProbeOptions::over(via).client_id(client_id),
        )
        .await
        .unwrap()
    }
}

/// A 64-character device id, the longest there can be: the longest topics.
const LONGEST_ID: &str = "d123456789012345678901234567890123456789012345678901234567890123";

/// `dev` publishes a marker on dev-a's status topic and `to` receives it next: both are still
/// connected (`ctx` says why that matters).
async fn delivered(dev: &mut MqttProbe, to: &mut MqttProbe, ctx: &str) {
    dev.publish("open_grid_monitor/dev-a/status", "marker", false)
        .await
        .unwrap();
    let got = to.next_message(T).await.unwrap();
    assert_eq!(got.payload, b"marker", "{ctx}");
}

fn refused<T>(verdict: Result<T, ConnectReturnCode>) -> Option<ConnectReturnCode> {
    verdict.err()
}

#[tokio::test]
async fn anonymous_and_wrong_passwords_are_refused() {
    let b = broker();
    let port = b.broker.ports.mqtt;
    assert!(MqttProbe::connect(port, "", "").await.is_err(), "anonymous");
    assert!(
        MqttProbe::connect(port, "dev-a", "wrong").await.is_err(),
        "wrong password"
    );
    assert!(
        MqttProbe::connect(port, "nobody", &b.creds.device)
            .await
            .is_err(),
        "unknown user"
    );
    assert!(
        MqttProbe::connect(port, "dev-a", &b.creds.device)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_device_writes_its_own_topics_and_nothing_else() {
    let b = broker();
    let mut server = b.server().await;
    let mut dev = b.device("dev-a").await;
    for kind in ["measurement", "status", "logs"] {
        dev.publish(&format!("open_grid_monitor/dev-a/{kind}"), kind, false)
            .await
            .unwrap();
    }
    for forbidden in [
        "open_grid_monitor/dev-b/measurement",
        "open_grid_monitor/dev-a/other",
        "open_grid_monitor/x",
        "elsewhere/dev-a/measurement",
    ] {
        dev.publish(forbidden, "forged", false).await.unwrap();
    }
    dev.publish("open_grid_monitor/dev-a/logs", "marker", false)
        .await
        .unwrap();
    let got = server.messages_until_payload(b"marker", T).await.unwrap();
    let topics: Vec<&str> = got.iter().map(|m| m.topic.as_str()).collect();
    assert_eq!(
        topics,
        [
            "open_grid_monitor/dev-a/measurement",
            "open_grid_monitor/dev-a/status",
            "open_grid_monitor/dev-a/logs",
            "open_grid_monitor/dev-a/logs"
        ],
        "forged messages must not be delivered"
    );
}

#[tokio::test]
async fn a_device_reads_only_its_own_topics() {
    // Mosquitto grants every SUBSCRIBE and filters on delivery, so prove it by delivery order:
    // dev-b's message is routed before dev-a's own marker, which dev-a must see first.
    let b = broker();
    let mut dev_a = b.device("dev-a").await;
    assert!(
        dev_a
            .subscribe("open_grid_monitor/#", QoS::AtLeastOnce)
            .await
            .unwrap()
    );
    let mut dev_b = b.device("dev-b").await;
    dev_b
        .publish(
            "open_grid_monitor/dev-b/measurement",
            "not for dev-a",
            false,
        )
        .await
        .unwrap();
    dev_a
        .publish("open_grid_monitor/dev-a/status", "marker", false)
        .await
        .unwrap();
    let got = dev_a.next_message(T).await.unwrap();
    assert_eq!(
        (got.topic.as_str(), got.payload.as_slice()),
        ("open_grid_monitor/dev-a/status", &b"marker"[..])
    );
}

#[tokio::test]
async fn the_dashboard_reads_everything() {
    on_every_broker_and_listener(async |b, via| {
        let ctx = format!("{:?} over {via:?}", b.main);
        let mut dash = b.dashboard(via, ProbeOptions::default()).await.unwrap();
        assert!(
            dash.subscribe("open_grid_monitor/#", QoS::AtMostOnce)
                .await
                .unwrap(),
            "{ctx}"
        );
        let mut dev = b.device("dev-a").await;
        dev.publish("open_grid_monitor/dev-a/status", "marker", false)
            .await
            .unwrap();
        let seen = dash.next_message(T).await.unwrap();
        assert_eq!(seen.payload, b"marker", "{ctx}");
    })
    .await;
}

/// Issue 13: the dashboard's user wrote on open_grid_monitor/ogm.dashboard/... (the ACL's `%u`
/// patterns), retained, and into parked sessions.
#[tokio::test]
async fn the_public_credential_publishes_nothing_plain_or_retained() {
    on_every_broker_and_listener(async |b, via| {
        let ctx = format!("{:?} over {via:?}", b.main);
        let mut server = b.server().await;
        let mut dash = b.dashboard(via, ProbeOptions::default()).await.unwrap();
        let mut targets = vec!["open_grid_monitor/dev-a/status".to_owned()];
        for kind in ["measurement", "status", "logs", "other"] {
            targets.push(format!("open_grid_monitor/{DASHBOARD_USER}/{kind}"));
        }
        for topic in &targets {
            for retain in [false, true] {
                dash.publish(topic, "forged by the dashboard", retain)
                    .await
                    .unwrap();
            }
        }
        let mut dev = b.device("dev-a").await;
        dev.publish("open_grid_monitor/dev-a/logs", "marker", false)
            .await
            .unwrap();
        let got = server.messages_until_payload(b"marker", T).await.unwrap();
        assert_eq!(got.len(), 1, "{ctx}: delivered {got:?}");

        // Nothing was retained: a new subscriber's first message is a later marker.
        let mut late = b.server().await;
        dev.publish("open_grid_monitor/dev-a/logs", "marker 2", false)
            .await
            .unwrap();
        let first = late.next_message(T).await.unwrap();
        assert_eq!(first.payload, b"marker 2", "{ctx}: retained {first:?}");
    })
    .await;
}

#[tokio::test]
async fn the_public_credentials_last_will_is_not_published() {
    on_every_broker_and_listener(async |b, via| {
        let ctx = format!("{:?} over {via:?}", b.main);
        let mut server = b.server().await;
        for (i, topic) in [
            format!("open_grid_monitor/{DASHBOARD_USER}/status"),
            "open_grid_monitor/dev-a/status".to_owned(),
        ]
        .iter()
        .enumerate()
        {
            let id = format!("{DASHBOARD_USER}-will-{i}");
            let will = LastWill::new(topic, "forged will", QoS::AtLeastOnce, true);
            let dash = b
                .dashboard(via, ProbeOptions::default().client_id(&id).will(will))
                .await
                .unwrap();
            dash.drop_connection();
            // Once the broker has logged the connection's end, it has also dealt with the will
            // (published it or not), before it reads the marker below.
            b.broker
                .wait_for_log(&format!("Client {id} "), T)
                .await
                .unwrap();
        }
        let mut dev = b.device("dev-a").await;
        dev.publish("open_grid_monitor/dev-a/logs", "marker", false)
            .await
            .unwrap();
        let got = server.messages_until_payload(b"marker", T).await.unwrap();
        assert_eq!(got.len(), 1, "{ctx}: delivered {got:?}");
    })
    .await;
}

#[tokio::test]
async fn the_public_credential_cannot_take_over_the_servers_connection() {
    on_every_broker_and_listener(async |b, via| {
        let ctx = format!("{:?} over {via:?}", b.main);
        let mut server = b.the_server().await;
        // ogm.server is the server's default id, ogm.server-1 and -2 the compose replicas'.
        for id in [SERVER_USER, "ogm.server-1", "ogm.server-2", "ogm-server"] {
            for persistent in [false, true] {
                let mut o = ProbeOptions::default().client_id(id);
                o.persistent_session = persistent;
                assert_eq!(
                    refused(b.dashboard(via, o).await),
                    Some(ConnectReturnCode::NotAuthorized),
                    "{ctx}: {id}, persistent: {persistent}"
                );
            }
        }
        let mut dev = b.device("dev-a").await;
        delivered(
            &mut dev,
            &mut server,
            &format!("{ctx}: the server is still connected"),
        )
        .await;
    })
    .await;
}

/// The server's session while it is away (a restart): the messages queued for it stay its own.
#[tokio::test]
async fn the_servers_parked_session_and_its_queue_stay_the_servers() {
    on_every_broker_and_listener(async |b, via| {
        let ctx = format!("{:?} over {via:?}", b.main);
        b.the_server().await.disconnect().await;
        b.broker
            .wait_for_log(&format!("Client {SERVER_USER} disconnected"), T)
            .await
            .unwrap();
        let mut dev = b.device("dev-a").await;
        dev.publish("open_grid_monitor/dev-a/measurement", "queued", false)
            .await
            .unwrap();
        for persistent in [true, false] {
            let mut o = ProbeOptions::default().client_id(SERVER_USER);
            o.persistent_session = persistent;
            assert_eq!(
                refused(b.dashboard(via, o).await),
                Some(ConnectReturnCode::NotAuthorized),
                "{ctx}, persistent: {persistent}"
            );
        }
        let mut server = b.the_server().await;
        let got = server.next_message(T).await.unwrap();
        assert_eq!(
            got.payload, b"queued",
            "{ctx}: the queue is still the server's"
        );
    })
    .await;
}

#[tokio::test]
async fn the_public_credential_cannot_take_over_a_devices_connection() {
    on_every_broker_and_listener(async |b, via| {
        let ctx = format!("{:?} over {via:?}", b.main);
        let mut server = b.server().await;
        let mut dev = b.device("dev-a").await;
        for id in ["dev-a", "dev-b"] {
            assert_eq!(
                refused(
                    b.dashboard(via, ProbeOptions::default().client_id(id))
                        .await
                ),
                Some(ConnectReturnCode::NotAuthorized),
                "{ctx}: {id}"
            );
        }
        delivered(
            &mut dev,
            &mut server,
            &format!("{ctx}: the device is still connected"),
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn the_public_credential_cannot_join_a_shared_subscription() {
    on_every_broker_and_listener(async |b, via| {
        let ctx = format!("{:?} over {via:?}", b.main);
        let mut server = b.the_server().await;
        let mut dash = b.dashboard(via, ProbeOptions::default()).await.unwrap();
        for group in [GROUP, "other"] {
            let codes = dash
                .suback(
                    &format!("$share/{group}/open_grid_monitor/#"),
                    QoS::AtLeastOnce,
                )
                .await
                .unwrap();
            assert_eq!(codes, [SubscribeReasonCode::Failure], "{ctx}: {group}");
        }
        // Nor hold the broker's memory with long filters (thousands of 16 KB ones took it to
        // 425 MB): past 256 bytes a filter is refused.
        let long = format!("open_grid_monitor/{}#", "x/".repeat(120));
        let codes = dash.suback(&long, QoS::AtMostOnce).await.unwrap();
        assert_eq!(
            codes,
            [SubscribeReasonCode::Failure],
            "{ctx}: a long filter"
        );
        // Nothing reaches the dashboard through them: its first message is a marker on the one
        // topic it subscribed to directly, sent after the rest of the stream.
        assert!(
            dash.subscribe("open_grid_monitor/dev-a/status", QoS::AtMostOnce)
                .await
                .unwrap()
        );
        let mut dev = b.device("dev-a").await;
        for i in 0..4 {
            dev.publish(
                "open_grid_monitor/dev-a/measurement",
                format!("m{i}"),
                false,
            )
            .await
            .unwrap();
        }
        dev.publish("open_grid_monitor/dev-a/status", "marker", false)
            .await
            .unwrap();
        let first = dash.next_message(T).await.unwrap();
        assert_eq!(first.payload, b"marker", "{ctx}: {first:?}");
        // And the server's share group got the whole stream.
        let got = server.messages_until_payload(b"marker", T).await.unwrap();
        let payloads: Vec<&[u8]> = got.iter().map(|m| m.payload.as_slice()).collect();
        assert_eq!(
            payloads,
            [&b"m0"[..], b"m1", b"m2", b"m3", b"marker"],
            "{ctx}"
        );
    })
    .await;
}

#[tokio::test]
async fn the_public_credential_gets_no_session_that_outlives_its_connection() {
    on_every_broker_and_listener(async |b, via| {
        let ctx = format!("{:?} over {via:?}", b.main);
        assert_eq!(
            refused(
                b.dashboard(via, ProbeOptions::default().persistent_session())
                    .await
            ),
            Some(ConnectReturnCode::NotAuthorized),
            "{ctx}: MQTT 3.1.1 without clean session"
        );
        // MQTT 5 says it with a session expiry interval, which a plugin of Mosquitto 2.0 does not
        // see: MQTT 5 is refused to this user altogether.
        use rumqttc::v5::mqttbytes::v5::ConnectReturnCode as Code5;
        for expiry in [Some(3600), None] {
            let code = mqtt5_connack(
                b.port(via),
                via,
                DASHBOARD_USER,
                &b.creds.dashboard,
                &format!("{DASHBOARD_USER}-v5"),
                expiry,
            )
            .await
            .unwrap();
            assert_eq!(
                code,
                Code5::NotAuthorized,
                "{ctx}: MQTT 5, expiry {expiry:?}"
            );
        }
        // The server and devices still may (the server's ingest needs its session).
        let code = mqtt5_connack(
            b.port(via),
            via,
            SERVER_USER,
            &b.creds.server,
            SERVER_USER,
            Some(3600),
        )
        .await
        .unwrap();
        assert_eq!(code, Code5::Success, "{ctx}: the server over MQTT 5");
    })
    .await;
}

#[tokio::test]
async fn the_server_user_shares_its_stream_and_keeps_to_its_own_client_ids() {
    on_every_broker_and_listener(async |b, via| {
        let ctx = format!("{:?} over {via:?}", b.main);
        let mut server = b.the_server().await;
        // A second replica, as the compose profile "scale" runs it.
        let mut replica = MqttProbe::connect_with(
            b.port(via),
            SERVER_USER,
            &b.creds.server,
            ProbeOptions::over(via)
                .client_id("ogm.server-2")
                .persistent_session(),
        )
        .await
        .unwrap();
        assert!(
            replica
                .subscribe(
                    &format!("$share/{GROUP}/open_grid_monitor/#"),
                    QoS::AtLeastOnce
                )
                .await
                .unwrap(),
            "{ctx}"
        );
        for id in ["dev-a", "ogm.dashboard-1", "ogm.server2", "ogm-server"] {
            assert_eq!(
                refused(b.as_user(via, SERVER_USER, &b.creds.server, id).await),
                Some(ConnectReturnCode::NotAuthorized),
                "{ctx}: {id}"
            );
        }
        // The two members share the stream: each message reaches one of them.
        let mut dev = b.device("dev-a").await;
        for i in 0..6 {
            dev.publish(
                "open_grid_monitor/dev-a/measurement",
                format!("m{i}"),
                false,
            )
            .await
            .unwrap();
        }
        let mut got = Vec::new();
        while got.len() < 6 {
            tokio::select! {
                m = server.next_message(T) => got.push(m.unwrap().payload),
                m = replica.next_message(T) => got.push(m.unwrap().payload),
            }
        }
        got.sort();
        let want: Vec<Vec<u8>> = (0..6).map(|i| format!("m{i}").into_bytes()).collect();
        assert_eq!(got, want, "{ctx}");
    })
    .await;
}

#[tokio::test]
async fn a_device_keeps_its_client_id_and_only_its_own() {
    on_every_broker_and_listener(async |b, via| {
        let ctx = format!("{:?} over {via:?}", b.main);
        let mut server = b.server().await;
        for id in [
            "dev-b",
            SERVER_USER,
            "ogm.server-1",
            "ogm.dashboard-1",
            "dev-a-2",
        ] {
            assert_eq!(
                refused(b.as_user(via, "dev-a", &b.creds.device, id).await),
                Some(ConnectReturnCode::NotAuthorized),
                "{ctx}: {id}"
            );
        }
        // Its own id, with a persistent session as the simulator asks, and a last will.
        let will = LastWill::new(
            "open_grid_monitor/dev-a/status",
            "offline",
            QoS::AtLeastOnce,
            true,
        );
        let mut dev = MqttProbe::connect_with(
            b.port(via),
            "dev-a",
            &b.creds.device,
            ProbeOptions::over(via)
                .client_id("dev-a")
                .persistent_session()
                .will(will),
        )
        .await
        .unwrap();
        dev.publish("open_grid_monitor/dev-a/measurement", "m", false)
            .await
            .unwrap();
        assert_eq!(server.next_message(T).await.unwrap().payload, b"m", "{ctx}");
        dev.drop_connection();
        let got = server.next_message(T).await.unwrap();
        assert_eq!(
            (got.topic.as_str(), got.payload.as_slice()),
            ("open_grid_monitor/dev-a/status", &b"offline"[..]),
            "{ctx}: the last will"
        );
    })
    .await;
}

/// `max_packet_size`: a device's largest payload (16 KiB) on its longest topic passes; a packet
/// beyond the limit ends the sender's connection and is not delivered.
#[tokio::test]
async fn payloads_up_to_16_kib_pass_and_larger_packets_are_refused() {
    for main in [MainConfig::Local, MainConfig::Compose] {
        let b = broker_with(main);
        let mut server = b.server().await;
        let mut dev = b.device(LONGEST_ID).await;
        let topic = format!("open_grid_monitor/{LONGEST_ID}/measurement");
        let largest = vec![b'x'; ogm_protocol::payload::MAX_PAYLOAD_BYTES];
        dev.publish(&topic, largest.clone(), false).await.unwrap();
        let got = server.next_message(T).await.unwrap();
        assert_eq!(got.payload.len(), largest.len(), "{main:?}");

        let err = dev
            .publish(&topic, vec![b'x'; 17 * 1024], false)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("closed"), "{main:?}: {err}");
        let mut other = b.device("dev-a").await;
        delivered(
            &mut other,
            &mut server,
            &format!("{main:?}: the large packet was dropped"),
        )
        .await;
    }
}

#[tokio::test]
async fn an_outside_client_publishes_with_the_command_line_tool() {
    let b = broker();
    let mut server = b.server().await;
    let (ok, err) = mosquitto_pub(
        b.broker.ports.mqtt,
        "dev-b",
        &b.creds.device,
        "open_grid_monitor/dev-b/measurement",
        b"hi",
    )
    .unwrap();
    assert!(ok, "{err}");
    let m = server.next_message(T).await.unwrap();
    assert_eq!(
        (m.topic.as_str(), m.payload.as_slice()),
        ("open_grid_monitor/dev-b/measurement", &b"hi"[..])
    );
}

#[tokio::test]
async fn users_added_at_run_time_can_connect() {
    let b = broker();
    assert!(
        MqttProbe::connect(b.broker.ports.mqtt, "dev-new", "pw-new")
            .await
            .is_err()
    );
    b.broker.add_user("dev-new", "pw-new").unwrap();
    // Mosquitto reloads its password file on SIGHUP asynchronously: retry until it has.
    MqttProbe::connect_eventually(b.broker.ports.mqtt, "dev-new", "pw-new", T)
        .await
        .unwrap();
    // The plugin still applies after the reload.
    assert_eq!(
        refused(
            b.as_user(Transport::Tcp, "dev-new", "pw-new", SERVER_USER)
                .await
        ),
        Some(ConnectReturnCode::NotAuthorized)
    );
}

/// Issue 15: the server's own topics (its status, the grid summary, alert states) and Home
/// Assistant's discovery configs take only the server's word: neither the public credential
/// nor a device writes there, plain or retained, over TCP or WebSocket; the dashboard reads
/// the server's topics.
#[tokio::test]
async fn only_the_server_writes_its_topics_and_home_assistants() {
    on_every_broker_and_listener(async |b, via| {
        let ctx = format!("{:?} over {via:?}", b.main);
        let mut watcher = MqttProbe::subscribed(
            b.broker.ports.mqtt,
            SERVER_USER,
            &b.creds.server,
            "ogm_server/#",
        )
        .await
        .unwrap();
        assert!(
            watcher
                .subscribe("homeassistant/#", QoS::AtLeastOnce)
                .await
                .unwrap(),
            "{ctx}"
        );
        let mut reader = b.dashboard(via, ProbeOptions::default()).await.unwrap();
        assert!(
            reader
                .subscribe("ogm_server/#", QoS::AtLeastOnce)
                .await
                .unwrap(),
            "{ctx}"
        );
        let targets = [
            "ogm_server/status",
            "ogm_server/grid",
            "ogm_server/alerts/frequency/grid",
            "homeassistant/sensor/ogm_grid/frequency/config",
            "homeassistant/binary_sensor/ogm_grid/alert/config",
        ];
        let mut dash = b.dashboard(via, ProbeOptions::default()).await.unwrap();
        let mut dev = b
            .as_user(via, "dev-a", &b.creds.device, "dev-a")
            .await
            .unwrap();
        for topic in targets {
            for retain in [false, true] {
                dash.publish(topic, "forged by the dashboard", retain)
                    .await
                    .unwrap();
                dev.publish(topic, "forged by a device", retain)
                    .await
                    .unwrap();
            }
        }
        let mut server = b
            .as_user(via, SERVER_USER, &b.creds.server, "ogm.server-pub")
            .await
            .unwrap();
        server
            .publish("ogm_server/grid", "marker", false)
            .await
            .unwrap();
        let got = watcher.messages_until_payload(b"marker", T).await.unwrap();
        assert_eq!(got.len(), 1, "{ctx}: delivered {got:?}");
        let got = reader.messages_until_payload(b"marker", T).await.unwrap();
        assert_eq!(got.len(), 1, "{ctx}: the dashboard got {got:?}");
        server
            .publish("homeassistant/sensor/ogm_grid/frequency/config", "{}", true)
            .await
            .unwrap();
        // Nothing forged was retained: a new subscriber gets only the server's config. It is
        // Home Assistant's reader, the dashboard's read-only user, over this listener.
        let mut late = b.dashboard(via, ProbeOptions::default()).await.unwrap();
        assert!(
            late.subscribe("homeassistant/#", QoS::AtLeastOnce)
                .await
                .unwrap(),
            "{ctx}"
        );
        let first = late.next_message(T).await.unwrap();
        assert_eq!(first.payload, b"{}", "{ctx}: retained {first:?}");
        assert!(
            late.next_message(Duration::from_millis(300)).await.is_err(),
            "{ctx}"
        );
    })
    .await;
}
