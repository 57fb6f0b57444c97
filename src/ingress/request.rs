//! A message's payload, decoded into what it asks: manifests to apply or
//! plan, or one object to delete, read or report on.
//!
//! Two forms, one meaning. Text (YAML or JSON) is the argument of the verb
//! the channel names: the manifests themselves for `apply` and `plan`
//! (what `berth apply -f` reads), `{kind, namespace, name}` for `delete`,
//! `get` and `status`. A protobuf [`proto::Request`] names its verb and
//! options itself. Either way the result is a [`Request`] the executor
//! runs; what cannot be decoded is a 400 naming the channel, line and
//! column.

use serde::Deserialize;

use crate::api::validation::check_dns_label;
use crate::api::{Kind, ObjectKey};
use crate::server::ApiError;

use super::message::{ApplyOptions, Verb};
use super::proto;

/// A decoded request.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Request {
    /// What is asked.
    pub verb: Verb,
    /// The sender's id of the request, if it gave one.
    pub id: Option<String>,
    /// Its argument.
    pub body: Body,
}

/// The argument of a request.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Body {
    /// Manifest text, for `apply` and `plan`.
    Manifest { text: String, options: ApplyOptions },
    /// One object; `None` (only for `status`): every object.
    Object(Option<ObjectKey>),
}

/// The payload's encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// YAML or JSON.
    Text,
    /// A protobuf `berth.ingress.v1.Request`.
    Protobuf,
}

impl Format {
    /// The format a media type names; `None` (text) when it names none.
    pub fn of(content_type: Option<&str>) -> Result<Format, ApiError> {
        let media = content_type.map(|t| t.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
        match media.as_deref() {
            None | Some("") => Ok(Format::Text),
            Some("application/x-protobuf" | "application/protobuf" | "application/vnd.google.protobuf") => {
                Ok(Format::Protobuf)
            }
            Some(
                "application/yaml"
                | "application/x-yaml"
                | "text/yaml"
                | "text/x-yaml"
                | "application/json"
                | "text/plain"
                | "application/octet-stream"
                | "application/vnd.berth.encrypted",
            ) => Ok(Format::Text),
            Some(other) => Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "content type `{other}` is not one berth reads; use application/yaml, application/json \
                     or application/x-protobuf"
                ),
            )),
        }
    }
}

/// `{kind, namespace, name}` as text payloads name an object.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ObjectArgument {
    kind: String,
    #[serde(default)]
    namespace: Option<String>,
    name: String,
}

/// Decodes a payload that arrived on `channel`, which names `verb` (if
/// it names one).
pub(crate) fn decode(
    payload: &[u8],
    format: Format,
    verb: Option<Verb>,
    options: &ApplyOptions,
    id: Option<String>,
    channel: &str,
) -> Result<Request, ApiError> {
    match format {
        Format::Protobuf => {
            let mut request = decode_protobuf(payload, verb, options, channel)?;
            // The Request's own id, else the channel's (a topic level, a queue header).
            request.id = request.id.or(id);
            Ok(request)
        }
        Format::Text => {
            let verb = verb.ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{channel}: a text payload here needs a verb; send a protobuf berth.ingress.v1.Request"
                ))
            })?;
            let text = utf8(payload, channel)?;
            let body = match verb {
                Verb::Apply | Verb::Plan => Body::Manifest { text, options: options.clone() },
                Verb::Status if text.trim().is_empty() => Body::Object(None),
                Verb::Delete | Verb::Get | Verb::Status => Body::Object(Some(object_argument(&text, channel)?)),
            };
            Ok(Request { verb, id, body })
        }
    }
}

fn utf8(payload: &[u8], channel: &str) -> Result<String, ApiError> {
    String::from_utf8(payload.to_vec()).map_err(|e| {
        ApiError::bad_request(format!(
            "{channel}: the payload is not UTF-8 text (invalid byte at offset {}); \
             send YAML or JSON, or say it is protobuf (application/x-protobuf)",
            e.utf8_error().valid_up_to()
        ))
    })
}

fn object_argument(text: &str, channel: &str) -> Result<ObjectKey, ApiError> {
    let argument: ObjectArgument = serde_yaml::from_str(text).map_err(|e| {
        let at = e.location().map(|l| format!(":{}:{}", l.line(), l.column())).unwrap_or_default();
        ApiError::bad_request(format!(
            "{channel}{at}: {e}; name the object as {{kind: Container, namespace: default, name: web}}"
        ))
    })?;
    object_key(&argument.kind, argument.namespace.as_deref().unwrap_or(""), &argument.name, channel)
}

