//! `strata`: the StrataDB command-line tool.
//!
//! Built on the `stratadb` facade only. Each invocation opens the database, does one
//! thing and exits; see `strata --help` and `docs/cli.md`.
//!
//! - Read commands refuse a directory that holds no database (exit 1) rather than
//!   create one; write commands create it.
//! - Write commands flush before exiting but do not close with a snapshot (that would
//!   rewrite a large database for every `kv set`); `strata checkpoint` does that.
//! - Every failure maps to a documented exit code ([`out`]).
mod args;
mod out;

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value as Json};
use stratadb::prelude::*;
use stratadb::{
    CollectionOptions, DistanceMetric, Quantization, RunInfo, SearchFilter, Strata, StrataBuilder,
};

use args::*;
use out::*;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            print_failure(&f);
            ExitCode::from(f.code)
        }
    }
}

fn run(cli: Cli) -> CliResult {
    let json = cli.json;
    match cli.cmd {
        Cmd::Info { path } => info(&path, json),
        Cmd::Runs(c) => runs(c, json),
        Cmd::Kv(c) => kv(c, json),
        Cmd::Json(c) => json_cmd(c, json),
        Cmd::Events(c) => events(c, json),
        Cmd::State(c) => state(c, json),
        Cmd::Vectors(c) => vectors(c, json),
        Cmd::Export { path, run, output } => export(&path, run.as_deref(), output.as_deref(), json),
        Cmd::Import { path, input } => import(&path, input.as_deref(), json),
        Cmd::Verify { path } => verify(&path, json),
        Cmd::Checkpoint { path } => {
            let db = open_existing(&path)?;
            db.close().or_fail(&path)?;
            done(json, "checkpoint written")
        }
        Cmd::Compact { path } => {
            let db = open_existing(&path)?;
            let dropped = db.compact().or_fail(&path)?;
            db.close().or_fail(&path)?;
            if json {
                print_json(&json!({"versions_dropped": dropped}));
            } else {
                println!("{dropped} old versions dropped; checkpoint written");
            }
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------
// Opening

/// `true` if `path` holds a database (a log segment or a snapshot).
fn is_database(path: &Path) -> bool {
    std::fs::read_dir(path).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            (n.starts_with("wal-") && n.ends_with(".log"))
                || (n.starts_with("snap-") && n.ends_with(".snap"))
                || n == "MANIFEST"
        })
    })
}

/// Opens a database that must exist.
fn open_existing(path: &Path) -> CliResult<Strata> {
    if !is_database(path) {
        return Err(Failure::not_found(format!(
            "no database at {} (write commands and `strata import` create one)",
            path.display()
        )));
    }
    Strata::open(path).or_fail(path)
}

/// Opens a database that must exist, for a command that only reads: when another
/// process has it open (locked), opens it read-only beside that process instead (what
/// that writer has made durable), and says so on stderr.
fn open_for_reading(path: &Path) -> CliResult<Strata> {
    match open_existing(path) {
        Err(f) if f.code == out::IN_USE => {
            let db = StrataBuilder::new()
                .path(path)
                .read_only()
                .open()
                .or_fail(path)?;
            // Once per command (`events tail -f` reopens at every poll).
            static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
            if !SAID.swap(true, std::sync::atomic::Ordering::Relaxed) {
                eprintln!(
                    "note: {} is open in another process; reading it read-only (what that \
                     process has made durable)",
                    path.display()
                );
            }
            Ok(db)
        }
        other => other,
    }
}

/// Opens a database, creating it if missing.
fn open_or_create(path: &Path) -> CliResult<Strata> {
    if path.exists() && !path.is_dir() {
        return Err(Failure::usage(format!(
            "{} exists and is not a directory",
            path.display()
        )));
    }
    StrataBuilder::new().path(path).open().or_fail(path)
}

/// The run named `name` (`default` or an id), which must exist.
fn run_id(db: &Strata, path: &Path, name: &str) -> CliResult<RunId> {
    let id = if name == "default" {
        db.runs.default_run()
    } else {
        name.parse::<RunId>()
            .map_err(|_| Failure::usage(format!("{name:?} is not a run id (nor `default`)")))?
    };
    if !db.runs.exists(&id).or_fail(path)? {
        return Err(Failure::not_found(format!("run {id} does not exist")));
    }
    Ok(id)
}

/// Opens an existing database and resolves the target run.
fn read_target(t: &Target) -> CliResult<(Strata, RunId)> {
    let db = open_for_reading(&t.path)?;
    let run = run_id(&db, &t.path, &t.run)?;
    Ok((db, run))
}

/// Opens an existing database for a command that changes it (a delete: it must not
/// create the database), and resolves the target run.
fn existing_target(t: &Target) -> CliResult<(Strata, RunId)> {
    let db = open_existing(&t.path)?;
    let run = run_id(&db, &t.path, &t.run)?;
    Ok((db, run))
}

/// Opens (creating) a database and resolves the target run.
fn write_target(t: &Target) -> CliResult<(Strata, RunId)> {
    let db = open_or_create(&t.path)?;
    let run = run_id(&db, &t.path, &t.run)?;
    Ok((db, run))
}

/// Flushes a database after writes (no snapshot; see the module docs).
fn finish(db: Strata, path: &Path) -> CliResult {
    db.flush().or_fail(path)?;
    drop(db);
    Ok(())
}

