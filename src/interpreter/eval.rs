//! Evaluating compiled CEL expressions against an instance's context, the current event and
//! its configuration.

use crate::chart::CompiledExpr;
use crate::model::Json;
use cel::objects::{Key, Map};
use cel::{Context, Env, FunctionContext, Value};
use indexmap::IndexMap;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// The hidden variable through which `In("path")` learns which of the paths the expression
/// names are active (a CEL function cannot borrow the instance).
const IN_VAR: &str = "__orca_in";

fn env() -> Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(Env::stdlib())).clone()
}

fn in_state(ftx: &FunctionContext, path: Arc<String>) -> Result<bool, cel::ExecutionError> {
    let Some(map) = ftx.ptx.get_variable(IN_VAR) else {
        return Err(ftx.error("In() is only available in machine expressions"));
    };
    let map = Value::try_from(&*map).map_err(|_| ftx.error("internal: In() map"))?;
    match map {
        Value::Map(m) => match m.map.get(&Key::String(path.clone())) {
            Some(Value::Bool(b)) => Ok(*b),
            _ => Err(ftx.error(format!(
                "In(\"{path}\"): write the state path as a literal string"
            ))),
        },
        _ => Err(ftx.error("internal: In() map")),
    }
}

/// What an expression can see besides the context.
pub struct Scope<'a> {
    pub context: &'a IndexMap<String, Json>,
    /// The `event` variable, if an event is being processed.
    pub event: Option<&'a Json>,
    /// Whether the state at each of the expression's `In` paths is active, in `in_paths` order.
    pub in_values: &'a [bool],
}

/// Evaluates `expr`; the error is a message for `error.execution`.
pub fn eval(expr: &CompiledExpr, scope: &Scope) -> Result<Json, String> {
    let mut ctx = Context::with_env(env());
    for var in &expr.variables {
        if var == "event" {
            if let Some(e) = scope.event {
                ctx.add_variable_from_value("event", to_cel(e));
            }
        } else if let Some(v) = scope.context.get(var) {
            ctx.add_variable_from_value(var.as_str(), to_cel(v));
        }
    }
    if !expr.in_paths.is_empty() {
        let map: HashMap<Key, Value> = expr
            .in_paths
            .iter()
            .zip(scope.in_values)
            .map(|(p, &b)| (Key::String(Arc::new(p.clone())), Value::Bool(b)))
            .collect();
        ctx.add_variable_from_value(IN_VAR, Value::Map(Map { map: Arc::new(map) }));
        ctx.add_function("In", in_state)
            .map_err(|e| format!("internal: cannot declare In(): {e}"))?;
    }
    let program = expr
        .program()
        .ok_or_else(|| format!("`{}` is not valid CEL", expr.source))?;
    let value = program.execute(&ctx).map_err(|e| e.to_string())?;
    from_cel(&value)
}

/// Evaluates a guard: it must be a bool.
pub fn eval_bool(expr: &CompiledExpr, scope: &Scope) -> Result<bool, String> {
    match eval(expr, scope)? {
        Json::Bool(b) => Ok(b),
        other => Err(format!(
            "guard `{}` evaluated to {} ({}), not a bool",
            expr.source,
            other,
            type_name(&other)
        )),
    }
}

/// The JSON type's name, for messages.
pub fn type_name(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "bool",
        Json::Number(n) if n.is_f64() => "double",
        Json::Number(_) => "int",
        Json::String(_) => "string",
        Json::Array(_) => "list",
        Json::Object(_) => "map",
    }
}

/// JSON to CEL: integral numbers are `int`s (`uint` only beyond `i64`), others `double`s.
pub fn to_cel(v: &Json) -> Value {
    match v {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                Value::UInt(u)
            } else {
                Value::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Json::String(s) => Value::String(Arc::new(s.clone())),
        Json::Array(a) => Value::List(Arc::new(a.iter().map(to_cel).collect())),
        Json::Object(m) => {
            let map: HashMap<Key, Value> = m
                .iter()
                .map(|(k, v)| (Key::String(Arc::new(k.clone())), to_cel(v)))
                .collect();
            Value::Map(Map { map: Arc::new(map) })
        }
    }
}

/// CEL to JSON. Map keys are sorted, so results do not depend on hash order (replays must
/// be identical).
pub fn from_cel(v: &Value) -> Result<Json, String> {
    Ok(match v {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::UInt(u) => Json::from(*u),
        Value::Float(f) => match serde_json::Number::from_f64(*f) {
            Some(n) => Json::Number(n),
            None => return Err(format!("the result {f} is not a finite number")),
        },
        Value::String(s) => Json::String(s.to_string()),
        Value::List(l) => Json::Array(l.iter().map(from_cel).collect::<Result<_, _>>()?),
        Value::Map(m) => {
            let mut entries: Vec<(String, Json)> = m
                .map
                .iter()
                .map(|(k, v)| Ok((key_text(k), from_cel(v)?)))
                .collect::<Result<_, String>>()?;
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Json::Object(entries.into_iter().collect())
        }
        Value::Bytes(b) => Json::String(String::from_utf8_lossy(b).into_owned()),
        other => Json::String(format!("{other:?}")),
    })
}

fn key_text(k: &Key) -> String {
    match k {
        Key::Int(i) => i.to_string(),
        Key::Uint(u) => u.to_string(),
        Key::Bool(b) => b.to_string(),
        Key::String(s) => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chart::expr::compile;
    use serde_json::json;

    fn run(src: &str, ctx: Json, event: Option<Json>) -> Result<Json, String> {
        let ctx: IndexMap<String, Json> = serde_json::from_value(ctx).unwrap();
        let e = compile(src).unwrap();
        let in_values = vec![true; e.in_paths.len()];
        eval(
            &e,
            &Scope {
                context: &ctx,
                event: event.as_ref(),
                in_values: &in_values,
            },
        )
    }

    #[test]
    fn integral_numbers_are_ints() {
        assert_eq!(run("count + 1", json!({"count": 0}), None), Ok(json!(1)));
        assert_eq!(run("x * 2.0", json!({"x": 1.5}), None), Ok(json!(3.0)));
    }

    #[test]
    fn event_and_in() {
        let ev = json!({"name": "GO", "data": {"code": 1234}});
        assert_eq!(
            run("event.data.code == 1234", json!({}), Some(ev)),
            Ok(json!(true))
        );
        assert_eq!(run("In('a.b') && true", json!({}), None), Ok(json!(true)));
    }

    #[test]
    fn errors_are_messages_not_panics() {
        assert!(run("missing + 1", json!({}), None).is_err());
        assert!(run("1 / 0", json!({}), None).is_err());
        assert!(run("'a' + 1", json!({}), None).is_err());
    }

    #[test]
    fn maps_come_back_with_sorted_keys() {
        let v = run("{'b': 1, 'a': 2}", json!({}), None).unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), r#"{"a":2,"b":1}"#);
    }
}
