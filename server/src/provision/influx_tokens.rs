//! `ogm-server influxdb-tokens`: the compose stack's one-shot service. With InfluxDB's admin
//! token it makes (or keeps) the server's scoped tokens ([`ogm_store_influx::tokens`]) and
//! writes them into a directory shared with the server and Grafana through a volume:
//!
//! - `write-token` (0600): the ingest's write-only token (`INFLUXDB_TOKEN_FILE`);
//! - `read-token` (0644, Grafana runs as another user): the read-only token
//!   (`INFLUXDB_READ_TOKEN_FILE`, Grafana's datasource);
//! - `influxdb-tokens.json` (0600): both with their authorization ids, to check and keep them
//!   on the next run.
//!
//! The admin token stays in this short-lived process; the server never sees it.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use ogm_store_influx::tokens::{Ensured, ScopedTokens, TokenAdmin};

/// Both tokens with their ids.
pub const TOKENS_JSON: &str = "influxdb-tokens.json";
/// The write token alone.
pub const WRITE_TOKEN_FILE: &str = "write-token";
/// The read token alone.
pub const READ_TOKEN_FILE: &str = "read-token";

/// The tokens a previous run wrote into `dir`, if readable.
pub fn load_known(dir: &Path) -> Option<ScopedTokens> {
    let path = dir.join(TOKENS_JSON);
    let text = std::fs::read_to_string(&path).ok()?;
    match serde_json::from_str(&text) {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable tokens file");
            None
        }
    }
}

fn write_file(dir: &Path, name: &str, contents: &str, mode: u32) -> anyhow::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(name);
    std::fs::write(&tmp, contents).with_context(|| format!("writing {}", tmp.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
}

/// Writes the three files (each replaced atomically).
pub fn write_files(dir: &Path, tokens: &ScopedTokens) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    write_file(dir, WRITE_TOKEN_FILE, &tokens.write.token, 0o600)?;
    write_file(dir, READ_TOKEN_FILE, &tokens.read.token, 0o644)?;
    write_file(
        dir,
        TOKENS_JSON,
        &serde_json::to_string_pretty(tokens)?,
        0o600,
    )
}

/// Reads a secret from a file (a token file, a Docker secret): trimmed, not empty.
pub fn read_secret_file(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the secret file {}", path.display()))?;
    let secret = text.trim();
    anyhow::ensure!(
        !secret.is_empty(),
        "the secret file {} is empty",
        path.display()
    );
    Ok(secret.to_owned())
}

/// Ensures the tokens (waiting up to `wait` for InfluxDB) and writes them into `dir`.
pub async fn run(dir: &Path, admin: &TokenAdmin, wait: Duration) -> anyhow::Result<Ensured> {
    let known = load_known(dir);
    let ensured = admin
        .ensure_waiting(known.as_ref(), wait)
        .await
        .context("making the server's InfluxDB tokens")?;
    let missing = !dir.join(WRITE_TOKEN_FILE).exists() || !dir.join(READ_TOKEN_FILE).exists();
    if ensured.created || missing {
        write_files(dir, &ensured.tokens)?;
    }
    Ok(ensured)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ogm_store_influx::tokens::ScopedToken;

    #[test]
    fn files_round_trip_with_their_modes() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_known(dir.path()).is_none());
        let tokens = ScopedTokens {
            write: ScopedToken {
                id: "w1".into(),
                token: "write-secret".into(),
            },
            read: ScopedToken {
                id: "r1".into(),
                token: "read-secret".into(),
            },
        };
        write_files(dir.path(), &tokens).unwrap();
        assert_eq!(load_known(dir.path()), Some(tokens));
        assert_eq!(
            read_secret_file(&dir.path().join(WRITE_TOKEN_FILE)).unwrap(),
            "write-secret"
        );
        std::fs::write(dir.path().join("blank"), " \n").unwrap();
        assert!(read_secret_file(&dir.path().join("blank")).is_err());
        assert!(read_secret_file(&dir.path().join("missing")).is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |n: &str| {
                std::fs::metadata(dir.path().join(n))
                    .unwrap()
                    .permissions()
                    .mode()
                    & 0o777
            };
            assert_eq!(mode(WRITE_TOKEN_FILE), 0o600);
            assert_eq!(mode(READ_TOKEN_FILE), 0o644);
            assert_eq!(mode(TOKENS_JSON), 0o600);
        }
        std::fs::write(dir.path().join(TOKENS_JSON), "{not json").unwrap();
        assert!(load_known(dir.path()).is_none());
    }
}
