//! The `strata` binary end to end: every subcommand, bad input and exit codes, the
//! export/import round trip and verify on damaged files.
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;
use predicates::str::contains;

fn strata() -> Command {
    let mut c = Command::cargo_bin("strata").unwrap();
    c.env("NO_COLOR", "1").env("RUST_BACKTRACE", "0");
    c
}

/// Runs `strata args...` and returns stdout, asserting success.
fn ok(args: &[&str]) -> String {
    let out = strata().args(args).assert().success();
    String::from_utf8(out.get_output().stdout.clone()).unwrap()
}

fn db_in(dir: &tempfile::TempDir) -> String {
    dir.path().join("db").to_string_lossy().into_owned()
}

#[test]
fn help_has_examples_and_exit_codes() {
    strata()
        .arg("--help")
        .assert()
        .success()
        .stdout(contains("Exit codes:").and(contains("4  the database is in use")));
    for sub in [
        vec!["info"],
        vec!["runs", "list"],
        vec!["runs", "create"],
        vec!["runs", "fork"],
        vec!["runs", "purge"],
        vec!["runs", "diff"],
        vec!["kv", "get"],
        vec!["kv", "set"],
        vec!["json", "merge"],
        vec!["events", "tail"],
        vec!["state", "cas"],
        vec!["vectors", "search"],
        vec!["export"],
        vec!["import"],
        vec!["verify"],
        vec!["checkpoint"],
        vec!["compact"],
    ] {
        let mut args = sub.clone();
        args.push("--help");
        strata()
            .args(&args)
            .assert()
            .success()
            .stdout(contains("Examples:"));
    }
    strata().arg("nonsense").assert().code(2);
    strata().args(["kv", "get"]).assert().code(2);
}

