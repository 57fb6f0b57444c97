//! `GET .../containers/{name}/exec`: a command in a replica, attached over a
//! WebSocket in the channel framing of [`super::channels`], as `kubectl
//! exec` runs one in a pod. `berth exec` and the dashboard's terminal are
//! its clients.
//!
//! The replica is found and the command started before the upgrade, so a
//! missing replica or a refused command is an ordinary HTTP error. Then the
//! command's output and the client's input flow independently (a command
//! that does not read its input never stalls its output); the session ends
//! when the command exits (its exit code goes out on the status channel),
//! when the client leaves (the command's stdin closes, which ends a shell),
//! or when the client is silent through [`SILENCE_LIMIT`] of pings. Every
//! session is bounded: [`MAX_SESSIONS`] at once, [`MAX_MESSAGE_BYTES`] per
//! message, and each start and end is in the audit log with who asked.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::engine::{Engine, ExecOutput, ExecRequest, ExecSession, TerminalSize};

use super::auth::Caller;
use super::channels::{self, Resize};
use super::error::{ApiError, ApiResult};
use super::replica::{self, ReplicaPath};
use super::AppState;

/// Sessions open at once, server-wide.
pub const MAX_SESSIONS: usize = 16;
/// The largest message a client may send (a big paste).
const MAX_MESSAGE_BYTES: usize = 1 << 20;
/// The longest command line, all arguments together.
const MAX_COMMAND_BYTES: usize = 16 * 1024;
/// How often berth pings the client.
const PING_EVERY: Duration = Duration::from_secs(30);
/// A client heard from less recently than this is gone.
const SILENCE_LIMIT: Duration = Duration::from_secs(90);
/// Output messages queued for a slow client before the output waits.
const OUTPUT_QUEUE: usize = 64;

/// The exec sessions' limit, shared by every listener of one server.
#[derive(Clone)]
pub struct ExecSessions(Arc<Semaphore>);

impl Default for ExecSessions {
    fn default() -> Self {
        ExecSessions(Arc::new(Semaphore::new(MAX_SESSIONS)))
    }
}

/// The query: `command` once per argument, as Kubernetes takes it.
#[derive(Debug, PartialEq)]
struct ExecQuery {
    command: Vec<String>,
    replica: u32,
    tty: bool,
    stdin: bool,
}

/// The parameters the endpoint accepts, for error messages.
const PARAMETERS: &str = "`command` (once per argument), `replica`, `tty`, `stdin`";

fn parse_query(uri: &Uri) -> ApiResult<ExecQuery> {
    let mut query = ExecQuery { command: Vec::new(), replica: 0, tty: false, stdin: false };
    let flag = |name: &str, value: &str| match value {
        "true" | "1" | "" => Ok(true),
        "false" | "0" => Ok(false),
        other => {
            Err(ApiError::bad_request(format!("invalid query parameter `{name}`: `{other}` is not true or false")))
        }
    };
    for (name, value) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        match name.as_ref() {
            "command" => query.command.push(value.into_owned()),
            "replica" => {
                query.replica = value.parse().map_err(|_| {
                    ApiError::bad_request(format!(
                        "invalid query parameter `replica`: `{value}` is not a replica index"
                    ))
                })?;
            }
            "tty" => query.tty = flag("tty", &value)?,
            "stdin" => query.stdin = flag("stdin", &value)?,
            other => {
                let shown: String = other.chars().take(40).collect();
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter `{shown}`; this endpoint accepts {PARAMETERS}"
                )));
            }
        }
    }
    if query.command.is_empty() {
        return Err(ApiError::bad_request(
            "no command: give it as `command=sh` (once per argument: `command=sh&command=-c&command=...`)",
        ));
    }
    let length: usize = query.command.iter().map(String::len).sum();
    if length > MAX_COMMAND_BYTES {
        return Err(ApiError::bad_request(format!(
            "the command is {length} bytes long; berth takes at most {MAX_COMMAND_BYTES} (put a long script in a file)"
        )));
    }
    Ok(query)
}

