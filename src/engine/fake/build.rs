//! The fake engine's builds: the Dockerfile's steps are checked, not run.
//!
//! A real build runs each `RUN` step in a container of the image so far.
//! The fake has no images' contents, so it only checks what makes the
//! busybox builds of berth's tests succeed or fail on a real engine: every
//! `RUN` program must exist in the image. A program exists when a `COPY` put
//! it at that path, or when it is a command of the fake shell and a shell
//! is there (a `FROM` image other than `scratch`, or a busybox
//! `--install`ed by an earlier step). The build fails, as on Docker, with
//! the step and the missing program.

use std::collections::BTreeSet;
use std::io::Read;

/// Commands the fake shell runs, which a busybox image has.
const SHELL_COMMANDS: [&str; 25] = [
    "sh", "echo", "true", "false", "exit", "sleep", "touch", "rm", "mkdir", "cat", "test", "[", "grep", "id", "pwd",
    "hostname", "exec", "httpd", "wget", "nc", "busybox", "ls", "cp", "mv", "chmod",
];

/// `Ok` when every `RUN` of `dockerfile` in the tar `context` can run.
pub(super) fn check(context: &[u8], dockerfile: &str) -> Result<(), String> {
    let mut text = None;
    let mut archive = tar::Archive::new(context);
    for entry in archive.entries().map_err(|e| format!("reading the context: {e}"))? {
        let mut entry = entry.map_err(|e| format!("reading the context: {e}"))?;
        let path = entry.path().map_err(|e| e.to_string())?.to_string_lossy().trim_start_matches("./").to_string();
        if path == dockerfile {
            let mut body = String::new();
            entry.read_to_string(&mut body).map_err(|e| format!("reading {dockerfile}: {e}"))?;
            text = Some(body);
        }
    }
    let text = text.ok_or_else(|| format!("Cannot locate specified Dockerfile: {dockerfile}"))?;
    let mut files: BTreeSet<String> = BTreeSet::new();
    let mut shell = false;
    for (number, line) in text.lines().map(str::trim).enumerate() {
        let (instruction, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.trim();
        match instruction.to_ascii_uppercase().as_str() {
            "FROM" => shell = !rest.starts_with("scratch"),
            "COPY" | "ADD" => {
                let parts: Vec<&str> = rest.split_whitespace().filter(|p| !p.starts_with("--")).collect();
                if let [sources @ .., dest] = &parts[..] {
                    for source in sources {
                        let name = source.rsplit('/').next().unwrap_or(source);
                        let target = if dest.ends_with('/') { format!("{dest}{name}") } else { dest.to_string() };
                        files.insert(target);
                    }
                }
            }
            "RUN" => {
                let argv: Vec<String> = match serde_json::from_str::<Vec<String>>(rest) {
                    Ok(argv) => argv,
                    // The shell form runs `/bin/sh -c`.
                    Err(_) => vec!["/bin/sh".into()],
                };
                let program = argv.first().cloned().unwrap_or_default();
                let name = program.rsplit('/').next().unwrap_or(&program);
                let exists = files.contains(&program) || (shell && SHELL_COMMANDS.contains(&name));
                if !exists {
                    return Err(format!(
                        "step {}: RUN {rest}: executable file `{program}` not found in $PATH",
                        number + 1
                    ));
                }
                if name == "busybox" && argv.iter().any(|a| a == "--install") {
                    shell = true;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::build_context::BuildContext;

    fn tar(dockerfile: &str) -> Vec<u8> {
        let context = BuildContext::new().file("Dockerfile", dockerfile, 0o644).unwrap();
        context.file("busybox", "binary", 0o755).unwrap().to_tar().unwrap()
    }

    #[test]
    fn run_steps_need_their_program() {
        let busybox = "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nRUN echo ok\n";
        assert_eq!(check(&tar(busybox), "Dockerfile"), Ok(()));
        assert!(check(&tar("FROM scratch\nRUN [\"/no-such-program\"]\n"), "Dockerfile").is_err());
        assert!(check(&tar("FROM scratch\nRUN echo no shell\n"), "Dockerfile").is_err());
        assert_eq!(check(&tar("FROM scratch\n"), "Dockerfile"), Ok(()));
        assert!(check(&tar("FROM scratch\n"), "Other.dockerfile").is_err());
    }
}
