//! Time travel by time (`db.at_time(ts)`, `AtVersion::time`) and the timeline of commit
//! times underneath it (`TIMELINE`, `Manifest::timeline_len`): exact answers at, just
//! after and just before every commit, commits sharing a timestamp, times in the future,
//! durability across checkpoints, compaction, log replay, read-only opens and SIGKILL,
//! time-to-live expiries judged at a view's own time, databases older than the
//! timeline, and a damaged timeline file.
use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_storage::manifest::Manifest;
use strata_storage::vfs::{OsVfs, Vfs};
use stratadb::prelude::*;
use stratadb::AtVersion;

const MS: Duration = Duration::from_millis(1);

fn micros(n: u64) -> Duration {
    Duration::from_micros(n)
}

fn plus(ts: Timestamp, d: Duration) -> Timestamp {
    Timestamp::from_micros(ts.as_micros() + d.as_micros() as u64)
}

fn minus(ts: Timestamp, d: Duration) -> Timestamp {
    ts.saturating_sub(d)
}

fn txn(v: Version) -> u64 {
    assert!(v.is_txn(), "{v} is not a commit version");
    v.as_u64()
}

/// The database's current (visible) version.
fn current(db: &Strata) -> u64 {
    db.info().unwrap().version
}

fn at_time(db: &Strata, ts: Timestamp) -> AtVersion {
    db.at_time(ts)
        .unwrap_or_else(|e| panic!("at_time({ts}): {e}"))
}

fn view_version(db: &Strata, ts: Timestamp) -> u64 {
    at_time(db, ts).version().as_u64()
}

fn time_of(db: &Strata, v: u64) -> Option<Timestamp> {
    db.at(Version::Txn(v)).unwrap().time()
}

/// What the run `run` holds right after one commit of
/// `at_time_sees_exactly_the_commits_made_by_then`.
#[derive(Debug, Clone, Default)]
struct Expect {
    run_exists: bool,
    kv: Option<i64>,
    json: Option<i64>,
    events: i64,
    state: Option<i64>,
    meta: Option<i64>,
}

fn check_view(view: &AtVersion, run: &RunId, e: &Expect, what: &str) {
    if !e.run_exists {
        assert!(
            matches!(view.kv.get_in(run, "k"), Err(Error::RunError(_))),
            "{what}"
        );
        assert!(
            matches!(view.json.get_in(run, "doc"), Err(Error::RunError(_))),
            "{what}"
        );
        assert!(
            matches!(view.events.count(run, "s"), Err(Error::RunError(_))),
            "{what}"
        );
        assert!(
            matches!(view.state.get_in(run, "c"), Err(Error::RunError(_))),
            "{what}"
        );
        assert!(view.runs.get(run).unwrap().is_none(), "{what}");
        return;
    }
    assert_eq!(
        view.kv.get_in(run, "k").unwrap().map(|v| v.value),
        e.kv.map(Value::Int),
        "{what}: kv"
    );
    assert_eq!(
        view.json.get_in(run, "doc").unwrap().map(|v| v.value),
        e.json.map(|i| json!({ "i": i })),
        "{what}: json"
    );
    assert_eq!(
        view.events.count(run, "s").unwrap(),
        e.events as u64,
        "{what}: events"
    );
    let events: Vec<Value> = view
        .events
        .read_in(run, "s", 100)
        .unwrap()
        .into_iter()
        .map(|v| v.value)
        .collect();
    let want: Vec<Value> = (1..=e.events).map(|i| json!({ "i": i })).collect();
    assert_eq!(events, want, "{what}: event payloads");
    assert_eq!(
        view.state.get_in(run, "c").unwrap().map(|v| v.value),
        e.state.map(Value::Int),
        "{what}: state"
    );
    assert_eq!(
        view.runs.get(run).unwrap().unwrap().value.metadata,
        e.meta.map(|i| json!({ "step": i })),
        "{what}: run metadata"
    );
}

