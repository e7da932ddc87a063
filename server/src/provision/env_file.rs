//! The deployment's `.env` (what docker-compose reads): `KEY=value` lines, comments and blank
//! lines. [`EnvFile`] edits values in place so that a user's comments and order survive set-up.
//! Pure: the caller reads and writes the file.

/// A parsed `.env`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvFile {
    lines: Vec<String>,
}

fn key_of(line: &str) -> Option<&str> {
    let t = line.trim_start();
    if t.starts_with('#') {
        return None;
    }
    let t = t.strip_prefix("export ").unwrap_or(t);
    let (key, _) = t.split_once('=')?;
    let key = key.trim();
    (!key.is_empty()).then_some(key)
}

fn unquote(v: &str) -> &str {
    let v = v.trim();
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return &v[1..v.len() - 1];
        }
    }
    // An unquoted value ends at ` #` (a trailing comment), as docker-compose reads it.
    v.split(" #").next().unwrap_or(v).trim_end()
}

impl EnvFile {
    pub fn parse(text: &str) -> Self {
        Self {
            lines: text.lines().map(str::to_owned).collect(),
        }
    }

    pub fn render(&self) -> String {
        let mut out = self.lines.join("\n");
        out.push('\n');
        out
    }

    /// The value of `key` (quotes removed), if the key is there.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.lines.iter().rev().find_map(|l| {
            (key_of(l) == Some(key)).then(|| unquote(l.split_once('=').map_or("", |(_, v)| v)))
        })
    }

    /// The value of `key` unless it is missing, empty or a placeholder (`change-me…`,
    /// `CHANGE_ME…`).
    pub fn real_value(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !is_placeholder(v))
    }

    /// Sets `key` to `value` where it is, or appends it.
    pub fn set(&mut self, key: &str, value: &str) {
        let line = format!("{key}={value}");
        match self.lines.iter().rposition(|l| key_of(l) == Some(key)) {
            Some(i) => self.lines[i] = line,
            None => self.lines.push(line),
        }
    }
}

/// Empty, or a value the example file ships as a placeholder.
pub fn is_placeholder(v: &str) -> bool {
    let lower = v.trim().to_ascii_lowercase();
    lower.is_empty() || lower.starts_with("change-me") || lower.starts_with("change_me")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_edits_in_place() {
        let text =
            "# secrets\nA=1\nB=\"two words\"\nexport C='x'\nD= change-me-please \nE=v # note\n\n";
        let mut env = EnvFile::parse(text);
        assert_eq!(env.get("A"), Some("1"));
        assert_eq!(env.get("B"), Some("two words"));
        assert_eq!(env.get("C"), Some("x"));
        assert_eq!(env.get("E"), Some("v"));
        assert_eq!(env.get("Z"), None);
        assert_eq!(env.real_value("D"), None, "placeholder");
        assert_eq!(env.real_value("A"), Some("1"));
        env.set("D", "s3cret");
        env.set("F", "new");
        assert_eq!(
            env.render(),
            "# secrets\nA=1\nB=\"two words\"\nexport C='x'\nD=s3cret\nE=v # note\n\nF=new\n"
        );
    }

    #[test]
    fn placeholders() {
        for p in ["", "  ", "change-me", "CHANGE_ME", "change-me-server"] {
            assert!(is_placeholder(p), "{p:?}");
        }
        assert!(!is_placeholder("hunter2"));
    }
}
