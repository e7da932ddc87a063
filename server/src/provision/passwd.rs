//! Mosquitto's password file: one `user:hash` line per broker user, the hash in Mosquitto 2's
//! `$7$` format: `$7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512>` (what
//! `mosquitto_passwd` writes by default: 101 iterations, a 12-byte salt, a 64-byte hash).
//!
//! [`PasswordFile`] parses and renders the text (pure); [`load`] and [`save`] are the only file
//! I/O. [`save`] rewrites the file in place instead of renaming a new one over it: docker-compose
//! bind-mounts the single file into the broker's container, and a bind mount keeps the old
//! inode, so a renamed replacement would never be seen by the broker's reload (SIGHUP).

use std::io::Write as _;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rand::Rng as _;

/// PBKDF2 iterations, as `mosquitto_passwd` 2.0 uses. The generated passwords are 24 random
/// alphanumerics (about 143 bits), so the iteration count is not what protects them.
pub const ITERATIONS: u32 = 101;
const SALT_LEN: usize = 12;
const HASH_LEN: usize = 64;

/// Why a password file or a user name cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PasswdError {
    #[error("broker user name {0:?} is empty or holds ':' or a control character")]
    BadUser(String),
    #[error("the password for {0:?} is empty or holds a control character")]
    BadPassword(String),
    #[error("line {line} of the password file is not `user:hash`")]
    BadLine { line: usize },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The `$7$` hash of `password` with `salt`.
pub fn hash_with_salt(password: &str, salt: &[u8], iterations: u32) -> String {
    let mut out = [0u8; HASH_LEN];
    pbkdf2::pbkdf2_hmac::<sha2::Sha512>(password.as_bytes(), salt, iterations, &mut out);
    format!("$7${iterations}${}${}", B64.encode(salt), B64.encode(out))
}

/// The `$7$` hash of `password` with a fresh random salt.
pub fn hash(password: &str) -> String {
    let mut salt = [0u8; SALT_LEN];
    rand::rng().fill(&mut salt);
    hash_with_salt(password, &salt, ITERATIONS)
}

/// Whether `password` matches a `$7$` hash. Other formats (`$6$`) are not checked: false.
pub fn verify(password: &str, hash: &str) -> bool {
    let mut parts = hash.split('$');
    let (Some(""), Some("7"), Some(iter), Some(salt), Some(expected), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let (Ok(iterations), Ok(salt)) = (iter.parse::<u32>(), B64.decode(salt)) else {
        return false;
    };
    if iterations == 0 || iterations > 10_000_000 {
        return false;
    }
    // A plain comparison: this only decides whether set-up must rewrite a hash.
    hash_with_salt(password, &salt, iterations)
        .rsplit('$')
        .next()
        == Some(expected)
}

/// A random password of `len` alphanumeric characters (A-Z a-z 0-9), from the thread's CSPRNG.
pub fn random_password(len: usize) -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Checks a broker user name as the password file can hold it.
pub fn check_user(user: &str) -> Result<(), PasswdError> {
    if user.is_empty() || user.contains(':') || user.chars().any(char::is_control) {
        return Err(PasswdError::BadUser(user.to_owned()));
    }
    Ok(())
}

/// Checks a password before it is hashed.
pub fn check_password(user: &str, password: &str) -> Result<(), PasswdError> {
    if password.is_empty() || password.chars().any(char::is_control) {
        return Err(PasswdError::BadPassword(user.to_owned()));
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    Entry {
        user: String,
        hash: String,
    },
    /// Blank lines and `#` comments, kept as they were.
    Other(String),
}

/// A parsed password file; order and comments survive a round trip.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PasswordFile {
    lines: Vec<Line>,
}

impl PasswordFile {
    pub fn parse(text: &str) -> Result<Self, PasswdError> {
        let mut lines = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                lines.push(Line::Other(raw.to_owned()));
                continue;
            }
            match trimmed.split_once(':') {
                Some((user, hash)) if !user.is_empty() && !hash.is_empty() => {
                    lines.push(Line::Entry {
                        user: user.to_owned(),
                        hash: hash.to_owned(),
                    })
                }
                _ => return Err(PasswdError::BadLine { line: i + 1 }),
            }
        }
        Ok(Self { lines })
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for line in &self.lines {
            match line {
                Line::Entry { user, hash } => {
                    out.push_str(user);
                    out.push(':');
                    out.push_str(hash);
                }
                Line::Other(text) => out.push_str(text),
            }
            out.push('\n');
        }
        out
    }

    /// The hash stored for `user`.
    pub fn get(&self, user: &str) -> Option<&str> {
        self.lines.iter().find_map(|l| match l {
            Line::Entry { user: u, hash } if u == user => Some(hash.as_str()),
            _ => None,
        })
    }

    /// Every user, in file order.
    pub fn users(&self) -> Vec<&str> {
        self.lines
            .iter()
            .filter_map(|l| match l {
                Line::Entry { user, .. } => Some(user.as_str()),
                Line::Other(_) => None,
            })
            .collect()
    }

    /// Sets `user`'s password (hashed here), replacing any earlier entry.
    pub fn set_password(&mut self, user: &str, password: &str) -> Result<(), PasswdError> {
        check_user(user)?;
        check_password(user, password)?;
        let new_hash = hash(password);
        for line in &mut self.lines {
            if let Line::Entry { user: u, hash } = line
                && u == user
            {
                *hash = new_hash;
                return Ok(());
            }
        }
        self.lines.push(Line::Entry {
            user: user.to_owned(),
            hash: new_hash,
        });
        Ok(())
    }

    /// Sets `user`'s password unless the stored hash already matches it; true if it changed.
    pub fn ensure_password(&mut self, user: &str, password: &str) -> Result<bool, PasswdError> {
        if self.get(user).is_some_and(|h| verify(password, h)) {
            return Ok(false);
        }
        self.set_password(user, password)?;
        Ok(true)
    }

    /// Removes `user`; true if it was there.
    pub fn remove(&mut self, user: &str) -> bool {
        let before = self.lines.len();
        self.lines
            .retain(|l| !matches!(l, Line::Entry { user: u, .. } if u == user));
        self.lines.len() != before
    }
}

