//! The Kubernetes `meta.k8s.io` Table of a list, an object or a watch
//! event: the columns of [`crate::api::columns`] (wide-only columns at
//! priority 1, as `-o wide` expects), each row with the object's metadata
//! (`includeObject=Metadata`, the default), the whole object (`Object`) or
//! nothing (`None`).

use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::columns::{cells, columns};
use crate::api::{AnyObject, Kind};

/// `includeObject` of a Table request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
pub enum IncludeObject {
    /// No object in the rows.
    None,
    /// The object's metadata, as `PartialObjectMetadata` (the default).
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

/// The Table of `objects` of `kind`.
pub fn table(
    version: &str,
    kind: Kind,
    objects: &[AnyObject],
    resource_version: Option<u64>,
    include: IncludeObject,
) -> Value {
    let definitions: Vec<Value> = columns(kind)
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut name: String = c.name.chars().take(1).collect();
            name.push_str(&c.name[1..].to_ascii_lowercase());
            json!({
                "name": name,
                "type": c.kind,
                "format": if i == 0 { "name" } else { "" },
                "description": c.description,
                "priority": u8::from(c.wide),
            })
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let mut row = json!({ "cells": cells(object) });
            match include {
                IncludeObject::None => {}
                IncludeObject::Metadata => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": format!("meta.k8s.io/{version}"),
                        "metadata": object.metadata(),
                    });
                }
                IncludeObject::Object => row["object"] = json!(object),
            }
            row
        })
        .collect();
    let mut metadata = json!({});
    if let Some(version) = resource_version {
        metadata["resourceVersion"] = version.to_string().into();
    }
    json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": metadata,
        "columnDefinitions": definitions,
        "rows": rows,
    })
}
