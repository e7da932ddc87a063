//! The guard in front of the Flux proxy: which user queries may reach InfluxDB. No I/O here.
//!
//! The proxy runs queries with a token that may be able to read (and, when no read token is
//! configured, write) more than the one bucket, so the guard is deliberately conservative: it
//! refuses anything it cannot show to be a read of the configured bucket, even when InfluxDB
//! itself would have run it harmlessly. The rules, checked on the query's tokens (strings,
//! regular expressions and `//` comments are lexed, so words inside them do not count):
//!
//! 1. **Imports** must name a package on [`ALLOWED_IMPORTS`] (pure computation: `strings`,
//!    `math`, `date`, `array`, `join`, `experimental`, `influxdata/influxdb/schema`, ...).
//!    That refuses every package that writes or reaches outside: `http`, `sql`, `socket`,
//!    `csv` (it reads local files), `experimental/http`, `experimental/mqtt`,
//!    `influxdata/influxdb` (`wideTo`, `buckets`, `from` with a host),
//!    `influxdata/influxdb/v1` (`databases`), `influxdata/influxdb/secrets`, `sample`,
//!    notification endpoints (`slack`, `pagerduty`, `contrib/...`), `testing`, ...
//! 2. **Writing and listing** identifiers are refused wherever they appear, called or not (so
//!    they cannot be aliased): `to` (`to`, `experimental.to`, `sql.to`, `mqtt.to`), `wideTo`,
//!    `buckets`, `bucketID`, `orgID`.
//! 3. **Other places**: the named arguments `host:`, `token:`, `org:`, `orgID:` and `bucketID:`
//!    are refused (they point `from` and friends at another server or organisation).
//! 4. **The bucket**: every `bucket:` argument must be followed by a plain string literal equal
//!    to the configured bucket, and then by `,`, `)` or `}`: no variable, concatenation or
//!    interpolation.
//! 5. Names written as strings are checked the same way: a string used as a record key
//!    (`"bucket": ...`) or as an index (`experimental["to"]`) counts as that name.
//! 6. **Strings** may not interpolate (`"${...}"` runs code inside a string).
//! 7. **Ambiguity** is refused: an unterminated string or regular expression, and a `/` right
//!    after `}` (Flux could read it as division or as the start of a regular expression; a
//!    lexer that guessed differently from Flux could be made to skip code).
//! 8. Queries longer than [`MAX_QUERY_BYTES`] are refused.
//!
//! Everything else in Flux only computes on what it was given. A refused query gets a message
//! saying which rule it broke.

/// Largest query accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 64 * 1024;

/// Packages a proxied query may import.
pub const ALLOWED_IMPORTS: &[&str] = &[
    "array",
    "date",
    "date/boundaries",
    "dict",
    "experimental",
    "experimental/aggregate",
    "experimental/array",
    "influxdata/influxdb/schema",
    "interpolate",
    "join",
    "math",
    "regexp",
    "strings",
    "timezone",
    "types",
];

/// Identifiers refused wherever they appear.
const FORBIDDEN_NAMES: &[&str] = &["to", "wideTo", "buckets", "bucketID", "orgID"];

/// Named arguments (and record keys) refused.
const FORBIDDEN_ARGUMENTS: &[&str] = &["host", "token", "org", "orgID", "bucketID"];

/// Flux keywords: after them an operand follows, so a `/` starts a regular expression.
const KEYWORDS: &[&str] = &[
    "and", "builtin", "else", "exists", "if", "import", "not", "option", "or", "package", "return",
    "testcase", "then", "with",
];

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    /// The raw text between the quotes (escapes left as written).
    Str(String),
    Regex,
    Number,
    Punct(char),
}

