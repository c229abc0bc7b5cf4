//! Generated machines printed back to RON parse to the same machine (issue #2, item 8), and
//! every RON block of the specs and every shipped machine loads.

use indexmap::IndexMap;
use orca::model::load::{self, load_machine_str, to_ron};
use orca::model::*;
use proptest::prelude::*;
use serde_json::json;

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_]{0,6}"
}

fn expr() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("count + 1".to_string()),
        Just("event.data.x > 2 && !done".to_string()),
        Just("'s' + string(n)".to_string()),
        "[a-z]{1,4}".prop_map(|v| format!("{v} == \"quote\\\"d\""))
    ]
}

fn json_value() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        (-1000i32..1000).prop_map(|n| json!(n as f64 + 0.5)),
        "[ -~]{0,8}".prop_map(Json::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
            prop::collection::vec((name(), inner), 0..4)
                .prop_map(|kv| Json::Object(kv.into_iter().collect())),
        ]
    })
}

fn action() -> impl Strategy<Value = Action> {
    let leaf = prop_oneof![
        (name(), prop::option::of(expr()))
            .prop_map(|(event, data)| Action::Raise(RaiseArgs { event, data })),
        (
            name(),
            prop::option::of(expr()),
            prop::option::of(0u64..5000),
            prop::option::of(name()),
            prop::option::of(Just("#parent".to_string()))
        )
            .prop_map(|(event, data, delay, id, to)| Action::Send(SendArgs {
                event,
                data,
                delay: delay.map(|d| DurationText(format!("{d}ms"))),
                delay_expr: None,
                id,
                to,
            })),
        name().prop_map(Action::Cancel),
        (name(), expr()).prop_map(|(l, e)| Action::Assign(l, e)),
        (prop::option::of(name()), expr())
            .prop_map(|(label, expr)| Action::Log(LogArgs { label, expr })),
        (name(), prop::collection::vec(expr(), 0..3))
            .prop_map(|(name, args)| Action::Call(CallArgs { name, args })),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            (
                expr(),
                prop::collection::vec(inner.clone(), 0..2),
                prop::collection::vec(inner.clone(), 0..2)
            )
                .prop_map(|(guard, then, otherwise)| Action::If(IfArgs {
                    guard: guard.clone(),
                    then,
                    else_if: vec![ElseIf {
                        guard,
                        then: vec![]
                    }],
                    otherwise,
                })),
            (
                expr(),
                name(),
                prop::option::of(name()),
                prop::collection::vec(inner, 0..2)
            )
                .prop_map(|(items, item, index, body)| Action::Foreach(ForeachArgs {
                    items,
                    item,
                    index,
                    body
                })),
        ]
    })
}

fn transition() -> impl Strategy<Value = TransitionDef> {
    (
        prop::collection::vec(name(), 0..3),
        prop::option::of(expr()),
        prop::collection::vec(action(), 0..2),
        any::<bool>(),
        prop::option::of("[ -~]{0,10}"),
    )
        .prop_map(
            |(target, guard, actions, internal, description)| TransitionDef {
                target,
                guard,
                actions,
                internal,
                description,
            },
        )
}

fn transitions() -> impl Strategy<Value = Transitions> {
    prop::collection::vec(transition(), 1..3).prop_map(Transitions)
}

