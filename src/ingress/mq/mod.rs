//! The POSIX message-queue transport: local processes send requests to a
//! queue berth owns (`--mq /berth-requests`) and read the answers from
//! a reply queue they own and name in the request.
//!
//! Who may send is who may open the queue for writing: berth creates it
//! with `--mq-mode` (0600 by default, only berth's user), and requiring
//! encryption (`--require-encryption mq`) narrows that to holders of a
//! key. A request larger than the queue's message size comes in numbered
//! chunks, and a reply larger than the reply queue's in chunks back (see
//! [`frame`]); requests are executed one at a time, in arrival order, so
//! a full queue holds senders back instead of berth's memory growing.

mod args;
mod frame;
mod queue;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ingress::execute::Ingress;
use crate::ingress::message::{Answer, Handler, Message, Transport};
use crate::server::ApiError;

pub use args::MqArgs;
pub(crate) use args::MqConfig;
use frame::{Assembled, Assembler, RequestHeader};
use queue::Queue;

/// How long the chunks of one request may take to arrive.
const CHUNK_TIMEOUT: Duration = Duration::from_secs(30);

/// How many chunked requests may be in assembly at once (their bytes
/// together are held to twice one request's limit).
const MAX_PARTIAL: usize = 16;

/// How long berth waits for room in a full reply queue.
const REPLY_PATIENCE: Duration = Duration::from_secs(5);

/// The request queue, opened: the start fails at once when the queue or
/// the system's limits do not allow what the flags ask.
pub(crate) struct Listening {
    queue: Queue,
    name: String,
}

/// Opens the request queue `config` names.
pub(crate) fn listen(config: &MqConfig) -> Result<Listening, String> {
    let queue = Queue::listen(&config.name, config.mode, config.attr)?;
    Ok(Listening { queue, name: config.name.clone() })
}

impl Listening {
    /// Serves requests until `stop`.
    pub(crate) async fn run(self, ingress: Arc<Ingress>, stop: impl Future<Output = ()>) {
        tracing::info!(msgsize = self.queue.msgsize, "POSIX message queue requests on {}", self.name);
        let mut assembler = Assembler::new(crate::ingress::execute::MAX_PAYLOAD, MAX_PARTIAL, CHUNK_TIMEOUT);
        let mut stop = std::pin::pin!(stop);
        let mut sweep = tokio::time::interval(CHUNK_TIMEOUT / 2);
        loop {
            let frame = tokio::select! {
                () = &mut stop => return,
                _ = sweep.tick() => {
                    for (id, first) in assembler.expire(Instant::now()) {
                        let error = ApiError::new(
                            axum::http::StatusCode::REQUEST_TIMEOUT,
                            format!("{}: request `{id}`: its chunks stopped coming; send it again", self.channel()),
                        );
                        self.refuse(&ingress, first.as_ref(), error).await;
                    }
                    continue;
                }
                received = self.queue.receive() => match received {
                    Ok(frame) => frame,
                    Err(error) => {
                        tracing::error!("{}: cannot receive: {error}; the queue transport stops", self.name);
                        return;
                    }
                },
            };
            let (header, payload) = frame::parse_request(&frame);
            let payload = match payload {
                Ok(payload) => payload,
                Err(error) => {
                    self.refuse(&ingress, Some(&header), ApiError::bad_request(format!("{}: {error}", self.channel())))
                        .await;
                    continue;
                }
            };
            let (header, payload) = match assembler.add(header.clone(), payload, Instant::now()) {
                Ok(Assembled::Waiting) => continue,
                Ok(Assembled::Complete(header, payload)) => (header, payload),
                Err(error) => {
                    self.refuse(&ingress, Some(&header), ApiError::bad_request(format!("{}: {error}", self.channel())))
                        .await;
                    continue;
                }
            };
            // The verb is part of the channel, so that an encrypted payload
            // cannot be replayed under another verb (the header is outside it).
            let verb_name = header.verb.map_or("", |v| v.name());
            let message = Message {
                transport: Transport::Mq,
                channel: format!("{}/{verb_name}", self.channel()),
                verb: header.verb,
                options: header.options.clone(),
                content_type: header.content_type.clone(),
                payload,
                sender: format!("a local process (queue {})", self.name),
                id: header.id.clone(),
            };
            let answer = ingress.handle(message).await;
            self.answer(&header, &answer).await;
        }
    }

    fn channel(&self) -> String {
        format!("mq:{}", self.name)
    }

    async fn refuse(&self, ingress: &Ingress, header: Option<&RequestHeader>, error: ApiError) {
        let answer = ingress.refuse(Transport::Mq, &self.channel(), error);
        if let Some(header) = header {
            self.answer(header, &answer).await;
        }
    }

    /// Sends `answer` to the request's reply queue, if it named one.
    async fn answer(&self, header: &RequestHeader, answer: &Answer) {
        let Some(reply) = &header.reply else { return };
        let sent = async {
            let queue = Queue::connect(reply)?;
            let frames = frame::reply_frames(
                answer.code,
                &answer.content_type,
                header.id.as_deref(),
                &answer.payload,
                queue.msgsize,
            );
            queue.send_all(&frames, REPLY_PATIENCE).await.map_err(|e| format!("reply queue {reply}: {e}"))
        };
        if let Err(error) = sent.await {
            tracing::info!("{}: cannot answer: {error}", self.name);
        }
    }
}
