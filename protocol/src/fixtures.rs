//! Golden JSON shared by every crate's tests: the seed's three examples, and bad variants with
//! the rejection reason each must produce. The files live in `protocol/fixtures/`.

use crate::topic::Kind;

/// The seed README's measurement example, byte for byte.
pub const MEASUREMENT: &str = include_str!("../fixtures/measurement.json");
/// The seed README's status example.
pub const STATUS: &str = include_str!("../fixtures/status.json");
/// The seed README's log example.
pub const LOGS: &str = include_str!("../fixtures/logs.json");

/// The three good examples with their kinds.
pub const GOOD: [(Kind, &str); 3] = [
    (Kind::Measurement, MEASUREMENT),
    (Kind::Status, STATUS),
    (Kind::Logs, LOGS),
];

macro_rules! bad {
    ($kind:ident, $name:literal, $reason:literal) => {
        (
            Kind::$kind,
            $name,
            include_bytes!(concat!("../fixtures/bad/", $name, ".json")).as_slice(),
            $reason,
        )
    };
}

/// Bad payloads: (kind, name, bytes, the [`crate::PayloadError::reason`] they must produce).
pub const BAD: &[(Kind, &str, &[u8], &str)] = &[
    bad!(Measurement, "measurement_truncated", "malformed_json"),
    bad!(Measurement, "measurement_string_frequency", "wrong_schema"),
    bad!(Measurement, "measurement_missing_frequency", "wrong_schema"),
    bad!(
        Measurement,
        "measurement_negative_frequency",
        "out_of_range"
    ),
    bad!(
        Measurement,
        "measurement_overflow_frequency",
        "malformed_json"
    ),
    bad!(Measurement, "measurement_not_object", "wrong_schema"),
    bad!(Status, "status_string_rssi", "wrong_schema"),
    bad!(Status, "status_negative_heap", "wrong_schema"),
    bad!(Logs, "logs_unknown_level", "wrong_schema"),
    bad!(Logs, "logs_missing_message", "wrong_schema"),
    bad!(Measurement, "not_utf8", "malformed_json"),
];

/// A plausible measurement stamped `t` (µs) reading `frequency_hz`, at 230 V, 1 A and 230 W.
pub fn measurement(t: i64, frequency_hz: f64) -> crate::Measurement {
    crate::Measurement {
        timestamp: t,
        frequency: frequency_hz,
        voltage: 230.0,
        current: 1.0,
        power: 230.0,
    }
}

/// A status stamped `t` (µs) saying `online` (`Some(false)`: a last will), at -50 dBm.
pub fn status(t: i64, online: Option<bool>) -> crate::Status {
    crate::Status {
        timestamp: t,
        rssi: -50,
        free_heap: 1,
        online,
        battery: None,
        dropped: None,
    }
}
