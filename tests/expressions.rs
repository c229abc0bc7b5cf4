//! The fast CEL subset against the `cel` crate: whenever the subset parses an expression,
//! `cel` must accept it too, and whenever the subset gives a value, `cel` must give the same;
//! whenever an integer kernel gives a value, the subset gives the same.

use indexmap::IndexMap;
use orca::chart::fast::{self, Env, Val};
use orca::interpreter::eval::{Scope, eval, from_cel};
use orca::model::Json;
use proptest::prelude::*;
use serde_json::json;
use std::borrow::Cow;

fn context() -> IndexMap<String, Json> {
    serde_json::from_value(json!({
        "x": 7, "y": -3, "big": 9223372036854775807i64, "d": 2.5, "z": 0.0,
        "s": "ab", "t": "b", "b": true, "n": null,
        "m": {"k": 1, "s": "v", "in": {"deep": [1, 2]}}, "l": [10, 20, 30],
    }))
    .unwrap()
}

struct Ctx<'a>(&'a IndexMap<String, Json>, &'a Json);

impl<'a> Env<'a> for Ctx<'a> {
    fn var(&self, name: &str, _slot: Option<usize>) -> Option<&'a Json> {
        self.0.get(name)
    }
    fn event_field(&self, field: &str) -> Option<Val<'a>> {
        match field {
            "name" => Some(Val::Str(Cow::Borrowed("GO"))),
            "data" => Some(Val::of(self.1)),
            _ => None,
        }
    }
    fn in_state(&self, _: usize) -> Option<bool> {
        Some(true)
    }
}

fn atom() -> impl Strategy<Value = String> {
    prop_oneof![
        (-20i64..20).prop_map(|i| if i < 0 {
            format!("({i})")
        } else {
            i.to_string()
        }),
        Just("9223372036854775807".to_string()),
        (0u32..40).prop_map(|i| format!("{}.{}", i / 4, i % 10)),
        Just("1e3".to_string()),
        prop::sample::select(vec!["'ab'", "\"b\"", "''", "'a\\'b'", "'x\\n'"])
            .prop_map(str::to_string),
        prop::sample::select(vec!["true", "false", "null"]).prop_map(str::to_string),
        prop::sample::select(vec![
            "x", "y", "big", "d", "z", "s", "t", "b", "n", "m", "l", "missing"
        ])
        .prop_map(str::to_string),
        prop::sample::select(vec![
            "m.k",
            "m.s",
            "m.in.deep",
            "m.nope",
            "l[1]",
            "l[7]",
            "m['k']",
            "event.name",
            "event.data.v",
            "event.data",
            "In('a')"
        ])
        .prop_map(str::to_string),
    ]
}

fn expr() -> impl Strategy<Value = String> {
    atom().prop_recursive(4, 32, 3, |inner| {
        prop_oneof![
            (
                inner.clone(),
                prop::sample::select(vec![
                    "+", "-", "*", "/", "%", "<", "<=", ">", ">=", "==", "!=", "&&", "||"
                ]),
                inner.clone()
            )
                .prop_map(|(a, op, b)| format!("{a} {op} {b}")),
            inner.clone().prop_map(|a| format!("!{a}")),
            inner.clone().prop_map(|a| format!("-{a}")),
            inner.clone().prop_map(|a| format!("({a})")),
            (inner.clone(), inner.clone(), inner).prop_map(|(c, a, b)| format!("{c} ? {a} : {b}")),
        ]
    })
}

