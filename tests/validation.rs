//! Every validation error and warning of `machines.md`/issue #2, fed a broken file, asserting
//! the message and its line:col.

use orca::chart::{CompileOptions, load_chart_str};

/// All diagnostics of `text` as `LINE:COL severity code: message`.
fn diags_with(text: &str, opts: &CompileOptions) -> Vec<String> {
    let d = match load_chart_str("t.ron", text, opts) {
        Ok((_, warnings)) => warnings,
        Err(all) => all,
    };
    d.iter()
        .map(|d| {
            let sev = if d.is_error() { "error" } else { "warning" };
            format!("{}:{} {sev} {}: {}", d.line, d.col, d.code, d.message)
        })
        .collect()
}

fn diags(text: &str) -> Vec<String> {
    diags_with(text, &CompileOptions::default())
}

fn assert_has(text: &str, expected: &str) {
    let all = diags(text);
    assert!(
        all.iter().any(|d| d == expected),
        "expected `{expected}` among:\n{}",
        all.join("\n")
    );
}

#[test]
fn ron_syntax_error_has_position() {
    assert_has(
        "Machine(\n  states: {\n    \"a\": (on: {\"X\" \"b\"}),\n  }\n)",
        "3:19 error syntax: expected colon",
    );
}

#[test]
fn unknown_field_with_did_you_mean() {
    let text =
        "Machine(states: {\n  \"a\": (on: { \"GO\": (target: \"a\", gaurd: \"true\") }),\n})";
    assert_has(text, "2:35 error unknown-field: unknown field `gaurd`");
    let (_, _) = (0, 0);
    let d = load_chart_str("t.ron", text, &CompileOptions::default()).unwrap_err();
    let hint = d
        .iter()
        .find(|d| d.code == "unknown-field")
        .unwrap()
        .hint
        .clone();
    assert_eq!(hint.as_deref(), Some("did you mean `guard`?"));
}

#[test]
fn unknown_fields_are_all_reported_with_other_errors() {
    let text = "Machine(stats: {}, states: {\n \"a\": (entyr: [], on: { \"X\": \"nope\" }),\n})";
    let all = diags(text);
    assert!(
        all.contains(&"1:9 error unknown-field: unknown field `stats`".to_string()),
        "{all:?}"
    );
    assert!(
        all.contains(&"2:8 error unknown-field: unknown field `entyr`".to_string()),
        "{all:?}"
    );
    assert!(
        all.contains(&"2:30 error unknown-target: unknown target `nope`".to_string()),
        "{all:?}"
    );
}

#[test]
fn unknown_enum_variant_suggests() {
    let text = "Machine(states: {\"a\": (kind: Atomc)})";
    let d = load_chart_str("t.ron", text, &CompileOptions::default()).unwrap_err();
    let d = &d.0[0];
    assert_eq!((d.line, d.col), (1, 30));
    assert_eq!(d.hint.as_deref(), Some("did you mean `Atomic`?"));
}

#[test]
fn names_from_xstate_and_scxml_get_ours_as_a_hint() {
    let text = "Machine(states: {\"p\": (type: parallel, states: {\"a\": (onEntry: [])})})";
    let d = load_chart_str("t.ron", text, &CompileOptions::default()).unwrap_err();
    let hints: Vec<_> = d.0.iter().filter_map(|d| d.hint.clone()).collect();
    assert!(
        hints.iter().any(|h| h.contains("`kind: Parallel`")),
        "{hints:?}"
    );
    assert!(hints.iter().any(|h| h.contains("`entry`")), "{hints:?}");
}

#[test]
fn unknown_target() {
    assert_has(
        "Machine(states: {\n  \"idle\": (on: { \"GO\": \"runing\" }),\n  \"running\": (),\n})",
        "2:24 error unknown-target: unknown target `runing`",
    );
}

#[test]
fn ambiguous_target() {
    let text = r##"Machine(states: {
  "a": (states: { "x": (on: { "GO": "#b" }) }),
  "b": (states: { "x": () }),
  "c": (on: { "GO": "x" }),
})"##;
    assert_has(
        text,
        "4:21 error ambiguous-target: target `x` is ambiguous: it names `a.x`, `b.x`",
    );
}