/// Checks a proxied query against the rules above; `Err` says why it is refused.
pub fn check(query: &str, bucket: &str) -> Result<(), String> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(format!(
            "Flux query refused: longer than {MAX_QUERY_BYTES} bytes"
        ));
    }
    let tokens = lex(query).map_err(|e| format!("Flux query refused: {e}"))?;
    let allowed_bucket = crate::flux::string_literal(bucket);
    let allowed_bucket = &allowed_bucket[1..allowed_bucket.len() - 1];
    let refuse = |why: String| Err(format!("Flux query refused: {why}"));
    for (i, token) in tokens.iter().enumerate() {
        let next = tokens.get(i + 1);
        let prev = i.checked_sub(1).and_then(|p| tokens.get(p));
        // A name, written as an identifier or as a string key or index.
        let name = match token {
            Token::Ident(s) => Some(s.as_str()),
            Token::Str(s)
                if next == Some(&Token::Punct(':')) || prev == Some(&Token::Punct('[')) =>
            {
                Some(s.as_str())
            }
            _ => None,
        };
        if let Token::Str(s) = token
            && has_interpolation(s)
        {
            return refuse("string interpolation (\"${...}\") is not allowed".into());
        }
        if let Token::Ident(kw) = token
            && kw == "import"
        {
            let path = match (next, tokens.get(i + 2)) {
                (Some(Token::Str(p)), _) => p,
                (Some(Token::Ident(_)), Some(Token::Str(p))) => p,
                _ => return refuse("an import must name a package as a string".into()),
            };
            if !ALLOWED_IMPORTS.contains(&path.as_str()) {
                return refuse(format!(
                    "package \"{path}\" may not be imported here (allowed: {})",
                    ALLOWED_IMPORTS.join(", ")
                ));
            }
            continue;
        }
        let Some(name) = name else { continue };
        if FORBIDDEN_NAMES.contains(&name) {
            return refuse(format!(
                "`{name}` writes data or lists buckets; only reading bucket \"{bucket}\" is allowed"
            ));
        }
        let is_argument = next == Some(&Token::Punct(':'));
        if is_argument && FORBIDDEN_ARGUMENTS.contains(&name) {
            return refuse(format!(
                "the `{name}:` argument is not allowed; queries run against this server's \
                 InfluxDB organisation and bucket \"{bucket}\" only"
            ));
        }
        if is_argument && name == "bucket" {
            let value = tokens.get(i + 2);
            let after = tokens.get(i + 3);
            let ok = matches!(value, Some(Token::Str(s)) if s == allowed_bucket)
                && matches!(
                    after,
                    Some(Token::Punct(',')) | Some(Token::Punct(')')) | Some(Token::Punct('}'))
                );
            if !ok {
                return refuse(format!(
                    "`bucket:` must be the string \"{bucket}\"; no other bucket can be queried here"
                ));
            }
        }
    }
    Ok(())
}

fn has_interpolation(raw: &str) -> bool {
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '$' if chars.peek() == Some(&'{') => return true,
            _ => {}
        }
    }
    false
}

/// Whether a `/` after `prev` is division (`Some(true)`), a regular expression
/// (`Some(false)`), or ambiguous (`None`).
fn slash_is_division(prev: Option<&Token>) -> Option<bool> {
    match prev {
        None => Some(false),
        Some(Token::Ident(s)) => Some(!KEYWORDS.contains(&s.as_str())),
        Some(Token::Str(_) | Token::Regex | Token::Number) => Some(true),
        Some(Token::Punct(')' | ']')) => Some(true),
        Some(Token::Punct('}')) => None,
        Some(Token::Punct(_)) => Some(false),
    }
}

