//! Server-Sent Events from a byte stream: the few rules of the format
//! (`id:`, `event:`, `data:` lines, a blank line ends an event, `:` lines are
//! comments) that watches and followed logs need.

use bytes::Bytes;
use futures::stream::{self, BoxStream, Stream, StreamExt};

use super::ClientError;

/// One event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// Its id (a resourceVersion or an event sequence number).
    pub id: Option<String>,
    /// Its type (`ADDED`, `MODIFIED`, `DELETED`, `ERROR`, `event`).
    pub event: String,
    /// Its data.
    pub data: String,
}

/// Parses `bytes` into events.
pub fn sse_events<S>(bytes: S) -> BoxStream<'static, Result<SseEvent, ClientError>>
where
    S: Stream<Item = Result<Bytes, ClientError>> + Send + 'static,
{
    let lines = crate::engine::lines_of(bytes);
    stream::unfold((lines, SseEvent::default()), |(mut lines, mut event)| async move {
        loop {
            match lines.next().await? {
                Err(e) => return Some((Err(e), (lines, event))),
                Ok(line) if line.is_empty() => {
                    if !event.data.is_empty() || !event.event.is_empty() {
                        let done = std::mem::take(&mut event);
                        return Some((Ok(done), (lines, event)));
                    }
                }
                Ok(line) if line.starts_with(':') => {}
                Ok(line) => {
                    let (field, value) = line.split_once(':').unwrap_or((&line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    match field {
                        "id" => event.id = Some(value.to_string()),
                        "event" => event.event = value.to_string(),
                        "data" if event.data.is_empty() => event.data = value.to_string(),
                        "data" => {
                            event.data.push('\n');
                            event.data.push_str(value);
                        }
                        _ => {}
                    }
                }
            }
        }
    })
    .boxed()
}
