//! What views may ask of the runtime: the only part of it they call. Each command is a plain
//! function; none blocks or holds the runtime.

use leptos::prelude::*;
use ogm_protocol::DeviceId;
use web_sys::HtmlCanvasElement;

use super::{logs, pages};
use crate::logs::LogFilter;
use crate::route::{Route, TimeRange};
use crate::state::Ui;
use crate::url;

pub(crate) use super::pages::CanvasKind;

/// Shows `route`: in the signal and in the address bar (a new history entry when `push`).
pub(crate) fn navigate(route: Route, push: bool) {
    if let Some(ui) = use_context::<Ui>() {
        url::write(&route, push);
        ui.route.set(route);
    }
}

/// The link a route's anchor carries (the page's own path and the route's query).
pub(crate) fn href(route: &Route) -> String {
    url::href(route)
}

/// Opens the device page for `device` over `range`: fresh series, then the history loads.
pub(crate) fn open_device_page(device: DeviceId, range: TimeRange) {
    pages::open_device_page(device, range);
}

/// Closes the device page (its view is gone): its loads stop.
pub(crate) fn close_device_page() {
    pages::close_device_page();
}

/// Opens the insight page with `device` as its reference over `range`.
pub(crate) fn open_insight_page(device: DeviceId, range: TimeRange) {
    pages::open_insight_page(device, range);
}

/// Closes the insight page: its loads stop.
pub(crate) fn close_insight_page() {
    pages::close_insight_page();
}

/// Registers a view's canvas (Some, on mount) or removes it (None, on cleanup).
pub(crate) fn set_canvas(kind: CanvasKind, canvas: Option<HtmlCanvasElement>) {
    pages::set_canvas(kind, canvas);
}

/// The logs view is open with `filter` (or closed, with None): older entries are fetched.
pub(crate) fn set_logs_view(filter: Option<LogFilter>) {
    logs::set_view(filter);
}

/// Fetches the log page before what is complete for the filter on screen.
pub(crate) fn load_older_logs() {
    logs::load_older();
}