#[test]
fn at_time_sees_exactly_the_commits_made_by_then() {
    let db = Strata::ephemeral().unwrap();
    let default = db.runs.default_run();
    // (version, timestamp, what the run holds then) for every commit.
    let mut commits: Vec<(u64, Timestamp, Expect)> = Vec::new();
    let first = db.runs.get(&default).unwrap().unwrap();
    commits.push((txn(first.version), first.timestamp, Expect::default()));
    assert_eq!(current(&db), txn(first.version));

    std::thread::sleep(2 * MS);
    let run = db.runs.create(None).unwrap();
    let info = db.runs.get(&run).unwrap().unwrap();
    let mut e = Expect {
        run_exists: true,
        ..Expect::default()
    };
    commits.push((txn(info.version), info.timestamp, e.clone()));

    for i in 1..=3i64 {
        std::thread::sleep(2 * MS);
        let v = txn(db.kv.put(&run, "k", i).unwrap());
        e.kv = Some(i);
        let ts = db.kv.get_in(&run, "k").unwrap().unwrap().timestamp;
        commits.push((v, ts, e.clone()));

        std::thread::sleep(2 * MS);
        let v = txn(db.json.set_in(&run, "doc", json!({ "i": i })).unwrap());
        e.json = Some(i);
        let ts = db.json.get_in(&run, "doc").unwrap().unwrap().timestamp;
        commits.push((v, ts, e.clone()));

        std::thread::sleep(2 * MS);
        let seq = db.events.append_in(&run, "s", json!({ "i": i })).unwrap();
        assert_eq!(seq, Version::Sequence(i as u64));
        e.events = i;
        let head = db.events.head(&run, "s").unwrap().unwrap();
        commits.push((current(&db), head.timestamp, e.clone()));

        std::thread::sleep(2 * MS);
        let counter = db.state.set_in(&run, "c", i).unwrap();
        assert_eq!(counter, Version::Counter(i as u64));
        e.state = Some(i);
        let ts = db.state.get_in(&run, "c").unwrap().unwrap().timestamp;
        commits.push((current(&db), ts, e.clone()));

        std::thread::sleep(2 * MS);
        let v = txn(db.runs.update_metadata(&run, json!({ "step": i })).unwrap());
        e.meta = Some(i);
        let info = db.runs.get(&run).unwrap().unwrap();
        assert_eq!(txn(info.version), v);
        commits.push((v, info.timestamp, e.clone()));
    }
    // One commit per step, in order, each at a later time than the one before.
    for w in commits.windows(2) {
        assert_eq!(w[1].0, w[0].0 + 1, "{commits:?}");
        assert!(w[1].1 > w[0].1, "{:?} then {:?}", w[0], w[1]);
    }
    // The state's and the event's timestamps are those of their commits too.
    assert_eq!(commits.len(), 17);

    for (i, (v, ts, e)) in commits.iter().enumerate() {
        let what = format!("commit {i} (version {v}, time {ts})");
        let view = at_time(&db, *ts);
        assert_eq!(view.version(), Version::Txn(*v), "{what}");
        assert_eq!(view.time(), Some(*ts), "{what}");
        check_view(&view, &run, e, &what);

        let after = at_time(&db, plus(*ts, micros(1)));
        assert_eq!(after.version(), Version::Txn(*v), "{what} + 1 µs");
        assert_eq!(after.time(), Some(plus(*ts, micros(1))));
        check_view(&after, &run, e, &format!("{what} + 1 µs"));

        let before = at_time(&db, minus(*ts, micros(1)));
        let prev = if i == 0 { 0 } else { commits[i - 1].0 };
        assert_eq!(before.version(), Version::Txn(prev), "{what} - 1 µs");

        let by_version = db.at(Version::Txn(*v)).unwrap();
        assert_eq!(by_version.time(), Some(*ts), "{what}");
        check_view(&by_version, &run, e, &format!("{what}, by version"));
    }

    // Before the first commit: version 0, where not even the default run exists.
    let t0 = minus(commits[0].1, micros(1));
    let empty = at_time(&db, t0);
    assert_eq!(empty.version(), Version::Txn(0));
    assert_eq!(empty.time(), Some(t0));
    assert!(matches!(empty.kv.get("k"), Err(Error::RunError(_))));
    assert!(matches!(
        empty.kv.get_in(&default, "k"),
        Err(Error::RunError(_))
    ));
    assert!(empty.runs.get(&default).unwrap().is_none());
    check_view(&empty, &run, &Expect::default(), "before the first commit");
    let epoch = at_time(&db, Timestamp::from_micros(0));
    assert_eq!(epoch.version(), Version::Txn(0));
    assert_eq!(epoch.time(), Some(Timestamp::from_micros(0)));
    assert_eq!(db.at(Version::Txn(0)).unwrap().time(), None);

    // Now: everything.
    let now = at_time(&db, Timestamp::now());
    assert_eq!(now.version().as_u64(), commits.last().unwrap().0);
    check_view(&now, &run, &commits.last().unwrap().2, "now");
    // A view refuses writes, whatever its time.
    assert!(matches!(
        now.kv.set_in(&run, "k", 9),
        Err(Error::ConstraintViolation(_))
    ));
}

