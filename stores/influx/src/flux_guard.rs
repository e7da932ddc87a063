//! The guard in front of the Flux proxy: which user queries may reach InfluxDB, decided on the
//! parsed query. No I/O here: the store asks InfluxDB to parse the query
//! (`POST /api/v2/query/ast`, the parser that will run it) and hands the answer to [`check`].
//!
//! The guard is an allowlist. It accepts a query only when every part of InfluxDB's syntax tree
//! is something it knows to be harmless, and refuses everything else, including syntax it has
//! never seen (a node type or a field it does not know, parser errors, attributes):
//!
//! 1. **Statements**: expressions and assignments (`x = ...`). No `option` (it could move
//!    `now`), `package`, `builtin`, `testcase`, attributes (`@edition(...)`).
//! 2. **Imports**: only [`ALLOWED_PACKAGES`] (`math`, `strings`, `regexp`, `date`), and of
//!    each only the members listed there (not `strings.repeat`, which can make a huge string).
//!    Everything that writes or reaches outside lives in packages that are not on the list:
//!    `http`, `sql`, `socket`, `csv`, `array`, `experimental...`, `influxdata/influxdb...`
//!    (`buckets`, `wideTo`, `v1`, `secrets`), notification endpoints, `testing`, ...
//! 3. **Names**: an identifier must be bound in the query itself (an assignment, a function
//!    parameter, an import) or be one of Flux's own functions on [`ALLOWED_FUNCTIONS`] (plus
//!    `true` and `false`). Not on the list, so refused wherever they appear: `to`, `buckets`,
//!    `die`, `sleep`, `linearBins`, ... A query may not bind a name of its own to an allowed
//!    function's name (`range = ...`), so those names always mean Flux's functions.
//! 4. **Calls**: only of a name (an allowed function or one the query defined) or of an
//!    allowed package member (`strings.toUpper(...)`), or of a member of a value the query
//!    built; never of the result of an expression. Shorthand arguments (`f(x)` for `f(x: x)`)
//!    are references to `x` and are checked as such.
//! 5. **`from`** is the only source of data. It must be called directly, with exactly one
//!    argument, `bucket:`, written as a string literal equal to the configured bucket: no
//!    shorthand (`from(bucket)`), no variable or default parameter value, no `host:`,
//!    `token:`, `org:`, `bucketID:`. Record keys and member names are compared as the parser
//!    decoded them, so `"h\x6fst":` is `host:`.
//! 6. **Time**: every `from(...)` must be piped straight into `range(start: ...)`, with `start`
//!    and `stop` (optional, default now) written as time literals (`2024-01-01T00:00:00Z`),
//!    durations relative to now (`-1h`, `-1mo`) or `now()`, and the span at most
//!    [`Policy::max_range_ns`] (months and years counted at their longest).
//!
//! Everything else in the allowed part of Flux only computes on what it was given. How long a
//! query may run and how much it may answer are limited where the answer is streamed
//! ([`crate::InfluxConfig::flux`]). Depth is bounded by `serde_json`'s recursion limit (128)
//! when the store reads the tree, so the walk here cannot overflow the stack.
//!
//! There is no check on the query's text before the parse: an earlier guard worked on tokens,
//! and shorthand arguments, default parameter values, `\x` escapes and a `/` it read
//! differently from Flux walked around it. A text check could only refuse more, never prove a
//! query harmless, so the tree alone decides.
//!
//! The tree is InfluxDB's JSON (Go's `ast` package). libflux's own serialisation differs in
//! small ways (some nodes in fixed positions carry no `type`, `with` may be `{source: ...}`),
//! and both are read, since the tests use libflux's parser through WebAssembly.

use serde_json::{Map, Value};

/// Largest query accepted, in bytes. Flux queries people write are a few hundred bytes; the
/// syntax tree InfluxDB writes for one repeats each node's source text at every level, so it
/// grows much faster than the query.
pub const MAX_QUERY_BYTES: usize = 16 * 1024;

/// What a proxied query may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy<'a> {
    /// The only bucket `from` may read.
    pub bucket: &'a str,
    /// The longest span a `range()` after `from()` may cover, in ns; `None`: any, as long as
    /// both ends are given.
    pub max_range_ns: Option<i128>,
    /// Now, in ns since the epoch: durations in `range()` are relative to it.
    pub now_ns: i128,
}

/// Flux's own functions (the universe) a query may call, or pass as a value (`fn: mean`). None
/// reads data by itself except `from` (rule 5), and none writes or reaches outside.
#[rustfmt::skip]
pub const ALLOWED_FUNCTIONS: &[&str] = &[
    // The source and its time range.
    "from", "range", "now", "today",
    // Filtering and selecting.
    "filter", "limit", "tail", "first", "last", "min", "max", "top", "bottom", "distinct",
    "unique", "sample", "hourSelection",
    // Aggregating.
    "aggregateWindow", "window", "mean", "median", "sum", "count", "spread", "stddev", "mode",
    "quantile", "integral", "increase", "timeWeightedAvg",
    // Reshaping.
    "map", "reduce", "pivot", "group", "sort", "keep", "drop", "rename", "duplicate", "set",
    "fill", "union", "columns", "keys", "keyValues", "yield",
    // Time series computations.
    "timeShift", "truncateTimeColumn", "difference", "derivative", "cumulativeSum",
    "movingAverage", "exponentialMovingAverage", "timedMovingAverage", "elapsed", "stateCount",
    "stateDuration",
    // Conversions and values.
    "toFloat", "toInt", "toUInt", "toString", "toBool", "toTime", "float", "int", "uint", "string",
    "bool", "time", "duration", "contains", "length",
    // Reading values out of a stream.
    "findRecord", "findColumn", "getRecord", "getColumn", "tableFind",
];