fn check(src: &str) -> Result<(), TestCaseError> {
    let Some(parsed) = fast::parse(src) else {
        return Ok(());
    };
    let program = cel::Program::compile(src);
    prop_assert!(
        program.is_ok(),
        "the subset accepted `{src}` but cel rejects it: {:?}",
        program.err()
    );
    let ctx = context();
    let data = json!({"v": 5});
    let fast_value = fast::eval(&parsed.expr, &Ctx(&ctx, &data)).and_then(Val::into_json);
    let compiled = orca::chart::expr::compile(src).unwrap();
    let event = json!({"name": "GO", "data": data});
    // The slow path of the interpreter, with the fast form bypassed.
    let cel_value = {
        let mut c = cel::Context::default();
        for v in &compiled.variables {
            if v == "event" {
                c.add_variable_from_value("event", orca::interpreter::eval::to_cel(&event));
            } else if let Some(j) = ctx.get(v) {
                c.add_variable_from_value(v.as_str(), orca::interpreter::eval::to_cel(j));
            }
        }
        if !compiled.in_paths.is_empty() {
            // `In` is exercised by the interpreter's own tests; here it is always true.
            let _ = eval(
                &compiled,
                &Scope {
                    context: &ctx,
                    event: Some(&event),
                    in_values: &[true],
                },
            );
        }
        program
            .unwrap()
            .execute(&c)
            .map_err(|e| e.to_string())
            .and_then(|v| from_cel(&v))
    };
    // The integer kernel, with variables bound to their slots in the context.
    let mut bound = parsed.expr.clone();
    fast::bind_slots(&mut bound, &|name| ctx.get_index_of(name));
    if let Some(k) = orca::chart::kernel::Kernel::of(&bound)
        && let Some(kv) = k.eval(&ctx)
    {
        prop_assert_eq!(Some(kv), fast_value.clone(), "kernel vs fast: `{}`", src);
    }
    if let Some(v) = fast_value
        && compiled.in_paths.is_empty()
    {
        prop_assert_eq!(Ok(v), cel_value, "`{}`", src);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(2000)))]

    #[test]
    fn the_fast_subset_agrees_with_cel(src in expr()) {
        check(&src)?;
    }

    /// Any text at all, multi-byte characters next to operators included (a panic the loader
    /// fuzzer found): the subset parses it or declines, never panics.
    #[test]
    fn the_fast_parser_never_panics(src in "([a-z0-9 +*/%<>=!&|?:.'\"-]|\\PC){0,24}") {
        if fast::parse(&src).is_some() {
            prop_assert!(cel::Program::compile(&src).is_ok(), "`{}`", src);
        }
    }

    #[test]
    fn the_fast_parser_never_accepts_what_cel_rejects(src in "[a-z0-9 +*/%<>=!&|?:.()\\[\\]'\"-]{1,24}") {
        if fast::parse(&src).is_some() {
            prop_assert!(cel::Program::compile(&src).is_ok(), "`{}`", src);
        }
    }
}

#[test]
fn a_multibyte_character_after_an_operator_is_declined_not_a_panic() {
    for src in [
        "total -\u{64f}aid",
        "x <\u{e9}",
        "a|\u{1F600}",
        "1 =\u{3b1}",
    ] {
        assert!(fast::parse(src).is_none(), "`{src}`");
    }
}

#[test]
fn known_edges_defer_to_cel() {
    let ctx = context();
    let data = json!(null);
    let env = Ctx(&ctx, &data);
    for src in [
        "big + 1",
        "1 + 1.0",
        "x / 0",
        "x == 1.0",
        "n < 1",
        "missing",
        "m.nope",
        "l[7]",
        "1.0 / 0.0",
    ] {
        let p = fast::parse(src).unwrap_or_else(|| panic!("`{src}` is in the subset"));
        assert_eq!(
            fast::eval(&p.expr, &env).and_then(Val::into_json),
            None,
            "`{src}` must defer to cel"
        );
    }
    for src in [
        "size(l)",
        "l.size()",
        "x in l",
        "1u",
        "b'x'",
        "r'x'",
        "0x10",
        "[1, 2]",
        "{'a': 1}",
        "has(m.k)",
        "-9223372036854775808",
        "-!b",
        "-(-9223372036854775807 - 1)",
    ] {
        assert!(fast::parse(src).is_none(), "`{src}` is for cel");
    }
}
