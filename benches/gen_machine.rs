//! The generated machine of the load benchmark, shared by `benches/load.rs` and
//! `examples/load_phases.rs`.

use std::fmt::Write;

/// 100 compound groups of 99 leaves each, plus the groups and the root: 10,001 states. Every
/// leaf has a guarded transition with an action to its next sibling and one to the next group.
pub fn generated_machine(groups: usize, leaves: usize) -> String {
    let mut s = String::from("Machine(\n  id: \"big\",\n  context: { \"n\": 0 },\n  states: {\n");
    for g in 0..groups {
        writeln!(s, "    \"g{g}\": (states: {{").unwrap();
        for l in 0..leaves {
            let next = (l + 1) % leaves;
            let next_group = (g + 1) % groups;
            writeln!(
                s,
                "      \"l{l}\": (on: {{ \"NEXT\": (target: \"l{next}\", guard: \"n < 1000\", actions: [Assign(\"n\", \"n + 1\")]), \"JUMP\": \"#g{next_group}.l{l}\" }}),"
            )
            .unwrap();
        }
        s.push_str("    }),\n");
    }
    s.push_str("  },\n)\n");
    s
}
