//! The logs: a live stream from MQTT with level and device filters, and older entries from
//! `/api/logs`.

use leptos::prelude::*;
use ogm_protocol::{DeviceId, LogLevel};

use super::load_text;
use crate::format;
use crate::logs::{LogFilter, Origin};
use crate::runtime::commands::{load_older_logs, navigate, set_logs_view};
use crate::state::ui;

/// `#logs`.
#[component]
pub(crate) fn LogsView() -> impl IntoView {
    let ui = ui();
    let filter = Memo::new(move |_| {
        ui.route.with(|r| LogFilter {
            level: r.level,
            device: r.device.clone(),
        })
    });
    Effect::new(move |_| set_logs_view(Some(filter.get())));
    on_cleanup(|| set_logs_view(None));
    let set_level = move |ev| {
        let v = event_target_value(&ev);
        let mut r = ui.route.get_untracked();
        r.level = LogLevel::parse(&v);
        navigate(r, false);
    };
    let set_device = move |ev| {
        let v = event_target_value(&ev);
        let mut r = ui.route.get_untracked();
        r.device = DeviceId::new(&v).ok();
        navigate(r, false);
    };
    view! {
        <section id="logs">
            <h2>"Logs"</h2>
            <div class="settings">
                <label>
                    "Level "
                    <select id="log-level" on:change=set_level>
                        <option value="" selected=move || filter.with(|f| f.level.is_none())>
                            "all"
                        </option>
                        {LogLevel::ALL
                            .into_iter()
                            .skip(1)
                            .map(|l| {
                                view! {
                                    <option
                                        value=l.as_str()
                                        selected=move || filter.with(|f| f.level == Some(l))
                                    >
                                        {format!("{} and above", l.as_str())}
                                    </option>
                                }
                            })
                            .collect_view()}
                    </select>
                </label>
                <label>
                    "Device "
                    <select id="log-device" on:change=set_device>
                        <option value="" selected=move || filter.with(|f| f.device.is_none())>
                            "all"
                        </option>
                        <For
                            each=move || ui.rows.get()
                            key=|row| row.id.clone()
                            children=move |row| {
                                let id = row.id.clone();
                                view! {
                                    <option
                                        value=row.id.to_string()
                                        selected=move || filter.with(|f| f.device.as_ref() == Some(&id))
                                    >
                                        {row.id.to_string()}
                                    </option>
                                }
                            }
                        />
                    </select>
                </label>
                <button
                    type="button"
                    id="log-older"
                    disabled=move || ui.logs_end.get().is_some()
                    title=move || ui.logs_end.get()
                    on:click=move |_| load_older_logs()
                >
                    "Load older"
                </button>
                <span class="load-state">{move || load_text(&ui.logs_state.get(), ui.now_ms.get())}</span>
            </div>
            <Show when=move || ui.logs.with(|l| l.is_empty())>
                <p class="empty">"No log entries."</p>
            </Show>
            <ol id="log-list">
                <For
                    each=move || ui.logs.get()
                    key=|l| (l.t, l.device.clone(), l.message.clone())
                    children=move |l| {
                        let tz = ui.tz_offset_min.get_untracked();
                        view! {
                            <li
                                class=format!("log level-{}", l.level.as_str().to_ascii_lowercase())
                                data-device-id=l.device.to_string()
                                data-level=l.level.as_str()
                                data-origin=match l.origin { Origin::Live => "live", Origin::History => "history" }
                                data-t=l.t.to_string()
                            >
                                <time>{format::date_time(l.t, tz)}</time>
                                <span class="log-device">{l.device.to_string()}</span>
                                <span class="log-level">{l.level.as_str()}</span>
                                <span class="log-module">{l.module.clone()}</span>
                                <span class="log-message">{l.message.clone()}</span>
                            </li>
                        }
                    }
                />
            </ol>
        </section>
    }
}
