//! Integer kernels: the commonest guards and assignments (`count < 10`, `count + 1`,
//! `retries * 2 >= limit && !(count == 0)`) as arithmetic and comparison on `i64` over
//! context slots and constants, evaluated without building values.
//!
//! A kernel answers only when it is certain, like [`super::fast`]: a slot that does not hold
//! an integer, or an overflow or a division by zero, gives `None`, and evaluation falls back
//! to the fast form (and from there to `cel`), so results and error messages are unchanged.

use super::fast::{BinOp, Fast};
use indexmap::IndexMap;
use serde_json::Value as Json;

/// An integer-valued kernel.
#[derive(Debug, Clone, PartialEq)]
pub enum IntK {
    Const(i64),
    /// A context value by its slot in the chart's declared context.
    Slot(usize),
    Arith(BinOp, Box<IntK>, Box<IntK>),
    /// `slot OP constant`, the commonest shape (`count + 1`), without recursion.
    SlotConst(BinOp, usize, i64),
}

/// A bool-valued kernel.
#[derive(Debug, Clone, PartialEq)]
pub enum BoolK {
    Const(bool),
    Cmp(BinOp, IntK, IntK),
    /// `slot OP constant` (`retries < 3`), without recursion.
    CmpSlotConst(BinOp, usize, i64),
    Not(Box<BoolK>),
    And(Box<BoolK>, Box<BoolK>),
    Or(Box<BoolK>, Box<BoolK>),
}

/// A compiled kernel of a whole expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Kernel {
    Int(IntK),
    Bool(BoolK),
}

/// Integer values by slot, for kernels to read: a context whose declared names sit at their
/// slots, or such a context seen through a few assignments not yet made.
pub trait Slots {
    /// The integer in `slot`; `None` when there is none there (then the kernel is unsure).
    fn int(&self, slot: usize) -> Option<i64>;
}

impl Slots for IndexMap<String, Json> {
    #[inline]
    fn int(&self, slot: usize) -> Option<i64> {
        self.get_index(slot)?.1.as_i64()
    }
}

fn is_arith(op: BinOp) -> bool {
    matches!(
        op,
        BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Rem
    )
}

impl Kernel {
    /// The kernel of a fast expression whose variables are bound to slots, when it has one.
    pub fn of(e: &Fast) -> Option<Kernel> {
        int_of(e)
            .map(Kernel::Int)
            .or_else(|| bool_of(e).map(Kernel::Bool))
    }

    /// Evaluates over a context whose declared names sit at their slots.
    pub fn eval(&self, ctx: &IndexMap<String, Json>) -> Option<Json> {
        match self {
            Kernel::Int(k) => k.eval(ctx).map(Json::from),
            Kernel::Bool(k) => k.eval(ctx).map(Json::Bool),
        }
    }
}

fn int_of(e: &Fast) -> Option<IntK> {
    Some(match e {
        Fast::Int(i) => IntK::Const(*i),
        Fast::Var { slot: Some(s), .. } => IntK::Slot(*s),
        Fast::Neg(a) => IntK::Arith(BinOp::Sub, Box::new(IntK::Const(0)), Box::new(int_of(a)?)),
        Fast::Bin(op, a, b) if is_arith(*op) => match (int_of(a)?, int_of(b)?) {
            (IntK::Slot(s), IntK::Const(k)) => IntK::SlotConst(*op, s, k),
            (a, b) => IntK::Arith(*op, Box::new(a), Box::new(b)),
        },
        _ => return None,
    })
}

fn bool_of(e: &Fast) -> Option<BoolK> {
    Some(match e {
        Fast::Bool(b) => BoolK::Const(*b),
        Fast::Bin(op, a, b) if !is_arith(*op) => match (int_of(a)?, int_of(b)?) {
            (IntK::Slot(s), IntK::Const(k)) => BoolK::CmpSlotConst(*op, s, k),
            (a, b) => BoolK::Cmp(*op, a, b),
        },
        Fast::Not(a) => BoolK::Not(Box::new(bool_of(a)?)),
        Fast::And(a, b) => BoolK::And(Box::new(bool_of(a)?), Box::new(bool_of(b)?)),
        Fast::Or(a, b) => BoolK::Or(Box::new(bool_of(a)?), Box::new(bool_of(b)?)),
        _ => return None,
    })
}

