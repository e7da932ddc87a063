//! The database file: connection settings and the schema, created or checked at open.
//!
//! Tables (all timestamps are µs since the Unix epoch; `device` is `devices.id`):
//! - `devices`: one row per device id ever seen, with the newest timestamp it sent.
//! - `measurement`, `status`: raw rows keyed `(device, ts)`, `WITHOUT ROWID`, so the key is the
//!   clustered B-tree and a device's range is one contiguous read.
//! - `logs`: a rowid table (messages can be long), unique on `(device, ts)`, with indexes for
//!   "newest first at level L", with and without a device.
//! - `measurement_1m`, `status_1m`: rollups keyed `(device, ts)` where `ts` is the cell start,
//!   holding `n` (rows in the cell) and `<field>_min/_max/_sum` per field; `measurement_1s`,
//!   the same per second, is written no more (version 3) and emptied by compaction.
//! - `measurement_block`, `measurement_1s_block`, `measurement_1m_block` (version 3): sealed
//!   blocks of raw readings, 1 s and 1 min envelopes (see [`crate::blocks`]).
//! - `device_events`: the server's events of each device keyed `(device, start_us)`, `device`
//!   being the id's text (version 2).
//! - `meta`: small key/value facts; `pruned_before:<table>` says from when on a pruned table
//!   is complete.

use rusqlite::Connection;

use crate::{SqliteOptions, Synchronous};

/// The schema version this code writes (`PRAGMA user_version`).
pub(crate) const SCHEMA_VERSION: i64 = 3;

const SCHEMA: &str = "
CREATE TABLE devices (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    last_seen INTEGER NOT NULL
);
CREATE TABLE measurement (
    device INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    frequency REAL NOT NULL,
    voltage REAL NOT NULL,
    current REAL NOT NULL,
    power REAL NOT NULL,
    PRIMARY KEY (device, ts)
) WITHOUT ROWID;
CREATE TABLE status (
    device INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    rssi INTEGER NOT NULL,
    free_heap INTEGER NOT NULL,
    online INTEGER,
    battery REAL,
    dropped INTEGER,
    PRIMARY KEY (device, ts)
) WITHOUT ROWID;
CREATE TABLE logs (
    id INTEGER PRIMARY KEY,
    device INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    level INTEGER NOT NULL,
    message TEXT NOT NULL,
    module TEXT NOT NULL,
    UNIQUE (device, ts)
);
CREATE INDEX logs_by_level ON logs (level, ts);
CREATE INDEX logs_by_device_level ON logs (device, level, ts);
CREATE TABLE measurement_1s (
    device INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    n INTEGER NOT NULL,
    frequency_min REAL NOT NULL, frequency_max REAL NOT NULL, frequency_sum REAL NOT NULL,
    voltage_min REAL NOT NULL, voltage_max REAL NOT NULL, voltage_sum REAL NOT NULL,
    current_min REAL NOT NULL, current_max REAL NOT NULL, current_sum REAL NOT NULL,
    power_min REAL NOT NULL, power_max REAL NOT NULL, power_sum REAL NOT NULL,
    PRIMARY KEY (device, ts)
) WITHOUT ROWID;
CREATE TABLE measurement_1m (
    device INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    n INTEGER NOT NULL,
    frequency_min REAL NOT NULL, frequency_max REAL NOT NULL, frequency_sum REAL NOT NULL,
    voltage_min REAL NOT NULL, voltage_max REAL NOT NULL, voltage_sum REAL NOT NULL,
    current_min REAL NOT NULL, current_max REAL NOT NULL, current_sum REAL NOT NULL,
    power_min REAL NOT NULL, power_max REAL NOT NULL, power_sum REAL NOT NULL,
    PRIMARY KEY (device, ts)
) WITHOUT ROWID;
CREATE TABLE status_1m (
    device INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    n INTEGER NOT NULL,
    rssi_min REAL NOT NULL, rssi_max REAL NOT NULL, rssi_sum REAL NOT NULL,
    free_heap_min REAL NOT NULL, free_heap_max REAL NOT NULL, free_heap_sum REAL NOT NULL,
    PRIMARY KEY (device, ts)
) WITHOUT ROWID;
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Version 2: the server's grid events (`device_events`).
const EVENTS: &str = "
CREATE TABLE device_events (
    device TEXT NOT NULL,
    start_us INTEGER NOT NULL,
    end_us INTEGER,
    last_us INTEGER NOT NULL,
    extreme_hz REAL NOT NULL,
    rocof REAL,
    frequency INTEGER NOT NULL,
    PRIMARY KEY (device, start_us)
) WITHOUT ROWID;
CREATE INDEX device_events_by_start ON device_events (start_us);
";

