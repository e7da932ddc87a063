//! The grid watch's own feed in a share group. Each replica's ingest gets only its share of
//! the devices' readings (`$share/<group>/...`), but events, alert rules and the Home Assistant
//! summary need every reading: the watching replica (`OGM_GRID_WATCH`, on for one replica
//! only) also subscribes to every device's measurements through its publishing session and
//! hands them to the watch and the rules, checked like the ingest checks them (the same
//! `classify` and per-device budget). What it stores is still only its share; rewinds read the
//! shared store a moment later ([`crate::grid_watch::SHARED_REWIND_DELAY`]).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};

use ogm_protocol::{Kind, TOPIC_PREFIX, topic};

use crate::alerts::Alerts;
use crate::grid_watch::GridWatch;
use crate::ingest::budget::{BudgetLimits, Budgets};
use crate::ingest::classify;
use crate::metrics::Metrics;
use crate::publisher::Listener;
use crate::time::now_us;

/// Hands every device's measurements to the watch and the alert rules.
#[derive(Debug)]
pub struct WatchFeed {
    grid: Arc<GridWatch>,
    alerts: Arc<Alerts>,
    metrics: Arc<Metrics>,
    budgets: Mutex<Budgets>,
}

impl WatchFeed {
    pub fn new(
        grid: Arc<GridWatch>,
        alerts: Arc<Alerts>,
        metrics: Arc<Metrics>,
        budget: BudgetLimits,
    ) -> Self {
        Self {
            grid,
            alerts,
            metrics,
            budgets: Mutex::new(Budgets::new(budget)),
        }
    }

    /// The subscription and its callback, for the publishing session.
    pub fn listener(self: Arc<Self>) -> Listener {
        Listener {
            filters: vec![topic::filter(TOPIC_PREFIX, Kind::Measurement)],
            on_message: Arc::new(move |t, p| self.take(t, p)),
        }
    }

    /// One message: a measurement within its device's budget goes to the watch and the rules;
    /// anything else is left to the ingest, which counts and lists it.
    pub fn take(&self, topic: &str, payload: &[u8]) {
        let Ok((record, _)) = classify(TOPIC_PREFIX, topic, payload, now_us()) else {
            return;
        };
        let admitted = self
            .budgets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .admit(&record.device_id, record.payload.timestamp(), payload.len())
            .is_ok();
        if admitted {
            let records = [record];
            self.metrics
                .watch_readings
                .fetch_add(self.grid.observe(&records), Relaxed);
            self.alerts.observe(&records);
        }
    }
}
