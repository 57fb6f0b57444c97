//! `berth exec NAME [--replica N] [-i] [-t] -- CMD...`: a command in a
//! Container's replica, like `kubectl exec`, over the exec WebSocket
//! ([`crate::server::channels`]).
//!
//! `-i` passes stdin; `-t` gives the command a terminal: the local one goes
//! raw (keys, Ctrl-C and all reach the command, not berth) and its size
//! follows the window. `-t` without a terminal on stdin warns and goes on
//! without one, as kubectl does. berth exits with the command's exit code.

use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;

use clap::Args;
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::api::{Kind, ObjectKey};
use crate::client::query_escape;
use crate::server::channels;

use super::client_args::{block_on, object_path, ClientArgs};

/// Arguments of `berth exec`.
#[derive(Debug, Args)]
#[command(trailing_var_arg = true)]
pub struct ExecArgs {
    /// The Container's name.
    pub name: String,
    /// The command and its arguments, after `--`.
    #[arg(required = true, num_args = 1.., allow_hyphen_values = true, value_name = "COMMAND")]
    pub command: Vec<String>,
    /// Namespace.
    #[arg(short, long, default_value = crate::api::meta::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Which replica.
    #[arg(long, default_value_t = 0)]
    pub replica: u32,
    /// Pass stdin to the command.
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Give the command a terminal (with -i, an interactive shell).
    #[arg(short, long)]
    pub tty: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Runs `berth exec`.
pub fn run(args: ExecArgs) -> anyhow::Result<ExitCode> {
    let tty = args.tty && std::io::stdin().is_terminal();
    if args.tty && !tty {
        eprintln!("Unable to use a TTY: input is not a terminal (running without one)");
    }
    let key = ObjectKey::new(Kind::Container, &args.namespace, &args.name);
    let client = args.client.client()?;
    let mut path = format!("{}/exec?replica={}&tty={tty}&stdin={}", object_path(&key), args.replica, args.stdin);
    for argument in &args.command {
        path.push_str("&command=");
        path.push_str(&query_escape(argument));
    }
    let stdin = args.stdin;
    block_on(async move {
        let socket = client.websocket(&path, channels::PROTOCOL).await?;
        // Raw only once the session is open, so errors print normally.
        let raw = if tty { Some(RawTerminal::enter()?) } else { None };
        let code = session(socket, stdin, tty).await;
        drop(raw);
        let code = code?;
        Ok(ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(1)))
    })
}

/// Runs the session; returns the command's exit code.
async fn session(socket: crate::client::WebSocket, stdin: bool, tty: bool) -> anyhow::Result<i64> {
    let (mut sink, mut stream) = socket.split();
    let (keys, mut typed) = tokio::sync::mpsc::channel::<Option<Vec<u8>>>(16);
    let mut stdin_open = stdin;
    if stdin {
        read_stdin(keys);
    }
    let mut window =
        tty.then(|| tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())).transpose()?;
    if tty {
        send_size(&mut sink).await?;
    }
    loop {
        tokio::select! {
            message = stream.next() => {
                let data = match message {
                    Some(Ok(Message::Binary(data))) => data,
                    Some(Ok(Message::Close(_))) | None => anyhow::bail!("the session ended without the command's exit status"),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => anyhow::bail!("the session broke: {e}"),
                };
                match data.first().copied() {
                    Some(channels::STDOUT) => write_out(&mut std::io::stdout(), &data[1..])?,
                    Some(channels::STDERR) => write_out(&mut std::io::stderr(), &data[1..])?,
                    Some(channels::STATUS) => return channels::exit_code_of(&data[1..]).map_err(anyhow::Error::msg),
                    _ => {}
                }
            }
            chunk = typed.recv(), if stdin_open => match chunk {
                Some(Some(bytes)) => sink.send(Message::Binary(channels::frame(channels::STDIN, &bytes).into())).await?,
                // End of input: the command's stdin closes.
                Some(None) | None => {
                    sink.send(Message::Binary(vec![channels::CLOSE, channels::STDIN].into())).await?;
                    stdin_open = false;
                }
            },
            _ = async { window.as_mut().expect("tty").recv().await }, if window.is_some() => send_size(&mut sink).await?,
        }
    }
}

fn write_out(out: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    out.write_all(bytes)?;
    out.flush()
}

/// Reads stdin on a thread of its own (a pending read must not keep the
/// process from exiting when the command ends); `None` is end of input.
fn read_stdin(keys: tokio::sync::mpsc::Sender<Option<Vec<u8>>>) {
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buffer = [0u8; 8192];
        loop {
            match stdin.read(&mut buffer) {
                Ok(0) | Err(_) => {
                    let _ = keys.blocking_send(None);
                    return;
                }
                Ok(n) => {
                    if keys.blocking_send(Some(buffer[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
    });
}

/// Sends the local terminal's size.
async fn send_size<S>(sink: &mut S) -> anyhow::Result<()>
where
    S: futures::Sink<Message> + Unpin,
    S::Error: std::error::Error + Send + Sync + 'static,
{
    let Some((width, height)) = terminal_size() else { return Ok(()) };
    let resize = serde_json::to_vec(&channels::Resize { width, height })?;
    sink.send(Message::Binary(channels::frame(channels::RESIZE, &resize).into())).await?;
    Ok(())
}

/// The size of the terminal on stdin, in columns and rows.
fn terminal_size() -> Option<(u16, u16)> {
    let mut size = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes one winsize into the struct it is given.
    let answered = unsafe { libc::ioctl(libc::STDIN_FILENO, libc::TIOCGWINSZ, &mut size) };
    (answered == 0 && size.ws_col > 0 && size.ws_row > 0).then_some((size.ws_col, size.ws_row))
}

/// The local terminal in raw mode, restored on drop (also on an error).
struct RawTerminal {
    saved: nix::sys::termios::Termios,
}

impl RawTerminal {
    fn enter() -> anyhow::Result<RawTerminal> {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin)?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(&stdin, SetArg::TCSANOW, &raw)?;
        Ok(RawTerminal { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(std::io::stdin(), nix::sys::termios::SetArg::TCSANOW, &self.saved);
    }
}
