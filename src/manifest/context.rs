//! Resolving an Image's build context against the manifest's directory.
//!
//! Users write `context: ./api` next to the manifest; the controller needs a
//! path that means the same thing whatever its working directory. The loader
//! makes it absolute and checks it exists, so a typo is reported at load time
//! with its position rather than as a failed build minutes later.

use std::path::Path;

use crate::api::validation::{FieldError, FieldPath};
use crate::api::Image;

/// Makes `spec.build.context` absolute (relative to `base_dir`) and checks
/// that it and its Dockerfile exist.
pub fn resolve_build_context(image: &mut Image, base_dir: Option<&Path>) -> Result<(), FieldError> {
    let Some(build) = image.spec.build.as_mut() else { return Ok(()) };
    let Some(context) = build.context.as_mut() else { return Ok(()) };
    let at = FieldPath::root().key("spec").key("build").key("context");
    let error = |message: String| FieldError { path: at.clone(), message };
    let given = Path::new(context.as_str());
    let resolved = match (given.is_absolute(), base_dir) {
        (true, _) => given.to_path_buf(),
        (false, Some(base)) => base.join(given),
        (false, None) => {
            return Err(error(format!(
                "relative build context `{context}` needs a manifest file to be relative to; use an absolute path"
            )))
        }
    };
    let resolved = std::fs::canonicalize(&resolved).map_err(|e| {
        error(format!("build context `{context}` cannot be used ({e}); looked for {}", resolved.display()))
    })?;
    if !resolved.is_dir() {
        return Err(error(format!("build context `{context}` is not a directory ({})", resolved.display())));
    }
    if build.dockerfile_inline.is_none() {
        let dockerfile = build.dockerfile.as_deref().unwrap_or(crate::api::defaults::DOCKERFILE);
        if !resolved.join(dockerfile).is_file() {
            return Err(error(format!(
                "build context `{context}` has no `{dockerfile}`; add one, set `dockerfile`, or use `dockerfileInline`"
            )));
        }
    }
    *context = resolved.display().to_string();
    Ok(())
}