/// `w = at_time(t)` is the newest commit at or before `t`: every commit with a time
/// `<= t` has a version `<= w`, every later one a version `> w`.
fn check_shared(db: &Strata, commits: &[(u64, Timestamp)]) {
    for &(v, t) in commits {
        assert_eq!(time_of(db, v), Some(t), "version {v}");
        let view = at_time(db, t);
        let w = view.version().as_u64();
        assert!(w >= v, "at_time({t}) = {w}, before its own commit {v}");
        assert_eq!(view.time(), Some(t));
        assert_eq!(time_of(db, w), Some(t), "at_time({t}) = {w}");
        let expected = commits
            .iter()
            .filter(|(_, tj)| *tj <= t)
            .map(|(vj, _)| *vj)
            .max()
            .unwrap();
        assert_eq!(w, expected, "at_time({t})");
        for &(vj, tj) in commits {
            if tj > t {
                assert!(vj > w, "{vj} at {tj} is in the view at {t} ({w})");
            }
        }
    }
}

#[test]
fn commits_sharing_a_timestamp() {
    // Fast commits from several threads: many land in the same microsecond.
    let db = Arc::new(Strata::ephemeral().unwrap());
    let run = db.runs.create(None).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut out = Vec::new();
                for i in 0..300 {
                    let key = format!("t{t}-{i}");
                    let v = txn(db.kv.put(&run, &key, i).unwrap());
                    let ts = db.kv.get_in(&run, &key).unwrap().unwrap().timestamp;
                    out.push((v, ts));
                }
                out
            })
        })
        .collect();
    let mut commits: Vec<(u64, Timestamp)> = threads
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    commits.sort();
    for w in commits.windows(2) {
        assert_eq!(w[1].0, w[0].0 + 1);
        assert!(w[1].1 >= w[0].1, "times go back: {:?}", w);
    }
    check_shared(&db, &commits);

    // Deterministically: a clock that went back. The manifest says the last commit was
    // made 300 ms from now, so every commit until then takes that same timestamp.
    let dir = tempfile::tempdir().unwrap();
    let db = Strata::open(dir.path()).unwrap();
    let run = db.runs.create(None).unwrap();
    let before = txn(db.kv.put(&run, "k", 0).unwrap());
    let before_ts = db.kv.get_in(&run, "k").unwrap().unwrap().timestamp;
    db.close().unwrap();
    let future = plus(Timestamp::now(), 300 * MS);
    let vfs: Arc<dyn Vfs> = Arc::new(OsVfs);
    let mut m = Manifest::read(&vfs, dir.path()).unwrap().unwrap();
    assert_eq!(m.flushed_through, before);
    m.last_timestamp = future;
    std::fs::write(dir.path().join("MANIFEST"), m.encode()).unwrap();

    let db = Strata::open(dir.path()).unwrap();
    let mut shared = vec![(before, before_ts)];
    for i in 1..=20i64 {
        let v = txn(db.kv.put(&run, "k", i).unwrap());
        let ts = db.kv.get_in(&run, "k").unwrap().unwrap().timestamp;
        assert_eq!(ts, future, "commit {i}");
        shared.push((v, ts));
    }
    // Those commits are in the future of the clock: a view of their time would change.
    assert!(
        Timestamp::now() < minus(future, 100 * MS),
        "the test ran too slowly"
    );
    assert!(matches!(
        db.at_time(future),
        Err(Error::ConstraintViolation(_))
    ));
    // A time before theirs is over already, though the clock has not reached it: every
    // commit to come gets their timestamp or a later one.
    assert_eq!(view_version(&db, minus(future, micros(1))), before);
    // Their views by version are fine, and stand at their (future) time.
    assert_eq!(time_of(&db, shared[5].0), Some(future));
    while Timestamp::now() <= future {
        std::thread::sleep(10 * MS);
    }
    // The time before them places the commit before them.
    assert_eq!(view_version(&db, minus(future, micros(1))), before);
    let last = shared.last().unwrap().0;
    assert_eq!(view_version(&db, future), last);
    assert_eq!(
        at_time(&db, future)
            .kv
            .get_in(&run, "k")
            .unwrap()
            .unwrap()
            .value,
        Value::Int(20)
    );
    check_shared(&db, &shared);
    // And after the timeline is on disk and read back.
    db.close().unwrap();
    let db = Strata::open(dir.path()).unwrap();
    check_shared(&db, &shared);
    db.close().unwrap();
}

#[test]
fn a_time_in_the_future_is_refused() {
    let db = Strata::ephemeral().unwrap();
    db.kv.set("k", 1).unwrap();
    for t in [
        plus(Timestamp::now(), Duration::from_secs(10)),
        Timestamp::from_micros(u64::MAX),
    ] {
        match db.at_time(t) {
            Err(Error::ConstraintViolation(m)) => {
                assert!(m.contains("future"), "{m}")
            }
            other => panic!("at_time({t}): {other:?}"),
        }
    }
    // The present is not the future.
    let now = at_time(&db, Timestamp::now());
    assert_eq!(now.kv.get("k").unwrap().unwrap().value, Value::Int(1));
    // A closed database answers no time.
    let dir = tempfile::tempdir().unwrap();
    let db = Strata::open(dir.path()).unwrap();
    db.kv.set("k", 1).unwrap();
    let ts = db.kv.get("k").unwrap().unwrap().timestamp;
    let kv = db.kv.clone();
    db.close().unwrap();
    assert!(kv.get("k").is_err());
    let db = Strata::open(dir.path()).unwrap();
    assert_eq!(
        at_time(&db, ts).kv.get("k").unwrap().unwrap().value,
        Value::Int(1)
    );
}