/// Version 3: sealed blocks of each measurement tier. A rowid table each (the blobs run to
/// overflow pages, which a `WITHOUT ROWID` table handles badly), keyed `(device, t0)`.
const BLOCKS: &str = "
CREATE TABLE measurement_block (
    device INTEGER NOT NULL, t0 INTEGER NOT NULL, t1 INTEGER NOT NULL, n INTEGER NOT NULL,
    data BLOB NOT NULL, UNIQUE (device, t0)
);
CREATE TABLE measurement_1s_block (
    device INTEGER NOT NULL, t0 INTEGER NOT NULL, t1 INTEGER NOT NULL, n INTEGER NOT NULL,
    data BLOB NOT NULL, UNIQUE (device, t0)
);
CREATE TABLE measurement_1m_block (
    device INTEGER NOT NULL, t0 INTEGER NOT NULL, t1 INTEGER NOT NULL, n INTEGER NOT NULL,
    data BLOB NOT NULL, UNIQUE (device, t0)
);
";

/// Settings every connection gets.
fn configure(conn: &Connection, options: &SqliteOptions) -> rusqlite::Result<()> {
    conn.busy_timeout(options.busy_timeout)?;
    conn.pragma_update(None, "foreign_keys", false)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // A history query alone prepares a dozen statements (rows and blocks of three tiers, for
    // each field); the default cache of 16 would parse them again and again.
    conn.set_prepared_statement_cache_capacity(128);
    Ok(())
}

/// Opens the one writing connection, switches the file to WAL and creates or checks the schema.
pub(crate) fn open_writer(
    path: &std::path::Path,
    options: &SqliteOptions,
) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    configure(&conn, options)?;
    // A new file gives freed pages back to the file system as compaction frees them. This
    // has to be set before the first page is written, which switching to WAL does.
    let pages: i64 = conn.pragma_query_value(None, "page_count", |r| r.get(0))?;
    if pages == 0 {
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    }
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(%mode, "SQLite refused WAL mode; reads will wait for writes");
    }
    // With WAL, NORMAL syncs the log only at checkpoints: a commit survives a crash of this
    // process but not a power cut (the database stays consistent, the newest commits may be
    // gone). FULL also syncs the log at every commit. The ingest acknowledges messages to the
    // broker once `write` returns, and a grid monitor's server may well sit on the grid it
    // watches, so FULL is the default: one fsync per batch, not per message.
    let sync = match options.synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", sync)?;
    // Keep the log file from staying large after a burst; checkpoints stay automatic.
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
    // 16 MiB of page cache keeps the hot ends of the B-trees and the rollup pages in memory.
    conn.pragma_update(None, "cache_size", -16 * 1024)?;
    migrate(&conn)?;
    Ok(conn)
}

/// Opens a reading connection (the writer must have created the schema).
pub(crate) fn open_reader(
    path: &std::path::Path,
    options: &SqliteOptions,
) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    configure(&conn, options)?;
    conn.pragma_update(None, "query_only", true)?;
    conn.pragma_update(None, "cache_size", -8 * 1024)?;
    Ok(conn)
}

fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    match version {
        0 => {
            conn.execute_batch(&format!(
                "BEGIN IMMEDIATE; {SCHEMA} {EVENTS} {BLOCKS} \
                 PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            ))?;
            tracing::info!("created the embedded store's schema");
            Ok(())
        }
        1 | 2 => {
            let events = if version == 1 { EVENTS } else { "" };
            conn.execute_batch(&format!(
                "BEGIN IMMEDIATE; {events} {BLOCKS} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            ))?;
            tracing::info!(
                from = version,
                "upgraded the embedded store's schema to version 3: its rows are sealed into \
                 compressed blocks in the background"
            );
            Ok(())
        }
        SCHEMA_VERSION => Ok(()),
        other => Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISMATCH),
            Some(format!(
                "database schema version {other} is not {SCHEMA_VERSION}, the one this server knows"
            )),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new file gives freed pages back (incremental auto-vacuum), which only a file's first
    /// write can choose.
    #[test]
    fn a_new_file_gives_freed_pages_back() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_writer(&dir.path().join("new.sqlite3"), &SqliteOptions::default()).unwrap();
        let mode: i64 = conn
            .pragma_query_value(None, "auto_vacuum", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, 2, "incremental");
    }

    /// A version 1 file (before the grid events) gets the events table, and keeps its rows.
    #[test]
    fn a_version_1_file_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ogm.sqlite");
        let options = SqliteOptions::default();
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(&format!("{SCHEMA} PRAGMA user_version = 1;"))
                .unwrap();
            conn.execute("INSERT INTO devices (name, last_seen) VALUES ('a', 1)", [])
                .unwrap();
        }
        let conn = open_writer(&path, &options).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let n: i64 = conn
            .query_row("SELECT count(*) FROM devices", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
        conn.execute(
            "INSERT INTO device_events VALUES ('a', 1, NULL, 2, 49.8, NULL, 1)",
            [],
        )
        .unwrap();
    }
}
