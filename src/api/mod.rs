//! The resource model: six kinds under `berth.dev/v1alpha1`.
//!
//! Every kind is an [`Object`] of its spec type: `apiVersion`, `kind`,
//! [`ObjectMeta`], `spec` and an optional server-written `status`. The
//! [`Spec`] trait is what the rest of berth needs from a kind (its
//! [`Kind`], its status type, its validation), so the manifest loader, the
//! store and the CRD generator are written once for all kinds. [`AnyObject`]
//! holds an object of any kind where they travel together (a manifest set, a
//! store transaction).

pub mod columns;
pub mod container;
pub mod defaults;
pub mod dns_record;
pub mod image;
pub mod managed_fields;
pub mod meta;
pub mod network;
pub mod overrides;
pub mod quantity;
pub mod route;
pub mod selector;
pub mod validation;
pub mod volume;
pub(crate) mod wire_version;

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use container::{ContainerSpec, ContainerStatus};
pub use dns_record::{DnsRecordSpec, DnsRecordStatus, RecordType};
pub use image::{ImageSpec, ImageStatus};
pub use meta::{CommonStatus, Condition, ConditionStatus, LabelSelector, ObjectMeta, Source, SourceKind};
pub use network::{NetworkSpec, NetworkStatus};
pub use quantity::{ByteQuantity, CpuQuantity, DurationSpec, HostPort};
pub use route::{RouteSpec, RouteStatus};
pub use selector::Selector;
pub use validation::{FieldError, FieldErrors, FieldPath};
pub use volume::{VolumeSpec, VolumeStatus};

/// API group of every berth kind.
pub const GROUP: &str = "berth.dev";
/// API version of every berth kind.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` value of every berth object.
pub const API_VERSION: &str = "berth.dev/v1alpha1";
/// Label prefix berth reserves for the labels it puts on engine objects.
pub const RESERVED_LABEL_PREFIX: &str = "berth.dev/";

/// The kinds berth knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Kind {
    /// One or more engine containers.
    Container,
    /// An engine volume.
    Volume,
    /// An engine network.
    Network,
    /// A built or pulled image.
    Image,
    /// Records in berth's DNS server.
    DnsRecord,
    /// Rules in berth's HTTP proxy.
    Route,
}

impl Kind {
    /// Every kind, in the order a host is best brought up: what containers
    /// need comes before them, what serves them after.
    pub const ALL: [Kind; 6] =
        [Kind::Network, Kind::Volume, Kind::Image, Kind::Container, Kind::DnsRecord, Kind::Route];

    /// The `kind` value in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Container => "Container",
            Kind::Volume => "Volume",
            Kind::Network => "Network",
            Kind::Image => "Image",
            Kind::DnsRecord => "DnsRecord",
            Kind::Route => "Route",
        }
    }

    /// The lowercase plural used in REST paths and CRD names.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Container => "containers",
            Kind::Volume => "volumes",
            Kind::Network => "networks",
            Kind::Image => "images",
            Kind::DnsRecord => "dnsrecords",
            Kind::Route => "routes",
        }
    }

    /// Short names accepted on the command line, as `kubectl` does.
    pub fn short_names(self) -> &'static [&'static str] {
        match self {
            Kind::Container => &["ctr"],
            Kind::Volume => &["vol"],
            Kind::Network => &["net"],
            Kind::Image => &["img"],
            Kind::DnsRecord => &["dns"],
            Kind::Route => &["rt"],
        }
    }

    /// The kinds as a human list: `Container, Volume, ...`.
    pub fn known_list() -> String {
        Kind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error of [`Kind::from_str`]: names the known kinds.
#[derive(Debug, thiserror::Error)]
#[error("unknown kind `{0}`; known kinds are {known}", known = Kind::known_list())]
pub struct UnknownKind(pub String);

impl FromStr for Kind {
    type Err = UnknownKind;

    /// Accepts the kind (`Container`), any case, the plural and short names.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let lower = text.to_ascii_lowercase();
        Kind::ALL
            .into_iter()
            .find(|k| {
                k.as_str().eq_ignore_ascii_case(&lower)
                    || k.plural() == lower
                    || k.short_names().contains(&lower.as_str())
            })
            .ok_or_else(|| UnknownKind(text.to_string()))
    }
}

/// What berth needs from the spec type of a kind.
pub trait Spec:
    Clone + fmt::Debug + PartialEq + Serialize + DeserializeOwned + JsonSchema + Send + Sync + 'static
{
    /// The kind this spec belongs to.
    const KIND: Kind;
    /// The kind's status type.
    type Status: Clone
        + fmt::Debug
        + Default
        + PartialEq
        + Serialize
        + DeserializeOwned
        + JsonSchema
        + Send
        + Sync
        + 'static;

    /// Pushes every problem of the spec (found at path `spec`) into `errors`.
    /// References to other objects are checked for shape only: an object
    /// referred to may be declared later.
    fn validate(&self, spec: &FieldPath, errors: &mut FieldErrors);

    /// The conditions part of a status.
    fn status_common(status: &Self::Status) -> &CommonStatus;
}

