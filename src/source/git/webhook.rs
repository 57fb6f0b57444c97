//! Push webhooks: a forge tells berth a branch moved, berth polls at once
//! instead of at the next interval.
//!
//! A hook is authenticated by the shared secret (`--git-webhook-secret-file`),
//! not by the API token, since forges cannot send one: GitHub (and Gitea,
//! Forgejo) sign the body, `X-Hub-Signature-256: sha256=<HMAC-SHA256 of the
//! body, hex>`; GitLab sends the secret itself, `X-Gitlab-Token`. Both are
//! compared in constant time. A hook only ever triggers a poll: it carries no
//! state berth trusts, so a replayed hook costs one fetch and changes
//! nothing that the repository does not say.
//!
//! Which sources a hook polls: those whose repository the payload names
//! (GitHub's and Gitea's `repository.clone_url`/`ssh_url`/…, GitLab's
//! `project.git_http_url`/`git_ssh_url`/…, compared without scheme, user,
//! port and `.git`), and, when the payload has a `ref`, whose branch it is.
//! A payload that names no repository at all (not JSON, a test delivery)
//! polls every source.
//!
//! A delivery seen in the last [`DELIVERY_WINDOW`] is answered as a
//! duplicate and polls nothing: the same delivery id (GitHub's
//! `X-GitHub-Delivery`, Gitea's `X-Gitea-Delivery`, GitLab's
//! `X-Gitlab-Event-UUID`), or the same signed body under another id (the id
//! is not signed, so a replay could change it). A forge's redelivery and a
//! replayed capture cost nothing then; the interval poll still runs.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::Value;
use tokio::sync::Notify;

use super::GitSpec;

/// How long a delivery is remembered.
pub const DELIVERY_WINDOW: Duration = Duration::from_secs(600);
/// Most deliveries remembered (the oldest are forgotten first).
const DELIVERIES_KEPT: usize = 1024;

/// Headers that carry a forge's delivery id.
pub const DELIVERY_HEADERS: [&str; 3] = ["x-github-delivery", "x-gitea-delivery", "x-gitlab-event-uuid"];

/// The secret and the sources hooks can trigger.
#[derive(Clone, Default)]
pub struct GitHooks {
    /// The shared secret; `None` disables the endpoint.
    secret: Option<Arc<[u8]>>,
    targets: Vec<Target>,
    /// Recent deliveries, oldest first.
    seen: Arc<Mutex<VecDeque<Delivery>>>,
}

/// A delivery remembered: its id (if the forge sent one), the digest of
/// its body, when it came.
type Delivery = (Option<Vec<u8>>, [u8; 32], Instant);

#[derive(Clone)]
struct Target {
    spec: GitSpec,
    /// Wakes the source's poll loop.
    trigger: Arc<Notify>,
}

/// Why a hook was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No secret is configured: hooks are off.
    NoSecret,
    /// Neither `X-Hub-Signature-256` nor `X-Gitlab-Token` was sent.
    Missing,
    /// The signature or token does not match the secret.
    Bad,
}

impl GitHooks {
    /// Hooks authenticated by `secret` (none: every hook is refused).
    pub fn new(secret: Option<Vec<u8>>) -> Self {
        GitHooks { secret: secret.map(Into::into), ..GitHooks::default() }
    }

    /// Registers a source; returns the trigger its poll loop waits on.
    pub fn follow(&mut self, spec: GitSpec) -> Arc<Notify> {
        let trigger = Arc::new(Notify::new());
        self.targets.push(Target { spec, trigger: trigger.clone() });
        trigger
    }

    /// Checks a hook's signature (GitHub) or token (GitLab) against the
    /// secret. The signature wins when both are sent.
    pub fn authenticate(
        &self,
        github_signature: Option<&[u8]>,
        gitlab_token: Option<&[u8]>,
        body: &[u8],
    ) -> Result<(), Refusal> {
        let secret = self.secret.as_deref().ok_or(Refusal::NoSecret)?;
        let good = match (github_signature, gitlab_token) {
            (Some(signature), _) => signature_matches(secret, signature, body),
            (None, Some(token)) => constant_time_eq(secret, token),
            (None, None) => return Err(Refusal::Missing),
        };
        if good {
            Ok(())
        } else {
            Err(Refusal::Bad)
        }
    }

