//! Value types written as strings in manifests: byte sizes (`512Mi`), CPU
//! counts (`"0.5"`, `500m`), durations (`10s`) and host ports (`8080` or
//! `auto`).
//!
//! Each keeps the text the user wrote, so that a manifest read back prints as
//! it was written and the spec hash does not change with our formatting, and
//! parses it on demand. Parsing errors are reported by validation (with the
//! field's position) rather than by serde, so that one bad quantity does not
//! hide the other errors of the document.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// Schema of a field that holds an integer or a string, in the form
/// Kubernetes' structural schemas accept.
fn int_or_string_schema(description: &str) -> Schema {
    json_schema!({
        "x-kubernetes-int-or-string": true,
        "anyOf": [{ "type": "integer" }, { "type": "string" }],
        "description": description,
    })
}

/// Schema of a string field.
fn string_schema(description: &str) -> Schema {
    json_schema!({ "type": "string", "description": description })
}

/// Accepts a YAML integer, float or string and keeps it as text.
fn scalar_as_text<'de, D: Deserializer<'de>>(deserializer: D, expecting: &'static str) -> Result<String, D::Error> {
    struct TextVisitor(&'static str);
    impl de::Visitor<'_> for TextVisitor {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(self.0)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    deserializer.deserialize_any(TextVisitor(expecting))
}

/// Serde and schema plumbing of a newtype that keeps the user's text:
/// `$expecting` is serde's "expected …" phrase, `$schema` builds the
/// schema from `$description`.
macro_rules! text_newtype {
    ($name:ident, $expecting:literal, $schema:ident, $description:literal) => {
        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                $schema($description)
            }
        }
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                scalar_as_text(d, $expecting).map($name)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_string())
            }
        }
    };
}

/// A size in bytes: a plain number of bytes, or a number with a binary
/// (`Ki`, `Mi`, `Gi`, `Ti`) or decimal (`k`, `M`, `G`, `T`) suffix, as in
/// Kubernetes: `512Mi`, `1G`, `1048576`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ByteQuantity(pub String);
text_newtype!(
    ByteQuantity,
    "a byte size such as 512Mi, 1G or 1048576",
    int_or_string_schema,
    "A size in bytes, e.g. `512Mi`, `1G` or `1048576`."
);

impl ByteQuantity {
    /// The size in bytes, or what is wrong with the text.
    pub fn bytes(&self) -> Result<u64, String> {
        let text = self.0.trim();
        let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
        let (number, suffix) = text.split_at(split);
        let multiplier: u64 = match suffix {
            "" => 1,
            "k" | "K" => 1_000,
            "M" => 1_000_000,
            "G" => 1_000_000_000,
            "T" => 1_000_000_000_000,
            "Ki" => 1 << 10,
            "Mi" => 1 << 20,
            "Gi" => 1 << 30,
            "Ti" => 1 << 40,
            _ => {
                return Err(format!(
                    "`{text}` has an unknown unit `{suffix}`; use Ki, Mi, Gi, Ti, k, M, G, T or none (bytes)"
                ))
            }
        };
        let value: f64 = number
            .parse()
            .map_err(|_| format!("`{text}` is not a size; write a number with an optional unit, e.g. 512Mi"))?;
        let bytes = value * multiplier as f64;
        if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
            return Err(format!("`{text}` is out of range; use at least 1 byte"));
        }
        Ok(bytes as u64)
    }
}

/// A number of CPUs: `"0.5"`, `2`, or millicores `500m`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuQuantity(pub String);
text_newtype!(
    CpuQuantity,
    "a CPU count such as \"0.5\", 2 or 500m",
    int_or_string_schema,
    "A number of CPUs, e.g. `\"0.5\"`, `2` or `500m`."
);

impl CpuQuantity {
    /// The amount in billionths of a CPU, as engines take it.
    pub fn nano_cpus(&self) -> Result<u64, String> {
        let text = self.0.trim();
        let (number, scale) = match text.strip_suffix('m') {
            Some(milli) => (milli, 1_000_000.0),
            None => (text, 1_000_000_000.0),
        };
        let value: f64 =
            number.parse().map_err(|_| format!("`{text}` is not a CPU count; write e.g. \"0.5\", 2 or 500m"))?;
        let nanos = value * scale;
        if !(1_000_000.0..=1e12).contains(&nanos) {
            return Err(format!("`{text}` is out of range; use between 0.001 and 1000 CPUs"));
        }
        Ok(nanos as u64)
    }
}

