//! The SCXML 1.0 rules the interpreter implements, one test each, written from the
//! specification's text; each names its section.

use orca::chart::{CompileOptions, load_chart_str};
use orca::interpreter::{Effect, Event, Host, Instance, RunError, Status};
use serde_json::json;
use std::sync::Arc;

fn machine(text: &str) -> Instance {
    let (chart, _) =
        load_chart_str("t.ron", text, &CompileOptions::default()).unwrap_or_else(|d| panic!("{d}"));
    let mut m = Instance::new(Arc::new(chart));
    m.start().expect("starts");
    m
}

fn send(m: &mut Instance, name: &str) {
    m.send(Event::external(name)).expect("runs");
}

fn config(m: &Instance) -> Vec<&str> {
    m.configuration_paths()
}

#[test]
fn s3_3_compound_enters_initial_or_first_child() {
    let m = machine(
        r##"Machine(states: { "a": (states: { "a1": (), "a2": () }), "b": (initial: "b2", states: { "b1": (), "b2": () }) })"##,
    );
    assert_eq!(config(&m), ["a", "a.a1"]);
    let m = machine(
        r##"Machine(initial: "b", states: { "a": (), "b": (initial: "b2", states: { "b1": (), "b2": () }) })"##,
    );
    assert_eq!(config(&m), ["b", "b.b2"]);
}

#[test]
fn s3_4_parallel_enters_and_exits_all_regions() {
    let mut m = machine(
        r##"Machine(context: {"exits": 0}, states: {
        "p": (kind: Parallel, on: { "OUT": "q" }, states: {
            "r1": (states: { "x": (exit: [Assign("exits", "exits + 1")]) }),
            "r2": (states: { "y": (exit: [Assign("exits", "exits + 10")]) }),
        }),
        "q": (),
    })"##,
    );
    assert_eq!(config(&m), ["p", "p.r1", "p.r1.x", "p.r2", "p.r2.y"]);
    send(&mut m, "OUT");
    assert_eq!(config(&m), ["q"]);
    assert_eq!(m.context()["exits"], 11);
}

#[test]
fn s3_7_final_raises_done_state_with_done_data() {
    let mut m = machine(
        r##"Machine(context: {"got": null}, states: {
        "job": (states: { "work": (on: { "FINISH": "end" }), "end": (kind: Final, output: "{'code': 7}") },
                on: { "done.state.job": (target: "after", actions: [Assign("got", "event.data.code")]) }),
        "after": (),
    })"##,
    );
    send(&mut m, "FINISH");
    assert_eq!(config(&m), ["after"]);
    assert_eq!(m.context()["got"], 7);
}

#[test]
fn s3_4_parallel_is_done_when_every_region_is_final() {
    let mut m = machine(
        r##"Machine(states: {
        "p": (kind: Parallel, on: { "done.state.p": "all_done" }, states: {
            "r1": (states: { "a": (on: { "A": "fa" }), "fa": (kind: Final) }),
            "r2": (states: { "b": (on: { "B": "fb" }), "fb": (kind: Final) }),
        }),
        "all_done": (),
    })"##,
    );
    send(&mut m, "A");
    assert!(
        config(&m).contains(&"p.r1.fa"),
        "one region final is not enough"
    );
    send(&mut m, "B");
    assert_eq!(config(&m), ["all_done"]);
}

#[test]
fn s3_7_done_state_of_a_nested_state_does_not_match_its_ancestor() {
    // `done.state.a` names state `a`; `done.state.a.b` (state `a.b` done) must not trigger it.
    let mut m = machine(
        r##"Machine(states: {
        "a": (on: { "done.state.a": "wrong" }, states: {
            "b": (on: { "done.state.a.b": "#ok" }, states: { "b1": (on: { "GO": "bf" }), "bf": (kind: Final) }),
        }),
        "wrong": (), "ok": (),
    })"##,
    );
    send(&mut m, "GO");
    assert_eq!(config(&m), ["ok"]);
}

