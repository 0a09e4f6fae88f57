//! The four engines behind one small interface.
//!
//! Durability: [`Dur::NoSync`] writes every commit to the OS without fsync (StrataDB
//! `no_durability`, fjall's default journal mode, SQLite `synchronous=OFF`; redb's
//! `Durability::None`, which keeps non-durable commits in memory); [`Dur::Sync`] fsyncs
//! every commit (StrataDB `strict`, fjall `PersistMode::SyncData`, SQLite
//! `synchronous=FULL`, redb `Durability::Immediate`). `flush` makes everything durable.
//! Every read is its own snapshot (StrataDB `get_in`, fjall `get`, one redb read
//! transaction per read, an autocommit SQLite `SELECT`).
//!
//! Retention and compaction (the rewrite workload): StrataDB keeps every version of a key
//! unless the run's retention says otherwise, so [`Kv::keep_latest_only`] puts the run
//! under `RetentionPolicy::KeepLast(1)`; the peers keep one version natively (redb and
//! SQLite overwrite B-tree pages in place, fjall drops shadowed versions when it compacts),
//! so it does nothing there. [`Kv::compact`] is each engine's explicit compaction:
//! StrataDB `db.compact()` (applies retention, checkpoints, merges every sorted run into
//! one), redb `Database::compact` (repeated until it reports nothing left to do), fjall
//! `Keyspace::rotate_memtable_and_wait` then `Keyspace::major_compact` (public but
//! `#[doc(hidden)]`: fjall documents no explicit compaction) and SQLite `VACUUM`.
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::{KEY_LEN, VALUE_LEN};

pub const ENGINES: [&str; 4] = ["stratadb", "redb", "fjall", "sqlite"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dur {
    NoSync,
    Sync,
}

/// The name of each engine's explicit compaction, as the report shows it.
pub fn compaction_call(engine: &str) -> &'static str {
    match engine {
        "stratadb" => "`db.compact()`",
        "redb" => "`Database::compact()` until it returns false",
        "fjall" => "`rotate_memtable_and_wait()` + `major_compact()` (both doc-hidden)",
        "sqlite" => "`VACUUM`",
        _ => "n/a",
    }
}

/// A key and a value of any length, borrowed.
pub type Pair<'a> = (&'a [u8], &'a [u8]);

pub trait Kv: Sync {
    /// Writes a batch in one transaction, at no durability (no fsync).
    fn load(&self, batch: &[Pair]);
    /// Writes one key in its own transaction, at the durability the engine was opened with.
    fn put(&self, k: &[u8; KEY_LEN], v: &[u8; VALUE_LEN]);
    /// Makes every commit so far durable (fsync).
    fn flush(&self);
    /// From now on, keeps only the newest version of each key (StrataDB: `KeepLast(1)`
    /// on the run; the peers never keep more).
    fn keep_latest_only(&self) {}
    /// The engine's explicit compaction (blocking until done).
    fn compact(&mut self);
    /// A per-thread read handle.
    fn reader(&self) -> Box<dyn Reader + '_>;
    fn close(self: Box<Self>);
}

pub trait Reader {
    /// The length of the value (0 if missing).
    fn get(&mut self, k: &[u8]) -> usize;
    /// Lists (and copies) at most `limit` keys starting with `p`; returns how many.
    fn prefix(&mut self, p: &[u8], limit: usize) -> usize;
}

pub fn open(engine: &str, dir: &Path, dur: Dur) -> Box<dyn Kv> {
    std::fs::create_dir_all(dir).expect("db dir");
    match engine {
        "stratadb" => Box::new(Strata::open(dir, dur)),
        "redb" => Box::new(Redb::open(dir, dur)),
        "fjall" => Box::new(Fjall::open(dir, dur)),
        "sqlite" => Box::new(Sqlite::open(dir, dur)),
        other => panic!("unknown engine {other}"),
    }
}

fn as_str(k: &[u8]) -> &str {
    std::str::from_utf8(k).expect("ASCII key")
}

// ---------------------------------------------------------------- StrataDB

struct Strata {
    db: stratadb::Strata,
    run: stratadb::RunId,
}

impl Strata {
    fn open(dir: &Path, dur: Dur) -> Strata {
        let b = stratadb::StrataBuilder::new().path(dir);
        let b = match dur {
            Dur::NoSync => b.no_durability(),
            Dur::Sync => b.strict(),
        };
        let db = b.open().expect("open stratadb");
        let run = db.runs.default_run();
        Strata { db, run }
    }
}

