//! A compiler for the common subset of CEL: literals, variables, `event` fields, arithmetic,
//! comparisons, logic, the conditional, indexing and `In("path")`.
//!
//! Two reasons: the `cel` crate's parser costs about 10 µs per expression (too slow to load
//! a 10,000-state machine in 100 ms) and its evaluator allocates a context per call (too slow
//! for tens of nanoseconds per event). Expressions in the subset compile here and evaluate on
//! borrowed JSON without allocating; anything else compiles with `cel`.
//!
//! The subset is conservative by construction: the parser accepts only what CEL accepts with
//! the same meaning, and evaluation answers only when the answer is certain (well-typed
//! operands, no overflow, no missing key). Everything else — including every error — is
//! re-evaluated by `cel`, so values and error messages are `cel`'s. A differential property
//! test holds the two to the same results.

use crate::model::Json;
use std::borrow::Cow;

/// A binary operator of the subset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

/// A compiled expression of the subset.
#[derive(Debug, Clone, PartialEq)]
pub enum Fast {
    Int(i64),
    Double(f64),
    Str(String),
    Bool(bool),
    Null,
    /// A context variable; `slot` is its index in the context map when the chart declares it.
    Var {
        name: String,
        slot: Option<usize>,
    },
    /// The `event` variable.
    Event,
    Select(Box<Fast>, String),
    Index(Box<Fast>, Box<Fast>),
    /// `In("path")`: index into the expression's `in_paths`.
    In(usize),
    Not(Box<Fast>),
    Neg(Box<Fast>),
    Bin(BinOp, Box<Fast>, Box<Fast>),
    And(Box<Fast>, Box<Fast>),
    Or(Box<Fast>, Box<Fast>),
    Cond(Box<Fast>, Box<Fast>, Box<Fast>),
}

/// What a parse of the subset yields.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub expr: Fast,
    pub in_paths: Vec<String>,
    pub variables: Vec<String>,
}

const RESERVED: &[&str] = &[
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
    "in",
    "true",
    "false",
    "null",
];

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Int(i64),
    Double(f64),
    Str(String),
    Op(&'static str),
}

fn lex(src: &str) -> Option<Vec<Tok>> {
    let b = src.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        if c == b' ' || c == b'\t' || c == b'\n' || c == b'\r' {
            i += 1;
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(Tok::Ident(src[start..i].to_string()));
            continue;
        }
        if c.is_ascii_digit() {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let mut float = false;
            if i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
                float = true;
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            }
            if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                float = true;
                i += 1;
                if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
                    i += 1;
                }
                let d = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                if d == i {
                    return None;
                }
            }
            // A letter right after a number (`1u`, `0x1`) is another literal form: not ours.
            if i < b.len() && (b[i].is_ascii_alphabetic() || b[i] == b'_' || b[i] == b'.') {
                return None;
            }
            let text = &src[start..i];
            if float {
                out.push(Tok::Double(text.parse().ok()?));
            } else {
                if text.len() > 1 && text.starts_with('0') {
                    return None;
                }
                out.push(Tok::Int(text.parse().ok()?));
            }
            continue;
        }
        if c == b'\'' || c == b'"' {
            // Triple-quoted strings are not ours.
            if b[i..].starts_with(&[c, c]) {
                if b[i..].starts_with(&[c, c, c]) {
                    return None;
                }
                out.push(Tok::Str(String::new()));
                i += 2;
                continue;
            }
            i += 1;
            let mut s = String::new();
            loop {
                let ch = src[i..].chars().next()?;
                i += ch.len_utf8();
                match ch {
                    '\\' => {
                        let e = src[i..].chars().next()?;
                        i += 1;
                        s.push(match e {
                            '\\' => '\\',
                            '\'' => '\'',
                            '"' => '"',
                            'n' => '\n',
                            't' => '\t',
                            'r' => '\r',
                            _ => return None,
                        });
                    }
                    '\n' | '\r' => return None,
                    ch if ch as u32 == c as u32 => break,
                    ch => s.push(ch),
                }
            }
            out.push(Tok::Str(s));
            continue;
        }
        // Bytes, not `str`: the next character may be multi-byte (found by fuzzing).
        let two = b.get(i..i + 2).unwrap_or_default();
        let op: &'static str = match two {
            b"<=" => "<=",
            b">=" => ">=",
            b"==" => "==",
            b"!=" => "!=",
            b"&&" => "&&",
            b"||" => "||",
            b"//" | b"/*" => return None,
            _ => match c {
                b'+' => "+",
                b'-' => "-",
                b'*' => "*",
                b'/' => "/",
                b'%' => "%",
                b'<' => "<",
                b'>' => ">",
                b'!' => "!",
                b'?' => "?",
                b':' => ":",
                b'.' => ".",
                b'[' => "[",
                b']' => "]",
                b'(' => "(",
                b')' => ")",
                b',' => ",",
                _ => return None,
            },
        };
        i += op.len();
        out.push(Tok::Op(op));
    }
    Some(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
    in_paths: Vec<String>,
    variables: Vec<String>,
}

