//! Credentials for fetching: an SSH key file for `ssh://` remotes, a token
//! file for `https://` ones.
//!
//! Both are named by flags and read from their files when a fetch needs them
//! (so a rotated token is picked up without a restart). They are never
//! logged, never written to the state directory (the mirror's git config
//! holds nothing of them: they are in-memory overrides) and never put in an
//! error message: errors name the file, not its content. A URL with a
//! password in it is refused for the same reason, since the URL is stored in
//! every object's source.

use std::path::{Path, PathBuf};

use super::error::GitError;

/// The user name sent with a token when the URL names none. GitHub expects
/// `x-access-token` for app and fine-grained tokens; GitLab and Gitea accept
/// any name with a personal access token (write `oauth2@` in the URL for a
/// GitLab OAuth token).
pub const TOKEN_USER: &str = "x-access-token";

/// Where the secrets are.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    /// Private key for `ssh://` and `user@host:path` remotes, given to `ssh -i`.
    pub ssh_key: Option<PathBuf>,
    /// File holding the token for `https://` remotes that ask for credentials.
    pub token_file: Option<PathBuf>,
}

impl Credentials {
    /// Checks that the named files can be read, so that a typo fails the
    /// start rather than every poll.
    pub fn check(&self) -> Result<(), GitError> {
        if let Some(key) = &self.ssh_key {
            std::fs::metadata(key).map_err(|source| GitError::Credentials { file: key.clone(), source })?;
        }
        if let Some(file) = &self.token_file {
            self.token(file)?;
        }
        Ok(())
    }

    /// The token, read now from `file`.
    fn token(&self, file: &Path) -> Result<String, GitError> {
        let text = std::fs::read_to_string(file)
            .map_err(|source| GitError::Credentials { file: file.to_path_buf(), source })?;
        let token = text.trim().to_string();
        if token.is_empty() {
            return Err(GitError::Credentials {
                file: file.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, "the token file is empty"),
            });
        }
        Ok(token)
    }

    /// The `core.sshCommand` that uses the key and never prompts, if a key
    /// is given. gix runs it through the shell, like git does.
    pub fn ssh_command(&self) -> Option<String> {
        let key = self.ssh_key.as_ref()?;
        Some(format!("ssh -i {} -o IdentitiesOnly=yes -o BatchMode=yes", shell_quote(&key.display().to_string())))
    }

    /// The answer to a remote asking for credentials: the token when there
    /// is one, else a refusal that says which flag to use. Never the user's
    /// credential helpers or a prompt: berth runs unattended.
    pub fn answer(
        &self,
        action: gix::credentials::helper::Action,
    ) -> gix::Result<Option<gix::credentials::protocol::Outcome>> {
        use gix::credentials::helper::{Action, NextAction};
        let context = match action {
            Action::Get(context) => context,
            // Nothing is stored or erased: the token file is the only store.
            Action::Store(_) | Action::Erase(_) => return Ok(None),
        };
        let Some(file) = &self.token_file else {
            return Err(gix::Error::from_error(GitError::NoCredentials));
        };
        let password = self.token(file).map_err(gix::Error::from_error)?;
        let username = context.username.clone().filter(|u| !u.is_empty()).unwrap_or_else(|| TOKEN_USER.to_string());
        Ok(Some(gix::credentials::protocol::Outcome {
            identity: gix::sec::identity::Account { username, password, oauth_refresh_token: None },
            next: NextAction::from(context),
        }))
    }
}

/// Quotes `text` for a POSIX shell.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Checks a repository URL: a scheme git knows (or a local path, or
/// `user@host:path`), and no password in it.
pub fn check_url(url: &str) -> Result<(), GitError> {
    let parsed = gix::url::parse(url.as_bytes())
        .map_err(|e| GitError::Url { url: redact(url), reason: e.to_string().replace(url, &redact(url)) })?;
    if parsed.password().is_some() {
        return Err(GitError::Url {
            url: redact(url),
            reason: "it holds a password; put the token in a file named by --git-token-file instead".into(),
        });
    }
    use gix::url::Scheme;
    if !matches!(parsed.scheme, Scheme::File | Scheme::Ssh | Scheme::Http | Scheme::Https | Scheme::Git) {
        return Err(GitError::Url {
            url: redact(url),
            reason: format!("scheme `{}` is not supported; use https://, ssh://, git:// or file://", parsed.scheme),
        });
    }
    Ok(())
}

/// `url` without the password part of its userinfo, for messages about URLs
/// that may hold one (the ones refused by [`check_url`]).
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            let hidden = if userinfo.contains(':') { format!("{user}:***") } else { user.to_string() };
            format!("{scheme}://{hidden}@{host}{path}")
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_and_refused() {
        assert_eq!(redact("https://bob:s3cret@example.com/r.git"), "https://bob:***@example.com/r.git");
        assert_eq!(redact("https://bob@example.com/r.git"), "https://bob@example.com/r.git");
        assert_eq!(redact("git@example.com:r.git"), "git@example.com:r.git");
        let error = check_url("https://bob:s3cret@example.com/r.git").unwrap_err().to_string();
        assert!(!error.contains("s3cret"), "{error}");
        assert!(error.contains("--git-token-file"), "{error}");
    }

    #[test]
    fn known_schemes_and_local_paths_are_accepted() {
        for url in ["https://example.com/r.git", "ssh://git@example.com/r.git", "git@example.com:r.git", "/srv/r.git"] {
            check_url(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        }
        check_url("file:///srv/r.git").unwrap();
        assert!(check_url("ftp://example.com/r.git").is_err());
    }

    #[test]
    fn the_key_path_is_quoted_for_the_shell() {
        let credentials = Credentials { ssh_key: Some("/keys/it's here".into()), token_file: None };
        assert_eq!(
            credentials.ssh_command().unwrap(),
            r"ssh -i '/keys/it'\''s here' -o IdentitiesOnly=yes -o BatchMode=yes"
        );
    }
}
