//! Runs the RFC 9535 JSONPath Compliance Test Suite through `json_path::get_path`.
//!
//! The suite is vendored in `tests/data/jsonpath-cts.json` (BSD-2-Clause, see
//! `tests/data/README.md`). Every case must pass except those in [`KNOWN_DIVERGENT`],
//! where `jsonpath-rust` departs from the RFC; those must still fail, so that the list
//! cannot go stale silently.
use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value as Json;
use strata_core::{Error, Value};
use strata_primitives::json_path::{get_path, is_singular_path};

/// Cases `jsonpath-rust` gets wrong: (case name, reason).
/// Mirrored in the "Conformance" section of the `json_path` module documentation.
const KNOWN_DIVERGENT: &[(&str, &str)] = &[
    (
        "basic, descendant segment, multiple selectors",
        "jsonpath-rust orders a multi-selector segment's results by selector, not by input node",
    ),
    (
        "basic, descendant segment, object traversal, multiple selectors",
        "jsonpath-rust orders a multi-selector segment's results by selector, not by input node",
    ),
    (
        "filter, nested",
        "`@[?…]` is refused (InvalidPath): jsonpath-rust evaluates a filter on `@` itself wrongly",
    ),
];

fn suite_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/jsonpath-cts.json")
}

fn load_suite() -> Vec<Json> {
    let path = suite_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the JSONPath compliance suite at {}: {e}. The suite is vendored in \
             tests/data/ of the strata-primitives crate.",
            path.display()
        )
    });
    let suite: Json = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()));
    match suite.get("tests") {
        Some(Json::Array(tests)) => tests.clone(),
        _ => panic!("{} has no \"tests\" array", path.display()),
    }
}

/// JSON equality, numbers compared by value (`1 == 1.0`), as the suite intends.
fn json_eq(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn nodelist_eq(actual: &[Json], expected: &Json) -> bool {
    match expected {
        Json::Array(expected) => {
            actual.len() == expected.len()
                && actual.iter().zip(expected).all(|(a, e)| json_eq(a, e))
        }
        _ => false,
    }
}

/// Runs one case; `Err` describes how it failed.
fn run_case(case: &Json) -> Result<(), String> {
    let selector = case["selector"]
        .as_str()
        .ok_or_else(|| "case has no selector".to_string())?;
    let document = Value::from(case.get("document").cloned().unwrap_or(Json::Null));
    let outcome = get_path(&document, selector);

    if case.get("invalid_selector") == Some(&Json::Bool(true)) {
        return match outcome {
            Err(Error::InvalidPath(_)) => Ok(()),
            Err(other) => Err(format!("expected InvalidPath, got error {other}")),
            Ok(v) => Err(format!("expected InvalidPath, got Ok({v:?})")),
        };
    }

    let result = outcome.map_err(|e| format!("unexpected error: {e}"))?;
    let singular = is_singular_path(selector).map_err(|e| format!("is_singular_path: {e}"))?;
    let nodelist: Vec<Value> = match (singular, result) {
        (true, Some(node)) => vec![node],
        (true, None) => vec![],
        (false, Some(v)) if v.is_array() => v.into_array().unwrap_or_default(),
        (false, other) => {
            return Err(format!(
                "non-singular query must give Some(Array), got {other:?}"
            ))
        }
    };
    let actual: Vec<Json> = nodelist.into_iter().map(Json::from).collect();

    let candidates: Vec<&Json> = match (case.get("result"), case.get("results")) {
        (Some(r), _) => vec![r],
        (None, Some(Json::Array(rs))) => rs.iter().collect(),
        _ => return Err("case has neither result nor results".into()),
    };
    if candidates.iter().any(|e| nodelist_eq(&actual, e)) {
        Ok(())
    } else {
        Err(format!(
            "got {}, expected {}",
            Json::Array(actual),
            candidates
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(" or ")
        ))
    }
}

#[test]
fn rfc9535_compliance_suite() {
    let tests = load_suite();
    assert!(!tests.is_empty(), "the compliance suite is empty");

    let known: BTreeSet<&str> = KNOWN_DIVERGENT.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        known.len(),
        KNOWN_DIVERGENT.len(),
        "KNOWN_DIVERGENT has duplicate names"
    );
    let names: BTreeSet<&str> = tests.iter().filter_map(|t| t["name"].as_str()).collect();
    for name in &known {
        assert!(
            names.contains(name),
            "KNOWN_DIVERGENT lists {name:?}, which is not in the suite"
        );
    }

    let mut passed = 0usize;
    let mut unexpected_failures = Vec::new();
    let mut stale = Vec::new();
    for case in &tests {
        let name = case["name"].as_str().unwrap_or("<unnamed>");
        let selector = case["selector"].as_str().unwrap_or("<none>");
        match (run_case(case), known.contains(name)) {
            (Ok(()), false) => passed += 1,
            (Ok(()), true) => stale.push(format!("{name:?} ({selector:?}) passes now")),
            (Err(why), false) => {
                unexpected_failures.push(format!("{name:?} ({selector:?}): {why}"))
            }
            (Err(_), true) => {}
        }
    }

    eprintln!(
        "JSONPath CTS: {passed} of {} cases pass, {} known divergent",
        tests.len(),
        known.len()
    );
    assert!(
        unexpected_failures.is_empty(),
        "{} unexpected failure(s):\n{}",
        unexpected_failures.len(),
        unexpected_failures.join("\n")
    );
    assert!(
        stale.is_empty(),
        "known-divergent case(s) pass now; remove them from KNOWN_DIVERGENT and the \
         json_path module docs:\n{}",
        stale.join("\n")
    );
    assert_eq!(passed + known.len(), tests.len());
}
