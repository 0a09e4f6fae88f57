//! The bodies of StrataDB's fuzz targets, one function per target.
//!
//! Each function takes the fuzzer's input bytes, feeds them to one reader or evaluator,
//! and panics only when a documented property breaks (the functions under test must
//! never panic themselves: bad input is an `Err`). The same file is compiled twice:
//!
//! - here, as the library of the `strata-fuzz` crate, which the libFuzzer binaries in
//!   `fuzz_targets/` call;
//! - in `crates/stratadb/tests/fuzz_corpus.rs` (through `#[path]`), which replays every
//!   file of `fuzz/corpus/<target>/` through the same function on every `cargo test`,
//!   without libFuzzer and without depending on this crate.
//!
//! So this file may only use crates that both have: the StrataDB crates and `serde_json`.
//! It must not carry crate-level attributes.

use std::path::Path;

use strata_core::{codec, Value};
use strata_primitives::json_path;
use strata_storage::snapshot::verify_snapshot;
use strata_storage::wal::{scan_segment, SegmentScan, WAL_HEADER_LEN};
use strata_vector::filter::MetadataColumns;
use strata_vector::{CollectionIndex, SearchFilter, SearchStrategy};

/// `true` when `a` and `b` are the same value bit for bit (floats by their bits, so NaN
/// payloads and -0.0 count).
fn bit_identical(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| bit_identical(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| bit_identical(v, w)))
        }
        _ => a == b,
    }
}

/// Target `codec`: `strata_core::codec::decode` of arbitrary bytes never panics;
/// `codec::validate` accepts exactly what it decodes; what decodes and is within the
/// nesting limit encodes, and decodes back to the same value bit for bit, and its encoding
/// is a fixed point.
pub fn codec(data: &[u8]) {
    let valid = codec::validate(data);
    let Ok(value) = codec::decode(data) else {
        assert!(valid.is_err(), "validate accepts bytes that decode refuses");
        return;
    };
    if let Err(e) = valid {
        panic!("validate refuses bytes that decode accepts: {e}");
    }
    // Values deeper than the limit are refused by `encode` (documented); that is fine.
    let Ok(bytes) = codec::encode(&value) else {
        assert!(
            value.depth() > strata_core::limits::MAX_NESTING_DEPTH,
            "a decoded value within the limits failed to encode"
        );
        return;
    };
    let back = codec::decode(&bytes).expect("an encoded value must decode");
    assert!(bit_identical(&value, &back), "{value:?} != {back:?}");
    let again = codec::encode(&back).expect("a decoded value must encode again");
    // Object members are written in hash-map order, so encodings are only comparable
    // when no object can reorder.
    if !contains_object(&value) {
        assert_eq!(bytes, again, "encoding is not a fixed point");
    }
}

fn contains_object(v: &Value) -> bool {
    match v {
        Value::Object(_) => true,
        Value::Array(a) => a.iter().any(contains_object),
        _ => false,
    }
}

/// Target `wal_segment`: `strata_storage::wal::scan_segment` of arbitrary bytes, as the
/// newest segment and as a sealed one, never panics, and what it reports is consistent
/// with the records it delivered.
pub fn wal_segment(data: &[u8]) {
    // Name the segment after the base version its header claims, so that the fuzzer
    // reaches the frames instead of stopping at the name check every time.
    let base = data
        .get(16..24)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
        .unwrap_or(1);
    wal_segment_with_base(data, base);
    wal_sealed(data);
}

fn wal_segment_with_base(data: &[u8], base: u64) {
    let path = Path::new("fuzz/wal-00000000000000000001.log");
    for is_last in [true, false] {
        let mut versions = Vec::new();
        let scan = scan_segment(path, data, base, is_last, &mut |rec| {
            versions.push(rec.version);
            Ok(())
        });
        match scan {
            Ok(SegmentScan::Segment(s)) => {
                assert!(
                    s.valid_len <= data.len() as u64,
                    "valid prefix {} is longer than the file {}",
                    s.valid_len,
                    data.len()
                );
                assert!(
                    s.valid_len + s.torn_bytes <= data.len() as u64,
                    "torn tail goes past the end of the file"
                );
                if !is_last {
                    assert_eq!(s.torn_bytes, 0, "a sealed segment reported a torn tail");
                }
                assert_eq!(s.first_version, versions.first().copied());
                assert_eq!(s.last_version, versions.last().copied());
                assert!(
                    versions.windows(2).all(|w| w[0] < w[1]),
                    "record versions are not increasing: {versions:?}"
                );
            }
            Ok(SegmentScan::TornCreation) => {
                assert!(is_last, "only the newest segment can be a torn creation");
                assert!(versions.is_empty(), "a torn creation delivered records");
                assert!(
                    data.get(WAL_HEADER_LEN..)
                        .unwrap_or(&[])
                        .iter()
                        .all(|&b| b == 0),
                    "a torn creation with data after its header"
                );
            }
            Err(_) => {}
        }
    }
}

