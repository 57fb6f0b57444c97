//! DnsRecord and Route: accepted and stored, not served yet.
//!
//! berth's DNS server and HTTP proxy come in later work. Until then these
//! objects say so in their status (`Ready=False`, reason `NotServed`)
//! rather than claiming to work, and their deletion completes at once.

use serde::de::DeserializeOwned;

use crate::api::{CommonStatus, Object, ObjectKey, Spec};

use super::action::{Action, ReconcileError};
use super::context::{Conditions, Context};

/// Writes the not-served status, or finishes a deletion.
pub fn reconcile<S>(
    ctx: &Context,
    key: &ObjectKey,
    desired: Option<Object<S>>,
    server: &str,
) -> Result<Action, ReconcileError>
where
    S: Spec,
    S::Status: DeserializeOwned,
{
    let Some(object) = desired.as_ref().filter(|o| o.metadata.deletion_timestamp.is_none()) else {
        if let Some(deleted) = &desired {
            ctx.finish_deletion(&deleted.metadata, key)?;
        }
        return Ok(Action::await_change());
    };
    let object = object.clone();
    let common: CommonStatus = Conditions::from(&object)
        .ready(false, "NotServed", format!("stored; this build of berth has no {server} yet"), false)
        .build();
    let mut status = serde_json::to_value(object.status.clone().unwrap_or_default())
        .map_err(|e| ReconcileError::Transient(e.into()))?;
    let common = serde_json::to_value(common).map_err(|e| ReconcileError::Transient(e.into()))?;
    if let (Some(status), Some(common)) = (status.as_object_mut(), common.as_object()) {
        status.extend(common.clone());
    }
    let status: S::Status = serde_json::from_value(status).map_err(|e| ReconcileError::Transient(e.into()))?;
    ctx.write_status(&object, status)?;
    Ok(Action::await_change())
}