#[test]
fn s3_7_top_level_final_ends_with_output() {
    let mut m = machine(
        r##"Machine(context: {"n": 2}, states: { "a": (on: { "X": "end" }), "end": (kind: Final, output: "n * 21") })"##,
    );
    send(&mut m, "X");
    assert!(m.is_done());
    assert_eq!(m.output(), Some(&json!(42)));
    assert_eq!(
        config(&m),
        ["end"],
        "the final configuration still lists the final state"
    );
    send(&mut m, "X"); // ignored after the end
    assert_eq!(config(&m), ["end"]);
}

#[test]
fn s3_10_shallow_and_deep_history() {
    let text = r##"Machine(states: {
        "player": (on: { "MENU": "menu" }, states: {
            "shallow": (kind: History(Shallow)),
            "deep": (kind: History(Deep)),
            "stopped": (on: { "PLAY": "playing" }),
            "playing": (states: { "intro": (on: { "NEXT": "chorus" }), "chorus": () }),
        }),
        "menu": (on: { "BACK_SHALLOW": "#player.shallow", "BACK_DEEP": "#player.deep" }),
    })"##;
    let mut m = machine(text);
    send(&mut m, "PLAY");
    send(&mut m, "NEXT");
    send(&mut m, "MENU");
    send(&mut m, "BACK_DEEP");
    assert_eq!(
        config(&m),
        ["player", "player.playing", "player.playing.chorus"]
    );
    send(&mut m, "MENU");
    send(&mut m, "BACK_SHALLOW");
    assert_eq!(
        config(&m),
        ["player", "player.playing", "player.playing.intro"],
        "shallow restores the child, then its default"
    );
}

#[test]
fn s3_10_history_default_when_nothing_recorded() {
    let m_text = r##"Machine(initial: "out", states: {
        "out": (on: { "IN": "#box.h" }),
        "box": (states: { "h": (kind: History(Shallow), target: "two"), "one": (), "two": (on: { "X": "one" }) }),
    })"##;
    let mut m = machine(m_text);
    send(&mut m, "IN");
    assert_eq!(config(&m), ["box", "box.two"]);
}

#[test]
fn s3_10_deep_history_in_a_parallel_state() {
    let mut m = machine(
        r##"Machine(states: {
        "op": (kind: Parallel, on: { "LOST": "out" }, states: {
            "l": (states: { "g": (on: { "N": "y" }), "y": () }),
            "p": (states: { "i": (on: { "N": "w" }), "w": () }),
            "h": (kind: History(Deep)),
        }),
        "out": (on: { "BACK": "#op.h" }),
    })"##,
    );
    send(&mut m, "N");
    send(&mut m, "LOST");
    send(&mut m, "BACK");
    assert_eq!(config(&m), ["op", "op.l", "op.l.y", "op.p", "op.p.w"]);
}

#[test]
fn s3_13_eventless_transitions_run_to_stability() {
    let m = machine(
        r##"Machine(context: {"n": 0}, states: {
        "count": (always: [(target: "count", guard: "n < 5", actions: [Assign("n", "n + 1")]), (target: "done", guard: "n >= 5")]),
        "done": (),
    })"##,
    );
    assert_eq!(config(&m), ["done"]);
    assert_eq!(m.context()["n"], 5);
}

#[test]
fn s3_13_internal_transitions_do_not_exit_the_source() {
    let text = |internal: bool| {
        format!(
            r##"Machine(context: {{"entries": 0, "exits": 0}}, states: {{
            "s": (entry: [Assign("entries", "entries + 1")], exit: [Assign("exits", "exits + 1")],
                  on: {{ "GO": (target: "s.b", internal: {internal}) }},
                  states: {{ "a": (), "b": () }}),
        }})"##
        )
    };
    let mut m = machine(&text(true));
    send(&mut m, "GO");
    assert_eq!(config(&m), ["s", "s.b"]);
    assert_eq!(
        (m.context()["entries"].clone(), m.context()["exits"].clone()),
        (json!(1), json!(0))
    );
    let mut m = machine(&text(false));
    send(&mut m, "GO");
    assert_eq!(
        (m.context()["entries"].clone(), m.context()["exits"].clone()),
        (json!(2), json!(1)),
        "external: exit and re-enter"
    );
}