impl Kv for Strata {
    fn load(&self, batch: &[Pair]) {
        let entries: Vec<(&str, stratadb::Value)> = batch
            .iter()
            .map(|(k, v)| (as_str(k), stratadb::Value::Bytes(v.to_vec())))
            .collect();
        self.db.kv.mset(&self.run, &entries).expect("mset");
    }
    fn put(&self, k: &[u8; KEY_LEN], v: &[u8; VALUE_LEN]) {
        self.db
            .kv
            .put(&self.run, as_str(k), stratadb::Value::Bytes(v.to_vec()))
            .expect("put");
    }
    fn flush(&self) {
        self.db.flush().expect("flush");
    }
    fn keep_latest_only(&self) {
        self.db
            .runs
            .set_retention(&self.run, stratadb::RetentionPolicy::KeepLast(1))
            .expect("set_retention");
    }
    fn compact(&mut self) {
        self.db.compact().expect("compact");
    }
    fn reader(&self) -> Box<dyn Reader + '_> {
        Box::new(self)
    }
    fn close(self: Box<Self>) {
        self.db.close().expect("close");
    }
}

impl Reader for &Strata {
    fn get(&mut self, k: &[u8]) -> usize {
        match self.db.kv.get_in(&self.run, as_str(k)).expect("get") {
            Some(v) => match &v.value {
                stratadb::Value::Bytes(b) => b.len(),
                _ => 0,
            },
            None => 0,
        }
    }
    fn prefix(&mut self, p: &[u8], limit: usize) -> usize {
        self.db
            .kv
            .keys(&self.run, as_str(p), Some(limit))
            .expect("keys")
            .len()
    }
}

// ---------------------------------------------------------------- redb

const TABLE: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("kv");

struct Redb {
    db: redb::Database,
    dur: Dur,
}

impl Redb {
    fn open(dir: &Path, dur: Dur) -> Redb {
        let db = redb::Database::create(dir.join("db.redb")).expect("open redb");
        let w = db.begin_write().expect("write");
        w.open_table(TABLE).expect("table");
        w.commit().expect("commit");
        Redb { db, dur }
    }

    fn write(&self, dur: Dur, f: impl FnOnce(&mut redb::Table<&[u8], &[u8]>)) {
        let mut w = self.db.begin_write().expect("begin_write");
        w.set_durability(match dur {
            Dur::NoSync => redb::Durability::None,
            Dur::Sync => redb::Durability::Immediate,
        })
        .expect("durability");
        {
            let mut t = w.open_table(TABLE).expect("table");
            f(&mut t);
        }
        w.commit().expect("commit");
    }
}

impl Kv for Redb {
    fn load(&self, batch: &[Pair]) {
        self.write(Dur::NoSync, |t| {
            for (k, v) in batch {
                t.insert(*k, *v).expect("insert");
            }
        });
    }
    fn put(&self, k: &[u8; KEY_LEN], v: &[u8; VALUE_LEN]) {
        self.write(self.dur, |t| {
            t.insert(&k[..], &v[..]).expect("insert");
        });
    }
    fn flush(&self) {
        // A durable commit persists every non-durable one before it.
        self.write(Dur::Sync, |_| {});
    }
    fn compact(&mut self) {
        // Each call moves what it can; `false` means nothing is left to do.
        for _ in 0..100 {
            if !self.db.compact().expect("compact") {
                break;
            }
        }
    }
    fn reader(&self) -> Box<dyn Reader + '_> {
        Box::new(&self.db)
    }
    fn close(self: Box<Self>) {
        drop(self);
    }
}

impl Reader for &redb::Database {
    fn get(&mut self, k: &[u8]) -> usize {
        use redb::ReadableDatabase;
        let r = self.begin_read().expect("begin_read");
        let t = r.open_table(TABLE).expect("table");
        let v = t.get(k).expect("get").map(|g| g.value().to_vec());
        v.map_or(0, |v| v.len())
    }
    fn prefix(&mut self, p: &[u8], limit: usize) -> usize {
        use redb::ReadableDatabase;
        let r = self.begin_read().expect("begin_read");
        let t = r.open_table(TABLE).expect("table");
        let mut n = 0;
        for e in t.range(p..).expect("range") {
            let (k, _) = e.expect("entry");
            let k = k.value().to_vec();
            if !k.starts_with(p) || n == limit {
                break;
            }
            n += 1;
        }
        n
    }
}

// ---------------------------------------------------------------- fjall

struct Fjall {
    db: fjall::Database,
    ks: fjall::Keyspace,
    dur: Dur,
}

impl Fjall {
    fn open(dir: &Path, dur: Dur) -> Fjall {
        let db = fjall::Database::builder(dir).open().expect("open fjall");
        let ks = db
            .keyspace("kv", fjall::KeyspaceCreateOptions::default)
            .expect("keyspace");
        Fjall { db, ks, dur }
    }
}