fn state() -> impl Strategy<Value = StateDef> {
    let kinds = prop_oneof![
        Just(None),
        Just(Some(StateKind::Atomic)),
        Just(Some(StateKind::Final)),
        Just(Some(StateKind::Parallel)),
        Just(Some(StateKind::History(HistoryDepth::Deep))),
        Just(Some(StateKind::History(HistoryDepth::Shallow))),
    ];
    let leaf = (
        kinds,
        prop::collection::vec((name(), transitions()), 0..3),
        prop::collection::vec(transition(), 0..2),
        prop::collection::vec((0u64..100_000, transitions()), 0..2),
        prop::collection::vec(action(), 0..2),
        prop::option::of(expr()),
        prop::collection::vec(name(), 0..2),
        prop::collection::vec((name(), json_value()), 0..2),
    )
        .prop_map(
            |(kind, on, always, after, entry, output, tags, meta)| StateDef {
                kind,
                on: on.into_iter().collect(),
                always: Transitions(always),
                after: after
                    .into_iter()
                    .map(|(ms, t)| (DurationText(ms.to_string()), t))
                    .collect(),
                entry,
                output,
                tags,
                meta: meta.into_iter().collect(),
                ..StateDef::default()
            },
        );
    leaf.prop_recursive(3, 24, 4, |inner| {
        (
            inner.clone(),
            prop::collection::vec((name(), inner), 1..4),
            prop::option::of(name()),
        )
            .prop_map(|(mut s, children, initial)| {
                s.states = children.into_iter().collect();
                s.initial = initial;
                s
            })
    })
}

fn machine() -> impl Strategy<Value = MachineDef> {
    (
        prop::option::of(name()),
        prop::collection::vec((name(), json_value()), 0..4),
        prop::collection::vec((name(), state()), 1..5),
        prop::collection::vec((name(), transitions()), 0..2),
        prop::option::of("[ -~]{0,20}"),
    )
        .prop_map(|(id, context, states, on, description)| MachineDef {
            id,
            context: context.into_iter().collect::<IndexMap<_, _>>(),
            states: states.into_iter().collect(),
            on: on.into_iter().collect(),
            description,
            ..MachineDef::default()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(128)))]

    #[test]
    fn printed_machine_parses_to_the_same_machine(def in machine()) {
        let text = to_ron(&def).expect("serializes");
        let back = load_machine_str("gen.ron", &text)
            .unwrap_or_else(|d| panic!("did not parse:\n{d}\n{text}"));
        prop_assert!(back.diagnostics.is_empty(), "{}", back.diagnostics);
        prop_assert_eq!(&back.def, &def, "\n{}", text);
    }

    #[test]
    fn any_bytes_give_a_diagnostic_or_a_machine_never_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(file) = load::decode("fuzz.ron", bytes) {
            let _ = load::load_machine_source(file).map(|m| orca::chart::compile(&m, &Default::default()));
        }
    }

    #[test]
    fn mutated_machines_never_panic(def in machine(), cut in 0usize..2000, junk in "[(){}\\[\\]:,\"#a-z0-9 ]{0,4}") {
        let text = to_ron(&def).expect("serializes");
        let cut = text.char_indices().map(|(i, _)| i).nth(cut % text.chars().count().max(1)).unwrap_or(0);
        let mutated = format!("{}{}{}", &text[..cut], junk, &text[cut..]);
        if let Ok(m) = load_machine_str("m.ron", &mutated) {
            let _ = orca::chart::compile(&m, &Default::default());
        }
    }
}

/// Where the fast reader (serde over the span index) accepts a text, `ron` reads the same
/// machine from it; `None` from the fast reader means `ron` reads the text.
fn assert_fast_agrees(text: &str) -> bool {
    let Some(fast) = load::read_machine_fast(text) else {
        return false;
    };
    match load::ron_options().from_str::<MachineDef>(text) {
        Ok(slow) => assert_eq!(fast, slow, "the fast reader and ron differ on:\n{text}"),
        Err(e) => panic!("the fast reader accepted what ron refuses ({e}):\n{text}"),
    }
    true
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256)))]

    #[test]
    fn fast_reader_agrees_with_ron(
        def in machine(),
        cut in 0usize..2000,
        junk in "[(){}\\[\\]:,\"#a-zA-Z0-9_ /*.'\\\\-]{0,4}",
    ) {
        let text = to_ron(&def).expect("serializes");
        assert_fast_agrees(&text);
        let cut = text.char_indices().map(|(i, _)| i).nth(cut % text.chars().count().max(1)).unwrap_or(0);
        assert_fast_agrees(&format!("{}{}{}", &text[..cut], junk, &text[cut..]));
    }
}