#[test]
fn s3_13_targetless_transitions_run_actions_only() {
    let mut m = machine(
        r##"Machine(context: {"n": 0, "entries": 0}, states: {
        "a": (entry: [Assign("entries", "entries + 1")], on: { "INC": (actions: [Assign("n", "n + 1")]) }),
    })"##,
    );
    send(&mut m, "INC");
    send(&mut m, "INC");
    assert_eq!(m.context()["n"], 2);
    assert_eq!(m.context()["entries"], 1);
}

#[test]
fn s3_12_1_event_descriptors() {
    let text = r##"Machine(context: {"hits": []}, states: { "s": (on: {
        "a.b": (actions: [Assign("hits", "hits + ['a.b']")]),
        "error.*": (actions: [Assign("hits", "hits + ['error']")]),
        "X Y": (actions: [Assign("hits", "hits + ['xy']")]),
        "*": (actions: [Assign("hits", "hits + ['any']")]),
    }) })"##;
    let mut m = machine(text);
    for e in ["a.b", "a.b.c", "a.bc", "error.execution", "Y", "other"] {
        send(&mut m, e);
    }
    assert_eq!(
        m.context()["hits"],
        json!(["a.b", "a.b", "any", "error", "xy", "any"])
    );
}

#[test]
fn s3_13_document_order_and_descendant_priority() {
    let mut m = machine(
        r##"Machine(states: {
        "p": (on: { "E": "from_parent" }, states: { "c": (on: { "E": [(target: "#first", guard: "false"), "#second", "#third"] }) }),
        "from_parent": (), "first": (), "second": (), "third": (),
    })"##,
    );
    send(&mut m, "E");
    assert_eq!(config(&m), ["second"]);
}

#[test]
fn appendix_d_conflicts_across_parallel_regions() {
    // Both regions handle E; r1's transition leaves the parallel state, so the two conflict
    // and the first in document order wins.
    let mut m = machine(
        r##"Machine(states: {
        "p": (kind: Parallel, states: {
            "r1": (states: { "a": (on: { "E": "#out1" }) }),
            "r2": (states: { "b": (on: { "E": "#out2" }) }),
        }),
        "out1": (), "out2": (),
    })"##,
    );
    send(&mut m, "E");
    assert_eq!(config(&m), ["out1"]);
    // Transitions inside separate regions do not conflict: both are taken.
    let mut m = machine(
        r##"Machine(states: {
        "p": (kind: Parallel, states: {
            "r1": (states: { "a": (on: { "E": "a2" }), "a2": () }),
            "r2": (states: { "b": (on: { "E": "b2" }), "b2": () }),
        }),
    })"##,
    );
    send(&mut m, "E");
    assert_eq!(config(&m), ["p", "p.r1", "p.r1.a2", "p.r2", "p.r2.b2"]);
}

#[test]
fn s3_13_multiple_targets_enter_parallel_regions() {
    let mut m = machine(
        r##"Machine(states: {
        "start": (on: { "GO": (target: ["p.r1.x2", "p.r2.y2"]) }),
        "p": (kind: Parallel, states: { "r1": (states: { "x1": (), "x2": () }), "r2": (states: { "y1": (), "y2": () }) }),
    })"##,
    );
    send(&mut m, "GO");
    assert_eq!(config(&m), ["p", "p.r1", "p.r1.x2", "p.r2", "p.r2.y2"]);
}

#[test]
fn s4_2_raise_goes_to_the_internal_queue_in_order() {
    let mut m = machine(
        r##"Machine(context: {"log": []}, states: { "s": (on: {
        "GO": (actions: [Raise("first"), Raise(event: "second", data: "2"), Assign("log", "log + ['go']")]),
        "first": (actions: [Assign("log", "log + ['first']")]),
        "second": (actions: [Assign("log", "log + ['second:' + string(event.data)]")]),
    }) })"##,
    );
    send(&mut m, "GO");
    assert_eq!(m.context()["log"], json!(["go", "first", "second:2"]));
}

#[test]
fn s6_2_send_to_self_delayed_and_cancel() {
    let mut m = machine(
        r##"Machine(context: {"got": []}, states: { "s": (
        entry: [Send(event: "later", delay: "1s", id: "t1"), Send(event: "never", delay: "2s", id: "t2"), Send(event: "now")],
        on: {
            "now": (actions: [Cancel("t2"), Assign("got", "got + ['now']")]),
            "later": (actions: [Assign("got", "got + ['later']")]),
            "never": (actions: [Assign("got", "got + ['never']")]),
        },
    ) })"##,
    );
    assert_eq!(
        m.context()["got"],
        json!(["now"]),
        "an immediate send is processed after the start"
    );
    assert_eq!(m.next_due(), Some(1000));
    m.advance_to(5000).unwrap();
    assert_eq!(m.context()["got"], json!(["now", "later"]));
    assert!(m.timers().is_empty());
}

