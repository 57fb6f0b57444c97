//! Message ingress: the ways in besides the REST API's object endpoints —
//! MQTT, D-Bus and POSIX message queues, and encrypted or protobuf
//! payloads on `POST /apply` — all served by one executor, the one REST
//! uses, so a manifest is validated, planned and applied the same way
//! whichever way it came.
//!
//! Each transport is a thin adapter in its own module that turns its
//! frames into a [`Message`] and an [`Answer`] back into frames. Every
//! transport is off unless `berth serve` is told where it is.
mod args;
pub(crate) mod dbus;
pub(crate) mod envelope;
mod execute;
pub(crate) mod keyring;
mod message;
pub(crate) mod mq;
pub(crate) mod mqtt;
pub mod proto;
pub(crate) mod replay;
mod reply;
mod request;
mod security;

pub use args::IngressArgs;
pub use execute::Ingress;
pub use message::{Answer, ApplyOptions, Handler, Message, Transport, Verb};
pub use security::{is_encrypted, Security, ENCRYPTED_CONTENT_TYPE};