/// Writes `n` KV commits 2 ms apart, recording `(version, timestamp)` of each.
fn write_commits(db: &Strata, run: &RunId, from: i64, n: i64, out: &mut Vec<(u64, Timestamp)>) {
    for i in from..from + n {
        std::thread::sleep(2 * MS);
        let v = txn(db.kv.put(run, "k", i).unwrap());
        let ts = db.kv.get_in(run, "k").unwrap().unwrap().timestamp;
        out.push((v, ts));
    }
}

/// Every commit's time, and the view at, just after and just before it, against the
/// commits as written (all 2 ms apart, values 0, 1, 2... in order).
fn check_answers(db: &Strata, run: &RunId, commits: &[(u64, Timestamp)], what: &str) {
    for (i, &(v, ts)) in commits.iter().enumerate() {
        assert_eq!(time_of(db, v), Some(ts), "{what}: time of {v}");
        let view = at_time(db, ts);
        assert_eq!(view.version().as_u64(), v, "{what}: at_time({ts})");
        assert_eq!(
            view.kv.get_in(run, "k").unwrap().unwrap().value,
            Value::Int(i as i64),
            "{what}: at_time({ts})"
        );
        assert_eq!(view_version(db, plus(ts, micros(1))), v, "{what}");
        if i > 0 {
            assert_eq!(
                view_version(db, minus(ts, micros(1))),
                commits[i - 1].0,
                "{what}: just before {v}"
            );
        }
    }
}

#[test]
fn commit_times_survive_checkpoints_compaction_replay_and_read_only_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let mut commits = Vec::new();
    let db = Strata::open(path).unwrap();
    let run = db.runs.create(None).unwrap();
    write_commits(&db, &run, 0, 8, &mut commits);
    db.checkpoint().unwrap();
    assert!(path.join("TIMELINE").exists());
    write_commits(&db, &run, 8, 8, &mut commits);
    check_answers(&db, &run, &commits, "live");
    db.close().unwrap();

    let db = Strata::open(path).unwrap();
    check_answers(&db, &run, &commits, "reopened after close");
    write_commits(&db, &run, 16, 5, &mut commits);
    db.checkpoint().unwrap();
    write_commits(&db, &run, 21, 5, &mut commits);
    db.compact().unwrap();
    check_answers(&db, &run, &commits, "after compaction");
    db.close().unwrap();

    let db = Strata::open(path).unwrap();
    check_answers(&db, &run, &commits, "reopened after compaction");
    // Commits that only the log holds: dropped without close, so no checkpoint.
    write_commits(&db, &run, 26, 6, &mut commits);
    drop(db);
    let db = Strata::open(path).unwrap();
    assert_eq!(db.info().unwrap().recovered_records, 6);
    check_answers(&db, &run, &commits, "replayed from the log");
    // Replayed commits reach the file at the next checkpoint, and back.
    db.checkpoint().unwrap();
    check_answers(&db, &run, &commits, "replayed, then checkpointed");
    db.close().unwrap();

    // Read-only, with the timeline file and with commits only the log holds.
    // A reader applies the log's records only as far as a later record proves them
    // fsynced: the last commit (after the flush) may stay hidden.
    let db = Strata::open(path).unwrap();
    write_commits(&db, &run, 32, 3, &mut commits);
    db.flush().unwrap();
    write_commits(&db, &run, 35, 1, &mut commits);
    drop(db);
    let reader = StrataBuilder::new().path(path).read_only().open().unwrap();
    let shown = commits.len() - 1;
    assert!(current(&reader) >= commits[shown - 1].0);
    assert!(reader.info().unwrap().recovered_records >= 3);
    check_answers(&reader, &run, &commits[..shown], "read-only");
    drop(reader);

    // A reader beside a writer catches up with refresh.
    let writer = Strata::open(path).unwrap();
    let reader = StrataBuilder::new().path(path).read_only().open().unwrap();
    write_commits(&writer, &run, 36, 4, &mut commits);
    writer.checkpoint().unwrap();
    reader.refresh().unwrap();
    check_answers(&reader, &run, &commits, "read-only, refreshed");
    write_commits(&writer, &run, 40, 3, &mut commits);
    writer.checkpoint().unwrap();
    reader.refresh().unwrap();
    check_answers(&reader, &run, &commits, "read-only, refreshed twice");
    check_answers(&writer, &run, &commits, "writer");
    drop(reader);
    writer.close().unwrap();
    let report = stratadb::verify(path, |_| {}).unwrap();
    assert!(report.is_ok(), "{report:?}");
    let t = report.files.iter().find(|f| f.name == "TIMELINE").unwrap();
    assert_eq!(t.kind, "timeline");
    assert_eq!(t.problem, None);
}

