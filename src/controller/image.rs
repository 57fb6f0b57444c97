//! Image reconciler: a local image tag, built or pulled.
//!
//! Builds pack the context (directory, inline files, inline Dockerfile)
//! into an in-memory tar whose content hash, with the build arguments and
//! target, is stored as a label on the image. The image is rebuilt when that
//! hash changes, and Containers that run it are recreated because the image
//! id is part of their spec hash. While the context is only on disk, berth
//! notices edits by requeueing builds every minute (hashing is cheap).
//!
//! Decide, then act: [`decide`] reads the engine (through the reflector's
//! image cache) and packs the context, and says which step, if any, is due
//! ([`image_steps`]); the reconciler runs it and the plan renders it.
//!
//! Idempotent: an image whose label matches is left alone; a crash during a
//! build leaves either no image or the finished one.

use std::path::Path;
use std::time::Duration;

use crate::api::image::{ImageBuild, PullPolicy};
use crate::api::{Image, ImageStatus, ObjectKey};
use crate::engine::build_context::{self, BuildContext};
use crate::engine::{labels, BuildRequest, ImageInfo};

use super::action::{Action, ReconcileError};
use super::context::{Conditions, Context};
use super::image_steps::{self, ImageStep, CONTEXT_HASH};
/// Dockerfile name used for `dockerfileInline`.
const INLINE_DOCKERFILE: &str = ".berth.Dockerfile";
/// How often an up-to-date build re-hashes its context to notice edits.
const CONTEXT_RECHECK: Duration = Duration::from_secs(60);

/// Packs the build context; returns it with the Dockerfile path inside it.
fn pack(build: &ImageBuild) -> Result<(BuildContext, String), build_context::BuildContextError> {
    let mut context = match &build.context {
        Some(dir) => build_context::from_dir(Path::new(dir))?,
        None => BuildContext::new(),
    };
    for (path, content) in &build.files {
        context = context.file(path, content.clone(), 0o644)?;
    }
    let dockerfile = match &build.dockerfile_inline {
        Some(text) => {
            context = context.file(INLINE_DOCKERFILE, text.clone(), 0o644)?;
            INLINE_DOCKERFILE.to_string()
        }
        None => build.dockerfile.clone().unwrap_or_else(|| crate::api::defaults::DOCKERFILE.into()),
    };
    Ok((context, dockerfile))
}

