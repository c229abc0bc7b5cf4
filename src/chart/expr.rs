//! CEL expressions, compiled when the machine is loaded.

use super::fast::{self, Fast};
use cel::common::ast::{Expr, LiteralValue};
use cel::{IdedExpr, Program};
use std::fmt;
use std::sync::OnceLock;

/// Index of a compiled expression in [`super::Chart::exprs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExprId(pub u32);

/// A compiled expression and the text it came from.
pub struct CompiledExpr {
    pub source: String,
    /// The `cel` program: compiled at load when the expression is outside the fast subset,
    /// else on first need (evaluation fell back to `cel`).
    program: OnceLock<Option<Program>>,
    /// The fast form, when the expression lies in the subset of [`fast`].
    pub fast: Option<Fast>,
    /// The integer kernel of the fast form, once its variables are bound to slots.
    pub kernel: Option<super::kernel::Kernel>,
    /// State paths named by `In("...")` calls with a literal argument, in the order written.
    pub in_paths: Vec<String>,
    /// The states of `in_paths`, resolved by the chart compiler.
    pub in_states: Vec<super::StateId>,
    /// Top-level variables the expression reads.
    pub variables: Vec<String>,
}

impl fmt::Debug for CompiledExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CompiledExpr({:?})", self.source)
    }
}

impl CompiledExpr {
    /// The `cel` program; `None` only if the fast subset accepted text `cel` rejects (a bug
    /// the differential tests guard against), which evaluation reports as an error.
    pub fn program(&self) -> Option<&Program> {
        self.program
            .get_or_init(|| Program::compile(&self.source).ok())
            .as_ref()
    }

    /// Whether the expression reads the current event.
    pub fn reads_event(&self) -> bool {
        self.variables.iter().any(|v| v == "event")
    }
}

/// Why an expression did not compile: the message and the 1-based line and column inside it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExprError {
    pub message: String,
    pub line: usize,
    pub col: usize,
}

/// Compiles CEL text.
///
/// ```
/// let e = orca::chart::expr::compile("count + 1").unwrap();
/// assert_eq!(e.variables, vec!["count"]);
/// assert!(orca::chart::expr::compile("count +").is_err());
/// ```
pub fn compile(source: &str) -> Result<CompiledExpr, ExprError> {
    if let Some(p) = fast::parse(source) {
        return Ok(CompiledExpr {
            source: source.to_string(),
            program: OnceLock::new(),
            fast: Some(p.expr),
            kernel: None,
            in_paths: p.in_paths,
            in_states: Vec::new(),
            variables: p.variables,
        });
    }
    let program = Program::compile(source).map_err(|e| {
        let first = e.errors.first();
        ExprError {
            message: first
                .map(|x| tidy_message(&x.msg))
                .unwrap_or_else(|| "invalid expression".into()),
            line: first.map_or(1, |x| x.pos.0.max(1) as usize),
            col: first.map_or(1, |x| x.pos.1.max(1) as usize),
        }
    })?;
    let mut in_paths = Vec::new();
    collect_in_paths(program.expression(), &mut in_paths);
    let mut variables: Vec<String> = program
        .references()
        .variables()
        .into_iter()
        .map(str::to_string)
        .collect();
    variables.sort();
    Ok(CompiledExpr {
        source: source.to_string(),
        program: OnceLock::from(Some(program)),
        fast: None,
        kernel: None,
        in_paths,
        in_states: Vec::new(),
        variables,
    })
}

/// The parser's messages list every token it would have accepted; keep the point.
fn tidy_message(msg: &str) -> String {
    let msg = msg.trim_start_matches("Syntax error: ");
    let msg = msg.split(" expecting {").next().unwrap_or(msg);
    msg.replace("mismatched input '<EOF>'", "unexpected end of expression")
        .replace("mismatched input", "unexpected")
}

fn collect_in_paths(e: &IdedExpr, out: &mut Vec<String>) {
    match &e.expr {
        Expr::Call(call) => {
            if call.func_name == "In"
                && call.target.is_none()
                && let [arg] = &call.args[..]
                && let Expr::Literal(LiteralValue::String(s)) = &arg.expr
            {
                out.push(s.inner().to_string());
            }
            if let Some(t) = &call.target {
                collect_in_paths(t, out);
            }
            for a in &call.args {
                collect_in_paths(a, out);
            }
        }
        Expr::Select(s) => collect_in_paths(&s.operand, out),
        Expr::List(l) => l.elements.iter().for_each(|x| collect_in_paths(x, out)),
        Expr::Comprehension(c) => {
            for x in [
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ] {
                collect_in_paths(x, out);
            }
        }
        _ => {}
    }
}