/// Universe values that are not functions.
const ALLOWED_VALUES: &[&str] = &["true", "false"];

#[rustfmt::skip]
const MATH: &[&str] = &[
    "NaN", "abs", "acos", "acosh", "asin", "asinh", "atan", "atan2", "atanh", "cbrt", "ceil",
    "copysign", "cos", "cosh", "dim", "e", "erf", "erfc", "erfcinv", "erfinv", "exp", "exp2",
    "expm1", "floor", "hypot", "isInf", "isNaN", "ln10", "ln2", "log", "log10", "log10e", "log1p",
    "log2", "log2e", "logb", "mInf", "mMax", "mMin", "maxfloat", "maxint", "maxuint", "minint",
    "mod", "phi", "pi", "pow", "pow10", "remainder", "round", "roundtoeven", "signbit", "sin",
    "sinh", "smallestNonzeroFloat", "sqrt", "sqrt2", "sqrte", "sqrtphi", "sqrtpi", "tan", "tanh",
    "trunc",
];

#[rustfmt::skip]
const STRINGS: &[&str] = &[
    "compare", "containsAny", "containsStr", "countStr", "equalFold", "hasPrefix", "hasSuffix",
    "index", "indexAny", "isDigit", "isLetter", "isLower", "isUpper", "joinStr", "lastIndex",
    "lastIndexAny", "replace", "replaceAll", "split", "splitAfter", "splitAfterN", "splitN",
    "strlen", "substring", "title", "toLower", "toTitle", "toUpper", "trim", "trimLeft",
    "trimPrefix", "trimRight", "trimSpace", "trimSuffix",
];

#[rustfmt::skip]
const REGEXP: &[&str] = &[
    "compile", "findString", "findStringIndex", "getString", "matchRegexpString", "quoteMeta",
    "replaceAllString", "splitRegexp",
];

#[rustfmt::skip]
const DATE: &[&str] = &[
    "add", "hour", "microsecond", "millisecond", "minute", "month", "monthDay", "nanosecond",
    "quarter", "scale", "second", "sub", "time", "truncate", "week", "weekDay", "year", "yearDay",
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December", "Sunday", "Monday", "Tuesday", "Wednesday", "Thursday",
    "Friday", "Saturday",
];

/// Packages a query may import, with the members it may use: pure computation on values.
pub const ALLOWED_PACKAGES: &[(&str, &[&str])] = &[
    ("math", MATH),
    ("strings", STRINGS),
    ("regexp", REGEXP),
    ("date", DATE),
];

/// Fields every node may carry that hold no code: its type, where it is, and comments.
const TRIVIA: &[&str] = &[
    "type",
    "location",
    "comments",
    "lparen",
    "rparen",
    "lbrace",
    "rbrace",
    "lbrack",
    "rbrack",
    "arrow",
    "separator",
    "comma",
    "tk_if",
    "tk_then",
    "tk_else",
    "colon",
    "eof",
];

const NS_PER_SEC: i128 = 1_000_000_000;
const NS_PER_DAY: i128 = 86_400 * NS_PER_SEC;

type Checked<T = ()> = Result<T, String>;

/// A property: its node, its name, and its value (`None` for shorthand, `{x}` or `f(x)`).
type Prop<'a> = (&'a Map<String, Value>, &'a str, Option<&'a Value>);

/// Checks InfluxDB's answer to `POST /api/v2/query/ast` (`{"ast": {"type": "Package", ...}}`)
/// against the rules above. `Err` says what was refused and where, for the user.
pub fn check(answer: &Value, policy: &Policy<'_>) -> Result<(), String> {
    let ast = answer
        .as_object()
        .and_then(|a| a.get("ast"))
        .ok_or_else(|| "Flux query refused: InfluxDB's parse of it has no `ast`".to_owned())?;
    Checker {
        policy,
        scope: Vec::new(),
    }
    .package(ast)
    .map_err(|e| format!("Flux query refused: {e}"))
}

/// What a name the query bound stands for.
#[derive(Debug, Clone, Copy)]
enum Binding {
    /// A value the query computed (data, a record, a function it wrote).
    Local,
    /// An imported package, with the members that may be used.
    Package(&'static str, &'static [&'static str]),
}

struct Checker<'p> {
    policy: &'p Policy<'p>,
    /// Bound names, innermost last.
    scope: Vec<(String, Binding)>,
}

/// `line L, column C: ` for a node that says where it is.
fn at(node: &Map<String, Value>) -> String {
    let start = node.get("location").and_then(|l| l.get("start"));
    let n = |k: &str| start.and_then(|s| s.get(k)).and_then(Value::as_u64);
    match (n("line"), n("column")) {
        (Some(l), Some(c)) => format!("line {l}, column {c}: "),
        _ => String::new(),
    }
}

/// The node's `type`, if it has one.
fn kind(node: &Map<String, Value>) -> Option<&str> {
    node.get("type").and_then(Value::as_str)
}

fn object<'a>(v: &'a Value, what: &str) -> Checked<&'a Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| format!("the parser's tree has no {what} where one should be"))
}