impl Parser {
    fn peek_op(&self) -> Option<&'static str> {
        match self.toks.get(self.pos) {
            Some(Tok::Op(o)) => Some(o),
            _ => None,
        }
    }

    fn eat(&mut self, op: &str) -> bool {
        if self.peek_op() == Some(op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expr(&mut self) -> Option<Fast> {
        self.depth += 1;
        if self.depth > 64 {
            return None;
        }
        let cond = self.or()?;
        let out = if self.eat("?") {
            let a = self.or()?;
            if !self.eat(":") {
                return None;
            }
            let b = self.expr()?;
            Fast::Cond(Box::new(cond), Box::new(a), Box::new(b))
        } else {
            cond
        };
        self.depth -= 1;
        Some(out)
    }

    fn or(&mut self) -> Option<Fast> {
        let mut l = self.and()?;
        while self.eat("||") {
            l = Fast::Or(Box::new(l), Box::new(self.and()?));
        }
        Some(l)
    }

    fn and(&mut self) -> Option<Fast> {
        let mut l = self.rel()?;
        while self.eat("&&") {
            l = Fast::And(Box::new(l), Box::new(self.rel()?));
        }
        Some(l)
    }

    fn rel(&mut self) -> Option<Fast> {
        let mut l = self.add()?;
        loop {
            let op = match self.peek_op() {
                Some("<") => BinOp::Lt,
                Some("<=") => BinOp::Le,
                Some(">") => BinOp::Gt,
                Some(">=") => BinOp::Ge,
                Some("==") => BinOp::Eq,
                Some("!=") => BinOp::Ne,
                _ => return Some(l),
            };
            self.pos += 1;
            l = Fast::Bin(op, Box::new(l), Box::new(self.add()?));
        }
    }

    fn add(&mut self) -> Option<Fast> {
        let mut l = self.mul()?;
        loop {
            let op = match self.peek_op() {
                Some("+") => BinOp::Add,
                Some("-") => BinOp::Sub,
                _ => return Some(l),
            };
            self.pos += 1;
            l = Fast::Bin(op, Box::new(l), Box::new(self.mul()?));
        }
    }

    fn mul(&mut self) -> Option<Fast> {
        let mut l = self.unary()?;
        loop {
            let op = match self.peek_op() {
                Some("*") => BinOp::Mul,
                Some("/") => BinOp::Div,
                Some("%") => BinOp::Rem,
                _ => return Some(l),
            };
            self.pos += 1;
            l = Fast::Bin(op, Box::new(l), Box::new(self.unary()?));
        }
    }

    fn unary(&mut self) -> Option<Fast> {
        self.depth += 1;
        if self.depth > 64 {
            return None;
        }
        // CEL's grammar repeats one unary operator (`!!x`, `--x`) but does not mix them.
        let out = if self.peek_op() == Some("!") {
            let mut n = 0;
            while self.eat("!") {
                n += 1;
            }
            let mut e = self.member()?;
            for _ in 0..n {
                e = Fast::Not(Box::new(e));
            }
            e
        } else if self.peek_op() == Some("-") {
            let mut n = 0;
            while self.eat("-") {
                n += 1;
            }
            // Negative number literals (and `-9223372036854775808`) are literals in CEL.
            if matches!(self.toks.get(self.pos), Some(Tok::Int(_) | Tok::Double(_))) {
                return None;
            }
            let mut e = self.member()?;
            for _ in 0..n {
                e = Fast::Neg(Box::new(e));
            }
            e
        } else {
            self.member()?
        };
        self.depth -= 1;
        Some(out)
    }

    fn member(&mut self) -> Option<Fast> {
        let mut e = self.primary()?;
        loop {
            if self.eat(".") {
                match self.toks.get(self.pos) {
                    Some(Tok::Ident(f)) if !RESERVED.contains(&f.as_str()) => {
                        let f = f.clone();
                        self.pos += 1;
                        if self.peek_op() == Some("(") {
                            return None; // a method call: not ours
                        }
                        e = Fast::Select(Box::new(e), f);
                    }
                    _ => return None,
                }
            } else if self.eat("[") {
                let i = self.expr()?;
                if !self.eat("]") {
                    return None;
                }
                e = Fast::Index(Box::new(e), Box::new(i));
            } else {
                return Some(e);
            }
        }
    }

    fn primary(&mut self) -> Option<Fast> {
        let tok = self.toks.get(self.pos)?.clone();
        self.pos += 1;
        Some(match tok {
            Tok::Int(i) => Fast::Int(i),
            Tok::Double(d) => Fast::Double(d),
            Tok::Str(s) => Fast::Str(s),
            Tok::Ident(id) => match id.as_str() {
                "true" => Fast::Bool(true),
                "false" => Fast::Bool(false),
                "null" => Fast::Null,
                "In" => {
                    if !self.eat("(") {
                        return None;
                    }
                    let Some(Tok::Str(path)) = self.toks.get(self.pos).cloned() else {
                        return None;
                    };
                    self.pos += 1;
                    if !self.eat(")") {
                        return None;
                    }
                    self.in_paths.push(path);
                    Fast::In(self.in_paths.len() - 1)
                }
                name if RESERVED.contains(&name) => return None,
                _ if self.peek_op() == Some("(") => return None, // other functions: cel
                "event" => {
                    self.note_var("event");
                    Fast::Event
                }
                name => {
                    self.note_var(name);
                    Fast::Var {
                        name: name.to_string(),
                        slot: None,
                    }
                }
            },
            Tok::Op("(") => {
                let e = self.expr()?;
                if !self.eat(")") {
                    return None;
                }
                e
            }
            Tok::Op(_) => return None,
        })
    }

    fn note_var(&mut self, name: &str) {
        if !self.variables.iter().any(|v| v == name) {
            self.variables.push(name.to_string());
        }
    }
}

/// Parses `src` if it lies in the subset; `None` means "compile it with cel".
///
/// ```
/// use orca::chart::fast::parse;
/// assert!(parse("count < 10 && In('a.b')").is_some());
/// assert!(parse("items.size() > 0").is_none()); // a method call: compiled by cel
/// ```
pub fn parse(src: &str) -> Option<Parsed> {
    let toks = lex(src)?;
    if toks.is_empty() {
        return None;
    }
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
        in_paths: Vec::new(),
        variables: Vec::new(),
    };
    let expr = p.expr()?;
    if p.pos != p.toks.len() {
        return None;
    }
    p.variables.sort();
    Some(Parsed {
        expr,
        in_paths: p.in_paths,
        variables: p.variables,
    })
}

