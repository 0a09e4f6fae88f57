//! Conversions between Python objects and `stratadb::Value`, run ids, versions,
//! vectors and metadata filters.
//!
//! Values convert exactly both ways: `None`, `bool`, `int` (64-bit; larger ints raise
//! `OverflowError` instead of being truncated or turned into floats), `float`, `str`,
//! `bytes` (also `bytearray`/`memoryview` on the way in; always `bytes` on the way out,
//! never confused with `str`), `list`/`tuple` (read back as `list`) and `dict` with `str`
//! keys. Anything else raises `TypeError` naming the type.
use std::collections::HashMap;

use numpy::{PyReadonlyArray1, PyUntypedArrayMethods};
use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyMemoryView, PyString, PyTuple,
};
use pyo3::IntoPyObjectExt;
use stratadb::{RunId, SearchFilter, Value, Version, Versioned};

use crate::errors::IntoPy;

/// The nesting limit enforced while converting, so that a self-referencing list fails
/// cleanly instead of recursing forever (the engine's own limit is checked later).
const MAX_DEPTH: usize = stratadb::limits::MAX_NESTING_DEPTH + 1;

/// Converts a Python object to a `Value`.
pub fn to_value(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    to_value_at(obj, 0)
}

fn to_value_at(obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<Value> {
    if depth > MAX_DEPTH {
        return Err(PyValueError::new_err(format!(
            "value nests more than {} levels deep (or refers to itself)",
            stratadb::limits::MAX_NESTING_DEPTH
        )));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::String(s.to_cow()?.into_owned()));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    // bool before int: bool is a subclass of int.
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if let Ok(i) = obj.cast::<PyInt>() {
        return match i.extract::<i64>() {
            Ok(v) => Ok(Value::Int(v)),
            Err(_) => Err(PyOverflowError::new_err(format!(
                "int {} does not fit in 64 bits: StrataDB stores integers as signed 64-bit \
                 (store it as a str or bytes instead)",
                i.repr().map(|r| r.to_string()).unwrap_or_default()
            ))),
        };
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Ok(Value::Float(f.value()));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut map = HashMap::with_capacity(d.len());
        for (k, v) in d.iter() {
            let key = k.cast::<PyString>().map_err(|_| {
                PyTypeError::new_err(format!("dict keys must be str, found {}", type_name(&k)))
            })?;
            map.insert(key.to_cow()?.into_owned(), to_value_at(&v, depth + 1)?);
        }
        return Ok(Value::Object(map));
    }
    if let Ok(l) = obj.cast::<PyList>() {
        let mut out = Vec::with_capacity(l.len());
        for v in l.iter() {
            out.push(to_value_at(&v, depth + 1)?);
        }
        return Ok(Value::Array(out));
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        let mut out = Vec::with_capacity(t.len());
        for v in t.iter() {
            out.push(to_value_at(&v, depth + 1)?);
        }
        return Ok(Value::Array(out));
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Value::Bytes(b.as_bytes().to_vec()));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(Value::Bytes(b.to_vec()));
    }
    if obj.cast::<PyMemoryView>().is_ok() {
        let bytes = obj.call_method0("tobytes")?;
        return Ok(Value::Bytes(bytes.cast::<PyBytes>()?.as_bytes().to_vec()));
    }
    // numpy scalars (`np.int64`, `np.float32`, `np.bool_`, …; `np.float64` is a float
    // already): their `item()` is the Python int, float or bool they stand for.
    if is_numpy_scalar(obj) {
        return to_value_at(&obj.call_method0("item")?, depth + 1);
    }
    Err(PyTypeError::new_err(format!(
        "cannot store a value of type {}: use None, bool, int, float, str, bytes, list or dict",
        type_name(obj)
    )))
}

/// Whether `obj` is a numpy scalar (an instance of `numpy.generic`), found without
/// importing numpy: by the module of its type and an `item` method.
fn is_numpy_scalar(obj: &Bound<'_, PyAny>) -> bool {
    let ty = obj.get_type();
    ty.module()
        .is_ok_and(|m| m.to_cow().is_ok_and(|m| m == "numpy"))
        && obj.hasattr("item").unwrap_or(false)
        && obj.hasattr("dtype").unwrap_or(false)
        && obj
            .getattr("ndim")
            .is_ok_and(|n| n.extract::<usize>().is_ok_and(|d| d == 0))
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Converts a `Value` to a Python object.
pub fn from_value<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Int(i) => i.into_bound_py_any(py)?,
        Value::Float(f) => PyFloat::new(py, *f).into_any(),
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Bytes(b) => PyBytes::new(py, b).into_any(),
        Value::Array(a) => {
            let items = a
                .iter()
                .map(|x| from_value(py, x))
                .collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)?.into_any()
        }
        Value::Object(m) => {
            // The engine's objects are unordered maps (`HashMap`), whose iteration order
            // differs from one read to the next; a dict comes back with its keys sorted,
            // so that the same value always reads the same way.
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            let d = PyDict::new(py);
            for (k, x) in entries {
                d.set_item(k, from_value(py, x)?)?;
            }
            d.into_any()
        }
    })
}

