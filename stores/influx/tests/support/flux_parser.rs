//! The real Flux parser for the tests: influxdata's libflux parser as WebAssembly
//! (`@influxdata/flux-lsp-browser`), run by Node.js through `tests/flux-parser/parse.mjs`. One
//! process per test binary, started on first use; queries go one JSON line at a time.
//!
//! Needs `node` and the package installed: `npm ci --prefix stores/influx/tests/flux-parser`
//! (`scripts/test` does both).

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;

struct Node {
    _child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

static PARSER: Mutex<Option<Node>> = Mutex::new(None);

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/flux-parser")
}

fn start() -> Node {
    let dir = dir();
    assert!(
        dir.join("node_modules/@influxdata/flux-lsp-browser")
            .is_dir(),
        "the real Flux parser is not installed: run `npm ci --prefix {}` (scripts/test does)",
        dir.display()
    );
    let mut child = Command::new("node")
        .arg(dir.join("parse.mjs"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start node (Node.js is needed for the Flux parser): {e}")
        });
    let stdin = child.stdin.take().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    Node {
        _child: child,
        stdin,
        stdout,
    }
}

/// What InfluxDB's `POST /api/v2/query/ast` would answer, as JSON text: `Ok({"ast": ...})`,
/// or `Err` with the parser's first error (InfluxDB: 400, "invalid AST: ..."). Text, so that a
/// tree deeper than `serde_json` reads (128) still reaches the store, which must refuse it.
pub(crate) fn parse_text(query: &str) -> Result<String, String> {
    let mut guard = PARSER.lock().unwrap_or_else(|e| e.into_inner());
    let node = guard.get_or_insert_with(start);
    let mut line = serde_json::to_string(query).unwrap();
    line.push('\n');
    node.stdin.write_all(line.as_bytes()).unwrap();
    node.stdin.flush().unwrap();
    let mut answer = String::new();
    node.stdout.read_line(&mut answer).unwrap();
    if answer.starts_with("{\"ast\":") {
        return Ok(answer.trim_end().to_owned());
    }
    let error: serde_json::Value = serde_json::from_str(&answer)
        .unwrap_or_else(|e| panic!("parse.mjs answered {answer:?}: {e}"));
    Err(error["error"].as_str().unwrap_or(&answer).to_owned())
}

/// [`parse_text`], read as the store reads it.
pub(crate) fn parse(query: &str) -> Result<serde_json::Value, String> {
    parse_text(query).map(|text| serde_json::from_str(&text).unwrap())
}
