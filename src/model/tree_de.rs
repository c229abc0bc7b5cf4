//! The fast way to read a file: serde over the span index, which has already lexed the text,
//! instead of having `ron` read it a second time.
//!
//! It understands the forms orca's files are written in — strings without escapes, decimal
//! integers, `true`/`false`, lists, maps with string keys, named and unnamed structs, enum
//! variants, `Some`/`None` and implicit `Some` — and refuses anything else with an error.
//! A refusal is not reported: the caller then reads the text with `ron`, whose value and
//! messages are the reference. So this reader may be incomplete, but where it succeeds it
//! must agree with `ron` exactly; `tests/roundtrip.rs` and the loader tests check that.

use super::source::{Entry, Node};
use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use std::borrow::Cow;
use std::fmt;

/// Visits a string, borrowed from the text where it can be.
fn visit_str<'de, V: Visitor<'de>>(s: Cow<'de, str>, v: V) -> Result<V::Value> {
    match s {
        Cow::Borrowed(s) => v.visit_borrowed_str(s),
        Cow::Owned(s) => v.visit_string(s),
    }
}

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

    /// The value of a string literal: borrowed without escapes; the simple escapes
    /// unescaped; `\x`, `\u` and raw strings left to `ron`.
    fn str(&self) -> Result<Cow<'a, str>> {
        let raw = self.raw();
        if !self.node.is_string() || raw.len() < 2 || !raw.starts_with('"') || !raw.ends_with('"') {
            return Err(Refused);
        }
        let inner = &raw[1..raw.len() - 1];
        if !inner.contains('\\') {
            return Ok(Cow::Borrowed(inner));
        }
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            out.push(match chars.next() {
                Some('"') => '"',
                Some('\'') => '\'',
                Some('\\') => '\\',
                Some('n') => '\n',
                Some('r') => '\r',
                Some('t') => '\t',
                Some('0') => '\0',
                _ => return Err(Refused),
            });
        }
        Ok(Cow::Owned(out))
    }

    /// A decimal fraction: digits, a point, digits, with an optional leading `-`.
    fn fraction(&self) -> Option<f64> {
        let raw = self.raw();
        let digits = raw.strip_prefix('-').unwrap_or(raw);
        let (whole, frac) = digits.split_once('.')?;
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        (self.node.open() == 0 && all_digits(whole) && all_digits(frac))
            .then(|| raw.parse().ok())
            .flatten()
    }

    /// A bare identifier (not a struct name).
    fn ident(&self) -> Option<&'a str> {
        (self.node.open() == 0 && !self.node.is_string())
            .then(|| self.node.name())
            .flatten()
    }

    /// A decimal integer: digits with an optional leading `-`.
    fn integer(&self) -> Result<&'a str> {
        let raw = self.raw();
        let digits = raw.strip_prefix('-').unwrap_or(raw);
        if self.node.open() == 0 && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
        {
            Ok(raw)
        } else {
            Err(Refused)
        }
    }

    /// A group whose children are all keyed (a struct or a map).
    fn keyed(&self, open: u8) -> bool {
        self.node.open() == open && self.node.entries().all(|e| e.key_span().is_some())
    }

    /// A group whose children are all positional.
    fn positional(&self, open: u8) -> bool {
        self.node.open() == open && self.node.entries().all(|e| e.key_span().is_none())
    }

    /// `Some(x)`.
    fn some(&self) -> Option<Node<'a>> {
        (self.node.name() == Some("Some") && self.positional(b'(') && self.node.len() == 1)
            .then(|| self.node.entry(0).map(|e| e.value()))
            .flatten()
    }
}

/// Struct fields are identifiers; map keys are string literals.
fn key_is_ident(e: &Entry) -> bool {
    e.key_text_raw()
        .and_then(|k| k.bytes().next())
        .is_some_and(|b| b == b'_' || b.is_ascii_alphabetic())
        && !e.key_text_raw().is_some_and(|k| k.starts_with("r#"))
}

