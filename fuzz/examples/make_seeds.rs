//! Writes the seed inputs of every fuzz target into `fuzz/seeds/<target>/`: real log
//! segments and snapshots written by `Storage` (format 2), the v0.1 fixtures (format 1),
//! real vector index bytes (exact and with an HNSW graph), encoded values, and
//! hand-written JSONPath and filter cases.
//!
//! Run from `fuzz/`: `cargo run --example make_seeds`, then fuzz from `fuzz/seeds/<t>`
//! and merge into `fuzz/corpus/<t>` (see README.md).
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_core::{codec, RunId, Value};
use strata_storage::{encode_key, DurabilityMode, Primitive, Storage, StorageOptions, Write};
use strata_vector::{CollectionConfig, CollectionIndex, DistanceMetric};

fn out(target: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target);
    fs::create_dir_all(&d).unwrap();
    d
}

fn put(target: &str, name: &str, bytes: &[u8]) {
    fs::write(out(target).join(name), bytes).unwrap();
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap()
}

fn values() -> Vec<Value> {
    let mut v = vec![
        Value::Null,
        Value::Bool(true),
        Value::Int(-1),
        Value::Int(i64::MAX),
        Value::Int(300),
        Value::Float(-0.0),
        Value::Float(f64::NAN),
        Value::Float(1.5),
        Value::String("hello".into()),
        Value::Bytes(vec![0, 1, 2, 255]),
        json(r#"{"a": [1, 2.5, "x", null, {"b": false}], "c": {"d": "e"}}"#),
    ];
    let mut deep = Value::Int(1);
    for _ in 0..20 {
        deep = Value::Array(vec![deep]);
    }
    v.push(deep);
    v
}

fn storage_files(segment_size: u64, commits: usize, checkpoint_at: Option<usize>, tag: &str) {
    let dir = tempfile::tempdir().unwrap();
    let options = StorageOptions {
        durability: DurabilityMode::Strict,
        segment_size,
        snapshot_on_close: false,
        ..StorageOptions::default()
    };
    let storage = Storage::open(dir.path(), options).unwrap();
    let run = RunId::from_bytes([3; 16]);
    let vals = values();
    for i in 0..commits {
        let mut writes = vec![Write {
            key: encode_key(&run, Primitive::Kv, format!("k{}", i % 5).as_bytes()).into(),
            value: Some(Arc::from(codec::encode(&vals[i % vals.len()]).unwrap())),
        }];
        if i % 3 == 0 {
            writes.push(Write {
                key: encode_key(&run, Primitive::Json, format!("d{i}").as_bytes()).into(),
                value: None,
            });
        }
        storage.commit(writes, |_| Ok(())).unwrap();
        if Some(i) == checkpoint_at {
            storage.checkpoint().unwrap();
        }
    }
    storage.flush().unwrap();
    for e in fs::read_dir(dir.path()).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        let bytes = fs::read(e.path()).unwrap();
        if name.ends_with(".log") {
            // Segments are allocated ahead (zeros): keep what fits the fuzzer's
            // `-max_len`.
            put(
                "wal_segment",
                &format!("{tag}-{name}"),
                &bytes[..bytes.len().min(8192)],
            );
            put(
                "wal_segment",
                &format!("{tag}-sealed-{name}"),
                &sealed_wal(&bytes),
            );
        } else if name.ends_with(".snap") {
            put("snapshot", &format!("{tag}-{name}"), &bytes);
            put(
                "snapshot",
                &format!("{tag}-sealed-{name}"),
                &sealed_snapshot(&bytes),
            );
        }
    }
    storage.close().unwrap();
}

/// Appends `piece` with its two-byte length prefix (the input format of the sealed
/// halves of the `wal_segment` and `snapshot` targets).
fn push_piece(out: &mut Vec<u8>, piece: &[u8]) {
    out.extend_from_slice(&(piece.len() as u16).to_le_bytes());
    out.extend_from_slice(piece);
}

/// A `wal_sealed` input holding the payloads of a real segment's frames.
fn sealed_wal(seg: &[u8]) -> Vec<u8> {
    let mut payloads = Vec::new();
    let mut pos = 48;
    while pos + 32 <= seg.len() {
        let len = u32::from_le_bytes(seg[pos..pos + 4].try_into().unwrap()) as usize;
        if seg[pos + 8..pos + 16] == [0; 8] {
            break; // the zeros of the space allocated ahead
        }
        let Some(p) = seg.get(pos + 32..pos + 32 + len) else {
            break;
        };
        payloads.push(p);
        pos += 32 + len;
    }
    let mut out = vec![(payloads.len().min(63) as u8) << 2];
    for p in payloads {
        push_piece(&mut out, p);
    }
    out
}

