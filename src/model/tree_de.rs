//! The fast way to read a file: serde over the span index, which has already lexed the text,
//! instead of having `ron` read it a second time.
//!
//! It understands the forms orca's files are written in — strings without escapes, decimal
//! integers, `true`/`false`, lists, maps with string keys, named and unnamed structs, enum
//! variants, `Some`/`None` and implicit `Some` — and refuses anything else with an error.
//! A refusal is not reported: the caller then reads the text with `ron`, whose value and
//! messages are the reference. So this reader may be incomplete, but where it succeeds it
//! must agree with `ron` exactly; `tests/roundtrip.rs` and the loader tests check that.

use super::source::{Node, ron_string};
use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use std::borrow::Cow;
use std::fmt;

/// This reader does not handle the input; `ron` will.
#[derive(Debug)]
pub(crate) struct Refused;

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a form the fast reader handles")
    }
}

impl std::error::Error for Refused {}

impl de::Error for Refused {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Refused
    }
}

type Result<T> = std::result::Result<T, Refused>;

/// Digits, at least one.
fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// A decimal integer: digits with an optional leading `-`.
fn decimal(s: &str) -> bool {
    digits(s.strip_prefix('-').unwrap_or(s))
}

/// An ASCII identifier, as struct fields are written.
fn identifier(s: &str) -> bool {
    s.bytes()
        .next()
        .is_some_and(|b| b == b'_' || b.is_ascii_alphabetic())
        && s.bytes().all(|b| b == b'_' || b.is_ascii_alphanumeric())
}

/// Visits a decimal integer as `ron` does: negative ones as `i64`, others as `u64`.
fn visit_integer<'de, V: Visitor<'de>>(raw: &str, v: V) -> Result<V::Value> {
    match raw.parse::<i64>() {
        Ok(n) if n < 0 => v.visit_i64(n),
        _ => v.visit_u64(raw.parse().map_err(|_| Refused)?),
    }
}

/// Visits a string, borrowed from the text where it can be.
fn visit_str<'de, V: Visitor<'de>>(s: Cow<'de, str>, v: V) -> Result<V::Value> {
    match s {
        Cow::Borrowed(s) => v.visit_borrowed_str(s),
        Cow::Owned(s) => v.visit_string(s),
    }
}

/// A value of the span index, to deserialize from.
#[derive(Clone, Copy)]
pub(crate) struct TreeDe<'a> {
    node: Node<'a>,
}

impl<'a> TreeDe<'a> {
    pub(crate) fn new(node: Node<'a>) -> Self {
        TreeDe { node }
    }