/// Parses a run id given as a `str` (any UUID form) or `None` (the default run).
pub fn run_id(run: Option<&str>) -> PyResult<RunId> {
    match run {
        None => Ok(RunId::DEFAULT),
        Some(s) => s.parse::<RunId>().py(),
    }
}

/// The variant name of a version: `"txn"`, `"sequence"` or `"counter"`.
pub fn version_kind(v: Version) -> &'static str {
    match v {
        Version::Txn(_) => "txn",
        Version::Sequence(_) => "sequence",
        Version::Counter(_) => "counter",
    }
}

/// A read result: the value with the version and time of the write that produced it.
#[pyclass(frozen, freelist = 256, module = "stratadb", name = "Versioned")]
pub struct PyVersioned {
    /// The value.
    #[pyo3(get)]
    pub value: Py<PyAny>,
    /// The version number (its meaning depends on `version_kind`).
    #[pyo3(get)]
    pub version: u64,
    /// `"txn"` (KV, JSON, vectors, runs), `"sequence"` (events) or `"counter"` (state).
    #[pyo3(get)]
    pub version_kind: &'static str,
    /// When the write happened, in microseconds since the Unix epoch.
    #[pyo3(get)]
    pub timestamp: u64,
}

#[pymethods]
impl PyVersioned {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Versioned(value={}, version={}, version_kind={:?}, timestamp={})",
            self.value.bind(py).repr()?,
            self.version,
            self.version_kind,
            self.timestamp
        ))
    }

    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        let Ok(o) = other.cast::<PyVersioned>() else {
            return Ok(false);
        };
        let o = o.get();
        Ok(self.version == o.version
            && self.version_kind == o.version_kind
            && self.timestamp == o.timestamp
            && self.value.bind(py).eq(o.value.bind(py))?)
    }
}

/// Wraps a `Versioned<Value>` for Python.
pub fn versioned(py: Python<'_>, v: &Versioned<Value>) -> PyResult<PyVersioned> {
    Ok(PyVersioned {
        value: from_value(py, &v.value)?.unbind(),
        version: v.version.as_u64(),
        version_kind: version_kind(v.version),
        timestamp: v.timestamp.as_micros(),
    })
}

/// Wraps an optional read result.
pub fn opt_versioned(
    py: Python<'_>,
    v: Option<Versioned<Value>>,
) -> PyResult<Option<Py<PyVersioned>>> {
    v.map(|v| Py::new(py, versioned(py, &v)?)).transpose()
}

/// A vector given as a `numpy.ndarray` of `float32` (used in place, without a copy,
/// when it is contiguous) or as any sequence of numbers.
pub enum VectorArg<'py> {
    /// A borrowed numpy array.
    Array(PyReadonlyArray1<'py, f32>),
    /// A converted sequence.
    Owned(Vec<f32>),
}

impl VectorArg<'_> {
    /// The vector's elements.
    pub fn as_slice(&self) -> PyResult<&[f32]> {
        match self {
            VectorArg::Array(a) => a
                .as_slice()
                .map_err(|e| PyValueError::new_err(format!("vector array: {e}"))),
            VectorArg::Owned(v) => Ok(v),
        }
    }
}

/// Reads a vector argument.
pub fn vector_arg<'py>(obj: &Bound<'py, PyAny>) -> PyResult<VectorArg<'py>> {
    // Sequences, but not of characters or bytes (`b"abc"` would read as [97, 98, 99]).
    if obj.is_instance_of::<PyString>()
        || obj.is_instance_of::<PyBytes>()
        || obj.is_instance_of::<PyByteArray>()
    {
        return Err(PyTypeError::new_err(format!(
            "a vector must be a 1-D numpy float32 array or a sequence of numbers, found {}",
            type_name(obj)
        )));
    }
    if obj.cast::<PyList>().is_err() && obj.cast::<PyTuple>().is_err() {
        if let Ok(a) = obj.extract::<PyReadonlyArray1<'py, f32>>() {
            if a.is_contiguous() {
                return Ok(VectorArg::Array(a));
            }
            return Ok(VectorArg::Owned(a.as_array().iter().copied().collect()));
        }
    }
    obj.extract::<Vec<f32>>()
        .map(VectorArg::Owned)
        .map_err(|_| {
            PyTypeError::new_err(format!(
                "a vector must be a 1-D numpy float32 array or a sequence of numbers, found {}",
                type_name(obj)
            ))
        })
}