/// A `snapshot_sealed` input holding the blocks of a real format-2 snapshot, with its
/// entry count.
fn sealed_snapshot(snap: &[u8]) -> Vec<u8> {
    let mut blocks = Vec::new();
    let f = snap.len() - 48;
    let index_off = u64::from_le_bytes(snap[f..f + 8].try_into().unwrap()) as usize;
    let entries = &snap[f + 32..f + 40];
    let mut pos = 32;
    while pos < index_off {
        let len = u32::from_le_bytes(snap[pos..pos + 4].try_into().unwrap()) as usize;
        blocks.push(&snap[pos + 8..pos + 8 + len]);
        pos += 8 + len;
    }
    let mut out = vec![0x20 | blocks.len().min(15) as u8];
    out.extend_from_slice(entries);
    for b in blocks {
        push_piece(&mut out, b);
    }
    out
}

fn main() {
    for (i, v) in values().iter().enumerate() {
        put("codec", &format!("value-{i}"), &codec::encode(v).unwrap());
    }

    storage_files(1 << 20, 4, None, "small");
    storage_files(2048, 12, Some(6), "rolled");
    storage_files(1 << 20, 10, Some(9), "ckpt");

    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/stratadb/tests/data");
    for (from, target, name) in [
        (
            "v0.1-crashed/wal-00000000000000000001.log",
            "wal_segment",
            "v1-crashed.log",
        ),
        (
            "v0.1-closed/wal-00000000000000000021.log",
            "wal_segment",
            "v1-closed.log",
        ),
        (
            "v0.1-closed/snap-00000000000000000020.snap",
            "snapshot",
            "v1-closed.snap",
        ),
    ] {
        put(target, name, &fs::read(fixtures.join(from)).unwrap());
    }

    for (n, threshold, metric) in [
        (0usize, 2000usize, DistanceMetric::Cosine),
        (6, 2000, DistanceMetric::Euclidean),
        (24, 8, DistanceMetric::Cosine),
        (12, 4, DistanceMetric::DotProduct),
    ] {
        let mut c = CollectionConfig::new(3, metric);
        c.exact_threshold = threshold;
        let mut ix = CollectionIndex::new(c).unwrap();
        for i in 0..n {
            let v = [(i % 5) as f32 - 2.0, (i % 3) as f32 + 0.5, i as f32 * 0.1];
            let meta = (i % 2 == 0).then(|| json(&format!(r#"{{"g": {}, "n": {i}.5}}"#, i % 3)));
            ix.upsert(&format!("k{i}"), &v, meta).unwrap();
        }
        for i in (0..n).step_by(5) {
            ix.delete(&format!("k{i}"));
        }
        put(
            "vector_index",
            &format!("index-{n}-{threshold}"),
            &ix.to_bytes().unwrap(),
        );
    }

    let doc = r#"{"a": {"b": [1, 2.5, "x", null, true, {"c": [3]}]}, "n": 7, "tags": ["p", "q"], "items": [{"price": 5, "name": "a"}, {"price": 15}]}"#;
    for (i, path) in [
        "$",
        "$.a.b[0]",
        "$.a.b[-1].c",
        "$['a']['b'][5]",
        "$.tags[*]",
        "$..c",
        "$.a.b[1:4:2]",
        "$.tags[0,1]",
        "$.items[?@.price < 10].name",
        "$[?length(@.tags) > 1]",
        "$.items[?match(@.name, 'a.*')]",
        "$.new.path[0]",
        "$.items[?@.price == 15 && !@.name]",
        "$.a[?search(@, 'x') || count(@.*) > 2]",
    ]
    .iter()
    .enumerate()
    {
        put(
            "json_path",
            &format!("path-{i}"),
            format!("{path}\n{doc}").as_bytes(),
        );
    }

    for (i, f) in [
        r#"[{"Eq": ["lang", "en"]}, {"lang": "en"}, {"lang": "fr"}, null, 3]"#,
        r#"[{"In": ["k", [1, 2.0, "x"]]}, {"k": 2}, {"k": "x"}, {"k": [1]}]"#,
        r#"[{"Contains": ["tags", "a"]}, {"tags": ["a", "b"]}, {"tags": "a"}]"#,
        r#"[{"Range": {"field": "year", "gte": 2000, "lt": 2010.5}}, {"year": 2004}, {"year": 1999.0}, {"year": "2004"}]"#,
        r#"[{"Not": {"Exists": "p"}}, {"p": null}, {}]"#,
        r#"[{"And": [{"Eq": ["a", 1]}, {"Or": [{"Exists": "b"}, {"Not": {"Eq": ["c", true]}}]}]}, {"a": 1.0, "c": true}, {"a": 1, "b": []}]"#,
        r#"[{"Or": []}, {"x": 1}]"#,
        r#"[{"And": []}, {"x": 1}, null]"#,
        r#"[{"Eq": ["o", {"k": [1, 2]}]}, {"o": {"k": [1, 2]}}, {"o": {"k": [1.0, 2]}}]"#,
    ]
    .iter()
    .enumerate()
    {
        put("search_filter", &format!("filter-{i}"), f.as_bytes());
    }
    println!("seeds written to {}", out("").display());
}
