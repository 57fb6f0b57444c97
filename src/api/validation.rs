//! Field-level validation shared by every kind.
//!
//! A kind's `validate` walks its spec and pushes every problem it finds into
//! [`FieldErrors`], each at a [`FieldPath`] such as `spec.ports[0].hostPort`.
//! Nothing stops at the first error: a user fixing a manifest sees all of its
//! problems in one run. The manifest loader turns paths into
//! `file:line:column` positions; the REST API reports them as they are.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use super::quantity::{ByteQuantity, CpuQuantity, DurationSpec};

/// One step of a [`FieldPath`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Segment {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

/// Where in an object a value lives, e.g. `spec.ports[0].hostPort`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldPath(pub Vec<Segment>);

impl FieldPath {
    /// The object itself.
    pub fn root() -> Self {
        FieldPath(Vec::new())
    }

    /// The value under `key`.
    pub fn key(&self, key: &str) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Key(key.to_string()));
        FieldPath(segments)
    }

    /// The item at `index`.
    pub fn index(&self, index: usize) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Index(index));
        FieldPath(segments)
    }

    /// Parses the dotted form serde reports (`spec.ports[0].name`).
    pub fn parse(text: &str) -> Self {
        let mut segments = Vec::new();
        for part in text.split('.').filter(|p| !p.is_empty()) {
            let (key, indexes) = part.split_once('[').map_or((part, ""), |(k, rest)| (k, rest));
            if !key.is_empty() {
                segments.push(Segment::Key(key.to_string()));
            }
            for index in indexes.split('[') {
                if let Ok(i) = index.trim_end_matches(']').parse() {
                    segments.push(Segment::Index(i));
                }
            }
        }
        FieldPath(segments)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => write!(f, "{key}")?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// A problem with one field: where it is and what is wrong, including what
/// would be accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The offending field.
    pub path: FieldPath,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in one object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    /// Records a problem at `path`.
    pub fn push(&mut self, path: &FieldPath, message: impl Into<String>) {
        self.0.push(FieldError { path: path.clone(), message: message.into() });
    }

    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Requires a DNS-1123 label (`what` names the thing, e.g. "volume name").
    pub fn dns_label(&mut self, path: &FieldPath, value: &str, what: &str) {
        if let Err(why) = check_dns_label(value) {
            self.push(path, format!("{what} `{value}` is invalid: {why}"));
        }
    }

    /// Requires a DNS name (dot-separated labels, `*.` prefix when `wildcard`).
    pub fn dns_name(&mut self, path: &FieldPath, value: &str, what: &str, wildcard: bool) {
        if !is_dns_name(value, wildcard) {
            let hint = if wildcard { " (a leading `*.` is allowed)" } else { "" };
            self.push(
                path,
                format!("{what} `{value}` is not a valid DNS name; use lowercase labels of letters, digits and `-` separated by dots{hint}"),
            );
        }
    }

    /// Requires a TCP/UDP port number.
    pub fn port(&mut self, path: &FieldPath, value: i64) {
        if !(1..=65535).contains(&value) {
            self.push(path, format!("port {value} is out of range; use 1-65535"));
        }
    }

    /// Requires a parsable duration.
    pub fn duration(&mut self, path: &FieldPath, value: Option<&DurationSpec>) {
        if let Some(Err(why)) = value.map(DurationSpec::duration) {
            self.push(path, why);
        }
    }

    /// Requires a parsable byte size.
    pub fn bytes(&mut self, path: &FieldPath, value: Option<&ByteQuantity>) {
        if let Some(Err(why)) = value.map(ByteQuantity::bytes) {
            self.push(path, why);
        }
    }

    /// Requires a parsable CPU count.
    pub fn cpus(&mut self, path: &FieldPath, value: Option<&CpuQuantity>) {
        if let Some(Err(why)) = value.map(CpuQuantity::nano_cpus) {
            self.push(path, why);
        }
    }

    /// Requires an absolute filesystem path.
    pub fn absolute_path(&mut self, path: &FieldPath, value: &str, what: &str) {
        if !value.starts_with('/') {
            self.push(path, format!("{what} `{value}` must be an absolute path (starting with /)"));
        }
    }

    /// Requires exactly one of the named alternatives to be set.
    pub fn exactly_one(&mut self, path: &FieldPath, alternatives: &[(&str, bool)]) {
        let set: Vec<&str> = alternatives.iter().filter(|(_, is_set)| *is_set).map(|(name, _)| *name).collect();
        let names = alternatives.iter().map(|(name, _)| format!("`{name}`")).collect::<Vec<_>>().join(", ");
        match set.len() {
            1 => {}
            0 => self.push(path, format!("one of {names} is required")),
            _ => self.push(path, format!("only one of {names} may be set, found {}", set.join(" and "))),
        }
    }

    /// Requires an integer within `range`.
    pub fn in_range(&mut self, path: &FieldPath, value: i64, range: std::ops::RangeInclusive<i64>, what: &str) {
        if !range.contains(&value) {
            self.push(path, format!("{what} {value} is out of range; use {}-{}", range.start(), range.end()));
        }
    }

    /// Requires Kubernetes-style label keys and values.
    pub fn labels(&mut self, path: &FieldPath, labels: &BTreeMap<String, String>) {
        for (key, value) in labels {
            let at = path.key(key);
            if let Err(why) = check_label_key(key) {
                self.push(&at, format!("label key `{key}` is invalid: {why}"));
            }
            if let Err(why) = check_label_value(value) {
                self.push(&at, format!("label value `{value}` is invalid: {why}"));
            }
        }
    }

    /// Requires a selector that selects something.
    pub fn selector(&mut self, path: &FieldPath, selector: &super::LabelSelector) {
        if selector.match_labels.is_empty() {
            self.push(
                &path.key("matchLabels"),
                "selector is empty and would match every Container; list at least one label under matchLabels",
            );
        }
        self.labels(&path.key("matchLabels"), &selector.match_labels);
    }

    /// Requires a literal IP address of the given family (`None`: either).
    pub fn ip(&mut self, path: &FieldPath, value: &str, v4: Option<bool>) -> Option<IpAddr> {
        let family = match v4 {
            Some(true) => "an IPv4 address such as 10.0.0.5",
            Some(false) => "an IPv6 address such as fd00::5",
            None => "an IP address such as 10.0.0.5 or fd00::5",
        };
        match value.parse::<IpAddr>() {
            Ok(ip) if v4.is_none_or(|want_v4| ip.is_ipv4() == want_v4) => Some(ip),
            _ => {
                self.push(path, format!("`{value}` is not {family}"));
                None
            }
        }
    }
}

