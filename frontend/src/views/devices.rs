//! The devices table: online or offline (last will, or silence), RSSI, heap, last seen, and the
//! latest readings.

use leptos::prelude::*;

use super::{RouteLink, link_live};
use crate::devices::{DeviceSnapshot, Liveness, silence_limit_us};
use crate::format;
use crate::route::View;
use crate::state::{Ui, ui};

/// `#device-table`.
#[component]
pub(crate) fn DevicesView() -> impl IntoView {
    let ui = ui();
    view! {
        <section id="device-table">
            <h2>"Devices"</h2>
            <Show when=move || ui.rows.with(|r| r.is_empty())>
                <p class="empty">"No devices yet."</p>
            </Show>
            <div class="table-scroll">
                <table id="devices">
                    <thead>
                        <tr>
                            <th>"Device"</th>
                            <th>"State"</th>
                            <th>"Last seen"</th>
                            <th>"RSSI"</th>
                            <th>"Free heap"</th>
                            <th>"Frequency"</th>
                            <th>"Voltage"</th>
                            <th>"Current"</th>
                            <th>"Power"</th>
                        </tr>
                    </thead>
                    <tbody>
                        <For
                            each=move || ui.rows.get()
                            key=|row| row.id.clone()
                            children=move |row| view! { <DeviceRow snap=row.snap ui=ui /> }
                        />
                    </tbody>
                </table>
            </div>
        </section>
    }
}

/// One `<tr>` of `#devices`. `td.online` carries `data-online` (`true`/`false`) and
/// `data-state` (`online`, `silent` or `offline`).
#[component]
fn DeviceRow(
    /// The device.
    snap: RwSignal<DeviceSnapshot>,
    /// The page's signals.
    ui: Ui,
) -> impl IntoView {
    let id = snap.with_untracked(|s| s.id.clone());
    let liveness =
        Memo::new(move |_| snap.with(|s| Liveness::of(s, (ui.now_ms.get() * 1000.0) as i64)));
    let online = move || liveness.get() == Liveness::Live;
    let cell = move |f: fn(&DeviceSnapshot) -> String| move || snap.with(f);
    let state_text = move || match liveness.get() {
        Liveness::Live => "online".to_owned(),
        Liveness::Offline => "offline (last will)".to_owned(),
        Liveness::Silent => format!(
            "offline (silent > {} s)",
            snap.with(|s| silence_limit_us(s.interval_us)) / 1_000_000
        ),
    };
    let to = {
        let id = id.clone();
        Signal::derive(move || {
            let mut r = ui.route.get().with_view(View::Device);
            r.device = Some(id.clone());
            r
        })
    };
    let id_attr = id.to_string();
    let id_text = id.to_string();
    view! {
        <tr
            data-device-id=id_attr
            class:stale=move || !online() || !link_live(&ui)
            data-stale=move || (!online() || !link_live(&ui)).to_string()
        >
            <td class="device">
                <RouteLink to=to>{id_text}</RouteLink>
            </td>
            <td
                class="online"
                data-online=move || online().to_string()
                data-state=move || liveness.get().as_str()
            >
                {state_text}
            </td>
            <td class="last-seen">
                {move || format::ago(ui.now_ms.get() - snap.with(|s| s.last_seen_us) as f64 / 1000.0)}
            </td>
            <td class="rssi">{cell(|s| format::rssi(s.rssi))}</td>
            <td class="heap">{cell(|s| format::heap(s.free_heap))}</td>
            <td class="frequency">{cell(|s| s.frequency.map_or_else(|| "—".into(), format::frequency))}</td>
            <td class="voltage">{cell(|s| format::voltage(s.voltage))}</td>
            <td class="current">{cell(|s| format::current(s.current))}</td>
            <td class="power">{cell(|s| format::power(s.power))}</td>
        </tr>
    }
}