fn lex(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '/' => match slash_is_division(tokens.last()) {
                Some(true) => tokens.push(Token::Punct('/')),
                Some(false) => {
                    loop {
                        match chars.next() {
                            Some('\\') => {
                                chars.next();
                            }
                            Some('/') => break,
                            Some('\n') | None => {
                                return Err("unterminated regular expression".into());
                            }
                            Some(_) => {}
                        }
                    }
                    tokens.push(Token::Regex);
                }
                None => {
                    return Err(
                        "a `/` right after `}` is ambiguous (division or regular expression); \
                         wrap the expression in parentheses"
                            .into(),
                    );
                }
            },
            '"' => {
                let mut raw = String::new();
                loop {
                    match chars.next() {
                        Some('\\') => {
                            raw.push('\\');
                            match chars.next() {
                                Some(e) => raw.push(e),
                                None => return Err("unterminated string".into()),
                            }
                        }
                        Some('"') => break,
                        Some(c) => raw.push(c),
                        None => return Err("unterminated string".into()),
                    }
                }
                tokens.push(Token::Str(raw));
            }
            c if c.is_alphabetic() || c == '_' => {
                let mut ident = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_alphanumeric() || n == '_' {
                        ident.push(n);
                        chars.next();
                    } else {
                        break;
                    }
                }
                tokens.push(Token::Ident(ident));
            }
            c if c.is_ascii_digit() => {
                // Integers, floats, durations (1h30m) and the pieces of date-time literals.
                while let Some(&n) = chars.peek() {
                    if n.is_alphanumeric() || n == '_' || n == '.' {
                        chars.next();
                    } else {
                        break;
                    }
                }
                tokens.push(Token::Number);
            }
            c => tokens.push(Token::Punct(c)),
        }
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: &str = "open_grid_monitor";

    fn allowed(q: &str) {
        if let Err(e) = check(q, B) {
            panic!("should be allowed: {e}\n{q}");
        }
    }

    fn refused(q: &str, because: &str) {
        match check(q, B) {
            Ok(()) => panic!("should be refused ({because}):\n{q}"),
            Err(e) => assert!(e.contains(because), "{e:?} should mention {because:?}\n{q}"),
        }
    }

    #[test]
    fn reads_of_the_configured_bucket_are_allowed() {
        allowed(
            r#"from(bucket: "open_grid_monitor")
  |> range(start: -1h)
  |> filter(fn: (r) => r._measurement == "grid_data" and r._field == "frequency")
  |> aggregateWindow(every: 1m, fn: mean, createEmpty: false)
  |> yield(name: "mean")"#,
        );
        allowed(
            r#"import "strings"
import "math"
import s "influxdata/influxdb/schema"
// a comment may say to(bucket: "other") or buckets() or import "http"
data = from(bucket:"open_grid_monitor",) |> range(start: 2024-01-01T00:00:00Z, stop: now())
data
  |> filter(fn: (r) => r.message == "connected to (AP) \"x\" // not a comment")
  |> filter(fn: (r) => r.device_id =~ /^esp"32 to(bucket: "x")\/[a-z]/ and r.host == "pi")
  |> map(fn: (r) => ({r with _value: r._value / 1000.0, k: float(v: r["_value"]) / 2.0}))
  |> filter(fn: (r) => strings.containsStr(v: r.module, substr: "\${not interpolated}"))
s.measurements(bucket: "open_grid_monitor")"#,
        );
        allowed(
            r#"from(bucket: "open_grid_monitor") |> range(start: -1d) |> filter(fn: (r) => exists r.level and r.level !~ /DEBUG/)"#,
        );
        allowed(r#"f = (r) => { return /abc/ } // regex after return"#);
    }

    #[test]
    fn other_buckets_are_refused() {
        refused(
            r#"from(bucket: "_monitoring") |> range(start: -1h)"#,
            "bucket",
        );
        refused(r#"from(bucket: "open_grid_monitor2")"#, "bucket");
        refused(r#"from(bucketID: "0123456789abcdef")"#, "bucketID");
        refused(r#"buckets()"#, "buckets");
        refused(r#"b = "open_grid_monitor" from(bucket: b)"#, "bucket");
        refused(r#"from(bucket: "open_" + "grid_monitor")"#, "bucket");
        refused(r#"from(bucket: if true then "x" else "y")"#, "bucket");
        refused(r#"from("bucket": "other")"#, "bucket");
        refused(
            r#"import s "influxdata/influxdb/schema" s.measurements(bucket: "other")"#,
            "bucket",
        );
        refused(
            r#"from(bucket: "open_grid_monitor", host: "https://elsewhere:8086", token: "t")"#,
            "host",
        );
        refused(r#"from(bucket: "open_grid_monitor", org: "other")"#, "org");
    }

    #[test]
    fn writes_and_outside_reach_are_refused() {
        refused(
            r#"from(bucket: "open_grid_monitor") |> range(start: -1h) |> to(bucket: "open_grid_monitor")"#,
            "`to`",
        );
        refused(
            r#"import "experimental" from(bucket: "open_grid_monitor") |> experimental.to(bucket: "x")"#,
            "`to`",
        );
        refused(
            r#"import "experimental" experimental["to"](bucket: "x")"#,
            "`to`",
        );
        refused(r#"write = to"#, "`to`");
        refused(
            r#"import "influxdata/influxdb" influxdb.wideTo(bucket: "x")"#,
            "influxdata/influxdb",
        );
        refused(r#"import "sql" sql.to(driverName: "postgres")"#, "\"sql\"");
        refused(r#"import "http" http.post(url: "http://x")"#, "\"http\"");
        refused(
            r#"import "experimental/http" http.get(url: "http://x")"#,
            "experimental/http",
        );
        refused(
            r#"import "influxdata/influxdb/v1" v1.databases()"#,
            "influxdata/influxdb/v1",
        );
        refused(
            r#"import "influxdata/influxdb/secrets" secrets.get(key: "k")"#,
            "secrets",
        );
        refused(r#"import "csv" csv.from(file: "/etc/passwd")"#, "\"csv\"");
        refused(
            r#"import "experimental/mqtt" mqtt.to(broker: "tcp://x")"#,
            "mqtt",
        );
        refused(r#"import h "http""#, "\"http\"");
        refused(r#"import http"#, "import");
    }

    #[test]
    fn tricks_that_could_hide_code_are_refused() {
        refused(r#"x = "${string(v: buckets())}""#, "interpolation");
        refused(r#"from(bucket: "open_grid_monitor"#, "unterminated string");
        refused(r#"r.a =~ /abc"#, "unterminated regular expression");
        refused(
            "f = () => { return 1 }\n/\"/\nto(bucket: \"x\") // \"",
            "ambiguous",
        );
        // A quote inside a regex does not open a string that hides the rest.
        refused(
            r#"from(bucket: "open_grid_monitor") |> filter(fn: (r) => r.a =~ /"/) |> to(bucket: "x") // ""#,
            "`to`",
        );
        // `//` inside a string is not a comment that hides the rest of the line.
        refused(
            r#"from(bucket: "open_grid_monitor") |> filter(fn: (r) => r.a == "//") |> to(bucket: "x")"#,
            "`to`",
        );
        refused(&"x".repeat(MAX_QUERY_BYTES + 1), "longer");
    }

    #[test]
    fn odd_input_never_panics() {
        for q in [
            "", "\"", "/", "//", "\\", "\"\\", "{}/", "é/ü/", "1/", "[\"to\"", "import",
        ] {
            let _ = check(q, B);
        }
    }
}