/// The command as the audit log shows it.
fn shown_command(command: &[String]) -> String {
    let text = command.join(" ");
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// Starts the command and upgrades to the session.
pub async fn exec(
    State(state): State<AppState>,
    Path(path): Path<ReplicaPath>,
    caller: Option<Extension<Caller>>,
    uri: Uri,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let query = parse_query(&uri)?;
    let Ok(upgrade) = upgrade else {
        return Err(ApiError::bad_request(format!(
            "exec needs a WebSocket (Upgrade: websocket, subprotocol {}); `berth exec` is its client",
            channels::PROTOCOL
        )));
    };
    let permit = state.exec_sessions.0.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("{MAX_SESSIONS} exec sessions are open already; close one and retry"),
        )
    })?;
    let replica = replica::find(&state, path, query.replica, "exec").await?;
    let request = ExecRequest {
        command: query.command.clone(),
        tty: query.tty,
        stdin: query.stdin,
        // The client sends its size first thing; until then a common one.
        size: query.tty.then_some(TerminalSize { cols: 80, rows: 24 }),
    };
    let session = replica.ctx.engine.exec(&replica.info.id, &request).await.map_err(|e| {
        let status = if e.is_conflict() { StatusCode::CONFLICT } else { StatusCode::SERVICE_UNAVAILABLE };
        ApiError::new(
            status,
            format!(
                "cannot run `{}` in {} replica {}: {e}",
                shown_command(&request.command),
                replica.key,
                query.replica
            ),
        )
    })?;
    let caller = replica::caller_name(caller);
    let audit = Audit {
        state: state.clone(),
        key: replica.key.clone(),
        what: format!(
            "`{}` in replica {}{}",
            shown_command(&request.command),
            query.replica,
            if query.tty { " (with a TTY)" } else { "" }
        ),
    };
    audit.record("exec", "Exec", format!("{} started by {caller}", audit.what));
    let engine = replica.ctx.engine.clone();
    let upgrade =
        upgrade.protocols([channels::PROTOCOL]).max_message_size(MAX_MESSAGE_BYTES).max_frame_size(MAX_MESSAGE_BYTES);
    Ok(upgrade.on_upgrade(move |socket| run(socket, session, engine, audit, permit)).into_response())
}

/// Audit entries about one session.
struct Audit {
    state: AppState,
    key: crate::api::ObjectKey,
    what: String,
}

impl Audit {
    fn record(&self, action: &str, reason: &str, message: String) {
        replica::audit(&self.state, &self.key, action, reason, message);
    }
}

