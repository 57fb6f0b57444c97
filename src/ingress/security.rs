//! What a message must be to be run: encrypted where `--require-encryption`
//! says so, decryptable with a key of the keyring, bound to the channel it
//! came on, fresh, and not seen before. Replies to an encrypted request are
//! encrypted with the keyring's primary key, bound to the request.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;

use crate::server::ApiError;

use super::envelope::{self, Header, PayloadFormat};
use super::keyring::Keyring;
use super::message::{Message, Transport};
use super::replay::{ReplayGuard, DEFAULT_CAPACITY, DEFAULT_WINDOW};
use super::request::Format;

/// The media type of an encrypted payload.
pub const ENCRYPTED_CONTENT_TYPE: &str = "application/vnd.berth.encrypted";

/// Whether `payload` is an encrypted envelope.
pub fn is_encrypted(payload: &[u8]) -> bool {
    envelope::is_envelope(payload)
}

/// The ingress security settings of `berth serve`.
pub struct Security {
    /// The keys encrypted payloads are opened with, if any.
    keyring: Option<Keyring>,
    /// Envelope ids seen within the window.
    replay: ReplayGuard,
    /// Plaintext request ids seen within the window: apart, so that
    /// unauthenticated ids cannot fill the envelopes' guard.
    plain_ids: ReplayGuard,
    /// Transports whose plaintext requests are refused.
    required: BTreeSet<Transport>,
}

impl Default for Security {
    fn default() -> Self {
        Security::new(None, DEFAULT_WINDOW, BTreeSet::new())
    }
}

/// A message's payload, opened.
#[derive(Debug)]
pub(crate) struct Opened {
    /// The plaintext.
    pub plaintext: Vec<u8>,
    /// The plaintext's format, when the envelope said.
    pub format: Option<Format>,
    /// The envelope's message id (hex), when encrypted.
    pub id: Option<String>,
    /// The key that decrypted it, when encrypted.
    pub key_id: Option<String>,
    /// The envelope's header, when encrypted: the reply is bound to it.
    header: Option<Header>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn refused(message: &Message, why: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, format!("{}: {why}; nothing was applied", message.channel))
}

impl Security {
    /// Settings with `keyring`, a replay `window`, refusing plaintext on
    /// `required`.
    pub(crate) fn new(keyring: Option<Keyring>, window: Duration, required: BTreeSet<Transport>) -> Security {
        Security {
            keyring,
            replay: ReplayGuard::new(window, DEFAULT_CAPACITY),
            plain_ids: ReplayGuard::new(window, DEFAULT_CAPACITY),
            required,
        }
    }

    /// Settings read from the keyring file at `keyring`, if given.
    pub fn load(
        keyring: Option<&std::path::Path>,
        window: Duration,
        required: BTreeSet<Transport>,
    ) -> Result<Security, String> {
        let keyring = keyring.map(Keyring::load).transpose().map_err(|e| e.to_string())?;
        if keyring.is_none() && !required.is_empty() {
            return Err(
                "--require-encryption needs --keyring FILE (the keys encrypted payloads are opened with)".into()
            );
        }
        Ok(Security::new(keyring, window, required))
    }

    /// Whether plaintext is refused on `transport`.
    pub fn requires_encryption(&self, transport: Transport) -> bool {
        self.required.contains(&transport)
    }

    /// Opens `message`'s payload, or says why it cannot be run: a
    /// plaintext where encryption is required, an envelope that does not
    /// authenticate with the keyring, is bound to another channel, is stale
    /// or was seen before.
    pub(crate) fn open(&self, message: &Message) -> Result<Opened, ApiError> {
        if !is_encrypted(&message.payload) {
            if self.required.contains(&message.transport) {
                return Err(refused(
                    message,
                    format!(
                        "plaintext is refused on {} (berth serve --require-encryption); \
                         encrypt the payload with `berth encrypt --keyring FILE`",
                        message.transport
                    ),
                ));
            }
            return Ok(Opened {
                plaintext: message.payload.clone(),
                format: None,
                id: None,
                key_id: None,
                header: None,
            });
        }
        let Some(keyring) = &self.keyring else {
            return Err(ApiError::bad_request(format!(
                "{}: the payload is encrypted and berth serve has no keyring; start it with --keyring FILE",
                message.channel
            )));
        };
        let opened = envelope::open(keyring, &message.payload).map_err(|e| refused(message, e))?;
        envelope::check_channel(&opened.header, &message.channel).map_err(|e| refused(message, e))?;
        self.replay
            .check(&opened.header.message_id, opened.header.issued_at_ms, now_ms())
            .map_err(|e| refused(message, e))?;
        let format = match opened.header.format {
            PayloadFormat::Text => Format::Text,
            PayloadFormat::Protobuf => Format::Protobuf,
        };
        Ok(Opened {
            plaintext: opened.plaintext,
            format: Some(format),
            id: Some(opened.header.message_id_hex()),
            key_id: Some(opened.header.key_id.clone()),
            header: Some(opened.header),
        })
    }

    /// Refuses a plaintext request id seen within the replay window.
    pub(crate) fn check_request_id(&self, id: &str) -> Result<(), ApiError> {
        self.plain_ids.check_id(id, now_ms()).map_err(|e| {
            ApiError::new(StatusCode::CONFLICT, format!("request `{id}`: {e}; it was executed once already"))
        })
    }

    /// Encrypts the reply to an encrypted request with the primary key,
    /// with the request's algorithm, bound to the channel
    /// `reply:<request message id>`.
    pub(crate) fn seal_reply(&self, opened: &Opened, format: Format, payload: &[u8]) -> Result<Vec<u8>, String> {
        let (Some(keyring), Some(header)) = (&self.keyring, &opened.header) else {
            return Ok(payload.to_vec());
        };
        let format = match format {
            Format::Text => PayloadFormat::Text,
            Format::Protobuf => PayloadFormat::Protobuf,
        };
        let channel = format!("reply:{}", header.message_id_hex());
        envelope::seal(keyring, header.algorithm, format, &channel, payload).map_err(|e| e.to_string())
    }
}
