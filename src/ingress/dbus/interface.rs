//! `dev.berth.Controller1`: the methods a D-Bus peer calls, each turned
//! into one [`Message`] for the executor, and the `Changed` signal.
//!
//! The text methods (`Apply`, `Plan`, `Delete`, `Get`, `Status`) answer
//! the REST API's JSON as a string and fail with a D-Bus error
//! `dev.berth.Controller1.Error.<Reason>` whose message is the REST API's
//! `Status` JSON (with the causes' line and column). `ApplyBytes` carries an
//! apply or plan in any form — protobuf, or an encrypted envelope — and answers
//! bytes (the reply in the request's form, sealed when it was), since an
//! error of an encrypted request is for the key holder only.

use std::sync::Arc;

use serde_json::json;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::Connection;

use crate::ingress::execute::Ingress;
use crate::ingress::message::{Answer, ApplyOptions, Handler, Message, Transport, Verb};
use crate::server::ApiError;

/// The failures of the text methods, by the REST API's status code.
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "dev.berth.Controller1.Error")]
pub(crate) enum Failure {
    #[zbus(error)]
    ZBus(zbus::Error),
    /// 400: the request cannot be read.
    BadRequest(String),
    /// 403: refused (encryption required, an envelope that does not open).
    Forbidden(String),
    /// 404: no such object.
    NotFound(String),
    /// 409: a conflict (owned by a file, a duplicate request).
    Conflict(String),
    /// 422: invalid manifests.
    Invalid(String),
    /// Anything else.
    Failed(String),
}

impl Failure {
    fn of(answer: Answer) -> Failure {
        let text = String::from_utf8_lossy(&answer.payload).into_owned();
        match answer.code {
            400 | 413 | 415 => Failure::BadRequest(text),
            403 => Failure::Forbidden(text),
            404 => Failure::NotFound(text),
            409 => Failure::Conflict(text),
            422 => Failure::Invalid(text),
            _ => Failure::Failed(text),
        }
    }
}

/// The object berth serves at [`super::PATH`].
pub(crate) struct Controller {
    pub ingress: Arc<Ingress>,
}

/// The options argument of `Apply` and `Plan`: `dryRun=true`,
/// `force=true`, `source=NAME`, separated by commas or spaces.
fn parse_options(text: &str) -> Result<ApplyOptions, String> {
    let mut options = ApplyOptions::default();
    for word in text.split([',', ' ']).filter(|w| !w.is_empty()) {
        let (key, value) = word.split_once('=').unwrap_or((word, "true"));
        let flag = || match value {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(format!("option {key}={other}: give true or false")),
        };
        match key {
            "dryRun" => options.dry_run = flag()?,
            "force" => options.force = flag()?,
            "source" => options.source = Some(value.to_string()),
            other => return Err(format!("option `{other}` is not one berth reads; use dryRun, force or source")),
        }
    }
    Ok(options)
}

impl Controller {
    async fn sender(&self, header: &Header<'_>, connection: &Connection) -> String {
        let Some(name) = header.sender() else { return "an unnamed D-Bus peer".into() };
        let uid = match zbus::fdo::DBusProxy::new(connection).await {
            Ok(proxy) => proxy.get_connection_unix_user(name.clone().into()).await.ok(),
            Err(_) => None,
        };
        match uid {
            Some(uid) => format!("D-Bus peer {name} (uid {uid})"),
            None => format!("D-Bus peer {name}"),
        }
    }

    async fn call(
        &self,
        member: &str,
        verb: Option<Verb>,
        options: ApplyOptions,
        content_type: Option<String>,
        payload: Vec<u8>,
        sender: String,
    ) -> Answer {
        let message = Message {
            transport: Transport::Dbus,
            channel: format!("dbus:{member}"),
            verb,
            options,
            content_type,
            payload,
            sender,
            id: None,
        };
        self.ingress.handle(message).await
    }

