//! The MQTT transport: berth as an MQTT 5 client of a broker, taking
//! commands on `berth/<node>/cmd/<verb>[/<id>]` (QoS 1) and answering on
//! the command's response topic with its correlation data, or — for MQTT
//! 3.1.1 clients, which have neither — on `berth/<node>/reply[/<id>]`.
//! Each object's status is kept retained on
//! `berth/<node>/status/<namespace>/<kind>/<name>`, and a retained
//! `berth/<node>/online` says `online`, or `offline` (berth's will, so the
//! broker says it when berth vanishes).
//!
//! A command is acknowledged only once it has been executed and answered,
//! so a crash re-delivers it (QoS 1 is at least once); a redelivery with
//! the same id (`cmd/<verb>/<id>`, a protobuf request's `id`, an encrypted
//! envelope's message id) is refused as a duplicate, so it is applied
//! once. Retained commands are refused and cleared: one would run again on
//! every reconnect.
//!
//! The broker is reconnected with the shared backoff, and every
//! (re)connection subscribes again and republishes the status.

mod args;
mod session;
mod status;
mod topics;

pub use args::MqttArgs;
pub(crate) use args::{parse_size, MqttConfig};
pub(crate) use session::run;