#[test]
fn s6_2_send_to_parent_is_an_effect() {
    let mut m = machine(
        r##"Machine(states: { "s": (on: { "GO": (actions: [Send(event: "report", data: "{'n': 1}", to: "#parent")]) }) })"##,
    );
    send(&mut m, "GO");
    let effects = m.take_effects();
    assert!(
        matches!(&effects[..], [Effect::SendToParent { event }] if &*event.name == "report" && event.data == json!({"n": 1})),
        "{effects:?}"
    );
}

#[test]
fn s5_4_assign_to_dotted_locations_and_failures() {
    let mut m = machine(
        r##"Machine(context: {"order": {"total": 0}, "err": ""}, states: { "s": (on: {
        "SET": (actions: [Assign("order.total", "40 + 2"), Assign("fresh", "true")]),
        "BAD": (actions: [Assign("nope.x", "1"), Assign("fresh", "false")]),
        "error.execution": (actions: [Assign("err", "event.data.message")]),
    }) })"##,
    );
    send(&mut m, "SET");
    assert_eq!(m.context()["order"]["total"], 42);
    assert_eq!(m.context()["fresh"], true);
    send(&mut m, "BAD");
    assert_eq!(
        m.context()["fresh"],
        true,
        "the rest of the block is skipped"
    );
    assert!(
        m.context()["err"]
            .as_str()
            .unwrap()
            .contains("`nope` does not exist"),
        "{}",
        m.context()["err"]
    );
}

#[test]
fn s4_3_if_else_if_else_and_s4_6_foreach() {
    let mut m = machine(
        r##"Machine(context: {"items": [3, 4, 5], "sum": 0, "size": "", "idx": -1}, states: { "s": (on: { "GO": (actions: [
        Foreach(items: "items", item: "it", index: "i", do: [Assign("sum", "sum + it"), Assign("idx", "i")]),
        If(guard: "sum > 100", then: [Assign("size", "'big'")], else_if: [(guard: "sum > 10", then: [Assign("size", "'medium'")])], else: [Assign("size", "'small'")]),
    ]) }) })"##,
    );
    send(&mut m, "GO");
    assert_eq!(m.context()["sum"], 12);
    assert_eq!(m.context()["idx"], 2);
    assert_eq!(m.context()["size"], "medium");
}

#[test]
fn s4_7_log_is_an_effect() {
    let mut m = machine(
        r##"Machine(states: { "s": (entry: [Log(label: "hello", expr: "1 + 1")], on: {"X": "s"}) })"##,
    );
    let effects = m.take_effects();
    assert_eq!(
        effects,
        [Effect::Log {
            label: Some("hello".into()),
            value: json!(2)
        }]
    );
    send(&mut m, "X");
    assert_eq!(m.take_effects().len(), 1);
}

#[test]
fn host_call_and_its_failure() {
    let mut host = Host::default();
    host.register("double", |args, ctx| {
        let n = args
            .first()
            .and_then(|a| a.as_i64())
            .ok_or("needs an int")?;
        ctx.insert("doubled".into(), json!(n * 2));
        Ok(())
    });
    let text = r##"Machine(context: {"err": false}, states: { "s": (on: {
        "GO": (actions: [Call("double", args: ["21"])]),
        "BAD": (actions: [Call("double", args: ["'x'"])]),
        "error.execution": (actions: [Assign("err", "true")]),
    }) })"##;
    let (chart, _) = load_chart_str("t.ron", text, &host.compile_options()).unwrap();
    let mut m = Instance::with_host(Arc::new(chart), Arc::new(host));
    m.start().unwrap();
    send(&mut m, "GO");
    assert_eq!(m.context()["doubled"], 42);
    send(&mut m, "BAD");
    assert_eq!(m.context()["err"], true);
}

