//! How dhtctl talks back: the failure kinds and their exit codes, aligned
//! text tables and key/value records for people, JSON for scripts, and DHT
//! values in both forms.

use std::io::Write;
use std::time::Duration;

use kadmesh::wire::Value;
use serde_json::{json, Value as Json};

/// Documented in `--help`; tests check each code.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  other error (local socket failure, malformed reply)
  2  bad input (usage error; malformed key, id, seed, value or URL)
  3  not found (no value under the key, no healthy worker for the service)
  4  unreachable (no seed or node answered, HTTP endpoint down, timed out)

Seeds come from --seed HOST:PORT (repeatable, hostnames allowed), DHT_SEEDS
(comma-separated) and --bootstrap-url (the platform's /api/dht/bootstrap).
Errors are one line on stderr: `dhtctl: <what> ...`.";

/// Why a command failed; each kind has its own exit code.
#[derive(Debug)]
pub enum Failure {
    /// The user asked for something malformed (exit 2).
    BadInput(String),
    /// The network answered but holds nothing matching (exit 3).
    NotFound(String),
    /// Nobody answered in time (exit 4).
    Unreachable(String),
    /// Anything else (exit 1).
    Other(String),
}

impl Failure {
    /// The process exit code.
    pub fn code(&self) -> u8 {
        match self {
            Failure::Other(_) => 1,
            Failure::BadInput(_) => 2,
            Failure::NotFound(_) => 3,
            Failure::Unreachable(_) => 4,
        }
    }

    /// The one line printed on stderr.
    pub fn line(&self) -> String {
        match self {
            Failure::BadInput(m) => format!("dhtctl: bad input: {m}"),
            Failure::NotFound(m) => format!("dhtctl: not found: {m}"),
            Failure::Unreachable(m) => format!("dhtctl: unreachable: {m}"),
            Failure::Other(m) => format!("dhtctl: error: {m}"),
        }
    }
}

impl From<kadmesh::client::ClientError> for Failure {
    fn from(e: kadmesh::client::ClientError) -> Self {
        use kadmesh::client::ClientError as E;
        match e {
            E::NoSeeds => Failure::BadInput(e.to_string()),
            E::Resolve(_) | E::Unreachable { .. } => Failure::Unreachable(e.to_string()),
            E::Bind { .. } | E::Node(_) => Failure::Other(e.to_string()),
        }
    }
}

impl From<kadmesh::node::NodeError> for Failure {
    fn from(e: kadmesh::node::NodeError) -> Self {
        match e {
            // The value itself was refused (too large): the user's to fix.
            kadmesh::node::NodeError::Rejected(_) => Failure::BadInput(e.to_string()),
            _ => Failure::Other(e.to_string()),
        }
    }
}

/// Writes to stdout, ignoring a closed pipe (`dhtctl crawl | head`).
pub fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    if !text.ends_with('\n') {
        let _ = out.write_all(b"\n");
    }
    let _ = out.flush();
}

/// Pretty JSON on stdout.
pub fn emit_json(doc: &Json) {
    emit(&serde_json::to_string_pretty(doc).unwrap_or_else(|_| doc.to_string()));
}

/// Columns padded to their widest cell, two spaces apart.
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(headers: &[&'static str]) -> Self {
        Table { headers: headers.to_vec(), rows: Vec::new() }
    }

    /// Adds a row; missing cells are blank, extra ones dropped.
    pub fn row(&mut self, mut cells: Vec<String>) {
        cells.resize(self.headers.len(), String::new());
        self.rows.push(cells);
    }

    /// The rendered table, one line per row after the header.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let header: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
        let mut out = String::new();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
                if i + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<w$}  "));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `name  value` lines, names padded to the longest.
pub fn record(pairs: &[(&str, String)]) -> String {
    let w = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    pairs.iter().map(|(k, v)| format!("{k:<w$}  {v}\n")).collect()
}

/// Milliseconds with two decimals, for round-trip times.
pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Milliseconds as a JSON number.
pub fn ms_json(d: Duration) -> Json {
    json!((d.as_secs_f64() * 1e6).round() / 1000.0)
}

/// The msgpack type name of a value, as dhtctl reports it.
pub fn value_type(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Bool(_) => "bool",
        Value::Int(_) | Value::UInt(_) => "int",
        Value::F32(_) | Value::F64(_) => "float",
        Value::Str(_) => "str",
        Value::Bin(_) => "bytes",
        Value::Array(_) => "array",
        Value::Map(_) => "map",
    }
}

/// A value for people: strings as they are (JSON documents stay pipeable
/// to `jq`), bytes as hex, the rest as JSON.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::Str(s) => s.clone(),
        Value::Bin(b) => hex::encode(b),
        other => value_json(other).to_string(),
    }
}

/// A value as JSON: bytes become hex strings (see `value_type`), floats
/// that JSON cannot hold become strings.
pub fn value_json(v: &Value) -> Json {
    match v {
        Value::Nil => Json::Null,
        Value::Bool(b) => json!(b),
        Value::Int(i) => json!(i),
        Value::UInt(u) => json!(u),
        Value::F32(f) => float_json(f64::from(*f)),
        Value::F64(f) => float_json(*f),
        Value::Str(s) => json!(s),
        Value::Bin(b) => json!(hex::encode(b)),
        Value::Array(a) => Json::Array(a.iter().map(value_json).collect()),
        Value::Map(m) => {
            let entries =
                m.iter().map(|(k, v)| (k.as_str().map_or_else(|| value_text(k), str::to_owned), value_json(v)));
            Json::Object(entries.collect())
        }
    }
}

fn float_json(f: f64) -> Json {
    serde_json::Number::from_f64(f).map_or_else(|| json!(f.to_string()), Json::Number)
}

/// Parses a `put` value of the given `--type`.
pub fn parse_value(kind: &str, text: &str) -> Result<Value, Failure> {
    let bad = |what: &str| Failure::BadInput(format!("value {text:?} is not {what}"));
    Ok(match kind {
        "str" => Value::Str(text.to_owned()),
        "int" => Value::Int(text.trim().parse().map_err(|_| bad("an integer"))?),
        "float" => Value::F64(text.trim().parse().map_err(|_| bad("a number"))?),
        "bool" => Value::Bool(text.trim().parse().map_err(|_| bad("true or false"))?),
        "bytes" => Value::Bin(hex::decode(text.trim()).map_err(|_| bad("hex bytes"))?),
        other => return Err(Failure::BadInput(format!("unknown value type {other:?}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_trim() {
        let mut t = Table::new(&["ID", "ADDRESS"]);
        t.row(vec!["abc".into(), "127.0.0.1:1".into()]);
        t.row(vec!["a".into()]);
        assert_eq!(t.render(), "ID   ADDRESS\nabc  127.0.0.1:1\na\n");
    }

    #[test]
    fn values_convert_both_ways() {
        assert_eq!(parse_value("int", "7").unwrap(), Value::Int(7));
        assert_eq!(parse_value("bytes", "00ff").unwrap(), Value::Bin(vec![0, 255]));
        assert!(matches!(parse_value("int", "x"), Err(Failure::BadInput(_))));
        assert!(matches!(parse_value("list", "x"), Err(Failure::BadInput(_))));
        assert_eq!(value_json(&Value::F64(f64::NAN)), json!("NaN"));
        assert_eq!(value_text(&Value::Str("{\"a\":1}".into())), "{\"a\":1}");
    }
}