impl IntK {
    #[inline]
    pub fn eval(&self, ctx: &(impl Slots + ?Sized)) -> Option<i64> {
        match self {
            IntK::Const(i) => Some(*i),
            IntK::Slot(s) => ctx.int(*s),
            IntK::Arith(op, a, b) => arith(*op, a.eval(ctx)?, b.eval(ctx)?),
            IntK::SlotConst(op, s, k) => arith(*op, ctx.int(*s)?, *k),
        }
    }
}

fn arith(op: BinOp, x: i64, y: i64) -> Option<i64> {
    match op {
        BinOp::Add => x.checked_add(y),
        BinOp::Sub => x.checked_sub(y),
        BinOp::Mul => x.checked_mul(y),
        BinOp::Div => x.checked_div(y),
        BinOp::Rem => x.checked_rem(y),
        _ => None,
    }
}

fn compare(op: BinOp, x: i64, y: i64) -> Option<bool> {
    match op {
        BinOp::Lt => Some(x < y),
        BinOp::Le => Some(x <= y),
        BinOp::Gt => Some(x > y),
        BinOp::Ge => Some(x >= y),
        BinOp::Eq => Some(x == y),
        BinOp::Ne => Some(x != y),
        _ => None,
    }
}

impl BoolK {
    #[inline]
    pub fn eval(&self, ctx: &(impl Slots + ?Sized)) -> Option<bool> {
        match self {
            BoolK::Const(b) => Some(*b),
            BoolK::Cmp(op, a, b) => compare(*op, a.eval(ctx)?, b.eval(ctx)?),
            BoolK::CmpSlotConst(op, s, k) => compare(*op, ctx.int(*s)?, *k),
            BoolK::Not(a) => a.eval(ctx).map(|b| !b),
            // Short-circuits as the fast form does; uncertainty anywhere it looks falls back.
            BoolK::And(a, b) => match a.eval(ctx)? {
                false => Some(false),
                true => b.eval(ctx),
            },
            BoolK::Or(a, b) => match a.eval(ctx)? {
                true => Some(true),
                false => b.eval(ctx),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chart::fast;

    fn kernel(src: &str, names: &[&str]) -> Option<Kernel> {
        let mut p = fast::parse(src)?.expr;
        fast::bind_slots(&mut p, &|n| names.iter().position(|x| *x == n));
        Kernel::of(&p)
    }

    fn ctx(pairs: &[(&str, Json)]) -> IndexMap<String, Json> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn integer_guards_and_assignments_compile_and_evaluate() {
        let c = ctx(&[("count", 41.into()), ("limit", 3.into())]);
        let k = kernel("count + 1", &["count", "limit"]).unwrap();
        assert_eq!(k.eval(&c), Some(Json::from(42)));
        let k = kernel("count * 2 >= limit && !(count == 0)", &["count", "limit"]).unwrap();
        assert_eq!(k.eval(&c), Some(Json::Bool(true)));
        let k = kernel("-count < limit || false", &["count", "limit"]).unwrap();
        assert_eq!(k.eval(&c), Some(Json::Bool(true)));
    }

    #[test]
    fn uncertain_answers_are_left_to_the_fallback() {
        let c = ctx(&[("n", 1.5.into()), ("m", i64::MAX.into()), ("z", 0.into())]);
        let names = ["n", "m", "z"];
        // A double, an overflow, a division by zero: no answer.
        assert_eq!(kernel("n + 1", &names).unwrap().eval(&c), None);
        assert_eq!(kernel("m + 1", &names).unwrap().eval(&c), None);
        assert_eq!(kernel("1 / z", &names).unwrap().eval(&c), None);
        // false && (anything) is false without looking further, as in CEL.
        assert_eq!(
            kernel("z > 0 && n > 0", &names).unwrap().eval(&c),
            Some(Json::Bool(false))
        );
        // Outside the kernel: strings, undeclared names, the event.
        assert!(kernel("name + \"x\"", &names).is_none());
        assert!(kernel("undeclared + 1", &names).is_none());
        assert!(kernel("event.data.n > 1", &names).is_none());
    }
}