fn done(json: bool, msg: &str) -> CliResult {
    if json {
        print_json(&json!({"ok": true}));
    } else {
        println!("{msg}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// Parsing values

fn parse_json(what: &str, text: &str) -> CliResult<Json> {
    serde_json::from_str(text).map_err(|e| {
        Failure::usage(format!(
            "{what} is not valid JSON ({e}): {text:?}. Values are JSON; to give a string, \
             quote it: '\"{text}\"'"
        ))
    })
}

fn parse_value(what: &str, text: &str) -> CliResult<Value> {
    parse_json(what, text).map(Value::from)
}

fn parse_vector(what: &str, text: &str) -> CliResult<Vec<f32>> {
    let j = parse_json(what, text)?;
    let arr = j
        .as_array()
        .ok_or_else(|| Failure::usage(format!("{what} must be a JSON array of numbers")))?;
    arr.iter()
        .map(|x| {
            x.as_f64()
                .map(|f| f as f32)
                .ok_or_else(|| Failure::usage(format!("{what} must hold only numbers, not {x}")))
        })
        .collect()
}

fn parse_state(s: &str) -> CliResult<RunState> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "active" => RunState::Active,
        "paused" => RunState::Paused,
        "completed" => RunState::Completed,
        "failed" => RunState::Failed,
        "cancelled" | "canceled" => RunState::Cancelled,
        "archived" => RunState::Archived,
        _ => {
            return Err(Failure::usage(format!(
            "unknown run state {s:?}: use active, paused, completed, failed, cancelled or archived"
        )))
        }
    })
}

fn parse_quantization(s: &str) -> CliResult<Quantization> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "none" => Quantization::None,
        "int8" => Quantization::Int8,
        _ => {
            return Err(Failure::usage(format!(
                "unknown quantization {s:?}: use none or int8"
            )))
        }
    })
}

fn parse_metric(s: &str) -> CliResult<DistanceMetric> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "cosine" => DistanceMetric::Cosine,
        "euclidean" | "l2" => DistanceMetric::Euclidean,
        "dot_product" | "dot" => DistanceMetric::DotProduct,
        _ => {
            return Err(Failure::usage(format!(
                "unknown metric {s:?}: use cosine, euclidean or dot_product"
            )))
        }
    })
}

// ---------------------------------------------------------------------------------
// Printing values

/// A single (possibly absent) versioned value.
fn print_versioned(
    v: Option<Versioned<Value>>,
    json: bool,
    what: impl FnOnce() -> String,
) -> CliResult {
    let v = v.ok_or_else(|| Failure::not_found(what()))?;
    if json {
        print_json(&versioned_json(&v));
    } else {
        let pretty = serde_json::to_string_pretty(&value_json(&v.value)).unwrap_or_default();
        println!("{pretty}");
    }
    Ok(())
}

/// A list of versioned values (history, events).
fn print_versions(items: &[Versioned<Value>], json: bool, label: &str) {
    if json {
        print_json(&Json::Array(items.iter().map(versioned_json).collect()));
        return;
    }
    let mut t = table(&[label, "time", "value"]);
    for v in items {
        t.add_row(vec![
            v.version.as_u64().to_string(),
            time_text(v.timestamp.as_micros()),
            value_text(&v.value),
        ]);
    }
    println!("{t}");
}

fn print_keys(keys: &[String], json: bool) {
    if json {
        print_json(&json!(keys));
    } else {
        for k in keys {
            println!("{k}");
        }
    }
}

fn run_json(v: &Versioned<RunInfo>) -> Json {
    let r = &v.value;
    json!({
        "run_id": r.run_id.to_string(),
        "state": format!("{:?}", r.state),
        "created_at": r.created_at.as_micros(),
        "updated_at": r.updated_at.as_micros(),
        "metadata": r.metadata.as_ref().map(value_json),
        "error": r.error,
        "retention": format!("{:?}", r.retention),
        "history_complete_from": r.history_complete_from.map(|v| v.as_u64()),
        "uses_ttl": r.uses_ttl,
        "forked_from": r.forked_from.map(|o| json!({
            "parent": o.parent.to_string(),
            "version": o.version.as_u64(),
        })),
        "version": v.version.as_u64(),
    })
}

// ---------------------------------------------------------------------------------
// Commands

