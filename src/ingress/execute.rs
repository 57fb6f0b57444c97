//! The one executor of every transport: a [`Message`] is opened (an
//! encrypted envelope decrypted, its channel and freshness checked),
//! decoded, run through the REST API's own apply, plan, delete and read
//! code, recorded in the audit log with its transport and sender, and
//! answered in the form it came in.
//!
//! Nothing here validates or applies by itself: manifests go through
//! [`crate::manifest`] and [`crate::server`]'s `apply_objects` and
//! `mark_deleted`, so a manifest sent over MQTT gets the same checks,
//! plan and errors (with line and column) as `berth apply`.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};

use crate::api::{AnyObject, ConditionStatus, ObjectKey};
use crate::server::{ApiError, AppState};
use crate::store::{Event, Precondition, WriteBatch};

use super::message::{Answer, Handler, Message, Transport, Verb};
use super::reply::{render, Outcome};
use super::request::{decode, Body, Format, Request};
use super::security::Opened;

/// The largest payload taken on any transport: an envelope's limit (its
/// plaintext, manifests, is held to the manifest loader's 8 MiB).
pub(crate) const MAX_PAYLOAD: usize = super::envelope::MAX_ENVELOPE;

/// The executor the transports hand their messages to.
pub struct Ingress {
    state: AppState,
}

impl Ingress {
    /// An executor over the API's state (its store, engine and the
    /// ingress security settings it carries).
    pub fn new(state: AppState) -> Arc<Ingress> {
        Arc::new(Ingress { state })
    }

    /// The answer to a message its transport could not even make into a
    /// request (a malformed topic, an unknown option): counted and logged
    /// like every other refusal.
    pub(crate) fn refuse(&self, transport: Transport, channel: &str, error: ApiError) -> Answer {
        let request_id = crate::server::request::new_request_id();
        tracing::info!(%transport, %channel, request_id = %request_id, "refused: {}", error.message);
        self.state.metrics.ingress_request(transport.name(), false, false, std::time::Duration::ZERO);
        render(Err(error), Format::Text, &request_id).into()
    }

    /// Opens, decodes and runs `message`; the request's format and what
    /// opening it found come back with the result, for the reply.
    async fn execute(&self, message: &Message, request_id: &str) -> Executed {
        let security = &self.state.ingress;
        if message.payload.len() > MAX_PAYLOAD {
            let error = ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "{}: the payload is {} bytes, over the {MAX_PAYLOAD}-byte limit; split the manifests",
                    message.channel,
                    message.payload.len()
                ),
            );
            return Executed { result: Err(error), format: Format::Text, opened: None };
        }
        let opened = match security.open(message) {
            Ok(opened) => opened,
            Err(error) => {
                // Refused unopened: answered in the form the channel says it is in.
                let format = Format::of(message.content_type.as_deref()).unwrap_or(Format::Text);
                return Executed { result: Err(error), format, opened: None };
            }
        };
        let format = match opened.format {
            Some(format) => Ok(format),
            None => Format::of(message.content_type.as_deref()),
        };
        let format_or_text = *format.as_ref().unwrap_or(&Format::Text);
        let result = match format {
            Ok(format) => self.run(message, &opened, format, request_id).await,
            Err(error) => Err(error),
        };
        Executed { result, format: format_or_text, opened: Some(opened) }
    }

    async fn run(
        &self,
        message: &Message,
        opened: &Opened,
        format: Format,
        request_id: &str,
    ) -> Result<Outcome, ApiError> {
        if opened.key_id.is_some() && message.options != super::message::ApplyOptions::default() {
            // Options outside the envelope are not authenticated: whoever
            // relays the message could add or drop them.
            return Err(ApiError::bad_request(format!(
                "{}: dryRun, force and source given outside an encrypted payload are refused (they are not \
                 authenticated); put them in the protobuf Request inside the envelope, or use the plan verb",
                message.channel
            )));
        }
        let id = opened.id.clone().or_else(|| message.id.clone());
        let request = decode(&opened.plaintext, format, message.verb, &message.options, id, &message.channel)?;
        if opened.id.is_none() {
            // A plaintext request's own id dedupes it (a QoS 1 redelivery,
            // a retried queue send); an envelope's id was checked already.
            if let Some(id) = &request.id {
                self.state.ingress.check_request_id(id)?;
            }
        }
        let who = Who { message, opened, request_id };
        match (request.verb, &request.body) {
            (Verb::Apply | Verb::Plan, Body::Manifest { text, options }) => {
                self.apply(&request, text, options.dry_run || request.verb == Verb::Plan, options, &who).await
            }
            (Verb::Delete, Body::Object(Some(key))) => {
                let object = crate::server::mark_deleted(
                    &self.state,
                    key,
                    Precondition::None,
                    false,
                    false,
                    &format!("deletion requested {}", who.describe("delete")),
                )?;
                Ok(Outcome::Value(object.to_json()))
            }
            (Verb::Get, Body::Object(Some(key))) => Ok(Outcome::Value(self.stored(key)?.to_json())),
            (Verb::Status, Body::Object(Some(key))) => Ok(Outcome::Value(status_of(&self.stored(key)?))),
            (Verb::Status, Body::Object(None)) => {
                let objects = self.state.store.list(None, None)?;
                let items: Vec<Value> = objects.iter().map(status_of).collect();
                Ok(Outcome::Value(json!({ "items": items })))
            }
            _ => Err(ApiError::bad_request(format!("{}: `{}` needs an object", message.channel, request.verb))),
        }
    }

    async fn apply(
        &self,
        request: &Request,
        text: &str,
        dry_run: bool,
        options: &super::message::ApplyOptions,
        who: &Who<'_>,
    ) -> Result<Outcome, ApiError> {
        let objects: Vec<AnyObject> = crate::manifest::load_text_in(text, &who.message.channel, None, None)?
            .into_iter()
            .map(|loaded| loaded.object)
            .collect();
        let query = crate::server::ApplyQuery {
            dry_run: crate::server::DryRun(dry_run),
            force: options.force,
            source: options.source.clone(),
        };
        let applied = crate::server::apply_objects(&self.state, objects, &query).await?;
        if !applied.dry_run {
            let changed: Vec<&str> = applied
                .items
                .iter()
                .filter(|i| i.action != crate::controller::plan::PlanAction::Unchanged)
                .map(|i| i.object.as_str())
                .collect();
            // The objects are written: a failure to audit them is logged,
            // not answered as a failed apply.
            if let Err(error) = self.record(&changed, request.verb, who) {
                tracing::error!(request_id = %who.request_id, "applied, but the audit entries could not be written: {}", error.message);
            }
        }
        Ok(Outcome::Applied(applied))
    }

    /// One audit entry per object the request changed, naming the way in
    /// and the sender.
    fn record(&self, objects: &[&str], verb: Verb, who: &Who<'_>) -> Result<(), ApiError> {
        if objects.is_empty() {
            return Ok(());
        }
        let message = who.describe(verb.name());
        let mut batch = WriteBatch::new();
        for object in objects {
            batch = batch.event(Event {
                seq: 0,
                time: chrono::Utc::now(),
                object: Some((*object).to_string()),
                action: verb.name().to_string(),
                reason: "Request".to_string(),
                message: message.clone(),
            });
        }
        self.state.store.commit(batch)?;
        Ok(())
    }

    fn stored(&self, key: &ObjectKey) -> Result<AnyObject, ApiError> {
        self.state.store.get(key)?.ok_or_else(|| ApiError::not_found(format!("{key} not found")).about(key))
    }
}

