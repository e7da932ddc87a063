//! The logs view's room: the log buffer (live entries of every device, pages of history), the
//! filter on screen, and its loads from `/api/logs`.

use std::time::Duration;

use leptos::prelude::*;
use leptos::task::spawn_local;

use super::frame::{now_us, schedule_frame};
use super::history::{JUNCTION_DELAY_MS, Room, Ticket, get_for};
use super::{Runtime, with_rt};
use crate::logs::{CAPACITY, LogBuffer, LogFilter, LogLine, PAGE};
use crate::state::LoadState;
use crate::wire::{LogParams, LogsAnswer};

#[derive(Debug)]
pub(super) struct Logs {
    pub(super) buffer: LogBuffer,
    /// The filter on screen; None while the logs view is closed.
    view: Option<LogFilter>,
    /// When the logs view last asked for its newest page while the link was down, µs.
    page_at_us: Option<i64>,
    /// The buffer's version last shown.
    shown: u64,
}

impl Default for Logs {
    fn default() -> Self {
        Self {
            buffer: LogBuffer::new(CAPACITY),
            view: None,
            page_at_us: None,
            shown: 0,
        }
    }
}

/// The filter's entries into their signal, if the buffer changed.
pub(super) fn sync(rt: &mut Runtime) {
    let logs = &mut rt.logs;
    let Some(filter) = &logs.view else {
        return;
    };
    if logs.buffer.version == logs.shown {
        return;
    }
    logs.shown = logs.buffer.version;
    rt.ui.logs.set(logs.buffer.shown(filter, CAPACITY));
    let end = logs.buffer.end_note();
    if rt.ui.logs_end.get_untracked() != end {
        rt.ui.logs_end.set(end);
    }
}

/// The link came up after being down since `hole_from` (µs, if known): entries sent meanwhile
/// (or since the view fetched its newest page without a link) come from history: the newest
/// page again, a moment later, once the server has stored what arrived up to now.
pub(super) fn link_came_up(hole_from: Option<i64>) {
    let hole = with_rt(|rt| hole_from.or(rt.logs.page_at_us.take())).flatten();
    set_timeout(
        move || {
            let job = with_rt(|rt| {
                let filter = rt.logs.view.clone()?;
                Some((rt.tickets.current(Room::Logs)?, filter))
            })
            .flatten();
            if let Some((ticket, filter)) = job {
                spawn_local(load(ticket, filter, None, hole));
            }
        },
        Duration::from_millis(JUNCTION_DELAY_MS),
    );
}

/// The logs view is open with `filter` (or closed, with None): older entries are fetched.
pub(super) fn set_view(filter: Option<LogFilter>) {
    let ticket = with_rt(|rt| {
        let ticket = match filter {
            Some(_) => Some(rt.tickets.issue(Room::Logs)),
            None => {
                rt.tickets.close(Room::Logs);
                None
            }
        };
        rt.logs.view = filter.clone();
        rt.logs.shown = u64::MAX;
        rt.logs.buffer.reset_view(rt.link.up_since_us);
        rt.logs.page_at_us = (!rt.link.up).then(now_us);
        ticket
    })
    .flatten();
    schedule_frame();
    if let (Some(ticket), Some(filter)) = (ticket, filter) {
        spawn_local(load(ticket, filter, None, None));
    }
}

/// Fetches the page before what is complete for the filter on screen.
pub(super) fn load_older() {
    let job = with_rt(|rt| {
        if rt.logs.buffer.exhausted() || rt.logs.buffer.full() {
            return None;
        }
        let filter = rt.logs.view.clone()?;
        Some((
            rt.tickets.current(Room::Logs)?,
            filter,
            rt.logs.buffer.older_stop(),
        ))
    })
    .flatten();
    if let Some((ticket, filter, oldest)) = job {
        spawn_local(load(ticket, filter, oldest, None));
    }
}

async fn load(ticket: Ticket, filter: LogFilter, stop: Option<i64>, hole_from: Option<i64>) {
    let Some((seed, ui)) = with_rt(|rt| (rt.rng.next_u64(), rt.ui)) else {
        return;
    };
    ui.logs_state.set(LoadState::Loading);
    let url = LogParams::url(filter.device.as_ref(), filter.level, stop, PAGE as u32);
    let show = |s| ui.logs_state.set(s);
    let rows = get_for(ticket, &url, LogsAnswer::from_json, show, seed).await;
    let Some(answer) = rows else {
        return;
    };
    let n = answer.entries.len();
    // An answer cut at the server's byte budget holds fewer entries than asked for and older
    // ones remain: a full page for what it holds.
    let page = if answer.truncated { n } else { PAGE };
    with_rt(|rt| {
        let lines = answer.entries.into_iter().map(LogLine::history).collect();
        if rt.tickets.is_current(ticket) {
            rt.logs.buffer.history_page(lines, stop, page, hole_from);
        } else {
            for l in lines {
                rt.logs.buffer.insert(l);
            }
        }
    });
    ui.logs_state.set(LoadState::Ready {
        points: n,
        interval_us: 0,
    });
    schedule_frame();
}
