//! Every route path of the server.

/// Prefix of the JSON API.
pub const API: &str = "/api";
/// `GET`: what the dashboard needs to connect to the broker.
pub const CONFIG: &str = "/config";
/// `GET`: liveness and readiness.
pub const HEALTH: &str = "/health";
