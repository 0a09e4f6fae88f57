//! Vector index files: close + reopen loads the persisted index instead of rebuilding it;
//! changes after the last persist are replayed (deleted vectors never come back); a
//! corrupted or stale file falls back to a rebuild; a SIGKILLed writer leaves a database
//! whose reopen holds exactly the committed vectors.
use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};

use strata_vector::persist;
use strata_vector::IndexSource;
use stratadb::prelude::*;

const DIM: usize = 8;
/// Above the exact threshold (2,000), so the collection has an HNSW graph.
const BIG: usize = 2_100;

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A deterministic vector for key number `n`, generation `g`.
fn vector(n: usize, g: usize) -> Vec<f32> {
    (0..DIM)
        .map(|i| {
            let r = splitmix((n as u64) << 32 ^ (g as u64) << 8 ^ i as u64);
            (r >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

fn key(n: usize) -> String {
    format!("k{n:05}")
}

fn open(path: &Path) -> Strata {
    Strata::open(path).unwrap()
}

/// Creates `name` with `n` vectors (metadata on every third), in a few transactions.
fn fill(db: &Strata, run: &RunId, name: &str, n: usize) {
    db.vectors
        .create_collection(run, name, DIM, DistanceMetric::Cosine)
        .unwrap();
    for chunk in (0..n).collect::<Vec<_>>().chunks(700) {
        db.transaction(|txn| {
            for &i in chunk {
                let meta = (i % 3 == 0).then(|| json!({"g": (i % 7) as i64}));
                txn.vector_upsert(run, name, &key(i), &vector(i, 0), meta)?;
            }
            Ok(())
        })
        .unwrap();
    }
}

type Results = Vec<Vec<(String, u32)>>;

/// Search results (scores as bits, so that equality is exact) for fixed queries, with
/// and without a filter.
fn searches(db: &Strata, run: &RunId, name: &str) -> Results {
    let mut out = Vec::new();
    for q in 0..12 {
        let query = vector(900_000 + q, 0);
        for filter in [None, Some(SearchFilter::eq("g", 3i64))] {
            let r = db.vectors.search(run, name, &query, 10, filter).unwrap();
            out.push(r.into_iter().map(|m| (m.key, m.score.to_bits())).collect());
        }
    }
    out
}

fn index_file(db_dir: &Path, run: &RunId, name: &str) -> PathBuf {
    persist::file_path(db_dir, run, name)
}

/// Every key of a collection, through an exhaustive search (collections of at most 2,000
/// vectors are searched exactly, and the index must return `k` results).
fn all_keys(db: &Strata, run: &RunId, name: &str) -> BTreeSet<String> {
    let n = usize::try_from(db.vectors.count(run, name).unwrap()).unwrap();
    let r = db
        .vectors
        .search(run, name, &vector(1, 1), n + 5, None)
        .unwrap();
    assert_eq!(r.len(), n, "every indexed key has a record");
    r.into_iter().map(|m| m.key).collect()
}

#[test]
fn close_and_reopen_loads_the_index_file() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunId::DEFAULT;
    let (before, small_before) = {
        let db = open(dir.path());
        fill(&db, &run, "big", BIG);
        fill(&db, &run, "small", 50);
        assert_eq!(
            strata_vector::internal::index_source(&db.vectors, &run, "big"),
            Some(IndexSource::Created)
        );
        let r = (searches(&db, &run, "big"), searches(&db, &run, "small"));
        db.close().unwrap();
        r
    };
    let file = index_file(dir.path(), &run, "big");
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(&bytes[..8], b"STRATVIX");
    assert!(index_file(dir.path(), &run, "small").exists());

    let db = open(dir.path());
    assert_eq!(
        strata_vector::internal::index_source(&db.vectors, &run, "big"),
        Some(IndexSource::Loaded { replayed: 0 })
    );
    assert_eq!(
        strata_vector::internal::index_source(&db.vectors, &run, "small"),
        Some(IndexSource::Loaded { replayed: 0 })
    );
    assert_eq!(db.vectors.count(&run, "big").unwrap(), (BIG) as u64);
    assert_eq!(searches(&db, &run, "big"), before);
    assert_eq!(searches(&db, &run, "small"), small_before);
    // Nothing changed since the files were written: nothing to write.
    assert_eq!(db.vectors.persist_indexes().unwrap(), 0);
    // The graph keeps working after the load.
    db.vectors
        .upsert(&run, "big", "new", &vector(5, 5), None)
        .unwrap();
    let top = db
        .vectors
        .search(&run, "big", &vector(5, 5), 1, None)
        .unwrap();
    assert_eq!(top[0].key, "new");
    assert_eq!(db.vectors.persist_indexes().unwrap(), 1);
}

/// `(bytes in memory, bytes of vectors read from the mapped index file)`.
fn index_memory(db: &Strata, run: &RunId, name: &str) -> (usize, usize) {
    strata_vector::internal::index_memory(&db.vectors, run, name).unwrap()
}

/// Once an index file is written (and when one is loaded), the graph's vectors are read
/// in place from it: the same results, the vectors no longer in the process's memory;
/// later upserts, deletes, compaction and a second write keep every answer exact.
#[test]
fn written_and_loaded_index_files_are_read_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunId::DEFAULT;
    let raw = BIG * DIM * 4;
    let db = open(dir.path());
    fill(&db, &run, "big", BIG);
    let (held, mapped) = index_memory(&db, &run, "big");
    assert_eq!(mapped, 0, "nothing written yet");
    let before = searches(&db, &run, "big");
    db.checkpoint().unwrap();
    let (held_after, mapped) = index_memory(&db, &run, "big");
    assert_eq!(mapped, raw, "every vector is read from the file");
    assert!(held_after + raw <= held, "{held_after} + {raw} > {held}");
    assert_eq!(searches(&db, &run, "big"), before);

    // Upserts after the write go to memory and are found exactly; a second write maps
    // them too (the replaced file stays readable until the mapping moves on).
    db.vectors
        .upsert(&run, "big", "new", &vector(5, 5), None)
        .unwrap();
    db.vectors.delete(&run, "big", &key(7)).unwrap();
    let top = db
        .vectors
        .search(&run, "big", &vector(5, 5), 1, None)
        .unwrap();
    assert_eq!(top[0].key, "new");
    let with_new = searches(&db, &run, "big");
    assert!(with_new.iter().flatten().all(|(k, _)| k != &key(7)));
    db.checkpoint().unwrap();
    assert_eq!(index_memory(&db, &run, "big").1, raw + DIM * 4);
    assert_eq!(searches(&db, &run, "big"), with_new);
    db.close().unwrap();

    // Reopened: loaded from the file, its vectors read in place.
    let db = open(dir.path());
    assert_eq!(searches(&db, &run, "big"), with_new);
    assert_eq!(
        strata_vector::internal::index_source(&db.vectors, &run, "big"),
        Some(IndexSource::Loaded { replayed: 0 })
    );
    assert_eq!(index_memory(&db, &run, "big").1, raw + DIM * 4);
    // Deleting most vectors compacts the graph: its vectors come back into memory and
    // every answer stays exact against the records.
    for i in (0..BIG).filter(|i| i % 4 != 0) {
        db.vectors.delete(&run, "big", &key(i)).unwrap();
    }
    assert_eq!(index_memory(&db, &run, "big").1, 0, "compacted into memory");
    let left = all_keys(&db, &run, "big");
    assert_eq!(left.len(), BIG / 4 + 1, "the multiples of 4 and \"new\"");
    for i in (0..BIG).step_by(4).take(50) {
        let top = db
            .vectors
            .search(&run, "big", &vector(i, 0), 1, None)
            .unwrap();
        assert_eq!(top[0].key, key(i));
    }
    db.close().unwrap();
    let db = open(dir.path());
    assert_eq!(all_keys(&db, &run, "big"), left);
}

#[test]
fn changes_after_the_last_persist_are_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunId::DEFAULT;
    {
        let db = open(dir.path());
        fill(&db, &run, "big", BIG);
        fill(&db, &run, "small", 60);
        db.close().unwrap();
    }
    // Changes after the files were written, then a drop without close.
    let mut expected_small: BTreeSet<String> = (0..60).map(key).collect();
    {
        let db = open(dir.path());
        for name in ["big", "small"] {
            for i in 0..10 {
                db.vectors
                    .upsert(&run, name, &format!("new{i}"), &vector(50_000 + i, 0), None)
                    .unwrap();
            }
            for i in 0..5 {
                db.vectors
                    .upsert(&run, name, &key(i), &vector(i, 9), Some(json!({"g": 3})))
                    .unwrap();
            }
            for i in 20..28 {
                assert!(db.vectors.delete(&run, name, &key(i)).unwrap());
            }
        }
        for i in 0..10 {
            expected_small.insert(format!("new{i}"));
        }
        for i in 20..28 {
            expected_small.remove(&key(i));
        }
        drop(db);
    }
    let db = open(dir.path());
    for name in ["big", "small"] {
        assert_eq!(
            strata_vector::internal::index_source(&db.vectors, &run, name),
            Some(IndexSource::Loaded { replayed: 23 }),
            "{name}"
        );
    }
    assert_eq!(all_keys(&db, &run, "small"), expected_small);
    assert_eq!(
        db.vectors.count(&run, "big").unwrap(),
        (BIG + 10 - 8) as u64
    );
    for name in ["big", "small"] {
        for i in 0..5 {
            let top = db
                .vectors
                .search(&run, name, &vector(i, 9), 1, None)
                .unwrap();
            assert_eq!(
                top[0].key,
                key(i),
                "updated vector is searched by its new value"
            );
        }
        for i in 0..10 {
            let top = db
                .vectors
                .search(&run, name, &vector(50_000 + i, 0), 1, None)
                .unwrap();
            assert_eq!(top[0].key, format!("new{i}"));
        }
        // The updated metadata is what filters see.
        let r = db
            .vectors
            .search(
                &run,
                name,
                &vector(1, 9),
                100,
                Some(SearchFilter::eq("g", 3i64)),
            )
            .unwrap();
        for i in 0..5 {
            assert!(r.iter().any(|m| m.key == key(i)), "{name}: key {i}");
        }
    }
    // The replayed state is written at the next close and loads without replay.
    db.close().unwrap();
    let db = open(dir.path());
    assert_eq!(
        strata_vector::internal::index_source(&db.vectors, &run, "big"),
        Some(IndexSource::Loaded { replayed: 0 })
    );
    assert_eq!(all_keys(&db, &run, "small"), expected_small);
    assert_eq!(db.vectors.count(&run, "big").unwrap(), (BIG + 2) as u64);
}

#[test]
fn a_corrupted_index_file_falls_back_to_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunId::DEFAULT;
    let (big, small) = {
        let db = open(dir.path());
        fill(&db, &run, "big", BIG);
        fill(&db, &run, "small", 40);
        let r = (searches(&db, &run, "big"), all_keys(&db, &run, "small"));
        db.close().unwrap();
        r
    };
    let big_file = index_file(dir.path(), &run, "big");
    let small_file = index_file(dir.path(), &run, "small");
    let good_small = std::fs::read(&small_file).unwrap();
    // Flip one byte in the middle of the big collection's graph.
    let mut bytes = std::fs::read(&big_file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&big_file, &bytes).unwrap();
    let db = open(dir.path());
    assert_eq!(
        strata_vector::internal::index_source(&db.vectors, &run, "big"),
        Some(IndexSource::Rebuilt)
    );
    assert_eq!(
        strata_vector::internal::index_source(&db.vectors, &run, "small"),
        Some(IndexSource::Loaded { replayed: 0 })
    );
    assert_eq!(db.vectors.count(&run, "big").unwrap(), (BIG) as u64);
    // A rebuild inserts in key order like the original build did: the same graph.
    assert_eq!(searches(&db, &run, "big"), big);
    // Close rewrites the rebuilt index; the small collection's file is left as it was.
    db.close().unwrap();
    assert_eq!(std::fs::read(&small_file).unwrap(), good_small);

    // Every other kind of damage to the small collection's file: rebuilt, same keys.
    let mut variants: Vec<Vec<u8>> = Vec::new();
    for at in [0usize, 9, 13, 21, 30, 37, 41, good_small.len() - 1] {
        let mut b = good_small.clone();
        b[at] ^= 0x01;
        variants.push(b);
    }
    variants.push(good_small[..good_small.len() - 3].to_vec());
    variants.push(good_small[..20].to_vec());
    variants.push(Vec::new());
    let mut longer = good_small.clone();
    longer.push(0);
    variants.push(longer);
    for (i, v) in variants.iter().enumerate() {
        std::fs::write(&small_file, v).unwrap();
        let db = open(dir.path());
        assert_eq!(
            strata_vector::internal::index_source(&db.vectors, &run, "small"),
            Some(IndexSource::Rebuilt),
            "variant {i}"
        );
        assert_eq!(all_keys(&db, &run, "small"), small, "variant {i}");
        drop(db);
    }
    // The next close after the collection is used (its index loaded, here rebuilt)
    // writes a good file again.
    let db = open(dir.path());
    assert_eq!(all_keys(&db, &run, "small"), small);
    db.close().unwrap();
    let db = open(dir.path());
    assert_eq!(
        strata_vector::internal::index_source(&db.vectors, &run, "small"),
        Some(IndexSource::Loaded { replayed: 0 })
    );
    assert_eq!(all_keys(&db, &run, "small"), small);
}