    /// Records an authenticated delivery; `false` when it was seen within
    /// [`DELIVERY_WINDOW`] (by its id, or by its body).
    pub fn first_delivery(&self, id: Option<&[u8]>, body: &[u8]) -> bool {
        use sha2::Digest;
        let digest: [u8; 32] = sha2::Sha256::digest(body).into();
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        while seen.front().is_some_and(|(_, _, at)| now.duration_since(*at) > DELIVERY_WINDOW) {
            seen.pop_front();
        }
        let duplicate = seen
            .iter()
            .any(|(seen_id, seen_digest, _)| *seen_digest == digest || (id.is_some() && seen_id.as_deref() == id));
        if duplicate {
            return false;
        }
        if seen.len() == DELIVERIES_KEPT {
            seen.pop_front();
        }
        seen.push_back((id.map(<[u8]>::to_vec), digest, now));
        true
    }

    /// Wakes the sources the push in `body` is about; returns their ids.
    pub fn trigger(&self, body: &[u8]) -> Vec<String> {
        let payload: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        self.trigger_payload(&payload)
    }

    /// Polls the source whose id is `id` now, or every git source without
    /// one (the dashboard's "sync now"); returns the ids polled. Polls
    /// asked for while one runs make one more, not one each.
    pub fn sync(&self, id: Option<&str>) -> Vec<String> {
        let mut triggered = Vec::new();
        // `berth get sources` shows a repository's id without its `git:`.
        let named = |spec: &GitSpec| {
            let full = spec.id();
            id.is_none_or(|id| full == id || full.strip_prefix("git:") == Some(id))
        };
        for target in self.targets.iter().filter(|t| named(&t.spec)) {
            target.trigger.notify_one();
            triggered.push(target.spec.id());
        }
        triggered
    }

    fn trigger_payload(&self, payload: &Value) -> Vec<String> {
        let repositories = repositories(payload);
        let branch = payload.get("ref").and_then(Value::as_str).map(|r| r.strip_prefix("refs/heads/"));
        let mut triggered = Vec::new();
        for target in &self.targets {
            let same_repository = repositories.is_empty() || repositories.contains(&repository_key(&target.spec.url));
            let same_branch = match branch {
                None => true,
                Some(branch) => branch == Some(target.spec.branch.as_str()),
            };
            if same_repository && same_branch {
                target.trigger.notify_one();
                triggered.push(target.spec.id());
            }
        }
        triggered
    }
}

/// Whether `signature` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under
/// `secret`. `verify_slice` compares in constant time.
fn signature_matches(secret: &[u8], signature: &[u8], body: &[u8]) -> bool {
    let Some(hex) = signature.strip_prefix(b"sha256=") else { return false };
    let Some(expected) = decode_hex(hex) else { return false };
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret) else { return false };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

fn decode_hex(hex: &[u8]) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    hex.chunks(2)
        .map(|pair| {
            let digit = |c: u8| (c as char).to_digit(16);
            Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8)
        })
        .collect()
}

/// Equality that takes the same time wherever the inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The repositories a payload names, as [`repository_key`]s.
fn repositories(payload: &Value) -> Vec<String> {
    ["repository", "project"]
        .iter()
        .filter_map(|field| payload.get(field)?.as_object())
        .flat_map(|object| object.values())
        .filter_map(Value::as_str)
        .filter(|text| text.contains("://") || text.contains('@') || text.starts_with('/'))
        .map(repository_key)
        .collect()
}

