//! The insight view's figures and event list, computed from the page's stores. Pure.
//!
//! The grid analysis itself (RoCoF, grid time, quality, histogram, spread, events) is
//! `ogm_grid`'s; this module only decides what the page feeds it and joins the results: the
//! figures of the reference device against the live readings of every other, the events seen
//! live with those found in the history the page loaded, and the event rules the URL sets.

use ogm_grid::{
    Bands, EventRules, GridArea, GridEvent, Histogram, Insight, Quality, grid_time_s, spread_mhz,
};
use ogm_protocol::DeviceId;

use crate::chart;
use crate::devices::{DeviceStore, Liveness};
use crate::route::Route;
use crate::series::Series;

/// The insight view's figures, recomputed once a second.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Figures {
    pub device: Option<DeviceId>,
    pub frequency: Option<f64>,
    pub rocof: Option<f64>,
    pub grid_time_s: Option<f64>,
    pub spread: Option<(f64, usize)>,
    pub quality: Option<Quality>,
    pub histogram: Option<Histogram>,
    /// Every live device's latest reading, for the agreement table.
    pub readings: Vec<(DeviceId, f64)>,
}

/// The insight page's reference device and the series loaded for it.
#[derive(Debug, Clone, Copy)]
pub struct Reference<'a> {
    pub device: &'a DeviceId,
    pub series: &'a Series,
    /// The history buckets' width, µs (0 before the history answered).
    pub interval_us: i64,
}

/// What the page is told about events: a deviation beyond the area's event threshold around
/// `nominal_hz`, or a RoCoF beyond the URL's limit.
pub fn event_rules(route: &Route, nominal_hz: f64) -> EventRules {
    EventRules {
        nominal_hz,
        threshold_mhz: Bands::of(GridArea::default(), nominal_hz).event_mhz,
        rocof_limit: route.rocof_limit,
        max_gap_us: 5_000_000,
    }
}

/// The figures at `now_us`: every live device's reading (none while the link is down: they
/// would be stale), and the reference device's frequency, RoCoF, grid time, quality and
/// histogram.
pub fn compute(
    store: &DeviceStore,
    insight: &Insight,
    reference: Option<Reference<'_>>,
    bands: &Bands,
    link_up: bool,
    now_us: i64,
) -> Figures {
    let nominal = bands.nominal_hz;
    let mut readings = Vec::new();
    for id in store.devices().keys() {
        let Some(snap) = store.snapshot(id) else {
            continue;
        };
        if link_up
            && Liveness::of(&snap, now_us) == Liveness::Live
            && let Some(f) = snap.frequency
        {
            readings.push((id.clone(), f));
        }
    }
    let device = reference.map(|r| r.device.clone());
    let frequency = device
        .as_ref()
        .and_then(|d| readings.iter().find(|(id, _)| id == d).map(|r| r.1));
    let loaded = reference.filter(|r| !r.series.is_empty());
    Figures {
        rocof: device
            .as_ref()
            .and_then(|d| insight.rocof(d))
            .filter(|_| frequency.is_some()),
        frequency,
        grid_time_s: loaded.map(|r| {
            grid_time_s(
                r.series.iter(),
                nominal,
                chart::gap_for(r.series, r.interval_us),
            )
        }),
        spread: spread_mhz(readings.iter().map(|r| r.1)),
        quality: reference.and_then(|r| Quality::of(r.series.iter(), bands)),
        histogram: loaded.map(|r| Histogram::of(r.series.iter(), nominal, bands.limit_mhz, 10.0)),
        readings,
        device,
    }
}