#[test]
fn a_recreated_collection_does_not_load_the_stale_file() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunId::DEFAULT;
    {
        let db = open(dir.path());
        fill(&db, &run, "c", 60); // above MAX_UNPERSISTED_VECTORS: it gets a file
        db.close().unwrap();
    }
    let file = index_file(dir.path(), &run, "c");
    assert!(file.exists());
    {
        let db = open(dir.path());
        assert!(db.vectors.delete_collection(&run, "c").unwrap());
        db.vectors
            .create_collection(&run, "c", DIM, DistanceMetric::Euclidean)
            .unwrap();
        for i in 100..105 {
            db.vectors
                .upsert(&run, "c", &key(i), &vector(i, 0), None)
                .unwrap();
        }
        drop(db); // The stale file stays on disk.
    }
    assert!(file.exists());
    let db = open(dir.path());
    assert_eq!(
        strata_vector::internal::index_source(&db.vectors, &run, "c"),
        Some(IndexSource::Rebuilt)
    );
    let expected: BTreeSet<String> = (100..105).map(key).collect();
    assert_eq!(all_keys(&db, &run, "c"), expected);
    assert_eq!(
        db.vectors
            .collection_info(&run, "c")
            .unwrap()
            .unwrap()
            .metric,
        DistanceMetric::Euclidean
    );
    // Deleting the collection and closing removes its file (and the empty run folder).
    assert!(db.vectors.delete_collection(&run, "c").unwrap());
    db.close().unwrap();
    assert!(!file.exists());
    assert!(!file.parent().unwrap().exists());
}

