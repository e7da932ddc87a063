//! A small, panic-free parser for InfluxDB 2's annotated CSV (the `/api/v2/query` answer).
//! No I/O here.
//!
//! The format (InfluxDB reference, "Annotated CSV"): RFC 4180 CSV with `\r\n` line ends. A
//! result is a run of *sections*; each starts with annotation rows (`#datatype`, `#group`,
//! `#default`; the first column holds the annotation's name), then one header row, then record
//! rows whose first column (the annotation column) is empty. Sections are separated by a blank
//! line, and a new section starts whenever the column set or types change. Empty cells take the
//! column's `#default` (that is how the `result` name of a `yield` is usually carried). Values
//! may be quoted (`"a,b"`, `""` for a quote) and quoted values may span lines. `dateTime:RFC3339`
//! values carry up to nine fractional digits.
//!
//! A failed query can come back as HTTP 200 with an error section whose columns are `error`
//! and `reference`; [`parse`] turns it into [`CsvError::Query`].
//!
//! For the Flux proxy, which streams answers without parsing them: [`RowLimiter`] passes an
//! answer on in whole rows up to a byte limit, and [`error_table`] writes the error section
//! that ends an answer cut short.

/// Why an answer could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    #[error("malformed annotated CSV: {0}")]
    Malformed(String),
    /// The answer was an error table.
    #[error("query failed: {0}")]
    Query(String),
}

/// One column: its name and annotations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// From `#datatype` (`string`, `long`, `double`, `dateTime:RFC3339`, ...); empty if absent.
    pub datatype: String,
    /// From `#group`.
    pub group: bool,
    /// From `#default`: the value of an empty cell.
    pub default: String,
}

/// Rows sharing one header (and so one schema). One section may hold many Flux tables; their
/// rows are told apart by the `table` column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Section {
    pub columns: Vec<Column>,
    /// Cells in column order, the annotation column removed.
    pub rows: Vec<Vec<String>>,
}

impl Section {
    /// The index of the column called `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    pub fn rows(&self) -> impl Iterator<Item = Row<'_>> {
        self.rows.iter().map(move |cells| Row {
            section: self,
            cells,
        })
    }
}

/// One record row.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    section: &'a Section,
    cells: &'a [String],
}

impl<'a> Row<'a> {
    /// The cell of column `name`, or the column's default when the cell is empty; `None` if
    /// there is no such column.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        let i = self.section.column(name)?;
        let cell = self.cells.get(i)?;
        if cell.is_empty() {
            self.section.columns.get(i).map(|c| c.default.as_str())
        } else {
            Some(cell.as_str())
        }
    }

    /// The cell as a non-empty string.
    pub fn text(&self, name: &str) -> Option<&'a str> {
        self.get(name).filter(|s| !s.is_empty())
    }

    /// The cell as a number (`long`, `unsignedLong` and `double` all read as `f64`).
    pub fn f64(&self, name: &str) -> Option<f64> {
        self.text(name)?.parse().ok()
    }

    /// The cell as an RFC 3339 time, in ns since the epoch.
    pub fn time_ns(&self, name: &str) -> Option<i64> {
        parse_time_ns(self.text(name)?)
    }
}

/// Parses an RFC 3339 time (`2023-12-21T01:50:56.789123456Z`, or with an offset) into ns since
/// the epoch; `None` if malformed or outside 1677..2262.
pub fn parse_time_ns(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()?
        .timestamp_nanos_opt()
}

/// Parses a whole answer. An empty answer (no rows at all) gives no sections.
pub fn parse(text: &str) -> Result<Vec<Section>, CsvError> {
    let mut sections = Vec::new();
    let mut builder = Builder::default();
    for record in records(text)? {
        let blank = record.iter().all(String::is_empty) && record.len() <= 1;
        if blank {
            builder.finish(&mut sections)?;
            continue;
        }
        if record.first().is_some_and(|c| c.starts_with('#')) {
            if builder.header.is_some() {
                builder.finish(&mut sections)?;
            }
            let mut cells = record.into_iter();
            let name = cells.next().unwrap_or_default();
            let values: Vec<String> = cells.collect();
            match name.as_str() {
                "#datatype" => builder.datatype = Some(values),
                "#group" => builder.group = Some(values),
                "#default" => builder.default = Some(values),
                _ => {}
            }
            continue;
        }
        if builder.header.is_none() {
            builder.header = Some(record);
            builder.rows.clear();
            continue;
        }
        builder.rows.push(record);
    }
    builder.finish(&mut sections)?;
    Ok(sections)
}

