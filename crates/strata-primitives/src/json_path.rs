//! JSONPath queries and updates over [`Value`] documents: the pure layer under the JSON
//! primitive (no storage, no versions).
//!
//! Paths are [RFC 9535](https://www.rfc-editor.org/rfc/rfc9535) JSONPath queries, parsed
//! and evaluated by the `jsonpath-rust` crate: `$` (the whole document), `$.a.b`,
//! `$['odd key']`, `$.a[0]`, `$.a[-1]`, `$.a[*]`, `$..x`, `$.a[1:3]`, `$.a[0,2]`,
//! `$.a[?@.price < 10]`, `$[?length(@.tags) > 2]`…
//!
//! # Singular and non-singular paths
//!
//! A path is *singular* (RFC 9535, section 2.3.5.1) when every segment after `$` is a single
//! name selector (`.name`, `['name']`) or a single index selector (`[3]`, `[-1]`): it
//! selects at most one node. Wildcards, slices, filters, descendant segments (`..`) and
//! unions (`[0,1]`) make a path non-singular, even when the document happens to hold
//! only one match. [`is_singular_path`] tells which kind a path is.
//!
//! # Shape of [`get_path`] results
//!
//! This is a user-facing contract:
//!
//! - **singular path**: `Some(node)` when the node exists, `None` when it does not
//!   (`get_path(doc, "$")` is always `Some(doc)`);
//! - **non-singular path**: always `Some(Value::Array(nodelist))`: every selected node, in the
//!   order RFC 9535 defines (document order for arrays, then descendant order for `..`;
//!   the order of an object's members is unspecified; see [Conformance](#conformance-with-rfc-9535)
//!   for unions), duplicates included (`$[0,0]` yields the first element twice). The array
//!   is empty when nothing is selected.
//!
//! So `$.tags[0]` on `{"tags": ["a"]}` gives `Some("a")`, while `$.tags[*]` gives
//! `Some(["a"])` and `$.missing[*]` gives `Some([])`.
//!
//! # Updates
//!
//! - [`set_path`] replaces the node at a path, creating what is missing along a singular
//!   path (see its documentation for arrays and non-singular paths);
//! - [`delete_path`] removes every selected node and returns how many it removed;
//! - [`merge_at`] applies an RFC 7396 JSON Merge Patch to the node at a singular path.
//!
//! Updates touch only the selected nodes: everything else in the document, including
//! [`Value::Bytes`], non-finite floats and the `Int`/`Float` distinction, is left exactly as
//! it was. A failed update leaves the document unchanged.
//!
//! # How StrataDB values look to a query
//!
//! Queries see the JSON form of the document (see `strata_core`'s JSON interop):
//!
//! - [`Value::Int`] and [`Value::Float`] are both JSON numbers, so filters compare them
//!   numerically (`$[?@.n == 1]` selects `{"n": 1.0}`); the *returned* nodes keep their
//!   variant;
//! - a non-finite float (NaN, ±infinity) looks like `null` to filters (it is returned as the
//!   original float);
//! - [`Value::Bytes`] looks like an array of integers 0–255: `$.b[0]` reads the first byte as
//!   an `Int`. Bytes cannot be updated in place through a path: a [`set_path`] or
//!   [`delete_path`] that reaches *inside* a `Bytes` value is an [`Error::WrongType`];
//!   replace the whole value instead.
//!
//! Non-singular queries are evaluated on a JSON copy of the document; singular paths are
//! resolved directly on the [`Value`] without copying.
//!
//! # Errors
//!
//! - a path that is not valid RFC 9535 JSONPath is an [`Error::InvalidPath`] naming the path
//!   and the parser's complaint (`$.`, `$[`, `a.b` without `$`, `$[01]`…);
//! - a path that is valid but cannot be used for the operation (a non-singular path for
//!   [`merge_at`]) is an [`Error::InvalidPath`] too;
//! - writing below a value that is not a container is an [`Error::WrongType`]; an array
//!   index past the end is an [`Error::ConstraintViolation`];
//! - deleting `$` is an [`Error::ConstraintViolation`] (delete the document instead).
//!
//! No input makes these functions panic.
//!
//! # Conformance with RFC 9535
//!
//! Parsing and evaluation are `jsonpath-rust`'s. On its AST this module adds the RFC's
//! function well-typedness rules that its parser lets through (`$[?length(@.a)]`,
//! `$[?count(@.*)]`, `$[?value(@.a)]` and `length(@.*)` are rejected as the RFC requires).
//!
//! The JSONPath Compliance Test Suite (703 cases, run by `tests/jsonpath_cts.rs`) passes
//! except for 3 cases, which that test lists and checks still fail:
//!
//! - `basic, descendant segment, multiple selectors` and
//!   `basic, descendant segment, object traversal, multiple selectors` (`$..['a','d']`):
//!   right nodes, wrong order. `jsonpath-rust` orders the result of a multi-selector
//!   segment by selector (every `a`, then every `d`) instead of by input node. This holds
//!   for any union applied to several nodes: `$[*]['a','d']` on `[{"a":1,"d":2},{"a":3,"d":4}]`
//!   gives `[1,3,2,4]` where the RFC says `[1,2,3,4]`.
//! - `filter, nested` (`$[?@[?@>1]]`): a filter selector applied directly to the current
//!   node `@` (`@[?…]`, `@..[?…]`) is evaluated wrongly by `jsonpath-rust` (it selects
//!   nothing), so it is refused with [`Error::InvalidPath`] rather than answered wrongly.
//!   Filters further down a relative query (`@.items[?@ > 1]`) work.
//!
//! Other departures from the RFC, not covered by the suite:
//!
//! - filter comparisons treat numbers as `f64` and call them equal within `f64::EPSILON`
//!   (so `1e-20 == 0`, and integers beyond 2^53 lose precision); arrays and objects
//!   compare numbers by representation (`[1]` is not equal to `[1.0]`);
//! - `count()` of an empty nodelist yields no value instead of `0`, so
//!   `$[?count(@.tags[*]) == 0]` selects nothing; write `$[?!@.tags[*]]` instead;
//! - a member-name shorthand swallows inner blanks: `$.a b` reads the member `"a b"` (the
//!   RFC would reject the path; `$['a b']` is the portable spelling);
//! - `jsonpath-rust`'s extension functions `in`, `nin`, `none_of`, `any_of`, `subset_of`
//!   are accepted (`$.a[?in(@, $.allowed)]`).
use std::collections::HashMap;

use jsonpath_rust::parser::model::Filter as FilterExpr;
use jsonpath_rust::parser::model::{
    Comparable, FilterAtom, FnArg, JpQuery, Segment, Selector, Test, TestFunction,
};
use jsonpath_rust::parser::parse_json_path;
use jsonpath_rust::query::js_path_process;
use strata_core::{Error, Result, Value};

/// One step of a resolved path: a member name or an array index (negative counts from the
/// end, as in RFC 9535).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Key(String),
    Index(i64),
}