const KILL_ENV: &str = "STRATADB_TIMELINE_KILL_WRITER";

#[test]
#[ignore = "run by acknowledged_commit_times_survive_sigkill"]
fn timeline_writer_child() {
    let Ok(path) = std::env::var(KILL_ENV) else {
        return;
    };
    let db = StrataBuilder::new()
        .path(&path)
        .strict()
        .memtable_size(1 << 20)
        .open()
        .unwrap();
    let run = db.runs.create(None).unwrap();
    println!("RUN {run}");
    for i in 1..=10_000_000i64 {
        let key = format!("k{:03}", i % 300);
        let v = db
            .kv
            .put(&run, &key, Value::Bytes(vec![i as u8; 300]))
            .unwrap();
        let ts = db.kv.get_in(&run, &key).unwrap().unwrap().timestamp;
        println!("ACK {} {}", v.as_u64(), ts.as_micros());
        if i % 97 == 0 {
            db.checkpoint().unwrap();
            println!("CKPT {}", v.as_u64());
        }
    }
    std::thread::sleep(Duration::from_secs(600));
}

#[test]
fn acknowledged_commit_times_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "timeline_writer_child",
            "--ignored",
            "--nocapture",
        ])
        .env(KILL_ENV, dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut acks: Vec<(u64, Timestamp)> = Vec::new();
    let mut checkpoints = 0;
    for line in std::io::BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let mut parts = line.split_whitespace();
        match parts.next() {
            Some("ACK") => {
                let v: u64 = parts.next().unwrap().parse().unwrap();
                let ts: u64 = parts.next().unwrap().parse().unwrap();
                acks.push((v, Timestamp::from_micros(ts)));
                if acks.len() >= 1_500 || started.elapsed() > Duration::from_secs(3) {
                    break;
                }
            }
            Some("CKPT") => checkpoints += 1,
            _ => {}
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(acks.len() >= 100, "the writer stopped at {}", acks.len());
    assert!(checkpoints >= 1, "no checkpoint in {} commits", acks.len());

    let db = Strata::open(dir.path()).unwrap();
    assert!(current(&db) >= acks.last().unwrap().0);
    for (i, &(v, ts)) in acks.iter().enumerate() {
        assert_eq!(time_of(&db, v), Some(ts), "version {v}");
        let w = view_version(&db, ts);
        assert!(w >= v, "at_time({ts}) = {w} < {v}");
        assert_eq!(time_of(&db, w), Some(ts), "at_time({ts}) = {w}");
        if let Some(&(next_v, next_ts)) = acks.get(i + 1) {
            assert_eq!(next_v, v + 1);
            if next_ts > ts {
                assert_eq!(w, v, "at_time({ts})");
            } else {
                assert!(w >= next_v);
            }
        }
    }
    // And once more after the recovered commits reach the file.
    db.checkpoint().unwrap();
    db.close().unwrap();
    let db = Strata::open(dir.path()).unwrap();
    for &(v, ts) in &acks {
        assert_eq!(time_of(&db, v), Some(ts), "version {v}");
    }
    db.close().unwrap();
    assert!(stratadb::verify(dir.path(), |_| {}).unwrap().is_ok());
}

#[test]
fn views_judge_expiries_at_their_own_time() {
    let dir = tempfile::tempdir().unwrap();
    let db = Strata::open(dir.path()).unwrap();
    let run = db.runs.create(None).unwrap();
    let v1 = db
        .kv
        .put_with_ttl(&run, "k", 1, Duration::from_millis(200))
        .unwrap();
    let t1 = db.kv.get_in(&run, "k").unwrap().unwrap().timestamp;
    let v1j = db
        .json
        .set_with_ttl(&run, "doc", json!({ "a": 1 }), Duration::from_millis(200))
        .unwrap();
    let t1j = db.json.get_in(&run, "doc").unwrap().unwrap().timestamp;
    assert_eq!(v1j.as_u64(), v1.as_u64() + 1);
    assert!(t1j.as_micros() - t1.as_micros() < 50_000);
    std::thread::sleep(Duration::from_millis(300));
    // No checkpoint: no collection has swept the expired records yet.
    let v2 = db.kv.put(&run, "marker", 2).unwrap();
    let t2 = db.kv.get_in(&run, "marker").unwrap().unwrap().timestamp;
    assert!(t2 >= plus(t1, 300 * MS));
    assert_eq!(current(&db), v2.as_u64(), "nothing was swept yet");

    let check = |db: &Strata, what: &str| {
        let sees = |view: &AtVersion| {
            let k = view.kv.get_in(&run, "k").unwrap().map(|v| v.value);
            let doc = view.json.get_in(&run, "doc").unwrap().map(|v| v.value);
            let keys = view.kv.keys(&run, "", None).unwrap();
            assert_eq!(keys.contains(&"k".to_owned()), k.is_some(), "{what}");
            assert_eq!(view.kv.exists_in(&run, "k").unwrap(), k.is_some(), "{what}");
            (k, doc)
        };
        let live = (Some(Value::Int(1)), Some(json!({ "a": 1 })));
        let gone = (None, None);
        let at_v1 = db.at(v1j).unwrap();
        assert_eq!(at_v1.time(), Some(t1j));
        assert_eq!(sees(&at_v1), live, "{what}: at v1");
        let at_v2 = db.at(v2).unwrap();
        assert_eq!(at_v2.time(), Some(t2));
        assert_eq!(sees(&at_v2), gone, "{what}: at v2");
        assert_eq!(
            at_v2.kv.get_in(&run, "marker").unwrap().unwrap().value,
            Value::Int(2)
        );
        let early = at_time(db, plus(t1, 100 * MS));
        assert_eq!(early.version(), v1j, "{what}");
        assert_eq!(sees(&early), live, "{what}: at t1 + 100 ms");
        // The time left is counted from the view's time: the expiry is 200 ms after the
        // write's read time, a little before t1.
        let left = early.kv.ttl(&run, "k").unwrap().unwrap();
        assert!(left <= 100 * MS && left > 90 * MS, "{what}: {left:?}");
        let late = at_time(db, plus(t1, 250 * MS));
        assert_eq!(late.version(), v1j, "{what}");
        assert_eq!(sees(&late), gone, "{what}: at t1 + 250 ms");
        // The expiry is the write's time plus the TTL: a view at v1's own time sees it,
        // one at 200 ms after its read time no longer does.
        assert_eq!(sees(&at_time(db, t1j)), live, "{what}: at t1");
        assert_eq!(
            sees(&at_time(db, plus(t1j, 200 * MS))),
            gone,
            "{what}: at t1 + 200 ms"
        );
        assert!(db.kv.get_in(&run, "k").unwrap().is_none());
        assert!(db.json.get_in(&run, "doc").unwrap().is_none());
    };
    check(&db, "before the sweep");
    db.checkpoint().unwrap();
    assert!(
        current(&db) > v2.as_u64(),
        "the checkpoint's collection swept the expired records"
    );
    check(&db, "after the sweep");
    // The sweep's deletes read as absent at every later version, by version or time.
    let now = db.at(Version::Txn(current(&db))).unwrap();
    assert!(now.kv.get_in(&run, "k").unwrap().is_none());
    db.close().unwrap();
    let db = Strata::open(dir.path()).unwrap();
    check(&db, "after reopening");
    db.close().unwrap();
}

fn forget_the_timeline(dir: &Path) {
    std::fs::remove_file(dir.join("TIMELINE")).unwrap();
    let vfs: Arc<dyn Vfs> = Arc::new(OsVfs);
    let mut m = Manifest::read(&vfs, dir).unwrap().unwrap();
    assert!(m.timeline_len > 0);
    m.timeline_len = 0;
    std::fs::write(dir.join("MANIFEST"), m.encode()).unwrap();
}

#[test]
fn a_database_older_than_its_timeline_answers_by_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let db = Strata::open(path).unwrap();
    let run = db.runs.create(None).unwrap();
    let mut old = Vec::new();
    write_commits(&db, &run, 0, 3, &mut old);
    db.close().unwrap();
    forget_the_timeline(path);
    let last_old = old.last().unwrap().0;

    let db = Strata::open(path).unwrap();
    assert_eq!(current(&db), last_old);
    for (i, &(v, ts)) in old.iter().enumerate() {
        match db.at_time(ts) {
            Err(Error::ConstraintViolation(m)) => assert!(
                m.contains(&format!("before version {}", last_old + 1)),
                "{m}"
            ),
            other => panic!("at_time({ts}) of a version older than the timeline: {other:?}"),
        }
        let view = db.at(Version::Txn(v)).unwrap();
        assert_eq!(view.time(), None, "version {v}");
        assert_eq!(
            view.kv.get_in(&run, "k").unwrap().unwrap().value,
            Value::Int(i as i64)
        );
    }
    let mut new = Vec::new();
    write_commits(&db, &run, 3, 3, &mut new);
    let check_new = |db: &Strata, what: &str| {
        for (i, &(v, ts)) in new.iter().enumerate() {
            assert_eq!(time_of(db, v), Some(ts), "{what}");
            let view = at_time(db, ts);
            assert_eq!(view.version().as_u64(), v, "{what}");
            assert_eq!(
                view.kv.get_in(&run, "k").unwrap().unwrap().value,
                Value::Int(3 + i as i64)
            );
        }
        // Between the last old commit and the first new one: cannot be placed.
        assert!(matches!(
            db.at_time(minus(new[0].1, micros(1))),
            Err(Error::ConstraintViolation(_))
        ));
        assert_eq!(time_of(db, last_old), None, "{what}");
    };
    check_new(&db, "after the upgrade");
    db.close().unwrap();
    let report = stratadb::verify(path, |_| {}).unwrap();
    assert!(report.is_ok(), "{report:?}");
    let t = report.files.iter().find(|f| f.name == "TIMELINE").unwrap();
    assert_eq!(t.kind, "timeline");
    assert!(
        t.summary
            .contains(&format!("versions {}..={}", last_old + 1, new[2].0)),
        "{}",
        t.summary
    );
    let db = Strata::open(path).unwrap();
    check_new(&db, "reopened");
    db.close().unwrap();
}