/// Checks that `node` holds only `fields` (and trivia), carries no parser errors and no
/// attributes.
fn only(node: &Map<String, Value>, fields: &[&str]) -> Checked {
    for (key, value) in node {
        match key.as_str() {
            "errors" | "attributes" => {
                let empty = value.is_null() || value.as_array().is_some_and(Vec::is_empty);
                if !empty {
                    return Err(if key == "errors" {
                        let msg = value
                            .get(0)
                            .and_then(|e| e.get("msg").or(Some(e)))
                            .map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_owned))
                            .unwrap_or_default();
                        format!("{}the query does not parse: {msg}", at(node))
                    } else {
                        format!("{}attributes (`@...`) are not allowed", at(node))
                    });
                }
            }
            k if fields.contains(&k) || TRIVIA.contains(&k) => {}
            k => {
                return Err(format!(
                    "{}`{k}` in a {} is syntax this proxy does not know",
                    at(node),
                    kind(node).unwrap_or("node")
                ));
            }
        }
    }
    Ok(())
}

/// A node in a fixed position: `type` must be `expected` when present.
fn fixed<'a>(v: &'a Value, expected: &str, fields: &[&str]) -> Checked<&'a Map<String, Value>> {
    let node = object(v, expected)?;
    if let Some(k) = kind(node)
        && k != expected
    {
        return Err(format!("{}expected a {expected}, found a {k}", at(node)));
    }
    only(node, fields)?;
    Ok(node)
}

fn identifier_name(v: &Value) -> Checked<&str> {
    let node = fixed(v, "Identifier", &["name"])?;
    node.get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{}an identifier without a name", at(node)))
}

fn string_value(v: &Value) -> Checked<&str> {
    let node = fixed(v, "StringLiteral", &["value"])?;
    node.get("value")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{}a string without a value", at(node)))
}

/// A list that Go writes as `null` when empty and libflux may leave out.
fn list<'a>(node: &'a Map<String, Value>, field: &str) -> Checked<&'a [Value]> {
    match node.get(field) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(format!("{}`{field}` is not a list", at(node))),
    }
}

fn field<'a>(node: &'a Map<String, Value>, name: &str) -> Checked<&'a Value> {
    match node.get(name) {
        Some(v) if !v.is_null() => Ok(v),
        _ => Err(format!(
            "{}a {} without `{name}`",
            at(node),
            kind(node).unwrap_or("node")
        )),
    }
}

/// A property's name: an identifier or a string, as the parser decoded it.
fn key_name(v: &Value) -> Checked<&str> {
    let node = object(v, "property key")?;
    match kind(node) {
        Some("StringLiteral") => string_value(v),
        _ => identifier_name(v),
    }
}

/// A property of a record or of a call's argument: `(name, value or None for shorthand)`.
fn property(v: &Value) -> Checked<Prop<'_>> {
    let node = fixed(v, "Property", &["key", "value"])?;
    let name = key_name(field(node, "key")?)?;
    let value = node.get("value").filter(|v| !v.is_null());
    Ok((node, name, value))
}

/// A call's one argument, a record of named arguments, as properties.
fn arguments(call: &Map<String, Value>) -> Checked<Vec<Prop<'_>>> {
    let args = list(call, "arguments")?;
    match args {
        [] => Ok(Vec::new()),
        [record] => {
            let node = fixed(record, "ObjectExpression", &["properties"])?;
            list(node, "properties")?.iter().map(property).collect()
        }
        _ => Err(format!("{}a call with more than one argument", at(call))),
    }
}

