//! The alerts' record and the notifications' outbox: a SQLite file of its own
//! (`alerts.sqlite` in the data directory), whatever the store. A transition and its
//! notifications are written in one transaction before anything is sent, so a notification
//! survives a crash or a receiver that is down; it is marked delivered as soon as its channel
//! took it, and retried with backoff until then (for a day, then given up and shown so).
//! The only window for a second copy is a crash between a channel's answer and that mark;
//! each notification carries a stable id for receivers that drop copies.

use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use ogm_protocol::http::{AlertNotice, AlertView, DeliveryView};
use rusqlite::{Connection, OptionalExtension, params};

/// The first retry's wait; it doubles up to [`MAX_RETRY`].
pub const FIRST_RETRY: Duration = Duration::from_secs(2);
/// The longest wait between two tries.
pub const MAX_RETRY: Duration = Duration::from_secs(600);
/// A notification not delivered for this long is given up.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    rule TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    started_us INTEGER NOT NULL,
    fired_us INTEGER NOT NULL,
    resolved_us INTEGER,
    extreme REAL NOT NULL,
    unit TEXT NOT NULL,
    device TEXT,
    summary TEXT NOT NULL,
    link TEXT NOT NULL,
    notified INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_active ON alerts (resolved_us);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    alert INTEGER NOT NULL,
    state TEXT NOT NULL,
    channel TEXT NOT NULL,
    notice TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_us INTEGER NOT NULL,
    delivered_us INTEGER,
    last_error TEXT,
    gave_up INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (next_us)
    WHERE delivered_us IS NULL AND gave_up = 0;
";

/// A notification to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: i64,
    pub channel: String,
    pub notice: AlertNotice,
    pub attempts: u32,
    pub created_us: i64,
}

/// An alert that was active when the server stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct Active {
    pub id: i64,
    pub rule: String,
    pub subject: String,
    pub started_us: i64,
    pub extreme: f64,
    pub device: Option<String>,
}

/// The outbox file.
#[derive(Debug)]
pub struct Outbox {
    conn: Mutex<Connection>,
}

