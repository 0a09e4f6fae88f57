//! Export and import: the whole database, every version, as JSON Lines.
//!
//! The format is documented in `docs/export-format.md`. In short: a header line, one
//! line per stored key (of any primitive, in any run, run records included) carrying
//! that key's complete history — each version with its commit version, its commit
//! timestamp and its value or a deletion — and a trailer line with counts, so that a
//! truncated dump is detected.
//!
//! - **Streaming.** [`Strata::export`] walks the keyspace a chunk at a time
//!   ([`strata_storage::Storage::for_each_chain`]) and [`import`] reads one line at a
//!   time: neither holds more than one chunk of the dump in memory.
//! - **Exact restore.** Importing into an empty database (a directory that does not
//!   exist yet, or holds no database) puts every version back with its original version
//!   number and timestamp ([`strata_storage::Storage::restore_chains`]), so event
//!   sequences, state counters, run ids and states come back exactly and exporting again
//!   gives the same bytes.
//! - **Merge.** Importing into a database that has data cannot reuse versions (history
//!   is never rewritten): each imported version is committed anew, in order, and gets a
//!   new version and timestamp; [`ImportReport::exact`] is then `false`.
//! - **Deterministic output.** Keys come in keyspace order and JSON objects with sorted
//!   members, so the same database always exports to the same bytes.
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use strata_core::{codec, Error, Result, RunId, Timestamp};
use strata_primitives::RunInfo;
use strata_storage::key::{decode_key, encode_key};
use strata_storage::{DurabilityMode, Entry, Primitive, Storage, StorageOptions};

use crate::admin::primitive_label;
use crate::strata::Strata;

/// The format version written in the header line.
pub const EXPORT_FORMAT_VERSION: u32 = 1;

/// Sub-key tags shared by the event and vector primitives (see their module docs).
const HEAD_TAG: u8 = 0x01;
const ITEM_TAG: u8 = 0x02;

/// What an export wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportReport {
    /// The database version the export is a snapshot of.
    pub version: u64,
    /// Key lines written.
    pub records: u64,
    /// Versions written (deletions included).
    pub entries: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// `true` for an exact restore into an empty database (original versions and
    /// timestamps); `false` when the versions were committed anew into a database that
    /// already had data.
    pub exact: bool,
    /// Key lines read.
    pub records: u64,
    /// Versions imported (deletions included).
    pub entries: u64,
    /// The database version after the import.
    pub version: u64,
}

#[derive(Serialize, Deserialize)]
struct Header {
    stratadb_export: u32,
    version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    run: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Trailer {
    end: bool,
    records: u64,
    entries: u64,
}

/// One key line. Exactly one way of naming the key is present.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, bound(deserialize = "V: Deserialize<'de>"))]
struct Record<V> {
    run: String,
    primitive: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stream: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    collection: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    head: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_hex: Option<String>,
    history: Vec<EntryLine<V>>,
}

/// One version of a key. Exactly one of `deleted`, `value`, `count` and `raw` is
/// present (`counter` goes with `value` for state cells; `count` is an event stream
/// head's number of events).
///
/// `V` is [`OutValue`] when writing (stored bytes written as JSON, no `Value` built)
/// and a [`RawValue`] when reading (the JSON text, encoded straight to its binary form
/// by [`codec::encode_json_into`]).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, bound(deserialize = "V: Deserialize<'de>"))]
struct EntryLine<V> {
    v: u64,
    ts: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deleted: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    counter: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<V>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    raw: Option<String>,
}

impl<V> Default for Record<V> {
    fn default() -> Self {
        Record {
            run: String::new(),
            primitive: String::new(),
            key: None,
            stream: None,
            seq: None,
            collection: None,
            head: None,
            key_hex: None,
            history: Vec::new(),
        }
    }
}

impl<V> Default for EntryLine<V> {
    fn default() -> Self {
        EntryLine {
            v: 0,
            ts: 0,
            deleted: None,
            counter: None,
            count: None,
            value: None,
            raw: None,
        }
    }
}

/// A value as written: a stored value (written from its bytes, objects with sorted
/// members), or a run record.
enum OutValue<'a> {
    Value(codec::JsonView<'a>),
    Json(serde_json::Value),
}

impl Serialize for OutValue<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            OutValue::Value(v) => v.serialize(s),
            OutValue::Json(j) => j.serialize(s),
        }
    }
}