/// A duration such as `10s`, `1m30s`, `500ms` or `2h`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurationSpec(pub String);
text_newtype!(
    DurationSpec,
    "a duration such as 10s, 1m30s or 500ms",
    string_schema,
    "A duration, e.g. `10s`, `1m30s` or `500ms`."
);

impl DurationSpec {
    /// The parsed duration, or what is wrong with the text.
    pub fn duration(&self) -> Result<Duration, String> {
        let text = self.0.trim();
        if text.chars().all(|c| c.is_ascii_digit()) && !text.is_empty() {
            return Err(format!("`{text}` has no unit; write e.g. {text}s or {text}ms"));
        }
        humantime::parse_duration(text)
            .map_err(|e| format!("`{text}` is not a duration ({e}); write e.g. 10s, 1m30s or 500ms"))
    }
}

/// The host side of a published port: a port number, or `auto` to let the
/// engine pick a free one (shown in the Container's status).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostPort {
    /// A fixed port; validated to 1-65535.
    Fixed(i64),
    /// Any free port.
    Auto,
}

impl Serialize for HostPort {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            HostPort::Fixed(port) => s.serialize_i64(*port),
            HostPort::Auto => s.serialize_str("auto"),
        }
    }
}

impl<'de> Deserialize<'de> for HostPort {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct HostPortVisitor;
        impl de::Visitor<'_> for HostPortVisitor {
            type Value = HostPort;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a port number (1-65535) or `auto`")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<HostPort, E> {
                Ok(HostPort::Fixed(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<HostPort, E> {
                Ok(HostPort::Fixed(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HostPort, E> {
                match v {
                    "auto" => Ok(HostPort::Auto),
                    other => other
                        .parse()
                        .map(HostPort::Fixed)
                        .map_err(|_| E::invalid_value(de::Unexpected::Str(other), &self)),
                }
            }
        }
        d.deserialize_any(HostPortVisitor)
    }
}

impl JsonSchema for HostPort {
    fn schema_name() -> Cow<'static, str> {
        "HostPort".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        int_or_string_schema("A host port (1-65535), or `auto` for any free port.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_quantities_parse_binary_and_decimal_units() {
        assert_eq!(ByteQuantity::from("512Mi").bytes(), Ok(512 << 20));
        assert_eq!(ByteQuantity::from("1G").bytes(), Ok(1_000_000_000));
        assert_eq!(ByteQuantity::from("1.5Ki").bytes(), Ok(1536));
        assert_eq!(ByteQuantity::from("4096").bytes(), Ok(4096));
        assert!(ByteQuantity::from("12MB").bytes().unwrap_err().contains("unknown unit `MB`"));
        assert!(ByteQuantity::from("0").bytes().is_err());
        assert!(ByteQuantity::from("lots").bytes().is_err());
    }

    #[test]
    fn cpu_quantities_accept_fractions_and_millicores() {
        assert_eq!(CpuQuantity::from("0.5").nano_cpus(), Ok(500_000_000));
        assert_eq!(CpuQuantity::from("250m").nano_cpus(), Ok(250_000_000));
        assert_eq!(CpuQuantity::from("2").nano_cpus(), Ok(2_000_000_000));
        assert!(CpuQuantity::from("-1").nano_cpus().is_err());
        assert!(CpuQuantity::from("half").nano_cpus().is_err());
    }

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(DurationSpec::from("1m30s").duration(), Ok(Duration::from_secs(90)));
        assert_eq!(DurationSpec::from("500ms").duration(), Ok(Duration::from_millis(500)));
        assert!(DurationSpec::from("10").duration().unwrap_err().contains("no unit"));
        assert!(DurationSpec::from("ten seconds").duration().is_err());
    }

    #[test]
    fn host_port_reads_numbers_and_auto() {
        let ports: Vec<HostPort> = serde_yaml::from_str("[8080, auto, \"9090\"]").unwrap();
        assert_eq!(ports, vec![HostPort::Fixed(8080), HostPort::Auto, HostPort::Fixed(9090)]);
        assert!(serde_yaml::from_str::<HostPort>("any").is_err());
    }
}
