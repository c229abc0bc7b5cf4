//! The machine file format as serde types: exactly the forms of `machines.md`.
//!
//! These types are *syntax*: names are unresolved strings and expressions are uncompiled
//! text. [`crate::chart`] turns them into an indexed, validated chart.

use super::duration::DurationText;
use indexmap::IndexMap;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// An ordered map in document order.
pub type Dict<V> = IndexMap<String, V>;

/// A JSON value: context entries, event data, meta.
pub type Json = serde_json::Value;

fn is_false(b: &bool) -> bool {
    !*b
}

/// The root of a machine file: `Machine(...)`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(rename = "Machine")]
pub struct MachineDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial: Option<String>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub context: IndexMap<String, Json>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub states: Dict<StateDef>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub on: Dict<Transitions>,
    #[serde(default, skip_serializing_if = "Transitions::is_empty")]
    pub always: Transitions,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub after: IndexMap<DurationText, Transitions>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entry: Vec<Action>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exit: Vec<Action>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub invoke: Vec<InvokeDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Named CEL expressions that must hold in every stable configuration (`orca verify`).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub invariants: Dict<String>,
    /// State paths that must never be active (`orca verify`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub never_reach: Vec<String>,
    /// State paths that must stay reachable from every reachable configuration (`orca verify`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub always_can_reach: Vec<String>,
    /// How `orca verify` drives the machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifyDef>,
}

/// `verify: (events: { "PAY": [{ "amount": 0 }, { "amount": 22 }] })`: the payloads the
/// verifier sends with each event, instead of those it derives from the guards.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
pub struct VerifyDef {
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub events: Dict<Vec<Json>>,
    /// Starting points: each map's values are set (as the stepper's `set` does) right after
    /// the start, and exploration goes on from each; when given, the file's own context is
    /// explored only if one of them leaves it as it is (`{}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<Dict<Json>>,
}

/// What kind of state: written as `kind`, or inferred.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum StateKind {
    Atomic,
    Compound,
    Parallel,
    Final,
    History(HistoryDepth),
}

/// Shallow history remembers the active children; deep history the active atomic descendants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum HistoryDepth {
    Shallow,
    Deep,
}

/// A state, with its children.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(rename = "State")]
pub struct StateDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<StateKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial: Option<String>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub states: Dict<StateDef>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub on: Dict<Transitions>,
    #[serde(default, skip_serializing_if = "Transitions::is_empty")]
    pub always: Transitions,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub after: IndexMap<DurationText, Transitions>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entry: Vec<Action>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exit: Vec<Action>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub invoke: Vec<InvokeDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub meta: IndexMap<String, Json>,
}

impl StateDef {
    /// The kind as written, or inferred: `Compound` with children, else `Atomic`.
    pub fn effective_kind(&self) -> StateKind {
        self.kind.unwrap_or(if self.states.is_empty() {
            StateKind::Atomic
        } else {
            StateKind::Compound
        })
    }
}

/// One or more transitions under one key: a target string, a struct, or a list of them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Transitions(pub Vec<TransitionDef>);

impl Transitions {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A transition as written.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(rename = "Transition")]
pub struct TransitionDef {
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub target: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<Action>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub internal: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl TransitionDef {
    /// A transition that only names its target.
    pub fn to(target: impl Into<String>) -> Self {
        TransitionDef {
            target: vec![target.into()],
            ..Self::default()
        }
    }
}

/// Deserializes a string or a list of strings.
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a state path or a list of state paths")
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<Vec<String>, E> {
            Ok(vec![s.to_string()])
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            let mut out = Vec::new();
            while let Some(s) = seq.next_element::<String>()? {
                out.push(s);
            }
            Ok(out)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Vec<String>, D::Error> {
            d.deserialize_any(V)
        }
    }
    d.deserialize_any(V)
}