/// Splits `data` into pieces, each prefixed by a two-byte little-endian length (the
/// last piece takes what is left), so that a fuzzer can build structured files out of
/// raw bytes.
fn pieces(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while rest.len() >= 2 {
        let n = usize::from(u16::from_le_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        out.push(&rest[2..2 + n]);
        rest = &rest[2 + n..];
    }
    out
}

/// The second half of target `wal_segment`: builds a format-2 segment whose header and
/// frames carry *valid* checksums around fuzzed payloads (checksums are what random
/// mutation cannot get through), followed by a fuzzed tail, and scans it. This reaches
/// the commit record decoder and the version checks with arbitrary payloads.
///
/// Input: a control byte (bit 0: shift one frame's version, bit 1: bad durable mark on
/// one frame, bits 2-7: how many pieces become frames), then length-prefixed pieces.
pub fn wal_sealed(data: &[u8]) {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let parts = pieces(rest);
    let frames = usize::from(control >> 2).min(parts.len());
    let salt = 0x5eed_5a17;
    // Start at the version the first payload claims, so that real payloads line up.
    let base = parts
        .first()
        .and_then(|p| strata_storage::record::decode_payload(p).ok())
        .map(|r| r.version)
        .filter(|v| (1..u64::MAX / 2).contains(v))
        .unwrap_or(7);
    let mut seg = strata_storage::wal::SegmentHeader {
        salt,
        base,
        prev_len: 0,
    }
    .encode()
    .to_vec();
    for (i, payload) in parts[..frames].iter().enumerate() {
        let mut version = base + i as u64;
        let mut durable = version - 1;
        if i == 1 && control & 1 != 0 {
            version += 1;
        }
        if i == 2 && control & 2 != 0 {
            durable = version;
        }
        strata_storage::wal::encode_frame(salt, version, durable, payload, &mut seg);
        let _ = strata_storage::record::decode_payload(payload);
    }
    for tail in &parts[frames..] {
        seg.extend_from_slice(tail);
    }
    wal_segment_with_base(&seg, base);
}

/// Target `snapshot`: `strata_storage::snapshot::verify_snapshot` of arbitrary bytes
/// never panics.
pub fn snapshot(data: &[u8]) {
    let path = Path::new("fuzz/snap-00000000000000000001.snap");
    let _ = verify_snapshot(path, data);
    snapshot_sealed(data);
}

/// The second half of target `snapshot`: builds a format-2 snapshot whose header, block,
/// index and footer checksums are *valid* around fuzzed block contents, and verifies it.
/// This reaches the entry decoder (lengths, same-key marks, kinds, order, limits) with
/// arbitrary bytes.
///
/// Input: a control byte (the low 4 bits: how many pieces become blocks; bit 4: a wrong
/// block count in the footer; bit 5: entry count from the next 8 bytes), then
/// length-prefixed pieces (see `pieces`). The snapshot's version is 1000.
pub fn snapshot_sealed(data: &[u8]) {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let (entry_count, rest) = if control & 0x20 != 0 && rest.len() >= 8 {
        let (n, r) = rest.split_at(8);
        (u64::from_le_bytes(n.try_into().unwrap_or([0; 8])), r)
    } else {
        (0, rest)
    };
    let blocks = pieces(rest);
    let version: u64 = 1000;
    let mut f = Vec::new();
    f.extend_from_slice(b"STRATSNP");
    f.extend_from_slice(&2u32.to_le_bytes());
    f.extend_from_slice(&0u32.to_le_bytes());
    f.extend_from_slice(&version.to_le_bytes());
    f.extend_from_slice(&0u32.to_le_bytes());
    let crc = crc32c(&f[..28]);
    f.extend_from_slice(&crc.to_le_bytes());
    let mut index = Vec::new();
    let count = usize::from(control & 0x0f).min(blocks.len());
    for block in &blocks[..count] {
        let offset = f.len() as u64;
        let len = (block.len() as u32).to_le_bytes();
        f.extend_from_slice(&len);
        f.extend_from_slice(&crc32c_append(crc32c(&len), block).to_le_bytes());
        f.extend_from_slice(block);
        // An empty first key: the verifier checks the index entry's offset and length.
        index.extend_from_slice(&0u32.to_le_bytes());
        index.extend_from_slice(&offset.to_le_bytes());
        index.extend_from_slice(&len);
    }
    let index_offset = f.len() as u64;
    f.extend_from_slice(&index);
    f.extend_from_slice(&index_offset.to_le_bytes());
    f.extend_from_slice(&(index.len() as u64).to_le_bytes());
    f.extend_from_slice(&crc32c(&index).to_le_bytes());
    f.extend_from_slice(&0u32.to_le_bytes());
    let block_count = count as u64 + u64::from(control & 0x10 != 0);
    f.extend_from_slice(&block_count.to_le_bytes());
    f.extend_from_slice(&entry_count.to_le_bytes());
    f.extend_from_slice(b"STRATEND");
    let path = Path::new("fuzz/snap-00000000000000001000.snap");
    if let Ok((v, n)) = verify_snapshot(path, &f) {
        assert_eq!(v, version);
        assert_eq!(n, entry_count);
    }
}

/// CRC-32C (Castagnoli), bitwise: the checksum of the storage formats. Written out here
/// because this file may only use what both of its users depend on.
fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82f6_3b78
            } else {
                c >> 1
            };
        }
    }
    !c
}