/// A database with a checkpointed timeline, and its commits.
fn database_with_timeline(path: &Path) -> (RunId, Vec<(u64, Timestamp)>) {
    let db = Strata::open(path).unwrap();
    let run = db.runs.create(None).unwrap();
    let mut commits = Vec::new();
    write_commits(&db, &run, 0, 5, &mut commits);
    db.close().unwrap();
    let report = stratadb::verify(path, |_| {}).unwrap();
    assert!(report.is_ok(), "{report:?}");
    let t = report.files.iter().find(|f| f.name == "TIMELINE").unwrap();
    assert_eq!(t.kind, "timeline");
    assert_eq!(t.problem, None);
    assert!(t.summary.contains("commit times of"), "{}", t.summary);
    (run, commits)
}

fn assert_damage_reported(e: Error, what: &str) {
    match e {
        Error::Storage(m) => assert!(
            m.contains("TIMELINE") && m.contains("offset"),
            "{what}: {m}"
        ),
        other => panic!("{what}: {other:?}"),
    }
}

#[test]
fn a_damaged_timeline_fails_time_lookups_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let (run, commits) = database_with_timeline(path);
    let file = path.join("TIMELINE");
    let mut bytes = std::fs::read(&file).unwrap();
    // The last byte of the file: the body of its last chunk.
    let at = bytes.len() - 1;
    bytes[at] ^= 0x5a;
    std::fs::write(&file, &bytes).unwrap();

    let report = stratadb::verify(path, |_| {}).unwrap();
    assert!(!report.is_ok());
    let t = report.files.iter().find(|f| f.name == "TIMELINE").unwrap();
    assert_eq!(t.kind, "timeline");
    let problem = t.problem.clone().expect("the damage is reported");
    assert!(problem.contains("offset"), "{problem}");
    // Every other file is sound.
    for f in &report.files {
        if f.name != "TIMELINE" {
            assert_eq!(f.problem, None, "{}", f.name);
        }
    }

    let db = Strata::open(path).unwrap();
    // Ordinary reads and writes work.
    assert_eq!(
        db.kv.get_in(&run, "k").unwrap().unwrap().value,
        Value::Int(4)
    );
    db.kv.put(&run, "k", 5).unwrap();
    assert_eq!(
        db.kv.get_in(&run, "k").unwrap().unwrap().value,
        Value::Int(5)
    );
    // Time lookups name the file and the offset, every time (not only the first).
    for _ in 0..2 {
        assert_damage_reported(db.at_time(commits[2].1).unwrap_err(), "at_time");
    }
    // A view by version needs its commit time too (to judge expiries at it).
    assert_damage_reported(
        db.at(Version::Txn(commits[2].0)).unwrap_err(),
        "at(version)",
    );
    db.checkpoint().unwrap();
    db.close().unwrap();
    let db = Strata::open(path).unwrap();
    assert_eq!(
        db.kv.get_in(&run, "k").unwrap().unwrap().value,
        Value::Int(5)
    );
    assert_damage_reported(db.at_time(commits[2].1).unwrap_err(), "after reopening");
    db.close().unwrap();
}