impl Checker<'_> {
    fn lookup(&self, name: &str) -> Option<Binding> {
        self.scope
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, b)| *b)
    }

    /// Binds a name of the query's. Flux's allowed names and imported packages cannot be
    /// rebound, so the checks that rely on what they mean hold everywhere.
    fn bind(&mut self, name: &str, binding: Binding, node: &Map<String, Value>) -> Checked {
        if ALLOWED_FUNCTIONS.contains(&name) || ALLOWED_VALUES.contains(&name) {
            return Err(format!(
                "{}`{name}` cannot be defined here: the proxy relies on it meaning Flux's own `{name}`",
                at(node)
            ));
        }
        if let Some(Binding::Package(p, _)) = self.lookup(name) {
            return Err(format!(
                "{}`{name}` cannot be defined here: it names the imported package \"{p}\"",
                at(node)
            ));
        }
        self.scope.push((name.to_owned(), binding));
        Ok(())
    }

    fn package(&mut self, v: &Value) -> Checked {
        let node = fixed(v, "Package", &["package", "path", "files"])?;
        match list(node, "files")? {
            [file] => self.file(file),
            _ => Err("the query must be one file".into()),
        }
    }

    fn file(&mut self, v: &Value) -> Checked {
        let node = fixed(
            v,
            "File",
            &["name", "metadata", "package", "imports", "body"],
        )?;
        if node.get("package").is_some_and(|p| !p.is_null()) {
            return Err(format!("{}a `package` clause is not allowed", at(node)));
        }
        for import in list(node, "imports")? {
            self.import(import)?;
        }
        let body = list(node, "body")?;
        if body.is_empty() {
            return Err("the query has no statement to run".into());
        }
        for statement in body {
            self.statement(statement, true)?;
        }
        Ok(())
    }

    fn import(&mut self, v: &Value) -> Checked {
        let node = fixed(v, "ImportDeclaration", &["as", "path"])?;
        let path = string_value(field(node, "path")?)?;
        let Some((name, members)) = ALLOWED_PACKAGES.iter().find(|(p, _)| *p == path) else {
            let allowed: Vec<&str> = ALLOWED_PACKAGES.iter().map(|(p, _)| *p).collect();
            return Err(format!(
                "{}package \"{path}\" may not be imported here (allowed: {})",
                at(node),
                allowed.join(", ")
            ));
        };
        let alias = match node.get("as").filter(|a| !a.is_null()) {
            Some(a) => identifier_name(a)?,
            None => name,
        };
        self.bind(alias, Binding::Package(name, members), node)
    }

    fn statement(&mut self, v: &Value, top_level: bool) -> Checked {
        let node = object(v, "statement")?;
        match kind(node) {
            Some("ExpressionStatement") => {
                only(node, &["expression"])?;
                self.expression(field(node, "expression")?)
            }
            Some("VariableAssignment") => {
                only(node, &["id", "init"])?;
                // The value first: it cannot see its own name.
                self.expression(field(node, "init")?)?;
                let name = identifier_name(field(node, "id")?)?;
                self.bind(name, Binding::Local, node)
            }
            Some("ReturnStatement") if !top_level => {
                only(node, &["argument"])?;
                self.expression(field(node, "argument")?)
            }
            Some("OptionStatement") => Err(format!(
                "{}`option` statements are not allowed (they change how the query runs)",
                at(node)
            )),
            Some(other) => Err(format!("{}a {other} is not allowed here", at(node))),
            None => Err(format!("{}a statement without a type", at(node))),
        }
    }

    fn expression(&mut self, v: &Value) -> Checked {
        let node = object(v, "expression")?;
        let Some(k) = kind(node) else {
            return Err(format!("{}an expression without a type", at(node)));
        };
        match k {
            "Identifier" => self.value_name(node),
            "IntegerLiteral"
            | "UnsignedIntegerLiteral"
            | "FloatLiteral"
            | "StringLiteral"
            | "BooleanLiteral"
            | "DateTimeLiteral"
            | "RegexpLiteral"
            | "LabelLiteral" => only(node, &["value"]),
            "DurationLiteral" => only(node, &["values"]),
            "UnaryExpression" => {
                only(node, &["operator", "argument"])?;
                self.expression(field(node, "argument")?)
            }
            "BinaryExpression" | "LogicalExpression" => {
                only(node, &["operator", "left", "right"])?;
                self.expression(field(node, "left")?)?;
                self.expression(field(node, "right")?)
            }
            "ParenExpression" => {
                only(node, &["expression"])?;
                self.expression(field(node, "expression")?)
            }
            "ConditionalExpression" => {
                only(node, &["test", "consequent", "alternate"])?;
                for f in ["test", "consequent", "alternate"] {
                    self.expression(field(node, f)?)?;
                }
                Ok(())
            }
            "ArrayExpression" => {
                only(node, &["elements"])?;
                for element in list(node, "elements")? {
                    // Go writes the expression; libflux may wrap it in an item.
                    match element.as_object() {
                        Some(item) if kind(item).is_none() => {
                            only(item, &["expression"])?;
                            self.expression(field(item, "expression")?)?;
                        }
                        _ => self.expression(element)?,
                    }
                }
                Ok(())
            }
            "DictExpression" => {
                only(node, &["elements"])?;
                for element in list(node, "elements")? {
                    let item = fixed(element, "DictItem", &["key", "val"])?;
                    self.expression(field(item, "key")?)?;
                    self.expression(field(item, "val")?)?;
                }
                Ok(())
            }
            "ObjectExpression" => self.record(node),
            "StringExpression" => {
                only(node, &["parts"])?;
                for part in list(node, "parts")? {
                    let p = object(part, "string part")?;
                    match kind(p) {
                        Some("TextPart") => only(p, &["value"])?,
                        Some("InterpolatedPart") => {
                            only(p, &["expression"])?;
                            self.expression(field(p, "expression")?)?;
                        }
                        _ => return Err(format!("{}an unknown part of a string", at(p))),
                    }
                }
                Ok(())
            }
            "IndexExpression" => {
                only(node, &["array", "index"])?;
                self.expression(field(node, "array")?)?;
                self.expression(field(node, "index")?)
            }
            "MemberExpression" => self.member(node).map(|_| ()),
            "CallExpression" => self.call(node),
            "PipeExpression" => self.pipe(node),
            "FunctionExpression" => self.function(node),
            "PipeLiteral" => Err(format!(
                "{}`<-` is only allowed as a parameter's default (`tables=<-`)",
                at(node)
            )),
            other => Err(format!("{}a {other} is not allowed here", at(node))),
        }
    }

    /// An identifier used as a value.
    fn value_name(&self, node: &Map<String, Value>) -> Checked {
        only(node, &["name"])?;
        let name = node.get("name").and_then(Value::as_str).unwrap_or_default();
        match self.lookup(name) {
            Some(Binding::Local) => Ok(()),
            Some(Binding::Package(p, _)) => Err(format!(
                "{}package `{p}` can only be used as `{name}.<member>`",
                at(node)
            )),
            None if name == "from" => Err(format!(
                "{}`from` must be called directly: `from(bucket: \"{}\") |> range(start: ...)`",
                at(node),
                self.policy.bucket
            )),
            None if ALLOWED_FUNCTIONS.contains(&name) || ALLOWED_VALUES.contains(&name) => Ok(()),
            None => Err(not_allowed(node, name)),
        }
    }

    /// A record: `{a: 1, b}` or `{r with a: 1}`.
    fn record(&mut self, node: &Map<String, Value>) -> Checked {
        only(node, &["with", "properties"])?;
        if let Some(with) = node.get("with").filter(|w| !w.is_null()) {
            // Go: an Identifier; libflux: `{name}` or `{source: Identifier, with: [comments]}`.
            let w = object(with, "record source")?;
            let source = match w.get("source") {
                Some(source) => {
                    only(w, &["source", "with"])?;
                    source
                }
                None => with,
            };
            let name = identifier_name(source)?;
            self.value_name(&identifier_node(source, name))?;
        }
        for p in list(node, "properties")? {
            let (pnode, name, value) = property(p)?;
            self.property_value(pnode, name, value)?;
        }
        Ok(())
    }

    /// A property's value; shorthand (`{x}`, `f(x)`) refers to the name `x`.
    fn property_value(
        &mut self,
        node: &Map<String, Value>,
        name: &str,
        value: Option<&Value>,
    ) -> Checked {
        match value {
            Some(v) => self.expression(v),
            None => {
                let mut reference = Map::new();
                reference.insert("name".into(), Value::String(name.to_owned()));
                if let Some(l) = node.get("location") {
                    reference.insert("location".into(), l.clone());
                }
                self.value_name(&reference)
            }
        }
    }

    /// `object.property`: an allowed package member, or a member of a value. Returns whether it
    /// named a package member.
    fn member(&mut self, node: &Map<String, Value>) -> Checked<bool> {
        only(node, &["object", "property"])?;
        let object = field(node, "object")?;
        let property = key_name(field(node, "property")?)?;
        let package = object
            .as_object()
            .filter(|o| kind(o) == Some("Identifier"))
            .and_then(|o| o.get("name"))
            .and_then(Value::as_str)
            .and_then(|n| match self.lookup(n) {
                Some(Binding::Package(p, members)) => Some((p, members)),
                _ => None,
            });
        match package {
            Some((_, members)) if members.contains(&property) => Ok(true),
            Some((p, _)) => Err(format!(
                "{}`{p}.{property}` is not among the members of \"{p}\" this proxy allows",
                at(node)
            )),
            None => self.expression(object).map(|()| false),
        }
    }

    fn call(&mut self, node: &Map<String, Value>) -> Checked {
        only(node, &["callee", "arguments"])?;
        let callee_value = field(node, "callee")?;
        let callee = object(callee_value, "callee")?;
        match kind(callee) {
            Some("Identifier") => {
                let name = identifier_name(callee_value)?;
                match self.lookup(name) {
                    Some(Binding::Local) => {}
                    Some(Binding::Package(p, _)) => {
                        return Err(format!("{}package `{p}` cannot be called", at(callee)));
                    }
                    None if name == "from" => {
                        return Err(format!(
                            "{}`from(...)` must be piped straight into `range(start: ...)`, \
                             e.g. `from(bucket: \"{}\") |> range(start: -1h)`",
                            at(node),
                            self.policy.bucket
                        ));
                    }
                    None if ALLOWED_FUNCTIONS.contains(&name) => {}
                    None => return Err(not_allowed(callee, name)),
                }
            }
            Some("MemberExpression") => {
                self.member(callee)?;
            }
            _ => {
                return Err(format!(
                    "{}only named functions may be called (`f(...)`, `strings.toUpper(...)`)",
                    at(node)
                ));
            }
        }
        for (pnode, name, value) in arguments(node)? {
            self.property_value(pnode, name, value)?;
        }
        Ok(())
    }

    fn pipe(&mut self, node: &Map<String, Value>) -> Checked {
        only(node, &["argument", "call"])?;
        let argument = field(node, "argument")?;
        // Go tags the call; libflux leaves the type out (it can only be a call).
        let call = fixed(
            field(node, "call")?,
            "CallExpression",
            &["callee", "arguments"],
        )?;
        match from_call(argument) {
            Some(from) => self.bucket_read(from, call)?,
            None => self.expression(argument)?,
        }
        self.call(call)
    }

    /// `from(bucket: "<bucket>") |> range(start: ..., stop: ...)`.
    fn bucket_read(&mut self, from: &Map<String, Value>, range: &Map<String, Value>) -> Checked {
        only(from, &["callee", "arguments"])?;
        identifier_name(field(from, "callee")?)?;
        let bucket = self.policy.bucket;
        let args = arguments(from)?;
        if args.is_empty() {
            return Err(format!("{}`from()` needs `bucket: \"{bucket}\"`", at(from)));
        }
        for (pnode, name, value) in args {
            if name != "bucket" {
                return Err(format!(
                    "{}`from()` takes only `bucket:` here; `{name}:` is not allowed (it would \
                     point the query at another server, organisation or bucket)",
                    at(pnode)
                ));
            }
            let Some(value) = value else {
                return Err(format!(
                    "{}`from(bucket)`: write the bucket as a string, `from(bucket: \"{bucket}\")`",
                    at(pnode)
                ));
            };
            let literal = object(value, "bucket")?;
            if kind(literal) != Some("StringLiteral") {
                return Err(format!(
                    "{}`bucket:` must be the string \"{bucket}\" itself, not an expression",
                    at(literal)
                ));
            }
            let named = string_value(value)?;
            if named != bucket {
                return Err(format!(
                    "{}bucket {named:?} cannot be read here; only \"{bucket}\"",
                    at(literal)
                ));
            }
        }
        let callee = field(range, "callee")?;
        let is_range = callee.get("type").and_then(Value::as_str) == Some("Identifier")
            && callee.get("name").and_then(Value::as_str) == Some("range");
        if !is_range {
            return Err(format!(
                "{}`from(...)` must be piped straight into `range(start: ...)`",
                at(range)
            ));
        }
        let mut start = None;
        let mut stop = None;
        for (pnode, name, value) in arguments(range)? {
            let slot = match name {
                "start" => &mut start,
                "stop" => &mut stop,
                _ => {
                    return Err(format!(
                        "{}`range()` after `from()` takes only `start:` and `stop:`",
                        at(pnode)
                    ));
                }
            };
            let Some(value) = value else {
                return Err(format!(
                    "{}`range({name})`: write the time itself, e.g. `{name}: -1h`",
                    at(pnode)
                ));
            };
            *slot = Some(self.instant(value)?);
        }
        let Some(start) = start else {
            return Err(format!("{}`range()` needs `start:`", at(range)));
        };
        let stop = stop.unwrap_or((self.policy.now_ns, self.policy.now_ns));
        if stop.1 <= start.0 {
            return Err(format!("{}`range()` stops before it starts", at(range)));
        }
        if let Some(max) = self.policy.max_range_ns {
            let longest = stop.1 - start.0;
            if longest > max {
                return Err(format!(
                    "{}`range()` may span at most {} here; this one spans up to {}",
                    at(range),
                    human(max),
                    human(longest)
                ));
            }
        }
        Ok(())
    }

    /// A `range()` bound as the earliest and latest instant it can mean, in ns.
    fn instant(&self, v: &Value) -> Checked<(i128, i128)> {
        let node = object(v, "time")?;
        let now = self.policy.now_ns;
        let refuse = || {
            format!(
                "{}a `range()` bound must be a time (2024-01-01T00:00:00Z), a duration from \
                 now (-1h) or now()",
                at(node)
            )
        };
        match kind(node) {
            Some("DateTimeLiteral") => {
                only(node, &["value"])?;
                let text = node
                    .get("value")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let t = chrono::DateTime::parse_from_rfc3339(text)
                    .map_err(|_| format!("{}unreadable time {text:?}", at(node)))?;
                let ns =
                    i128::from(t.timestamp()) * NS_PER_SEC + i128::from(t.timestamp_subsec_nanos());
                Ok((ns, ns))
            }
            Some("DurationLiteral") => {
                let (lo, hi) = duration(node)?;
                Ok((now + lo, now + hi))
            }
            Some("UnaryExpression") => {
                only(node, &["operator", "argument"])?;
                let argument = object(field(node, "argument")?, "duration")?;
                let minus = node.get("operator").and_then(Value::as_str) == Some("-");
                if !minus || kind(argument) != Some("DurationLiteral") {
                    return Err(refuse());
                }
                let (lo, hi) = duration(argument)?;
                Ok((now - hi, now - lo))
            }
            Some("CallExpression") => {
                only(node, &["callee", "arguments"])?;
                let callee = field(node, "callee")?;
                let is_now = callee.get("type").and_then(Value::as_str) == Some("Identifier")
                    && callee.get("name").and_then(Value::as_str) == Some("now");
                if is_now && list(node, "arguments")?.is_empty() {
                    Ok((now, now))
                } else {
                    Err(refuse())
                }
            }
            _ => Err(refuse()),
        }
    }

    fn function(&mut self, node: &Map<String, Value>) -> Checked {
        only(node, &["params", "body"])?;
        let mark = self.scope.len();
        let result = self.function_inner(node);
        self.scope.truncate(mark);
        result
    }

    fn function_inner(&mut self, node: &Map<String, Value>) -> Checked {
        let params = list(node, "params")?;
        // Defaults are evaluated where the function is defined, before its parameters exist.
        let mut names = Vec::with_capacity(params.len());
        for p in params {
            let (pnode, name, default) = property(p)?;
            if let Some(default) = default {
                let is_pipe = default
                    .as_object()
                    .is_some_and(|d| kind(d) == Some("PipeLiteral"));
                if is_pipe {
                    only(object(default, "default")?, &[])?;
                } else {
                    self.expression(default)?;
                }
            }
            names.push((pnode, name));
        }
        for (pnode, name) in names {
            self.bind(name, Binding::Local, pnode)?;
        }
        let body = field(node, "body")?;
        let b = object(body, "function body")?;
        if kind(b) == Some("Block") {
            only(b, &["body"])?;
            for statement in list(b, "body")? {
                self.statement(statement, false)?;
            }
            Ok(())
        } else {
            self.expression(body)
        }
    }
}

