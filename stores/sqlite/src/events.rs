//! The server's device events (`device_events`): saved keyed by (device, start), so saving one
//! twice replaces it, and read back overlapping a range, newest start first.

use ogm_protocol::DeviceId;
use ogm_store::{EventQuery, StoredEvent};
use rusqlite::{Connection, TransactionBehavior, params};

/// Saves `events` in one transaction, first removing the device's events from `replace_from`.
pub(crate) fn save(
    conn: &mut Connection,
    replace_from: Option<&(DeviceId, i64)>,
    events: &[StoredEvent],
) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if let Some((device, from)) = replace_from {
        tx.execute(
            "DELETE FROM device_events WHERE device = ?1 AND start_us >= ?2",
            params![device.as_str(), from],
        )?;
    }
    {
        let mut insert = tx.prepare_cached(
            "INSERT OR REPLACE INTO device_events
             (device, start_us, end_us, last_us, extreme_hz, rocof, frequency)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for e in events.iter().filter(|e| e.extreme_hz.is_finite()) {
            insert.execute(params![
                e.device_id.as_str(),
                e.start_us,
                e.end_us,
                e.last_us,
                e.extreme_hz,
                e.rocof.filter(|r| r.is_finite()),
                e.frequency,
            ])?;
        }
    }
    tx.commit()
}

/// The events of [`EventQuery`]. A row whose device id no longer parses is skipped.
pub(crate) fn read(conn: &Connection, q: &EventQuery) -> rusqlite::Result<Vec<StoredEvent>> {
    let mut stmt = conn.prepare_cached(
        "SELECT device, start_us, end_us, last_us, extreme_hz, rocof, frequency
         FROM device_events
         WHERE start_us < ?1 AND (end_us IS NULL OR end_us >= ?2)
           AND (?3 IS NULL OR device = ?3)
         ORDER BY start_us DESC LIMIT ?4",
    )?;
    let device = q.device_id.as_ref().map(DeviceId::as_str);
    let rows = stmt.query_map(params![q.stop_us, q.start_us, device, q.limit], |r| {
        let device: String = r.get(0)?;
        let event = StoredEvent {
            device_id: DeviceId::new("-").expect("a valid id"),
            start_us: r.get(1)?,
            end_us: r.get(2)?,
            last_us: r.get(3)?,
            extreme_hz: r.get(4)?,
            rocof: r.get(5)?,
            frequency: r.get(6)?,
        };
        Ok(DeviceId::new(&device)
            .ok()
            .map(|device_id| StoredEvent { device_id, ..event }))
    })?;
    rows.filter_map(Result::transpose).collect()
}