#[test]
fn a_truncated_timeline_is_reported_as_shorter_than_listed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let (run, commits) = database_with_timeline(path);
    let file = path.join("TIMELINE");
    let len = std::fs::metadata(&file).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let report = stratadb::verify(path, |_| {}).unwrap();
    let t = report.files.iter().find(|f| f.name == "TIMELINE").unwrap();
    let problem = t.problem.clone().expect("the damage is reported");
    assert!(problem.contains("shorter"), "{problem}");

    let db = Strata::open(path).unwrap();
    assert_eq!(
        db.kv.get_in(&run, "k").unwrap().unwrap().value,
        Value::Int(4)
    );
    match db.at_time(commits[0].1) {
        Err(Error::Storage(m)) => assert!(m.contains("TIMELINE") && m.contains("shorter"), "{m}"),
        other => panic!("{other:?}"),
    }
    db.close().unwrap();
}

/// Copies the database files of `from` (not its lock) into `to`.
fn copy_db(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name.to_string_lossy() == strata_storage::LOCK_FILE || !e.file_type().unwrap().is_file()
        {
            continue;
        }
        std::fs::copy(e.path(), to.join(&name)).unwrap();
    }
}

/// A crash after the first flush fsynced `TIMELINE` but before its manifest landed
/// leaves a timeline file the manifest does not list (yet): the log still holds every
/// commit. That is a sound database: it opens, answers every time, and verify reports
/// no damage.
#[test]
fn a_timeline_written_by_a_flush_whose_manifest_never_landed_is_not_damage() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    let crashed = dir.path().join("crashed");
    let db = Strata::open(&live).unwrap();
    let run = db.runs.create(None).unwrap();
    let mut commits = Vec::new();
    write_commits(&db, &run, 0, 5, &mut commits);
    db.flush().unwrap();
    // The state before the flush: the log, no timeline...
    copy_db(&live, &crashed);
    assert!(!crashed.join("TIMELINE").exists());
    db.checkpoint().unwrap();
    // ... plus the timeline file the flush wrote first.
    std::fs::copy(live.join("TIMELINE"), crashed.join("TIMELINE")).unwrap();
    db.close().unwrap();
    let listed = Manifest::read(&(Arc::new(OsVfs) as Arc<dyn Vfs>), &crashed)
        .unwrap()
        .map_or(0, |m| m.timeline_len);
    assert_eq!(listed, 0);

    let report = stratadb::verify(&crashed, |_| {}).unwrap();
    let t = report.files.iter().find(|f| f.name == "TIMELINE").unwrap();
    assert_eq!(t.kind, "timeline");
    assert_eq!(t.problem, None, "{report:?}");
    assert!(
        t.summary
            .contains(&format!("{} bytes past the manifest's length", t.bytes)),
        "{}",
        t.summary
    );
    assert!(report.is_ok(), "{report:?}");

    let db = Strata::open(&crashed).unwrap();
    check_answers(&db, &run, &commits, "after the interrupted flush");
    write_commits(&db, &run, 5, 2, &mut commits);
    db.close().unwrap();
    assert!(stratadb::verify(&crashed, |_| {}).unwrap().is_ok());
    let db = Strata::open(&crashed).unwrap();
    check_answers(&db, &run, &commits, "after the next flush");
    db.close().unwrap();
}