#[test]
fn fast_reader_reads_the_shipped_machines_as_ron_does() {
    let mut read = 0;
    for entry in std::fs::read_dir("machines").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "ron") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        if load::detect_kind(&text) == load::FileKind::Machine {
            read += assert_fast_agrees(&text) as usize;
        }
    }
    assert!(
        read >= 4,
        "the fast reader handled only {read} shipped machines"
    );
    // Forms it leaves to ron, and forms ron refuses: no value from the fast reader.
    for text in [
        r#"Machine(states: { "a": () }) trailing"#,
        r#"Machine(states: { "a": () "b": () })"#,
        r#"Machine(states: { , "a": () })"#,
        r#"Machine(states: { "a": (),, })"#,
        r#"Machine(id: "a\u{41}", states: { "a": () })"#,
        r#"Machine(states: { "a\"b": () })"#,
        r#"Machine(context: { "x": 1e5 }, states: { "a": () })"#,
        r#"Other(states: { "a": () })"#,
        r#"#![enable(unwrap_newtypes)] Machine(states: { "a": () })"#,
        // `( )` is an empty tuple to ron, not `()`.
        r#"Machine(context: { "x": ( ) }, states: { "a": (on: { "GO": ( ) }) })"#,
        // ron refuses a struct written out inside a newtype variant or `Some`.
        r#"Machine(states: { "a": (entry: [Send((event: "E"))]) })"#,
        r#"Machine(states: { "a": (entry: [Send(SendArgs(event: "E"))]) })"#,
        // The values of unknown fields are still RON.
        r#"Machine(foo: 1.2.3, states: { "a": () })"#,
        r#"Machine(foo: "\q", states: { "a": () })"#,
        r#"Machine(states: { "a": () }) /* unclosed"#,
        r#"Machine(r"id": "x", states: { "a": () })"#,
    ] {
        assert!(load::read_machine_fast(text).is_none(), "{text}");
    }
    assert!(assert_fast_agrees(r#"Machine(states: { "a": (), },)"#));
    // ron counts about two levels a group against its nesting limit: deep values are its.
    let deep = format!(
        r#"Machine(context: {{ "x": {}1{} }}, states: {{ "a": () }})"#,
        "[".repeat(70),
        "]".repeat(70)
    );
    assert!(load::read_machine_fast(&deep).is_none());
    assert!(load::ron_options().from_str::<MachineDef>(&deep).is_err());
    assert!(assert_fast_agrees(
        r#"Machine(id: "i\'d\n", context: { "x": 1.5, "y": -0.1, "z": [()] }, states: { "a": () })"#
    ));
    assert!(assert_fast_agrees(
        "#![enable(implicit_some)]\n#![enable(unwrap_variant_newtypes)]\nMachine(states: { \"a\": () })"
    ));
}

#[test]
fn every_ron_block_in_the_specs_loads() {
    let spec = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/spec/machines.md");
    let Ok(text) = std::fs::read_to_string(&spec) else {
        panic!(
            "the spec is expected beside the repository at {}",
            spec.display()
        );
    };
    let blocks: Vec<&str> = text
        .split("```ron\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .collect();
    assert!(!blocks.is_empty());
    for block in blocks {
        if load::detect_kind(block) != load::FileKind::Machine {
            continue;
        }
        let (_, warnings) = orca::chart::load_chart_str("spec.ron", block, &Default::default())
            .unwrap_or_else(|d| panic!("spec block does not load:\n{d}\n{block}"));
        assert!(warnings.is_empty(), "{warnings}");
    }
}

#[test]
fn every_shipped_machine_checks_clean() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("machines");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "ron")
            && load::detect_kind(&std::fs::read_to_string(&path).unwrap())
                == load::FileKind::Machine
        {
            let (_, w) = orca::chart::load_chart_file(&path, &Default::default())
                .unwrap_or_else(|d| panic!("{} does not load:\n{d}", path.display()));
            assert!(w.is_empty(), "{}: {w}", path.display());
            n += 1;
        }
    }
    let _ = n;
}