/// Map keys: string literals without escapes, or decimal integers (`after: { 500: .. }`).
fn key_is_plain_string(e: &Entry) -> bool {
    e.key_text_raw().is_some_and(|k| {
        let digits = k.strip_prefix('-').unwrap_or(k);
        (k.len() >= 2 && k.starts_with('"') && k.ends_with('"') && !k.contains('\\'))
            || (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// A map key as [`key_is_plain_string`] admits it.
struct KeyDe<'a> {
    raw: &'a str,
    key: &'a str,
}

impl<'de> de::Deserializer<'de> for KeyDe<'de> {
    type Error = Refused;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value> {
        if self.raw.starts_with('"') {
            return v.visit_borrowed_str(self.key);
        }
        match self.raw.parse::<i64>() {
            Ok(n) if n < 0 => v.visit_i64(n),
            _ => v.visit_u64(self.raw.parse().map_err(|_| Refused)?),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value> {
        if self.raw.starts_with('"') {
            v.visit_borrowed_str(self.key)
        } else {
            Err(Refused)
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
            let raw = self.integer()?;
            return match raw.parse::<i64>() {
                Ok(n) if n < 0 => v.visit_i64(n),
                _ => v.visit_u64(raw.parse().map_err(|_| Refused)?),
            };
        }
        let named = self.node.name().is_some();
        match self.node.open() {
            b'[' if self.positional(b'[') => v.visit_seq(Seq::new(self.node)),
            b'{' if self.node.entries().all(|e| key_is_plain_string(&e)) => {
                v.visit_map(Map::new(self.node))
            }
            b'(' if self.node.is_empty() && !named => v.visit_unit(),
            b'(' if !self.node.is_empty() && self.node.entries().all(|e| key_is_ident(&e)) => {
                v.visit_map(Map::new(self.node))
            }
            b'(' if !named && self.positional(b'(') => v.visit_seq(Seq::new(self.node)),
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
            Some(inner) => v.visit_some(TreeDe::new(inner)),
            // `implicit_some`: the value itself.
            None => v.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value> {
        if self.node.open() == b'(' && self.node.is_empty() && self.node.name().is_none() {
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
            v.visit_seq(Seq::new(self.node))
        } else {
            Err(Refused)
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value> {
        if self.node.name().is_none() && self.positional(b'(') && self.node.len() == len {
            v.visit_seq(Seq::new(self.node))
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
        if self.node.open() == b'{' && self.node.entries().all(|e| key_is_plain_string(&e)) {
            v.visit_map(Map::new(self.node))
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
        let name_ok = self.node.name().is_none_or(|n| n == name);
        if name_ok && self.keyed(b'(') && self.node.entries().all(|e| key_is_ident(&e)) {
            v.visit_map(Map::new(self.node))
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

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value> {
        v.visit_unit()
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
        match self.node.len() {
            1 if self.positional(b'(') => {
                let inner = self.node.entry(0).ok_or(Refused)?.value();
                seed.deserialize(TreeDe::new(inner))
            }
            // `unwrap_variant_newtypes`: `Raise(event: "E")` is the struct inside.
            n if n > 0 && self.node.entries().all(|e| key_is_ident(&e)) => {
                seed.deserialize(Unnamed(self))
            }
            _ => Err(Refused),
        }
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value> {
        if self.positional(b'(') && self.node.len() == len {
            v.visit_seq(Seq::new(self.node))
        } else {
            Err(Refused)
        }
    }

    fn struct_variant<V: Visitor<'de>>(self, _: &'static [&'static str], v: V) -> Result<V::Value> {
        if self.keyed(b'(') && self.node.entries().all(|e| key_is_ident(&e)) {
            v.visit_map(Map::new(self.node))
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
        v.visit_map(Map::new(self.0.node))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        v: V,
    ) -> Result<V::Value> {
        v.visit_map(Map::new(self.0.node))
    }

    fn deserialize_option<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(Refused)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

struct Seq<'a> {
    node: Node<'a>,
    next: usize,
}

impl<'a> Seq<'a> {
    fn new(node: Node<'a>) -> Self {
        Seq { node, next: 0 }
    }
}

impl<'de> de::SeqAccess<'de> for Seq<'de> {
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

struct Map<'a> {
    node: Node<'a>,
    next: usize,
}

impl<'a> Map<'a> {
    fn new(node: Node<'a>) -> Self {
        Map { node, next: 0 }
    }
}

impl<'de> de::MapAccess<'de> for Map<'de> {
    type Error = Refused;

    fn next_key_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<Option<S::Value>> {
        let Some(e) = self.node.entry(self.next) else {
            return Ok(None);
        };
        let (Some(key), Some(raw)) = (e.key(), e.key_text_raw()) else {
            return Err(Refused);
        };
        // Struct fields are identifiers, read as strings; map keys as written.
        if key_is_ident(&e) {
            return seed
                .deserialize(de::value::BorrowedStrDeserializer::new(key))
                .map(Some);
        }
        seed.deserialize(KeyDe { raw, key }).map(Some)
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