/// How a session ended.
enum Ended {
    /// The command exited.
    Exited(Option<i64>),
    /// The engine failed mid-session.
    Failed(String),
    /// The client closed, or went silent, or broke the protocol.
    ClientLeft(&'static str),
}

async fn run(
    socket: WebSocket,
    session: ExecSession,
    engine: Arc<dyn Engine>,
    audit: Audit,
    _permit: OwnedSemaphorePermit,
) {
    let started = Instant::now();
    let (sink, stream) = socket.split();
    let (outgoing, queued) = mpsc::channel::<Message>(OUTPUT_QUEUE);
    let writer = tokio::spawn(write_messages(sink, queued));
    let ExecSession { id, output, input } = session;
    let ended = tokio::select! {
        ended = forward_output(output, outgoing.clone()) => ended,
        left = read_input(stream, input, outgoing.clone(), &*engine, &id) => Ended::ClientLeft(left),
    };
    let ended = match ended {
        Ended::Exited(_) => Ended::Exited(crate::engine::exit_code_after_output(&*engine, &id).await),
        other => other,
    };
    let status = match &ended {
        Ended::Exited(code) => Some(channels::exit_status(*code)),
        Ended::Failed(message) => Some(channels::failure_status(message)),
        Ended::ClientLeft(_) => None,
    };
    if let Some(status) = status {
        let _ = outgoing.send(Message::Binary(status.into())).await;
    }
    drop(outgoing);
    // The writer sends what is queued and the close; a client that reads
    // nothing more does not hold the session open.
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    let took = humantime::format_duration(Duration::from_millis(started.elapsed().as_millis() as u64));
    let outcome = match ended {
        Ended::Exited(Some(code)) => format!("exited with code {code}"),
        Ended::Exited(None) => "ended (the engine gave no exit code)".to_string(),
        Ended::Failed(message) => format!("failed: {message}"),
        Ended::ClientLeft(why) => format!("was left by its client ({why})"),
    };
    audit.record("exec", "ExecEnded", format!("{} {outcome} after {took}", audit.what));
}

/// Sends queued messages, then a normal close.
async fn write_messages(mut sink: futures::stream::SplitSink<WebSocket, Message>, mut queued: mpsc::Receiver<Message>) {
    while let Some(message) = queued.recv().await {
        if sink.send(message).await.is_err() {
            return;
        }
    }
    let _ = sink.send(Message::Close(None)).await;
}

/// The command's output, onto the socket, until it ends.
async fn forward_output(
    mut output: futures::stream::BoxStream<'static, crate::engine::Result<ExecOutput>>,
    outgoing: mpsc::Sender<Message>,
) -> Ended {
    while let Some(chunk) = output.next().await {
        let framed = match chunk {
            Ok(ExecOutput::Stdout(bytes)) => channels::frame(channels::STDOUT, &bytes),
            Ok(ExecOutput::Stderr(bytes)) => channels::frame(channels::STDERR, &bytes),
            Err(error) => return Ended::Failed(error.to_string()),
        };
        if outgoing.send(Message::Binary(framed.into())).await.is_err() {
            return Ended::ClientLeft("the connection broke");
        }
    }
    Ended::Exited(None)
}

/// The client's messages: stdin, resizes, the close of stdin; pings it and
/// gives up on a silent one. Returns why the client left.
async fn read_input(
    mut stream: futures::stream::SplitStream<WebSocket>,
    mut input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
    outgoing: mpsc::Sender<Message>,
    engine: &dyn Engine,
    exec: &str,
) -> &'static str {
    let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
    let mut heard = Instant::now();
    let mut stdin_open = true;
    loop {
        let message = tokio::select! {
            message = stream.next() => message,
            _ = ping.tick() => {
                if heard.elapsed() > SILENCE_LIMIT {
                    return "silent through two pings";
                }
                let _ = outgoing.try_send(Message::Ping(Default::default()));
                continue;
            }
        };
        heard = Instant::now();
        let data = match message {
            None | Some(Err(_)) => return "the connection broke",
            Some(Ok(Message::Close(_))) => return "closed",
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Text(_))) => {
                let status = channels::failure_status("send binary messages: a channel byte, then data");
                let _ = outgoing.send(Message::Binary(status.into())).await;
                return "sent a text message";
            }
            Some(Ok(Message::Binary(data))) => data,
        };
        match data.first().copied() {
            Some(channels::STDIN) if stdin_open => {
                if input.write_all(&data[1..]).await.and(input.flush().await).is_err() {
                    // The command closed its stdin: keep serving its output.
                    stdin_open = false;
                }
            }
            Some(channels::STDIN) => {}
            Some(channels::RESIZE) => match serde_json::from_slice::<Resize>(&data[1..]) {
                Ok(size) if size.width > 0 && size.height > 0 => {
                    let size = TerminalSize { cols: size.width, rows: size.height };
                    if let Err(error) = engine.resize_exec(exec, size).await {
                        tracing::debug!(exec, %error, "resize failed");
                    }
                }
                _ => {
                    let status =
                        channels::failure_status(r#"a resize is {"Width": columns, "Height": rows}, both above 0"#);
                    let _ = outgoing.send(Message::Binary(status.into())).await;
                    return "sent a bad resize";
                }
            },
            Some(channels::CLOSE) if data.get(1) == Some(&channels::STDIN) => {
                let _ = input.shutdown().await;
                stdin_open = false;
            }
            _ => {
                let status = channels::failure_status("unknown channel: send 0 (stdin), 4 (resize) or 255 (close)");
                let _ = outgoing.send(Message::Binary(status.into())).await;
                return "used an unknown channel";
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> ApiResult<ExecQuery> {
        parse_query(&format!("/x?{query}").parse().unwrap())
    }

    #[test]
    fn the_command_is_one_parameter_per_argument() {
        let query = parse("command=sh&command=-c&command=echo%20hi&tty=true&stdin=1&replica=2").unwrap();
        assert_eq!(
            query,
            ExecQuery { command: vec!["sh".into(), "-c".into(), "echo hi".into()], replica: 2, tty: true, stdin: true }
        );
    }

    #[test]
    fn bad_queries_say_what_to_send() {
        let message = |q: &str| parse(q).unwrap_err().message;
        assert!(message("tty=true").contains("no command"));
        assert!(message("command=sh&shell=bash").contains("unknown query parameter `shell`"));
        assert!(message("command=sh&tty=yes").contains("`tty`"));
        assert!(message("command=sh&replica=-1").contains("`replica`"));
        let long = format!("command={}", "x".repeat(MAX_COMMAND_BYTES + 1));
        assert!(message(&long).contains("at most"));
    }
}
