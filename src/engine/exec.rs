//! A command run inside a running container, attached, as `docker exec -it`
//! runs one: the vocabulary every engine answers an exec with.
//!
//! The session is a byte stream both ways rather than lines: an interactive
//! shell writes prompts without newlines and reads keystrokes one at a time.
//! With a TTY the engine merges stdout and stderr, as a terminal does; without
//! one, they stay apart so `berth exec` can write each to its own stream.

use std::pin::Pin;

use bytes::Bytes;
use futures::stream::BoxStream;

use super::{Engine, Result};

/// A terminal's size in character cells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TerminalSize {
    /// Columns.
    pub cols: u16,
    /// Rows.
    pub rows: u16,
}

/// What to run, and how to attach to it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExecRequest {
    /// The command and its arguments (no shell unless it names one).
    pub command: Vec<String>,
    /// Allocate a pseudo-terminal.
    pub tty: bool,
    /// Attach stdin (without it the command reads end of file).
    pub stdin: bool,
    /// The terminal's size from the start (with `tty`).
    pub size: Option<TerminalSize>,
}

/// A piece of the command's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecOutput {
    /// Standard output (everything, with a TTY).
    Stdout(Bytes),
    /// Standard error (without a TTY).
    Stderr(Bytes),
}

/// An attached exec: write to `input`, read from `output` until it ends,
/// then ask [`Engine::exec_exit_code`](super::Engine::exec_exit_code).
pub struct ExecSession {
    /// The engine's id of the exec, for resizing and its exit code.
    pub id: String,
    /// The command's output, ending when the command exits.
    pub output: BoxStream<'static, Result<ExecOutput>>,
    /// The command's stdin; shutting it down sends end of file.
    pub input: Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
}

impl std::fmt::Debug for ExecSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecSession").field("id", &self.id).finish_non_exhaustive()
    }
}

/// The exit code of an exec whose output has ended: engines record it a
/// moment later, so this asks again, backing off, for up to 3 s. `None`
/// when the engine does not say.
pub async fn exit_code_after_output(engine: &dyn Engine, exec: &str) -> Option<i64> {
    let mut delay = std::time::Duration::from_millis(10);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        match engine.exec_exit_code(exec).await {
            Ok(Some(code)) => return Some(code),
            Ok(None) if tokio::time::Instant::now() < deadline => {}
            Ok(None) => return None,
            Err(error) => {
                tracing::debug!(exec, %error, "no exit code");
                return None;
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(std::time::Duration::from_millis(200));
    }
}