impl Kv for Fjall {
    fn load(&self, batch: &[Pair]) {
        let mut b = self.db.batch();
        for (k, v) in batch {
            b.insert(&self.ks, *k, *v);
        }
        b.commit().expect("commit");
    }
    fn put(&self, k: &[u8; KEY_LEN], v: &[u8; VALUE_LEN]) {
        match self.dur {
            Dur::NoSync => self.ks.insert(&k[..], &v[..]).expect("insert"),
            Dur::Sync => {
                let mut b = self
                    .db
                    .batch()
                    .durability(Some(fjall::PersistMode::SyncData));
                b.insert(&self.ks, &k[..], &v[..]);
                b.commit().expect("commit");
            }
        }
    }
    fn flush(&self) {
        self.db
            .persist(fjall::PersistMode::SyncAll)
            .expect("persist");
    }
    fn compact(&mut self) {
        // The memtable to a segment first (as StrataDB's compaction checkpoints), then
        // one merge of every segment.
        self.ks
            .rotate_memtable_and_wait()
            .expect("rotate_memtable_and_wait");
        self.ks.major_compact().expect("major_compact");
    }
    fn reader(&self) -> Box<dyn Reader + '_> {
        Box::new(&self.ks)
    }
    fn close(self: Box<Self>) {
        drop(self);
    }
}

impl Reader for &fjall::Keyspace {
    fn get(&mut self, k: &[u8]) -> usize {
        fjall::Keyspace::get(self, k)
            .expect("get")
            .map_or(0, |v| v.len())
    }
    fn prefix(&mut self, p: &[u8], limit: usize) -> usize {
        let mut n = 0;
        for g in fjall::Keyspace::prefix(self, p).take(limit) {
            let k = g.key().expect("key");
            n += usize::from(!k.is_empty());
        }
        n
    }
}

// ---------------------------------------------------------------- SQLite

/// One writer connection behind a mutex (as an application with threads would share it);
/// each reader thread opens its own connection.
struct Sqlite {
    path: PathBuf,
    w: Mutex<rusqlite::Connection>,
}

impl Sqlite {
    fn connect(path: &Path) -> rusqlite::Connection {
        let c = rusqlite::Connection::open(path).expect("open sqlite");
        let mode: String = c
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .expect("wal");
        assert_eq!(mode, "wal");
        c
    }

    fn open(dir: &Path, dur: Dur) -> Sqlite {
        let path = dir.join("db.sqlite");
        let c = Self::connect(&path);
        c.execute_batch(match dur {
            Dur::NoSync => "PRAGMA synchronous=OFF;",
            Dur::Sync => "PRAGMA synchronous=FULL;",
        })
        .expect("synchronous");
        c.execute_batch(
            "CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;",
        )
        .expect("create");
        Sqlite {
            path,
            w: Mutex::new(c),
        }
    }
}

const INSERT: &str = "INSERT OR REPLACE INTO kv (k, v) VALUES (?1, ?2)";

impl Kv for Sqlite {
    fn load(&self, batch: &[Pair]) {
        let c = self.w.lock().expect("lock");
        c.execute_batch("BEGIN").expect("begin");
        {
            let mut st = c.prepare_cached(INSERT).expect("prepare");
            for (k, v) in batch {
                st.execute((*k, *v)).expect("insert");
            }
        }
        c.execute_batch("COMMIT").expect("commit");
    }
    fn put(&self, k: &[u8; KEY_LEN], v: &[u8; VALUE_LEN]) {
        let c = self.w.lock().expect("lock");
        let mut st = c.prepare_cached(INSERT).expect("prepare");
        st.execute((&k[..], &v[..])).expect("insert");
    }
    fn flush(&self) {
        let c = self.w.lock().expect("lock");
        // With synchronous=FULL a checkpoint fsyncs the log and the database file.
        c.execute_batch("PRAGMA synchronous=FULL;").expect("sync");
        c.query_row("PRAGMA wal_checkpoint(FULL)", [], |_| Ok(()))
            .expect("checkpoint");
    }
    fn compact(&mut self) {
        let c = self.w.get_mut().expect("lock");
        c.execute_batch("VACUUM").expect("vacuum");
    }
    fn reader(&self) -> Box<dyn Reader + '_> {
        Box::new(Self::connect(&self.path))
    }
    fn close(self: Box<Self>) {
        let c = self.w.into_inner().expect("lock");
        c.close().map_err(|(_, e)| e).expect("close");
    }
}

impl Reader for rusqlite::Connection {
    fn get(&mut self, k: &[u8]) -> usize {
        use rusqlite::OptionalExtension;
        let mut st = self
            .prepare_cached("SELECT v FROM kv WHERE k = ?1")
            .expect("prepare");
        st.query_row([k], |r| r.get::<_, Vec<u8>>(0))
            .optional()
            .expect("select")
            .map_or(0, |v| v.len())
    }
    fn prefix(&mut self, p: &[u8], limit: usize) -> usize {
        let mut end = p.to_vec();
        *end.last_mut().expect("non-empty prefix") += 1;
        let mut st = self
            .prepare_cached("SELECT k FROM kv WHERE k >= ?1 AND k < ?2 ORDER BY k LIMIT ?3")
            .expect("prepare");
        let rows = st
            .query_map((p, &end[..], limit as i64), |r| r.get::<_, Vec<u8>>(0))
            .expect("select");
        let mut n = 0;
        for r in rows {
            n += usize::from(!r.expect("row").is_empty());
        }
        n
    }
}
