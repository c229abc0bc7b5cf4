//! SCXML event descriptors (3.12.1): token-prefix matching, `*`, and a trailing `.*`.

/// One event descriptor, normalized: `"error.*"` is stored as `error`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Descriptor {
    /// `*`: every event.
    Any,
    /// Matches this name and every name that continues it with `.`.
    Prefix(String),
    /// Matches exactly this name: used for the internal events of `after`.
    Exact(String),
}

impl Descriptor {
    /// Parses one descriptor token (no spaces).
    ///
    /// ```
    /// use orca::chart::Descriptor;
    /// let d = Descriptor::parse("error.*");
    /// assert!(d.matches("error"));
    /// assert!(d.matches("error.execution"));
    /// assert!(!d.matches("errors"));
    /// assert!(Descriptor::parse("*").matches("anything"));
    /// ```
    pub fn parse(token: &str) -> Descriptor {
        if token == "*" {
            return Descriptor::Any;
        }
        let t = token.strip_suffix(".*").unwrap_or(token);
        let t = t.strip_suffix('.').unwrap_or(t);
        Descriptor::Prefix(t.to_string())
    }

    /// Splits a space-separated descriptor list (`"A B"`) into descriptors.
    pub fn parse_list(text: &str) -> Vec<Descriptor> {
        text.split_whitespace().map(Descriptor::parse).collect()
    }

    /// Whether an event named `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Descriptor::Any => true,
            Descriptor::Exact(d) => d == name,
            Descriptor::Prefix(d) => {
                name.starts_with(d.as_str())
                    && (name.len() == d.len() || name.as_bytes()[d.len()] == b'.')
            }
        }
    }

    /// Whether every event this matches is also matched by `other`.
    pub fn covered_by(&self, other: &Descriptor) -> bool {
        match (self, other) {
            (_, Descriptor::Any) => true,
            (Descriptor::Any, _) => false,
            (Descriptor::Exact(a), Descriptor::Exact(b)) => a == b,
            (Descriptor::Exact(a) | Descriptor::Prefix(a), Descriptor::Prefix(_)) => {
                other.matches(a)
            }
            (Descriptor::Prefix(_), Descriptor::Exact(_)) => false,
        }
    }

    /// The descriptor as written.
    pub fn text(&self) -> &str {
        match self {
            Descriptor::Any => "*",
            Descriptor::Prefix(s) | Descriptor::Exact(s) => s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scxml_3_12_1_token_prefix_matching() {
        let d = Descriptor::parse("a.b");
        assert!(d.matches("a.b"));
        assert!(d.matches("a.b.c"));
        assert!(!d.matches("a.bc"));
        assert!(!d.matches("a"));
        assert_eq!(Descriptor::parse("error.*"), Descriptor::parse("error"));
        let list = Descriptor::parse_list("A  B");
        assert_eq!(list.len(), 2);
        assert!(list.iter().any(|d| d.matches("B")));
    }

    #[test]
    fn coverage_is_inclusion_of_matched_sets() {
        let p = |s| Descriptor::parse(s);
        assert!(p("a.b").covered_by(&p("a")));
        assert!(!p("a").covered_by(&p("a.b")));
        assert!(p("x").covered_by(&p("*")));
        assert!(!p("*").covered_by(&p("x")));
    }
}