fn info(path: &Path, json: bool) -> CliResult {
    let db = open_for_reading(path)?;
    let i = db.info().or_fail(path)?;
    let durability = i
        .durability
        .map_or("ephemeral".to_owned(), |d| format!("{d:?}"));
    if json {
        let prims: serde_json::Map<String, Json> = i
            .primitives
            .iter()
            .map(|(k, s)| {
                (
                    (*k).to_owned(),
                    json!({"live_keys": s.live_keys, "deleted_keys": s.deleted_keys,
                           "versions": s.versions, "bytes": s.bytes}),
                )
            })
            .collect();
        print_json(&json!({
            "path": i.path.display().to_string(),
            "durability": durability,
            "version": i.version,
            "recovered_snapshot_version": i.recovered_snapshot_version,
            "recovered_log_records": i.recovered_records,
            "runs_by_state": i.runs_by_state,
            "retention": i.retention.iter()
                .map(|(r, p)| json!({"run": r.to_string(), "policy": format!("{p:?}")}))
                .collect::<Vec<_>>(),
            "primitives": prims,
            "keys": i.keys,
            "memory_bytes": i.memory_bytes,
            "disk_bytes": i.disk_bytes,
            "files": i.files.iter()
                .map(|f| json!({"name": f.name, "kind": f.kind, "bytes": f.bytes}))
                .collect::<Vec<_>>(),
            "transactions_committed": i.transactions_committed,
            "transactions_aborted": i.transactions_aborted,
        }));
        return Ok(());
    }
    let mut t = table(&["", ""]);
    t.add_row(vec!["path".to_owned(), i.path.display().to_string()]);
    t.add_row(vec!["durability".to_owned(), durability]);
    t.add_row(vec!["version".to_owned(), i.version.to_string()]);
    t.add_row(vec![
        "recovery".to_owned(),
        format!(
            "snapshot at version {}, {} log records replayed",
            i.recovered_snapshot_version, i.recovered_records
        ),
    ]);
    let runs: Vec<String> = i
        .runs_by_state
        .iter()
        .map(|(s, n)| format!("{n} {}", s.to_lowercase()))
        .collect();
    t.add_row(vec!["runs".to_owned(), runs.join(", ")]);
    let retention = if i.retention.is_empty() {
        "every run keeps all versions".to_owned()
    } else {
        i.retention
            .iter()
            .map(|(r, p)| format!("{r}: {p:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    t.add_row(vec!["retention".to_owned(), retention]);
    t.add_row(vec![
        "size".to_owned(),
        format!(
            "{} in memory (keys and values), {} on disk",
            bytes_text(i.memory_bytes),
            bytes_text(i.disk_bytes)
        ),
    ]);
    t.add_row(vec![
        "transactions".to_owned(),
        format!(
            "{} committed, {} aborted since open",
            i.transactions_committed, i.transactions_aborted
        ),
    ]);
    println!("{t}");
    let mut p = table(&[
        "primitive",
        "live keys",
        "deleted keys",
        "versions",
        "bytes",
    ]);
    for (name, s) in &i.primitives {
        p.add_row(vec![
            (*name).to_owned(),
            s.live_keys.to_string(),
            s.deleted_keys.to_string(),
            s.versions.to_string(),
            bytes_text(s.bytes),
        ]);
    }
    println!("{p}");
    let mut f = table(&["file", "kind", "size"]);
    for file in &i.files {
        f.add_row(vec![
            file.name.clone(),
            file.kind.to_owned(),
            bytes_text(file.bytes),
        ]);
    }
    println!("{f}");
    Ok(())
}

fn runs(c: RunsCmd, json: bool) -> CliResult {
    match c {
        RunsCmd::List { path, state, limit } => {
            let db = open_for_reading(&path)?;
            let state = state.as_deref().map(parse_state).transpose()?;
            let list = db.runs.list(state, limit).or_fail(&path)?;
            if json {
                print_json(&Json::Array(list.iter().map(run_json).collect()));
                return Ok(());
            }
            let mut t = table(&["run", "state", "created", "updated", "metadata"]);
            for v in &list {
                let r = &v.value;
                t.add_row(vec![
                    if r.run_id.is_default() {
                        format!("{} (default)", r.run_id)
                    } else {
                        r.run_id.to_string()
                    },
                    format!("{:?}", r.state),
                    time_text(r.created_at.as_micros()),
                    time_text(r.updated_at.as_micros()),
                    r.metadata.as_ref().map(value_text).unwrap_or_default(),
                ]);
            }
            println!("{t}");
            Ok(())
        }
        RunsCmd::Show { path, run } => {
            let db = open_for_reading(&path)?;
            let id = run_id(&db, &path, &run)?;
            let v = db
                .runs
                .get(&id)
                .or_fail(&path)?
                .ok_or_else(|| Failure::not_found(format!("run {id} does not exist")))?;
            let j = run_json(&v);
            if json {
                print_json(&j);
            } else {
                let mut t = table(&["", ""]);
                if let Some(o) = j.as_object() {
                    for (k, v) in o {
                        let text = match v {
                            Json::String(s) => s.clone(),
                            Json::Null => String::new(),
                            other => other.to_string(),
                        };
                        t.add_row(vec![k.clone(), text]);
                    }
                }
                println!("{t}");
            }
            Ok(())
        }
        RunsCmd::Create { path, metadata } => {
            let metadata = metadata
                .as_deref()
                .map(|m| parse_value("metadata", m))
                .transpose()?;
            let db = open_or_create(&path)?;
            let id = db.runs.create(metadata).or_fail(&path)?;
            finish(db, &path)?;
            if json {
                print_json(&json!({"run_id": id.to_string()}));
            } else {
                println!("{id}");
            }
            Ok(())
        }
        RunsCmd::Close(a) => transition(a, json, |db, id| db.runs.close(id)),
        RunsCmd::Cancel(a) => transition(a, json, |db, id| db.runs.cancel(id)),
        RunsCmd::Fork { target, at } => {
            let db = open_existing(&target.path)?;
            let parent = run_id(&db, &target.path, &target.run)?;
            let fork = db
                .runs
                .fork(&parent, at.map(Version::Txn))
                .or_fail(&target.path)?;
            let origin = db
                .runs
                .get(&fork)
                .or_fail(&target.path)?
                .and_then(|i| i.value.forked_from)
                .map(|o| o.version.as_u64());
            finish(db, &target.path)?;
            if json {
                print_json(&json!({
                    "run_id": fork.to_string(),
                    "parent": parent.to_string(),
                    "at": origin,
                }));
            } else {
                println!("{fork}");
            }
            Ok(())
        }
        RunsCmd::Purge { target, with_forks } => {
            let db = open_existing(&target.path)?;
            let id = run_id(&db, &target.path, &target.run)?;
            let version = if with_forks {
                db.runs.purge_with_forks(&id)
            } else {
                db.runs.purge(&id)
            }
            .or_fail(&target.path)?;
            finish(db, &target.path)?;
            if json {
                print_json(
                    &json!({"run_id": id.to_string(), "purged": true, "version": version.as_u64()}),
                );
            } else {
                println!(
                    "run {id} purged (run `strata compact` to remove its bytes from the files)"
                );
            }
            Ok(())
        }
        RunsCmd::Diff {
            target,
            from,
            to,
            against,
        } => {
            let db = open_for_reading(&target.path)?;
            let id = run_id(&db, &target.path, &target.run)?;
            let changes = match (from, against) {
                (_, Some(other)) => {
                    let other = run_id(&db, &target.path, &other)?;
                    db.runs.diff_runs(&other, &id)
                }
                (Some(f), None) => db.runs.diff(&id, Version::Txn(f), to.map(Version::Txn)),
                (None, None) => {
                    return Err(Failure::usage("give --from VERSION or --against RUN"));
                }
            }
            .or_fail(&target.path)?;
            for c in changes {
                let c = c.or_fail(&target.path)?;
                print_change(&c, json);
            }
            Ok(())
        }
        RunsCmd::Archive(a) => transition(a, json, |db, id| db.runs.archive(id)),
        RunsCmd::Pause(a) => transition(a, json, |db, id| db.runs.pause(id)),
        RunsCmd::Resume(a) => transition(a, json, |db, id| db.runs.resume(id)),
        RunsCmd::Fail { target, error } => {
            transition(target, json, |db, id| db.runs.fail(id, &error))
        }
    }
}

fn print_change(c: &stratadb::Change, json: bool) {
    let (primitive, kind) = (c.primitive.name(), c.kind.name());
    let side = |v: &Option<Versioned<Value>>| {
        v.as_ref()
            .map(|v| json!({"value": value_json(&v.value), "version": v.version.as_u64()}))
    };
    if json {
        println!(
            "{}",
            json!({
                "primitive": primitive,
                "container": c.container,
                "key": c.key,
                "kind": kind,
                "before": side(&c.before),
                "after": side(&c.after),
            })
        );
    } else {
        let name = match &c.container {
            Some(container) => format!("{container}/{}", c.key),
            None => c.key.clone(),
        };
        let show = |v: &Option<Versioned<Value>>| {
            v.as_ref()
                .map_or_else(|| "-".to_owned(), |v| value_json(&v.value).to_string())
        };
        println!(
            "{kind:<8} {primitive:<6} {name}  {} -> {}",
            show(&c.before),
            show(&c.after)
        );
    }
}

fn transition(
    a: RunArg,
    json: bool,
    f: impl FnOnce(&Strata, &RunId) -> stratadb::Result<Version>,
) -> CliResult {
    let db = open_existing(&a.path)?;
    let id = run_id(&db, &a.path, &a.run)?;
    let version = f(&db, &id).or_fail(&a.path)?;
    let state = db
        .runs
        .get(&id)
        .or_fail(&a.path)?
        .map(|v| format!("{:?}", v.value.state))
        .unwrap_or_default();
    finish(db, &a.path)?;
    if json {
        print_json(&json!({"run_id": id.to_string(), "state": state, "version": version.as_u64()}));
    } else {
        println!("run {id} is now {state}");
    }
    Ok(())
}

fn print_version(json: bool, version: Version) {
    if json {
        print_json(&json!({"version": version.as_u64(), "version_kind": version_kind(&version)}));
    } else {
        println!("{} {}", version_kind(&version), version.as_u64());
    }
}

fn kv(c: KvCmd, json: bool) -> CliResult {
    match c {
        KvCmd::Get { target, key, at } => {
            let (db, run) = read_target(&target)?;
            let v = match at {
                Some(at) => Some(
                    db.kv
                        .get_at(&run, &key, Version::Txn(at))
                        .or_fail(&target.path)?,
                ),
                None => db.kv.get_in(&run, &key).or_fail(&target.path)?,
            };
            print_versioned(v, json, || format!("key {key:?} does not exist"))
        }
        KvCmd::Set { target, key, value } => {
            let value = parse_value("VALUE", &value)?;
            let (db, run) = write_target(&target)?;
            let v = db.kv.put(&run, &key, value).or_fail(&target.path)?;
            finish(db, &target.path)?;
            print_version(json, v);
            Ok(())
        }
        KvCmd::Delete { target, key } => {
            let (db, run) = existing_target(&target)?;
            let existed = db.kv.delete_in(&run, &key).or_fail(&target.path)?;
            finish(db, &target.path)?;
            deleted(existed, json, || format!("key {key:?} does not exist"))
        }
        KvCmd::List {
            target,
            prefix,
            limit,
            values,
        } => {
            let (db, run) = read_target(&target)?;
            let keys = db.kv.keys(&run, &prefix, limit).or_fail(&target.path)?;
            if !values {
                print_keys(&keys, json);
                return Ok(());
            }
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            let vals = db.kv.mget(&run, &refs).or_fail(&target.path)?;
            if json {
                let items: Vec<Json> = keys
                    .iter()
                    .zip(&vals)
                    .filter_map(|(k, v)| {
                        v.as_ref().map(|v| {
                            let mut j = versioned_json(v);
                            j["key"] = json!(k);
                            j
                        })
                    })
                    .collect();
                print_json(&Json::Array(items));
            } else {
                let mut t = table(&["key", "version", "value"]);
                for (k, v) in keys.iter().zip(&vals) {
                    if let Some(v) = v {
                        t.add_row(vec![
                            k.clone(),
                            v.version.as_u64().to_string(),
                            value_text(&v.value),
                        ]);
                    }
                }
                println!("{t}");
            }
            Ok(())
        }
        KvCmd::History { target, key, limit } => {
            let (db, run) = read_target(&target)?;
            let h = db
                .kv
                .history(&run, &key, limit, None)
                .or_fail(&target.path)?;
            if h.is_empty() {
                return Err(Failure::not_found(format!("key {key:?} has no history")));
            }
            print_versions(&h, json, "version");
            Ok(())
        }
    }
}

fn deleted(existed: bool, json: bool, what: impl FnOnce() -> String) -> CliResult {
    if !existed {
        return Err(Failure::not_found(what()));
    }
    done(json, "deleted")
}

fn json_cmd(c: JsonCmd, json: bool) -> CliResult {
    match c {
        JsonCmd::Get {
            target,
            key,
            jsonpath: path,
            at,
        } => {
            let (db, run) = read_target(&target)?;
            let what = || format!("document {key:?} does not exist");
            let v = match (path, at) {
                (Some(p), _) => {
                    if !db.json.exists(&run, &key).or_fail(&target.path)? {
                        return Err(Failure::not_found(what()));
                    }
                    let v = db.json.get_path(&run, &key, &p).or_fail(&target.path)?;
                    return print_versioned(v, json, || format!("{p} selects nothing in {key:?}"));
                }
                (None, Some(at)) => Some(
                    db.json
                        .get_at(&run, &key, Version::Txn(at))
                        .or_fail(&target.path)?,
                ),
                (None, None) => db.json.get_in(&run, &key).or_fail(&target.path)?,
            };
            print_versioned(v, json, what)
        }
        JsonCmd::Set {
            target,
            key,
            value,
            jsonpath: path,
        } => {
            let value = parse_value("VALUE", &value)?;
            let (db, run) = write_target(&target)?;
            let v = match path {
                Some(p) => db.json.set_path(&run, &key, &p, value),
                None => db.json.set_in(&run, &key, value),
            }
            .or_fail(&target.path)?;
            finish(db, &target.path)?;
            print_version(json, v);
            Ok(())
        }
        JsonCmd::Merge {
            target,
            key,
            patch,
            jsonpath: path,
        } => {
            let patch = parse_value("PATCH", &patch)?;
            let (db, run) = write_target(&target)?;
            let v = db
                .json
                .merge(&run, &key, &path, patch)
                .or_fail(&target.path)?;
            finish(db, &target.path)?;
            print_version(json, v);
            Ok(())
        }
        JsonCmd::Delete {
            target,
            key,
            jsonpath: path,
        } => {
            let (db, run) = existing_target(&target)?;
            match path {
                Some(p) => {
                    let n = db.json.delete_path(&run, &key, &p).or_fail(&target.path)?;
                    finish(db, &target.path)?;
                    if json {
                        print_json(&json!({"deleted": n}));
                    } else {
                        println!("{n} deleted");
                    }
                    Ok(())
                }
                None => {
                    let existed = db.json.delete(&run, &key).or_fail(&target.path)?;
                    finish(db, &target.path)?;
                    deleted(existed, json, || format!("document {key:?} does not exist"))
                }
            }
        }
        JsonCmd::List {
            target,
            prefix,
            limit,
        } => {
            let (db, run) = read_target(&target)?;
            let keys = db.json.keys(&run, &prefix, limit).or_fail(&target.path)?;
            print_keys(&keys, json);
            Ok(())
        }
        JsonCmd::History { target, key, limit } => {
            let (db, run) = read_target(&target)?;
            let h = db
                .json
                .history(&run, &key, limit, None)
                .or_fail(&target.path)?;
            if h.is_empty() {
                return Err(Failure::not_found(format!(
                    "document {key:?} has no history"
                )));
            }
            print_versions(&h, json, "version");
            Ok(())
        }
    }
}

fn events(c: EventsCmd, json: bool) -> CliResult {
    match c {
        EventsCmd::Append {
            target,
            stream,
            payload,
        } => {
            let payload = parse_value("PAYLOAD", &payload)?;
            let (db, run) = write_target(&target)?;
            let seq = db
                .events
                .append_in(&run, &stream, payload)
                .or_fail(&target.path)?;
            finish(db, &target.path)?;
            print_version(json, seq);
            Ok(())
        }
        EventsCmd::Read {
            target,
            stream,
            limit,
        } => {
            let (db, run) = read_target(&target)?;
            let evs = db
                .events
                .read_in(&run, &stream, limit)
                .or_fail(&target.path)?;
            print_versions(&evs, json, "seq");
            Ok(())
        }
        EventsCmd::Range {
            target,
            stream,
            start,
            end,
        } => {
            let (db, run) = read_target(&target)?;
            let evs = db
                .events
                .range(&run, &stream, start, end)
                .or_fail(&target.path)?;
            print_versions(&evs, json, "seq");
            Ok(())
        }
        EventsCmd::Tail {
            target,
            stream,
            lines,
            follow,
            interval_ms,
        } => tail(&target, &stream, lines, follow, interval_ms, json),
        EventsCmd::Streams { target } => {
            let (db, run) = read_target(&target)?;
            let names = db.events.streams(&run).or_fail(&target.path)?;
            if json {
                let items: Vec<Json> = names
                    .iter()
                    .map(|s| Ok(json!({"stream": s, "events": db.events.count(&run, s)?})))
                    .collect::<stratadb::Result<_>>()
                    .or_fail(&target.path)?;
                print_json(&Json::Array(items));
            } else {
                let mut t = table(&["stream", "events"]);
                for s in &names {
                    t.add_row(vec![
                        s.clone(),
                        db.events.count(&run, s).or_fail(&target.path)?.to_string(),
                    ]);
                }
                println!("{t}");
            }
            Ok(())
        }
    }
}

fn tail(
    t: &Target,
    stream: &str,
    lines: u64,
    follow: bool,
    interval_ms: u64,
    json: bool,
) -> CliResult {
    let print_line = |v: &Versioned<Value>| {
        if json {
            print_json(&versioned_json(v));
        } else {
            println!(
                "{:>8}  {}  {}",
                v.version.as_u64(),
                time_text(v.timestamp.as_micros()),
                value_text(&v.value)
            );
        }
    };
    let mut next = {
        let (db, run) = read_target(t)?;
        let count = db.events.count(&run, stream).or_fail(&t.path)?;
        let start = count.saturating_sub(lines) + 1;
        let evs = db
            .events
            .range(&run, stream, start, count)
            .or_fail(&t.path)?;
        if !follow && !json {
            print_versions(&evs, false, "seq");
        } else {
            evs.iter().for_each(print_line);
        }
        count + 1
    };
    if !follow {
        return Ok(());
    }
    loop {
        let _ = std::io::stdout().flush();
        std::thread::sleep(Duration::from_millis(interval_ms.max(10)));
        let (db, run) = read_target(t)?;
        let count = db.events.count(&run, stream).or_fail(&t.path)?;
        if count >= next {
            for v in db
                .events
                .range(&run, stream, next, count)
                .or_fail(&t.path)?
            {
                print_line(&v);
            }
            next = count + 1;
        }
    }
}

fn state(c: StateCmd, json: bool) -> CliResult {
    match c {
        StateCmd::Get { target, key } => {
            let (db, run) = read_target(&target)?;
            let v = db.state.get_in(&run, &key).or_fail(&target.path)?;
            let v = v.ok_or_else(|| Failure::not_found(format!("cell {key:?} does not exist")))?;
            if json {
                print_json(&versioned_json(&v));
            } else {
                println!("{}  (counter {})", value_json(&v.value), v.version.as_u64());
            }
            Ok(())
        }
        StateCmd::Set { target, key, value } => {
            let value = parse_value("VALUE", &value)?;
            let (db, run) = write_target(&target)?;
            let v = db.state.set_in(&run, &key, value).or_fail(&target.path)?;
            finish(db, &target.path)?;
            print_version(json, v);
            Ok(())
        }
        StateCmd::Cas {
            target,
            key,
            value,
            expect,
            expect_missing,
        } => {
            let value = parse_value("VALUE", &value)?;
            let expected = if expect_missing { None } else { expect };
            let (db, run) = write_target(&target)?;
            let r = db
                .state
                .cas(&run, &key, expected, value)
                .or_fail(&target.path)?;
            let current = db.state.get_in(&run, &key).or_fail(&target.path)?;
            finish(db, &target.path)?;
            match r {
                Some(v) => {
                    print_version(json, v);
                    Ok(())
                }
                None => Err(Failure::new(
                    OTHER,
                    format!(
                        "cas refused: cell {key:?} has counter {} (expected {})",
                        current.map_or("none (it does not exist)".to_owned(), |c| c
                            .version
                            .as_u64()
                            .to_string()),
                        expected.map_or("none".to_owned(), |e| e.to_string())
                    ),
                )),
            }
        }
        StateCmd::Delete { target, key } => {
            let (db, run) = existing_target(&target)?;
            let existed = db.state.delete(&run, &key).or_fail(&target.path)?;
            finish(db, &target.path)?;
            deleted(existed, json, || format!("cell {key:?} does not exist"))
        }
        StateCmd::History { target, key, limit } => {
            let (db, run) = read_target(&target)?;
            let h = db.state.history(&run, &key, limit).or_fail(&target.path)?;
            if h.is_empty() {
                return Err(Failure::not_found(format!("cell {key:?} has no history")));
            }
            print_versions(&h, json, "counter");
            Ok(())
        }
    }
}

fn vectors(c: VectorsCmd, json: bool) -> CliResult {
    match c {
        VectorsCmd::Collections { target } => {
            let (db, run) = read_target(&target)?;
            let cols = db.vectors.list_collections(&run).or_fail(&target.path)?;
            if json {
                let items: Vec<Json> = cols
                    .iter()
                    .map(|c| {
                        json!({"name": c.name, "dimension": c.dimension,
                                    "metric": c.metric.name(), "count": c.count,
                                    "created_at": c.created_at.as_micros(),
                                    "quantization": c.quantization.name()})
                    })
                    .collect();
                print_json(&Json::Array(items));
            } else {
                let mut t = table(&["collection", "dimension", "metric", "vectors", "created"]);
                for c in &cols {
                    t.add_row(vec![
                        c.name.clone(),
                        c.dimension.to_string(),
                        c.metric.name().to_owned(),
                        c.count.to_string(),
                        time_text(c.created_at.as_micros()),
                    ]);
                }
                println!("{t}");
            }
            Ok(())
        }
        VectorsCmd::Create {
            target,
            collection,
            dimension,
            metric,
            quantization,
        } => {
            let metric = parse_metric(&metric)?;
            let options =
                CollectionOptions::default().quantization(parse_quantization(&quantization)?);
            let (db, run) = write_target(&target)?;
            let v = db
                .vectors
                .create_collection_with(&run, &collection, dimension, metric, options)
                .or_fail(&target.path)?;
            db.close().or_fail(&target.path)?;
            print_version(json, v);
            Ok(())
        }
        VectorsCmd::Upsert {
            target,
            collection,
            key,
            vector,
            metadata,
        } => {
            let vector = parse_vector("VECTOR", &vector)?;
            let metadata = metadata
                .as_deref()
                .map(|m| parse_value("metadata", m))
                .transpose()?;
            let (db, run) = write_target(&target)?;
            let v = db
                .vectors
                .upsert(&run, &collection, &key, &vector, metadata)
                .or_fail(&target.path)?;
            finish(db, &target.path)?;
            print_version(json, v);
            Ok(())
        }
        VectorsCmd::Get {
            target,
            collection,
            key,
        } => {
            let (db, run) = read_target(&target)?;
            let v = db
                .vectors
                .get(&run, &collection, &key)
                .or_fail(&target.path)?;
            let v = v.ok_or_else(|| {
                Failure::not_found(format!("vector {key:?} does not exist in {collection:?}"))
            })?;
            let j = json!({
                "key": v.value.key,
                "vector": v.value.vector,
                "metadata": v.value.metadata.as_ref().map(value_json),
                "version": v.version.as_u64(),
                "timestamp": v.timestamp.as_micros(),
            });
            if json {
                print_json(&j);
            } else {
                println!("{}", serde_json::to_string_pretty(&j).unwrap_or_default());
            }
            Ok(())
        }
        VectorsCmd::Delete {
            target,
            collection,
            key,
        } => {
            let (db, run) = existing_target(&target)?;
            let existed = db
                .vectors
                .delete(&run, &collection, &key)
                .or_fail(&target.path)?;
            finish(db, &target.path)?;
            deleted(existed, json, || {
                format!("vector {key:?} does not exist in {collection:?}")
            })
        }
        VectorsCmd::Search {
            target,
            collection,
            query,
            query_file,
            k,
            filter,
            with_vectors,
        } => {
            let query = match (query, query_file) {
                (Some(q), _) => parse_vector("--query", &q)?,
                (None, Some(f)) => {
                    let text = read_text(&f)?;
                    parse_vector(&format!("the query in {}", f.display()), &text)?
                }
                (None, None) => return Err(Failure::usage("give --query or --query-file")),
            };
            let filter: Option<SearchFilter> = filter
                .as_deref()
                .map(|f| {
                    let j = parse_json("--filter", f)?;
                    serde_json::from_value(j).map_err(|e| {
                        Failure::usage(format!(
                            "--filter is not a filter: {e} (see `strata vectors search --help`)"
                        ))
                    })
                })
                .transpose()?;
            let (db, run) = read_target(&target)?;
            let hits = if with_vectors {
                db.vectors
                    .search_with_vectors(&run, &collection, &query, k, filter)
            } else {
                db.vectors.search(&run, &collection, &query, k, filter)
            }
            .or_fail(&target.path)?;
            if json {
                let items: Vec<Json> = hits
                    .iter()
                    .map(|h| {
                        json!({"key": h.key, "score": h.score, "vector": h.vector,
                                    "metadata": h.metadata.as_ref().map(value_json)})
                    })
                    .collect();
                print_json(&Json::Array(items));
            } else {
                let mut t = table(&["key", "score", "metadata"]);
                for h in &hits {
                    t.add_row(vec![
                        h.key.clone(),
                        format!("{:.6}", h.score),
                        h.metadata.as_ref().map(value_text).unwrap_or_default(),
                    ]);
                }
                println!("{t}");
            }
            Ok(())
        }
    }
}

fn read_text(f: &Path) -> CliResult<String> {
    let mut s = String::new();
    let r = if f == Path::new("-") {
        std::io::stdin().read_to_string(&mut s)
    } else {
        File::open(f).and_then(|mut file| file.read_to_string(&mut s))
    };
    r.map_err(|e| Failure::not_found(format!("cannot read {}: {e}", f.display())))?;
    Ok(s)
}

// ---------------------------------------------------------------------------------
// Export, import, verify

fn progress_bar(total: Option<u64>, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(t) => ProgressBar::new(t),
        None => ProgressBar::new_spinner(),
    };
    let template = if total.is_some() {
        format!("{what} {{bar:40}} {{pos}}/{{len}} {{per_sec}} eta {{eta}}")
    } else {
        format!("{what} {{spinner}} {{pos}} {{per_sec}}")
    };
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}

fn export(path: &Path, run: Option<&str>, output: Option<&Path>, json: bool) -> CliResult {
    let db = open_for_reading(path)?;
    let run = run.map(|r| run_id(&db, path, r)).transpose()?;
    let total = if std::io::stderr().is_terminal() {
        Some(db.info().or_fail(path)?.keys)
    } else {
        None
    };
    let bar = progress_bar(total, "exporting keys");
    let mut on_progress = |n: u64| {
        if n.is_multiple_of(1024) {
            bar.set_position(n);
        }
    };
    let report = match output {
        Some(f) => {
            let file = File::create(f)
                .map_err(|e| Failure::new(OTHER, format!("cannot create {}: {e}", f.display())))?;
            db.export(file, run, &mut on_progress)
        }
        None => db.export(std::io::stdout().lock(), run, &mut on_progress),
    }
    .map_err(|e| Failure::from_db(e, Some(path)))?;
    bar.finish_and_clear();
    let summary = json!({"version": report.version, "keys": report.records,
                         "versions": report.entries, "bytes": report.bytes});
    let text = format!(
        "exported {} keys ({} versions, {}) at version {}",
        report.records,
        report.entries,
        bytes_text(report.bytes),
        report.version
    );
    match (output.is_some(), json) {
        (true, true) => print_json(&summary),
        (true, false) => println!("{text}"),
        (false, true) => eprintln!("{summary}"),
        (false, false) => eprintln!("{text}"),
    }
    Ok(())
}

/// Counts bytes read, for the progress bar.
struct Counted<R> {
    inner: R,
    bar: ProgressBar,
    read: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        self.bar.set_position(self.read);
        Ok(n)
    }
}

fn import(path: &Path, input: Option<&Path>, json: bool) -> CliResult {
    if path.exists() && !path.is_dir() {
        return Err(Failure::usage(format!(
            "{} exists and is not a directory",
            path.display()
        )));
    }
    let (reader, total): (Box<dyn Read>, Option<u64>) = match input {
        Some(f) => {
            let file = File::open(f)
                .map_err(|e| Failure::not_found(format!("cannot open {}: {e}", f.display())))?;
            let len = file.metadata().map(|m| m.len()).ok();
            (Box::new(file), len)
        }
        None => (Box::new(std::io::stdin().lock()), None),
    };
    let bar = progress_bar(total, "importing bytes");
    let counted = Counted {
        inner: reader,
        bar: bar.clone(),
        read: 0,
    };
    let buffered: Box<dyn BufRead> = Box::new(BufReader::with_capacity(1 << 16, counted));
    let report = stratadb::import(path, buffered).map_err(|e| Failure::from_db(e, Some(path)))?;
    bar.finish_and_clear();
    if !report.exact {
        note(format!(
            "{} already held data, so the imported versions were committed anew: they have \
             new version numbers and timestamps (an exact restore needs an empty directory)",
            path.display()
        ));
    }
    if json {
        print_json(&json!({"exact": report.exact, "keys": report.records,
                           "versions": report.entries, "version": report.version}));
    } else {
        println!(
            "imported {} keys ({} versions){}; database at version {}",
            report.records,
            report.entries,
            if report.exact {
                ", restored exactly"
            } else {
                ""
            },
            report.version
        );
    }
    Ok(())
}

fn dir_size(path: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![path.to_path_buf()];
    while let Some(d) = pending.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => pending.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

fn verify(path: &Path, json: bool) -> CliResult {
    let total = std::io::stderr().is_terminal().then(|| dir_size(path));
    let bar = progress_bar(total, "verifying bytes");
    let started = std::time::Instant::now();
    let report = stratadb::verify(path, |n| bar.set_position(n))
        .map_err(|e| Failure::from_db(e, Some(path)))?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    if json {
        let files: Vec<Json> = report
            .files
            .iter()
            .map(|f| {
                json!({"name": f.name, "kind": f.kind, "bytes": f.bytes,
                            "summary": f.summary, "problem": f.problem})
            })
            .collect();
        print_json(
            &json!({"ok": report.is_ok(), "files": files, "problems": report.problems,
                           "bytes_checked": report.bytes_checked,
                           "last_version": report.last_version, "seconds": secs}),
        );
    } else {
        let mut t = table(&["file", "kind", "size", "status"]);
        for f in &report.files {
            let status = match &f.problem {
                None => format!("{} {}", paint("ok", "32"), f.summary),
                Some(p) => format!("{} {p}", paint("DAMAGED", "31;1")),
            };
            t.add_row(vec![
                f.name.clone(),
                f.kind.to_owned(),
                bytes_text(f.bytes),
                status,
            ]);
        }
        println!("{t}");
        for p in &report.problems {
            println!("{} {p}", paint("DAMAGED", "31;1"));
        }
        let verdict = if report.is_ok() {
            paint("database is sound", "32;1")
        } else {
            paint("database is damaged", "31;1")
        };
        println!(
            "{verdict}: {} checked in {secs:.2} s, newest version {}",
            bytes_text(report.bytes_checked),
            report.last_version
        );
    }
    if report.is_ok() {
        Ok(())
    } else {
        let first = report
            .files
            .iter()
            .filter_map(|f| f.problem.clone())
            .chain(report.problems.iter().cloned())
            .next()
            .unwrap_or_default();
        Err(Failure::new(DAMAGED, format!("damage found: {first}")))
    }
}
