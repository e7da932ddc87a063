//! Every route path of the server.

/// Prefix of the JSON API.
pub const API: &str = "/api";
/// `GET`: what the dashboard needs to connect to the broker.
pub const CONFIG: &str = "/config";
/// `GET`: liveness and readiness.
pub const HEALTH: &str = "/health";
/// `GET`: every device with its latest values.
pub const DEVICES: &str = "/devices";
/// `GET`: min/mean/max buckets of one field of one device.
pub const HISTORY: &str = "/history";
/// `GET`: device logs, newest first.
pub const LOGS: &str = "/logs";
/// `GET`: raw measurements as CSV.
pub const EXPORT_CSV: &str = "/export.csv";
/// `POST`: a Flux query, proxied to InfluxDB.
pub const FLUX: &str = "/flux";
/// `GET`: the last rejected messages.
pub const INGEST_REJECTED: &str = "/ingest/rejected";
/// `GET`: rejections since start, counted by device and reason.
pub const INGEST_REJECTED_DEVICES: &str = "/ingest/rejected/devices";
/// `GET`: Prometheus metrics (outside `/api`).
pub const METRICS: &str = "/metrics";