/// Whether `value` is a DNS name: dot-separated DNS-1123 labels, an optional
/// trailing dot, and with `wildcard` an optional leading `*.`.
pub fn is_dns_name(value: &str, wildcard: bool) -> bool {
    let name = value.strip_suffix('.').unwrap_or(value);
    let name = if wildcard { name.strip_prefix("*.").unwrap_or(name) } else { name };
    !name.is_empty() && name.len() <= 253 && name.split('.').all(|l| check_dns_label(l).is_ok())
}

/// Checks a DNS-1123 label; says what is wrong.
pub fn check_dns_label(value: &str) -> Result<(), &'static str> {
    if value.is_empty() {
        return Err("it must not be empty");
    }
    if value.len() > 63 {
        return Err("it must be at most 63 characters");
    }
    if !value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        return Err("use only lowercase letters, digits and `-`");
    }
    if value.starts_with('-') || value.ends_with('-') {
        return Err("it must start and end with a letter or digit");
    }
    Ok(())
}

fn check_label_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 63 {
        return Err("the name part must be 1-63 characters");
    }
    let ok_char = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.';
    if !name.bytes().all(ok_char) {
        return Err("use letters, digits, `-`, `_` and `.`");
    }
    let bytes = name.as_bytes();
    if !bytes[0].is_ascii_alphanumeric() || !bytes[bytes.len() - 1].is_ascii_alphanumeric() {
        return Err("it must start and end with a letter or digit");
    }
    Ok(())
}

fn check_label_key(key: &str) -> Result<(), &'static str> {
    match key.split_once('/') {
        Some((prefix, name)) => {
            let prefix_ok =
                !prefix.is_empty() && prefix.len() <= 253 && prefix.split('.').all(|l| check_dns_label(l).is_ok());
            if !prefix_ok {
                return Err("the prefix before `/` must be a DNS name such as example.com");
            }
            check_label_name(name)
        }
        None => check_label_name(key),
    }
}

fn check_label_value(value: &str) -> Result<(), &'static str> {
    if value.is_empty() {
        return Ok(());
    }
    check_label_name(value).map_err(|_| {
        "values are at most 63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_print_and_parse_like_serde() {
        let path = FieldPath::root().key("spec").key("ports").index(0).key("hostPort");
        assert_eq!(path.to_string(), "spec.ports[0].hostPort");
        assert_eq!(FieldPath::parse("spec.ports[0].hostPort"), path);
    }

    #[test]
    fn dns_labels() {
        assert!(check_dns_label("web-1").is_ok());
        assert!(check_dns_label("Web").is_err());
        assert!(check_dns_label("-web").is_err());
        assert!(check_dns_label(&"a".repeat(64)).is_err());
    }

    #[test]
    fn exactly_one_names_the_alternatives() {
        let mut errors = FieldErrors::default();
        errors.exactly_one(&FieldPath::root(), &[("exec", true), ("httpGet", true), ("tcpSocket", false)]);
        assert_eq!(
            errors.0[0].message,
            "only one of `exec`, `httpGet`, `tcpSocket` may be set, found exec and httpGet"
        );
    }

    #[test]
    fn label_keys_accept_prefixes() {
        assert!(check_label_key("app.kubernetes.io/name").is_ok());
        assert!(check_label_key("Bad Key").is_err());
        assert!(check_label_key("/name").is_err());
    }
}