fn primitive_of(name: &str) -> Option<Primitive> {
    Some(match name {
        "kv" => Primitive::Kv,
        "json" => Primitive::Json,
        "event" => Primitive::Event,
        "state" => Primitive::State,
        "vector" => Primitive::Vector,
        "run" => Primitive::Run,
        "fork" => Primitive::Fork,
        "ttl" => Primitive::Ttl,
        _ => return None,
    })
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A user key shown as text when it is printable UTF-8.
fn printable(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes)
        .ok()
        .filter(|s| !s.chars().any(char::is_control))
}

/// Fills in the key fields of `rec` for the user key `user` of primitive `p`.
fn describe_key<V>(rec: &mut Record<V>, p: Primitive, user: &[u8]) {
    match p {
        Primitive::Kv | Primitive::Json | Primitive::State => {
            if let Some(k) = printable(user) {
                rec.key = Some(k.to_owned());
                return;
            }
        }
        Primitive::Run | Primitive::Fork => {
            if let Ok(b) = <[u8; 16]>::try_from(user) {
                rec.key = Some(RunId::from_bytes(b).to_string());
                return;
            }
        }
        // A TTL record's key (the record's tag and key) is always given in hex.
        Primitive::Ttl => {}
        Primitive::Event | Primitive::Vector => {
            let name_field = |rec: &mut Record<V>, name: &str| {
                if p == Primitive::Event {
                    rec.stream = Some(name.to_owned());
                } else {
                    rec.collection = Some(name.to_owned());
                }
            };
            match user.split_first() {
                Some((&HEAD_TAG, name)) => {
                    if let Some(name) = printable(name) {
                        name_field(rec, name);
                        rec.head = Some(true);
                        return;
                    }
                }
                Some((&ITEM_TAG, rest)) => {
                    if let Some(zero) = rest.iter().position(|&b| b == 0) {
                        let (name, item) = (&rest[..zero], &rest[zero + 1..]);
                        if let Some(name) = printable(name) {
                            if p == Primitive::Event {
                                if let Ok(seq) = <[u8; 8]>::try_from(item) {
                                    name_field(rec, name);
                                    rec.seq = Some(u64::from_be_bytes(seq));
                                    return;
                                }
                            } else if let Some(k) = printable(item) {
                                name_field(rec, name);
                                rec.key = Some(k.to_owned());
                                return;
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
    rec.key_hex = Some(to_hex(user));
}

/// The user key named by a record's key fields.
fn user_key_of<V>(rec: &Record<V>, p: Primitive) -> std::result::Result<Vec<u8>, String> {
    if let Some(h) = &rec.key_hex {
        return from_hex(h).ok_or_else(|| "key_hex is not hexadecimal".into());
    }
    match p {
        Primitive::Kv | Primitive::Json | Primitive::State => rec
            .key
            .as_ref()
            .map(|k| k.as_bytes().to_vec())
            .ok_or_else(|| "missing \"key\"".into()),
        Primitive::Run | Primitive::Fork => {
            let k = rec.key.as_ref().ok_or("missing \"key\" (a run id)")?;
            let id: RunId = k.parse().map_err(|_| format!("{k:?} is not a run id"))?;
            Ok(id.as_bytes().to_vec())
        }
        Primitive::Ttl => Err("a ttl record's key is given as \"key_hex\"".into()),
        Primitive::Event | Primitive::Vector => {
            let name = if p == Primitive::Event {
                rec.stream.as_ref().ok_or("missing \"stream\"")?
            } else {
                rec.collection.as_ref().ok_or("missing \"collection\"")?
            };
            if rec.head == Some(true) {
                let mut k = vec![HEAD_TAG];
                k.extend_from_slice(name.as_bytes());
                return Ok(k);
            }
            let mut k = vec![ITEM_TAG];
            k.extend_from_slice(name.as_bytes());
            k.push(0);
            if p == Primitive::Event {
                let seq = rec.seq.ok_or("missing \"seq\" or \"head\"")?;
                k.extend_from_slice(&seq.to_be_bytes());
            } else {
                k.extend_from_slice(rec.key.as_ref().ok_or("missing \"key\"")?.as_bytes());
            }
            Ok(k)
        }
    }
}

/// A stored value, when JSON carries it without loss.
fn lossless_value(bytes: &[u8]) -> Option<codec::JsonView<'_>> {
    codec::json_view(bytes)
}

/// A run record as JSON, when JSON carries it without loss.
fn run_info_json(bytes: &[u8]) -> Option<serde_json::Value> {
    let info: RunInfo = rmp_serde::from_slice(bytes).ok()?;
    let j = serde_json::to_value(&info).ok()?;
    let back: RunInfo = serde_json::from_value(j.clone()).ok()?;
    (back == info).then_some(j)
}

fn entry_line<'a>(p: Primitive, user: &[u8], e: &'a Entry) -> EntryLine<OutValue<'a>> {
    let mut line = EntryLine {
        v: e.version,
        ts: e.timestamp.as_micros(),
        ..EntryLine::default()
    };
    let Some(bytes) = e.value.as_deref() else {
        line.deleted = Some(true);
        return line;
    };
    let is_value = match p {
        Primitive::Kv | Primitive::Json => true,
        Primitive::Event => user.first() == Some(&ITEM_TAG),
        _ => false,
    };
    if is_value {
        if let Some(v) = lossless_value(bytes) {
            line.value = Some(OutValue::Value(v));
            return line;
        }
    } else if p == Primitive::Run {
        if let Some(j) = run_info_json(bytes) {
            line.value = Some(OutValue::Json(j));
            return line;
        }
    } else if p == Primitive::Event && user.first() == Some(&HEAD_TAG) && bytes.len() == 8 {
        let mut n = [0u8; 8];
        n.copy_from_slice(bytes);
        line.count = Some(u64::from_le_bytes(n));
        return line;
    } else if p == Primitive::State && bytes.len() >= 8 {
        let (c, rest) = bytes.split_at(8);
        if let Some(v) = lossless_value(rest) {
            let mut counter = [0u8; 8];
            counter.copy_from_slice(c);
            line.counter = Some(u64::from_le_bytes(counter));
            line.value = Some(OutValue::Value(v));
            return line;
        }
    }
    line.raw = Some(to_hex(bytes));
    line
}

fn io(e: std::io::Error) -> Error {
    Error::Io(e)
}

fn ser(e: serde_json::Error) -> Error {
    Error::Serialization(format!("cannot write an export line: {e}"))
}

impl Strata {
    /// Writes the whole database — or only `run` (its records and its run record) — as
    /// JSON Lines to `out`, every version of every key included, as of the moment the
    /// export starts (later commits are not included). `progress` is called after each
    /// key line with the number of key lines written so far (compare with
    /// [`crate::DbInfo::keys`]).
    ///
    /// ```
    /// use stratadb::prelude::*;
    /// let db = Strata::ephemeral()?;
    /// db.kv.set("k", 1i64)?;
    /// db.kv.set("k", 2i64)?;
    /// let mut out = Vec::new();
    /// let report = db.export(&mut out, None, |_| {})?;
    /// assert_eq!(report.records, 2); // the default run's record and "k"
    /// assert!(String::from_utf8(out).unwrap().contains(r#""key":"k""#));
    /// # Ok::<(), stratadb::Error>(())
    /// ```
    pub fn export<W: Write>(
        &self,
        out: W,
        run: Option<RunId>,
        mut progress: impl FnMut(u64),
    ) -> Result<ExportReport> {
        let storage = self.engine.storage();
        let version = storage.visible_version();
        let mut w = std::io::BufWriter::with_capacity(1 << 16, out);
        // Each line is serialized into `line` and written at once: cheaper than many
        // small writes through the serializer.
        let mut line: Vec<u8> = Vec::with_capacity(1 << 12);
        let mut bytes = 0u64;
        let mut emit = |line: &mut Vec<u8>, w: &mut std::io::BufWriter<W>| -> Result<()> {
            line.push(b'\n');
            w.write_all(line).map_err(io)?;
            bytes += line.len() as u64;
            line.clear();
            Ok(())
        };
        let header = Header {
            stratadb_export: EXPORT_FORMAT_VERSION,
            version,
            run: run.map(|r| r.to_string()),
        };
        serde_json::to_writer(&mut line, &header).map_err(ser)?;
        emit(&mut line, &mut w)?;
        let mut report = ExportReport {
            version,
            ..ExportReport::default()
        };
        let run_record = run.map(|r| encode_key(&RunId::DEFAULT, Primitive::Run, r.as_bytes()));
        let mut run_text: Option<(RunId, String)> = None;
        storage.for_each_chain(version, |key, chain| {
            let Some((key_run, p, user)) = decode_key(key) else {
                return Err(Error::Storage(format!(
                    "malformed key {key:02x?} in the database"
                )));
            };
            if let Some(r) = &run {
                if key_run != *r && run_record.as_deref() != Some(key) {
                    return Ok(());
                }
            }
            let run_str = match &run_text {
                Some((id, text)) if *id == key_run => text.clone(),
                _ => {
                    let text = key_run.to_string();
                    run_text = Some((key_run, text.clone()));
                    text
                }
            };
            let mut rec = Record {
                run: run_str,
                primitive: primitive_label(p).to_owned(),
                history: chain.iter().map(|e| entry_line(p, user, e)).collect(),
                ..Record::default()
            };
            describe_key(&mut rec, p, user);
            serde_json::to_writer(&mut line, &rec).map_err(ser)?;
            emit(&mut line, &mut w)?;
            report.records += 1;
            report.entries += chain.len() as u64;
            progress(report.records);
            Ok(())
        })?;
        let trailer = Trailer {
            end: true,
            records: report.records,
            entries: report.entries,
        };
        serde_json::to_writer(&mut line, &trailer).map_err(ser)?;
        emit(&mut line, &mut w)?;
        w.flush().map_err(io)?;
        report.bytes = bytes;
        Ok(report)
    }
}

/// A storage key and its whole chain, as read from one dump line.
type KeyChain = (Box<[u8]>, Vec<Entry>);

/// Reads a dump line by line, yielding each key's storage key and chain.
struct DumpReader<R> {
    input: R,
    line: String,
    line_no: u64,
    records: u64,
    entries: u64,
    done: bool,
}

fn bad_line(line_no: u64, what: impl std::fmt::Display) -> Error {
    Error::ConstraintViolation(format!("import: line {line_no}: {what}"))
}

impl<R: BufRead> DumpReader<R> {
    fn new(mut input: R) -> Result<(Self, Header)> {
        let mut line = String::new();
        let n = input.read_line(&mut line).map_err(io)?;
        if n == 0 {
            return Err(bad_line(
                1,
                "the input is empty (expected an export header)",
            ));
        }
        let header: Header = serde_json::from_str(&line)
            .map_err(|e| bad_line(1, format!("not a StrataDB export header: {e}")))?;
        if header.stratadb_export != EXPORT_FORMAT_VERSION {
            return Err(bad_line(
                1,
                format!(
                    "export format version {}; this build reads version {EXPORT_FORMAT_VERSION}",
                    header.stratadb_export
                ),
            ));
        }
        Ok((
            DumpReader {
                input,
                line,
                line_no: 1,
                records: 0,
                entries: 0,
                done: false,
            },
            header,
        ))
    }

    fn next_record(&mut self) -> Result<Option<KeyChain>> {
        if self.done {
            return Ok(None);
        }
        self.line.clear();
        self.line_no += 1;
        let n = self.input.read_line(&mut self.line).map_err(io)?;
        if n == 0 {
            return Err(bad_line(
                self.line_no,
                "the dump ends without its trailer line: it is truncated",
            ));
        }
        let text = self.line.trim_end();
        if text.starts_with(r#"{"end""#) {
            let t: Trailer = serde_json::from_str(text).map_err(|e| bad_line(self.line_no, e))?;
            if t.records != self.records || t.entries != self.entries {
                return Err(bad_line(
                    self.line_no,
                    format!(
                        "the trailer counts {} keys and {} versions but the dump holds {} and {}",
                        t.records, t.entries, self.records, self.entries
                    ),
                ));
            }
            self.done = true;
            return Ok(None);
        }
        // Values stay JSON text here: `decode_entry` writes them straight to their
        // binary form, without building a `Value`.
        let rec: Record<Box<RawValue>> =
            serde_json::from_str(text).map_err(|e| bad_line(self.line_no, e))?;
        let run: RunId = rec
            .run
            .parse()
            .map_err(|_| bad_line(self.line_no, format!("{:?} is not a run id", rec.run)))?;
        let p = primitive_of(&rec.primitive).ok_or_else(|| {
            bad_line(
                self.line_no,
                format!("unknown primitive {:?}", rec.primitive),
            )
        })?;
        let user = user_key_of(&rec, p).map_err(|e| bad_line(self.line_no, e))?;
        let key: Box<[u8]> = encode_key(&run, p, &user).into();
        let mut chain = Vec::with_capacity(rec.history.len());
        for e in rec.history {
            let (v, ts) = (e.v, e.ts);
            let value = decode_entry(p, e)
                .map_err(|what| bad_line(self.line_no, format!("version {v}: {what}")))?;
            chain.push(Entry {
                version: v,
                timestamp: Timestamp::from_micros(ts),
                value,
            });
        }
        self.records += 1;
        self.entries += chain.len() as u64;
        Ok(Some((key, chain)))
    }
}

impl<R: BufRead> Iterator for DumpReader<R> {
    type Item = Result<KeyChain>;
    fn next(&mut self) -> Option<Self::Item> {
        match self.next_record() {
            Ok(Some(r)) => Some(Ok(r)),
            Ok(None) => None,
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

fn decode_entry(
    p: Primitive,
    e: EntryLine<Box<RawValue>>,
) -> std::result::Result<Option<Arc<[u8]>>, String> {
    let EntryLine {
        deleted,
        counter,
        count,
        value,
        raw,
        ..
    } = e;
    match (deleted, value, raw, count) {
        (Some(true), None, None, None) => Ok(None),
        (None, None, Some(hex), None) => from_hex(&hex)
            .map(|b| Some(Arc::from(b)))
            .ok_or_else(|| "\"raw\" is not hexadecimal".into()),
        (None, None, None, Some(n)) if p == Primitive::Event => {
            Ok(Some(Arc::from(&n.to_le_bytes()[..])))
        }
        (None, Some(v), None, None) if p == Primitive::Run => {
            let info: RunInfo =
                serde_json::from_str(v.get()).map_err(|e| format!("not a run record: {e}"))?;
            let b = rmp_serde::to_vec_named(&info).map_err(|e| e.to_string())?;
            Ok(Some(Arc::from(b)))
        }
        (None, Some(v), None, None) => {
            let mut b = Vec::with_capacity(v.get().len() + 8);
            if p == Primitive::State {
                let c = counter.ok_or("a state value needs its \"counter\"")?;
                b.extend_from_slice(&c.to_le_bytes());
            }
            codec::encode_json_into(v.get(), &mut b).map_err(|e| e.to_string())?;
            Ok(Some(Arc::from(b)))
        }
        _ => Err(
            "needs exactly one of \"deleted\": true, \"value\", \"count\" (event stream \
             heads) and \"raw\""
                .into(),
        ),
    }
}

/// A merge import commits every version anew, so a fork's pointer to its parent's
/// version would point elsewhere: forked runs are refused (their run records come
/// before any data of a run other than the default one, so nothing of them is
/// imported). An exact restore keeps them.
fn refuse_fork_in_merge(key: &[u8], chain: &[Entry]) -> Result<()> {
    let Some((_, p, user)) = decode_key(key) else {
        return Ok(());
    };
    let forked = match p {
        Primitive::Fork => true,
        Primitive::Run => chain.iter().any(|e| {
            e.value
                .as_deref()
                .and_then(|b| rmp_serde::from_slice::<RunInfo>(b).ok())
                .is_some_and(|i| i.forked_from.is_some())
        }),
        _ => false,
    };
    if forked {
        let run = <[u8; 16]>::try_from(user).map(RunId::from_bytes).ok();
        return Err(Error::ConstraintViolation(format!(
            "the dump holds a forked run ({}): a fork points at a version of its parent, \
             which a merge import (into a database that is not empty) renumbers; import \
             the dump into an empty database for an exact restore",
            run.map_or_else(|| "?".to_owned(), |r| r.to_string())
        )));
    }
    Ok(())
}

/// Imports a dump written by [`Strata::export`] into the database at `path` (created if
/// missing), which must not be open elsewhere.
///
/// Into an empty database this is an exact restore (the format is `docs/export-format.md`);
/// otherwise every imported version is committed anew, in the dump's order, and
/// [`ImportReport::exact`] is `false` (a dump holding forked runs is refused then: see
/// [`Runs::fork`](crate::Runs::fork)). Bad input — a malformed line, a truncated dump —
/// fails with [`Error::ConstraintViolation`] naming the line; an exact restore that
/// fails leaves the database empty, a merge keeps what it committed before the bad line.
pub fn import(path: impl AsRef<Path>, input: impl BufRead) -> Result<ImportReport> {
    let options = StorageOptions {
        durability: DurabilityMode::NoDurability,
        ..StorageOptions::default()
    };
    let storage = Storage::open(path.as_ref(), options)?;
    let (mut reader, header) = DumpReader::new(input)?;
    let mut report = ImportReport::default();
    if storage.visible_version() == 0 {
        let r = storage.restore_chains(header.version, &mut reader)?;
        report.exact = true;
        report.records = r.keys;
        report.entries = r.entries;
        report.version = r.version;
    } else {
        for item in &mut reader {
            let (key, chain) = item?;
            refuse_fork_in_merge(&key, &chain)?;
            for e in chain {
                let write = strata_storage::Write {
                    key: key.clone(),
                    value: e.value,
                };
                report.version = storage.commit(vec![write], |_| Ok(()))?.version;
                report.entries += 1;
            }
            report.records += 1;
        }
        report.version = report.version.max(storage.visible_version());
    }
    storage.close()?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_core::Value;

    #[test]
    fn hex_round_trip() {
        let b = [0u8, 1, 0xab, 0xff];
        assert_eq!(from_hex(&to_hex(&b)).unwrap(), b);
        assert!(from_hex("abc").is_none());
        assert!(from_hex("zz").is_none());
    }

    #[test]
    fn keys_round_trip() {
        let cases: Vec<(Primitive, Vec<u8>)> = vec![
            (Primitive::Kv, b"user:1".to_vec()),
            (Primitive::Kv, b"bell\x07".to_vec()),
            (Primitive::Event, b"\x01trace".to_vec()),
            (
                Primitive::Event,
                [&b"\x02trace\x00"[..], &7u64.to_be_bytes()].concat(),
            ),
            (Primitive::Vector, b"\x01docs".to_vec()),
            (Primitive::Vector, b"\x02docs\x00v1".to_vec()),
            (Primitive::Vector, b"\x07odd".to_vec()),
            (Primitive::Run, RunId::new().as_bytes().to_vec()),
        ];
        for (p, user) in cases {
            let mut rec = Record::<Value>::default();
            describe_key(&mut rec, p, &user);
            assert_eq!(user_key_of(&rec, p).unwrap(), user, "{p:?}");
        }
    }

    #[test]
    fn values_that_json_cannot_carry_are_raw() {
        for v in [
            Value::Bytes(vec![1, 2]),
            Value::Float(f64::NAN),
            Value::Float(f64::INFINITY),
        ] {
            let bytes = codec::encode(&v).unwrap();
            assert!(lossless_value(&bytes).is_none(), "{v:?}");
        }
        // What is written reads back as the same variant and members come sorted.
        let v = Value::from(
            vec![
                ("b".to_owned(), Value::Float(1.0)),
                ("a".to_owned(), Value::Int(1)),
                ("c".to_owned(), Value::Float(-0.0)),
                ("d".to_owned(), Value::Float(1e300)),
            ]
            .into_iter()
            .collect::<std::collections::BTreeMap<String, Value>>(),
        );
        let bytes = codec::encode(&v).unwrap();
        let text =
            serde_json::to_string(&OutValue::Value(lossless_value(&bytes).unwrap())).unwrap();
        assert_eq!(text, r#"{"a":1,"b":1.0,"c":-0.0,"d":1e+300}"#);
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), v);
    }
}