    fn raw(&self) -> &'a str {
        let s = self.node.span();
        &self.node.text()[s.start..s.end]
    }

    /// The value of a string literal, where [`ron_string`] reads it.
    fn str(&self) -> Result<Cow<'a, str>> {
        if !self.node.is_string() {
            return Err(Refused);
        }
        ron_string(self.raw()).ok_or(Refused)
    }

    /// A decimal fraction: digits, a point, digits, with an optional leading `-`.
    fn fraction(&self) -> Option<f64> {
        let raw = self.raw();
        let (whole, frac) = raw.strip_prefix('-').unwrap_or(raw).split_once('.')?;
        (self.atom() && digits(whole) && digits(frac))
            .then(|| raw.parse().ok())
            .flatten()
    }

    /// A value that is neither a group nor a string.
    fn atom(&self) -> bool {
        self.node.open() == 0 && !self.node.is_string()
    }

    /// A bare identifier (not a struct name).
    fn ident(&self) -> Option<&'a str> {
        self.atom().then(|| self.node.name()).flatten()
    }

    /// A decimal integer.
    fn integer(&self) -> Result<&'a str> {
        let raw = self.raw();
        if self.atom() && decimal(raw) {
            Ok(raw)
        } else {
            Err(Refused)
        }
    }

    /// A `(...)` group of `field: value` entries (or none).
    fn fields(&self) -> bool {
        self.node.open() == b'(' && (self.node.is_keyed() || self.node.is_empty())
    }

    /// A group opened by `open` whose children are all positional.
    fn positional(&self, open: u8) -> bool {
        self.node.open() == open && self.node.is_positional()
    }

    /// The value inside `Some(x)`.
    fn some(&self) -> Option<Node<'a>> {
        (self.node.name() == Some("Some") && self.positional(b'(') && self.node.len() == 1)
            .then(|| self.node.entry(0).map(|e| e.value()))
            .flatten()
    }

    /// The only child of a wrapper, `Some(x)` or `Variant(x)`. `ron` refuses a struct or
    /// tuple written out inside one (`Some((a: 1))`): with `unwrap_variant_newtypes` its
    /// fields go directly in the wrapper.
    fn wrapped(inner: Node<'a>) -> Result<TreeDe<'a>> {
        if inner.open() == b'(' {
            Err(Refused)
        } else {
            Ok(TreeDe::new(inner))
        }
    }

    /// The children, for a visitor that must take them all.
    fn visit<V, F>(self, keys: Keys, visit: F) -> Result<V>
    where
        F: FnOnce(&mut Children<'a>) -> Result<V>,
    {
        let mut children = Children {
            node: self.node,
            next: 0,
            keys,
        };
        let value = visit(&mut children)?;
        // `ron` would have found the rest where it expected the closing delimiter.
        if children.next == self.node.len() {
            Ok(value)
        } else {
            Err(Refused)
        }
    }
}

macro_rules! integer {
    ($($method:ident => $visit:ident as $ty:ty),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, v: V) -> Result<V::Value> {
            let n: $ty = self.integer()?.parse().map_err(|_| Refused)?;
            v.$visit(n)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for TreeDe<'de> {
    type Error = Refused;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value> {
        if self.node.is_string() {
            return visit_str(self.str()?, v);
        }
        if let Some(id) = self.ident() {
            return match id {
                "true" => v.visit_bool(true),
                "false" => v.visit_bool(false),
                _ => Err(Refused),
            };
        }
        if self.node.open() == 0 {
            // ron reads a fraction as an f32 only when that loses nothing: the same value.
            if let Some(x) = self.fraction() {
                return v.visit_f64(x);
            }
            return visit_integer(self.integer()?, v);
        }
        let named = self.node.name().is_some();
        match self.node.open() {
            b'[' if self.node.is_positional() => self.visit(Keys::None, |c| v.visit_seq(c)),
            b'{' => self.visit(Keys::Map, |c| v.visit_map(c)),
            // Only `()` itself is a unit: `( )` is an empty tuple to `ron`.
            b'(' if self.raw() == "()" => v.visit_unit(),
            b'(' if self.node.is_keyed() => self.visit(Keys::Fields, |c| v.visit_map(c)),
            b'(' if !named && !self.node.is_empty() && self.node.is_positional() => {
                self.visit(Keys::None, |c| v.visit_seq(c))
            }
            _ => Err(Refused),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value> {
        match self.ident() {
            Some("true") => v.visit_bool(true),
            Some("false") => v.visit_bool(false),
            _ => Err(Refused),
        }
    }

    integer! {
        deserialize_i8 => visit_i8 as i8,
        deserialize_i16 => visit_i16 as i16,
        deserialize_i32 => visit_i32 as i32,
        deserialize_i64 => visit_i64 as i64,
        deserialize_u8 => visit_u8 as u8,
        deserialize_u16 => visit_u16 as u16,
        deserialize_u32 => visit_u32 as u32,
        deserialize_u64 => visit_u64 as u64,
    }

    fn deserialize_f32<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(Refused)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(Refused)
    }
    fn deserialize_char<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(Refused)
    }

    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value> {
        visit_str(self.str()?, v)
    }
    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value> {
        self.deserialize_str(v)
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(Refused)
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(Refused)
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value> {
        if self.ident() == Some("None") {
            return v.visit_none();
        }
        match self.some() {
            Some(inner) => v.visit_some(TreeDe::wrapped(inner)?),
            // `implicit_some`: the value itself.
            None => v.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value> {
        if self.raw() == "()" {
            v.visit_unit()
        } else {
            Err(Refused)
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _: &'static str, _: V) -> Result<V::Value> {
        Err(Refused)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: V,
    ) -> Result<V::Value> {
        Err(Refused)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value> {
        if self.positional(b'[') {
            self.visit(Keys::None, |c| v.visit_seq(c))
        } else {
            Err(Refused)
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value> {
        if self.node.name().is_none() && self.positional(b'(') && self.node.len() == len {
            self.visit(Keys::None, |c| v.visit_seq(c))
        } else {
            Err(Refused)
        }
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        _: V,
    ) -> Result<V::Value> {
        Err(Refused)
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value> {
        if self.node.open() == b'{' {
            self.visit(Keys::Map, |c| v.visit_map(c))
        } else {
            Err(Refused)
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        _: &'static [&'static str],
        v: V,
    ) -> Result<V::Value> {
        if self.node.name().is_none_or(|n| n == name) && self.fields() {
            self.visit(Keys::Fields, |c| v.visit_map(c))
        } else {
            Err(Refused)
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        v: V,
    ) -> Result<V::Value> {
        if self.ident().is_some() || (self.node.open() == b'(' && self.node.name().is_some()) {
            v.visit_enum(self)
        } else {
            Err(Refused)
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(Refused)
    }

    /// An unknown field's value must still be valid RON, as `ron` checks it.
    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value> {
        self.deserialize_any(v)
    }
}

impl<'de> de::EnumAccess<'de> for TreeDe<'de> {
    type Error = Refused;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self)> {
        let name = self.node.name().ok_or(Refused)?;
        let variant = seed.deserialize(name.into_deserializer())?;
        Ok((variant, self))
    }
}

impl<'de> de::VariantAccess<'de> for TreeDe<'de> {
    type Error = Refused;

    fn unit_variant(self) -> Result<()> {
        if self.ident().is_some() {
            Ok(())
        } else {
            Err(Refused)
        }
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value> {
        if self.node.open() != b'(' {
            return Err(Refused);
        }
        if self.node.len() == 1 && self.node.is_positional() {
            let inner = self.node.entry(0).ok_or(Refused)?.value();
            seed.deserialize(TreeDe::wrapped(inner)?)
        } else if self.node.is_keyed() {
            // `unwrap_variant_newtypes`: `Raise(event: "E")` is the struct inside.
            seed.deserialize(Unnamed(self))
        } else {
            Err(Refused)
        }
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value> {
        if self.positional(b'(') && self.node.len() == len {
            self.visit(Keys::None, |c| v.visit_seq(c))
        } else {
            Err(Refused)
        }
    }

    fn struct_variant<V: Visitor<'de>>(self, _: &'static [&'static str], v: V) -> Result<V::Value> {
        if self.fields() {
            self.visit(Keys::Fields, |c| v.visit_map(c))
        } else {
            Err(Refused)
        }
    }
}

/// The fields of a variant `V(a: 1)` read as the unnamed struct `(a: 1)` inside a newtype.
struct Unnamed<'a>(TreeDe<'a>);

impl<'de> de::Deserializer<'de> for Unnamed<'de> {
    type Error = Refused;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value> {
        self.0.visit(Keys::Fields, |c| v.visit_map(c))
    }

    fn deserialize_option<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(Refused)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier
        ignored_any
    }
}

/// What the keys of a group must be.
#[derive(Clone, Copy)]
enum Keys {
    /// None: list and tuple elements.
    None,
    /// Identifiers: struct fields.
    Fields,
    /// String literals without escapes, or decimal integers (`after: { 500: .. }`): map keys.
    Map,
}

/// The children of a group, handed to a visitor in order.
struct Children<'a> {
    node: Node<'a>,
    next: usize,
    keys: Keys,
}

impl<'de> de::SeqAccess<'de> for &mut Children<'de> {
    type Error = Refused;

    fn next_element_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<Option<S::Value>> {
        let Some(e) = self.node.entry(self.next) else {
            return Ok(None);
        };
        self.next += 1;
        seed.deserialize(TreeDe::new(e.value())).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.node.len() - self.next)
    }
}

impl<'de> de::MapAccess<'de> for &mut Children<'de> {
    type Error = Refused;

    fn next_key_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<Option<S::Value>> {
        let Some(e) = self.node.entry(self.next) else {
            return Ok(None);
        };
        let (Some(key), Some(raw)) = (e.key(), e.key_text_raw()) else {
            return Err(Refused);
        };
        let de = match self.keys {
            Keys::Fields if identifier(raw) => KeyDe::Str(key),
            Keys::Map if raw.starts_with('"') && !raw.contains('\\') => KeyDe::Str(key),
            Keys::Map if decimal(raw) => KeyDe::Integer(raw),
            _ => return Err(Refused),
        };
        seed.deserialize(de).map(Some)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value> {
        let e = self.node.entry(self.next).ok_or(Refused)?;
        self.next += 1;
        seed.deserialize(TreeDe::new(e.value()))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.node.len() - self.next)
    }
}

/// A key as [`Keys`] admits it.
enum KeyDe<'a> {
    Str(&'a str),
    Integer(&'a str),
}

impl<'de> de::Deserializer<'de> for KeyDe<'de> {
    type Error = Refused;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value> {
        match self {
            KeyDe::Str(s) => v.visit_borrowed_str(s),
            KeyDe::Integer(raw) => visit_integer(raw, v),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value> {
        match self {
            KeyDe::Str(s) => v.visit_borrowed_str(s),
            KeyDe::Integer(_) => Err(Refused),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value> {
        self.deserialize_str(v)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value> {
        self.deserialize_str(v)
    }

    fn deserialize_option<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(Refused)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf
        unit unit_struct newtype_struct seq tuple tuple_struct map struct enum ignored_any
    }
}