#[test]
fn target_resolution_scopes_outwards_then_unique_name() {
    let text = r##"Machine(states: {
  "a": (states: {
    "a1": (on: { "N": "a2", "UP": "b", "DEEP": "b.b2", "ABS": "#b.b1", "UNIQUE": "b2" }),
    "a2": (on: { "N": "a1" }),
  }),
  "b": (states: { "b1": (on: { "N": "b2" }), "b2": (on: { "N": "a" }) }),
})"##;
    let (chart, _) = load_chart_str("t.ron", text, &CompileOptions::default()).unwrap();
    let a1 = chart.find("a.a1").unwrap();
    let targets: Vec<&str> = chart
        .state(a1)
        .transitions
        .iter()
        .map(|&t| chart.state(chart.transition(t).targets[0]).path.as_str())
        .collect();
    assert_eq!(targets, ["a.a2", "b", "b.b2", "b.b1", "b.b2"]);
}

#[test]
fn initial_not_a_child() {
    assert_has(
        "Machine(initial: \"idel\", states: { \"idle\": (on: {\"X\": \"idle\"}) })",
        "1:18 error initial-not-child: initial state `idel` is not a child of this state",
    );
}

#[test]
fn history_with_children_and_content() {
    let text = r##"Machine(states: {
  "a": (states: {
    "h": (kind: History(Deep), states: { "x": () }),
    "g": (kind: History(Shallow), on: { "X": "a" }),
    "a1": (on: { "X": "a1" }),
  }),
})"##;
    assert_has(
        text,
        "3:11 error history-with-children: a history state cannot have child states",
    );
    assert_has(
        text,
        "4:35 error history-content: a history state cannot have `on`",
    );
}

#[test]
fn history_default_outside_its_parent() {
    let text = r##"Machine(states: {
  "a": (states: { "h": (kind: History(Shallow), target: "b"), "a1": (on: { "X": "b" }) }),
  "b": (on: { "Y": "a.h" }),
})"##;
    assert_has(
        text,
        "2:57 error history-target: the default `b` of a history state must be a descendant of its parent, not a history state",
    );
}

#[test]
fn final_with_children() {
    assert_has(
        "Machine(states: { \"done\": (kind: Final, states: { \"x\": () }) })",
        "1:28 error final-with-children: a final state cannot have child states",
    );
}

#[test]
fn invalid_state_names() {
    let text = "Machine(states: {\n \"a.b\": (),\n \"\": (),\n \"x y\": (),\n \"#z\": (),\n})";
    assert_has(
        text,
        "2:2 error invalid-name: invalid state name `a.b`: it contains `.`, which separates path segments",
    );
    assert_has(
        text,
        "3:2 error invalid-name: invalid state name ``: it is empty",
    );
    assert_has(
        text,
        "4:2 error invalid-name: invalid state name `x y`: it contains whitespace",
    );
    assert_has(
        text,
        "5:2 error invalid-name: invalid state name `#z`: it contains `#`, which marks absolute paths",
    );
}

#[test]
fn bad_durations() {
    let text = r##"Machine(states: {
  "a": (after: { "soon": "a" }, entry: [Send(event: "X", delay: "5 parsecs")]),
})"##;
    assert_has(
        text,
        "2:18 error bad-duration: unknown unit `soon` in duration `soon` (use ms, s, m, h or d)",
    );
    assert_has(
        text,
        "2:65 error bad-duration: unknown unit `parsecs` in duration `5 parsecs` (use ms, s, m, h or d)",
    );
}

#[test]
fn cel_syntax_error_points_inside_the_string() {
    assert_has(
        "Machine(states: {\n  \"a\": (on: { \"X\": (target: \"a\", guard: \"count >\") }),\n})",
        "2:49 error expression-syntax: invalid expression `count >`: unexpected end of expression",
    );
}

#[test]
fn in_of_unknown_state() {
    assert_has(
        "Machine(states: { \"a\": (on: { \"X\": (target: \"a\", guard: \"In('zz')\") }) })",
        "1:57 error unknown-state-in-expr: `In(\"zz\")` names no state",
    );
}

