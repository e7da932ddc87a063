//! The InfluxDB 2 store: [`InfluxStore`] implements [`ogm_store::Store`] in the seed's schema.
//!
//! Schema (the contract with existing deployments): bucket `open_grid_monitor` by default;
//! measurements `grid_data` (frequency, voltage, current, power), `device_status` (rssi,
//! free_heap, online, battery, dropped) and `device_logs` (level, message, module); tags
//! `device_id`, `source=mqtt` and `host`; timestamps in µs (`precision=us`).
//!
//! Layout:
//! - `config.rs`: [`InfluxConfig`].
//! - `line_protocol.rs`: the pure line-protocol encoder ([`line_protocol::encode`]) and its
//!   escaping rules.
//! - `annotated_csv.rs`: the pure, panic-free parser of InfluxDB 2's annotated CSV.
//! - `flux.rs`: the pure builders of the store's Flux queries.
//! - `answers.rs`: pure conversion of parsed answers into the store's typed answers.
//! - `flux_guard.rs`: which proxied Flux queries may run, decided on InfluxDB's parse of them
//!   (an allowlist: reads of the one bucket over a bounded time range), pure.
//! - `spool.rs`: the on-disk spool's files (no network).
//! - `http.rs`: the only code that talks to InfluxDB (writes through the `influxdb2` crate,
//!   queries, the proxy's parse requests and health through reqwest).
//! - `store.rs`: [`InfluxStore`], tying them together, the spool's replay task, and the Flux
//!   proxy's stream within [`FluxLimits`].
//! - [`tokens`]: the deployment's one-shot set-up: with the admin token, the server's scoped
//!   write and read tokens (`POST /api/v2/authorizations`); not used by the running store.
//!
//! Invariants: only `http.rs` (the store) and `tokens.rs` (set-up) do network I/O, and only
//! `spool.rs` touches spool files; nothing InfluxDB answers can panic the store (no `influxdb2`
//! query helpers, our own CSV parser).

pub mod annotated_csv;
mod answers;
mod config;
pub mod flux;
pub mod flux_guard;
mod http;
pub mod line_protocol;
mod spool;
mod store;
pub mod tokens;

pub use config::{DEFAULT_BUCKET, FluxLimits, InfluxConfig, default_host};
pub use line_protocol::{encode, encode_events};
pub use spool::REJECTED_DIR;
pub use store::InfluxStore;
