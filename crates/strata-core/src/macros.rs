//! The `json!` macro.

/// Builds a [`Value`](crate::Value) with JSON syntax, exactly like `serde_json::json!`.
///
/// The result is a `Value`, so it can be passed wherever `impl Into<Value>` is expected,
/// and `json!({...}).into()` yields a `Value` (or an `Option<Value>` via `Some(...)`).
/// Integers become [`Value::Int`](crate::Value::Int) and numbers with a fraction or an
/// exponent become [`Value::Float`](crate::Value::Float).
///
/// ```
/// use strata_core::{json, Value};
/// let doc = json!({"name": "Alice", "age": 30, "score": 9.5, "tags": ["a", "b"]});
/// let obj = doc.as_object().unwrap();
/// assert_eq!(obj["age"], Value::Int(30));
/// assert_eq!(obj["score"], Value::Float(9.5));
/// let meta: Option<Value> = Some(json!({"title": "Hello"}).into());
/// assert!(meta.unwrap().is_object());
/// ```
#[macro_export]
macro_rules! json {
    ($($json:tt)+) => {
        $crate::Value::from($crate::__private::serde_json::json!($($json)+))
    };
}