fn io_error(path: &Path, source: std::io::Error) -> PasswdError {
    PasswdError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Reads `path`; a missing file is an empty one.
pub fn load(path: &Path) -> Result<PasswordFile, PasswdError> {
    match std::fs::read_to_string(path) {
        Ok(text) => PasswordFile::parse(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(PasswordFile::default()),
        Err(e) => Err(io_error(path, e)),
    }
}

/// Writes `file` to `path` in place (see the module docs for why not by rename). A new file is
/// created readable by all (0644): the broker in its container runs as its own user and must
/// read it, and it holds only salted hashes. An existing file keeps its mode.
pub fn save(path: &Path, file: &PasswordFile) -> Result<(), PasswdError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    }
    let existed = path.exists();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| io_error(path, e))?;
    #[cfg(unix)]
    if !existed {
        use std::os::unix::fs::PermissionsExt as _;
        f.set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(|e| io_error(path, e))?;
    }
    #[cfg(not(unix))]
    let _ = existed;
    f.write_all(file.render().as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| io_error(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by Debian's `mosquitto_passwd` 2.0.11: `mosquitto_passwd -c -b pw alice secret`.
    const FROM_MOSQUITTO_PASSWD: &str = "$7$101$KdKHdSZIe1TP5cDM$O47RJWzSAIGuoLFbtEb10lIIKwqPrxU3L3KFrw1mUE0rKGCyelBArShbU92fAYUucaAhyfsqIcUuBmgtWeClLw==";

    #[test]
    fn hashes_like_mosquitto_passwd() {
        let salt = B64.decode("KdKHdSZIe1TP5cDM").unwrap();
        assert_eq!(hash_with_salt("secret", &salt, 101), FROM_MOSQUITTO_PASSWD);
        assert!(verify("secret", FROM_MOSQUITTO_PASSWD));
        assert!(!verify("Secret", FROM_MOSQUITTO_PASSWD));
    }

    #[test]
    fn fresh_hashes_verify_and_differ_by_salt() {
        let a = hash("pw-1");
        let b = hash("pw-1");
        assert_ne!(a, b, "salted");
        assert!(a.starts_with("$7$101$"));
        assert!(verify("pw-1", &a) && verify("pw-1", &b));
        for bad in [
            "",
            "$6$abc$def",
            "$7$x$y$z",
            "$7$101$!!$abc",
            "$7$0$AAAA$AAAA",
        ] {
            assert!(!verify("pw-1", bad), "{bad}");
        }
    }

    #[test]
    fn edits_keep_order_and_comments() {
        let text = "# users\nogm.server:$6$old$x\n\ndev-a:$7$101$AAAA$BBBB\n";
        let mut f = PasswordFile::parse(text).unwrap();
        assert_eq!(f.render(), text);
        assert_eq!(f.users(), ["ogm.server", "dev-a"]);
        assert!(f.ensure_password("ogm.server", "s3").unwrap());
        assert!(!f.ensure_password("ogm.server", "s3").unwrap(), "unchanged");
        f.set_password("dev-b", "b").unwrap();
        assert!(f.remove("dev-a"));
        assert!(!f.remove("dev-a"));
        assert_eq!(f.users(), ["ogm.server", "dev-b"]);
        assert!(f.render().starts_with("# users\nogm.server:$7$101$"));
        assert!(verify("b", f.get("dev-b").unwrap()));
    }

    #[test]
    fn refuses_what_the_file_cannot_hold() {
        assert!(PasswordFile::parse("no-colon\n").is_err());
        assert!(PasswordFile::parse(":hash\n").is_err());
        let mut f = PasswordFile::default();
        assert!(f.set_password("a:b", "x").is_err());
        assert!(f.set_password("", "x").is_err());
        assert!(f.set_password("dev", "").is_err());
        assert!(f.set_password("dev", "a\nb").is_err());
    }

    #[test]
    fn save_rewrites_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/passwd");
        let mut f = load(&path).unwrap();
        f.set_password("dev-a", "x").unwrap();
        save(&path, &f).unwrap();
        #[cfg(unix)]
        let inode = {
            use std::os::unix::fs::MetadataExt as _;
            let m = std::fs::metadata(&path).unwrap();
            assert_eq!(m.mode() & 0o777, 0o644);
            m.ino()
        };
        f.set_password("dev-b", "y").unwrap();
        save(&path, &f).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt as _;
            assert_eq!(std::fs::metadata(&path).unwrap().ino(), inode, "same inode");
        }
        assert_eq!(load(&path).unwrap().users(), ["dev-a", "dev-b"]);
    }
}