#[test]
fn call_of_unregistered_host_action() {
    let text =
        "Machine(states: { \"a\": (entry: [Call(\"beep\", args: [\"1\"])], on: {\"X\": \"a\"}) })";
    assert_has(
        text,
        "1:33 error unknown-host-action: `Call` of unregistered host action `beep`",
    );
    let mut opts = CompileOptions::default();
    opts.host_actions.insert("beep".into());
    assert!(diags_with(text, &opts).is_empty());
}

#[test]
fn call_accepts_every_documented_form() {
    let text = r##"Machine(states: { "a": (entry: [
        Call("f"),
        Call("f", ["1", "x + 1"]),
        Call("f", args: ["2"]),
        Call(name: "f", args: ["3"]),
    ], on: { "X": "a" }) })"##;
    let mut opts = CompileOptions::default();
    opts.host_actions.insert("f".into());
    let (chart, w) = load_chart_str("t.ron", text, &opts).unwrap();
    assert!(w.is_empty(), "{w}");
    let arity: Vec<usize> = chart.states[1]
        .entry
        .iter()
        .map(|op| match op {
            orca::chart::Op::Call { args, .. } => args.len(),
            _ => 99,
        })
        .collect();
    assert_eq!(arity, [0, 2, 1, 1]);
}

#[test]
fn duplicate_names() {
    let text = r##"Machine(states: {
  "a": (on: { "X": "b", "X": "a" }),
  "b": (on: { "X": "a" }),
  "a": (),
})"##;
    assert_has(
        text,
        "4:3 error duplicate-key: duplicate state name `a` (first at 2:3)",
    );
    assert_has(
        text,
        "2:25 error duplicate-key: duplicate event `X` (first at 2:15)",
    );
}

#[test]
fn kind_mismatches() {
    let text = r##"Machine(states: {
  "a": (kind: Compound),
  "p": (kind: Parallel),
  "b": (initial: "x", output: "1", target: "a", on: { "X": "a" }),
})"##;
    assert_has(
        text,
        "2:9 error compound-without-children: a compound state needs child states",
    );
    assert_has(
        text,
        "3:9 error parallel-without-children: a parallel state needs child states (its regions)",
    );
    assert_has(
        text,
        "4:9 error initial-not-compound: `initial` is only for compound states",
    );
    assert_has(
        text,
        "4:23 error output-not-final: `output` is only for final states",
    );
    assert_has(
        text,
        "4:36 error target-not-history: `target` is only for history states (their default)",
    );
}

#[test]
fn conflicting_multiple_targets() {
    let text = r##"Machine(states: {
  "a": (states: { "x": (), "y": () }, on: { "GO": (target: ["a.x", "a.y"]) }),
})"##;
    assert_has(
        text,
        "2:52 error conflicting-targets: these targets cannot be active together",
    );
}

#[test]
fn warning_unreachable_state() {
    assert_has(
        "Machine(states: {\n  \"a\": (on: { \"X\": \"a\" }),\n  \"lost\": (on: { \"X\": \"a\" }),\n})",
        "3:3 warning unreachable: state `lost` can never be entered",
    );
}

#[test]
fn warning_shadowed_transition() {
    let text = r##"Machine(states: {
  "a": (on: {
    "GO": "b",
    "GO.fast": "c",
  }),
  "b": (on: { "X": "a" }), "c": (on: { "X": "a" }),
})"##;
    assert_has(
        text,
        "4:5 warning shadowed: this transition (on \"GO.fast\") can never be taken",
    );
    // A guard on the earlier one removes the warning.
    let guarded = text.replace("\"GO\": \"b\"", "\"GO\": (target: \"b\", guard: \"false\")");
    assert!(diags(&guarded).is_empty(), "{:?}", diags(&guarded));
}

