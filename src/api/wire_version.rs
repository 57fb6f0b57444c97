//! `resourceVersion` on the wire: a string, as every Kubernetes client
//! requires (client-go, kubectl edit and the Python client refuse a number),
//! while berth keeps it as the store's counter. Numbers are still accepted,
//! from berth's own older clients and from databases written before.

use serde::de::{self, Deserializer, Visitor};
use serde::Serializer;

struct VersionVisitor;

impl Visitor<'_> for VersionVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a resourceVersion: a string of digits such as \"42\"")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::custom(format!("resourceVersion {v} is negative; send the one berth answered")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        v.parse().map_err(|_| {
            let shown: String = v.chars().take(40).collect();
            E::custom(format!("resourceVersion \"{shown}\" is not a version berth gave out; send the one it answered"))
        })
    }
}

/// For `u64` fields.
pub(crate) mod required {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(version: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(version)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        deserializer.deserialize_any(VersionVisitor)
    }
}

/// For `Option<u64>` fields (with `default` and `skip_serializing_if`).
pub(crate) mod optional {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(version: &Option<u64>, serializer: S) -> Result<S::Ok, S::Error> {
        match version {
            Some(v) => serializer.collect_str(v),
            None => serializer.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
        struct OptionalVisitor;
        impl<'de> Visitor<'de> for OptionalVisitor {
            type Value = Option<u64>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                VersionVisitor.expecting(f)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_any(VersionVisitor).map(Some)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                VersionVisitor.visit_u64(v).map(Some)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                VersionVisitor.visit_i64(v).map(Some)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                VersionVisitor.visit_str(v).map(Some)
            }
        }
        deserializer.deserialize_option(OptionalVisitor)
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Meta {
        #[serde(default, with = "super::optional", skip_serializing_if = "Option::is_none")]
        v: Option<u64>,
    }

    #[test]
    fn versions_go_out_as_strings_and_come_in_as_either() {
        assert_eq!(serde_json::to_string(&Meta { v: Some(26) }).unwrap(), r#"{"v":"26"}"#);
        assert_eq!(serde_json::from_str::<Meta>(r#"{"v":"26"}"#).unwrap(), Meta { v: Some(26) });
        assert_eq!(serde_json::from_str::<Meta>(r#"{"v":26}"#).unwrap(), Meta { v: Some(26) });
        assert_eq!(serde_json::from_str::<Meta>(r#"{}"#).unwrap(), Meta { v: None });
        assert_eq!(serde_yaml::from_str::<Meta>("v: '7'").unwrap(), Meta { v: Some(7) });
        assert_eq!(serde_yaml::from_str::<Meta>("v: 7").unwrap(), Meta { v: Some(7) });
        let error = serde_json::from_str::<Meta>(r#"{"v":"abc"}"#).unwrap_err().to_string();
        assert!(error.contains("is not a version berth gave out"), "{error}");
        assert!(serde_json::from_str::<Meta>(r#"{"v":-3}"#).is_err());
    }
}
