//! An error with its causes in one line, `outer: cause: root cause`, as
//! `anyhow` prints with `{:#}`: the library returns typed errors (anyhow is
//! the binary's), and its messages still say everything that went wrong.

use std::error::Error;
use std::fmt;

/// Displays `error` followed by each of its sources, `: `-separated.
pub struct Chain<'a>(pub &'a dyn Error);

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut said = self.0.to_string();
        f.write_str(&said)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            // A wrapper that already prints its cause is not repeated.
            if !said.ends_with(&text) {
                write!(f, ": {text}")?;
            }
            said = text;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("reading the manifest")]
    struct Outer(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("reading the manifest: {0}")]
    struct Verbose(#[source] std::io::Error);

    #[test]
    fn every_cause_is_said_once() {
        let io = || std::io::Error::new(std::io::ErrorKind::PermissionDenied, "permission denied");
        assert_eq!(Chain(&Outer(io())).to_string(), "reading the manifest: permission denied");
        assert_eq!(Chain(&Verbose(io())).to_string(), "reading the manifest: permission denied");
    }
}