    /// A text method: `payload` is the verb's argument; answers the REST
    /// JSON or fails with the error it names.
    async fn text(
        &self,
        (member, verb): (&str, Verb),
        payload: String,
        options: &str,
        header: &Header<'_>,
        connection: &Connection,
    ) -> Result<String, Failure> {
        let sender = self.sender(header, connection).await;
        let options = match parse_options(options) {
            Ok(options) => options,
            Err(error) => {
                let error = ApiError::bad_request(format!("dbus:{member}: {error}"));
                return Err(Failure::of(self.ingress.refuse(Transport::Dbus, &format!("dbus:{member}"), error)));
            }
        };
        let answer = self.call(member, Some(verb), options, None, payload.into_bytes(), sender).await;
        if answer.ok {
            Ok(String::from_utf8_lossy(&answer.payload).into_owned())
        } else {
            Err(Failure::of(answer))
        }
    }
}

fn object(kind: &str, namespace: &str, name: &str) -> String {
    let namespace = if namespace.is_empty() { None } else { Some(namespace) };
    json!({ "kind": kind, "namespace": namespace, "name": name }).to_string()
}

#[zbus::interface(name = "dev.berth.Controller1")]
impl Controller {
    /// Applies manifests (YAML or JSON); `options`: dryRun=true, force=true,
    /// source=NAME. Answers the plan as JSON.
    async fn apply(
        &self,
        manifests: String,
        options: String,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<String, Failure> {
        self.text(("Apply", Verb::Apply), manifests, &options, &header, connection).await
    }

    /// Plans manifests without writing: what would change, and how.
    async fn plan(
        &self,
        manifests: String,
        options: String,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<String, Failure> {
        self.text(("Plan", Verb::Plan), manifests, &options, &header, connection).await
    }

    /// An apply (or plan) as bytes: text manifests, a protobuf
    /// `berth.ingress.v1.Request` with `apply` or `plan`, or an encrypted
    /// envelope of either; `content_type` as on `POST /apply` ("" to let
    /// berth tell). Answers the reply in the request's form, encrypted
    /// when it was.
    async fn apply_bytes(
        &self,
        payload: Vec<u8>,
        content_type: String,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Vec<u8> {
        let sender = self.sender(&header, connection).await;
        let content_type = (!content_type.is_empty()).then_some(content_type);
        self.call("ApplyBytes", Some(Verb::Apply), ApplyOptions::default(), content_type, payload, sender).await.payload
    }

    /// Marks an object for deletion (`namespace` "" for default).
    async fn delete(
        &self,
        kind: String,
        namespace: String,
        name: String,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<String, Failure> {
        self.text(("Delete", Verb::Delete), object(&kind, &namespace, &name), "", &header, connection).await
    }

    /// One object as stored, as JSON.
    async fn get(
        &self,
        kind: String,
        namespace: String,
        name: String,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<String, Failure> {
        self.text(("Get", Verb::Get), object(&kind, &namespace, &name), "", &header, connection).await
    }

    /// One object's readiness, or every object's when `kind` is "".
    async fn status(
        &self,
        kind: String,
        namespace: String,
        name: String,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
    ) -> Result<String, Failure> {
        let argument = if kind.is_empty() { String::new() } else { object(&kind, &namespace, &name) };
        self.text(("Status", Verb::Status), argument, "", &header, connection).await
    }

    /// An object changed in the store: `object` is Kind/namespace/name,
    /// `change` Added, Modified or Deleted.
    #[zbus(signal)]
    pub(crate) async fn changed(
        emitter: &SignalEmitter<'_>,
        object: &str,
        change: &str,
        resource_version: u64,
    ) -> zbus::Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_the_apply_options_and_nothing_else() {
        assert_eq!(parse_options("").unwrap(), ApplyOptions::default());
        assert_eq!(
            parse_options("dryRun=true, source=fleet").unwrap(),
            ApplyOptions { dry_run: true, force: false, source: Some("fleet".into()) }
        );
        assert!(parse_options("force").unwrap().force);
        assert!(parse_options("prune=true").unwrap_err().contains("not one berth reads"));
        assert!(parse_options("force=yes").unwrap_err().contains("true or false"));
    }
}
