//! History fills: the overview's queue of per-device loads (one at a time), the device and
//! insight pages' loads, and the backfill of the hole a lost link left. Every load for a page
//! or the logs view carries a [`Ticket`]; once what asked for it closed or reopened, the ticket
//! is stale and the load stops (its answer is dropped).

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use leptos::prelude::*;
use leptos::task::spawn_local;
use ogm_protocol::DeviceId;
use web_sys::HtmlCanvasElement;

use super::frame::{now_us, schedule_frame};
use super::pages::PAGE_SLOTS;
use super::with_rt;
use crate::api;
use crate::devices::Limits;
use crate::state::LoadState;
use crate::wire::{EventParams, EventsAnswer, Field, HistoryAnswer, HistoryParams, grid_event};

/// A backfill reaches this far before the link went down, µs.
pub(super) const BACKFILL_MARGIN_US: i64 = 2_000_000;
/// How long after a load (or a reconnection) the seam between history and live data is
/// fetched again: the server stores what it receives within about a second, ms.
pub(super) const JUNCTION_DELAY_MS: u64 = 2_500;
/// How far back that seam is fetched, µs.
pub(super) const JUNCTION_US: i64 = 10_000_000;

/// What a load is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Room {
    DevicePage,
    InsightPage,
    Logs,
}

/// Proof that a load was asked for by what is open now: see [`Tickets`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ticket {
    room: Room,
    number: u64,
}

impl Ticket {
    /// Whether what asked for this load is still open (and not reopened since).
    pub(super) fn is_current(self) -> bool {
        with_rt(|rt| rt.tickets.is_current(self)).unwrap_or(false)
    }
}

/// The ticket of each room's open instance: one counter for all, so no two tickets are alike.
#[derive(Debug, Default)]
pub(super) struct Tickets {
    issued: u64,
    device_page: Option<u64>,
    insight_page: Option<u64>,
    logs: Option<u64>,
}

impl Tickets {
    fn slot(&mut self, room: Room) -> &mut Option<u64> {
        match room {
            Room::DevicePage => &mut self.device_page,
            Room::InsightPage => &mut self.insight_page,
            Room::Logs => &mut self.logs,
        }
    }

    /// `room` (re)opens: earlier tickets for it are stale.
    pub(super) fn issue(&mut self, room: Room) -> Ticket {
        self.issued += 1;
        let number = self.issued;
        *self.slot(room) = Some(number);
        Ticket { room, number }
    }

    /// `room` closes: its tickets are stale.
    pub(super) fn close(&mut self, room: Room) {
        *self.slot(room) = None;
    }

    /// The ticket of `room`'s open instance.
    pub(super) fn current(&mut self, room: Room) -> Option<Ticket> {
        self.slot(room).map(|number| Ticket { room, number })
    }

    pub(super) fn is_current(&mut self, t: Ticket) -> bool {
        *self.slot(t.room) == Some(t.number)
    }
}

/// The overview's fill queue.
#[derive(Debug, Default)]
pub(super) struct Fills {
    queue: VecDeque<FillJob>,
    worker: bool,
    /// Devices whose window was filled from history already.
    pub(super) filled: BTreeSet<DeviceId>,
}

/// A queued history load for one device's overview series.
#[derive(Debug, Clone, PartialEq)]
struct FillJob {
    device: DeviceId,
    start_us: i64,
    stop_us: i64,
}

fn queue_fill(job: FillJob) {
    let start = with_rt(|rt| {
        let fills = &mut rt.fills;
        if fills.queue.contains(&job) || fills.queue.len() > 2 * Limits::default().max_devices {
            return false;
        }
        fills.queue.push_back(job);
        !std::mem::replace(&mut fills.worker, true)
    })
    .unwrap_or(false);
    if start {
        spawn_local(fill_worker());
    }
}

/// A device heard for the first time: its window from history, and the seam again a moment
/// later.
pub(super) fn fill_new_device(id: DeviceId) {
    let window = with_rt(|rt| rt.ui.route.get_untracked().window_us).unwrap_or(0);
    let now = now_us();
    queue_fill(FillJob {
        device: id.clone(),
        start_us: now - window,
        stop_us: now,
    });
    set_timeout(
        move || {
            queue_fill(FillJob {
                device: id,
                start_us: now - JUNCTION_US,
                stop_us: now_us(),
            })
        },
        Duration::from_millis(JUNCTION_DELAY_MS),
    );
}

