//! The fake engine's processes: a tiny shell over a [`Host`].
//!
//! Real engines run the containers' commands; the fake interprets the small
//! subset of busybox `sh` that berth's tests, examples and health checks
//! use, so that logs, exit codes, health checks and containers reaching
//! each other by alias behave as on Docker and Podman. The model:
//!
//! - **grammar**: commands separated by `;` or newlines, joined by `&&` and
//!   `||`; words with `'...'`, `"..."`, `\` escapes, `$VAR`, `${VAR}`, `$?`
//!   and `$(...)`; redirections `>`, `>>`, `<`, `2>`, `2>&1`. No pipes,
//!   loops or background jobs; expansions are never split into words.
//! - **commands**: `echo`, `true`, `false`, `exit`, `sleep`, `touch`, `rm`,
//!   `mkdir`, `cat`, `test`/`[` (`-f -e -n -z = !=`), `grep -q` (a fixed
//!   string, `^` anchors it), `id -u`/`-g`, `pwd`, `hostname`, `exec`,
//!   `sh -c`, `httpd` (serves files from a directory on a port), `wget`
//!   (fetches from a server by address, container name or alias), `nc`
//!   (connects to a port). Anything else is "not found", exit 127.
//! - **signals**: no command handles SIGTERM, as busybox's do not when they
//!   are PID 1: a stop waits the grace period, then kills (exit 137).
//!
//! The shell knows nothing of the engine: files, names, servers and time
//! are the [`Host`]'s.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::FutureExt;

/// What a process sees of its container and the world around it.
#[async_trait]
pub(crate) trait Host: Send + Sync {
    /// A file's bytes, `None` when it does not exist. Absolute paths.
    fn read(&self, path: &str) -> Option<Vec<u8>>;
    /// Writes (or appends to) a file; `Err` carries the reason
    /// (`Read-only file system`).
    fn write(&self, path: &str, data: &[u8], append: bool) -> Result<(), String>;
    /// Removes a file; `Ok(false)` when there was none.
    fn remove(&self, path: &str) -> Result<bool, String>;
    /// Whether a directory may be made there.
    fn mkdir(&self, path: &str) -> Result<(), String>;
    /// `(uid, gid)`.
    fn ids(&self) -> (String, String);
    /// The container's host name.
    fn hostname(&self) -> String;
    /// Output of the process (not of a `$(...)`), in order.
    fn output(&self, bytes: &[u8]);
    /// Starts serving the files under `root` on `port`.
    fn listen(&self, port: u16, root: &str);
    /// Whether something listens on `host:port`.
    fn reachable(&self, host: &str, port: u16) -> bool;
    /// `GET path` from `host:port`: `None` when nothing listens, else the
    /// file (`None` inside: 404).
    fn fetch(&self, host: &str, port: u16, path: &str) -> Option<Option<Vec<u8>>>;
    /// Waits (in tokio time).
    async fn sleep(&self, duration: Duration);
}

/// One piece of a word.
#[derive(Clone, Debug, PartialEq)]
enum Part {
    Text(String),
    Var(String),
    Command(String),
}

type Word = Vec<Part>;