/// An object of one kind, as written in a manifest and kept in the store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, bound = "")]
#[schemars(bound = "S: Spec")]
pub struct Object<S: Spec> {
    /// Always `berth.dev/v1alpha1`.
    pub api_version: String,
    /// The kind's name, e.g. `Container`.
    pub kind: String,
    /// Name, namespace, labels and server-set bookkeeping.
    pub metadata: ObjectMeta,
    /// Desired state.
    pub spec: S,
    /// Observed state, written by berth; ignored in manifests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<S::Status>,
}

/// A Container object.
pub type Container = Object<ContainerSpec>;
/// A Volume object.
pub type Volume = Object<VolumeSpec>;
/// A Network object.
pub type Network = Object<NetworkSpec>;
/// An Image object.
pub type Image = Object<ImageSpec>;
/// A DnsRecord object.
pub type DnsRecord = Object<DnsRecordSpec>;
/// A Route object.
pub type Route = Object<RouteSpec>;

impl<S: Spec> Object<S> {
    /// A new object with the given name in the default namespace.
    pub fn new(name: &str, spec: S) -> Self {
        Object {
            api_version: API_VERSION.to_string(),
            kind: S::KIND.as_str().to_string(),
            metadata: ObjectMeta { name: name.to_string(), ..ObjectMeta::default() },
            spec,
            status: None,
        }
    }

    /// Every problem with the object's metadata and spec.
    pub fn validate(&self) -> FieldErrors {
        let mut errors = FieldErrors::default();
        let meta = FieldPath::root().key("metadata");
        errors.dns_label(&meta.key("name"), &self.metadata.name, "name");
        if let Some(namespace) = &self.metadata.namespace {
            errors.dns_label(&meta.key("namespace"), namespace, "namespace");
        }
        errors.labels(&meta.key("labels"), &self.metadata.labels);
        overrides::validate(&meta.key("annotations"), &self.metadata, &mut errors);
        self.spec.validate(&FieldPath::root().key("spec"), &mut errors);
        errors
    }

    /// The object's store key.
    pub fn key(&self) -> ObjectKey {
        ObjectKey::new(S::KIND, self.metadata.namespace(), &self.metadata.name)
    }

    /// Orders objects oldest first (creation time, then key), as claims on
    /// shared names (DNS names, route matches) are settled.
    pub fn age_key(&self) -> (Option<chrono::DateTime<chrono::Utc>>, ObjectKey) {
        (self.metadata.creation_timestamp, self.key())
    }
}

/// Identity of an object: kind, namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectKey {
    /// The kind.
    pub kind: Kind,
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
}

impl ObjectKey {
    /// A key from its parts.
    pub fn new(kind: Kind, namespace: &str, name: &str) -> Self {
        ObjectKey { kind, namespace: namespace.to_string(), name: name.to_string() }
    }

    /// Parses `Kind/namespace/name`, the form keys print in.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.splitn(3, '/');
        let kind = parts.next()?.parse().ok()?;
        Some(ObjectKey::new(kind, parts.next()?, parts.next()?))
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

/// An object of any kind.
// Variants differ in size (a Container spec is the largest), but objects are
// few, long-lived and matched everywhere; boxing would buy nothing measurable
// and cost a deref in every match.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum AnyObject {
    /// A Container.
    Container(Container),
    /// A Volume.
    Volume(Volume),
    /// A Network.
    Network(Network),
    /// An Image.
    Image(Image),
    /// A DnsRecord.
    DnsRecord(DnsRecord),
    /// A Route.
    Route(Route),
}

/// Runs `$body` with `$object` bound to the typed object inside an [`AnyObject`].
macro_rules! with_object {
    ($any:expr, $object:ident => $body:expr) => {
        match $any {
            AnyObject::Container($object) => $body,
            AnyObject::Volume($object) => $body,
            AnyObject::Network($object) => $body,
            AnyObject::Image($object) => $body,
            AnyObject::DnsRecord($object) => $body,
            AnyObject::Route($object) => $body,
        }
    };
}

/// Wraps typed objects into [`AnyObject`].
pub trait IntoAny {
    /// The object as an [`AnyObject`].
    fn into_any(self) -> AnyObject;
}

macro_rules! into_any {
    ($($variant:ident),*) => {$(
        impl IntoAny for $variant {
            fn into_any(self) -> AnyObject {
                AnyObject::$variant(self)
            }
        }
    )*};
}
into_any!(Container, Volume, Network, Image, DnsRecord, Route);

impl AnyObject {
    /// The object's kind.
    pub fn kind(&self) -> Kind {
        match self {
            AnyObject::Container(_) => Kind::Container,
            AnyObject::Volume(_) => Kind::Volume,
            AnyObject::Network(_) => Kind::Network,
            AnyObject::Image(_) => Kind::Image,
            AnyObject::DnsRecord(_) => Kind::DnsRecord,
            AnyObject::Route(_) => Kind::Route,
        }
    }

