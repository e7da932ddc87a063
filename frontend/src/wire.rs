//! The server's HTTP API as the page reads it: the contract's paths, URLs and answers
//! (`ogm_protocol::http`, which the server answers with), with history buckets read straight
//! into the page's own [`Sample`]s. Pure.
//!
//! Answers are parsed leniently (unknown fields ignored) and every failure is a sentence for the
//! page, never a panic.

use ogm_grid::{GridEvent, Source};
pub use ogm_protocol::http::{
    AlertView, AlertsAnswer, ConfigAnswer, DeviceView, ErrorAnswer, EventParams, EventsAnswer,
    ExportParams, Field, GridEventView, HistoryParams, LogParams, LogRow, LogsAnswer, path,
};

use crate::series::Sample;

/// `GET /api/history`'s answer, its buckets read into the samples the page's series hold.
pub type HistoryAnswer = ogm_protocol::http::HistoryAnswer<Sample>;

/// A grid event the server found, as the page's event list holds it.
pub fn grid_event(e: GridEventView) -> GridEvent {
    GridEvent {
        start_us: e.start_us,
        last_start_us: e.start_us,
        end_us: e.end_us,
        last_us: e.last_us,
        extreme_hz: e.extreme_hz,
        device: e.device_id,
        rocof: e.rocof,
        frequency: e.frequency,
        source: Source::History,
        devices: e
            .devices
            .into_iter()
            .map(|d| (d.device_id, d.extreme_hz))
            .collect(),
    }
}

/// The URL of the API route `route` (one of [`path`]'s, relative to [`path::API`]).
pub fn api_url(route: &str) -> String {
    format!("{}{route}", path::API)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_buckets_become_samples() {
        let a = HistoryAnswer::from_json(
            r#"{"device_id":"d","field":"frequency","start":1,"stop":9,"interval_us":4000000,
               "points":[{"t":0,"min":49.9,"mean":50.0,"max":50.1,"count":40}]}"#,
        )
        .unwrap();
        assert_eq!(a.interval_us, 4_000_000);
        assert_eq!(a.points[0].max, 50.1);
        assert_eq!(
            (a.points[0].first, a.points[0].last),
            (0, 0),
            "a bucket spans its interval until the series fills it in"
        );
        assert!(HistoryAnswer::from_json("{\"error\":\"x\"}").is_err());
    }

    #[test]
    fn every_route_the_page_calls_is_the_contract_s() {
        for route in path::PAGE_ROUTES {
            assert!(api_url(route).starts_with("/api/"), "{route}");
        }
        assert_eq!(api_url(path::CONFIG), "/api/config");
    }
}
