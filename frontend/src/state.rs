//! The page's reactive state: the signals the views read, given to them as one context
//! ([`Ui`], all `Copy`), and the kinds of values those signals hold. Browser only.
//!
//! The runtime writes these signals; views read them and call [`crate::runtime::commands`].
//! What is on screen is [`Ui::route`], kept in the address bar by
//! [`crate::runtime::commands::navigate`].

use std::collections::BTreeMap;

use leptos::prelude::*;
use ogm_grid::{Bands, GridArea, GridEvent};
use ogm_protocol::DeviceId;

use crate::chart::LiveShown;
use crate::devices::{DeviceSnapshot, Diagnostics};
use crate::figures::Figures;
use crate::logs::LogLine;
use crate::mqtt_link::LinkState;
use crate::route::Route;
use crate::wire::{AlertsAnswer, Field};

/// What the connection indicator shows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Conn {
    LoadingConfig,
    ConfigFailed { error: String, retry_at_ms: f64 },
    Link(LinkState),
}

impl Conn {
    pub(crate) fn is_live(&self) -> bool {
        matches!(self, Conn::Link(LinkState::Connected))
    }
}

/// One device in the views: its id and its own signal.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub id: DeviceId,
    pub snap: RwSignal<DeviceSnapshot>,
}

/// How a history load is going.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) enum LoadState {
    #[default]
    Loading,
    Retrying {
        error: String,
        retry_at_ms: f64,
    },
    Ready {
        /// Buckets in the answer.
        points: usize,
        interval_us: i64,
    },
    /// The server has nothing for this request (e.g. a device it never stored).
    Unavailable(String),
}

impl LoadState {
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            LoadState::Loading => "loading",
            LoadState::Retrying { .. } => "retrying",
            LoadState::Ready { .. } => "ready",
            LoadState::Unavailable(_) => "unavailable",
        }
    }
}

/// What a chart shows, for the page's data attributes (and the tests that read them).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct ChartFacts {
    pub start_us: i64,
    pub stop_us: i64,
    /// Samples in the series.
    pub samples: usize,
    /// Longest hole between samples inside the range, ms, and where it starts, µs.
    pub max_gap_ms: i64,
    pub max_gap_at_us: i64,
    /// Time of the newest data, µs.
    pub newest_us: i64,
}

/// The signals the views read. All `Copy`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ui {
    pub route: RwSignal<Route>,
    pub conn: RwSignal<Conn>,
    pub now_ms: RwSignal<f64>,
    /// Local time's offset from UTC, minutes.
    pub tz_offset_min: RwSignal<i32>,
    /// The nominal frequency in force (the URL's, else the server's).
    pub nominal_hz: RwSignal<Option<f64>>,
    /// The synchronous area in force (the URL's, else the server's).
    pub area: RwSignal<GridArea>,
    pub rows: RwSignal<Vec<Row>>,
    pub diagnostics: RwSignal<Diagnostics>,
    pub events: RwSignal<Vec<GridEvent>>,
    pub figures: RwSignal<Figures>,
    pub logs: RwSignal<Vec<LogLine>>,
    pub logs_state: RwSignal<LoadState>,
    /// Why "Load older" has nothing more to give, if it has not.
    pub logs_end: RwSignal<Option<&'static str>>,
    /// Device page: per field.
    pub field_state: RwSignal<BTreeMap<Field, LoadState>>,
    pub field_facts: RwSignal<BTreeMap<Field, ChartFacts>>,
    pub insight_state: RwSignal<LoadState>,
    pub live_facts: RwSignal<ChartFacts>,
    /// What the live charts show: a line per device, or their crowd.
    pub live_shown: RwSignal<LiveShown>,
    /// The server's alerts, as last asked (None until the first answer).
    pub alerts: RwSignal<Option<AlertsAnswer>>,
}

impl Ui {
    /// Fresh signals for `route`, at `now_ms` in a zone `tz_offset_min` from UTC.
    pub(crate) fn new(route: Route, now_ms: f64, tz_offset_min: i32) -> Self {
        Self {
            nominal_hz: RwSignal::new(route.nominal_hz),
            area: RwSignal::new(route.area.unwrap_or_default()),
            route: RwSignal::new(route),
            conn: RwSignal::new(Conn::LoadingConfig),
            now_ms: RwSignal::new(now_ms),
            tz_offset_min: RwSignal::new(tz_offset_min),
            rows: RwSignal::new(Vec::new()),
            diagnostics: RwSignal::new(Diagnostics::default()),
            events: RwSignal::new(Vec::new()),
            figures: RwSignal::new(Figures::default()),
            logs: RwSignal::new(Vec::new()),
            logs_state: RwSignal::new(LoadState::Loading),
            logs_end: RwSignal::new(None),
            field_state: RwSignal::new(BTreeMap::new()),
            field_facts: RwSignal::new(BTreeMap::new()),
            insight_state: RwSignal::new(LoadState::Loading),
            live_facts: RwSignal::new(ChartFacts::default()),
            live_shown: RwSignal::new(LiveShown::default()),
            alerts: RwSignal::new(None),
        }
    }

    /// The bands in force (tracked), once the nominal frequency is known.
    pub(crate) fn bands(&self) -> Option<Bands> {
        let area = self.area.get();
        self.nominal_hz.get().map(|n| Bands::of(area, n))
    }
}

/// The page's signals, from the context the composition root provides.
pub(crate) fn ui() -> Ui {
    expect_context::<Ui>()
}
