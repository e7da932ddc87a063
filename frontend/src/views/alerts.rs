//! Alerts: the banner of active alerts on every view (the kiosk's too), and the alert history
//! on the insight page. Both read `Ui::alerts`, which the runtime keeps from `/api/alerts`.

use leptos::prelude::*;

use crate::format;
use crate::state::ui;
use crate::wire::AlertView;

/// `#alert-banner`: every active alert, newest first, with what, where and since when, linking
/// to the dashboard's view of it. Absent while nothing is active.
#[component]
pub(crate) fn AlertBanner() -> impl IntoView {
    let ui = ui();
    let active = Memo::new(move |_| {
        ui.alerts
            .with(|a| a.as_ref().map(|a| a.active.clone()).unwrap_or_default())
    });
    view! {
        <Show when=move || active.with(|a| !a.is_empty())>
            <section
                id="alert-banner"
                role="alert"
                data-active=move || active.with(Vec::len).to_string()
            >
                <ul>
                    <For
                        each=move || active.get()
                        key=|a: &AlertView| (a.id, a.extreme.to_bits())
                        let:alert
                    >
                        <li data-rule=alert.rule.clone() data-subject=alert.subject.clone()>
                            <strong>{format!("{}: {}", alert.rule, alert.subject)}</strong>
                            " "
                            <span class="summary">{alert.summary.clone()}</span>
                            " "
                            <small class="since">
                                {move || format!("since {}", format::date_time(alert.started_us, ui.tz_offset_min.get()))}
                            </small>
                            " "
                            <a href=alert.link.clone()>"show"</a>
                        </li>
                    </For>
                </ul>
            </section>
        </Show>
    }
}

/// `#alert-history`: active and past alerts with how their notifications went. Hidden when
/// the server has no alert rules.
#[component]
pub(crate) fn AlertHistory() -> impl IntoView {
    let ui = ui();
    let all = Memo::new(move |_| {
        ui.alerts.with(|a| {
            a.as_ref()
                .map(|a| a.active.iter().chain(&a.past).cloned().collect::<Vec<_>>())
                .unwrap_or_default()
        })
    });
    let enabled = move || ui.alerts.with(|a| a.as_ref().is_some_and(|a| a.enabled));
    view! {
        <Show when=enabled>
            <div class="chart-box alerts-box">
                <h3>"Alerts " <small class="muted">"from the server's rules"</small></h3>
                <Show when=move || all.with(Vec::is_empty)>
                    <p class="empty">"No alerts."</p>
                </Show>
                <div class="table-scroll" style:display=move || if all.with(Vec::is_empty) { "none" } else { "" }>
                    <table id="alert-history">
                        <thead>
                            <tr>
                                <th>"Began"</th>
                                <th>"Rule"</th>
                                <th>"What"</th>
                                <th>"Over"</th>
                                <th>"Notified"</th>
                            </tr>
                        </thead>
                        <tbody>
                            <For
                                each=move || all.get()
                                key=|a: &AlertView| (a.id, a.resolved_us, a.deliveries.iter().filter(|d| d.delivered_us.is_some()).count())
                                let:alert
                            >
                                {
                                    let tz = ui.tz_offset_min.get_untracked();
                                    let delivered = alert.deliveries.iter().filter(|d| d.delivered_us.is_some()).count();
                                    let notified = if !alert.notified {
                                        "held back (rate limit)".to_owned()
                                    } else {
                                        format!("{delivered} of {}", alert.deliveries.len())
                                    };
                                    view! {
                                        <tr
                                            data-rule=alert.rule.clone()
                                            data-subject=alert.subject.clone()
                                            data-active=alert.resolved_us.is_none().to_string()
                                            data-extreme=format!("{:.1}", alert.extreme)
                                            class:ongoing=alert.resolved_us.is_none()
                                        >
                                            <td><a href=alert.link.clone()>{format::date_time(alert.started_us, tz)}</a></td>
                                            <td>{format!("{}: {}", alert.rule, alert.subject)}</td>
                                            <td>{alert.summary.clone()}</td>
                                            <td>{alert.resolved_us.map_or_else(|| "active".to_owned(), |r| format::date_time(r, tz))}</td>
                                            <td>{notified}</td>
                                        </tr>
                                    }
                                }
                            </For>
                        </tbody>
                    </table>
                </div>
            </div>
        </Show>
    }
}