/// The timeline file is read by the first lookup that needs it, while flushes may be
/// appending to it: a lookup racing a flush must still find the commits the file
/// holds (it used to find none and answer "unknown" for every flushed commit).
#[test]
fn the_first_lookup_racing_a_flush_finds_flushed_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let db = StrataBuilder::new()
        .path(path)
        .no_durability()
        .open()
        .unwrap();
    let run = db.runs.create(None).unwrap();
    let mut commits = Vec::new();
    write_commits(&db, &run, 0, 2, &mut commits);
    // Many commits, so that reading and checking the file takes a while.
    for i in 0..20_000i64 {
        db.kv.put(&run, "n", i).unwrap();
    }
    db.close().unwrap();
    let (v, ts) = commits[1];
    let started = Instant::now();
    let mut trials = 0;
    while trials < 60 && started.elapsed() < Duration::from_secs(4) {
        trials += 1;
        let db = Arc::new(
            StrataBuilder::new()
                .path(path)
                .no_durability()
                .open()
                .unwrap(),
        );
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flusher = {
            let (db, stop) = (db.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    db.kv.put(&run, "other", 1).unwrap();
                    db.checkpoint().unwrap();
                }
            })
        };
        std::thread::sleep(Duration::from_micros(300 * (trials % 7)));
        let found = db.at(Version::Txn(v)).unwrap().time();
        let at = db.at_time(ts).map(|view| view.version().as_u64());
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        flusher.join().unwrap();
        assert_eq!(found, Some(ts), "trial {trials}: time of {v}");
        assert_eq!(at.unwrap(), v, "trial {trials}");
        Arc::try_unwrap(db).unwrap().close().unwrap();
    }
}