#[test]
fn kv_commands() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    assert_eq!(ok(&["kv", "set", &db, "a", "1"]).trim(), "txn 2");
    ok(&["kv", "set", &db, "a", r#"{"x": [1, 2]}"#]);
    ok(&["kv", "set", &db, "b", r#""text""#]);
    let got = ok(&["--json", "kv", "get", &db, "a"]);
    let j: serde_json::Value = serde_json::from_str(&got).unwrap();
    assert_eq!(j["value"], serde_json::json!({"x": [1, 2]}));
    assert_eq!(j["version"], 3);
    assert_eq!(ok(&["kv", "get", &db, "a", "--at", "2"]).trim(), "1");
    assert_eq!(ok(&["kv", "list", &db]), "a\nb\n");
    assert!(ok(&["kv", "list", &db, "--values", "--prefix", "b"]).contains("\"text\""));
    let h: serde_json::Value =
        serde_json::from_str(&ok(&["--json", "kv", "history", &db, "a"])).unwrap();
    assert_eq!(h.as_array().unwrap().len(), 2);
    ok(&["kv", "delete", &db, "a"]);
    strata()
        .args(["kv", "get", &db, "a"])
        .assert()
        .code(1)
        .stderr(contains("does not exist"));
    strata().args(["kv", "delete", &db, "a"]).assert().code(1);
    // Bad JSON is a usage error with a hint.
    strata()
        .args(["kv", "set", &db, "c", "hello"])
        .assert()
        .code(2)
        .stderr(contains("quote it"));
    // Unknown run, malformed run id.
    strata()
        .args([
            "kv",
            "get",
            &db,
            "a",
            "--run",
            "3f2a1c9e-0000-0000-0000-000000000000",
        ])
        .assert()
        .code(1)
        .stderr(contains("run 3f2a1c9e"));
    strata()
        .args(["kv", "get", &db, "a", "--run", "nope"])
        .assert()
        .code(2);
    // A path without a database: read commands do not create one.
    let missing = dir.path().join("missing").to_string_lossy().into_owned();
    strata()
        .args(["kv", "get", &missing, "a"])
        .assert()
        .code(1)
        .stderr(contains("no database"));
    assert!(!Path::new(&missing).exists());
}

#[test]
fn json_commands() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    ok(&[
        "json",
        "set",
        &db,
        "d",
        r#"{"a": {"b": 1}, "tags": ["x", "y"]}"#,
    ]);
    assert_eq!(
        ok(&["json", "get", &db, "d", "--path", "$.a.b"]).trim(),
        "1"
    );
    ok(&["json", "set", &db, "d", "2", "--path", "$.a.c"]);
    ok(&["json", "merge", &db, "d", r#"{"z": true, "tags": null}"#]);
    let doc: serde_json::Value =
        serde_json::from_str(&ok(&["--json", "json", "get", &db, "d"])).unwrap();
    assert_eq!(
        doc["value"],
        serde_json::json!({"a": {"b": 1, "c": 2}, "z": true})
    );
    assert!(ok(&["json", "delete", &db, "d", "--path", "$.z"]).contains("1 deleted"));
    assert_eq!(ok(&["json", "list", &db]), "d\n");
    assert!(ok(&["json", "history", &db, "d"]).contains("version"));
    assert!(ok(&["json", "get", &db, "d", "--at", "2"]).contains("tags"));
    strata()
        .args(["json", "get", &db, "d", "--path", "$$bad"])
        .assert()
        .code(2)
        .stderr(contains("invalid path"));
    strata()
        .args(["json", "get", &db, "d", "--path", "$.nothing"])
        .assert()
        .code(1);
    strata()
        .args(["json", "merge", &db, "d", "{bad"])
        .assert()
        .code(2);
    ok(&["json", "delete", &db, "d"]);
    strata().args(["json", "get", &db, "d"]).assert().code(1);
}

#[test]
fn events_and_state_commands() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    for i in 1..=5 {
        let out = ok(&[
            "events",
            "append",
            &db,
            "trace",
            &format!(r#"{{"step": {i}}}"#),
        ]);
        assert_eq!(out.trim(), format!("sequence {i}"));
    }
    strata()
        .args(["events", "append", &db, "trace", "[1]"])
        .assert()
        .code(2)
        .stderr(contains("wrong type"));
    let read: serde_json::Value = serde_json::from_str(&ok(&[
        "--json", "events", "read", &db, "trace", "--limit", "2",
    ]))
    .unwrap();
    assert_eq!(read.as_array().unwrap().len(), 2);
    let range: serde_json::Value =
        serde_json::from_str(&ok(&["--json", "events", "range", &db, "trace", "2", "4"])).unwrap();
    assert_eq!(range[0]["version"], 2);
    assert_eq!(range.as_array().unwrap().len(), 3);
    let tail = ok(&["--json", "events", "tail", &db, "trace", "-n", "2"]);
    let lines: Vec<&str> = tail.lines().collect();
    assert_eq!(lines.len(), 2, "{tail}");
    assert!(lines[1].contains(r#""step":5"#));
    assert!(ok(&["events", "streams", &db]).contains("trace"));

    assert_eq!(
        ok(&["state", "set", &db, "st", r#""a""#]).trim(),
        "counter 1"
    );
    assert_eq!(
        ok(&["state", "cas", &db, "st", r#""b""#, "--expect", "1"]).trim(),
        "counter 2"
    );
    strata()
        .args(["state", "cas", &db, "st", r#""c""#, "--expect", "1"])
        .assert()
        .code(5)
        .stderr(contains("counter 2"));
    ok(&["state", "cas", &db, "lock", "1", "--expect-missing"]);
    assert!(ok(&["state", "get", &db, "st"]).contains("\"b\""));
    assert!(ok(&["state", "history", &db, "st"]).contains("counter"));
    ok(&["state", "delete", &db, "st"]);
    strata().args(["state", "get", &db, "st"]).assert().code(1);
}

#[test]
fn runs_commands() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    let id = ok(&[
        "runs",
        "create",
        &db,
        "--metadata",
        r#"{"agent": "planner"}"#,
    ]);
    let id = id.trim();
    ok(&["kv", "set", &db, "k", "1", "--run", id]);
    assert_eq!(ok(&["kv", "get", &db, "k", "--run", id]).trim(), "1");
    assert!(ok(&["runs", "show", &db, id]).contains("planner"));
    ok(&["runs", "pause", &db, id]);
    ok(&["runs", "resume", &db, id]);
    assert!(ok(&["runs", "close", &db, id]).contains("Completed"));
    // A completed run accepts no writes.
    strata()
        .args(["kv", "set", &db, "k", "2", "--run", id])
        .assert()
        .code(5);
    ok(&["runs", "archive", &db, id]);
    let other = ok(&["runs", "create", &db]);
    ok(&[
        "runs",
        "fail",
        &db,
        other.trim(),
        "--error",
        "tool timed out",
    ]);
    let third = ok(&["runs", "create", &db]);
    ok(&["runs", "cancel", &db, third.trim()]);
    let list: serde_json::Value =
        serde_json::from_str(&ok(&["--json", "runs", "list", &db])).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 4);
    let failed: serde_json::Value =
        serde_json::from_str(&ok(&["--json", "runs", "list", &db, "--state", "failed"])).unwrap();
    assert_eq!(failed[0]["error"], "tool timed out");
    strata()
        .args(["runs", "list", &db, "--state", "sleepy"])
        .assert()
        .code(2);
    strata()
        .args(["runs", "close", &db, "default"])
        .assert()
        .code(5);
    strata()
        .args(["runs", "show", &db, "3f2a1c9e-0000-0000-0000-000000000000"])
        .assert()
        .code(1);
}

#[test]
fn runs_fork_command() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    let v1: serde_json::Value =
        serde_json::from_str(&ok(&["--json", "kv", "set", &db, "plan", "\"draft\""])).unwrap();
    let v1 = v1["version"].as_u64().unwrap().to_string();
    ok(&["kv", "set", &db, "plan", "\"final\""]);
    // A fork of the default run at the first version sees the draft; writing to it
    // leaves the default run alone.
    let fork: serde_json::Value = serde_json::from_str(&ok(&[
        "--json", "runs", "fork", &db, "default", "--at", &v1,
    ]))
    .unwrap();
    let id = fork["run_id"].as_str().unwrap().to_owned();
    assert_eq!(fork["at"].as_u64().unwrap().to_string(), v1);
    assert_eq!(
        ok(&["kv", "get", &db, "plan", "--run", &id]).trim(),
        "\"draft\""
    );
    ok(&["kv", "set", &db, "plan", "\"other\"", "--run", &id]);
    assert_eq!(ok(&["kv", "get", &db, "plan"]).trim(), "\"final\"");
    let show: serde_json::Value =
        serde_json::from_str(&ok(&["--json", "runs", "show", &db, &id])).unwrap();
    assert_eq!(
        show["forked_from"]["version"].as_u64().unwrap().to_string(),
        v1
    );
    // A fork of a fork, at its current state.
    let grandchild = ok(&["runs", "fork", &db, &id]);
    assert_eq!(
        ok(&["kv", "get", &db, "plan", "--run", grandchild.trim()]).trim(),
        "\"other\""
    );
    // What the fork changed against the default run, and across versions.
    let diff = ok(&["runs", "diff", &db, &id, "--against", "default"]);
    assert!(diff.contains("changed") && diff.contains("plan"), "{diff}");
    let lines: Vec<serde_json::Value> =
        ok(&["--json", "runs", "diff", &db, "default", "--from", &v1])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["kind"], "changed");
    assert_eq!(lines[0]["before"]["value"], "draft");
    assert_eq!(lines[0]["after"]["value"], "final");
    strata().args(["runs", "diff", &db, &id]).assert().code(2);
    // Purging the fork with its own fork.
    ok(&["runs", "purge", &db, &id, "--with-forks"]);
    strata()
        .args(["kv", "get", &db, "plan", "--run", &id])
        .assert()
        .failure();
    strata()
        .args(["kv", "get", &db, "plan", "--run", grandchild.trim()])
        .assert()
        .failure();
    assert_eq!(ok(&["kv", "get", &db, "plan"]).trim(), "\"final\"");
    ok(&["compact", &db]);
    // Bad input: an unknown run, a version in the future.
    strata()
        .args(["runs", "fork", &db, "3f2a1c9e-0000-0000-0000-000000000000"])
        .assert()
        .code(1);
    strata()
        .args(["runs", "fork", &db, "default", "--at", "999999"])
        .assert()
        .failure();
}

#[test]
fn vectors_commands() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    ok(&["vectors", "create", &db, "docs", "--dimension", "3"]);
    ok(&[
        "vectors",
        "create",
        &db,
        "q8",
        "--dimension",
        "3",
        "--quantization",
        "int8",
    ]);
    strata()
        .args([
            "vectors",
            "create",
            &db,
            "q4",
            "--dimension",
            "3",
            "--quantization",
            "int4",
        ])
        .assert()
        .code(2)
        .stderr(contains("quantization"));
    let cols: serde_json::Value =
        serde_json::from_str(&ok(&["--json", "vectors", "collections", &db])).unwrap();
    let by_name = |n: &str| {
        cols.as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == n)
            .cloned()
    };
    assert_eq!(by_name("docs").unwrap()["quantization"], "none");
    assert_eq!(by_name("q8").unwrap()["quantization"], "int8");
    assert!(by_name("q4").is_none());
    ok(&[
        "vectors",
        "upsert",
        &db,
        "docs",
        "v1",
        "[1, 0, 0]",
        "--metadata",
        r#"{"tag": "a"}"#,
    ]);
    ok(&[
        "vectors",
        "upsert",
        &db,
        "docs",
        "v2",
        "[0, 1, 0]",
        "--metadata",
        r#"{"tag": "b"}"#,
    ]);
    strata()
        .args(["vectors", "upsert", &db, "docs", "v3", "[1, 2]"])
        .assert()
        .code(2)
        .stderr(contains("dimension"));
    strata()
        .args(["vectors", "upsert", &db, "docs", "v3", r#"["x"]"#])
        .assert()
        .code(2);
    let hits: serde_json::Value = serde_json::from_str(&ok(&[
        "--json",
        "vectors",
        "search",
        &db,
        "docs",
        "--query",
        "[0.9, 0.1, 0]",
        "-k",
        "1",
    ]))
    .unwrap();
    assert_eq!(hits[0]["key"], "v1");
    let q = dir.path().join("q.json");
    std::fs::write(&q, "[0, 1, 0]").unwrap();
    let filtered: serde_json::Value = serde_json::from_str(&ok(&[
        "--json",
        "vectors",
        "search",
        &db,
        "docs",
        "--query-file",
        &q.to_string_lossy(),
        "--filter",
        r#"{"Eq": ["tag", "a"]}"#,
    ]))
    .unwrap();
    assert_eq!(filtered.as_array().unwrap().len(), 1);
    assert_eq!(filtered[0]["key"], "v1");
    strata()
        .args([
            "vectors",
            "search",
            &db,
            "docs",
            "--query",
            "[1,0,0]",
            "--filter",
            r#"{"Bogus": 1}"#,
        ])
        .assert()
        .code(2);
    strata()
        .args(["vectors", "search", &db, "docs", "--query", "[1,0]"])
        .assert()
        .code(2);
    let v: serde_json::Value =
        serde_json::from_str(&ok(&["--json", "vectors", "get", &db, "docs", "v2"])).unwrap();
    assert_eq!(v["vector"], serde_json::json!([0.0, 1.0, 0.0]));
    assert!(ok(&["vectors", "collections", &db]).contains("docs"));
    ok(&["vectors", "delete", &db, "docs", "v2"]);
    strata()
        .args(["vectors", "get", &db, "docs", "v2"])
        .assert()
        .code(1);
    strata()
        .args(["vectors", "get", &db, "nope", "v2"])
        .assert()
        .code(1);
}

/// A database with every primitive, history, deletions and runs in several states.
fn populated(dir: &tempfile::TempDir) -> String {
    let db = db_in(dir);
    for i in 0..3 {
        ok(&["kv", "set", &db, "counter", &i.to_string()]);
    }
    ok(&["kv", "set", &db, "gone", "1"]);
    ok(&["kv", "delete", &db, "gone"]);
    ok(&["json", "set", &db, "doc", r#"{"b": 1.5, "a": [null, "x"]}"#]);
    ok(&["events", "append", &db, "trace", r#"{"s": 1}"#]);
    ok(&["events", "append", &db, "trace", r#"{"s": 2}"#]);
    ok(&["state", "set", &db, "st", r#""a""#]);
    ok(&["state", "set", &db, "st", r#""b""#]);
    ok(&[
        "vectors",
        "create",
        &db,
        "docs",
        "--dimension",
        "2",
        "--metric",
        "euclidean",
    ]);
    ok(&["vectors", "upsert", &db, "docs", "v", "[0.1, 0.33333334]"]);
    let run = ok(&["runs", "create", &db, "--metadata", r#"{"n": 1}"#]);
    ok(&["kv", "set", &db, "k", r#""in run""#, "--run", run.trim()]);
    ok(&["runs", "close", &db, run.trim()]);
    db
}

#[test]
fn export_import_export_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let db = populated(&dir);
    let first = ok(&["export", &db]);
    assert!(first.starts_with(r#"{"stratadb_export":1"#));
    let restored = dir.path().join("restored").to_string_lossy().into_owned();
    strata()
        .args(["import", &restored])
        .write_stdin(first.clone())
        .assert()
        .success()
        .stdout(contains("restored exactly"));
    let second = ok(&["export", &restored]);
    assert_eq!(first, second);
    // The same through files, and with --json summaries.
    let dump = dir.path().join("dump.jsonl");
    let summary = ok(&["--json", "export", &db, "-o", &dump.to_string_lossy()]);
    assert!(summary.contains("\"keys\""));
    let again = dir.path().join("again").to_string_lossy().into_owned();
    ok(&["import", &again, "-i", &dump.to_string_lossy()]);
    assert_eq!(ok(&["export", &again]), first);
    // Into a database with data: new versions, and a note on stderr.
    strata()
        .args(["import", &restored])
        .write_stdin(first.clone())
        .assert()
        .success()
        .stderr(contains("new version numbers"));
    // One run only.
    let runs: serde_json::Value = serde_json::from_str(&ok(&[
        "--json",
        "runs",
        "list",
        &db,
        "--state",
        "completed",
    ]))
    .unwrap();
    let run = runs[0]["run_id"].as_str().unwrap();
    let part = ok(&["export", &db, "--run", run]);
    assert_eq!(part.lines().count(), 4, "{part}"); // header, run record, key, trailer
}

#[test]
fn import_refuses_bad_dumps() {
    let dir = tempfile::tempdir().unwrap();
    let target = db_in(&dir);
    strata()
        .args(["import", &target])
        .write_stdin("this is not a dump\n")
        .assert()
        .code(2)
        .stderr(contains("line 1"));
    strata()
        .args(["import", &target])
        .write_stdin(
            "{\"stratadb_export\":1,\"version\":3}\n{\"run\":\"00000000-0000-0000-0000-000000000000\",\"primitive\":\"kv\",\"key\":\"a\",\"history\":[{\"v\":2,\"ts\":1,\"value\":1}]}\n",
        )
        .assert()
        .code(2)
        .stderr(contains("truncated"));
    strata()
        .args(["import", &target, "-i", "/definitely/not/here.jsonl"])
        .assert()
        .code(1);
}

fn files_ending(dir: &str, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    v.sort();
    v
}

fn flip(path: &Path, offset: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[offset] ^= 0x5a;
    std::fs::write(path, b).unwrap();
}

#[test]
fn verify_checkpoint_compact_and_damage() {
    let dir = tempfile::tempdir().unwrap();
    let db = populated(&dir);
    strata()
        .args(["verify", &db])
        .assert()
        .success()
        .stdout(contains("database is sound"));
    // Enough vectors for the collection to get an index file (more than
    // `MAX_UNPERSISTED_VECTORS`), written by a close, to damage below.
    {
        let s = stratadb::Strata::open(&db).unwrap();
        let run = stratadb::RunId::DEFAULT;
        for i in 0..33 {
            s.vectors
                .upsert(
                    &run,
                    "docs",
                    &format!("f{i}"),
                    &[i as f32 / 10.0, 1.0],
                    None,
                )
                .unwrap();
        }
        s.close().unwrap();
    }
    ok(&["checkpoint", &db]);
    ok(&["kv", "set", &db, "after", "1"]);
    ok(&["kv", "set", &db, "after", "2"]);
    assert!(ok(&["compact", &db]).contains("checkpoint written"));
    ok(&["kv", "set", &db, "later", "1"]);
    ok(&["kv", "set", &db, "later", "2"]);
    let report: serde_json::Value = serde_json::from_str(&ok(&["--json", "verify", &db])).unwrap();
    assert_eq!(report["ok"], true);

    // A damaged record in the middle of the log: exit 3, file and offset named.
    // (In log format 2 the segment header is 48 bytes and a frame header 32.)
    let log = files_ending(&db, ".log").pop().unwrap();
    flip(&log, 48 + 32 + 2);
    strata()
        .args(["verify", &db])
        .assert()
        .code(3)
        .stdout(contains("DAMAGED"))
        .stderr(contains(".log").and(contains("offset 48")));
    // Opening it fails too, as damaged.
    strata().args(["kv", "get", &db, "later"]).assert().code(3);
    flip(&log, 48 + 32 + 2);

    // A damaged block of a sorted run.
    let snap = files_ending(&db, ".sst").pop().unwrap();
    flip(&snap, 40);
    let out = strata().args(["--json", "verify", &db]).assert().code(3);
    let report: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let bad: Vec<&serde_json::Value> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| !f["problem"].is_null())
        .collect();
    assert_eq!(bad.len(), 1);
    assert!(bad[0]["name"].as_str().unwrap().ends_with(".sst"));
    assert!(bad[0]["problem"].as_str().unwrap().contains("offset"));
    flip(&snap, 40);

    // A damaged vector index file is reported too.
    let vidx = Path::new(&db).join("vectors");
    let run_dir = std::fs::read_dir(&vidx)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let file = std::fs::read_dir(&run_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let len = std::fs::metadata(&file).unwrap().len() as usize;
    flip(&file, len - 1);
    strata()
        .args(["verify", &db])
        .assert()
        .code(3)
        .stdout(contains("vector-index"));
    flip(&file, len - 1);
    strata().args(["verify", &db]).assert().success();

    strata()
        .args(["verify", &dir.path().join("nothing").to_string_lossy()])
        .assert()
        .code(1);
}

#[test]
fn info_in_human_and_json_forms() {
    let dir = tempfile::tempdir().unwrap();
    let db = populated(&dir);
    let human = ok(&["info", &db]);
    assert!(human.contains("durability") && human.contains("kv") && human.contains("wal-"));
    let j: serde_json::Value = serde_json::from_str(&ok(&["--json", "info", &db])).unwrap();
    assert_eq!(j["primitives"]["kv"]["live_keys"], 2);
    assert_eq!(j["primitives"]["kv"]["deleted_keys"], 1);
    assert_eq!(j["runs_by_state"]["Completed"], 1);
    strata()
        .args(["info", "/definitely/not/here"])
        .assert()
        .code(1);
}

#[cfg(unix)]
#[test]
fn a_locked_database_names_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_in(&dir);
    ok(&["kv", "set", &db, "a", "1"]);
    // This test process holds the database open.
    let held = stratadb::Strata::open(&db).unwrap();
    let pid = std::process::id().to_string();
    // A write is refused, naming the holder.
    strata()
        .args(["kv", "set", &db, "b", "2"])
        .assert()
        .code(4)
        .stderr(contains("in use by process").and(contains(pid.as_str())));
    // A read opens it read-only beside the holder, and says so.
    held.kv.set("live", 7i64).unwrap();
    held.flush().unwrap();
    strata()
        .args(["kv", "get", &db, "a"])
        .assert()
        .success()
        .stdout(contains("1"))
        .stderr(contains("read-only"));
    let out = ok(&["--json", "info", &db]);
    assert!(out.contains("\"kv\""), "{out}");
    // verify does not open the database, so it works while another process has it.
    strata().args(["verify", &db]).assert().success();
    drop(held);
    ok(&["kv", "get", &db, "a"]);
}