#[test]
fn an_ephemeral_database_writes_no_index_file() {
    let db = Strata::ephemeral().unwrap();
    let run = RunId::DEFAULT;
    fill(&db, &run, "c", 10);
    assert_eq!(db.vectors.persist_indexes().unwrap(), 0);
    db.close().unwrap();
}

// ---------------------------------------------------------------------------------------
// A writer killed with SIGKILL.

const KILL_ENV: &str = "STRATA_VECTOR_KILL_DIR";
const KILL_SMALL: usize = 40;

/// The expected contents of (`big`, `small`) after iteration `j` of the writer.
fn kill_state(j: usize) -> [BTreeMap<String, Vec<f32>>; 2] {
    let mut big: BTreeMap<String, Vec<f32>> = (0..BIG).map(|n| (key(n), vector(n, 0))).collect();
    let mut small: BTreeMap<String, Vec<f32>> =
        (0..KILL_SMALL).map(|n| (key(n), vector(n, 0))).collect();
    for i in 1..=j {
        for (m, base) in [(&mut big, BIG), (&mut small, KILL_SMALL)] {
            for (n, v) in kill_ops(i, base).0 {
                m.insert(key(n), v);
            }
            for n in kill_ops(i, base).1 {
                m.remove(&key(n));
            }
        }
    }
    [big, small]
}