/// `Some(call)` when `v` is a call of `from` (never a name of the query's: see [`Checker::bind`]).
fn from_call(v: &Value) -> Option<&Map<String, Value>> {
    let node = v.as_object()?;
    let callee = node.get("callee")?;
    let is_from = kind(node) == Some("CallExpression")
        && callee.get("type").and_then(Value::as_str) == Some("Identifier")
        && callee.get("name").and_then(Value::as_str) == Some("from");
    is_from.then_some(node)
}

/// An identifier node for a name found in an untyped position, keeping its location.
fn identifier_node(v: &Value, name: &str) -> Map<String, Value> {
    let mut node = Map::new();
    node.insert("name".into(), Value::String(name.to_owned()));
    if let Some(l) = v.get("location") {
        node.insert("location".into(), l.clone());
    }
    node
}

fn not_allowed(node: &Map<String, Value>, name: &str) -> String {
    format!(
        "{}`{name}` is neither a name the query defined nor one of the functions this proxy \
         allows (it refuses anything that could write, list buckets or reach outside)",
        at(node)
    )
}

/// A duration literal's shortest and longest length in ns (a month is 28 to 31 days, a year
/// 365 or 366).
fn duration(node: &Map<String, Value>) -> Checked<(i128, i128)> {
    only(node, &["values"])?;
    let (mut lo, mut hi) = (0i128, 0i128);
    for part in list(node, "values")? {
        let p = object(part, "duration")?;
        only(p, &["magnitude", "unit"])?;
        let magnitude = p
            .get("magnitude")
            .and_then(Value::as_i64)
            .map(i128::from)
            .ok_or_else(|| format!("{}a duration without a magnitude", at(node)))?;
        let unit = p.get("unit").and_then(Value::as_str).unwrap_or_default();
        let (short, long) = match unit {
            "ns" => (1, 1),
            "us" | "µs" => (1_000, 1_000),
            "ms" => (1_000_000, 1_000_000),
            "s" => (NS_PER_SEC, NS_PER_SEC),
            "m" => (60 * NS_PER_SEC, 60 * NS_PER_SEC),
            "h" => (3_600 * NS_PER_SEC, 3_600 * NS_PER_SEC),
            "d" => (NS_PER_DAY, NS_PER_DAY),
            "w" => (7 * NS_PER_DAY, 7 * NS_PER_DAY),
            "mo" => (28 * NS_PER_DAY, 31 * NS_PER_DAY),
            "y" => (365 * NS_PER_DAY, 366 * NS_PER_DAY),
            other => return Err(format!("{}unknown duration unit {other:?}", at(node))),
        };
        let (a, b) = (magnitude * short, magnitude * long);
        lo += a.min(b);
        hi += a.max(b);
    }
    Ok((lo, hi))
}

