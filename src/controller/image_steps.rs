//! Getting an image, decided before anything is done: pull a reference the
//! engine lacks (or every time, to follow a moving tag), build a context
//! whose hash the image does not carry.
//!
//! The Image reconciler decides both here, and the Container reconciler
//! decides the pull of an `image:` the engine lacks here too; both run the
//! step with [`run`], and the plan (`berth diff`, `/apply?dryRun`) renders
//! the same decision, so a dry run says "pull image x" where the
//! reconciler pulls, and pulls nothing itself.

use crate::api::image::PullPolicy;
use crate::api::ObjectKey;
use crate::engine::ImageInfo;

use super::action::ReconcileError;
use super::context::Context;

/// Label on built images: hash of the context and build settings.
pub const CONTEXT_HASH: &str = "berth.dev/context-hash";

/// Why an image is pulled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PullWhy {
    /// The engine does not have it.
    Missing,
    /// `pull.policy: Always`: the tag may have moved.
    Always,
}

/// Why an image is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BuildWhy {
    /// The engine has no image with the tag.
    Missing,
    /// The tag's image was built from another context or other settings.
    ContextChanged,
}

/// One thing to do to get an image, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ImageStep {
    /// Pull `reference`.
    Pull { reference: String, why: PullWhy },
    /// Build the context and tag the result `tag`.
    Build { tag: String, why: BuildWhy },
}

/// Whether to pull `reference`, given the engine's image of it.
pub(crate) fn decide_pull(reference: &str, policy: PullPolicy, present: Option<&ImageInfo>) -> Option<ImageStep> {
    let why = match (present, policy) {
        (None, _) => PullWhy::Missing,
        (Some(_), PullPolicy::Always) => PullWhy::Always,
        (Some(_), PullPolicy::IfNotPresent) => return None,
    };
    Some(ImageStep::Pull { reference: reference.to_string(), why })
}

/// Whether to build `tag` from a context hashing to `hash`, given the
/// engine's image of the tag.
pub(crate) fn decide_build(tag: &str, hash: &str, present: Option<&ImageInfo>) -> Option<ImageStep> {
    let why = match present {
        None => BuildWhy::Missing,
        Some(image) if image.labels.get(CONTEXT_HASH).map(String::as_str) == Some(hash) => return None,
        Some(_) => BuildWhy::ContextChanged,
    };
    Some(ImageStep::Build { tag: tag.to_string(), why })
}

impl ImageStep {
    /// The reason recorded in the event log.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            ImageStep::Pull { why: PullWhy::Missing, .. } => "ImageMissing",
            ImageStep::Pull { why: PullWhy::Always, .. } => "PullPolicyAlways",
            ImageStep::Build { why: BuildWhy::Missing, .. } => "ImageMissing",
            ImageStep::Build { why: BuildWhy::ContextChanged, .. } => "ContextChanged",
        }
    }

    /// The step as the plan shows it: what will be done, and why.
    pub(crate) fn describe(&self) -> (String, String) {
        match self {
            ImageStep::Pull { reference, why } => (
                format!("pull image {reference}"),
                match why {
                    PullWhy::Missing => "it is not present".into(),
                    PullWhy::Always => "pull policy Always".into(),
                },
            ),
            ImageStep::Build { tag, why } => (
                format!("build image {tag}"),
                match why {
                    BuildWhy::Missing => "no image has the tag".into(),
                    BuildWhy::ContextChanged => "the context or build settings changed".into(),
                },
            ),
        }
    }
}

/// Pulls `reference` for the object `key` and records it. A failed pull
/// is the message to show: a pull is retried, never fatal.
pub(super) async fn pull(
    ctx: &Context,
    key: &ObjectKey,
    reference: &str,
    why: PullWhy,
) -> Result<Result<(), String>, ReconcileError> {
    if let Err(e) = ctx.engine.pull_image(reference).await {
        return Ok(Err(format!("pull of {reference} failed: {e}")));
    }
    let step = ImageStep::Pull { reference: reference.to_string(), why };
    ctx.record(key, "pulled", step.reason(), format!("pulled {reference}"))?;
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(hash: Option<&str>) -> ImageInfo {
        let labels = hash.map(|h| [(CONTEXT_HASH.to_string(), h.to_string())].into()).unwrap_or_default();
        ImageInfo { id: "sha256:1".into(), tags: vec!["web:1".into()], labels }
    }

    fn pull(why: PullWhy) -> Option<ImageStep> {
        Some(ImageStep::Pull { reference: "web:1".into(), why })
    }

    fn build(why: BuildWhy) -> Option<ImageStep> {
        Some(ImageStep::Build { tag: "web:1".into(), why })
    }

    #[test]
    fn a_pull_is_decided_by_presence_and_policy() {
        let present = image(None);
        let rows = [
            (PullPolicy::IfNotPresent, None, pull(PullWhy::Missing)),
            (PullPolicy::IfNotPresent, Some(&present), None),
            (PullPolicy::Always, None, pull(PullWhy::Missing)),
            (PullPolicy::Always, Some(&present), pull(PullWhy::Always)),
        ];
        for (policy, present, expected) in rows {
            assert_eq!(decide_pull("web:1", policy, present), expected, "{policy:?}, present {}", present.is_some());
        }
    }

    #[test]
    fn a_build_is_decided_by_the_context_hash_label() {
        let (same, other, unlabelled) = (image(Some("h1")), image(Some("h0")), image(None));
        let rows = [
            (None, build(BuildWhy::Missing)),
            (Some(&same), None),
            (Some(&other), build(BuildWhy::ContextChanged)),
            (Some(&unlabelled), build(BuildWhy::ContextChanged)),
        ];
        for (present, expected) in rows {
            assert_eq!(decide_build("web:1", "h1", present), expected, "{present:?}");
        }
    }

    #[test]
    fn each_step_says_what_and_why() {
        let described = [pull(PullWhy::Missing), pull(PullWhy::Always), build(BuildWhy::ContextChanged)]
            .map(|s| s.expect("a step").describe());
        assert_eq!(
            described,
            [
                ("pull image web:1".into(), "it is not present".into()),
                ("pull image web:1".into(), "pull policy Always".into()),
                ("build image web:1".into(), "the context or build settings changed".into()),
            ]
        );
    }
}