    /// The object's metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        with_object!(self, o => &o.metadata)
    }

    /// The object's metadata, for changing.
    pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
        with_object!(self, o => &mut o.metadata)
    }

    /// The object's store key.
    pub fn key(&self) -> ObjectKey {
        with_object!(self, o => o.key())
    }

    /// Every problem with the object.
    pub fn validate(&self) -> FieldErrors {
        with_object!(self, o => o.validate())
    }

    /// The spec as JSON, for comparisons and hashing.
    pub fn spec_json(&self) -> serde_json::Value {
        with_object!(self, o => serde_json::to_value(&o.spec).expect("specs serialize to JSON"))
    }

    /// Whether the two objects have the same kind and spec.
    pub fn same_spec(&self, other: &AnyObject) -> bool {
        self.kind() == other.kind() && self.spec_json() == other.spec_json()
    }

    /// The status conditions, if a status was written.
    pub fn status_common(&self) -> Option<&CommonStatus> {
        fn common<S: Spec>(o: &Object<S>) -> Option<&CommonStatus> {
            o.status.as_ref().map(S::status_common)
        }
        with_object!(self, o => common(o))
    }

    /// Drops the status (manifests and API writes never set it).
    pub fn clear_status(&mut self) {
        with_object!(self, o => o.status = None)
    }

    /// The object as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("objects serialize to JSON")
    }

    /// An object from JSON, dispatching on its `kind`.
    pub fn from_json(value: serde_json::Value) -> Result<Self, serde_json::Error> {
        use serde::de::Error;
        let kind = value.get("kind").and_then(|k| k.as_str()).unwrap_or_default();
        let kind: Kind = kind.parse().map_err(serde_json::Error::custom)?;
        Ok(match kind {
            Kind::Container => AnyObject::Container(serde_json::from_value(value)?),
            Kind::Volume => AnyObject::Volume(serde_json::from_value(value)?),
            Kind::Network => AnyObject::Network(serde_json::from_value(value)?),
            Kind::Image => AnyObject::Image(serde_json::from_value(value)?),
            Kind::DnsRecord => AnyObject::DnsRecord(serde_json::from_value(value)?),
            Kind::Route => AnyObject::Route(serde_json::from_value(value)?),
        })
    }
}

impl Serialize for AnyObject {
    fn serialize<Ser: serde::Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
        with_object!(self, o => o.serialize(serializer))
    }
}

impl<'de> Deserialize<'de> for AnyObject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        AnyObject::from_json(value).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for AnyObject {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "AnyObject".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "An object of any kind, told apart by `kind`.",
            "oneOf": [
                generator.subschema_for::<Container>(),
                generator.subschema_for::<Volume>(),
                generator.subschema_for::<Network>(),
                generator.subschema_for::<Image>(),
                generator.subschema_for::<DnsRecord>(),
                generator.subschema_for::<Route>(),
            ]
        })
    }
}

/// A list of objects, as the API returns it.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectList {
    /// Always `berth.dev/v1alpha1`.
    pub api_version: String,
    /// `ContainerList`, …, or `List` when kinds are mixed.
    pub kind: String,
    /// The store's resourceVersion at the time of the list: watch from it.
    pub metadata: ListMeta,
    /// The objects, ordered by kind, namespace and name.
    pub items: Vec<AnyObject>,
}

/// Metadata of a list.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListMeta {
    /// The store's resourceVersion when the list was read.
    #[serde(with = "wire_version::required")]
    #[schemars(with = "String")]
    pub resource_version: u64,
    /// When the list is one page of several (`limit`): the token that reads
    /// the next (`continue=`).
    #[serde(default, rename = "continue", skip_serializing_if = "Option::is_none")]
    pub continue_token: Option<String>,
    /// With `continue`: how many objects the following pages hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_item_count: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_from_names_plurals_and_short_names() {
        assert_eq!("Container".parse::<Kind>().unwrap(), Kind::Container);
        assert_eq!("dnsrecords".parse::<Kind>().unwrap(), Kind::DnsRecord);
        assert_eq!("net".parse::<Kind>().unwrap(), Kind::Network);
        let err = "Pod".parse::<Kind>().unwrap_err().to_string();
        assert!(err.contains("known kinds are Network, Volume, Image, Container, DnsRecord, Route"), "{err}");
    }

    #[test]
    fn any_object_round_trips_through_json() {
        let volume = Volume::new("data", VolumeSpec::default()).into_any();
        let back = AnyObject::from_json(volume.to_json()).unwrap();
        assert_eq!(back, volume);
        assert_eq!(back.key().to_string(), "Volume/default/data");
        assert_eq!(ObjectKey::parse("Volume/default/data"), Some(back.key()));
    }
}
