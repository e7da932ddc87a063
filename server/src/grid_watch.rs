//! The server's grid watch: every committed measurement goes through [`ogm_grid::Watch`] (the
//! ingest hands them over as it tells presence), and its tasks are carried out here once every
//! [`TICK`]: events are saved in the store keyed by (device, start), and a device with late
//! readings is analysed again from the store. So events are recorded with no page open,
//! survive restarts, and come out the same whatever order the readings arrived in.
//!
//! A failing store loses nothing the watch can keep: unsaved events wait (up to
//! [`MAX_UNSAVED`]) and are saved again; a failed rewind is asked for again.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ogm_grid::{DeviceEvent, EventRules, Task, Watch, rewind_start};
use ogm_protocol::{DeviceId, Payload};
use ogm_store::{EventQuery, ExportQuery, Record, Store, StoreError, StoredEvent};
use tokio::sync::watch;

use crate::metrics::Metrics;

/// How often the watch analyses what has waited long enough and saves what it found.
pub const TICK: Duration = Duration::from_millis(500);
/// Most events kept for a failing store.
pub const MAX_UNSAVED: usize = 10_000;
/// How often stored events left open by an earlier run are looked for, until one look covered
/// them all.
pub const ORPHANS_EVERY: Duration = Duration::from_secs(10);

/// The watch, shared by the ingest (which feeds it) and its task (which carries it out).
#[derive(Debug)]
pub struct GridWatch {
    core: Mutex<Watch>,
    /// How long a rewind waits before it reads the store: in a share group the late readings
    /// it needs are committed by whichever replica got them, a moment later.
    rewind_delay: Duration,
}

/// A rewind's wait in a share group.
pub const SHARED_REWIND_DELAY: Duration = Duration::from_secs(5);

impl GridWatch {
    pub fn new(rules: EventRules, rocof_window_us: i64) -> Self {
        Self {
            core: Mutex::new(Watch::new(rules, rocof_window_us)),
            rewind_delay: Duration::ZERO,
        }
    }

    /// As [`GridWatch::new`], for a replica in a share group (see [`SHARED_REWIND_DELAY`]).
    pub fn shared(rules: EventRules, rocof_window_us: i64) -> Self {
        Self {
            rewind_delay: SHARED_REWIND_DELAY,
            ..Self::new(rules, rocof_window_us)
        }
    }

    fn core(&self) -> std::sync::MutexGuard<'_, Watch> {
        self.core.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Committed records: their measurements' frequencies. Returns how many it took.
    pub fn observe(&self, records: &[Record]) -> u64 {
        let mut core = self.core();
        let mut n = 0;
        for r in records {
            if let Payload::Measurement(m) = &r.payload {
                core.push(&r.device_id, m.timestamp, m.frequency);
                n += 1;
            }
        }
        n
    }

    /// Runs until `shutdown`; then saves what it can once more and returns.
    pub async fn run(
        self: Arc<Self>,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = Instant::now();
        let mut unsaved: BTreeMap<(DeviceId, i64), StoredEvent> = BTreeMap::new();
        let mut failures = 0u32;
        let started_us = crate::time::now_us();
        // None once a look found every event the earlier run left open.
        let mut orphans_due = Some(Instant::now());
        let mut waiting: Vec<(Instant, DeviceId, i64, i64)> = Vec::new();
        loop {
            let stopping = tokio::select! {
                () = crate::ingest::mqtt::stopped(&mut shutdown) => true,
                _ = tick.tick() => false,
            };
            let elapsed = i64::try_from(last.elapsed().as_micros()).unwrap_or(i64::MAX);
            last = Instant::now();
            let (tasks, pending) = {
                let mut core = self.core();
                let tasks = core.tick(elapsed);
                (tasks, core.pending())
            };
            metrics
                .event_readings_pending
                .store(pending as u64, Relaxed);
            let now = Instant::now();
            for task in tasks {
                match task {
                    Task::Save(e) => {
                        unsaved.insert((e.device.clone(), e.start_us), stored(e));
                    }
                    Task::Rewind {
                        device,
                        late_us,
                        upto_us,
                    } => waiting.push((now + self.rewind_delay, device, late_us, upto_us)),
                }
            }
            let (due, later): (Vec<_>, Vec<_>) = waiting.drain(..).partition(|(at, ..)| *at <= now);
            waiting = later;
            let mut result = save(&*store, &mut unsaved, &metrics).await;
            if !stopping && orphans_due.is_some_and(|at| at <= Instant::now()) {
                orphans_due = Some(Instant::now() + ORPHANS_EVERY);
                match self.orphans(&*store).await {
                    // Every reading of the earlier run is before this one started: once the
                    // cutoff has passed that, nothing it left open can be missed any more.
                    Ok(cutoff) if cutoff >= started_us => orphans_due = None,
                    Ok(_) => {}
                    Err(e) => result = Err(e),
                }
            }
            for (_, device, late_us, upto_us) in due {
                metrics.event_rewinds.fetch_add(1, Relaxed);
                match self.rewind(&*store, &device, late_us, upto_us).await {
                    Ok(from) => {
                        unsaved.retain(|(d, start), _| d != &device || *start < from);
                    }
                    Err(e) => {
                        self.core().rewind_failed(&device, late_us);
                        result = Err(e);
                    }
                }
            }
            while unsaved.len() > MAX_UNSAVED {
                unsaved.pop_first();
                metrics.events_dropped.fetch_add(1, Relaxed);
            }
            metrics.events_unsaved.store(unsaved.len() as u64, Relaxed);
            match result {
                Ok(()) => failures = 0,
                Err(e) => {
                    failures += 1;
                    metrics.event_errors.fetch_add(1, Relaxed);
                    if failures.is_power_of_two() {
                        tracing::warn!(error = %e, failures, "the grid watch could not save events; retrying");
                    }
                }
            }
            if stopping {
                return;
            }
        }
    }

