//! How SQLite failures become [`StoreError`]s: the ones that pass (a lock held too long, a full
//! or failing disk) are `Unavailable`, so callers retry; everything else is `Backend`.

use ogm_store::StoreError;
use rusqlite::ErrorCode;

/// Maps a rusqlite error.
pub(crate) fn map(e: rusqlite::Error) -> StoreError {
    let transient = match &e {
        rusqlite::Error::SqliteFailure(f, _) => matches!(
            f.code,
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::SystemIoFailure
                | ErrorCode::DiskFull
                | ErrorCode::CannotOpen
                | ErrorCode::ReadOnly
                | ErrorCode::PermissionDenied
                | ErrorCode::FileLockingProtocolFailed
                | ErrorCode::OutOfMemory
        ),
        _ => false,
    };
    if transient {
        StoreError::Unavailable(ogm_store::Cause::new(e.to_string(), e))
    } else {
        StoreError::Backend(ogm_store::Cause::new(e.to_string(), e))
    }
}

/// A blocking task that panicked or was cancelled.
pub(crate) fn join(e: tokio::task::JoinError) -> StoreError {
    StoreError::Backend(ogm_store::Cause::new(format!("store task failed: {e}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_and_io_errors_are_unavailable() {
        let busy = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(5), None);
        assert!(matches!(map(busy), StoreError::Unavailable(_)));
        let io = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(10), None);
        assert!(matches!(map(io), StoreError::Unavailable(_)));
        let constraint = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(19), None);
        assert!(matches!(map(constraint), StoreError::Backend(_)));
        assert!(matches!(
            map(rusqlite::Error::QueryReturnedNoRows),
            StoreError::Backend(_)
        ));
    }
}