/// Iteration `i` (from 1) of the writer on a collection first filled with `base` keys:
/// (upserts, deletes).
#[allow(clippy::type_complexity)]
fn kill_ops(i: usize, base: usize) -> (Vec<(usize, Vec<f32>)>, Vec<usize>) {
    let mut up = Vec::new();
    // Three new keys, two updates of early keys.
    for t in 0..3 {
        let n = base + 3 * (i - 1) + t;
        up.push((n, vector(n, 0)));
    }
    for t in 0..2 {
        up.push(((2 * i + t) % (base / 2), vector(t, i)));
    }
    // Deletes: one key from the second half of the first fill, cycling; and the first
    // new key of the previous iteration.
    let mut del = vec![base / 2 + (i * 7) % (base / 2)];
    if i > 1 {
        del.push(base + 3 * (i - 2));
    }
    (up, del)
}

/// The child process: writes forever (strict durability), printing each committed
/// iteration, writing the index files every 5 iterations.
#[test]
#[ignore = "run by sigkilled_writer_leaves_exactly_the_committed_vectors"]
fn kill_child() {
    let Ok(path) = std::env::var(KILL_ENV) else {
        return;
    };
    let db = StrataBuilder::new().path(&path).strict().open().unwrap();
    let run = RunId::DEFAULT;
    fill(&db, &run, "big", BIG);
    fill(&db, &run, "small", KILL_SMALL);
    db.kv.put(&run, "iter", 0i64).unwrap();
    println!("COMMITTED 0");
    for i in 1..=400usize {
        db.transaction(|txn| {
            for (name, base) in [("big", BIG), ("small", KILL_SMALL)] {
                let (up, del) = kill_ops(i, base);
                for (n, v) in up {
                    txn.vector_upsert(&run, name, &key(n), &v, None)?;
                }
                for n in del {
                    txn.vector_delete(&run, name, &key(n))?;
                }
            }
            txn.kv_set(&run, "iter", i as i64)?;
            Ok(())
        })
        .unwrap();
        println!("COMMITTED {i}");
        if i % 5 == 0 {
            db.vectors.persist_indexes().unwrap();
        }
    }
    std::thread::sleep(std::time::Duration::from_secs(600));
}

