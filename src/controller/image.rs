//! Image reconciler: a local image tag, built or pulled.
//!
//! Builds pack the context (directory, inline files, inline Dockerfile)
//! into an in-memory tar whose content hash, with the build arguments and
//! target, is stored as a label on the image. The image is rebuilt when that
//! hash changes, and Containers that run it are recreated because the image
//! id is part of their spec hash. While the context is only on disk, berth
//! notices edits by requeueing builds every minute (hashing is cheap).
//!
//! Idempotent: an image whose label matches is left alone; a crash during a
//! build leaves either no image or the finished one.

use std::path::Path;
use std::time::Duration;

use crate::api::image::{ImageBuild, PullPolicy};
use crate::api::{Image, ImageStatus, ObjectKey};
use crate::engine::build_context::{self, BuildContext};
use crate::engine::{labels, BuildRequest};

use super::action::{Action, ReconcileError};
use super::context::{Conditions, Context};

/// Label on built images: hash of the context and build settings.
pub const CONTEXT_HASH: &str = "berth.dev/context-hash";
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

/// Brings the image for `key` in line with the store.
pub async fn reconcile(ctx: &Context, key: &ObjectKey, desired: Option<Image>) -> Result<Action, ReconcileError> {
    // Images are kept: containers elsewhere may run them, and rebuilding
    // is the expensive direction. The record goes.
    let Some(image) = super::finalizer::live(ctx, key, desired)? else { return Ok(Action::await_change()) };
    let tag = image.spec.tag.clone().unwrap_or_else(|| crate::api::defaults::image_tag(&key.namespace, &key.name));
    if let Some(build) = &image.spec.build {
        return reconcile_build(ctx, &image, build, &tag).await;
    }
    let Some(pull) = &image.spec.pull else {
        return Err(ReconcileError::terminal("an Image needs `build` or `pull`"));
    };
    let present = ctx.engine.inspect_image(&pull.reference).await?;
    let present = match (present, pull.policy.unwrap_or(PullPolicy::IfNotPresent)) {
        (Some(info), PullPolicy::IfNotPresent) => info,
        _ => {
            if let Err(e) = ctx.engine.pull_image(&pull.reference).await {
                let message = format!("pull of {} failed: {e}", pull.reference);
                let status = ImageStatus {
                    common: Conditions::from(&image).ready(false, "PullFailed", message.clone(), true).build(),
                    ..image.status.clone().unwrap_or_default()
                };
                ctx.write_status(&image, status)?;
                return Err(ReconcileError::transient(message));
            }
            ctx.record(key, "pulled", "Missing", format!("pulled {}", pull.reference))?;
            ctx.engine
                .inspect_image(&pull.reference)
                .await?
                .ok_or_else(|| ReconcileError::transient("pulled image vanished"))?
        }
    };
    let status = ImageStatus {
        common: Conditions::from(&image).ready(true, "Pulled", pull.reference.clone(), false).build(),
        image_id: present.id,
        tag: pull.reference.clone(),
        context_hash: String::new(),
    };
    ctx.write_status(&image, status)?;
    Ok(Action::await_change())
}

async fn reconcile_build(
    ctx: &Context,
    image: &Image,
    build: &ImageBuild,
    tag: &str,
) -> Result<Action, ReconcileError> {
    let key = image.key();
    // The engine first: packing and hashing the context costs a read and a
    // SHA-256 of all of it, which a reconcile retried against an engine that
    // is away (every few milliseconds at first) would repeat for nothing.
    let existing = ctx.engine.inspect_image(tag).await?;
    let fail = |reason: &str, message: String| -> Result<(), ReconcileError> {
        let status = ImageStatus {
            common: Conditions::from(image).ready(false, reason, message, true).build(),
            ..image.status.clone().unwrap_or_default()
        };
        ctx.write_status(image, status)
    };
    // The host policy, again: a context stored by an older berth, or one
    // that resolves elsewhere since, is not read. (Contexts of followed
    // directories and git checkouts are granted.)
    if let Some(refused) = crate::manifest::policy::refusal(&crate::api::AnyObject::Image(image.clone())) {
        fail("PolicyDenied", refused)?;
        return Ok(Action::await_change());
    }
    let (context, dockerfile) = match pack(build) {
        Ok(packed) => packed,
        Err(e) => {
            let message = format!("cannot pack the build context: {e:#}");
            fail("ContextUnreadable", message.clone())?;
            return Err(ReconcileError::transient(message));
        }
    };
    let tar = context.to_tar().map_err(|e| ReconcileError::caused_by(&e))?;
    let settings = serde_json::json!({ "dockerfile": dockerfile, "args": build.args, "target": build.target });
    let hash = labels::sha256_hex(format!("{}\n{}", labels::sha256_hex(&tar), settings).as_bytes());
    let image_id = match existing.filter(|i| i.labels.get(CONTEXT_HASH) == Some(&hash)) {
        Some(current) => current.id,
        None => {
            let mut engine_labels = labels::owner_labels(&ctx.instance, &key);
            engine_labels.insert(CONTEXT_HASH.into(), hash.clone());
            let request = BuildRequest {
                context_tar: tar,
                dockerfile,
                tag: tag.to_string(),
                build_args: build.args.clone(),
                target: build.target.clone(),
                labels: engine_labels,
            };
            match ctx.engine.build_image(&request).await {
                Ok(output) => {
                    let tail: Vec<&str> = output.log.iter().rev().take(20).rev().map(String::as_str).collect();
                    ctx.record(
                        &key,
                        "built",
                        "ContextChanged",
                        format!("built {tag} ({})\n{}", output.image_id, tail.join("\n")),
                    )?;
                    output.image_id
                }
                Err(e) => {
                    let message = format!("build of {tag} failed: {e}");
                    ctx.record(&key, "build-failed", "BuildFailed", message.clone())?;
                    fail("BuildFailed", message.clone())?;
                    return Err(ReconcileError::transient(message));
                }
            }
        }
    };
    let status = ImageStatus {
        common: Conditions::from(image).ready(true, "Built", tag.to_string(), false).build(),
        image_id,
        tag: tag.to_string(),
        context_hash: hash,
    };
    ctx.write_status(image, status)?;
    Ok(Action::requeue(CONTEXT_RECHECK))
}
