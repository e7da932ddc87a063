//! A small pool of reading connections, opened lazily. In WAL mode readers see the last
//! committed snapshot and never wait for the writer, so history queries do not queue behind
//! ingest commits.

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use rusqlite::Connection;

use crate::SqliteOptions;
use crate::schema;

pub(crate) struct ReadPool {
    path: PathBuf,
    options: SqliteOptions,
    idle: Mutex<Vec<Connection>>,
}

/// A connection borrowed from the pool; it goes back on drop.
pub(crate) struct Pooled<'a> {
    pool: &'a ReadPool,
    conn: Option<Connection>,
}

impl ReadPool {
    pub(crate) fn new(path: PathBuf, options: SqliteOptions) -> Self {
        Self {
            path,
            options,
            idle: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn get(&self) -> rusqlite::Result<Pooled<'_>> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match idle {
            Some(c) => c,
            None => schema::open_reader(&self.path, &self.options)?,
        };
        Ok(Pooled {
            pool: self,
            conn: Some(conn),
        })
    }
}

impl std::ops::Deref for Pooled<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        // Always Some until drop.
        self.conn.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl std::ops::DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        // A connection left inside a transaction (an error path) is closed, not reused.
        if !conn.is_autocommit() {
            return;
        }
        let mut idle = self
            .pool
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.pool.options.read_connections {
            idle.push(conn);
        }
    }
}
