//! The list options Kubernetes clients send beside `labelSelector`:
//! `fieldSelector` (`metadata.name=web`, what `kubectl get ctr web -w`
//! watches with; `involvedObject.name=web` for events), and `limit` with
//! `continue` for paging (client-go lists 500 at a time).
//!
//! A page's `continue` token is opaque to clients: it holds the position
//! after the page's last object. Pages are read from the store as it is
//! when each is asked for, not from one snapshot as etcd serves them: an
//! object written between two pages shows in its newest state, or not at
//! all if it moved before the position. Watch from the first page's
//! resourceVersion to see every change.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::error::ApiError;

/// One requirement of a field selector.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Requirement {
    field: String,
    value: String,
    equal: bool,
}

/// A parsed `fieldSelector`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<Requirement>);

impl FieldSelector {
    /// Parses `text`, allowing only `fields` (named in the error otherwise).
    pub fn parse(text: &str, fields: &[&str]) -> Result<FieldSelector, ApiError> {
        let mut requirements = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, value, equal) = if let Some((f, v)) = part.split_once("!=") {
                (f, v, false)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, v, true)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, v, true)
            } else {
                return Err(ApiError::bad_request(format!(
                    "fieldSelector `{part}` is not FIELD=VALUE or FIELD!=VALUE"
                )));
            };
            let field = field.trim();
            if !fields.contains(&field) {
                return Err(ApiError::bad_request(format!(
                    "fieldSelector: field label `{field}` is not supported here; supported: {}",
                    fields.join(", ")
                )));
            }
            requirements.push(Requirement { field: field.to_string(), value: value.trim().to_string(), equal });
        }
        Ok(FieldSelector(requirements))
    }

    /// Whether an object whose fields `value_of` gives matches.
    pub fn matches(&self, value_of: impl Fn(&str) -> String) -> bool {
        self.0.iter().all(|r| (value_of(&r.field) == r.value) == r.equal)
    }

    /// The value this selector requires of `field`, if it requires one.
    pub fn required(&self, field: &str) -> Option<&str> {
        self.0.iter().find(|r| r.equal && r.field == field).map(|r| r.value.as_str())
    }
}

/// Where a page ends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The last object's namespace.
    pub namespace: String,
    /// The last object's name.
    pub name: String,
}

impl Position {
    /// The `continue` token.
    pub fn token(&self) -> String {
        let json = serde_json::to_vec(self).expect("a position serializes");
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    /// Reads a `continue` token.
    pub fn parse(token: &str) -> Result<Position, ApiError> {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| {
                ApiError::bad_request(
                    "the `continue` token is not one berth gave out; list again without it (and with the same \
                     selectors) to start from the first page",
                )
            })
    }

    /// Whether (namespace, name) comes after this position.
    pub fn is_before(&self, namespace: &str, name: &str) -> bool {
        (self.namespace.as_str(), self.name.as_str()) < (namespace, name)
    }
}

/// One page of `items` (sorted by namespace and name) after `after`, at
/// most `limit` long; the position of its end when more follow, and how
/// many more.
pub fn page<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> (String, String),
    after: Option<&Position>,
    limit: Option<u64>,
) -> (Vec<T>, Option<Position>, Option<u64>) {
    let mut items: Vec<T> = match after {
        Some(position) => items
            .into_iter()
            .filter(|item| {
                let (namespace, name) = key(item);
                position.is_before(&namespace, &name)
            })
            .collect(),
        None => items,
    };
    let limit = match limit {
        Some(limit) if limit > 0 && (limit as usize) < items.len() => limit as usize,
        _ => return (items, None, None),
    };
    let rest = items.split_off(limit);
    let (namespace, name) = key(items.last().expect("a page of at least one"));
    (items, Some(Position { namespace, name }), Some(rest.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_selectors_match_names_and_refuse_unknown_fields() {
        let fields = ["metadata.name", "metadata.namespace"];
        let selector = FieldSelector::parse("metadata.name=web,metadata.namespace!=kube", &fields).unwrap();
        let of = |name: &'static str, ns: &'static str| {
            move |field: &str| if field == "metadata.name" { name.to_string() } else { ns.to_string() }
        };
        assert!(selector.matches(of("web", "default")));
        assert!(!selector.matches(of("api", "default")));
        assert!(!selector.matches(of("web", "kube")));
        assert_eq!(selector.required("metadata.name"), Some("web"));
        let error = FieldSelector::parse("spec.image=x", &fields).unwrap_err();
        assert!(error.message.contains("supported: metadata.name, metadata.namespace"), "{}", error.message);
        assert!(FieldSelector::parse("nonsense", &fields).is_err());
    }

    #[test]
    fn pages_cover_every_item_once() {
        let items: Vec<(String, String)> = (0..7).map(|i| ("default".to_string(), format!("c{i}"))).collect();
        let mut seen = Vec::new();
        let mut after: Option<Position> = None;
        loop {
            let (page, next, remaining) = page(items.clone(), Clone::clone, after.as_ref(), Some(3));
            seen.extend(page);
            match next {
                Some(position) => {
                    assert!(remaining.unwrap() > 0);
                    after = Some(Position::parse(&position.token()).unwrap());
                }
                None => break,
            }
        }
        assert_eq!(seen, items);
        assert!(Position::parse("garbage!").is_err());
    }
}
