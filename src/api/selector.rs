//! Label selectors as kubectl and the REST API write them:
//! `app=web,tier!=cache,env in (prod,staging),!legacy,canary`.
//!
//! Manifests select with [`super::LabelSelector`] (a map); people filtering a
//! list want the string form, with the same meaning as in Kubernetes.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// One requirement on a label.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    /// `key=value` or `key==value`.
    Equals(String, String),
    /// `key!=value` (also true when the label is absent).
    NotEquals(String, String),
    /// `key in (a,b)`.
    In(String, Vec<String>),
    /// `key notin (a,b)` (also true when the label is absent).
    NotIn(String, Vec<String>),
    /// `key`.
    Exists(String),
    /// `!key`.
    DoesNotExist(String),
}

/// A parsed selector: every requirement must hold. The empty selector
/// selects everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector(Vec<Requirement>);

/// A selector that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("label selector `{text}`: {problem}; write e.g. `app=web,tier!=cache,env in (prod,staging),!legacy`")]
pub struct SelectorError {
    text: String,
    problem: String,
}

impl Selector {
    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|requirement| match requirement {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, values) => labels.get(k).is_some_and(|v| values.contains(v)),
            Requirement::NotIn(k, values) => labels.get(k).is_none_or(|v| !values.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        })
    }
}

/// Splits at commas outside parentheses.
fn split_requirements(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
}

fn parse_set(text: &str) -> Option<Vec<String>> {
    let inner = text.trim().strip_prefix('(')?.strip_suffix(')')?;
    let values: Vec<String> = inner.split(',').map(|v| v.trim().to_string()).collect();
    values.iter().all(|v| !v.contains(['(', ')', ' '])).then_some(values)
}

fn parse_requirement(part: &str) -> Result<Requirement, String> {
    let part = part.trim();
    let key_error = |key: &str| format!("`{key}` is not a label key");
    if let Some(key) = part.strip_prefix('!') {
        let key = key.trim();
        return if valid_key(key) { Ok(Requirement::DoesNotExist(key.into())) } else { Err(key_error(key)) };
    }
    for (operator, build) in [
        ("!=", Requirement::NotEquals as fn(String, String) -> Requirement),
        ("==", Requirement::Equals),
        ("=", Requirement::Equals),
    ] {
        if let Some((key, value)) = part.split_once(operator) {
            let (key, value) = (key.trim(), value.trim());
            if !valid_key(key) {
                return Err(key_error(key));
            }
            if value.contains(['=', '!', '(', ')', ' ']) {
                return Err(format!("`{value}` is not a label value"));
            }
            return Ok(build(key.into(), value.into()));
        }
    }
    for (operator, build) in
        [(" notin ", Requirement::NotIn as fn(String, Vec<String>) -> Requirement), (" in ", Requirement::In)]
    {
        if let Some((key, set)) = part.split_once(operator) {
            let key = key.trim();
            if !valid_key(key) {
                return Err(key_error(key));
            }
            let values = parse_set(set).ok_or_else(|| format!("`{}` is not a set like `(a,b)`", set.trim()))?;
            return Ok(build(key.into(), values));
        }
    }
    if valid_key(part) {
        Ok(Requirement::Exists(part.into()))
    } else {
        Err(format!("cannot read `{part}`"))
    }
}

impl FromStr for Selector {
    type Err = SelectorError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.trim().is_empty() {
            return Ok(Selector::default());
        }
        split_requirements(text)
            .into_iter()
            .map(parse_requirement)
            .collect::<Result<Vec<_>, _>>()
            .map(Selector)
            .map_err(|problem| SelectorError { text: text.to_string(), problem })
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|r| match r {
                Requirement::Equals(k, v) => format!("{k}={v}"),
                Requirement::NotEquals(k, v) => format!("{k}!={v}"),
                Requirement::In(k, vs) => format!("{k} in ({})", vs.join(",")),
                Requirement::NotIn(k, vs) => format!("{k} notin ({})", vs.join(",")),
                Requirement::Exists(k) => k.clone(),
                Requirement::DoesNotExist(k) => format!("!{k}"),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn every_operator_matches_as_in_kubernetes() {
        let web = labels(&[("app", "web"), ("env", "prod")]);
        let cases = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("tier!=cache", true),
            ("env in (prod, staging)", true),
            ("env notin (prod)", false),
            ("tier notin (cache)", true),
            ("app", true),
            ("!app", false),
            ("!legacy,app=web,env in (prod,staging)", true),
        ];
        for (text, expected) in cases {
            let selector: Selector = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(selector.matches(&web), expected, "{text}");
        }
    }

    #[test]
    fn bad_selectors_say_what_is_wrong() {
        for text in ["app=we b", "a b", "env in prod", "=x", "!"] {
            let error = text.parse::<Selector>().unwrap_err().to_string();
            assert!(error.contains(text) && error.contains("write e.g."), "{text}: {error}");
        }
        assert_eq!("app=web,!x".parse::<Selector>().unwrap().to_string(), "app=web,!x");
    }
}