/// A repository URL without what varies between its spellings: scheme,
/// user, port, `.git`, trailing `/`, case. `https://github.com/o/r.git`,
/// `git@github.com:o/r.git` and `ssh://git@github.com:22/o/r` are all
/// `github.com/o/r`; `file:///srv/r.git` is `/srv/r`.
pub fn repository_key(url: &str) -> String {
    let url = url.trim().to_lowercase();
    let (authority, path) = match url.split_once("://") {
        Some((_, rest)) => match rest.find('/') {
            Some(slash) => (rest[..slash].to_string(), rest[slash..].to_string()),
            None => (rest.to_string(), String::new()),
        },
        // `user@host:path`, or a local path.
        None => match url.split_once(':') {
            Some((host, path)) if !host.contains('/') => (host.to_string(), format!("/{path}")),
            _ => (String::new(), url.clone()),
        },
    };
    let host = authority.rsplit('@').next().unwrap_or("");
    let host = host.split(':').next().unwrap_or("");
    let path = path.trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    let path = if host.is_empty() { path.to_string() } else { path.replace("//", "/") };
    format!("{host}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hooks(urls: &[(&str, &str)]) -> (GitHooks, Vec<Arc<Notify>>) {
        let mut hooks = GitHooks::new(Some(b"s3cret".to_vec()));
        let triggers =
            urls.iter().map(|(url, branch)| hooks.follow(GitSpec::parse(url, branch, "").unwrap())).collect();
        (hooks, triggers)
    }

    fn sign(secret: &[u8], body: &[u8]) -> Vec<u8> {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
        mac.update(body);
        let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256={hex}").into_bytes()
    }

    #[test]
    fn signatures_and_tokens_are_checked_against_the_secret() {
        let (hooks, _) = hooks(&[]);
        let body = br#"{"ref":"refs/heads/main"}"#;
        assert_eq!(hooks.authenticate(Some(&sign(b"s3cret", body)), None, body), Ok(()));
        assert_eq!(hooks.authenticate(Some(&sign(b"other", body)), None, body), Err(Refusal::Bad));
        assert_eq!(hooks.authenticate(Some(&sign(b"s3cret", b"{}")), None, body), Err(Refusal::Bad));
        assert_eq!(hooks.authenticate(Some(b"sha256=zz"), None, body), Err(Refusal::Bad));
        assert_eq!(hooks.authenticate(None, Some(b"s3cret"), body), Ok(()));
        assert_eq!(hooks.authenticate(None, Some(b"s3cre"), body), Err(Refusal::Bad));
        assert_eq!(hooks.authenticate(None, None, body), Err(Refusal::Missing));
        let off = GitHooks::new(None);
        assert_eq!(off.authenticate(None, Some(b"s3cret"), body), Err(Refusal::NoSecret));
    }

    #[test]
    fn spellings_of_one_repository_are_one_key() {
        for url in [
            "https://github.com/o/r.git",
            "https://GitHub.com/o/r/",
            "git@github.com:o/r.git",
            "ssh://git@github.com:22/o/r",
            "https://x-access-token@github.com/o/r",
        ] {
            assert_eq!(repository_key(url), "github.com/o/r", "{url}");
        }
        assert_eq!(repository_key("file:///srv/r.git"), "/srv/r");
        assert_eq!(repository_key("/srv/r.git"), "/srv/r");
    }

    #[test]
    fn a_push_wakes_the_sources_of_its_repository_and_branch() {
        let (hooks, triggers) = hooks(&[
            ("https://github.com/o/r.git", "main"),
            ("https://github.com/o/r.git", "prod"),
            ("https://gitlab.com/o/other.git", "main"),
        ]);
        let github = br#"{"ref":"refs/heads/main","repository":{"clone_url":"https://github.com/o/r.git","ssh_url":"git@github.com:o/r.git"}}"#;
        assert_eq!(hooks.trigger(github), ["git:https://github.com/o/r.git#main:"]);
        let gitlab = br#"{"ref":"refs/heads/main","project":{"git_http_url":"https://gitlab.com/o/other.git"}}"#;
        assert_eq!(hooks.trigger(gitlab), ["git:https://gitlab.com/o/other.git#main:"]);
        let tag = br#"{"ref":"refs/tags/v1","repository":{"clone_url":"https://github.com/o/r.git"}}"#;
        assert!(hooks.trigger(tag).is_empty());
        assert_eq!(hooks.trigger(b"not json").len(), 3);
        // A trigger with nobody waiting is kept for the next wait.
        let waited = triggers[0].notified();
        futures::executor::block_on(waited);
    }
}
