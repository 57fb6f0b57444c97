//! The columns of an object table, one definition for `berth get` and for
//! the Kubernetes `Table` the API answers kubectl (`kubectl get ctr`, `-o
//! wide`, `-w`), so both show the same READY, REPLICAS, REASON and AGE.

use chrono::{DateTime, Utc};

use super::{AnyObject, ConditionStatus, Kind};

/// One column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Column {
    /// Its header, as kubectl prints it (upper case).
    pub name: &'static str,
    /// Its OpenAPI type: `string` or `integer`.
    pub kind: &'static str,
    /// What it shows.
    pub description: &'static str,
    /// Shown only in the wide table (`-o wide`; Kubernetes' priority 1).
    pub wide: bool,
}

const fn column(name: &'static str, description: &'static str, wide: bool) -> Column {
    Column { name, kind: "string", description, wide }
}

/// The columns of a kind's table, in order.
pub fn columns(kind: Kind) -> Vec<Column> {
    let mut columns = vec![
        column("NAME", "The object's name.", false),
        column(
            "READY",
            "The Ready condition: True, False, Unknown, Deleting, or Suspended (berth resume brings it back).",
            false,
        ),
    ];
    if kind == Kind::Container {
        columns.push(column("REPLICAS", "Ready replicas out of those declared.", false));
    }
    columns.extend([
        column("REASON", "Why the object is (not) ready, in one word.", false),
        column("AGE", "Time since the object was first stored.", false),
        column("SOURCE", "Where the object came from: file, git or api.", true),
        column("MESSAGE", "The Ready condition's message.", true),
    ]);
    columns
}

/// The cells of `object`'s row, one per [`columns`] entry.
pub fn cells(object: &AnyObject) -> Vec<String> {
    let meta = object.metadata();
    let state = readiness(object);
    let mut row = vec![meta.name.clone(), state.status];
    row.extend(replicas(object));
    row.push(state.reason);
    row.push(age(meta.creation_timestamp));
    row.push(meta.source.as_ref().map_or("-".into(), |s| s.id()));
    row.push(state.message.replace('\n', " "));
    row
}

/// A Container's `ready/declared` replicas; `None` for other kinds.
pub fn replicas(object: &AnyObject) -> Option<String> {
    match object {
        AnyObject::Container(c) => {
            Some(format!("{}/{}", c.status.as_ref().map_or(0, |s| s.ready_replicas), c.spec.replicas.unwrap_or(1)))
        }
        _ => None,
    }
}

/// kubectl's age: `45s`, `12m`, `5h`, `3d`.
pub fn age(time: Option<DateTime<Utc>>) -> String {
    let Some(time) = time else { return "-".into() };
    let seconds = (Utc::now() - time).num_seconds().max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// An object's readiness: whether Ready is True for its current
/// generation, and the condition's reason and message.
pub struct Readiness {
    /// Ready=True, observed at the current generation.
    pub ready: bool,
    /// `True`, `False`, `Unknown`, `Deleting` or `Suspended`.
    pub status: String,
    /// The condition's reason.
    pub reason: String,
    /// The condition's message.
    pub message: String,
}

/// The readiness of `object`.
pub fn readiness(object: &AnyObject) -> Readiness {
    let generation = object.metadata().generation.unwrap_or(0);
    let common = object.status_common();
    let condition = common.and_then(|c| c.condition("Ready"));
    let observed = common.is_some_and(|c| c.observed_generation >= generation);
    let deleting = object.metadata().deletion_timestamp.is_some();
    if let Some(why) = super::overrides::suspended(object.metadata()).filter(|_| !deleting) {
        return Readiness {
            ready: false,
            status: "Suspended".into(),
            reason: "Suspended".into(),
            message: format!("suspended {why}"),
        };
    }
    match condition {
        Some(c) if object.metadata().deletion_timestamp.is_some() => Readiness {
            ready: false,
            status: "Deleting".into(),
            reason: c.reason.clone(),
            message: "being deleted".into(),
        },
        Some(c) => Readiness {
            ready: c.status == ConditionStatus::True && observed,
            status: if observed { format!("{:?}", c.status) } else { "Unknown".into() },
            reason: if observed { c.reason.clone() } else { "Reconciling".into() },
            message: c.message.clone(),
        },
        None => Readiness {
            ready: false,
            status: "Unknown".into(),
            reason: "Pending".into(),
            message: "not reconciled yet".into(),
        },
    }
}