/// Who asked, for the audit log and the server's log.
struct Who<'a> {
    message: &'a Message,
    opened: &'a Opened,
    request_id: &'a str,
}

impl Who<'_> {
    fn describe(&self, verb: &str) -> String {
        let mut text =
            format!("{verb} over {} from {} on {}", self.message.transport, self.message.sender, self.message.channel);
        if let Some(key) = &self.opened.key_id {
            text.push_str(&format!(", encrypted with key {key}"));
        }
        text.push_str(&format!(" (request {})", self.request_id));
        text
    }
}

/// An object's readiness, as `status` reports it (and MQTT's retained
/// status topics hold).
pub(crate) fn status_of(object: &AnyObject) -> Value {
    let ready = object.status_common().and_then(|s| s.condition("Ready"));
    json!({
        "object": object.key().to_string(),
        "ready": ready.is_some_and(|c| c.status == ConditionStatus::True),
        "reason": ready.map(|c| c.reason.clone()).unwrap_or_default(),
        "message": ready.map(|c| c.message.clone()).unwrap_or_default(),
        "status": object.to_json().get("status").cloned().unwrap_or(Value::Null),
    })
}

/// A request run: its result, the format to answer in, and what opening
/// it found (`None`: it could not be opened).
struct Executed {
    result: Result<Outcome, ApiError>,
    format: Format,
    opened: Option<Opened>,
}

#[async_trait::async_trait]
impl Handler for Ingress {
    async fn handle(&self, message: Message) -> Answer {
        let started = Instant::now();
        let request_id = crate::server::request::new_request_id();
        let Executed { result, format, opened } = self.execute(&message, &request_id).await;
        if let Err(error) = &result {
            // The message of an encrypted request's error may quote its
            // plaintext (a manifest's value): only the reason is logged.
            let encrypted = opened.as_ref().is_some_and(|o| o.key_id.is_some());
            let said = if encrypted {
                format!("{} (an encrypted request: the message is for the key holder)", error.status)
            } else {
                error.message.clone()
            };
            tracing::info!(
                transport = %message.transport, channel = %message.channel, request_id = %request_id,
                "refused: {said}"
            );
        }
        let rendered = render(result, format, &request_id);
        self.state.metrics.ingress_request(message.transport.name(), rendered.ok, opened.is_none(), started.elapsed());
        let mut answer: Answer = rendered.into();
        // A reply to an encrypted request is encrypted (with the primary key).
        if let Some(opened) = opened.as_ref().filter(|o| o.key_id.is_some()) {
            match self.state.ingress.seal_reply(opened, format, &answer.payload) {
                Ok(sealed) => {
                    answer.payload = sealed;
                    answer.content_type = super::security::ENCRYPTED_CONTENT_TYPE.to_string();
                }
                Err(error) => {
                    tracing::error!(request_id = %request_id, "cannot encrypt the reply: {error}");
                    answer = Answer { ok: false, code: 500, content_type: "text/plain".into(), payload: Vec::new() };
                }
            }
        }
        answer
    }
}