#[test]
fn sigkilled_writer_leaves_exactly_the_committed_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "kill_child", "--ignored", "--nocapture"])
        .env(KILL_ENV, dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut last = None;
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("COMMITTED ") {
            let n: usize = n.trim().parse().unwrap();
            last = Some(n);
            if n >= 23 {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    let last = last.expect("the writer committed");
    assert!(last >= 23);

    let db = open(dir.path());
    let run = RunId::DEFAULT;
    let j = db.kv.get("iter").unwrap().unwrap().as_int().unwrap() as usize;
    assert!(
        j >= last,
        "every acknowledged commit survives (strict mode)"
    );
    for name in ["big", "small"] {
        assert!(
            matches!(
                strata_vector::internal::index_source(&db.vectors, &run, name),
                Some(IndexSource::Loaded { .. })
            ),
            "{name}: the file written every 5 iterations is loaded"
        );
    }
    let [big, small] = kill_state(j);
    let small_keys: BTreeSet<String> = small.keys().cloned().collect();
    assert_eq!(all_keys(&db, &run, "small"), small_keys);
    assert_eq!(db.vectors.count(&run, "big").unwrap(), (big.len()) as u64);
    // Every vector changed by the writer is found by its committed value.
    for i in 1..=j {
        for (n, _) in kill_ops(i, BIG).0 {
            let Some(v) = big.get(&key(n)) else {
                continue;
            };
            let top = db.vectors.search(&run, "big", v, 1, None).unwrap();
            assert_eq!(&top[0].key, &key(n));
        }
    }
    for (k, v) in small.iter() {
        let got = db.vectors.get(&run, "small", k).unwrap().unwrap();
        assert_eq!(&got.value.vector, v);
    }
}

/// Checks every score of `searches`' queries against the exact cosine of its vector.
fn assert_exact_scores(db: &Strata, run: &RunId, name: &str) {
    for q in 0..12 {
        let query = vector(900_000 + q, 0);
        let r = db.vectors.search(run, name, &query, 10, None).unwrap();
        assert_eq!(r.len(), 10);
        for m in r {
            let n: usize = m.key[1..].parse().unwrap();
            let exact = DistanceMetric::Cosine.score(&query, &vector(n, 0));
            assert!(
                (m.score - exact).abs() < 1e-5,
                "{}: {} vs {exact}",
                m.key,
                m.score
            );
        }
    }
}

/// A collection created with the int8 working copy keeps that setting in its definition:
/// after a reopen that loads its index file, after a rebuild from the records, and in a
/// fork; its scores are exact throughout.
#[test]
fn quantized_collections_keep_their_setting_across_reopen_rebuild_and_fork() {
    use stratadb::{CollectionOptions, Quantization};
    let dir = tempfile::tempdir().unwrap();
    let run = RunId::DEFAULT;
    let int8 = CollectionOptions::default().quantization(Quantization::Int8);
    // What the definition says, and what the loaded index compares.
    let quantization = |db: &Strata, run: &RunId| {
        let defined = db
            .vectors
            .collection_info(run, "q")
            .unwrap()
            .unwrap()
            .quantization;
        let in_use = strata_vector::internal::index_quantization(&db.vectors, run, "q");
        assert_eq!(Some(defined), in_use);
        defined
    };
    let before = {
        let db = open(dir.path());
        db.vectors
            .create_collection_with(&run, "q", DIM, DistanceMetric::Cosine, int8)
            .unwrap();
        // The name is taken whatever the options.
        let again = db
            .vectors
            .create_collection_with(&run, "q", DIM, DistanceMetric::Cosine, int8);
        assert!(matches!(again, Err(Error::ConstraintViolation(_))));
        db.transaction(|txn| {
            for i in 0..BIG {
                txn.vector_upsert(&run, "q", &key(i), &vector(i, 0), None)?;
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(quantization(&db, &run), Quantization::Int8);
        // A plain collection beside it reports none.
        fill(&db, &run, "plain", 10);
        let plain = db.vectors.collection_info(&run, "plain").unwrap().unwrap();
        assert_eq!(plain.quantization, Quantization::None);
        assert_eq!(
            strata_vector::internal::index_quantization(&db.vectors, &run, "plain"),
            Some(Quantization::None)
        );
        assert_exact_scores(&db, &run, "q");
        let r = searches(&db, &run, "q");
        db.close().unwrap();
        r
    };
    {
        let db = open(dir.path());
        assert_eq!(
            strata_vector::internal::index_source(&db.vectors, &run, "q"),
            Some(IndexSource::Loaded { replayed: 0 })
        );
        assert_eq!(quantization(&db, &run), Quantization::Int8);
        assert_eq!(searches(&db, &run, "q"), before);
        assert_exact_scores(&db, &run, "q");
        let fork = db.runs.fork(&run, None).unwrap();
        assert_eq!(quantization(&db, &fork), Quantization::Int8);
        db.vectors
            .upsert(&fork, "q", &key(7), &vector(7, 9), None)
            .unwrap();
        let top = db
            .vectors
            .search(&fork, "q", &vector(7, 9), 1, None)
            .unwrap();
        assert_eq!(top[0].key, key(7));
        assert!((top[0].score - 1.0).abs() < 1e-5);
        // Enough writes of its own for the fork to grow a graph, searched together with
        // its parent's (the bridge walk compares full-precision vectors throughout).
        db.transaction(|txn| {
            for i in BIG..2 * BIG {
                txn.vector_upsert(&fork, "q", &key(i), &vector(i, 0), None)?;
            }
            Ok(())
        })
        .unwrap();
        assert_exact_scores(&db, &fork, "q");
        assert!(strata_vector::internal::is_bridged(&db.vectors, &fork, "q"));
        let mine = db
            .vectors
            .search(&fork, "q", &vector(BIG + 3, 0), 1, None)
            .unwrap();
        assert_eq!(mine[0].key, key(BIG + 3));
        db.close().unwrap();
    }
    // Without its index file the collection is rebuilt from its records, quantized.
    std::fs::remove_file(index_file(dir.path(), &run, "q")).unwrap();
    let db = open(dir.path());
    assert_eq!(
        strata_vector::internal::index_source(&db.vectors, &run, "q"),
        Some(IndexSource::Rebuilt)
    );
    assert_eq!(quantization(&db, &run), Quantization::Int8);
    assert_exact_scores(&db, &run, "q");
}

/// Checkpoints (two threads of them) racing a writer whose batches replace vectors
/// often enough to compact the graph: the index never adopts a file that does not hold
/// its vectors, and no file claims a change its index lacks — every stored vector is
/// found, exactly scored, before and after a reopen.
#[test]
fn checkpoints_racing_writes_keep_every_vector_exact() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let run = RunId::DEFAULT;
    let db = open(dir.path());
    fill(&db, &run, "big", BIG);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    db.checkpoint().unwrap();
                }
            });
        }
        for round in 1..=12 {
            // Replace a fifth of the keys, add a few new ones.
            let items: Vec<(String, Vec<f32>, Option<Value>)> = (0..BIG / 5)
                .map(|i| (key((i * 5 + round) % BIG), vector(i, round), None))
                .chain((0..20).map(|i| (format!("n{round}-{i}"), vector(i, 100 + round), None)))
                .collect();
            db.vectors.upsert_batch(&run, "big", items).unwrap();
        }
        stop.store(true, Ordering::Relaxed);
    });
    let check = |db: &Strata| {
        let keys = all_keys(db, &run, "big");
        for k in keys.iter().step_by(17) {
            let rec = db.vectors.get(&run, "big", k).unwrap().unwrap();
            let top = db
                .vectors
                .search(&run, "big", &rec.value.vector, 1, None)
                .unwrap();
            assert_eq!(&top[0].key, k);
            let exact = DistanceMetric::Cosine.score(&rec.value.vector, &rec.value.vector);
            assert!((top[0].score - exact).abs() < 1e-5, "{k}: {top:?}");
        }
        keys
    };
    let before = check(&db);
    db.close().unwrap();
    let db = open(dir.path());
    assert_eq!(check(&db), before);
}
