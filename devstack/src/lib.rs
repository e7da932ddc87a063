//! The real stack on chosen ports, for the local run command (`ogm-dev up`) and black-box tests.
//!
//! Layout:
//! - [`browser`]: headless Chromium through chromedriver, for browser tests.
//! - [`credentials`]: broker users and their generated passwords.
//! - [`deployment`]: the docker-compose deployment's pieces without Docker: `ogm-server setup`
//!   in a temporary directory, the compose broker configs on the real broker.
//! - [`disk`]: disks that fail on purpose under a data directory: a small tmpfs to fill, an
//!   ext4 image to freeze (root).
//! - [`http`]: a minimal HTTP client for tests.
//! - [`influxd`]: a real InfluxDB 1.x for side-by-side figures.
//! - [`ingest_check`]: streams of measurements from outside devices at QoS 1, and the check that
//!   each was stored exactly once (the ingest and fault tests).
//! - [`mosquitto`]: a real `mosquitto` process with the project's policy and ACL
//!   (`mosquitto/conf.d`, `mosquitto/acl`) and a generated main config holding ports and paths.
//! - [`page`]: helpers for browser tests: payloads, JavaScript expressions that read the
//!   dashboard, in-page navigation, waits and screenshots.
//! - [`process`]: free ports, waiting for a port, finding the workspace's built binaries, and
//!   child processes that are stopped when dropped.
//! - [`probe`]: MQTT clients for tests that wait for every acknowledgement, over TCP or
//!   WebSocket, with the client ids the broker's policy allows.
//! - [`stack`]: Mosquitto + `ogm-server` + `ogm-sim` together.
//! - [`fixtures`]: topics, payloads and the clock that tests publish with.
//! - [`wait`]: waiting for a condition with a deadline, the one polling loop.
//! - [`ws_bridge`]: a local TCP port carried to the broker's WebSocket listener, for probes.
//!
//! Everything here is blocking `std` code: it is test and developer tooling, not the product.

pub mod browser;
pub mod credentials;
pub mod deployment;
pub mod disk;
pub mod fixtures;
pub mod http;
pub mod influxd;
pub mod ingest_check;
pub mod mosquitto;
pub mod page;
pub mod probe;
pub mod process;
pub mod receivers;
pub mod stack;
pub mod wait;
pub mod ws_bridge;

pub use browser::Browser;
pub use credentials::{Credentials, DASHBOARD_USER, SERVER_USER};
pub use http::{HttpResponse, http_get, http_post};
pub use influxd::Influxd;
pub use mosquitto::{BrokerPorts, MainConfig, Mosquitto};
pub use probe::{
    MqttProbe, ProbeOptions, Received, Transport, client_id_for, mosquitto_pub, mqtt5_connack,
};
pub use process::{
    ChildProcess, cargo_bin, free_port, repo_root, target_profile_dir, wait_for_port,
};
pub use stack::{Stack, StackOptions};