/// Every device's window again (after the window changed).
pub(super) fn queue_window_fills() {
    let jobs = with_rt(|rt| {
        let now = now_us();
        let window = rt.ui.route.with_untracked(|r| r.window_us);
        rt.store
            .as_ref()
            .map(|s| {
                s.devices()
                    .keys()
                    .map(|id| FillJob {
                        device: id.clone(),
                        start_us: now - window,
                        stop_us: now,
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    })
    .unwrap_or_default();
    for j in jobs {
        queue_fill(j);
    }
}

/// Loads queued overview fills one at a time (the server is not flooded after a reconnect of
/// a page watching a hundred devices).
async fn fill_worker() {
    loop {
        let next = with_rt(|rt| {
            let job = rt.fills.queue.pop_front();
            if job.is_none() {
                rt.fills.worker = false;
            }
            let columns = rt.pages.canvases.overview_width().unwrap_or(1_200);
            job.map(|j| (j, columns.min(Limits::default().slots), rt.rng.next_u64()))
        })
        .flatten();
        let Some((job, columns, seed)) = next else {
            return;
        };
        let url = HistoryParams::url(
            &job.device,
            Field::Frequency,
            job.start_us,
            job.stop_us,
            columns,
        );
        let device = job.device.clone();
        let wanted = move || {
            with_rt(|rt| {
                rt.store
                    .as_ref()
                    .is_some_and(|s| s.devices().contains_key(&device))
            })
            .unwrap_or(false)
        };
        let answer =
            api::get_retrying(&url, HistoryAnswer::from_json, wanted, |_, _| {}, seed).await;
        if let Some(a) = answer {
            with_rt(|rt| {
                if let Some(store) = rt.store.as_mut() {
                    store.fill_history(&job.device, &a.points, a.interval_us, now_us());
                }
                rt.frame.chart_dirty = true;
            });
            schedule_frame();
        }
    }
}

/// After the link was down from `start` to `stop`: fetch that stretch for every chart.
pub(super) fn backfill_gap(start: i64, stop: i64) {
    let devices: Vec<DeviceId> = with_rt(|rt| {
        rt.store
            .as_ref()
            .map(|s| s.devices().keys().cloned().collect())
            .unwrap_or_default()
    })
    .unwrap_or_default();
    for device in devices {
        queue_fill(FillJob {
            device,
            start_us: start,
            stop_us: stop,
        });
    }
    // The open pages, if they show the live range: their series get the stretch too.
    for room in [Room::DevicePage, Room::InsightPage] {
        let job = with_rt(|rt| Some((rt.tickets.current(room)?, rt.pages.live_device(room)?)));
        let Some((ticket, device)) = job.flatten() else {
            continue;
        };
        if room == Room::InsightPage {
            spawn_local(load_insight(ticket, device, start, stop, false));
            continue;
        }
        for field in Field::MEASURED {
            spawn_local(load_device_field(
                ticket,
                device.clone(),
                field,
                start,
                stop,
                false,
            ));
        }
    }
}

/// `GET url` for as long as `ticket` is current, retried with backoff; `show` hears each retry
/// as the [`LoadState`] to show.
pub(super) async fn get_for<T>(
    ticket: Ticket,
    url: &str,
    parse: impl Fn(&str) -> Result<T, String>,
    show: impl Fn(LoadState),
    seed: u64,
) -> Option<T> {
    let on_error = |error: &str, retry_at_ms| {
        show(LoadState::Retrying {
            error: error.to_owned(),
            retry_at_ms,
        })
    };
    api::get_retrying(url, parse, move || ticket.is_current(), on_error, seed).await
}

fn max_points_for(canvas: Option<&HtmlCanvasElement>) -> usize {
    canvas
        .and_then(|c| usize::try_from(c.client_width()).ok())
        .filter(|w| *w > 0)
        .unwrap_or(1_000)
}

/// One field of the device page from `start` to `stop` (`report`: the page's first load,
/// whose state the page shows and whose bucket width it keeps).
pub(super) async fn load_device_field(
    ticket: Ticket,
    device: DeviceId,
    field: Field,
    start: i64,
    stop: i64,
    report: bool,
) {
    let Some((max_points, seed, ui)) = with_rt(|rt| {
        let canvas = rt.pages.canvases.fields.get(&field);
        (max_points_for(canvas), rt.rng.next_u64(), rt.ui)
    }) else {
        return;
    };
    let url = HistoryParams::url(&device, field, start, stop, max_points);
    let set_state = move |s: LoadState| {
        if report && ticket.is_current() {
            ui.field_state.update(|m| {
                m.insert(field, s);
            });
        }
    };
    let answer = get_for(ticket, &url, HistoryAnswer::from_json, set_state, seed).await;
    let Some(a) = answer else {
        if ticket.is_current() {
            set_state(LoadState::Unavailable(format!("no history for {device}")));
        }
        return;
    };
    let points = a.points.len();
    with_rt(|rt| {
        if rt.tickets.is_current(ticket)
            && let Some(page) = rt.pages.device.as_mut()
            && let Some((series, interval)) = page.series.get_mut(&field)
        {
            series.fill(&a.points, a.interval_us, now_us());
            if report {
                *interval = a.interval_us;
            }
        }
        rt.frame.chart_dirty = true;
    });
    set_state(LoadState::Ready {
        points,
        interval_us: a.interval_us,
    });
    schedule_frame();
    if report && field == Field::Frequency {
        load_device_events(ticket, device, start, stop, seed).await;
    }
}

/// The insight page's reference device from `start` to `stop` (`report`: the page's first
/// load, whose state the page shows and whose events it keeps).
pub(super) async fn load_insight(
    ticket: Ticket,
    device: DeviceId,
    start: i64,
    stop: i64,
    report: bool,
) {
    let Some((seed, ui)) = with_rt(|rt| (rt.rng.next_u64(), rt.ui)) else {
        return;
    };
    let url = HistoryParams::url(&device, Field::Frequency, start, stop, PAGE_SLOTS);
    let show = |s| {
        if report {
            ui.insight_state.set(s);
        }
    };
    let answer = get_for(ticket, &url, HistoryAnswer::from_json, show, seed).await;
    let Some(a) = answer else {
        if report && ticket.is_current() {
            ui.insight_state
                .set(LoadState::Unavailable(format!("no history for {device}")));
        }
        return;
    };
    let points = a.points.len();
    with_rt(|rt| {
        let rules = *rt.insight.rules();
        if rt.tickets.is_current(ticket)
            && let Some(page) = rt.pages.insight.as_mut()
        {
            page.series.fill(&a.points, a.interval_us, now_us());
            if report {
                page.interval_us = a.interval_us;
                let until = page.live_since_us.unwrap_or(i64::MAX);
                page.history_events =
                    ogm_grid::history_events(&device, a.points.iter(), until, &rules);
            }
        }
        rt.pages.events_shown = u64::MAX;
    });
    if report {
        ui.insight_state.set(LoadState::Ready {
            points,
            interval_us: a.interval_us,
        });
    }
    super::pages::update_figures();
    schedule_frame();
    if report {
        load_server_events(ticket, start, stop, seed).await;
    }
}

/// The grid events `device` saw in the device page's range, as the server recorded them, for
/// the frequency chart's marks. Without them (a server that keeps none), no marks.
async fn load_device_events(ticket: Ticket, device: DeviceId, start: i64, stop: i64, seed: u64) {
    let url = EventParams::url(Some(&device), start, stop, ogm_grid::MAX_EVENTS as u32);
    let Some(a) = get_for(ticket, &url, EventsAnswer::from_json, |_| {}, seed).await else {
        return;
    };
    with_rt(|rt| {
        if rt.tickets.is_current(ticket)
            && let Some(page) = rt.pages.device.as_mut()
        {
            page.events = a
                .events
                .iter()
                .map(|e| (e.start_us, e.end_us.unwrap_or(e.last_us)))
                .collect();
            rt.frame.chart_dirty = true;
        }
    });
    schedule_frame();
}

/// The events the server recorded before the page went live (with no page open, too), in
/// place of those read from the history buckets: the server saw every reading, and RoCoF.
/// Without them (a store that keeps none answers 501), the buckets' events stay.
async fn load_server_events(ticket: Ticket, start: i64, stop: i64, seed: u64) {
    let Some(until) = with_rt(|rt| {
        let page = rt.pages.insight.as_ref()?;
        Some(page.live_since_us.unwrap_or(stop).min(stop))
    })
    .flatten()
    .filter(|until| *until > start) else {
        return;
    };
    let url = EventParams::url(None, start, until, ogm_grid::MAX_EVENTS as u32);
    let Some(a) = get_for(ticket, &url, EventsAnswer::from_json, |_| {}, seed).await else {
        return;
    };
    with_rt(|rt| {
        if rt.tickets.is_current(ticket)
            && let Some(page) = rt.pages.insight.as_mut()
        {
            page.history_events = a.events.into_iter().map(grid_event).collect();
            rt.pages.events_shown = u64::MAX;
        }
    });
    super::pages::update_figures();
    schedule_frame();
}