/// The key of `kind/namespace/name`, each checked; an empty namespace is
/// `default`.
pub(crate) fn object_key(kind: &str, namespace: &str, name: &str, channel: &str) -> Result<ObjectKey, ApiError> {
    let kind: Kind = kind.parse().map_err(|e| ApiError::bad_request(format!("{channel}: {e}")))?;
    let namespace = if namespace.is_empty() { "default" } else { namespace };
    for (what, value) in [("namespace", namespace), ("name", name)] {
        check_dns_label(value).map_err(|why| {
            let shown: String = value.chars().take(80).collect();
            ApiError::bad_request(format!("{channel}: {what} `{shown}` is not a valid name: {why}"))
        })?;
    }
    Ok(ObjectKey::new(kind, namespace, name))
}

/// A protobuf request; the options the channel gives (a query string, user
/// properties, a queue header) add to the request's own: either may ask
/// for a dry run or force, and a source named by both must agree.
fn decode_protobuf(
    payload: &[u8],
    channel_verb: Option<Verb>,
    channel_options: &ApplyOptions,
    channel: &str,
) -> Result<Request, ApiError> {
    use prost::Message as _;
    let request = proto::Request::decode(payload)
        .map_err(|e| ApiError::bad_request(format!("{channel}: not a protobuf berth.ingress.v1.Request: {e}")))?;
    let id = (!request.id.is_empty()).then_some(request.id);
    let Some(verb) = request.verb else {
        return Err(ApiError::bad_request(format!(
            "{channel}: the protobuf Request names no verb; set one of apply, plan, delete, get, status"
        )));
    };
    let apply = |a: proto::Apply, dry_run: bool| -> Result<Body, ApiError> {
        let own = (!a.source.is_empty()).then_some(a.source);
        let source = match (own, channel_options.source.clone()) {
            (Some(own), Some(named)) if own != named => {
                return Err(ApiError::bad_request(format!(
                    "{channel}: the protobuf Request names source `{own}` and the channel `{named}`; name one"
                )))
            }
            (own, named) => own.or(named),
        };
        let options = ApplyOptions {
            dry_run: a.dry_run || dry_run || channel_options.dry_run,
            force: a.force || channel_options.force,
            source,
        };
        Ok(Body::Manifest { text: utf8(&a.manifest, channel)?, options })
    };
    let object = |o: proto::ObjectRef, all: bool| -> Result<Body, ApiError> {
        if all && o.kind.is_empty() && o.namespace.is_empty() && o.name.is_empty() {
            return Ok(Body::Object(None));
        }
        Ok(Body::Object(Some(object_key(&o.kind, &o.namespace, &o.name, channel)?)))
    };
    let (verb, body) = match verb {
        proto::request::Verb::Apply(a) => (Verb::Apply, apply(a, false)?),
        proto::request::Verb::Plan(a) => (Verb::Plan, apply(a, true)?),
        proto::request::Verb::Delete(o) => (Verb::Delete, object(o, false)?),
        proto::request::Verb::Get(o) => (Verb::Get, object(o, false)?),
        proto::request::Verb::Status(o) => (Verb::Status, object(o, true)?),
    };
    if let Some(named) = channel_verb {
        // `plan` is an apply with dryRun, so an apply channel takes it.
        let agrees = named == verb || (named == Verb::Apply && verb == Verb::Plan);
        if !agrees {
            return Err(ApiError::bad_request(format!(
                "{channel}: the channel is for `{named}`, the protobuf Request asks `{verb}`; \
                 send it where `{verb}` is asked"
            )));
        }
    }
    Ok(Request { verb, id, body })
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    fn text(payload: &str, verb: Verb) -> Result<Request, ApiError> {
        decode(payload.as_bytes(), Format::Text, Some(verb), &ApplyOptions::default(), None, "mqtt:t")
    }

    #[test]
    fn text_is_the_argument_of_the_channels_verb() {
        let request = text("kind: Container\nname: web\n", Verb::Delete).expect("decodes");
        assert_eq!(request.body, Body::Object(Some(ObjectKey::new(Kind::Container, "default", "web"))));
        let request = text("{\"kind\":\"routes\",\"namespace\":\"shop\",\"name\":\"front\"}", Verb::Get).expect("json");
        assert_eq!(request.body, Body::Object(Some(ObjectKey::new(Kind::Route, "shop", "front"))));
        assert_eq!(text("", Verb::Status).expect("all").body, Body::Object(None));
        let manifest = text("apiVersion: berth.dev/v1alpha1\n", Verb::Apply).expect("manifest");
        assert!(matches!(manifest.body, Body::Manifest { .. }));
    }

    #[test]
    fn a_bad_object_argument_says_where_and_how() {
        let error = text("kind: Container\nnmae: web\n", Verb::Get).expect_err("unknown field");
        assert!(error.message.starts_with("mqtt:t:2:1: unknown field `nmae`"), "{}", error.message);
        assert!(error.message.contains("{kind: Container, namespace: default, name: web}"), "{}", error.message);
        let error = text("kind: Pod\nname: web\n", Verb::Get).expect_err("unknown kind");
        assert!(error.message.contains("unknown kind `Pod`"), "{}", error.message);
        let error = text("kind: Container\nname: ../etc\n", Verb::Delete).expect_err("bad name");
        assert!(error.message.contains("name `../etc` is not a valid name"), "{}", error.message);
        let error = decode(&[0xff, 0xfe], Format::Text, Some(Verb::Apply), &ApplyOptions::default(), None, "c")
            .expect_err("not UTF-8");
        assert!(error.message.contains("not UTF-8"), "{}", error.message);
    }

    #[test]
    fn protobuf_names_its_verb_which_must_agree_with_the_channel() {
        let request = proto::Request {
            id: "r1".into(),
            verb: Some(proto::request::Verb::Plan(proto::Apply {
                manifest: b"kind: Container".to_vec(),
                force: true,
                ..Default::default()
            })),
        };
        let bytes = request.encode_to_vec();
        let decoded = decode(&bytes, Format::Protobuf, Some(Verb::Apply), &ApplyOptions::default(), None, "c")
            .expect("plan on an apply channel");
        assert_eq!(decoded.verb, Verb::Plan);
        assert_eq!(decoded.id.as_deref(), Some("r1"));
        let Body::Manifest { options, .. } = decoded.body else { panic!("a manifest") };
        assert!(options.dry_run && options.force);
        let error = decode(&bytes, Format::Protobuf, Some(Verb::Delete), &ApplyOptions::default(), None, "c")
            .expect_err("plan on a delete channel");
        assert!(error.message.contains("the channel is for `delete`"), "{}", error.message);
        let error =
            decode(b"\x0a\xff", Format::Protobuf, None, &ApplyOptions::default(), None, "c").expect_err("garbage");
        assert!(error.message.contains("not a protobuf berth.ingress.v1.Request"), "{}", error.message);
        let error = decode(b"", Format::Protobuf, None, &ApplyOptions::default(), None, "c").expect_err("no verb");
        assert!(error.message.contains("names no verb"), "{}", error.message);
    }

    #[test]
    fn the_channels_options_add_to_a_protobuf_requests_own() {
        let request = proto::Request {
            id: String::new(),
            verb: Some(proto::request::Verb::Apply(proto::Apply {
                manifest: b"kind: Container".to_vec(),
                source: "fleet".into(),
                ..Default::default()
            })),
        };
        let bytes = request.encode_to_vec();
        let channel = ApplyOptions { dry_run: true, force: false, source: None };
        let decoded = decode(&bytes, Format::Protobuf, Some(Verb::Apply), &channel, None, "rest:/apply").unwrap();
        let Body::Manifest { options, .. } = decoded.body else { panic!("a manifest") };
        assert_eq!(options, ApplyOptions { dry_run: true, force: false, source: Some("fleet".into()) });
        let other = ApplyOptions { source: Some("other".into()), ..ApplyOptions::default() };
        let error = decode(&bytes, Format::Protobuf, Some(Verb::Apply), &other, None, "c").expect_err("two sources");
        assert!(error.message.contains("name one"), "{}", error.message);
    }

    #[test]
    fn content_types_name_formats() {
        assert_eq!(Format::of(None).expect("none"), Format::Text);
        assert_eq!(Format::of(Some("application/x-protobuf")).expect("pb"), Format::Protobuf);
        assert_eq!(Format::of(Some("application/yaml; charset=utf-8")).expect("yaml"), Format::Text);
        assert!(Format::of(Some("image/png")).is_err());
    }
}