/// Parses a metadata filter written as a dict, in the style of MongoDB and LangGraph:
/// `{"field": value}` (equality), `{"field": {"$eq"|"$ne"|"$gt"|"$gte"|"$lt"|"$lte":
/// x, "$in": [..], "$nin": [..], "$contains": x, "$exists": bool}}`, and the combinators
/// `{"$and": [..]}`, `{"$or": [..]}`, `{"$not": {..}}`. Several entries are ANDed.
pub fn filter(obj: &Bound<'_, PyAny>) -> PyResult<SearchFilter> {
    filter_at(obj, 0)
}

/// Converts a filter nested `depth` levels deep. The engine refuses filters nested more
/// than `MAX_NESTING_DEPTH` levels, but only once converted: the conversion itself
/// recurses, so it stops at that depth first (a filter nested tens of thousands of
/// levels deep would otherwise overflow the stack).
fn filter_at(obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<SearchFilter> {
    if depth > stratadb::limits::MAX_NESTING_DEPTH {
        return Err(crate::errors::to_py(stratadb::Error::ConstraintViolation(
            format!(
                "search filter nests more than {} levels deep, the limit",
                stratadb::limits::MAX_NESTING_DEPTH
            ),
        )));
    }
    let d = obj
        .cast::<PyDict>()
        .map_err(|_| PyTypeError::new_err("a filter must be a dict"))?;
    let mut all = Vec::with_capacity(d.len());
    for (k, v) in d.iter() {
        let key: String = k.extract()?;
        match key.as_str() {
            "$and" | "$or" => {
                let subs = v
                    .try_iter()?
                    .map(|x| filter_at(&x?, depth + 1))
                    .collect::<PyResult<Vec<_>>>()?;
                all.push(if key == "$and" {
                    SearchFilter::all(subs)
                } else {
                    SearchFilter::any(subs)
                });
            }
            "$not" => all.push(SearchFilter::Not(Box::new(filter_at(&v, depth + 1)?))),
            op if op.starts_with('$') => {
                return Err(PyValueError::new_err(format!(
                    "unknown filter operator {op:?}: the combinators are $and, $or and $not \
                     (field conditions go inside {{\"field\": {{\"$op\": value}}}})"
                )))
            }
            _ => all.push(field_filter(key, &v)?),
        }
    }
    Ok(if all.len() == 1 {
        all.remove(0)
    } else {
        SearchFilter::all(all)
    })
}

fn field_filter(field: String, cond: &Bound<'_, PyAny>) -> PyResult<SearchFilter> {
    let Ok(d) = cond.cast::<PyDict>() else {
        return Ok(SearchFilter::eq(field, to_value(cond)?));
    };
    let ops = d
        .keys()
        .iter()
        .filter(|k| k.extract::<String>().is_ok_and(|s| s.starts_with('$')))
        .count();
    if ops > 0 && ops < d.len() {
        return Err(PyValueError::new_err(format!(
            "the condition on {field:?} mixes operators ($...) with plain keys: give either \
             operators, or a dict to compare for equality (wrap it in {{\"$eq\": ...}})"
        )));
    }
    if ops == 0 {
        return Ok(SearchFilter::eq(field, to_value(cond)?));
    }
    let mut all = Vec::new();
    for (op, x) in d.iter() {
        let op: String = op.extract()?;
        let f = field.clone();
        all.push(match op.as_str() {
            "$eq" => SearchFilter::eq(f, to_value(&x)?),
            "$ne" => SearchFilter::Not(Box::new(SearchFilter::eq(f, to_value(&x)?))),
            "$gt" => SearchFilter::gt(f, x.extract()?),
            "$gte" => SearchFilter::gte(f, x.extract()?),
            "$lt" => SearchFilter::lt(f, x.extract()?),
            "$lte" => SearchFilter::lte(f, x.extract()?),
            "$in" | "$nin" => {
                let vals = x
                    .try_iter()?
                    .map(|y| to_value(&y?))
                    .collect::<PyResult<Vec<_>>>()?;
                let inf = SearchFilter::In(f, vals);
                if op == "$in" {
                    inf
                } else {
                    SearchFilter::Not(Box::new(inf))
                }
            }
            "$contains" => SearchFilter::contains(f, to_value(&x)?),
            "$exists" => {
                let e = SearchFilter::exists(f);
                if x.is_truthy()? {
                    e
                } else {
                    SearchFilter::Not(Box::new(e))
                }
            }
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown filter operator {other:?} (known: $eq $ne $gt $gte $lt $lte $in $nin $contains $exists)"
                )))
            }
        });
    }
    Ok(if all.len() == 1 {
        all.remove(0)
    } else {
        SearchFilter::all(all)
    })
}