#[derive(Default)]
struct Builder {
    datatype: Option<Vec<String>>,
    group: Option<Vec<String>>,
    default: Option<Vec<String>>,
    header: Option<Vec<String>>,
    rows: Vec<Vec<String>>,
}

impl Builder {
    fn finish(&mut self, sections: &mut Vec<Section>) -> Result<(), CsvError> {
        let taken = std::mem::take(self);
        let Some(header) = taken.header else {
            return Ok(());
        };
        // The header's first cell is empty when the annotation column is present (always, in
        // InfluxDB's answers); drop that column everywhere. Annotation values already start
        // after it.
        let skip = usize::from(header.first().is_some_and(|h| h.is_empty()));
        let names = &header[skip..];
        let annotation = |values: &Option<Vec<String>>, i: usize| {
            values
                .as_ref()
                .and_then(|v| v.get(i))
                .cloned()
                .unwrap_or_default()
        };
        let columns: Vec<Column> = names
            .iter()
            .enumerate()
            .map(|(i, name)| Column {
                name: name.clone(),
                datatype: annotation(&taken.datatype, i),
                group: annotation(&taken.group, i) == "true",
                default: annotation(&taken.default, i),
            })
            .collect();
        let mut rows = Vec::with_capacity(taken.rows.len());
        for row in taken.rows {
            if row.len() != header.len() {
                return Err(CsvError::Malformed(format!(
                    "a row has {} cells; its header has {}",
                    row.len(),
                    header.len()
                )));
            }
            rows.push(row.into_iter().skip(skip).collect::<Vec<_>>());
        }
        let section = Section { columns, rows };
        if section.column("error").is_some() && section.column("reference").is_some() {
            let message = section
                .rows()
                .find_map(|r| r.text("error"))
                .unwrap_or("InfluxDB returned an error table")
                .to_owned();
            return Err(CsvError::Query(message));
        }
        sections.push(section);
        Ok(())
    }
}

/// Splits RFC 4180 CSV into records of fields. A blank line is a record with one empty field.
fn records(text: &str) -> Result<Vec<Vec<String>>, CsvError> {
    let mut out = Vec::new();
    let mut record: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    // Whether anything (a character or a quote) has been read on the current record.
    let mut started = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if field.is_empty() => {
                started = true;
                // A quoted field: up to the closing quote, `""` standing for one quote.
                loop {
                    match chars.next() {
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            field.push('"');
                        }
                        Some('"') => break,
                        Some(c) => field.push(c),
                        None => {
                            return Err(CsvError::Malformed("unterminated quoted value".into()));
                        }
                    }
                }
                match chars.peek() {
                    None | Some(',' | '\n' | '\r') => {}
                    Some(other) => {
                        return Err(CsvError::Malformed(format!(
                            "{other:?} after a closing quote"
                        )));
                    }
                }
            }
            ',' => {
                started = true;
                record.push(std::mem::take(&mut field));
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                record.push(std::mem::take(&mut field));
                out.push(std::mem::take(&mut record));
                started = false;
            }
            c => {
                started = true;
                field.push(c);
            }
        }
    }
    if started {
        record.push(field);
        out.push(record);
    }
    Ok(out)
}

/// An error section, as InfluxDB ends an answer that failed midway; after rows, it follows a
/// blank line.
pub fn error_table(message: &str) -> String {
    format!(
        "#datatype,string,string\r\n#group,true,true\r\n#default,,\r\n,error,reference\r\n,\"{}\",\r\n\r\n",
        message.replace('"', "\"\"")
    )
}

/// Passes an answer on in whole rows (a quoted value may hold line breaks), at most `max`
/// bytes in all, so an answer cut at the limit still ends at a row boundary.
#[derive(Debug)]
pub struct RowLimiter {
    max: u64,
    passed: u64,
    /// Bytes of a row not complete yet; never holds a row boundary.
    pending: Vec<u8>,
    in_quotes: bool,
}

impl RowLimiter {
    pub fn new(max: u64) -> Self {
        Self {
            max,
            passed: 0,
            pending: Vec::new(),
            in_quotes: false,
        }
    }

    /// Bytes passed on so far.
    pub fn passed(&self) -> u64 {
        self.passed
    }