fn crc32c(data: &[u8]) -> u32 {
    crc32c_append(0, data)
}

/// Target `vector_index`: `CollectionIndex::from_bytes` (the index part of a vector index
/// file, after the file's header and checksum) of arbitrary bytes never panics; an index
/// that loads can be searched (exact and HNSW, with and without a filter), re-encoded,
/// and its encoding loads back to the same encoding.
pub fn vector_index(data: &[u8]) {
    let Ok(mut index) = CollectionIndex::from_bytes(data) else {
        return;
    };
    let dim = index.dimension();
    let query: Vec<f32> = (0..dim).map(|i| (i % 7) as f32 * 0.25 - 0.5).collect();
    let filter = SearchFilter::exists("g").or(SearchFilter::range("n", 0.0..10.0));
    for k in [1, 5] {
        for strategy in [SearchStrategy::Exact, SearchStrategy::Hnsw] {
            for f in [None, Some(&filter)] {
                if let Ok(hits) = index.search_using(&query, k, f, strategy) {
                    assert!(hits.len() <= k, "more hits than asked for");
                }
            }
        }
    }
    let _ = index.search(&query, 3, Some(&filter));
    let _ = index.estimate_selectivity(&filter);
    let listed = index.iter().count();
    assert_eq!(listed, index.len(), "iter() and len() disagree");
    let bytes = index.to_bytes().expect("a loaded index must encode");
    let back = CollectionIndex::from_bytes(&bytes).expect("an encoded index must load");
    assert_eq!(back.len(), index.len());
    // Metadata objects are written in hash-map order: compare lengths, not bytes.
    assert_eq!(
        back.to_bytes().expect("a loaded index must encode").len(),
        bytes.len(),
        "re-encoding changed the size"
    );
    // Updates on a loaded index must work too (they walk the loaded graph).
    let key = index.iter().next().map(|(k, _, _)| k.to_owned());
    if let Some(key) = key {
        let _ = index.upsert(&key, &query, None);
        let _ = index.upsert("fuzz-new-key", &query, None);
        index.delete(&key);
        let _ = index.search(&query, 2, None);
    }
}

/// A document used when the input's document part is not valid JSON.
fn default_document() -> Value {
    let json = r#"{"a": {"b": [1, 2.5, "x", null, true, {"c": [3]}]}, "n": 7,
        "tags": ["p", "q"], "o": {"k": {"k": {"k": 1}}}, "": {"": 0}}"#;
    serde_json::from_str(json).unwrap_or(Value::Null)
}