/// Resolves context variables to their slots in the chart's initial context.
pub fn bind_slots(e: &mut Fast, slot_of: &impl Fn(&str) -> Option<usize>) {
    match e {
        Fast::Var { name, slot } => *slot = slot_of(name),
        Fast::Select(a, _) | Fast::Not(a) | Fast::Neg(a) => bind_slots(a, slot_of),
        Fast::Index(a, b) | Fast::Bin(_, a, b) | Fast::And(a, b) | Fast::Or(a, b) => {
            bind_slots(a, slot_of);
            bind_slots(b, slot_of);
        }
        Fast::Cond(a, b, c) => {
            bind_slots(a, slot_of);
            bind_slots(b, slot_of);
            bind_slots(c, slot_of);
        }
        _ => {}
    }
}

/// A value during fast evaluation: scalars by value, everything else borrowed.
#[derive(Debug, Clone, PartialEq)]
pub enum Val<'a> {
    Int(i64),
    Double(f64),
    Bool(bool),
    Str(Cow<'a, str>),
    Null,
    /// A list or map (or a number outside `i64`), borrowed from the context or event.
    Json(&'a Json),
}

impl<'a> Val<'a> {
    /// A JSON value as a fast value: integral numbers are `int`s.
    pub fn of(j: &'a Json) -> Val<'a> {
        match j {
            Json::Null => Val::Null,
            Json::Bool(b) => Val::Bool(*b),
            Json::Number(n) => match n.as_i64() {
                Some(i) => Val::Int(i),
                None if n.is_f64() => Val::Double(n.as_f64().unwrap_or(f64::NAN)),
                None => Val::Json(j), // beyond i64: a CEL uint, left to cel
            },
            Json::String(s) => Val::Str(Cow::Borrowed(s)),
            other => Val::Json(other),
        }
    }

    /// Back to JSON; `None` for what JSON cannot hold (non-finite doubles).
    pub fn into_json(self) -> Option<Json> {
        Some(match self {
            Val::Int(i) => Json::from(i),
            Val::Double(d) => Json::Number(serde_json::Number::from_f64(d)?),
            Val::Bool(b) => Json::Bool(b),
            Val::Str(s) => Json::String(s.into_owned()),
            Val::Null => Json::Null,
            Val::Json(j) => j.clone(),
        })
    }
}

/// What fast evaluation reads.
pub trait Env<'a> {
    fn var(&self, name: &str, slot: Option<usize>) -> Option<&'a Json>;
    /// A field of `event`: `name`, `data`, `type`, `origin`, `invokeid`, `sendid`.
    fn event_field(&self, field: &str) -> Option<Val<'a>>;
    fn in_state(&self, index: usize) -> Option<bool>;
}

/// Evaluates; `None` means "not certain here: ask cel".
pub fn eval<'a>(e: &'a Fast, env: &impl Env<'a>) -> Option<Val<'a>> {
    Some(match e {
        Fast::Int(i) => Val::Int(*i),
        Fast::Double(d) => Val::Double(*d),
        Fast::Str(s) => Val::Str(Cow::Borrowed(s)),
        Fast::Bool(b) => Val::Bool(*b),
        Fast::Null => Val::Null,
        Fast::Var { name, slot } => Val::of(env.var(name, *slot)?),
        Fast::Event => return None, // the whole event object: cel builds it
        Fast::Select(inner, field) => {
            if let Fast::Event = **inner {
                return env.event_field(field);
            }
            match eval(inner, env)? {
                Val::Json(Json::Object(m)) => Val::of(m.get(field)?),
                _ => return None,
            }
        }
        Fast::Index(a, i) => match (eval(a, env)?, eval(i, env)?) {
            (Val::Json(Json::Array(l)), Val::Int(i)) => Val::of(l.get(usize::try_from(i).ok()?)?),
            (Val::Json(Json::Object(m)), Val::Str(k)) => Val::of(m.get(k.as_ref())?),
            _ => return None,
        },
        Fast::In(i) => Val::Bool(env.in_state(*i)?),
        Fast::Not(a) => match eval(a, env)? {
            Val::Bool(b) => Val::Bool(!b),
            _ => return None,
        },
        Fast::Neg(a) => match eval(a, env)? {
            Val::Int(i) => Val::Int(i.checked_neg()?),
            Val::Double(d) => Val::Double(-d),
            _ => return None,
        },
        Fast::And(a, b) => match eval(a, env)? {
            Val::Bool(false) => Val::Bool(false),
            Val::Bool(true) => match eval(b, env)? {
                Val::Bool(r) => Val::Bool(r),
                _ => return None,
            },
            _ => return None,
        },
        Fast::Or(a, b) => match eval(a, env)? {
            Val::Bool(true) => Val::Bool(true),
            Val::Bool(false) => match eval(b, env)? {
                Val::Bool(r) => Val::Bool(r),
                _ => return None,
            },
            _ => return None,
        },
        Fast::Cond(c, a, b) => match eval(c, env)? {
            Val::Bool(true) => eval(a, env)?,
            Val::Bool(false) => eval(b, env)?,
            _ => return None,
        },
        Fast::Bin(op, a, b) => binary(*op, eval(a, env)?, eval(b, env)?)?,
    })
}

fn binary<'a>(op: BinOp, a: Val<'a>, b: Val<'a>) -> Option<Val<'a>> {
    use BinOp::*;
    Some(match (op, a, b) {
        (Add, Val::Int(x), Val::Int(y)) => Val::Int(x.checked_add(y)?),
        (Sub, Val::Int(x), Val::Int(y)) => Val::Int(x.checked_sub(y)?),
        (Mul, Val::Int(x), Val::Int(y)) => Val::Int(x.checked_mul(y)?),
        (Div, Val::Int(x), Val::Int(y)) => Val::Int(x.checked_div(y)?),
        (Rem, Val::Int(x), Val::Int(y)) => Val::Int(x.checked_rem(y)?),
        (Add, Val::Double(x), Val::Double(y)) => Val::Double(x + y),
        (Sub, Val::Double(x), Val::Double(y)) => Val::Double(x - y),
        (Mul, Val::Double(x), Val::Double(y)) => Val::Double(x * y),
        (Div, Val::Double(x), Val::Double(y)) => Val::Double(x / y),
        (Add, Val::Str(x), Val::Str(y)) => Val::Str(Cow::Owned(format!("{x}{y}"))),
        (Lt | Le | Gt | Ge | Eq | Ne, Val::Int(x), Val::Int(y)) => {
            Val::Bool(compare(op, x.cmp(&y)))
        }
        (Lt | Le | Gt | Ge | Eq | Ne, Val::Double(x), Val::Double(y)) => {
            Val::Bool(compare(op, x.partial_cmp(&y)?))
        }
        (Lt | Le | Gt | Ge | Eq | Ne, Val::Str(x), Val::Str(y)) => {
            Val::Bool(compare(op, x.cmp(&y)))
        }
        (Eq | Ne, Val::Bool(x), Val::Bool(y)) => Val::Bool(compare(op, x.cmp(&y))),
        (Eq | Ne, Val::Null, Val::Null) => Val::Bool(op == Eq),
        _ => return None,
    })
}

fn compare(op: BinOp, o: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match op {
        BinOp::Lt => o == Less,
        BinOp::Le => o != Greater,
        BinOp::Gt => o == Greater,
        BinOp::Ge => o != Less,
        BinOp::Eq => o == Equal,
        BinOp::Ne => o != Equal,
        _ => false,
    }
}