/// The event list: what was seen live and what the loaded history holds from before that,
/// newest first.
pub fn merge_events(mut live: Vec<GridEvent>, history: &[GridEvent]) -> Vec<GridEvent> {
    live.extend(history.iter().cloned());
    live.sort_by_key(|e| std::cmp::Reverse(e.start_us));
    live
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::Limits;
    use ogm_protocol::topic::Topic;
    use ogm_protocol::{Kind, Payload, TOPIC_PREFIX, fixtures};

    const NOW: i64 = 1_703_123_456_789_123;

    fn id(s: &str) -> DeviceId {
        DeviceId::new(s).expect("valid id")
    }

    fn store_with(readings: &[(&str, f64)]) -> DeviceStore {
        let mut s = DeviceStore::new(TOPIC_PREFIX, Limits::default());
        for (dev, f) in readings {
            let topic = Topic::new(id(dev), Kind::Measurement).to_topic(TOPIC_PREFIX);
            let json = Payload::Measurement(fixtures::measurement(NOW, *f)).to_json();
            assert!(s.ingest(&topic, &json, NOW));
        }
        s
    }

    fn insight() -> Insight {
        Insight::new(event_rules(&Route::default(), 50.0), 1_000_000)
    }

    #[test]
    fn readings_are_the_live_devices_and_only_while_the_link_is_up() {
        let store = store_with(&[("a", 50.01), ("b", 49.99)]);
        let bands = Bands::of(GridArea::default(), 50.0);
        let up = compute(&store, &insight(), None, &bands, true, NOW);
        assert_eq!(up.readings, vec![(id("a"), 50.01), (id("b"), 49.99)]);
        let (spread, n) = up.spread.expect("two readings have a spread");
        assert_eq!(n, 2);
        assert!((spread - 20.0).abs() < 1e-6, "{spread}");
        assert_eq!(up.device, None);
        assert_eq!(up.frequency, None);

        let down = compute(&store, &insight(), None, &bands, false, NOW);
        assert!(down.readings.is_empty());
        assert_eq!(down.spread, None);
    }

    #[test]
    fn the_reference_device_gives_its_frequency_and_an_empty_series_no_history_figures() {
        let store = store_with(&[("a", 50.01), ("b", 49.99)]);
        let bands = Bands::of(GridArea::default(), 50.0);
        let series = Series::sliding(60_000_000, 64);
        let b = id("b");
        let reference = Reference {
            device: &b,
            series: &series,
            interval_us: 0,
        };
        let f = compute(&store, &insight(), Some(reference), &bands, true, NOW);
        assert_eq!(f.device, Some(b));
        assert_eq!(f.frequency, Some(49.99));
        assert_eq!(f.grid_time_s, None);
        assert_eq!(f.histogram, None);
    }

    #[test]
    fn event_rules_follow_the_nominal_frequency_and_the_url() {
        let route = Route {
            rocof_limit: 0.25,
            ..Route::default()
        };
        let rules = event_rules(&route, 60.0);
        assert_eq!(rules.nominal_hz, 60.0);
        assert_eq!(rules.rocof_limit, 0.25);
        assert_eq!(
            rules.threshold_mhz,
            Bands::of(GridArea::default(), 60.0).event_mhz
        );
    }

    fn event(device: &str, start_us: i64) -> GridEvent {
        GridEvent {
            start_us,
            last_start_us: start_us,
            end_us: Some(start_us + 2_000_000),
            last_us: start_us + 2_000_000,
            extreme_hz: 49.7,
            device: id(device),
            rocof: None,
            frequency: true,
            source: ogm_grid::Source::Live,
            devices: vec![(id(device), 49.7)],
        }
    }

    #[test]
    fn merged_events_are_newest_first() {
        let live = vec![event("a", NOW), event("b", NOW - 60_000_000)];
        let history = [
            event("a", NOW - 7_200_000_000),
            event("c", NOW - 3_600_000_000),
        ];
        let merged = merge_events(live.clone(), &history);
        let starts: Vec<i64> = merged.iter().map(|e| e.start_us).collect();
        assert_eq!(
            starts,
            [
                NOW,
                NOW - 60_000_000,
                NOW - 3_600_000_000,
                NOW - 7_200_000_000
            ]
        );
        assert_eq!(merge_events(live.clone(), &[]), live);
    }
}
