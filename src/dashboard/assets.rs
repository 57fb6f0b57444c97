//! The dashboard's static files, embedded in the binary: berth's own CSS
//! and ES modules, and xterm.js (`ui/assets/vendor`, copied from npm by
//! `scripts/ui-assets.sh`). Nothing is fetched from the internet at run
//! time, and the binary needs no files beside it.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// Path, content type and bytes of every asset.
const ASSETS: &[(&str, &str, &[u8])] = &[
    ("berth.css", "text/css; charset=utf-8", include_bytes!("../../ui/assets/berth.css")),
    ("common.js", "text/javascript; charset=utf-8", include_bytes!("../../ui/assets/common.js")),
    ("overview.js", "text/javascript; charset=utf-8", include_bytes!("../../ui/assets/overview.js")),
    ("object.js", "text/javascript; charset=utf-8", include_bytes!("../../ui/assets/object.js")),
    ("events.js", "text/javascript; charset=utf-8", include_bytes!("../../ui/assets/events.js")),
    ("files.js", "text/javascript; charset=utf-8", include_bytes!("../../ui/assets/files.js")),
    ("logs.js", "text/javascript; charset=utf-8", include_bytes!("../../ui/assets/logs.js")),
    ("terminal.js", "text/javascript; charset=utf-8", include_bytes!("../../ui/assets/terminal.js")),
    ("apply.js", "text/javascript; charset=utf-8", include_bytes!("../../ui/assets/apply.js")),
    ("sources.js", "text/javascript; charset=utf-8", include_bytes!("../../ui/assets/sources.js")),
    ("network.js", "text/javascript; charset=utf-8", include_bytes!("../../ui/assets/network.js")),
    ("actions.js", "text/javascript; charset=utf-8", include_bytes!("../../ui/assets/actions.js")),
    ("vendor/xterm.mjs", "text/javascript; charset=utf-8", include_bytes!("../../ui/assets/vendor/xterm.mjs")),
    ("vendor/xterm.css", "text/css; charset=utf-8", include_bytes!("../../ui/assets/vendor/xterm.css")),
    ("vendor/addon-fit.mjs", "text/javascript; charset=utf-8", include_bytes!("../../ui/assets/vendor/addon-fit.mjs")),
];

/// `GET /ui/assets/{*path}`: an embedded file. Assets hold no secrets and
/// need no session (the login page uses them).
pub(super) async fn asset(Path(path): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == path) {
        Some((_, content_type, bytes)) => {
            ([(header::CONTENT_TYPE, *content_type), (header::CACHE_CONTROL, "no-cache")], *bytes).into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

/// The embedded assets' names (tests).
pub fn names() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|(name, _, _)| *name)
}