#[test]
fn warning_eventless_cycle() {
    let text = r##"Machine(states: {
  "a": (always: ["b"]),
  "b": (always: ["a"]),
})"##;
    assert_has(
        text,
        "2:18 warning eventless-cycle: eventless transitions without guards loop forever: a → b → a",
    );
    let guarded = r##"Machine(context: {"n": 0}, states: {
  "a": (always: [(target: "b", guard: "n < 3", actions: [Assign("n", "n + 1")])]),
  "b": (always: ["a"]),
})"##;
    assert!(diags(guarded).is_empty(), "{:?}", diags(guarded));
}

#[test]
fn warning_dead_end() {
    assert_has(
        "Machine(states: {\n  \"a\": (on: { \"X\": \"stuck\" }),\n  \"stuck\": (),\n})",
        "3:3 warning dead-end: state `stuck` has no way out and is not final",
    );
}

#[test]
fn warning_send_to_unknown_invoke() {
    assert_has(
        "Machine(states: { \"a\": (entry: [Send(event: \"X\", to: \"worker\")], on: {\"X\": \"a\"}) })",
        "1:19 warning unknown-invoke: `Send` to `worker`, which no state invokes",
    );
}

#[test]
fn workflow_given_as_machine() {
    assert_has(
        "Workflow(id: \"w\", tasks: {})",
        "1:1 error workflow-not-machine: this is a workflow file, but a machine was expected",
    );
}

#[test]
fn empty_and_non_machine_input() {
    assert_has("", "1:1 error empty-file: file is empty");
    assert_has(
        "  // only a comment\n",
        "1:1 error empty-file: file is empty",
    );
    assert_has(
        "[1, 2]",
        "1:1 error syntax: expected opening `(` for struct `Machine`",
    );
    assert_has(
        "Machine()",
        "1:1 error no-states: the machine has no states",
    );
}

#[test]
fn deep_nesting_is_a_clear_error() {
    let text = format!(
        "Machine(context: {{\"a\": {}{}}}, states: {{\"a\": ()}})",
        "[".repeat(500),
        "]".repeat(500)
    );
    let all = diags(&text);
    assert!(
        all.iter()
            .any(|d| d.contains("nesting is deeper than the limit of 128 levels")),
        "{all:?}"
    );
}

#[test]
fn an_initial_history_state_does_not_make_up_for_real_children() {
    let text = r#"Machine(states: {
  "p": (initial: "h", states: { "h": (kind: History(Shallow)) }, on: { "GO": "q" }),
  "q": (),
})"#;
    assert_has(
        text,
        "2:3 error no-initial: a compound state needs a child that is not a history state",
    );
}

#[test]
fn states_made_only_of_history_have_nothing_to_enter() {
    let text = r#"Machine(states: {
  "c": (states: { "h": (kind: History(Shallow)) }, on: { "X": "p" }),
  "p": (kind: Parallel, states: { "h": (kind: History(Deep)) }, on: { "X": "c" }),
})"#;
    assert_has(
        text,
        "2:3 error no-initial: a compound state needs a child that is not a history state",
    );
    assert_has(
        text,
        "3:3 error no-regions: a parallel state needs regions: child states that are not history states",
    );
}

/// Each transition's span is its list element, or the key that introduces it: checked in
/// every shape (`on` map value, `on` list, `always` list, `after` list), through the shadowed
/// warning, which points at the transition.
#[test]
fn transition_spans_in_every_shape() {
    let text = r##"Machine(states: {
  "a": (
    on: { "GO": ["b", (target: "c")], "GO.x": State(target: "b") },
    always: [(target: "b"), "c"],
    after: { "1s": ["b", "c"], "2s": ("b") },
  ),
  "b": (on: { "X": "a" }), "c": (on: { "X": "a" }),
})"##;
    let all = diags(text);
    for expected in [
        "3:23 warning shadowed: this transition (on \"GO\") can never be taken",
        "3:39 warning shadowed: this transition (on \"GO.x\") can never be taken",
        "4:29 warning shadowed: this transition (always) can never be taken",
        "5:26 warning shadowed: this transition (after 1s) can never be taken",
    ] {
        assert!(
            all.iter().any(|d| d == expected),
            "expected `{expected}` among:\n{}",
            all.join("\n")
        );
    }
}