#[derive(Clone, Debug, PartialEq)]
enum Redirect {
    /// `n>` / `n>>` to a file.
    Out { fd: u8, append: bool, target: Word },
    /// `<` from a file (only `/dev/null` matters: nothing is read).
    In,
    /// `2>&1`.
    ErrToOut,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Command {
    words: Vec<Word>,
    redirects: Vec<Redirect>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Connector {
    Always,
    And,
    Or,
}

#[derive(Debug, PartialEq)]
enum Token {
    Word(Word),
    Connector(Connector),
    Redirect(u8, &'static str),
}

/// Splits a script into tokens.
fn tokenize(script: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = script.chars().collect();
    let mut tokens = Vec::new();
    let mut word: Word = Vec::new();
    let mut in_word = false;
    let mut i = 0;
    fn push_text(word: &mut Word, c: char) {
        match word.last_mut() {
            Some(Part::Text(text)) => text.push(c),
            _ => word.push(Part::Text(c.to_string())),
        }
    }
    fn end_word(tokens: &mut Vec<Token>, word: &mut Word, in_word: &mut bool) {
        if *in_word {
            tokens.push(Token::Word(std::mem::take(word)));
            *in_word = false;
        }
    }
    // `$...` at `chars[i] == '$'`; returns the part and the index after it.
    let dollar = |i: usize| -> Result<(Part, usize), String> {
        match chars.get(i + 1) {
            Some('(') => {
                let (mut depth, mut j, mut quote) = (1, i + 2, None);
                while j < chars.len() {
                    match (quote, chars[j]) {
                        (None, '\'' | '"') => quote = Some(chars[j]),
                        (Some(q), c) if c == q => quote = None,
                        (None, '(') => depth += 1,
                        (None, ')') => {
                            depth -= 1;
                            if depth == 0 {
                                return Ok((Part::Command(chars[i + 2..j].iter().collect()), j + 1));
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
                Err("unterminated $(".into())
            }
            Some('{') => {
                let end = chars[i..].iter().position(|&c| c == '}').ok_or("unterminated ${")? + i;
                Ok((Part::Var(chars[i + 2..end].iter().collect()), end + 1))
            }
            Some('?') => Ok((Part::Var("?".into()), i + 2)),
            Some(c) if c.is_ascii_alphabetic() || *c == '_' => {
                let end = (i + 1..chars.len())
                    .find(|&j| !(chars[j].is_ascii_alphanumeric() || chars[j] == '_'))
                    .unwrap_or(chars.len());
                Ok((Part::Var(chars[i + 1..end].iter().collect()), end))
            }
            _ => Ok((Part::Text("$".into()), i + 1)),
        }
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' => {
                end_word(&mut tokens, &mut word, &mut in_word);
                i += 1;
            }
            '\n' | ';' => {
                end_word(&mut tokens, &mut word, &mut in_word);
                tokens.push(Token::Connector(Connector::Always));
                i += 1;
            }
            '#' if !in_word => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '&' | '|' => {
                end_word(&mut tokens, &mut word, &mut in_word);
                let doubled = chars.get(i + 1) == Some(&c);
                let connector = match (c, doubled) {
                    ('&', true) => Connector::And,
                    ('|', true) => Connector::Or,
                    ('&', false) => Connector::Always,
                    _ => return Err("pipes are not supported".into()),
                };
                tokens.push(Token::Connector(connector));
                i += if doubled { 2 } else { 1 };
            }
            '>' | '<' => {
                // A lone `2` or `1` just before is the descriptor.
                let fd = match (&word[..], in_word) {
                    ([Part::Text(text)], true) if text == "1" || text == "2" => {
                        let fd = text.parse().unwrap_or(1);
                        word.clear();
                        in_word = false;
                        fd
                    }
                    _ => {
                        end_word(&mut tokens, &mut word, &mut in_word);
                        1
                    }
                };
                let rest: String = chars[i..chars.len().min(i + 3)].iter().collect();
                let (op, len) = if rest.starts_with(">&1") {
                    (">&1", 3)
                } else if rest.starts_with(">>") {
                    (">>", 2)
                } else if c == '>' {
                    (">", 1)
                } else {
                    ("<", 1)
                };
                tokens.push(Token::Redirect(fd, op));
                i += len;
            }
            '\'' => {
                let end = chars[i + 1..].iter().position(|&c| c == '\'').ok_or("unterminated '")? + i + 1;
                word.push(Part::Text(chars[i + 1..end].iter().collect()));
                in_word = true;
                i = end + 1;
            }
            '"' => {
                in_word = true;
                word.push(Part::Text(String::new()));
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("unterminated \"".into()),
                        Some('"') => break,
                        Some('\\') if matches!(chars.get(i + 1), Some('"' | '\\' | '$' | '`')) => {
                            push_text(&mut word, chars[i + 1]);
                            i += 2;
                        }
                        Some('$') => {
                            let (part, next) = dollar(i)?;
                            word.push(part);
                            i = next;
                        }
                        Some(&c) => {
                            push_text(&mut word, c);
                            i += 1;
                        }
                    }
                }
                i += 1;
            }
            '\\' => {
                if let Some(&next) = chars.get(i + 1) {
                    if next != '\n' {
                        push_text(&mut word, next);
                        in_word = true;
                    }
                }
                i += 2;
            }
            '$' => {
                let (part, next) = dollar(i)?;
                word.push(part);
                in_word = true;
                i = next;
            }
            c => {
                push_text(&mut word, c);
                in_word = true;
                i += 1;
            }
        }
    }
    end_word(&mut tokens, &mut word, &mut in_word);
    Ok(tokens)
}

/// Parses a script into commands, each with what joins it to the one before.
fn parse(script: &str) -> Result<Vec<(Connector, Command)>, String> {
    let mut commands = Vec::new();
    let mut connector = Connector::Always;
    let mut current = Command::default();
    let mut tokens = tokenize(script)?.into_iter();
    let mut finish = |connector: Connector, current: &mut Command| {
        if !current.words.is_empty() || !current.redirects.is_empty() {
            commands.push((connector, std::mem::take(current)));
        }
    };
    while let Some(token) = tokens.next() {
        match token {
            Token::Word(word) => current.words.push(word),
            Token::Redirect(2, ">&1") => current.redirects.push(Redirect::ErrToOut),
            Token::Redirect(_, "<") => {
                tokens.next();
                current.redirects.push(Redirect::In);
            }
            Token::Redirect(fd, op) => match tokens.next() {
                Some(Token::Word(target)) => current.redirects.push(Redirect::Out { fd, append: op == ">>", target }),
                _ => return Err(format!("redirection {op} without a file")),
            },
            Token::Connector(next) => {
                let pushed = !current.words.is_empty() || !current.redirects.is_empty();
                finish(connector, &mut current);
                // `a &&\n b`: a newline after `&&` does not reset it.
                if pushed || next != Connector::Always {
                    connector = next;
                }
            }
        }
    }
    finish(connector, &mut current);
    Ok(commands)
}

/// Where a command's output goes.
enum Sink {
    /// The process's output (the container's log).
    Process,
    /// Collected, for `$(...)`.
    Capture(Vec<u8>),
}

/// How a script ended.
enum Flow {
    Continue(i32),
    Exit(i32),
}

/// A running shell: its variables and working directory.
pub(crate) struct Shell<'h> {
    host: &'h dyn Host,
    env: BTreeMap<String, String>,
    cwd: String,
    status: i32,
}

impl<'h> Shell<'h> {
    pub(crate) fn new(host: &'h dyn Host, env: BTreeMap<String, String>, cwd: Option<&str>) -> Self {
        Shell { host, env, cwd: cwd.unwrap_or("/").to_string(), status: 0 }
    }

    /// Runs `argv` as a process's command line (a `sh -c` script is
    /// interpreted); returns its exit code.
    pub(crate) async fn run_argv(&mut self, argv: &[String]) -> i32 {
        let (mut out, mut err) = (Sink::Process, Sink::Process);
        match self.builtin(argv, &mut out, &mut err).await {
            Flow::Continue(code) | Flow::Exit(code) => code,
        }
    }

    fn script<'a>(&'a mut self, script: &'a str, out: &'a mut Sink, err: &'a mut Sink) -> BoxFuture<'a, Flow> {
        async move {
            let commands = match parse(script) {
                Ok(commands) => commands,
                Err(error) => {
                    self.emit(err, format!("sh: syntax error: {error}\n").as_bytes());
                    return Flow::Continue(2);
                }
            };
            for (connector, command) in commands {
                let skip = match connector {
                    Connector::Always => false,
                    Connector::And => self.status != 0,
                    Connector::Or => self.status == 0,
                };
                if skip {
                    continue;
                }
                match self.command(&command, out, err).await {
                    Flow::Continue(code) => self.status = code,
                    Flow::Exit(code) => return Flow::Exit(code),
                }
            }
            Flow::Continue(self.status)
        }
        .boxed()
    }

    fn emit(&self, out: &mut Sink, bytes: &[u8]) {
        match out {
            Sink::Process => self.host.output(bytes),
            Sink::Capture(buffer) => buffer.extend_from_slice(bytes),
        }
    }

    async fn expand(&mut self, word: &Word, err: &mut Sink) -> String {
        let mut text = String::new();
        for part in word {
            match part {
                Part::Text(t) => text.push_str(t),
                Part::Var(name) if name == "?" => text.push_str(&self.status.to_string()),
                Part::Var(name) => text.push_str(self.env.get(name).map_or("", String::as_str)),
                Part::Command(script) => {
                    let mut capture = Sink::Capture(Vec::new());
                    let saved = self.status;
                    let _ = self.script(script, &mut capture, err).await;
                    self.status = saved;
                    if let Sink::Capture(bytes) = capture {
                        text.push_str(String::from_utf8_lossy(&bytes).trim_end_matches('\n'));
                    }
                }
            }
        }
        text
    }

    fn path(&self, path: &str) -> String {
        if path.starts_with('/') {
            path.to_string()
        } else {
            format!("{}/{path}", self.cwd.trim_end_matches('/'))
        }
    }

    async fn command(&mut self, command: &Command, out: &mut Sink, err: &mut Sink) -> Flow {
        let mut argv = Vec::new();
        for word in &command.words {
            argv.push(self.expand(word, err).await);
        }
        // Output is collected and routed once the command ends: what berth
        // reads (logs, files) never shows half a command's output.
        let (mut stdout, mut stderr) = (Sink::Capture(Vec::new()), Sink::Capture(Vec::new()));
        let flow = self.builtin(&argv, &mut stdout, &mut stderr).await;
        let mut targets: [Option<(String, bool)>; 2] = [None, None];
        for redirect in &command.redirects {
            match redirect {
                Redirect::Out { fd, append, target } => {
                    let target = self.expand(target, err).await;
                    targets[usize::from(*fd == 2)] = Some((self.path(&target), *append));
                }
                Redirect::ErrToOut => targets[1] = targets[0].clone(),
                Redirect::In => {}
            }
        }
        let mut failed = None;
        for (sink, target, to_err) in [(stdout, &targets[0], false), (stderr, &targets[1], true)] {
            let Sink::Capture(bytes) = sink else { continue };
            match target {
                None => self.emit(if to_err { &mut *err } else { &mut *out }, &bytes),
                Some((path, _)) if path == "/dev/null" => {}
                Some((path, append)) => {
                    if let Err(error) = self.host.write(path, &bytes, *append) {
                        failed = Some(format!("sh: can't create {path}: {error}"));
                    }
                }
            }
        }
        if let Some(message) = failed {
            return self.fail(err, message, 1);
        }
        flow
    }

    /// Reports `message` on stderr; the command's status is `code`.
    fn fail(&self, err: &mut Sink, message: String, code: i32) -> Flow {
        self.emit(err, format!("{message}\n").as_bytes());
        Flow::Continue(code)
    }

    fn builtin<'a>(&'a mut self, argv: &'a [String], out: &'a mut Sink, err: &'a mut Sink) -> BoxFuture<'a, Flow> {
        async move {
            let Some(name) = argv.first() else { return Flow::Continue(0) };
            let args = &argv[1..];
            let name = name.rsplit('/').next().unwrap_or(name);
            match name {
                "true" | ":" => Flow::Continue(0),
                "false" => Flow::Continue(1),
                "exit" => Flow::Exit(args.first().and_then(|a| a.parse().ok()).unwrap_or(self.status)),
                "exec" => match self.builtin(args, out, err).await {
                    Flow::Continue(code) | Flow::Exit(code) => Flow::Exit(code),
                },
                "sh" => match args {
                    [flag, script, ..] if flag == "-c" => {
                        let script = script.clone();
                        self.script(&script, out, err).await
                    }
                    _ => self.fail(err, "sh: only `sh -c SCRIPT` runs here".into(), 2),
                },
                "echo" => {
                    let (newline, words) = match args.first().map(String::as_str) {
                        Some("-n") => (false, &args[1..]),
                        _ => (true, args),
                    };
                    let mut text = words.join(" ");
                    if newline {
                        text.push('\n');
                    }
                    self.emit(out, text.as_bytes());
                    Flow::Continue(0)
                }
                "sleep" => {
                    let seconds: f64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(0.0);
                    self.host.sleep(Duration::from_secs_f64(seconds.max(0.0))).await;
                    Flow::Continue(0)
                }
                "touch" | "mkdir" | "rm" => {
                    let files = args.iter().filter(|a| !a.starts_with('-'));
                    let forced = args.iter().any(|a| a == "-f" || a == "-rf");
                    for file in files {
                        let path = self.path(file);
                        let outcome = match name {
                            "touch" => match self.host.read(&path) {
                                Some(_) => Ok(()),
                                None => self.host.write(&path, b"", false),
                            },
                            "mkdir" => self.host.mkdir(&path),
                            _ => match self.host.remove(&path) {
                                Ok(false) if !forced => Err("No such file or directory".into()),
                                other => other.map(|_| ()),
                            },
                        };
                        if let Err(error) = outcome {
                            return self.fail(err, format!("{name}: {file}: {error}"), 1);
                        }
                    }
                    Flow::Continue(0)
                }
                "cat" => {
                    for file in args {
                        match self.host.read(&self.path(file)) {
                            Some(bytes) => self.emit(out, &bytes),
                            None => {
                                return self.fail(
                                    err,
                                    format!("cat: can't open '{file}': No such file or directory"),
                                    1,
                                )
                            }
                        }
                    }
                    Flow::Continue(0)
                }
                "test" | "[" => {
                    let args: Vec<&str> = args.iter().map(String::as_str).filter(|a| *a != "]").collect();
                    let ok = match args[..] {
                        ["-f" | "-e", file] => self.host.read(&self.path(file)).is_some(),
                        ["-n", text] => !text.is_empty(),
                        ["-z", text] => text.is_empty(),
                        [a, "=", b] => a == b,
                        [a, "!=", b] => a != b,
                        [text] => !text.is_empty(),
                        _ => false,
                    };
                    Flow::Continue(i32::from(!ok))
                }
                "grep" => {
                    let operands: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
                    let quiet = args.iter().any(|a| a == "-q");
                    let [pattern, file] = operands[..] else { return self.fail(err, "grep: usage".into(), 2) };
                    let Some(bytes) = self.host.read(&self.path(file)) else {
                        return self.fail(err, format!("grep: {file}: No such file or directory"), 2);
                    };
                    let text = String::from_utf8_lossy(&bytes).into_owned();
                    let found: Vec<&str> = text
                        .lines()
                        .filter(|line| match pattern.strip_prefix('^') {
                            Some(prefix) => line.starts_with(prefix),
                            None => line.contains(pattern.as_str()),
                        })
                        .collect();
                    if !quiet {
                        for line in &found {
                            self.emit(out, format!("{line}\n").as_bytes());
                        }
                    }
                    Flow::Continue(i32::from(found.is_empty()))
                }
                "id" => {
                    let (uid, gid) = self.host.ids();
                    let text = match args.first().map(String::as_str) {
                        Some("-u") => uid,
                        Some("-g") => gid,
                        _ => format!("uid={uid} gid={gid}"),
                    };
                    self.emit(out, format!("{text}\n").as_bytes());
                    Flow::Continue(0)
                }
                "pwd" => {
                    let cwd = format!("{}\n", self.cwd);
                    self.emit(out, cwd.as_bytes());
                    Flow::Continue(0)
                }
                "hostname" => {
                    let host = format!("{}\n", self.host.hostname());
                    self.emit(out, host.as_bytes());
                    Flow::Continue(0)
                }
                "httpd" => {
                    let port = flag_value(args, "-p").and_then(|p| p.rsplit(':').next()?.parse().ok()).unwrap_or(80);
                    let root = self.path(flag_value(args, "-h").unwrap_or("."));
                    self.host.listen(port, &root);
                    if args.iter().any(|a| a == "-f") {
                        // In the foreground: serves until killed.
                        std::future::pending::<()>().await;
                    }
                    Flow::Continue(0)
                }
                "wget" => {
                    let target = flag_value(args, "-O");
                    let Some(url) = args.iter().rev().find(|a| a.starts_with("http://")) else {
                        return self.fail(err, "wget: only http:// URLs".into(), 1);
                    };
                    let rest = &url["http://".len()..];
                    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                    let (host, port) = match authority.rsplit_once(':') {
                        Some((host, port)) => (host, port.parse().unwrap_or(80)),
                        None => (authority, 80),
                    };
                    let path = if path.is_empty() { "/" } else { path };
                    match self.host.fetch(host, port, path) {
                        None => self.fail(
                            err,
                            format!("wget: can't connect to remote host ({host}): Connection refused"),
                            1,
                        ),
                        Some(None) => self.fail(err, "wget: server returned error: HTTP/1.1 404 Not Found".into(), 1),
                        Some(Some(body)) => match target {
                            Some("-") => {
                                self.emit(out, &body);
                                Flow::Continue(0)
                            }
                            Some("/dev/null") => Flow::Continue(0),
                            file => {
                                let file = file.map_or_else(
                                    || path.rsplit('/').next().unwrap_or("index.html").to_string(),
                                    str::to_string,
                                );
                                match self.host.write(&self.path(&file), &body, false) {
                                    Ok(()) => Flow::Continue(0),
                                    Err(error) => self.fail(err, format!("wget: can't open '{file}': {error}"), 1),
                                }
                            }
                        },
                    }
                }
                "nc" => {
                    let operands: Vec<&String> = args
                        .iter()
                        .enumerate()
                        .filter(|(i, a)| !a.starts_with('-') && (*i == 0 || args[i - 1] != "-w"))
                        .map(|(_, a)| a)
                        .collect();
                    let [host, port] = operands[..] else {
                        return self.fail(err, "nc: usage: nc [-z] HOST PORT".into(), 1);
                    };
                    let reachable = port.parse().is_ok_and(|port| self.host.reachable(host, port));
                    if reachable {
                        Flow::Continue(0)
                    } else {
                        self.fail(err, format!("nc: can't connect to remote host ({host}): Connection refused"), 1)
                    }
                }
                other => self.fail(err, format!("sh: {other}: not found"), 127),
            }
        }
        .boxed()
    }
}

/// The value after `flag` in `args` (`-p 8080`), or glued to it (`-p8080`).
fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let at = args.iter().position(|a| a.starts_with(flag))?;
    match &args[at][flag.len()..] {
        "" => args.get(at + 1).map(String::as_str),
        glued => Some(glued),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A host with one writable filesystem, a log, and one server.
    #[derive(Default)]
    struct TestHost {
        files: Mutex<BTreeMap<String, Vec<u8>>>,
        log: Mutex<Vec<u8>>,
        served: Mutex<Option<(u16, String)>>,
    }

    #[async_trait]
    impl Host for TestHost {
        fn read(&self, path: &str) -> Option<Vec<u8>> {
            self.files.lock().unwrap().get(path).cloned()
        }
        fn write(&self, path: &str, data: &[u8], append: bool) -> Result<(), String> {
            if path.starts_with("/ro/") {
                return Err("Read-only file system".into());
            }
            let mut files = self.files.lock().unwrap();
            let file = files.entry(path.to_string()).or_default();
            if !append {
                file.clear();
            }
            file.extend_from_slice(data);
            Ok(())
        }
        fn remove(&self, path: &str) -> Result<bool, String> {
            Ok(self.files.lock().unwrap().remove(path).is_some())
        }
        fn mkdir(&self, _path: &str) -> Result<(), String> {
            Ok(())
        }
        fn ids(&self) -> (String, String) {
            ("1".into(), "2".into())
        }
        fn hostname(&self) -> String {
            "box".into()
        }
        fn output(&self, bytes: &[u8]) {
            self.log.lock().unwrap().extend_from_slice(bytes);
        }
        fn listen(&self, port: u16, root: &str) {
            *self.served.lock().unwrap() = Some((port, root.to_string()));
        }
        fn reachable(&self, _host: &str, port: u16) -> bool {
            self.served.lock().unwrap().as_ref().is_some_and(|(p, _)| *p == port)
        }
        fn fetch(&self, host: &str, port: u16, path: &str) -> Option<Option<Vec<u8>>> {
            let root = self.served.lock().unwrap().clone().filter(|(p, _)| *p == port)?.1;
            let file = if path.ends_with('/') { format!("{path}index.html") } else { path.to_string() };
            let _ = host;
            Some(self.read(&format!("{root}{file}")))
        }
        async fn sleep(&self, _duration: Duration) {}
    }

    async fn run(host: &TestHost, script: &str) -> (i32, String) {
        let env = BTreeMap::from([("NAME".to_string(), "world".to_string())]);
        let code = Shell::new(host, env, Some("/work")).run_argv(&["sh".into(), "-c".into(), script.into()]).await;
        let log = String::from_utf8(std::mem::take(&mut *host.log.lock().unwrap())).unwrap();
        (code, log)
    }

    #[tokio::test]
    async fn scripts_run_with_variables_substitutions_and_connectors() {
        let host = TestHost::default();
        assert_eq!(
            run(&host, "echo \"hi $NAME\" 'as $NAME'; echo id=$(id -u):$(id -g) at $(pwd)").await,
            (0, "hi world as $NAME\nid=1:2 at /work\n".into())
        );
        assert_eq!(run(&host, "false && echo no || echo yes; exit 3; echo never").await, (3, "yes\n".into()));
        assert_eq!(run(&host, "touch /ro/x 2>/dev/null || echo read-only").await, (0, "read-only\n".into()));
        assert_eq!(run(&host, "nosuch").await, (127, "sh: nosuch: not found\n".into()));
        assert_eq!(
            run(&host, "echo \"{\\\"a\\\":1}\" > f; cat /work/f\ntest -f f && rm f; test -f f").await,
            (1, "{\"a\":1}\n".into())
        );
        assert_eq!(
            run(&host, "echo nameserver 1.2.3.4 > /r; grep -q '^nameserver 1.2' /r && echo dns").await,
            (0, "dns\n".into())
        );
    }

    #[tokio::test]
    async fn servers_answer_fetches_and_connects() {
        let host = TestHost::default();
        let (code, _) = run(&host, "mkdir -p /www && echo served > /www/index.html && httpd -p 8080 -h /www").await;
        assert_eq!(code, 0);
        assert_eq!(run(&host, "wget -q -O- http://svc:8080/").await, (0, "served\n".into()));
        assert_eq!(run(&host, "wget -q -O /dev/null http://svc:8080/missing").await.0, 1);
        assert_eq!(
            run(&host, "nc -z 127.0.0.1 8080 2>/dev/null || nc -w 2 127.0.0.1 8080 </dev/null >/dev/null 2>&1").await.0,
            0
        );
        assert_eq!(run(&host, "nc -z 127.0.0.1 9999 2>/dev/null").await, (1, String::new()));
    }
}
