//! Output (tables, JSON, colours) and failures with their exit codes.
use std::fmt::Display;
use std::io::IsTerminal;
use std::path::Path;

use comfy_table::{presets, ContentArrangement, Table};
use serde_json::{json, Value as Json};
use stratadb::{Error, Value, Versioned};

/// Exit codes (documented in `strata --help`, README and docs/cli.md).
pub const NOT_FOUND: u8 = 1;
pub const USAGE: u8 = 2;
pub const DAMAGED: u8 = 3;
pub const IN_USE: u8 = 4;
pub const OTHER: u8 = 5;

/// Why a command failed, and with which exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

pub type CliResult<T = ()> = Result<T, Failure>;

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }
    pub fn usage(message: impl Into<String>) -> Self {
        Failure::new(USAGE, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Failure::new(NOT_FOUND, message)
    }

    /// A database error, with the exit code of its kind. `path` names the database for
    /// the "in use" message.
    pub fn from_db(e: Error, path: Option<&Path>) -> Self {
        let code = match &e {
            Error::NotFound(_) => NOT_FOUND,
            Error::InvalidKey(_)
            | Error::InvalidPath(_)
            | Error::ConstraintViolation(_)
            | Error::WrongType { .. } => USAGE,
            Error::RunError(m) if m.contains("does not exist") => NOT_FOUND,
            Error::Storage(m) if m.contains("already open") => IN_USE,
            Error::Storage(m)
                if [
                    "corrupt",
                    "bad magic",
                    "jumps from version",
                    "truncated header",
                    "format version",
                ]
                .iter()
                .any(|w| m.contains(w)) =>
            {
                DAMAGED
            }
            _ => OTHER,
        };
        if code == IN_USE {
            if let Some(p) = path {
                let who = match stratadb::lock_holder(p) {
                    Some(pid) => format!("process {pid}"),
                    None => "another process (its id is not recorded in the LOCK file)".into(),
                };
                return Failure::new(
                    IN_USE,
                    format!(
                        "database {} is in use by {who}. Commands that only read open it \
                         read-only beside that process; this one writes: stop that \
                         process first",
                        p.display()
                    ),
                );
            }
        }
        Failure::new(code, e.to_string())
    }
}

/// Wraps database results.
pub trait OrFail<T> {
    fn or_fail(self, path: &Path) -> CliResult<T>;
}

impl<T> OrFail<T> for stratadb::Result<T> {
    fn or_fail(self, path: &Path) -> CliResult<T> {
        self.map_err(|e| Failure::from_db(e, Some(path)))
    }
}

fn colour_ok(stream_is_tty: bool) -> bool {
    stream_is_tty && std::env::var_os("NO_COLOR").is_none()
}

/// `text` in an ANSI colour when stdout is a terminal (and NO_COLOR is unset).
pub fn paint(text: &str, ansi: &str) -> String {
    if colour_ok(std::io::stdout().is_terminal()) {
        format!("\x1b[{ansi}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

/// Prints an error on stderr (red "error:" on a terminal).
pub fn print_failure(f: &Failure) {
    let label = if colour_ok(std::io::stderr().is_terminal()) {
        "\x1b[31;1merror:\x1b[0m"
    } else {
        "error:"
    };
    eprintln!("{label} {}", f.message);
}

/// Prints a note on stderr (yellow "note:" on a terminal).
pub fn note(msg: impl Display) {
    let label = if colour_ok(std::io::stderr().is_terminal()) {
        "\x1b[33;1mnote:\x1b[0m"
    } else {
        "note:"
    };
    eprintln!("{label} {msg}");
}

/// A table with the given header, in a style that suits the output.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    if std::io::stdout().is_terminal() {
        t.load_preset(presets::UTF8_FULL_CONDENSED);
    } else {
        t.load_preset(presets::ASCII_MARKDOWN);
    }
    t.set_content_arrangement(ContentArrangement::Dynamic);
    t.set_header(header.iter().copied());
    t
}

pub fn print_json(v: &Json) {
    println!("{v}");
}

pub fn value_json(v: &Value) -> Json {
    Json::from(v)
}

/// A value compactly, for tables.
pub fn value_text(v: &Value) -> String {
    let s = value_json(v).to_string();
    if s.chars().count() > 120 {
        let cut: String = s.chars().take(117).collect();
        format!("{cut}...")
    } else {
        s
    }
}

pub fn versioned_json(v: &Versioned<Value>) -> Json {
    json!({
        "value": value_json(&v.value),
        "version": v.version.as_u64(),
        "version_kind": version_kind(&v.version),
        "timestamp": v.timestamp.as_micros(),
    })
}

pub fn version_kind(v: &stratadb::Version) -> &'static str {
    if v.is_sequence() {
        "sequence"
    } else if v.is_counter() {
        "counter"
    } else {
        "txn"
    }
}

/// Microseconds since the epoch as an ISO-8601 UTC time.
pub fn time_text(micros: u64) -> String {
    let secs = (micros / 1_000_000) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        (micros % 1_000_000) / 1000
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Bytes in human units.
pub fn bytes_text(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut x = n as f64;
    let mut u = 0;
    while x >= 1024.0 && u + 1 < UNITS.len() {
        x /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{x:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_sizes() {
        assert_eq!(time_text(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(time_text(1_700_000_000_123_456), "2023-11-14T22:13:20.123Z");
        assert_eq!(bytes_text(512), "512 B");
        assert_eq!(bytes_text(1536), "1.5 KiB");
    }
}