impl Outbox {
    pub fn open(path: &Path) -> rusqlite::Result<Self> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A fired alert, and its notifications to `channels` (none when `notify` is false).
    /// Returns the alert's id. `notice` is completed with the id.
    pub fn fired(
        &self,
        notice: &mut AlertNotice,
        channels: &[String],
        notify: bool,
        now_us: i64,
    ) -> rusqlite::Result<i64> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO alerts (rule, kind, subject, started_us, fired_us, extreme, unit, device,
                                 summary, link, notified)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                notice.rule,
                notice.kind,
                notice.subject,
                notice.started_us,
                notice.at_us,
                notice.extreme,
                notice.unit,
                notice.device_id,
                notice.summary,
                notice.link,
                notify
            ],
        )?;
        let id = tx.last_insert_rowid();
        notice.alert_id = id;
        notice.id = format!("{id}-{}", notice.state);
        if notify {
            enqueue(&tx, notice, channels, now_us)?;
        }
        tx.commit()?;
        Ok(id)
    }

    /// A resolved alert (the extreme it reached), and its notifications if it notified when
    /// it fired.
    pub fn resolved(
        &self,
        notice: &mut AlertNotice,
        channels: &[String],
        now_us: i64,
    ) -> rusqlite::Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let notified: Option<bool> = tx
            .query_row(
                "SELECT notified FROM alerts WHERE id = ?1",
                [notice.alert_id],
                |r| r.get(0),
            )
            .optional()?;
        tx.execute(
            "UPDATE alerts SET resolved_us = ?2, extreme = ?3, device = ?4, summary = ?5
             WHERE id = ?1",
            params![
                notice.alert_id,
                notice.at_us,
                notice.extreme,
                notice.device_id,
                notice.summary
            ],
        )?;
        notice.id = format!("{}-{}", notice.alert_id, notice.state);
        if notified == Some(true) {
            enqueue(&tx, notice, channels, now_us)?;
        }
        tx.commit()
    }

    /// Alerts not resolved yet.
    pub fn active(&self) -> rusqlite::Result<Vec<Active>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, rule, subject, started_us, extreme, device FROM alerts
             WHERE resolved_us IS NULL ORDER BY id",
        )?;
        stmt.query_map([], |r| {
            Ok(Active {
                id: r.get(0)?,
                rule: r.get(1)?,
                subject: r.get(2)?,
                started_us: r.get(3)?,
                extreme: r.get(4)?,
                device: r.get(5)?,
            })
        })?
        .collect()
    }

    /// An active alert resolved without a notification (its rule left the file).
    pub fn close(&self, id: i64, now_us: i64) -> rusqlite::Result<()> {
        self.conn().execute(
            "UPDATE alerts SET resolved_us = ?2 WHERE id = ?1 AND resolved_us IS NULL",
            params![id, now_us],
        )?;
        Ok(())
    }

    /// Alerts of `rule` that fired since `since_us` and notified.
    pub fn notified_since(&self, rule: &str, since_us: i64) -> rusqlite::Result<u32> {
        self.conn().query_row(
            "SELECT count(*) FROM alerts WHERE rule = ?1 AND fired_us >= ?2 AND notified = 1",
            params![rule, since_us],
            |r| r.get(0),
        )
    }

    /// Notifications due at `now_us`, oldest first: each channel's oldest waiting one, so a
    /// channel gets its notifications in order (never a "resolved" before its "firing").
    pub fn due(&self, now_us: i64, limit: u32) -> rusqlite::Result<Vec<Delivery>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, channel, notice, attempts, created_us FROM deliveries AS d
             WHERE delivered_us IS NULL AND gave_up = 0 AND next_us <= ?1
               AND id = (SELECT min(id) FROM deliveries
                         WHERE channel = d.channel AND delivered_us IS NULL AND gave_up = 0)
             ORDER BY id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![now_us, limit], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, u32>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, channel, notice, attempts, created_us) = row?;
            match serde_json::from_str(&notice) {
                Ok(notice) => out.push(Delivery {
                    id,
                    channel,
                    notice,
                    attempts,
                    created_us,
                }),
                Err(e) => tracing::error!(id, error = %e, "an outbox entry does not parse"),
            }
        }
        Ok(out)
    }

    /// Notifications waiting (not delivered, not given up).
    pub fn waiting(&self) -> rusqlite::Result<u64> {
        self.conn()
            .query_row(
                "SELECT count(*) FROM deliveries WHERE delivered_us IS NULL AND gave_up = 0",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n.max(0).unsigned_abs())
    }

    pub fn delivered(&self, id: i64, now_us: i64) -> rusqlite::Result<()> {
        self.conn().execute(
            "UPDATE deliveries SET delivered_us = ?2, attempts = attempts + 1 WHERE id = ?1",
            params![id, now_us],
        )?;
        Ok(())
    }

    /// A failed try: the next after the backoff, or given up a day after the notification
    /// was made. Returns whether it was given up.
    pub fn failed(&self, d: &Delivery, error: &str, now_us: i64) -> rusqlite::Result<bool> {
        let wait = FIRST_RETRY
            .saturating_mul(1u32 << d.attempts.min(16))
            .min(MAX_RETRY);
        let give_up_us = i64::try_from(GIVE_UP_AFTER.as_micros()).unwrap_or(i64::MAX);
        let gave_up = now_us - d.created_us > give_up_us;
        let next = now_us + i64::try_from(wait.as_micros()).unwrap_or(i64::MAX);
        self.conn().execute(
            "UPDATE deliveries SET attempts = attempts + 1, next_us = ?2, last_error = ?3,
                    gave_up = ?4 WHERE id = ?1",
            params![d.id, next, error, gave_up],
        )?;
        Ok(gave_up)
    }

    /// Active alerts and the last `past` resolved ones, newest first, with their deliveries.
    pub fn list(&self, past: u32) -> rusqlite::Result<(Vec<AlertView>, Vec<AlertView>)> {
        let conn = self.conn();
        let mut alerts = conn.prepare_cached(
            "SELECT id, rule, kind, subject, started_us, fired_us, resolved_us, extreme, unit,
                    device, summary, link, notified FROM alerts
             WHERE resolved_us IS NULL OR id IN
                (SELECT id FROM alerts WHERE resolved_us IS NOT NULL ORDER BY id DESC LIMIT ?1)
             ORDER BY id DESC",
        )?;
        let mut deliveries = conn.prepare_cached(
            "SELECT channel, state, attempts, delivered_us, last_error, gave_up
             FROM deliveries WHERE alert = ?1 ORDER BY id",
        )?;
        let mut views = Vec::new();
        let rows = alerts.query_map([past], |r| {
            Ok(AlertView {
                id: r.get(0)?,
                rule: r.get(1)?,
                kind: r.get(2)?,
                subject: r.get(3)?,
                started_us: r.get(4)?,
                fired_us: r.get(5)?,
                resolved_us: r.get(6)?,
                extreme: r.get(7)?,
                unit: r.get(8)?,
                device_id: r.get(9)?,
                summary: r.get(10)?,
                link: r.get(11)?,
                notified: r.get(12)?,
                deliveries: Vec::new(),
            })
        })?;
        for row in rows {
            views.push(row?);
        }
        for v in &mut views {
            v.deliveries = deliveries
                .query_map([v.id], |r| {
                    Ok(DeliveryView {
                        channel: r.get(0)?,
                        state: r.get(1)?,
                        attempts: r.get(2)?,
                        delivered_us: r.get(3)?,
                        last_error: r.get(4)?,
                        gave_up: r.get(5)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
        }
        Ok(views.into_iter().partition(|v| v.resolved_us.is_none()))
    }
}

fn enqueue(
    tx: &rusqlite::Transaction<'_>,
    notice: &AlertNotice,
    channels: &[String],
    now_us: i64,
) -> rusqlite::Result<()> {
    let json = serde_json::to_string(notice)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    for channel in channels {
        tx.execute(
            "INSERT INTO deliveries (alert, state, channel, notice, created_us, next_us)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            params![notice.alert_id, notice.state, channel, json, now_us],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(state: &str) -> AlertNotice {
        AlertNotice {
            id: String::new(),
            alert_id: 0,
            rule: "f".into(),
            kind: "frequency".into(),
            subject: "grid".into(),
            state: state.into(),
            started_us: 10,
            at_us: 20,
            extreme: -250.0,
            unit: "mHz".into(),
            device_id: Some("a".into()),
            summary: "s".into(),
            link: "l".into(),
        }
    }

    #[test]
    fn notifications_wait_until_delivered_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.sqlite");
        let channels = ["mail".to_owned(), "hook".to_owned()];
        let id = {
            let o = Outbox::open(&path).unwrap();
            let mut n = notice("firing");
            let id = o.fired(&mut n, &channels, true, 100).unwrap();
            assert_eq!(n.id, format!("{id}-firing"));
            let due = o.due(100, 10).unwrap();
            assert_eq!(due.len(), 2);
            o.delivered(due[0].id, 101).unwrap();
            assert!(!o.failed(&due[1], "connection refused", 101).unwrap());
            id
        };
        let o = Outbox::open(&path).unwrap();
        assert_eq!(o.active().unwrap().len(), 1);
        assert!(o.due(101, 10).unwrap().is_empty(), "backing off");
        let due = o.due(101 + 2_000_000, 10).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].channel.as_str(), due[0].attempts), ("hook", 1));
        let mut n = notice("resolved");
        n.alert_id = id;
        o.resolved(&mut n, &channels, 200).unwrap();
        assert!(o.active().unwrap().is_empty());
        // The hook's "resolved" waits behind its "firing"; the mail's goes.
        let due: Vec<(String, String)> = o
            .due(200, 10)
            .unwrap()
            .into_iter()
            .map(|d| (d.channel, d.notice.state))
            .collect();
        assert_eq!(due, [("mail".to_owned(), "resolved".to_owned())]);
        let (active, past) = o.list(10).unwrap();
        assert!(active.is_empty());
        assert_eq!(past[0].deliveries.len(), 4);
        assert_eq!(
            past[0].deliveries[1].last_error.as_deref(),
            Some("connection refused")
        );
        assert_eq!(o.waiting().unwrap(), 3);
    }

    #[test]
    fn an_alert_held_back_by_its_rate_limit_sends_nothing_either_way() {
        let dir = tempfile::tempdir().unwrap();
        let o = Outbox::open(&dir.path().join("a.sqlite")).unwrap();
        let mut n = notice("firing");
        let id = o.fired(&mut n, &["mail".into()], false, 100).unwrap();
        let mut r = notice("resolved");
        r.alert_id = id;
        o.resolved(&mut r, &["mail".into()], 200).unwrap();
        assert_eq!(o.waiting().unwrap(), 0);
        assert_eq!(o.notified_since("f", 0).unwrap(), 0);
    }
}
