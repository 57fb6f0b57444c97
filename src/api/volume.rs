//! `Volume`: a named engine volume whose data outlives its containers.
//!
//! Data safety comes first: by default deleting a Volume's manifest removes
//! the object from berth but keeps the engine volume and its data
//! (`reclaimPolicy: Retain`); only `Delete` removes the data.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::validation::{FieldErrors, FieldPath};
use super::{CommonStatus, Kind, Spec};

/// Desired state of a Volume.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeSpec {
    /// Volume driver. Default `local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Driver options, e.g. `type: nfs`, `o: addr=10.0.0.2`, `device: :/export`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    /// What happens to the data when the Volume is deleted: `Retain` (default)
    /// keeps the engine volume, `Delete` removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reclaim_policy: Option<ReclaimPolicy>,
}

/// Fate of a Volume's data on deletion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ReclaimPolicy {
    /// Keep the engine volume and its data.
    Retain,
    /// Remove the engine volume and its data.
    Delete,
}

/// Observed state of a Volume.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeStatus {
    /// Conditions and observed generation.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// Name of the engine volume.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub engine_name: String,
    /// Where the engine keeps the data on the host.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mountpoint: String,
}

impl Spec for VolumeSpec {
    const KIND: Kind = Kind::Volume;
    type Status = VolumeStatus;

    fn validate(&self, spec: &FieldPath, errors: &mut FieldErrors) {
        if let Some(driver) = self.driver.as_deref().filter(|d| d.trim().is_empty()) {
            errors.push(&spec.key("driver"), format!("driver `{driver}` must not be blank; omit it for `local`"));
        }
    }

    fn status_common(status: &Self::Status) -> &CommonStatus {
        &status.common
    }
}