    /// Stored events still open whose device has been silent for longer than ends an event,
    /// and which this run does not follow (left by a run that stopped while they were open,
    /// from a device that has not come back): their devices are analysed again from the store,
    /// so each such event gets the end its stored readings give it. Returns the cutoff: events
    /// whose last reading is before it were looked at.
    async fn orphans(&self, store: &dyn Store) -> Result<i64, StoreError> {
        let max_gap = self.core().rules().max_gap_us;
        let now = crate::time::now_us();
        let cutoff = now - max_gap - ogm_grid::HOLD_US;
        let open = store
            .events(EventQuery {
                device_id: None,
                start_us: cutoff,
                stop_us: cutoff + 1,
                limit: 1000,
            })
            .await?;
        let mut core = self.core();
        for e in open {
            if e.end_us.is_none() && e.last_us < cutoff && !core.follows(&e.device_id, e.start_us) {
                tracing::info!(device = %e.device_id.as_str(), start_us = e.start_us, "an event left open by an earlier run: analysing its device again");
                core.recheck(&e.device_id, e.start_us, now);
            }
        }
        Ok(cutoff)
    }

    /// Analyses `device` again from the store; returns where the replaced events begin.
    async fn rewind(
        &self,
        store: &dyn Store,
        device: &DeviceId,
        late_us: i64,
        upto_us: i64,
    ) -> Result<i64, StoreError> {
        let (rules, window) = {
            let core = self.core();
            (*core.rules(), core.rocof_window_us())
        };
        let probe = late_us - window - rules.max_gap_us;
        let open_then = store
            .events(EventQuery {
                device_id: Some(device.clone()),
                start_us: probe,
                stop_us: probe + 1,
                limit: 4,
            })
            .await?;
        let from = rewind_start(
            late_us,
            &rules,
            window,
            open_then.iter().map(|e| (e.start_us, e.end_us)),
        );
        let mut rx = store
            .export(ExportQuery {
                device_id: device.clone(),
                start_us: from - window,
                stop_us: upto_us.saturating_add(1),
            })
            .await?;
        let mut readings = Vec::new();
        while let Some(chunk) = rx.recv().await {
            readings.extend(chunk?.into_iter().map(|m| (m.timestamp, m.frequency)));
        }
        let found = self.core().rewound(device, from, upto_us, readings);
        store
            .save_events(
                Some((device.clone(), from)),
                found.into_iter().map(stored).collect(),
            )
            .await?;
        Ok(from)
    }
}

async fn save(
    store: &dyn Store,
    unsaved: &mut BTreeMap<(DeviceId, i64), StoredEvent>,
    metrics: &Metrics,
) -> Result<(), StoreError> {
    if unsaved.is_empty() {
        return Ok(());
    }
    let events: Vec<StoredEvent> = unsaved.values().cloned().collect();
    let n = events.len() as u64;
    store.save_events(None, events).await?;
    unsaved.clear();
    metrics.events_saved.fetch_add(n, Relaxed);
    Ok(())
}

/// A device event as the store keeps it.
pub fn stored(e: DeviceEvent) -> StoredEvent {
    StoredEvent {
        device_id: e.device,
        start_us: e.start_us,
        end_us: e.end_us,
        last_us: e.last_us,
        extreme_hz: e.extreme_hz,
        rocof: e.rocof,
        frequency: e.frequency,
    }
}

/// A stored device event as the analysis reads it.
pub fn device_event(e: StoredEvent) -> DeviceEvent {
    DeviceEvent {
        device: e.device_id,
        start_us: e.start_us,
        end_us: e.end_us,
        last_us: e.last_us,
        extreme_hz: e.extreme_hz,
        rocof: e.rocof,
        frequency: e.frequency,
        source: ogm_grid::Source::Live,
    }
}