    /// Takes the next chunk. `Ok`: the rows it completed. `Err`: the answer is larger than the
    /// limit; these are the last whole rows that fit, and nothing more may be passed.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<u8>, Vec<u8>> {
        let start = self.pending.len();
        self.pending.extend_from_slice(chunk);
        let room = self.max.saturating_sub(self.passed);
        let (mut last, mut fits) = (0, 0);
        for (i, b) in self.pending.iter().enumerate().skip(start) {
            match b {
                b'"' => self.in_quotes = !self.in_quotes,
                b'\n' if !self.in_quotes => {
                    last = i + 1;
                    if last as u64 <= room {
                        fits = last;
                    }
                }
                _ => {}
            }
        }
        if self.pending.len() as u64 > room {
            let out: Vec<u8> = self.pending.drain(..fits).collect();
            self.passed += out.len() as u64;
            self.pending = Vec::new();
            return Err(out);
        }
        let out: Vec<u8> = self.pending.drain(..last).collect();
        self.passed += out.len() as u64;
        Ok(out)
    }

    /// The end of the answer: what is left of an unfinished last row.
    pub fn finish(&mut self) -> Vec<u8> {
        let out = std::mem::take(&mut self.pending);
        self.passed += out.len() as u64;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two results of `yield`, the second in two Flux tables, the third section with another
    /// schema, as InfluxDB 2 writes them (CRLF, blank line between sections).
    const MULTI: &str = "#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,double,string,string,string\r\n\
#group,false,false,true,true,false,false,true,true,true\r\n\
#default,min,,,,,,,,\r\n\
,result,table,_start,_stop,_time,_value,_field,_measurement,device_id\r\n\
,,0,2023-12-21T00:00:00Z,2023-12-22T00:00:00Z,2023-12-21T01:50:56.789123456Z,49.98,frequency,grid_data,esp-1\r\n\
,,0,2023-12-21T00:00:00Z,2023-12-22T00:00:00Z,2023-12-21T01:51:00Z,50.01,frequency,grid_data,esp-1\r\n\
\r\n\
#datatype,string,long,dateTime:RFC3339,long,string\r\n\
#group,false,false,false,false,true\r\n\
#default,count,,,,\r\n\
,result,table,_time,_value,device_id\r\n\
,,0,2023-12-21T01:50:00Z,60,esp-1\r\n\
,,1,2023-12-21T01:50:00Z,61,\"esp,2\"\r\n\
\r\n\
#datatype,string,long,dateTime:RFC3339,string,string\r\n\
#group,false,false,false,false,false\r\n\
#default,_result,,,,\r\n\
,result,table,_time,message,level\r\n\
,,0,2023-12-21T01:50:00.5+01:00,\"line one\r\nline \"\"two\"\", with comma\",INFO\r\n\
,custom,0,2023-12-21T01:50:00Z,,WARN\r\n\
\r\n";

    #[test]
    fn sections_defaults_quotes_and_times() {
        let s = parse(MULTI).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].columns[0].name, "result");
        assert_eq!(s[0].columns[5].datatype, "double");
        assert!(s[0].columns[6].group);
        let rows: Vec<Row> = s[0].rows().collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0].get("result"),
            Some("min"),
            "empty cell takes #default"
        );
        assert_eq!(rows[0].f64("_value"), Some(49.98));
        assert_eq!(
            rows[0].time_ns("_time"),
            Some(1_703_123_456_789_123_456),
            "nanoseconds kept"
        );
        assert_eq!(rows[1].time_ns("_time"), Some(1_703_123_460_000_000_000));
        assert_eq!(rows[0].get("nope"), None);

        let counts: Vec<(Option<&str>, Option<f64>)> = s[1]
            .rows()
            .map(|r| (r.get("device_id"), r.f64("_value")))
            .collect();
        assert_eq!(
            counts,
            [(Some("esp-1"), Some(60.0)), (Some("esp,2"), Some(61.0))]
        );
        assert_eq!(s[1].rows().next().unwrap().get("result"), Some("count"));

        let logs: Vec<Row> = s[2].rows().collect();
        assert_eq!(
            logs[0].get("message"),
            Some("line one\r\nline \"two\", with comma")
        );
        assert_eq!(
            logs[0].time_ns("_time"),
            Some(1_703_119_800_500_000_000),
            "offsets are honoured"
        );
        assert_eq!(logs[1].get("result"), Some("custom"));
        assert_eq!(logs[1].text("message"), None, "empty string cell");
    }

    #[test]
    fn empty_answers_give_no_sections() {
        for body in ["", "\r\n", "\n\n", "\r\n\r\n"] {
            assert_eq!(parse(body).unwrap(), Vec::<Section>::new(), "{body:?}");
        }
        let only_annotations =
            "#datatype,string,long\r\n#group,false,false\r\n#default,_result,\r\n";
        assert!(parse(only_annotations).unwrap().is_empty());
    }

    #[test]
    fn answers_without_annotations_or_trailing_newline() {
        let s = parse(",result,table,_value\n,_result,0,1.5").unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].rows().next().unwrap().f64("_value"), Some(1.5));
        let s = parse("a,b\n1,2\n").unwrap();
        assert_eq!(s[0].columns[0].name, "a");
        assert_eq!(s[0].rows().next().unwrap().get("b"), Some("2"));
    }

    #[test]
    fn a_new_annotation_block_starts_a_new_section_even_without_a_blank_line() {
        let body = "#datatype,string,long\n,result,table\n,a,0\n#datatype,string,double\n,result,_value\n,b,2.5\n";
        let s = parse(body).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].rows().next().unwrap().f64("_value"), Some(2.5));
    }

    #[test]
    fn error_tables_become_errors() {
        let body = "#datatype,string,string\r\n#group,true,true\r\n#default,,\r\n,error,reference\r\n,\"failed to parse: expected \"\")\"\"\",897\r\n\r\n";
        assert_eq!(
            parse(body),
            Err(CsvError::Query("failed to parse: expected \")\"".into()))
        );
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        for body in [
            ",a,b\n,1\n",
            ",a\n,\"unterminated\n",
            ",a\n,\"x\"y\n",
            ",a,b\n,1,2,3\n",
        ] {
            assert!(
                matches!(parse(body), Err(CsvError::Malformed(_))),
                "{body:?}"
            );
        }
        // Odd but harmless input parses without panicking.
        for body in [
            "#",
            "#datatype",
            ",",
            "\"\"",
            "#group\n\n\n,",
            "\r",
            "\u{feff}",
            "é,\"ü\"\n",
        ] {
            let _ = parse(body);
        }
    }

    #[test]
    fn times() {
        assert_eq!(parse_time_ns("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_time_ns("1969-12-31T23:59:59.999999999Z"), Some(-1));
        assert_eq!(
            parse_time_ns("2262-04-11T23:47:16.854775807Z"),
            Some(i64::MAX)
        );
        assert_eq!(parse_time_ns("2262-04-11T23:47:16.854775808Z"), None);
        assert_eq!(parse_time_ns("yesterday"), None);
        assert_eq!(parse_time_ns(""), None);
    }

    #[test]
    fn row_limiter_cuts_at_a_row_boundary_outside_quotes() {
        let answer = "#datatype,string\r\n,a\r\n,\"x\r\ny\"\r\n,b\r\n";
        // Unlimited: everything, whatever the chunking.
        for size in 1..answer.len() {
            let mut l = RowLimiter::new(1 << 20);
            let mut out = Vec::new();
            for chunk in answer.as_bytes().chunks(size) {
                out.extend(l.push(chunk).unwrap());
            }
            out.extend(l.finish());
            assert_eq!(out, answer.as_bytes(), "chunks of {size}");
        }
        // A limit inside the quoted value: the cut is before that row, not at its inner \n.
        let first_rows = "#datatype,string\r\n,a\r\n";
        let mut l = RowLimiter::new(first_rows.len() as u64 + 5);
        let mut out = Vec::new();
        let mut full = None;
        for chunk in answer.as_bytes().chunks(3) {
            match l.push(chunk) {
                Ok(rows) => out.extend(rows),
                Err(rows) => {
                    out.extend(rows);
                    full = Some(out.clone());
                    break;
                }
            }
        }
        assert_eq!(full.as_deref(), Some(first_rows.as_bytes()));
        assert_eq!(l.passed(), first_rows.len() as u64);
        // The error section then parses as the query's error.
        let text = format!("{first_rows}\r\n{}", error_table("limit \"8 MiB\""));
        assert_eq!(parse(&text), Err(CsvError::Query("limit \"8 MiB\"".into())));
    }
}
