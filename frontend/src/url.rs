//! The address bar and the document: reading the [`Route`] from `window.location` and writing
//! it back with `history.pushState` (navigation, so Back works) or `replaceState` (settings);
//! the route's theme, kiosk mode and title on `<html>`. Browser only.

use crate::route::{Route, Theme};

/// The route in the address bar now.
pub(crate) fn current() -> Route {
    web_sys::window()
        .and_then(|w| w.location().search().ok())
        .map(|q| Route::parse(&q))
        .unwrap_or_default()
}

/// `pathname?query` for a route (the page's own path, so it works behind a prefix; never one
/// that leads to another host: [`Route::link_from`]).
pub(crate) fn href(route: &Route) -> String {
    let path = web_sys::window()
        .and_then(|w| w.location().pathname().ok())
        .unwrap_or_else(|| "/".to_owned());
    route.link_from(&path)
}

/// Writes `route` into the address bar, as a new history entry when `push`.
pub(crate) fn write(route: &Route, push: bool) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let url = href(route);
    let same = window
        .location()
        .search()
        .ok()
        .is_some_and(|q| Route::parse(&q) == *route && q == route.to_query());
    if same {
        return;
    }
    if let Ok(history) = window.history() {
        let _ = if push {
            history.push_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&url))
        } else {
            history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&url))
        };
    }
}

/// `data-theme` and `data-kiosk` on `<html>`, and the title.
pub(crate) fn apply_document(route: &Route) {
    let Some(doc) = web_sys::window().and_then(|w| w.document()) else {
        return;
    };
    if let Some(html) = doc.document_element() {
        let _ = match route.theme {
            Theme::System => html.remove_attribute("data-theme"),
            t => html.set_attribute("data-theme", t.as_str()),
        };
        let _ = if route.kiosk {
            html.set_attribute("data-kiosk", "")
        } else {
            html.remove_attribute("data-kiosk")
        };
    }
    let title = match &route.device {
        Some(d) => format!("{d} · {} · Open Grid Monitor", route.view.title()),
        None => format!("{} · Open Grid Monitor", route.view.title()),
    };
    doc.set_title(&title);
}
