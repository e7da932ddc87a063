//! The link's room: the boot (the configuration, retried until it comes), the MQTT link over
//! WebSocket ([`MqttWs`], which owns the socket), and what its events do: messages into the
//! stores, and when it comes back, the backfill of the hole it left.

use std::rc::Rc;
use std::time::Duration;

use leptos::prelude::*;
use leptos::task::spawn_local;
use ogm_protocol::Payload;

use super::frame::{add_cost, now_ms, now_us, performance_now, random_seed, schedule_frame};
use super::history::{BACKFILL_MARGIN_US, JUNCTION_DELAY_MS, backfill_gap};
use super::{logs, with_rt};
use crate::api;
use crate::backoff::{Backoff, XorShift};
use crate::devices::{DeviceStore, Limits};
use crate::figures::event_rules;
use crate::logs::LogLine;
use crate::mqtt_link::{KEEP_ALIVE_S, LinkConfig, LinkEvent, LinkState};
use crate::mqtt_ws::MqttWs;
use crate::state::Conn;
use crate::wire::{self, ConfigAnswer, DeviceView, path};

#[derive(Default)]
pub(super) struct Link {
    ws: Option<MqttWs>,
    pub(super) up: bool,
    /// When the link came up, µs (live log entries are complete from then on).
    pub(super) up_since_us: Option<i64>,
    /// When the link went down, µs (for the backfill once it is back).
    down_since_us: Option<i64>,
}

/// Fetches the configuration (retrying with backoff until it works), then starts the link and
/// loads the device list.
pub(super) async fn boot() {
    let Some(ui) = with_rt(|rt| rt.ui) else {
        return;
    };
    let mut backoff = Backoff::new(random_seed());
    let config = loop {
        match api::fetch_config().await {
            Ok(c) => break c,
            Err(error) => {
                let delay = backoff.next_delay_ms();
                ui.conn.set(Conn::ConfigFailed {
                    error,
                    retry_at_ms: now_ms() + delay as f64,
                });
                api::sleep_ms(delay).await;
            }
        }
    };
    start(config);
    spawn_local(load_devices());
    spawn_local(super::alerts::poll());
    spawn_local(super::alerts::poll_window_events());
}

fn start(config: ConfigAnswer) {
    let Some((ui, mut rng, route)) = with_rt(|rt| {
        (
            rt.ui,
            XorShift::new(rt.rng.next_u64()),
            rt.ui.route.get_untracked(),
        )
    }) else {
        return;
    };
    let link_config = LinkConfig {
        // The broker lets a service user connect only as its name or `<user name>-<suffix>`
        // (mosquitto/conf.d/policy.conf); a random suffix that other holders of the public
        // password cannot guess, so none of them can take this connection over.
        client_id: format!(
            "{}-{:016x}",
            config.username().unwrap_or_default(),
            rng.next_u64()
        ),
        username: config.username(),
        password: config.password(),
        filter: ogm_protocol::topic::filter_all(&config.topic_prefix),
        keep_alive_s: KEEP_ALIVE_S,
    };
    let nominal = route.nominal_hz.unwrap_or(f64::from(config.nominal_hz));
    with_rt(|rt| {
        let limits = Limits {
            window_us: route.window_us,
            ..Limits::default()
        };
        rt.store = Some(DeviceStore::new(&config.topic_prefix, limits));
        rt.insight.configure(
            event_rules(&route, nominal),
            i64::from(route.rocof_window_ms) * 1000,
        );
        rt.config = Some(config.clone());
    });
    ui.nominal_hz.set(Some(nominal));
    ui.area.set(route.area.unwrap_or_else(|| config.area()));
    ui.conn.set(Conn::Link(LinkState::Connecting));

    let on_event: Rc<dyn Fn(LinkEvent)> = Rc::new(on_event);
    match MqttWs::start(config.mqtt_ws_url, link_config, rng.next_u64(), on_event) {
        Ok(link) => {
            with_rt(|rt| rt.link.ws = Some(link));
        }
        Err(e) => ui.conn.set(Conn::Link(LinkState::Offline {
            retry_at_ms: u64::MAX,
            reason: e,
        })),
    }
}

/// `GET /api/devices`: devices the page has not heard yet (silent or offline ones too).
async fn load_devices() {
    let seed = random_seed();
    let views = api::get_retrying(
        &wire::api_url(path::DEVICES),
        DeviceView::list_from_json,
        || true,
        |_, _| {},
        seed,
    )
    .await;
    if let Some(views) = views {
        with_rt(|rt| {
            if let Some(store) = rt.store.as_mut() {
                store.seed(&views, now_us());
            }
        });
        schedule_frame();
    }
}

fn on_event(event: LinkEvent) {
    match event {
        LinkEvent::State(state) => on_state(state),
        LinkEvent::Message {
            topic,
            payload,
            retained,
        } => {
            let started = performance_now();
            with_rt(|rt| {
                let now = now_us();
                let Some(store) = rt.store.as_mut() else {
                    return;
                };
                let Some(msg) = store.ingest_message(&topic, &payload, now, retained) else {
                    return;
                };
                match &msg.payload {
                    Payload::Measurement(m) => {
                        if !retained {
                            rt.insight.push(&msg.device, msg.t_us, m.frequency);
                        }
                        rt.pages.push(&msg.device, msg.t_us, m, now);
                    }
                    Payload::Logs(entry) => {
                        rt.logs
                            .buffer
                            .insert(LogLine::live(msg.device.clone(), entry.clone()));
                    }
                    Payload::Status(_) => {}
                }
            });
            schedule_frame();
            add_cost(performance_now() - started, 0.0);
        }
    }
}

fn on_state(state: LinkState) {
    let connected = state == LinkState::Connected;
    let (backfill, came_up) = with_rt(|rt| {
        rt.ui.conn.set(Conn::Link(state));
        let link = &mut rt.link;
        let was_up = link.up;
        link.up = connected;
        rt.frame.chart_dirty = true;
        if was_up && !connected {
            link.down_since_us = Some(now_us());
            link.up_since_us = None;
        }
        let came_up = connected && !was_up;
        if came_up {
            link.up_since_us = Some(now_us());
        }
        let backfill = if connected {
            link.down_since_us.take()
        } else {
            None
        };
        (backfill, came_up)
    })
    .unwrap_or_default();
    if came_up {
        logs::link_came_up(backfill);
    }
    if let Some(since) = backfill {
        // A moment later, so the server has stored what arrived up to the reconnection.
        set_timeout(
            move || backfill_gap(since - BACKFILL_MARGIN_US, now_us()),
            Duration::from_millis(JUNCTION_DELAY_MS),
        );
    }
    schedule_frame();
}