/// Evaluates the JSONPath query `path` on `doc`.
///
/// The shape of the result depends on the kind of path (this is a user-facing contract):
///
/// - for a **singular** path (only name and index selectors, see [`is_singular_path`]):
///   `Some(node)`, or `None` when the path selects nothing;
/// - for any **other** path (wildcards, slices, filters, `..`, unions): `Some(Value::Array)`
///   holding the RFC 9535 nodelist in its order, possibly empty. Never `None`.
///
/// Returned nodes are copies of the document's own values (an `Int` stays an `Int`, a
/// `Float` a `Float`, `Bytes` stay `Bytes`; an index into a `Bytes` value yields the byte
/// as an `Int`).
///
/// ```
/// use strata_core::{json, Value};
/// use strata_primitives::json_path::get_path;
/// let doc: Value = json!({"user": {"name": "Ada", "tags": ["x", "y"]}});
/// assert_eq!(get_path(&doc, "$.user.name")?, Some(Value::from("Ada")));
/// assert_eq!(get_path(&doc, "$.user.age")?, None);
/// assert_eq!(get_path(&doc, "$.user.tags[*]")?, Some(json!(["x", "y"])));
/// assert_eq!(get_path(&doc, "$.nothing[*]")?, Some(json!([])));
/// # Ok::<(), strata_core::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::InvalidPath`] when `path` is not valid JSONPath.
pub fn get_path(doc: &Value, path: &str) -> Result<Option<Value>> {
    let query = parse(path)?;
    if let Some(steps) = singular_steps(&query) {
        return Ok(lookup(doc, &steps));
    }
    let nodes = matched_paths(doc, &query, path)?
        .iter()
        .map(|steps| {
            lookup(doc, steps).ok_or_else(|| {
                Error::Internal(format!(
                    "JSONPath {shown_path} matched {} which cannot be found in the document",
                    render(steps),
                    shown_path = shown(path)
                ))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(Value::Array(nodes)))
}

/// `true` when `path` is a singular query in RFC 9535 terms: `$` followed only by single
/// name selectors (`.a`, `['a']`) and single index selectors (`[0]`, `[-1]`). Such a path
/// selects at most one node, and [`get_path`] returns that node itself rather than a list.
///
/// # Errors
///
/// [`Error::InvalidPath`] when `path` is not valid JSONPath.
pub fn is_singular_path(path: &str) -> Result<bool> {
    Ok(singular_steps(&parse(path)?).is_some())
}

/// Sets `value` at `path`.
///
/// - `$` replaces the whole document.
/// - **Singular path**: the node is replaced if it exists; otherwise it is created, along
///   with every missing container on the way: a missing member followed by a name selector
///   becomes an empty object, one followed by an index selector an empty array. Siblings
///   are kept.
/// - **Array indices**: an index of an existing element (negative ones count from the end)
///   replaces it; an index equal to the array's length appends; any other index
///   (beyond the end, or negative beyond the start) is an [`Error::ConstraintViolation`]:
///   arrays are never padded. Hence a newly created array only accepts index `0`.
/// - **Non-singular path** (wildcards, slices, filters, `..`, unions): the path is split
///   into its last non-singular segment and the singular tail after it
///   (`$.users[?@.age > 30].flags.vip` = `$.users[?@.age > 30]` + `.flags.vip`). The tail is
///   set, with the rules above, below **every** node the head selects; with no tail each
///   selected node is replaced. When the head selects nothing the document is unchanged
///   (not an error). Nested matches are written deepest first, so where one match
///   contains another, the outer write wins.
///
/// The update is all-or-nothing: on error the document is unchanged.
///
/// ```
/// use strata_core::{json, Value};
/// use strata_primitives::json_path::set_path;
/// let mut doc: Value = json!({"name": "Ada"});
/// set_path(&mut doc, "$.address.city", Value::from("NYC"))?;
/// set_path(&mut doc, "$.tags[0]", Value::from("x"))?; // creates the array
/// assert_eq!(doc, json!({"name": "Ada", "address": {"city": "NYC"}, "tags": ["x"]}));
/// # Ok::<(), strata_core::Error>(())
/// ```
///
/// # Errors
///
/// - [`Error::InvalidPath`] when `path` is not valid JSONPath;
/// - [`Error::WrongType`] when a name selector meets something other than an object, or an
///   index selector something other than an array (including the inside of `Bytes`);
/// - [`Error::ConstraintViolation`] for an array index past the end (other than `len`).
pub fn set_path(doc: &mut Value, path: &str, value: Value) -> Result<()> {
    set_path_count(doc, path, value).map(|_| ())
}

/// [`set_path`], returning how many nodes were written: 1 for a singular path, the
/// number of nodes the head selects for a non-singular one (`0`: the document is
/// unchanged).
///
/// # Errors
///
/// As [`set_path`].
pub fn set_path_count(doc: &mut Value, path: &str, value: Value) -> Result<usize> {
    let query = parse(path)?;
    if let Some(steps) = singular_steps(&query) {
        *writable_slot(doc, &steps, path)? = value;
        return Ok(1);
    }
    // Split into the non-singular head and the singular tail.
    let split = query
        .segments
        .iter()
        .rposition(|segment| singular_step(segment).is_none())
        .map_or(0, |i| i + 1);
    let tail: Vec<Step> = query.segments[split..]
        .iter()
        .filter_map(singular_step)
        .collect();
    let head = JpQuery::new(query.segments[..split].to_vec());
    let mut targets = matched_paths(doc, &head, path)?;
    if targets.is_empty() {
        return Ok(0);
    }
    // Paths order step by step (indices numerically), a prefix before its extensions;
    // reversed: descendants before ancestors, highest index first.
    targets.sort_by(|a, b| b.cmp(a));
    targets.dedup();
    // Work on a copy so that a failure half-way leaves `doc` untouched.
    let mut work = doc.clone();
    let written = targets.len();
    for mut target in targets {
        target.extend(tail.iter().cloned());
        *writable_slot(&mut work, &target, path)? = value.clone();
    }
    *doc = work;
    Ok(written)
}

/// Deletes every node `path` selects and returns how many distinct nodes were selected
/// (and are now gone): `0` when the path selects nothing, which is not an error.
///
/// Object members are removed; array elements are removed and the later elements shift
/// down (several matches in one array are removed highest index first, so every selected
/// element goes and no other). A node selected together with one of its ancestors counts
/// once itself and is removed with the ancestor: `$..*` on `{"a": {"b": 1}}` returns 2.
///
/// ```
/// use strata_core::{json, Value};
/// use strata_primitives::json_path::delete_path;
/// let mut doc: Value = json!({"tmp": 1, "items": [1, 5, 2, 7]});
/// assert_eq!(delete_path(&mut doc, "$.tmp")?, 1);
/// assert_eq!(delete_path(&mut doc, "$.items[?@ > 4]")?, 2);
/// assert_eq!(delete_path(&mut doc, "$.absent")?, 0);
/// assert_eq!(doc, json!({"items": [1, 2]}));
/// # Ok::<(), strata_core::Error>(())
/// ```
///
/// # Errors
///
/// - [`Error::InvalidPath`] when `path` is not valid JSONPath;
/// - [`Error::ConstraintViolation`] for `$`: delete the document instead;
/// - [`Error::WrongType`] when a selected node lies inside a `Bytes` value (unless the
///   `Bytes` value itself is selected too, e.g. by `$..*`: then it simply goes).
///
/// On error the document is unchanged.
pub fn delete_path(doc: &mut Value, path: &str) -> Result<u64> {
    let query = parse(path)?;
    if query.segments.is_empty() {
        return Err(Error::ConstraintViolation(format!(
            "cannot delete the root of a document with path {shown_path}: delete the document instead", shown_path = shown(path))));
    }
    let mut targets = match singular_steps(&query) {
        Some(steps) => concrete(doc, &steps).into_iter().collect(),
        None => matched_paths(doc, &query, path)?,
    };
    targets.sort();
    targets.dedup();
    let count = u64::try_from(targets.len()).unwrap_or(u64::MAX);
    // Drop nodes that go away with a selected ancestor. Sorted, an ancestor comes right
    // before the run of its descendants, so comparing with the last kept path suffices.
    let mut kept: Vec<Vec<Step>> = Vec::with_capacity(targets.len());
    for target in targets {
        if kept.last().is_some_and(|k| target.starts_with(k)) {
            continue;
        }
        kept.push(target);
    }
    // Check everything before changing anything.
    for target in &kept {
        let (_, parent_steps) = target.split_last().ok_or_else(|| {
            Error::Internal(format!(
                "empty match for {shown_path}",
                shown_path = shown(path)
            ))
        })?;
        match lookup_ref(doc, parent_steps) {
            Some(Value::Object(_) | Value::Array(_)) => {}
            Some(other) => {
                return Err(Error::wrong_type(
                    "Array or Object",
                    format!("{} at {}", other.type_name(), render(parent_steps)),
                ))
            }
            None => {
                return Err(Error::Internal(format!(
                    "JSONPath {shown_path} matched {} which cannot be found in the document",
                    render(target),
                    shown_path = shown(path)
                )))
            }
        }
    }
    // Highest index first within every array.
    for target in kept.iter().rev() {
        remove(doc, target, path)?;
    }
    Ok(count)
}

/// Applies the RFC 7396 JSON Merge Patch `patch` to the node at the singular `path`.
///
/// - `$` patches the whole document;
/// - when the node does not exist it is created as by [`set_path`] (missing containers
///   included) and the patch is applied to nothing, i.e. the result is `patch` without
///   its `null` members;
/// - RFC 7396 rules: an object patch is merged member by member into the node (which is
///   first replaced by `{}` if it is not an object); a `null` member removes that member;
///   any non-object patch (array, string, number, `null`…) replaces the node outright, so
///   `merge_at(doc, "$.a", Value::Null)` sets `a` to `null` rather than removing it (use
///   [`delete_path`] for that, or patch the parent with `{"a": null}`).
///
/// Values in the patch are stored exactly as given (`Bytes` stay `Bytes`), and members the
/// patch does not mention are untouched. (For that reason the algorithm runs on [`Value`]
/// itself rather than through `json_patch::merge` on a JSON copy, which would turn `Bytes`
/// into arrays and NaN into `null`; a property test checks that both agree on JSON data.)
///
/// ```
/// use strata_core::{json, Value};
/// use strata_primitives::json_path::merge_at;
/// let mut doc: Value = json!({"name": "Ada", "age": 30, "tmp": true});
/// merge_at(&mut doc, "$", json!({"age": 31, "tmp": null}))?;
/// assert_eq!(doc, json!({"name": "Ada", "age": 31}));
/// # Ok::<(), strata_core::Error>(())
/// ```
///
/// # Errors
///
/// - [`Error::InvalidPath`] when `path` is not valid JSONPath or is not singular;
/// - as [`set_path`] when the node must be created and cannot be.
pub fn merge_at(doc: &mut Value, path: &str, patch: Value) -> Result<()> {
    let query = parse(path)?;
    let steps = singular_steps(&query).ok_or_else(|| {
        Error::InvalidPath(format!(
            "merge needs a singular path (only names and indices, no wildcards, slices, \
             filters, '..' or unions), got {shown_path}",
            shown_path = shown(path)
        ))
    })?;
    merge_patch(writable_slot(doc, &steps, path)?, patch);
    Ok(())
}

/// RFC 7396 `MergePatch(target, patch)`, in place, on [`Value`]s. A missing target is
/// represented by `Null` (both are "not an object", which is all the algorithm asks).
/// Recursive, but only on values already checked against the nesting limit.
fn merge_patch(target: &mut Value, mut patch: Value) {
    match &mut patch {
        Value::Object(members) => {
            let members = std::mem::take(members);
            if !target.is_object() {
                *target = Value::Object(HashMap::new());
            }
            if let Value::Object(object) = target {
                for (name, value) in members {
                    if value.is_null() {
                        object.remove(&name);
                    } else {
                        merge_patch(object.entry(name).or_insert(Value::Null), value);
                    }
                }
            }
        }
        _ => *target = patch,
    }
}

/// Longest part of a path quoted in an error message, in characters.
const SHOWN_PATH_CHARS: usize = 64;

/// `path` quoted for an error message: whole when short, else its first
/// [`SHOWN_PATH_CHARS`] characters and its length, as key errors do, so that a huge path
/// does not make a huge error.
fn shown(path: &str) -> String {
    if path.chars().count() <= SHOWN_PATH_CHARS {
        return format!("{path:?}");
    }
    let head: String = path.chars().take(SHOWN_PATH_CHARS).collect();
    format!("{head:?}… ({} bytes)", path.len())
}

/// A parser's or evaluator's message, which may quote the path again: bounded the same
/// way.
fn shown_cause(e: impl std::fmt::Display) -> String {
    let text = e.to_string();
    if text.chars().count() <= 2 * SHOWN_PATH_CHARS {
        return text;
    }
    let head: String = text.chars().take(2 * SHOWN_PATH_CHARS).collect();
    format!("{head}… (truncated)")
}

fn parse(path: &str) -> Result<JpQuery> {
    let query = parse_json_path(path).map_err(|e| {
        Error::InvalidPath(format!(
            "cannot parse JSONPath {shown_path}: {cause}",
            shown_path = shown(path),
            cause = shown_cause(e)
        ))
    })?;
    well_typed::segments(&query.segments).map_err(|e| {
        Error::InvalidPath(format!(
            "invalid JSONPath {shown_path}: {cause}",
            shown_path = shown(path),
            cause = shown_cause(e)
        ))
    })?;
    Ok(query)
}

/// Checks on the `jsonpath-rust` AST for what its parser lets through: the RFC 9535
/// well-typedness rules for function expressions (section 2.4.3) and one construct its
/// evaluator gets wrong.
///
/// - a function used as a test expression must return a logical result (`match`,
///   `search`), not a value (`length`, `count`, `value` must be compared);
/// - a value-typed parameter (`length`'s, and both of `match`'s and `search`'s) accepts a
///   literal, a *singular* query or a value-returning function, not a non-singular query
///   or a logical expression;
/// - a filter selector must not apply directly to `@` (`@[?…]`): not an RFC rule, but
///   `jsonpath-rust` 1.0 evaluates it wrongly, and an error beats a wrong answer.
mod well_typed {
    use super::*;

    type Checked = std::result::Result<(), String>;

    pub(super) fn segments(segments: &[Segment]) -> Checked {
        segments.iter().try_for_each(segment)
    }

    fn segment(segment: &Segment) -> Checked {
        match segment {
            Segment::Descendant(inner) => self::segment(inner),
            Segment::Selector(s) => selector(s),
            Segment::Selectors(list) => list.iter().try_for_each(selector),
        }
    }

    fn selector(selector: &Selector) -> Checked {
        match selector {
            Selector::Filter(f) => filter(f),
            _ => Ok(()),
        }
    }

    fn filter(f: &FilterExpr) -> Checked {
        match f {
            FilterExpr::Or(list) | FilterExpr::And(list) => list.iter().try_for_each(filter),
            FilterExpr::Atom(FilterAtom::Filter { expr, .. }) => filter(expr),
            FilterExpr::Atom(FilterAtom::Test { expr, .. }) => {
                if let Test::Function(f) = expr.as_ref() {
                    if !expr.is_res_bool() {
                        return Err(format!(
                            "the result of {f} is a value, not a logical result: compare it"
                        ));
                    }
                }
                test(expr)
            }
            FilterExpr::Atom(FilterAtom::Comparison(c)) => {
                let (left, right) = c.vals();
                comparable(left)?;
                comparable(right)
            }
        }
    }

    fn comparable(c: &Comparable) -> Checked {
        match c {
            Comparable::Function(f) => function(f),
            Comparable::Literal(_) | Comparable::SingularQuery(_) => Ok(()),
        }
    }

    fn test(t: &Test) -> Checked {
        match t {
            Test::RelQuery(list) => {
                if list.first().is_some_and(filters_current_node) {
                    return Err(
                        "a filter selector applied directly to the current node `@` \
                         (`@[?…]`, `@..[?…]`) is not supported: the JSONPath engine would \
                         evaluate it wrongly"
                            .into(),
                    );
                }
                segments(list)
            }
            Test::AbsQuery(query) => segments(&query.segments),
            Test::Function(f) => function(f),
        }
    }

    fn function(f: &TestFunction) -> Checked {
        match f {
            TestFunction::Length(arg) => value_arg(arg, f),
            TestFunction::Search(a, b) | TestFunction::Match(a, b) => {
                value_arg(a, f)?;
                value_arg(b, f)
            }
            TestFunction::Value(arg) | TestFunction::Count(arg) => fn_arg(arg),
            TestFunction::Custom(_, args) => args.iter().try_for_each(fn_arg),
        }
    }

    /// `true` when the segment contains a filter selector. As the first segment of a
    /// relative query it would apply to `@` itself, which `jsonpath-rust` 1.0 mistakes for
    /// a boolean context (its filter treats a pointer with an empty path as internal).
    fn filters_current_node(segment: &Segment) -> bool {
        match segment {
            Segment::Descendant(inner) => filters_current_node(inner),
            Segment::Selector(s) => matches!(s, Selector::Filter(_)),
            Segment::Selectors(list) => list.iter().any(|s| matches!(s, Selector::Filter(_))),
        }
    }

    fn is_singular(list: &[Segment]) -> bool {
        list.iter().all(|s| singular_step(s).is_some())
    }

    fn value_arg(arg: &FnArg, f: &TestFunction) -> Checked {
        let bad = |what: &str| Err(format!("{f} takes a value, not {what}"));
        match arg {
            FnArg::Test(t) => match t.as_ref() {
                Test::RelQuery(list) if !is_singular(list) => bad("a non-singular query"),
                Test::AbsQuery(q) if !is_singular(&q.segments) => bad("a non-singular query"),
                Test::Function(inner) if !inner.is_comparable() => bad("a logical result"),
                _ => fn_arg(arg),
            },
            FnArg::Filter(_) => bad("a logical expression"),
            FnArg::Literal(_) => Ok(()),
        }
    }

    fn fn_arg(arg: &FnArg) -> Checked {
        match arg {
            FnArg::Literal(_) => Ok(()),
            FnArg::Test(t) => test(t),
            FnArg::Filter(f) => filter(f),
        }
    }
}

/// The step of a singular segment (one name or one index selector), `None` otherwise.
fn singular_step(segment: &Segment) -> Option<Step> {
    match segment {
        Segment::Selector(Selector::Name(name)) => Some(Step::Key(name.clone())),
        Segment::Selector(Selector::Index(index)) => Some(Step::Index(*index)),
        _ => None,
    }
}

/// The steps of a singular query, `None` when the query is not singular.
fn singular_steps(query: &JpQuery) -> Option<Vec<Step>> {
    query.segments.iter().map(singular_step).collect()
}

/// Evaluates `query` with `jsonpath-rust` on the JSON form of `doc` and returns the
/// normalized paths of the selected nodes, in nodelist order, as steps (non-negative
/// indices only).
fn matched_paths(doc: &Value, query: &JpQuery, path: &str) -> Result<Vec<Vec<Step>>> {
    let view = serde_json::Value::from(doc);
    let refs = js_path_process(query, &view).map_err(|e| {
        Error::InvalidPath(format!(
            "cannot evaluate JSONPath {shown_path}: {cause}",
            shown_path = shown(path),
            cause = shown_cause(e)
        ))
    })?;
    refs.into_iter()
        .map(|r| {
            let normalized = r.path;
            parse(&normalized)
                .ok()
                .and_then(|q| singular_steps(&q))
                .ok_or_else(|| {
                    Error::Internal(format!(
                        "JSONPath {shown_path} produced the unusable normalized path {normalized:?}", shown_path = shown(path)))
                })
        })
        .collect()
}

/// The array position an index denotes, `None` when out of range.
fn resolve(index: i64, len: usize) -> Option<usize> {
    if index >= 0 {
        usize::try_from(index).ok().filter(|&i| i < len)
    } else {
        len.checked_sub(usize::try_from(index.unsigned_abs()).ok()?)
    }
}

/// The node at `steps`, without copying; `None` when absent. Does not enter `Bytes`.
fn lookup_ref<'a>(doc: &'a Value, steps: &[Step]) -> Option<&'a Value> {
    let mut current = doc;
    for step in steps {
        current = match (step, current) {
            (Step::Key(name), Value::Object(members)) => members.get(name)?,
            (Step::Index(index), Value::Array(items)) => {
                items.get(resolve(*index, items.len())?)?
            }
            _ => return None,
        };
    }
    Some(current)
}

/// A copy of the node at `steps`, `None` when absent. A final index into `Bytes` yields
/// the byte as an `Int`, matching the JSON form queries see.
fn lookup(doc: &Value, steps: &[Step]) -> Option<Value> {
    if let Some((Step::Index(index), parent)) = steps.split_last() {
        if let Some(Value::Bytes(bytes)) = lookup_ref(doc, parent) {
            let byte = bytes.get(resolve(*index, bytes.len())?)?;
            return Some(Value::Int(i64::from(*byte)));
        }
    }
    lookup_ref(doc, steps).cloned()
}

/// The path of an existing node with its indices made non-negative, `None` when absent.
fn concrete(doc: &Value, steps: &[Step]) -> Option<Vec<Step>> {
    let mut current = doc;
    let mut out = Vec::with_capacity(steps.len());
    for step in steps {
        match (step, current) {
            (Step::Key(name), Value::Object(members)) => {
                current = members.get(name)?;
                out.push(step.clone());
            }
            (Step::Index(index), Value::Array(items)) => {
                let i = resolve(*index, items.len())?;
                current = items.get(i)?;
                out.push(Step::Index(i64::try_from(i).ok()?));
            }
            (Step::Index(index), Value::Bytes(bytes)) => {
                let i = resolve(*index, bytes.len())?;
                out.push(Step::Index(i64::try_from(i).ok()?));
                // A byte has no children: this must be the last step.
                return (out.len() == steps.len()).then_some(out);
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Where writing `steps` leads in an array of length `len`.
enum Slot {
    Existing(usize),
    Append,
}

fn array_slot(index: i64, len: usize, at: &[Step], path: &str) -> Result<Slot> {
    if let Some(i) = resolve(index, len) {
        return Ok(Slot::Existing(i));
    }
    if usize::try_from(index).is_ok_and(|i| i == len) {
        return Ok(Slot::Append);
    }
    Err(Error::ConstraintViolation(format!(
        "index {index} is out of range for the array of length {len} at {} (path {shown_path}); \
         only an existing index or the length (to append) can be written",
        render(at),
        shown_path = shown(path)
    )))
}

fn not_a_container(step: &Step, found: &Value, at: &[Step]) -> Error {
    let expected = match step {
        Step::Key(_) => "Object",
        Step::Index(_) => "Array",
    };
    Error::wrong_type(expected, format!("{} at {}", found.type_name(), render(at)))
}

/// Checks that `steps` can be written in `doc` (see [`set_path`]) without changing it.
fn check_writable(doc: &Value, steps: &[Step], path: &str) -> Result<()> {
    let mut current = Some(doc); // `None` once below a node that will be created
    for (n, step) in steps.iter().enumerate() {
        let at = &steps[..n];
        current = match (step, current) {
            (Step::Key(_), None) => None,
            (Step::Index(index), None) => {
                array_slot(*index, 0, at, path)?;
                None
            }
            (Step::Key(name), Some(Value::Object(members))) => members.get(name),
            (Step::Index(index), Some(Value::Array(items))) => {
                match array_slot(*index, items.len(), at, path)? {
                    Slot::Existing(i) => items.get(i),
                    Slot::Append => None,
                }
            }
            (_, Some(found)) => return Err(not_a_container(step, found, at)),
        };
    }
    Ok(())
}

/// A mutable reference to the node at `steps`, creating it (as `Null`) and every missing
/// container on the way. Checks first, so on error `doc` is unchanged.
fn writable_slot<'a>(doc: &'a mut Value, steps: &[Step], path: &str) -> Result<&'a mut Value> {
    check_writable(doc, steps, path)?;
    let mut current = doc;
    for (n, step) in steps.iter().enumerate() {
        let at = &steps[..n];
        let fresh = || match steps.get(n + 1) {
            Some(Step::Key(_)) => Value::Object(HashMap::new()),
            Some(Step::Index(_)) => Value::Array(Vec::new()),
            None => Value::Null,
        };
        current = match (step, current) {
            (Step::Key(name), Value::Object(members)) => {
                members.entry(name.clone()).or_insert_with(fresh)
            }
            (Step::Index(index), Value::Array(items)) => {
                match array_slot(*index, items.len(), at, path)? {
                    Slot::Existing(i) => items.get_mut(i).ok_or_else(|| {
                        Error::Internal(format!(
                            "lost index {i} in {shown_path}",
                            shown_path = shown(path)
                        ))
                    })?,
                    Slot::Append => {
                        items.push(fresh());
                        items.last_mut().ok_or_else(|| {
                            Error::Internal(format!(
                                "lost append in {shown_path}",
                                shown_path = shown(path)
                            ))
                        })?
                    }
                }
            }
            (_, found) => return Err(not_a_container(step, found, at)),
        };
    }
    Ok(current)
}

/// Removes the existing node at the concrete path `steps` (non-empty).
fn remove(doc: &mut Value, steps: &[Step], path: &str) -> Result<()> {
    let lost = || {
        Error::Internal(format!(
            "JSONPath {shown_path} matched {} which cannot be removed",
            render(steps),
            shown_path = shown(path)
        ))
    };
    let (last, parent_steps) = steps.split_last().ok_or_else(lost)?;
    let mut parent = doc;
    for step in parent_steps {
        parent = match (step, parent) {
            (Step::Key(name), Value::Object(members)) => members.get_mut(name).ok_or_else(lost)?,
            (Step::Index(index), Value::Array(items)) => {
                let i = resolve(*index, items.len()).ok_or_else(lost)?;
                items.get_mut(i).ok_or_else(lost)?
            }
            _ => return Err(lost()),
        };
    }
    match (last, parent) {
        (Step::Key(name), Value::Object(members)) => {
            members.remove(name).ok_or_else(lost)?;
        }
        (Step::Index(index), Value::Array(items)) => {
            let i = resolve(*index, items.len()).ok_or_else(lost)?;
            items.remove(i);
        }
        _ => return Err(lost()),
    }
    Ok(())
}

/// Renders steps as a path for messages, e.g. `$["a"][0]`.
fn render(steps: &[Step]) -> String {
    let mut out = String::from("$");
    for step in steps {
        match step {
            Step::Key(name) => out.push_str(&format!("[{name:?}]")),
            Step::Index(index) => out.push_str(&format!("[{index}]")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_core::json;

    fn get(doc: &Value, path: &str) -> Option<Value> {
        get_path(doc, path).unwrap()
    }

    fn sample() -> Value {
        json!({
            "a": {"b": 1, "c": [10, 20, 30]},
            "odd key": "odd",
            "items": [{"x": 1, "p": 5}, {"x": 2, "p": 15}, {"y": 3}],
            "f": 1.0,
        })
    }

    fn sorted(v: Option<Value>) -> Vec<String> {
        let mut out: Vec<String> = match &v {
            Some(Value::Array(items)) => items.iter().map(|x| x.to_string()).collect(),
            other => panic!("expected a nodelist, got {other:?}"),
        };
        out.sort();
        out
    }

    #[test]
    fn singular_gets() {
        let doc = sample();
        assert_eq!(get(&doc, "$"), Some(doc.clone()));
        assert_eq!(get(&doc, "$.a.b"), Some(Value::Int(1)));
        assert_eq!(get(&doc, "$['a']['b']"), Some(Value::Int(1)));
        assert_eq!(get(&doc, "$.a.c[0]"), Some(Value::Int(10)));
        assert_eq!(get(&doc, "$.a.c[-1]"), Some(Value::Int(30)));
        assert_eq!(get(&doc, "$.a.c[3]"), None);
        assert_eq!(get(&doc, "$.a.c[-4]"), None);
        assert_eq!(get(&doc, "$['odd key']"), Some(Value::from("odd")));
        assert_eq!(get(&doc, "$.missing"), None);
        assert_eq!(get(&doc, "$.a.b.deeper"), None);
        assert_eq!(get(&doc, "$.a[0]"), None);
        assert_eq!(get(&doc, "$.f"), Some(Value::Float(1.0)));
        assert!(is_singular_path("$.a['b'][0]").unwrap());
        for p in ["$.a[*]", "$..x", "$[0,1]", "$[0:1]", "$[?@.x]", "$.*"] {
            assert!(!is_singular_path(p).unwrap(), "{p}");
        }
    }

    #[test]
    fn nodelist_gets() {
        let doc = sample();
        assert_eq!(get(&doc, "$.a.c[*]"), Some(json!([10, 20, 30])));
        assert_eq!(get(&doc, "$.a.c[0:2]"), Some(json!([10, 20])));
        assert_eq!(get(&doc, "$.a.c[2,0,0]"), Some(json!([30, 10, 10])));
        assert_eq!(get(&doc, "$..x"), Some(json!([1, 2])));
        assert_eq!(get(&doc, "$.items[?@.p > 10].x"), Some(json!([2])));
        assert_eq!(get(&doc, "$.items[?@.x].x"), Some(json!([1, 2])));
        assert_eq!(
            get(&doc, "$.items[?@.p == 5]"),
            Some(json!([{"x": 1, "p": 5}]))
        );
        assert_eq!(get(&doc, "$.nothing[*]"), Some(json!([])));
        assert_eq!(get(&doc, "$.items[?@.p > 100]"), Some(json!([])));
        assert_eq!(sorted(get(&doc, "$.a.*")), vec!["1", "[10,20,30]"]);
        // A filter compares Int and Float numerically; the node keeps its variant.
        assert_eq!(
            get(&doc, "$[?@ == 1]"),
            Some(Value::Array(vec![Value::Float(1.0)]))
        );
    }

    #[test]
    fn special_values_are_returned_as_stored() {
        let mut doc = json!({"n": 1, "m": {"v": 2}});
        if let Value::Object(o) = &mut doc {
            o.insert("nan".into(), Value::Float(f64::NAN));
            o.insert("bytes".into(), Value::Bytes(vec![7, 255]));
        }
        assert!(matches!(get(&doc, "$.nan"), Some(Value::Float(f)) if f.is_nan()));
        assert_eq!(get(&doc, "$.bytes"), Some(Value::Bytes(vec![7, 255])));
        assert_eq!(get(&doc, "$.bytes[1]"), Some(Value::Int(255)));
        assert_eq!(get(&doc, "$.bytes[-2]"), Some(Value::Int(7)));
        assert_eq!(get(&doc, "$.bytes[2]"), None);
        assert_eq!(get(&doc, "$.bytes[*]"), Some(json!([7, 255])));
        match &get(&doc, "$[?@ == null]") {
            Some(Value::Array(nodes)) => {
                assert!(matches!(nodes.as_slice(), [Value::Float(f)] if f.is_nan()))
            }
            other => panic!("{other:?}"),
        }
        let nodes = get(&doc, "$[?@.v]").unwrap();
        assert_eq!(nodes, json!([{"v": 2}]));
        match &get(&doc, "$[?@ == $.bytes]") {
            Some(Value::Array(nodes)) => assert_eq!(nodes, &vec![Value::Bytes(vec![7, 255])]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_paths_are_invalid_path() {
        let mut doc = sample();
        for p in [
            "",
            "a.b",
            "$.",
            "$[",
            "$..",
            "$[01]",
            "$['a'",
            "$.a[?]",
            "$[?@.a ==]",
            "$$",
            " $",
            "$[0",
            "$[1:2:3:4]",
            "$[?@.length(@)]",
            "$[?length(@.a)]",
            "$[?length(@.*) < 3]",
            "$[?@[?@ > 1]]",
            "$[?count(@[?@ > 1]) > 0]",
            "$[?(@.a]",
            "$['\\x']",
        ] {
            let check = |r: Result<()>| match r {
                Err(Error::InvalidPath(msg)) => assert!(msg.contains(&format!("{p:?}")), "{msg}"),
                other => panic!("{p:?}: {other:?}"),
            };
            check(get_path(&doc, p).map(|_| ()));
            check(is_singular_path(p).map(|_| ()));
            check(set_path(&mut doc, p, Value::Null));
            check(delete_path(&mut doc, p).map(|_| ()));
            check(merge_at(&mut doc, p, json!({})));
        }
        assert_eq!(doc, sample());
    }

    #[test]
    fn set_root_and_existing() {
        let mut doc = sample();
        set_path(&mut doc, "$", json!({"new": true})).unwrap();
        assert_eq!(doc, json!({"new": true}));

        let mut doc = sample();
        set_path(&mut doc, "$.a.b", Value::from("two")).unwrap();
        set_path(&mut doc, "$.a.c[-1]", Value::Int(33)).unwrap();
        set_path(&mut doc, "$['odd key']", Value::Float(2.5)).unwrap();
        let mut expected = sample();
        if let Value::Object(o) = &mut expected {
            o.insert("a".into(), json!({"b": "two", "c": [10, 20, 33]}));
            o.insert("odd key".into(), Value::Float(2.5));
        }
        assert_eq!(doc, expected);
    }

    #[test]
    fn set_creates_intermediates_and_keeps_siblings() {
        let mut doc = json!({"keep": 1, "a": {"sib": true}});
        set_path(&mut doc, "$.a.b.c", Value::Int(5)).unwrap();
        set_path(&mut doc, "$.list[0].name", Value::from("n")).unwrap();
        set_path(&mut doc, "$.list[1]", Value::Int(7)).unwrap(); // index == len appends
        set_path(&mut doc, "$.m[0][0]", Value::Bool(true)).unwrap();
        assert_eq!(
            doc,
            json!({
                "keep": 1,
                "a": {"sib": true, "b": {"c": 5}},
                "list": [{"name": "n"}, 7],
                "m": [[true]],
            })
        );
    }

    #[test]
    fn set_errors_leave_document_unchanged() {
        let original = json!({"s": "str", "arr": [1, 2], "b": null});
        let mut doc = original.clone();
        let err = set_path(&mut doc, "$.s.x", Value::Int(1)).unwrap_err();
        assert!(
            matches!(&err, Error::WrongType { expected, actual }
            if expected == "Object" && actual.contains("String")),
            "{err}"
        );
        assert!(matches!(
            set_path(&mut doc, "$.arr.x", Value::Int(1)),
            Err(Error::WrongType { .. })
        ));
        assert!(matches!(
            set_path(&mut doc, "$.s[0]", Value::Int(1)),
            Err(Error::WrongType { .. })
        ));
        assert!(matches!(
            set_path(&mut doc, "$.b.c", Value::Int(1)),
            Err(Error::WrongType { .. })
        ));
        for p in [
            "$.arr[3]",
            "$.arr[-3]",
            "$.new.list[1]",
            "$.new[-1]",
            "$.new[0][2]",
        ] {
            assert!(
                matches!(
                    set_path(&mut doc, p, Value::Int(1)),
                    Err(Error::ConstraintViolation(_))
                ),
                "{p}"
            );
        }
        // Non-singular: one bad target aborts the whole update.
        assert!(matches!(
            set_path(&mut doc, "$.*.x", Value::Int(1)),
            Err(Error::WrongType { .. })
        ));
        assert_eq!(doc, original);
    }

    #[test]
    fn set_non_singular() {
        let mut doc =
            json!({"a": [1, 2, 3], "users": [{"age": 40}, {"age": 20}, {"age": 50, "f": {}}]});
        set_path(&mut doc, "$.a[*]", Value::Int(0)).unwrap();
        set_path(&mut doc, "$.users[?@.age > 30].f.vip", Value::Bool(true)).unwrap();
        set_path(&mut doc, "$.nobody[*].x", Value::Int(1)).unwrap(); // no match: no-op
        assert_eq!(
            doc,
            json!({"a": [0, 0, 0], "users": [
                {"age": 40, "f": {"vip": true}}, {"age": 20}, {"age": 50, "f": {"vip": true}}
            ]})
        );
        let mut doc = json!({"x": {"x": 1}, "y": [{"x": 2}]});
        set_path(&mut doc, "$..x", Value::from("X")).unwrap();
        assert_eq!(doc, json!({"x": "X", "y": [{"x": "X"}]}));
        let mut doc = json!([[1], [2]]);
        set_path(&mut doc, "$[*][1]", Value::Int(9)).unwrap(); // appends in each
        assert_eq!(doc, json!([[1, 9], [2, 9]]));
    }

    #[test]
    fn delete_counts_and_order() {
        let mut doc = sample();
        assert_eq!(delete_path(&mut doc, "$.a.b").unwrap(), 1);
        assert_eq!(delete_path(&mut doc, "$.a.b").unwrap(), 0);
        assert_eq!(delete_path(&mut doc, "$.nope.deeper").unwrap(), 0);
        assert_eq!(delete_path(&mut doc, "$.a.c[-1]").unwrap(), 1);
        assert_eq!(get(&doc, "$.a.c"), Some(json!([10, 20])));
        assert_eq!(delete_path(&mut doc, "$['odd key']").unwrap(), 1);
        assert_eq!(delete_path(&mut doc, "$..x").unwrap(), 2);
        assert_eq!(
            get(&doc, "$.items"),
            Some(json!([{"p": 5}, {"p": 15}, {"y": 3}]))
        );

        let mut doc = json!({"n": [0, 1, 2, 3, 4, 5, 6]});
        assert_eq!(delete_path(&mut doc, "$.n[1,3,5,3]").unwrap(), 3);
        assert_eq!(doc, json!({"n": [0, 2, 4, 6]}));
        assert_eq!(delete_path(&mut doc, "$.n[?@ > 1]").unwrap(), 3);
        assert_eq!(doc, json!({"n": [0]}));

        let mut doc = json!({"a": {"b": 1}, "c": [1, [2]]});
        assert_eq!(delete_path(&mut doc, "$..*").unwrap(), 6);
        assert_eq!(doc, json!({}));

        let mut doc = json!({"a": 1});
        assert!(matches!(
            delete_path(&mut doc, "$"),
            Err(Error::ConstraintViolation(_))
        ));
        assert_eq!(doc, json!({"a": 1}));
    }

    #[test]
    fn delete_inside_bytes_is_refused() {
        let mut doc = Value::Object(HashMap::from([
            ("b".to_string(), Value::Bytes(vec![1, 2])),
            ("k".to_string(), Value::Int(1)),
        ]));
        let before = doc.clone();
        assert!(matches!(
            delete_path(&mut doc, "$.b[0]"),
            Err(Error::WrongType { .. })
        ));
        assert!(matches!(
            delete_path(&mut doc, "$.b[*]"),
            Err(Error::WrongType { .. })
        ));
        assert!(matches!(
            set_path(&mut doc, "$.b[0]", Value::Int(3)),
            Err(Error::WrongType { .. })
        ));
        assert_eq!(doc, before);
        // Bytes go with a selected ancestor: `b`, its 2 bytes and `k`.
        assert_eq!(delete_path(&mut doc.clone(), "$..*").unwrap(), 4);
        assert_eq!(delete_path(&mut doc, "$.b").unwrap(), 1);
        assert_eq!(doc, json!({"k": 1}));
    }

    #[test]
    fn lenient_member_name_shorthand() {
        // jsonpath-rust reads `.a b` as the member "a b" (the RFC would reject it).
        let doc = json!({"a b": 1, "a": {"b": 2}});
        assert_eq!(get(&doc, "$.a b"), Some(Value::Int(1)));
        assert_eq!(get(&doc, "$['a b']"), Some(Value::Int(1)));
        assert_eq!(get(&doc, "$.a .b"), Some(Value::Int(2)));
    }

    #[test]
    fn well_typed_functions_are_accepted() {
        let doc = json!([{"a": "abc", "t": [1, 2]}, {"a": "x", "t": []}]);
        assert_eq!(get(&doc, "$[?length(@.t) > 1].a"), Some(json!(["abc"])));
        assert_eq!(get(&doc, "$[?count(@.t[*]) == 2].a"), Some(json!(["abc"])));
        // Documented divergence: jsonpath-rust's count() of an empty nodelist is no value.
        assert_eq!(get(&doc, "$[?count(@.t[*]) == 0].a"), Some(json!([])));
        assert_eq!(get(&doc, "$[?!@.t[*]].a"), Some(json!(["x"])));
        assert_eq!(get(&doc, "$[?match(@.a, 'a.*')].a"), Some(json!(["abc"])));
        assert_eq!(get(&doc, "$[?search(@.a, 'b')].a"), Some(json!(["abc"])));
        assert_eq!(get(&doc, "$[?value(@.t[0]) == 1].a"), Some(json!(["abc"])));
        assert_eq!(
            get(&doc, "$[?length(value(@.a)) == 1].a"),
            Some(json!(["x"]))
        );
        assert_eq!(get(&doc, "$[?@.t[?@ > 1]].a"), Some(json!(["abc"])));
        assert_eq!(get(&doc, "$[?!@.t[0]].a"), Some(json!(["x"])));
    }

    #[test]
    fn merge_at_root_and_nested() {
        let mut doc =
            json!({"name": "Ada", "age": 30, "tmp": 1, "addr": {"city": "X", "zip": "1"}});
        merge_at(&mut doc, "$", json!({"age": 31, "tmp": null, "new": [1]})).unwrap();
        merge_at(
            &mut doc,
            "$.addr",
            json!({"zip": null, "street": {"n": 5, "gone": null}}),
        )
        .unwrap();
        assert_eq!(
            doc,
            json!({"name": "Ada", "age": 31, "new": [1], "addr": {"city": "X", "street": {"n": 5}}})
        );
        // Missing target: created like set_path, nulls dropped.
        merge_at(&mut doc, "$.p.q", json!({"r": 1, "s": null})).unwrap();
        assert_eq!(get(&doc, "$.p"), Some(json!({"q": {"r": 1}})));
        // Non-object patch replaces; null patch sets null.
        merge_at(&mut doc, "$.addr", json!([1, 2])).unwrap();
        assert_eq!(get(&doc, "$.addr"), Some(json!([1, 2])));
        merge_at(&mut doc, "$.name", Value::Null).unwrap();
        assert_eq!(get(&doc, "$.name"), Some(Value::Null));
        // Object patch onto a scalar replaces it with an object.
        merge_at(&mut doc, "$.age", json!({"years": 31})).unwrap();
        assert_eq!(get(&doc, "$.age"), Some(json!({"years": 31})));
        // Array element target.
        merge_at(&mut doc, "$.new[0]", json!({"k": true})).unwrap();
        assert_eq!(get(&doc, "$.new"), Some(json!([{"k": true}])));
        assert!(matches!(
            merge_at(&mut doc, "$.new[*]", json!({})),
            Err(Error::InvalidPath(_))
        ));
        assert!(matches!(
            merge_at(&mut doc, "$..x", json!({})),
            Err(Error::InvalidPath(_))
        ));
    }

    #[test]
    fn variants_are_preserved() {
        let mut doc = Value::Object(HashMap::from([
            ("i".to_string(), Value::Int(1)),
            ("f".to_string(), Value::Float(1.0)),
            ("nan".to_string(), Value::Float(f64::NAN)),
            ("bytes".to_string(), Value::Bytes(vec![0, 1, 2])),
            ("big".to_string(), Value::Float(1e20)),
            ("o".to_string(), json!({"x": 1})),
        ]));
        set_path(&mut doc, "$.o.y", Value::Float(2.0)).unwrap();
        set_path(&mut doc, "$.o[?@ == 1]", Value::Int(3)).unwrap();
        merge_at(&mut doc, "$", json!({"extra": 1})).unwrap();
        merge_at(
            &mut doc,
            "$.o",
            Value::Object(HashMap::from([("raw".to_string(), Value::Bytes(vec![9]))])),
        )
        .unwrap();
        assert_eq!(delete_path(&mut doc, "$.extra").unwrap(), 1);
        assert_eq!(delete_path(&mut doc, "$[?@ == 'none']").unwrap(), 0);
        let o = doc.as_object().unwrap();
        assert_eq!(o["i"], Value::Int(1));
        assert_eq!(o["f"], Value::Float(1.0));
        assert!(matches!(o["nan"], Value::Float(f) if f.is_nan()));
        assert_eq!(o["bytes"], Value::Bytes(vec![0, 1, 2]));
        assert_eq!(o["big"], Value::Float(1e20));
        let inner = o["o"].as_object().unwrap();
        assert_eq!(inner["x"], Value::Int(3));
        assert_eq!(inner["y"], Value::Float(2.0));
        assert_eq!(inner["raw"], Value::Bytes(vec![9]));
        assert_eq!(o.len(), 6);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn json_value() -> impl Strategy<Value = serde_json::Value> {
            let leaf = prop_oneof![
                Just(serde_json::Value::Null),
                any::<bool>().prop_map(serde_json::Value::from),
                (-5i64..5).prop_map(serde_json::Value::from),
                (-5i64..5).prop_map(|i| serde_json::Value::from(i as f64 + 0.5)),
                "[ab]{0,2}".prop_map(serde_json::Value::from),
            ];
            leaf.prop_recursive(4, 32, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                    prop::collection::btree_map("[abc]", inner, 0..4)
                        .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
                ]
            })
        }

        fn path_text() -> impl Strategy<Value = String> {
            let token = prop_oneof![
                Just("$"),
                Just("@"),
                Just("."),
                Just(".."),
                Just("["),
                Just("]"),
                Just("*"),
                Just("a"),
                Just("'b'"),
                Just("0"),
                Just("-1"),
                Just(":"),
                Just(","),
                Just("?"),
                Just("=="),
                Just("<"),
                Just("!"),
                Just("&&"),
                Just("("),
                Just(")"),
                Just(" "),
                Just("length"),
                Just("count"),
                Just("match"),
                Just("value"),
                Just("'a.*'"),
                Just("1.5"),
                Just("null"),
                Just("true"),
                Just("\\"),
                Just("\""),
                Just("9007199254740993"),
            ];
            prop::collection::vec(token, 0..12).prop_map(|t| t.concat())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Our merge on `Value` agrees with `json_patch::merge` on JSON documents.
            #[test]
            fn merge_matches_json_patch(target in json_value(), patch in json_value()) {
                let mut expected = target.clone();
                json_patch::merge(&mut expected, &patch);
                let mut ours = Value::from(target);
                merge_at(&mut ours, "$", Value::from(patch)).unwrap();
                prop_assert_eq!(serde_json::Value::from(ours), expected);
            }

            /// Singular paths resolved directly agree with jsonpath-rust's own evaluation.
            #[test]
            fn singular_lookup_matches_engine(doc in json_value(), steps in prop::collection::vec(
                prop_oneof![
                    "[abc]".prop_map(|s| format!("['{s}']")),
                    (-3i64..4).prop_map(|i| format!("[{i}]")),
                ], 0..4)) {
                let path = format!("${}", steps.concat());
                let value = Value::from(doc.clone());
                let ours = get_path(&value, &path).unwrap();
                let engine = js_path_process(&parse(&path).unwrap(), &doc).unwrap();
                prop_assert_eq!(ours.is_some(), engine.len() == 1);
                if let Some(v) = ours {
                    prop_assert_eq!(serde_json::Value::from(v), engine[0].val.clone());
                }
            }

            /// Arbitrary path text never panics, whatever the operation.
            #[test]
            fn no_panics(doc in json_value(), path in path_text()) {
                let value = Value::from(doc);
                let _ = get_path(&value, &path);
                let _ = set_path(&mut value.clone(), &path, Value::Int(1));
                let _ = delete_path(&mut value.clone(), &path);
                let _ = merge_at(&mut value.clone(), &path, json!({"a": null, "b": 1}));
            }

            /// After a successful set, a singular path reads back the value.
            #[test]
            fn set_then_get(doc in json_value(), steps in prop::collection::vec(
                prop_oneof![
                    "[abc]".prop_map(|s| format!(".{s}")),
                    (-2i64..3).prop_map(|i| format!("[{i}]")),
                ], 0..4)) {
                let path = format!("${}", steps.concat());
                let mut value = Value::from(doc);
                let before = value.clone();
                match set_path(&mut value, &path, Value::from("new")) {
                    Ok(()) => prop_assert_eq!(get_path(&value, &path).unwrap(), Some(Value::from("new"))),
                    Err(_) => prop_assert_eq!(value, before),
                }
            }
        }
    }
}