/// `31d`, `1d12h`, `90s`: a span for a message, to the second.
fn human(ns: i128) -> String {
    let mut secs = ns / NS_PER_SEC;
    if secs <= 0 {
        return format!("{ns}ns");
    }
    let mut out = String::new();
    for (unit, len) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= len {
            out.push_str(&format!("{}{unit}", secs / len));
            secs %= len;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    //! The rules on small trees in the shapes InfluxDB's Go code writes (`ast/json.go`). The
    //! same rules on trees from the real parser: `tests/flux_guard_real_parser.rs`.

    use serde_json::json;

    use super::*;

    const B: &str = "open_grid_monitor";
    const NOW: i128 = 1_700_000_000 * NS_PER_SEC;

    fn policy() -> Policy<'static> {
        Policy {
            bucket: B,
            max_range_ns: Some(31 * NS_PER_DAY),
            now_ns: NOW,
        }
    }

    fn id(name: &str) -> Value {
        json!({"type": "Identifier", "name": name})
    }

    fn string(s: &str) -> Value {
        json!({"type": "StringLiteral", "value": s})
    }

    fn prop(key: Value, value: Value) -> Value {
        json!({"type": "Property", "key": key, "value": value})
    }

    fn call(callee: Value, props: Vec<Value>) -> Value {
        if props.is_empty() {
            return json!({"type": "CallExpression", "callee": callee});
        }
        json!({"type": "CallExpression", "callee": callee,
               "arguments": [{"type": "ObjectExpression", "properties": props}]})
    }

    fn ago(n: i64, unit: &str) -> Value {
        json!({"type": "UnaryExpression", "operator": "-",
               "argument": {"type": "DurationLiteral", "values": [{"magnitude": n, "unit": unit}]}})
    }

    /// `from(bucket: B) |> range(start: start)` with Go's shapes.
    fn ranged(start: Value) -> Value {
        json!({"type": "PipeExpression",
               "argument": call(id("from"), vec![prop(id("bucket"), string(B))]),
               "call": call(id("range"), vec![prop(id("start"), start)])})
    }

    fn answer(body: Vec<Value>) -> Value {
        let body: Vec<Value> = body
            .into_iter()
            .map(|e| {
                if e["type"] == "VariableAssignment" {
                    e
                } else {
                    json!({"type": "ExpressionStatement", "expression": e})
                }
            })
            .collect();
        json!({"ast": {"type": "Package", "package": "main", "files": [
            {"type": "File", "package": null, "imports": null, "body": body}
        ]}})
    }

    fn refused(answer: &Value, because: &str) {
        match check(answer, &policy()) {
            Ok(()) => panic!("should be refused ({because}): {answer}"),
            Err(e) => assert!(e.contains(because), "{e:?} should mention {because:?}"),
        }
    }

    #[test]
    fn go_shapes_of_a_read_are_allowed() {
        let q = answer(vec![
            json!({"type": "VariableAssignment", "id": id("data"), "init": ranged(ago(1, "h"))}),
            json!({"type": "PipeExpression", "argument": id("data"),
                   "call": call(id("map"), vec![prop(id("fn"), json!({
                       "type": "FunctionExpression",
                       "params": [prop(id("r"), Value::Null)],
                       "body": {"type": "ObjectExpression", "with": id("r"), "properties": [
                           prop(id("v"), json!({"type": "ArrayExpression", "elements": [
                               {"type": "IntegerLiteral", "value": "1"}]}))]}}))])}),
        ]);
        assert_eq!(check(&q, &policy()), Ok(()));
    }

    #[test]
    fn unknown_syntax_and_parser_errors_are_refused() {
        let mut q = answer(vec![ranged(ago(1, "h"))]);
        q["ast"]["files"][0]["body"][0]["expression"]["argument"]["novel"] = json!(1);
        refused(
            &q,
            "`novel` in a CallExpression is syntax this proxy does not know",
        );
        let mut q = answer(vec![ranged(ago(1, "h"))]);
        q["ast"]["files"][0]["errors"] = json!([{"msg": "expected RPAREN"}]);
        refused(&q, "does not parse: expected RPAREN");
        refused(
            &answer(vec![json!({"type": "BadExpression", "text": "?"})]),
            "a BadExpression is not allowed",
        );
        refused(&json!({"error": "x"}), "no `ast`");
        refused(&answer(vec![]), "no statement");
    }

    #[test]
    fn from_needs_the_bucket_literal_and_a_bounded_range() {
        let from = |props| {
            json!({"type": "PipeExpression", "argument": call(id("from"), props),
                                  "call": call(id("range"), vec![prop(id("start"), ago(1, "h"))])})
        };
        refused(
            &answer(vec![from(vec![prop(id("bucket"), Value::Null)])]),
            "from(bucket)",
        );
        refused(
            &answer(vec![from(vec![
                prop(id("bucket"), string(B)),
                prop(string("host"), string("h")),
            ])]),
            "`host:` is not allowed",
        );
        refused(
            &answer(vec![from(vec![prop(id("bucket"), id("b"))])]),
            "not an expression",
        );
        refused(
            &answer(vec![from(vec![prop(id("bucket"), string("_tasks"))])]),
            "\"_tasks\" cannot be read",
        );
        refused(
            &answer(vec![call(id("from"), vec![prop(id("bucket"), string(B))])]),
            "piped straight into",
        );
        refused(
            &answer(vec![ranged(ago(32, "d"))]),
            "at most 31d here; this one spans up to 32d",
        );
        for fits in [ago(4, "w"), ago(1, "mo"), ago(31, "d")] {
            assert_eq!(check(&answer(vec![ranged(fits)]), &policy()), Ok(()));
        }
        refused(
            &answer(vec![ranged(
                json!({"type": "IntegerLiteral", "value": "0"}),
            )]),
            "a `range()` bound must be",
        );
        let unbounded = Policy {
            max_range_ns: None,
            ..policy()
        };
        assert_eq!(
            check(&answer(vec![ranged(ago(100, "y"))]), &unbounded),
            Ok(())
        );
    }

    #[test]
    fn durations_count_months_and_years_at_their_longest() {
        let d = |values: Value| duration(json!({"values": values}).as_object().unwrap()).unwrap();
        assert_eq!(
            d(json!([{"magnitude": 90, "unit": "s"}])),
            (90 * NS_PER_SEC, 90 * NS_PER_SEC)
        );
        assert_eq!(
            d(json!([{"magnitude": 1, "unit": "mo"}, {"magnitude": 2, "unit": "d"}])),
            (30 * NS_PER_DAY, 33 * NS_PER_DAY)
        );
        assert_eq!(
            d(json!([{"magnitude": -1, "unit": "y"}])),
            (-366 * NS_PER_DAY, -365 * NS_PER_DAY)
        );
        assert_eq!(human(31 * NS_PER_DAY), "31d");
        assert_eq!(human(NS_PER_DAY + 90 * NS_PER_SEC), "1d1m30s");
    }

    #[test]
    fn odd_trees_never_panic() {
        for v in [
            json!(null),
            json!({"ast": null}),
            json!({"ast": {"type": "Package", "files": "x"}}),
            json!({"ast": {"type": "Package", "files": [{"type": "File", "body": [1, "x", null, {}]}]}}),
            json!({"ast": {"type": "Package", "files": [{"type": "File", "body": [
                {"type": "ExpressionStatement", "expression": {"type": "CallExpression", "callee": 5, "arguments": [1, 2]}}]}]}}),
        ] {
            assert!(check(&v, &policy()).is_err(), "{v}");
        }
    }
}
