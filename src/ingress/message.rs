//! What every transport hands the executor, and what it gets back: the
//! transport-independent shape of a request (its bytes, where they came
//! from, the verb and options the channel names) and of its answer.
//!
//! A transport adapter (MQTT, D-Bus, a POSIX queue, REST) only turns its
//! own frames into a [`Message`] and an [`Answer`] back into frames; the
//! decoding, decryption, replay check, validation and execution are one
//! piece of code for all of them ([`super::Ingress`]).

use std::fmt;

/// The ways in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Transport {
    /// The REST API (`POST /apply`).
    Rest,
    /// An MQTT broker.
    Mqtt,
    /// A D-Bus bus.
    Dbus,
    /// A POSIX message queue.
    Mq,
}

impl Transport {
    /// Every transport, in the order the docs list them.
    pub const ALL: [Transport; 4] = [Transport::Rest, Transport::Mqtt, Transport::Dbus, Transport::Mq];

    /// The name flags and metrics use: `rest`, `mqtt`, `dbus`, `mq`.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Rest => "rest",
            Transport::Mqtt => "mqtt",
            Transport::Dbus => "dbus",
            Transport::Mq => "mq",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Transport {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Transport::ALL.into_iter().find(|t| t.name() == text).ok_or_else(|| {
            format!("`{text}` is not a transport; use rest, mqtt, dbus or mq (comma-separated for several)")
        })
    }
}

/// What a request asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verb {
    /// Write manifests (or only plan them, with `dryRun`).
    Apply,
    /// Plan manifests: what would change, and the engine operations.
    Plan,
    /// Mark one object for deletion.
    Delete,
    /// One object, as stored.
    Get,
    /// One object's status, or every object's readiness.
    Status,
}

impl Verb {
    /// Every verb.
    pub const ALL: [Verb; 5] = [Verb::Apply, Verb::Plan, Verb::Delete, Verb::Get, Verb::Status];

    /// The verb as topics, methods and headers spell it.
    pub fn name(self) -> &'static str {
        match self {
            Verb::Apply => "apply",
            Verb::Plan => "plan",
            Verb::Delete => "delete",
            Verb::Get => "get",
            Verb::Status => "status",
        }
    }

    /// The verb named `text`, if any.
    pub fn parse(text: &str) -> Option<Verb> {
        Verb::ALL.into_iter().find(|v| v.name() == text)
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The options of an apply, as the channel gives them (MQTT user
/// properties, the D-Bus options argument, the queue header); a protobuf
/// request carries its own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyOptions {
    /// Plan only; write nothing.
    pub dry_run: bool,
    /// Write objects a file or repository owns.
    pub force: bool,
    /// The request is the complete set of this named source.
    pub source: Option<String>,
}

/// One request as a transport received it.
#[derive(Clone, Debug)]
pub struct Message {
    /// The way it came in.
    pub transport: Transport,
    /// Where it came in, as an encrypted payload binds it: `mqtt:<topic>`,
    /// `dbus:<member>`, `mq:<queue>`, `rest:/apply`.
    pub channel: String,
    /// The verb the channel names (topic level, method, header); `None`
    /// when only the payload can say (a protobuf request).
    pub verb: Option<Verb>,
    /// The apply options the channel gives.
    pub options: ApplyOptions,
    /// The payload's media type, if the channel says (`application/yaml`,
    /// `application/json`, `application/x-protobuf`); `None`: sniffed.
    pub content_type: Option<String>,
    /// The payload as received: text, protobuf, or an encrypted envelope
    /// of either.
    pub payload: Vec<u8>,
    /// Who sent it, for the audit log: the MQTT client or topic, the D-Bus
    /// sender and its uid, the queue's owner.
    pub sender: String,
    /// The sender's id of the request, when the channel has one (an MQTT
    /// topic's last level, a queue header): duplicates are answered once.
    pub id: Option<String>,
}

/// The answer to one [`Message`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// Whether the request succeeded.
    pub ok: bool,
    /// The HTTP status the REST API would have answered (200, 422, 409, …).
    pub code: u16,
    /// The media type of `payload`.
    pub content_type: String,
    /// The reply: JSON (as the REST API answers), protobuf when the
    /// request was, encrypted when the request was.
    pub payload: Vec<u8>,
}

/// What executes messages: [`super::Ingress`], or a test's stand-in.
#[async_trait::async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Executes one message.
    async fn handle(&self, message: Message) -> Answer;
}