/// What an Image needs, read without changing anything.
pub(super) enum Decision {
    /// Pull `reference` (`step` is `None` when it is `present` and its
    /// policy does not pull again).
    Pull { reference: String, present: Option<ImageInfo>, step: Option<ImageStep> },
    /// Build what `request` says (`step` is `None` when the tag's
    /// `present` image was built from this very context, `hash`).
    Build { request: Box<BuildRequest>, hash: String, present: Option<ImageInfo>, step: Option<ImageStep> },
    /// The image cannot be had as declared: the Ready condition's reason
    /// and message, and whether to try again.
    Refused { reason: &'static str, message: String, retry: bool },
}

/// Decides what `image` needs on the engine as it is now. Reads only: the
/// plan calls it as the reconciler does.
pub(super) async fn decide(ctx: &Context, image: &Image) -> Result<Decision, ReconcileError> {
    let key = image.key();
    let tag = image.spec.tag.clone().unwrap_or_else(|| crate::api::defaults::image_tag(&key.namespace, &key.name));
    let Some(build) = &image.spec.build else {
        let Some(pull) = &image.spec.pull else {
            return Err(ReconcileError::terminal("an Image needs `build` or `pull`"));
        };
        let present = ctx.reflector.image(&pull.reference).await?;
        let policy = pull.policy.unwrap_or(PullPolicy::IfNotPresent);
        let step = image_steps::decide_pull(&pull.reference, policy, present.as_ref());
        return Ok(Decision::Pull { reference: pull.reference.clone(), present, step });
    };
    // The engine first: packing and hashing the context costs a read and a
    // SHA-256 of all of it, which a reconcile retried against an engine that
    // is away (every few milliseconds at first) would repeat for nothing.
    let present = ctx.reflector.image(&tag).await?;
    // The host policy, again: a context stored by an older berth, or one
    // that resolves elsewhere since, is not read. (Contexts of followed
    // directories and git checkouts are granted.)
    if let Some(refused) = crate::manifest::policy::refusal(&crate::api::AnyObject::Image(image.clone())) {
        return Ok(Decision::Refused { reason: "PolicyDenied", message: refused, retry: false });
    }
    let (context, dockerfile) = match pack(build) {
        Ok(packed) => packed,
        Err(e) => {
            let message = format!("cannot pack the build context: {e:#}");
            return Ok(Decision::Refused { reason: "ContextUnreadable", message, retry: true });
        }
    };
    let tar = context.to_tar().map_err(|e| ReconcileError::caused_by(&e))?;
    let settings = serde_json::json!({ "dockerfile": dockerfile, "args": build.args, "target": build.target });
    let hash = labels::sha256_hex(format!("{}\n{}", labels::sha256_hex(&tar), settings).as_bytes());
    let step = image_steps::decide_build(&tag, &hash, present.as_ref());
    let mut engine_labels = labels::owner_labels(&ctx.instance, &key);
    engine_labels.insert(CONTEXT_HASH.into(), hash.clone());
    let request = BuildRequest {
        context_tar: tar,
        dockerfile,
        tag,
        build_args: build.args.clone(),
        target: build.target.clone(),
        labels: engine_labels,
    };
    Ok(Decision::Build { request: Box::new(request), hash, present, step })
}

/// Brings the image for `key` in line with the store.
pub async fn reconcile(ctx: &Context, key: &ObjectKey, desired: Option<Image>) -> Result<Action, ReconcileError> {
    // Images are kept: containers elsewhere may run them, and rebuilding
    // is the expensive direction. The record goes.
    let Some(image) = super::finalizer::live(ctx, key, desired)? else { return Ok(Action::await_change()) };
    let fail = |reason: &str, message: String| -> Result<(), ReconcileError> {
        let status = ImageStatus {
            common: Conditions::from(&image).ready(false, reason, message, true).build(),
            ..image.status.clone().unwrap_or_default()
        };
        ctx.write_status(&image, status)
    };
    let (status, next) = match decide(ctx, &image).await? {
        Decision::Refused { reason, message, retry } => {
            fail(reason, message.clone())?;
            return match retry {
                true => Err(ReconcileError::transient(message)),
                false => Ok(Action::await_change()),
            };
        }
        Decision::Pull { reference, present, step } => {
            let present = match step {
                Some(ImageStep::Pull { why, .. }) => {
                    if let Err(message) = image_steps::pull(ctx, key, &reference, why).await? {
                        fail("PullFailed", message.clone())?;
                        return Err(ReconcileError::transient(message));
                    }
                    // The engine itself: the reflector may still hold the
                    // image a moving tag named before.
                    ctx.engine.inspect_image(&reference).await?
                }
                _ => present,
            }
            .ok_or_else(|| ReconcileError::transient(format!("image {reference} vanished after its pull")))?;
            let common = Conditions::from(&image).ready(true, "Pulled", reference.clone(), false).build();
            let status = ImageStatus { common, image_id: present.id, tag: reference, context_hash: String::new() };
            (status, Action::await_change())
        }
        Decision::Build { request, hash, present, step } => {
            let tag = request.tag.clone();
            let image_id = match step {
                Some(step) => match build(ctx, key, *request, &step).await? {
                    Ok(id) => id,
                    Err(message) => {
                        fail("BuildFailed", message.clone())?;
                        return Err(ReconcileError::transient(message));
                    }
                },
                None => present.map(|i| i.id).unwrap_or_default(),
            };
            let common = Conditions::from(&image).ready(true, "Built", tag.clone(), false).build();
            let status = ImageStatus { common, image_id, tag, context_hash: hash };
            (status, Action::requeue(CONTEXT_RECHECK))
        }
    };
    ctx.write_status(&image, status)?;
    Ok(next)
}

/// Runs a build step for `key` and records it: the new image's id, or the
/// message to show when the build failed.
async fn build(
    ctx: &Context,
    key: &ObjectKey,
    request: BuildRequest,
    step: &ImageStep,
) -> Result<Result<String, String>, ReconcileError> {
    let tag = &request.tag;
    match ctx.engine.build_image(&request).await {
        Ok(output) => {
            let tail: Vec<&str> = output.log.iter().rev().take(20).rev().map(String::as_str).collect();
            ctx.record(key, "built", step.reason(), format!("built {tag} ({})\n{}", output.image_id, tail.join("\n")))?;
            Ok(Ok(output.image_id))
        }
        Err(e) => {
            let message = format!("build of {tag} failed: {e}");
            ctx.record(key, "build-failed", "BuildFailed", message.clone())?;
            Ok(Err(message))
        }
    }
}