impl<'de> Deserialize<'de> for Transitions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Transitions;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a target string, a transition `(target: ..., guard: ...)`, or a list of them",
                )
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Transitions, E> {
                Ok(Transitions(vec![TransitionDef::to(s)]))
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<Transitions, A::Error> {
                let t = TransitionDef::deserialize(de::value::MapAccessDeserializer::new(m))?;
                Ok(Transitions(vec![t]))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Transitions, E> {
                Ok(Transitions(vec![TransitionDef::default()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Transitions, A::Error> {
                let mut out = Vec::new();
                while let Some(t) = seq.next_element::<OneTransition>()? {
                    out.push(t.0);
                }
                Ok(Transitions(out))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Transitions {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// A list element of [`Transitions`]: a target string or a struct.
struct OneTransition(TransitionDef);

impl<'de> Deserialize<'de> for OneTransition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneTransition;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a target string or a transition `(target: ..., guard: ...)`")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<OneTransition, E> {
                Ok(OneTransition(TransitionDef::to(s)))
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<OneTransition, A::Error> {
                TransitionDef::deserialize(de::value::MapAccessDeserializer::new(m))
                    .map(OneTransition)
            }
            // `Transition()` and `()`: ron reads an empty struct as an empty tuple or a unit.
            fn visit_seq<A: SeqAccess<'de>>(self, s: A) -> Result<OneTransition, A::Error> {
                TransitionDef::deserialize(de::value::SeqAccessDeserializer::new(s))
                    .map(OneTransition)
            }
            fn visit_unit<E: de::Error>(self) -> Result<OneTransition, E> {
                Ok(OneTransition(TransitionDef::default()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Executable content.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub enum Action {
    /// `Raise("E")` or `Raise(event: "E", data: EXPR)`: append to the internal queue.
    Raise(#[serde(deserialize_with = "str_or_struct")] RaiseArgs),
    /// `Send(event: "E", ...)`: to the external queue, now or after a delay.
    Send(SendArgs),
    /// `Cancel("id")`: cancel a pending delayed send.
    Cancel(String),
    /// `Assign("location", EXPR)`.
    Assign(String, String),
    /// `Log(EXPR)` or `Log(label: "x", expr: EXPR)`.
    Log(#[serde(deserialize_with = "str_or_struct")] LogArgs),
    /// `If(guard: EXPR, then: [..], else_if: [..], else: [..])`.
    If(IfArgs),
    /// `Foreach(items: EXPR, item: "x", index: "i", do: [..])`.
    Foreach(ForeachArgs),
    /// `Call("name")`, `Call("name", [EXPR, ..])`, `Call("name", args: [..])` or
    /// `Call(name: "name", args: [..])`: a host action.
    Call(#[serde(deserialize_with = "str_or_struct")] CallArgs),
}

/// Argument structs that may also be written as one bare string.
trait FromShorthand {
    fn from_shorthand(s: &str) -> Self;
}

/// Deserializes `T` from a bare string (its shorthand), a struct, or a tuple of its fields.
fn str_or_struct<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + FromShorthand,
{
    struct V<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de> + FromShorthand> Visitor<'de> for V<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string, or named arguments `(name: value, ...)`")
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
            Ok(T::from_shorthand(s))
        }
        fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<T, A::Error> {
            T::deserialize(de::value::MapAccessDeserializer::new(m))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, s: A) -> Result<T, A::Error> {
            T::deserialize(de::value::SeqAccessDeserializer::new(s))
        }
    }
    d.deserialize_any(V(std::marker::PhantomData))
}

/// Arguments of `Raise`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
pub struct RaiseArgs {
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

impl FromShorthand for RaiseArgs {
    fn from_shorthand(s: &str) -> Self {
        RaiseArgs {
            event: s.to_string(),
            data: None,
        }
    }
}

/// Arguments of `Send`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
pub struct SendArgs {
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<DurationText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_expr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// Arguments of `Log`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
pub struct LogArgs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub expr: String,
}

impl FromShorthand for LogArgs {
    fn from_shorthand(s: &str) -> Self {
        LogArgs {
            label: None,
            expr: s.to_string(),
        }
    }
}

/// Arguments of `Call`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
pub struct CallArgs {
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
}

impl FromShorthand for CallArgs {
    fn from_shorthand(s: &str) -> Self {
        CallArgs {
            name: s.to_string(),
            args: Vec::new(),
        }
    }
}

/// Arguments of `If`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
pub struct IfArgs {
    pub guard: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub then: Vec<Action>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub else_if: Vec<ElseIf>,
    #[serde(default, rename = "else", skip_serializing_if = "Vec::is_empty")]
    pub otherwise: Vec<Action>,
}

/// One `else_if` branch.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
pub struct ElseIf {
    pub guard: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub then: Vec<Action>,
}

/// Arguments of `Foreach`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
pub struct ForeachArgs {
    pub items: String,
    pub item: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    #[serde(default, rename = "do", skip_serializing_if = "Vec::is_empty")]
    pub body: Vec<Action>,
}

/// An invoked child, started on entry of its state and cancelled on exit.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename = "Invoke")]
pub struct InvokeDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub src: InvokeSrc,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub auto_forward: bool,
}

/// What an invoke runs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub enum InvokeSrc {
    /// A child statechart, path relative to the naming file.
    Machine(String),
    /// A nested workflow, path relative to the naming file.
    Workflow(String),
    /// A program and its arguments, no shell.
    Command(Vec<String>),
    /// A command line run by `sh -c`.
    Shell(String),
}
