//! Durations as machine files write them: `"250ms"`, `"1.5s"`, `"2m"`, `"1h"`, or integer milliseconds.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A span of virtual or wall time, in whole milliseconds.
///
/// ```
/// use orca::model::DurationMs;
/// assert_eq!("1.5s".parse::<DurationMs>().unwrap().0, 1500);
/// assert_eq!("250ms".parse::<DurationMs>().unwrap().0, 250);
/// assert!("soon".parse::<DurationMs>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct DurationMs(pub u64);

impl std::str::FromStr for DurationMs {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let factor = match unit.trim() {
            "" | "ms" => 1.0,
            "s" => 1_000.0,
            "m" | "min" => 60_000.0,
            "h" => 3_600_000.0,
            "d" => 86_400_000.0,
            other => {
                return Err(format!(
                    "unknown unit `{other}` in duration `{s}` (use ms, s, m, h or d)"
                ));
            }
        };
        let value: f64 = num.parse().map_err(|_| {
            format!("`{s}` is not a duration (write e.g. \"250ms\", \"1.5s\", \"2m\")")
        })?;
        let ms = value * factor;
        if !ms.is_finite() || ms > u64::MAX as f64 / 2.0 {
            return Err(format!("duration `{s}` is out of range"));
        }
        Ok(DurationMs(ms.round() as u64))
    }
}

impl fmt::Display for DurationMs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        if ms != 0 && ms.is_multiple_of(3_600_000) {
            write!(f, "{}h", ms / 3_600_000)
        } else if ms != 0 && ms.is_multiple_of(60_000) {
            write!(f, "{}m", ms / 60_000)
        } else if ms != 0 && ms.is_multiple_of(1_000) {
            write!(f, "{}s", ms / 1_000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

/// A duration as written in the file: kept as text so that a bad one is reported with its
/// location by validation rather than aborting the parse.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DurationText(pub String);

impl DurationText {
    pub fn parse(&self) -> Result<DurationMs, String> {
        self.0.parse()
    }
}

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = DurationText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as \"250ms\" or \"2s\", or integer milliseconds")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<DurationText, E> {
                Ok(DurationText(s.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<DurationText, E> {
                Ok(DurationText(n.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<DurationText, E> {
                Ok(DurationText(n.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<DurationText, E> {
                Ok(DurationText(n.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for DurationText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.parse::<u64>() {
            Ok(n) => s.serialize_u64(n),
            Err(_) => s.serialize_str(&self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_documented_form() {
        for (text, ms) in [
            ("250ms", 250),
            ("1.5s", 1500),
            ("2s", 2000),
            ("1m", 60_000),
            ("1h", 3_600_000),
            ("40", 40),
            ("0", 0),
        ] {
            assert_eq!(text.parse::<DurationMs>().unwrap().0, ms, "{text}");
        }
        for bad in ["", "s", "1x", "-1s", "1e400s", "1.2.3s", "ms5"] {
            assert!(bad.parse::<DurationMs>().is_err(), "{bad}");
        }
    }

    #[test]
    fn display_round_trips() {
        for ms in [0, 1, 999, 1000, 1500, 60_000, 90_000, 3_600_000] {
            let d = DurationMs(ms);
            assert_eq!(d.to_string().parse::<DurationMs>().unwrap(), d);
        }
    }
}