/// Target `json_path`: input is `<path>\n<document as JSON>` (the document falls back to
/// a fixed one when it does not parse). `get_path`, `is_singular_path`, `set_path`,
/// `delete_path` and `merge_at` never panic; a failed update leaves the document
/// unchanged; a successful `set_path` on a singular path is read back by `get_path`.
pub fn json_path(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (path, doc_text) = text.split_once('\n').unwrap_or((text, ""));
    let doc: Value = serde_json::from_str(doc_text).unwrap_or_else(|_| default_document());

    let got = json_path::get_path(&doc, path);
    let singular = json_path::is_singular_path(path);
    assert_eq!(
        got.is_ok(),
        singular.is_ok(),
        "get_path and is_singular_path disagree on whether {path:?} parses"
    );
    if let (Ok(got), Ok(false)) = (&got, &singular) {
        assert!(
            matches!(got, Some(Value::Array(_))),
            "a non-singular path must give an array"
        );
    }

    let new_value = Value::Int(424242);
    let mut d = doc.clone();
    match json_path::set_path(&mut d, path, new_value.clone()) {
        Ok(()) => {
            if matches!(singular, Ok(true)) {
                let back = json_path::get_path(&d, path).expect("the path parsed before");
                assert_eq!(
                    back,
                    Some(new_value.clone()),
                    "set_path then get_path of {path:?} differ"
                );
            }
        }
        Err(_) => assert!(
            bit_identical(&d, &doc),
            "a failed set_path changed the document"
        ),
    }

    let mut d = doc.clone();
    if json_path::delete_path(&mut d, path).is_err() {
        assert!(
            bit_identical(&d, &doc),
            "a failed delete_path changed the document"
        );
    }

    let mut d = doc.clone();
    let patch: Value = serde_json::from_str(r#"{"a": null, "m": {"z": 1}}"#).unwrap_or(Value::Null);
    if json_path::merge_at(&mut d, path, patch).is_err() {
        assert!(
            bit_identical(&d, &doc),
            "a failed merge_at changed the document"
        );
    }
}

/// Target `search_filter`: input is a JSON array `[filter, metadata, metadata, …]`, the
/// filter in its serde form (e.g. `{"Eq": ["lang", "en"]}`). Building the filter never
/// panics; `SearchFilter::matches`, its negation, and the compiled column evaluation the
/// index uses always agree, and compiled candidates include every match.
pub fn search_filter(data: &[u8]) {
    let Ok(serde_json::Value::Array(items)) = serde_json::from_slice::<serde_json::Value>(data)
    else {
        return;
    };
    let mut items = items.into_iter();
    let Some(filter) = items.next() else {
        return;
    };
    let Ok(filter) = serde_json::from_value::<SearchFilter>(filter) else {
        return;
    };
    let metas: Vec<Option<Value>> = items
        .map(|m| match m {
            serde_json::Value::Null => None,
            m => serde_json::from_value::<Value>(m).ok(),
        })
        .collect();
    let not = !filter.clone();
    let mut columns = MetadataColumns::new();
    for (id, m) in metas.iter().enumerate() {
        columns.set(id as u32, m.as_ref());
    }
    // The index keeps metadata boxed (one pointer per vector).
    let slots: Vec<Option<Box<Value>>> = metas.iter().map(|m| m.clone().map(Box::new)).collect();
    let compiled = columns.compile(&filter, &slots);
    let rebuilt = MetadataColumns::build(&slots);
    let compiled_rebuilt = rebuilt.compile(&filter, &slots);
    let candidates = compiled.candidates();
    for (id, m) in metas.iter().enumerate() {
        let want = filter.matches(m.as_ref());
        assert_eq!(not.matches(m.as_ref()), !want, "Not disagrees at {id}");
        assert_eq!(
            compiled.matches(id as u32),
            want,
            "compiled disagrees at {id}"
        );
        assert_eq!(
            compiled_rebuilt.matches(id as u32),
            want,
            "rebuilt columns disagree at {id}"
        );
        if want {
            if let Some(c) = &candidates {
                assert!(c.contains(&(id as u32)), "match {id} is not a candidate");
            }
        }
    }
    assert_eq!(compiled.matches(u32::MAX), filter.matches(None));
    // A serde round trip gives the same filter.
    if let Ok(json) = serde_json::to_string(&filter) {
        if let Ok(back) = serde_json::from_str::<SearchFilter>(&json) {
            for m in &metas {
                assert_eq!(back.matches(m.as_ref()), filter.matches(m.as_ref()));
            }
        }
    }
}
