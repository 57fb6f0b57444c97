//! Ownership labels on every engine object berth creates, and the spec hash.
//!
//! Labels are how berth finds what it made after a restart or a crash, with
//! nothing else remembered: a container is berth's if it carries
//! `berth.dev/managed-by=berth`, and this controller's if its
//! `berth.dev/instance` matches. berth never touches an object without its
//! own instance label. The owning object is named by kind, namespace and
//! name labels; `berth.dev/spec-hash` says which spec an object was made
//! from, so only replicas whose hash changed are recreated.

use sha2::{Digest, Sha256};

use crate::api::{Kind, ObjectKey};

use super::Labels;

/// `berth` on everything berth manages.
pub const MANAGED_BY: &str = "berth.dev/managed-by";
/// The controller instance that owns the object.
pub const INSTANCE: &str = "berth.dev/instance";
/// Kind of the owning object.
pub const KIND: &str = "berth.dev/kind";
/// Namespace of the owning object.
pub const NAMESPACE: &str = "berth.dev/namespace";
/// Name of the owning object.
pub const NAME: &str = "berth.dev/name";
/// Replica index of a container.
pub const REPLICA: &str = "berth.dev/replica";
/// SHA-256 of what the object was made from.
pub const SPEC_HASH: &str = "berth.dev/spec-hash";
/// Version of the hashing scheme: a change of scheme must not read as a
/// change of every spec.
pub const HASH_VERSION: &str = "berth.dev/hash-version";
/// The hashed spec itself (canonical JSON), so that a recreate can say which
/// fields changed.
pub const SPEC: &str = "berth.dev/spec";
/// Current hashing scheme.
pub const CURRENT_HASH_VERSION: &str = "1";

/// The labels that mark an object as owned by `object` under `instance`.
pub fn owner_labels(instance: &str, object: &ObjectKey) -> Labels {
    let mut labels = instance_labels(instance);
    labels.insert(KIND.into(), object.kind.as_str().into());
    labels.insert(NAMESPACE.into(), object.namespace.clone());
    labels.insert(NAME.into(), object.name.clone());
    labels
}

/// The labels every object of `instance` carries: the filter for "ours".
pub fn instance_labels(instance: &str) -> Labels {
    Labels::from([(MANAGED_BY.into(), "berth".into()), (INSTANCE.into(), instance.into())])
}

/// The owning object named by an engine object's labels, if it is ours.
pub fn owner_of(labels: &Labels, instance: &str) -> Option<ObjectKey> {
    if labels.get(MANAGED_BY).map(String::as_str) != Some("berth")
        || labels.get(INSTANCE).map(String::as_str) != Some(instance)
    {
        return None;
    }
    let kind: Kind = labels.get(KIND)?.parse().ok()?;
    Some(ObjectKey::new(kind, labels.get(NAMESPACE)?, labels.get(NAME)?))
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex HMAC-SHA256 of `bytes` under `key`: how secret values enter a spec
/// hash, so a label read by `docker inspect` cannot confirm a guessed secret
/// without the state directory's key.
pub fn keyed_hash_hex(key: &[u8], bytes: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(bytes);
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// The spec hash of a canonical JSON value (keys in a fixed order, as our
/// serializers write them).
pub fn spec_hash(canonical: &serde_json::Value) -> String {
    sha256_hex(canonical.to_string().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_round_trips_through_labels_and_other_instances_are_not_ours() {
        let key = ObjectKey::new(Kind::Container, "default", "web");
        let labels = owner_labels("abc", &key);
        assert_eq!(owner_of(&labels, "abc"), Some(key));
        assert_eq!(owner_of(&labels, "other"), None);
        assert_eq!(owner_of(&Labels::new(), "abc"), None);
    }
}