#[test]
fn s5_9_failing_guard_counts_as_false_and_raises_error() {
    let mut m = machine(
        r##"Machine(context: {"msg": ""}, states: {
        "s": (on: { "GO": [(target: "bad", guard: "missing > 1"), (target: "fallback", guard: "1")],
                    "error.execution": (actions: [Assign("msg", "event.data.message")]) }),
        "bad": (), "fallback": (),
    })"##,
    );
    send(&mut m, "GO");
    assert_eq!(config(&m), ["s"]);
    assert!(!m.context()["msg"].as_str().unwrap().is_empty());
}

#[test]
fn expressions_see_context_event_and_in() {
    let mut m = machine(
        r##"Machine(context: {"limit": 3}, states: {
        "p": (kind: Parallel, states: {
            "r1": (states: { "a": (on: { "GO": (target: "b", guard: "event.data.n < limit && In('p.r2.x') && event.name == 'GO'") }), "b": () }),
            "r2": (states: { "x": () }),
        }),
    })"##,
    );
    m.send(Event::external("GO").with_data(json!({"n": 5})))
        .unwrap();
    assert!(config(&m).contains(&"p.r1.a"));
    m.send(Event::external("GO").with_data(json!({"n": 1})))
        .unwrap();
    assert!(config(&m).contains(&"p.r1.b"));
}

#[test]
fn microstep_limit_is_an_error_not_a_hang() {
    let (chart, _) = load_chart_str("t.ron", r##"Machine(states: { "a": (on: { "GO": "b" }), "b": (always: [(actions: [Raise("x")])]) })"##, &CompileOptions::default()).unwrap();
    let mut m = Instance::new(Arc::new(chart));
    m.start().unwrap();
    let err = m.send(Event::external("GO")).unwrap_err();
    assert!(matches!(err, RunError::MicrostepLimit { .. }));
    assert!(matches!(m.status(), Status::Failed(_)));
}

#[test]
fn after_is_scheduled_on_entry_and_cancelled_on_exit() {
    let mut m = machine(
        r##"Machine(states: { "a": (after: { "1s": "timeout" }, on: { "LEAVE": "b" }), "b": (on: { "BACK": "a" }), "timeout": () })"##,
    );
    send(&mut m, "LEAVE");
    assert!(
        m.timers().is_empty(),
        "leaving cancels the delayed transition"
    );
    send(&mut m, "BACK");
    m.advance_to(999).unwrap();
    assert_eq!(config(&m), ["a"]);
    m.advance_to(2000).unwrap();
    assert_eq!(config(&m), ["timeout"]);
}

#[test]
fn s6_4_invoke_starts_on_entry_and_is_cancelled_on_exit() {
    let mut m = machine(
        r##"Machine(states: { "busy": (invoke: [(id: "w", src: Shell("sleep 5"))], on: { "STOP": "idle" }), "idle": () })"##,
    );
    assert!(matches!(&m.take_effects()[..], [Effect::Invoke { id, .. }] if id == "w"));
    send(&mut m, "STOP");
    assert_eq!(m.take_effects(), [Effect::CancelInvoke { id: "w".into() }]);
}

/// 3.10 / Appendix D: a transition from inside a parallel state to that state's own deep
/// history exits the parallel state (its domain is the root while nothing is recorded) and
/// records history on the way out; entry must use the same domain, so the parallel state is
/// entered again (it was left inactive when the domain was recomputed from the new values).
#[test]
fn s3_10_history_recorded_by_the_exit_does_not_move_the_domain_of_entry() {
    let m = machine(
        r##"Machine(states: {
            "p": (kind: Parallel, states: {
                "r": (states: {
                    "c": (states: { "x": (), "y": () }, on: { "AGAIN": "#p.h" }),
                }),
                "h": (kind: History(Deep)),
            }),
        })"##,
    );
    let mut m = m;
    assert_eq!(config(&m), ["p", "p.r", "p.r.c", "p.r.c.x"]);
    send(&mut m, "AGAIN");
    assert_eq!(config(&m), ["p", "p.r", "p.r.c", "p.r.c.x"]);
    send(&mut m, "AGAIN");
    assert_eq!(config(&m), ["p", "p.r", "p.r.c", "p.r.c.x"]);
}
