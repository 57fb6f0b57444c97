//! The HTML of the host-wide pages ([`super::host`]): shells their modules
//! fill. Everything interpolated is escaped.

use super::pages::{escape, layout};

/// The apply page, its editor holding `text`.
pub(super) fn apply(text: &str) -> String {
    let body = format!(
        r#"<h1>Apply</h1>
<p class="meta">Paste or drop manifests (YAML, several documents with <code>---</code>). <b>Plan</b> shows what would change and what the engine would do; nothing is written until you <b>Apply</b> that plan.</p>
<section id="drop" class="drop editor-wrap" aria-label="Manifest editor">
<div class="editor">
<pre id="gutter" class="gutter" aria-hidden="true"></pre>
<textarea id="manifest" spellcheck="false" autocomplete="off" aria-label="Manifest" placeholder="apiVersion: berth.dev/v1alpha1&#10;kind: Container&#10;…">{text}</textarea>
</div>
<p class="actions">
<label class="button" for="manifest-file">Open a file</label><input id="manifest-file" type="file" accept=".yaml,.yml,.json" hidden>
<label><input id="force" type="checkbox"> Write over objects a file or repository owns (it takes them back on its next change)</label>
<button id="plan-button" type="button">Plan</button>
<button id="apply-button" type="button" disabled>Apply this plan</button>
</p>
</section>
<p id="apply-state" class="meta" aria-live="polite"></p>
<ol id="problems" class="problems" aria-live="assertive"></ol>
<section id="plan" hidden><h2>Plan</h2><div id="plan-items"></div></section>"#,
        text = escape(text),
    );
    layout("Apply", true, &body, Some("apply.js"))
}

/// The sources: files, API sets, git repositories.
pub(super) fn sources() -> String {
    let body = r#"<h1>Sources</h1>
<p class="meta">Where the objects come from. A source whose latest state is rejected keeps its last good objects; its errors are below, at their file, line and column.</p>
<div class="scroll"><table id="sources"><thead><tr><th>Source</th><th>Type</th><th>Commit seen</th><th>Commit applied</th><th>Objects</th><th>Read</th><th>Errors</th><th></th></tr></thead><tbody></tbody></table></div>
<p id="sources-state" class="meta" aria-live="polite"></p>
<p id="stream-state" class="stream-state" aria-live="polite"></p>"#;
    layout("Sources", true, body, Some("sources.js"))
}

/// The served DNS records and the route table.
pub(super) fn network() -> String {
    let body = r#"<h1>DNS and routes</h1>
<section><h2>DNS records</h2><div class="scroll"><table id="records"><thead><tr><th>Record</th><th>Name</th><th>Type</th><th>Data</th><th>Ready</th><th>Reason</th></tr></thead><tbody></tbody></table></div></section>
<section><h2>Routes</h2><div class="scroll"><table id="routes"><thead><tr><th>Route</th><th>Hostnames</th><th>Paths</th><th>Backends</th><th>Ready</th><th>Reason</th></tr></thead><tbody></tbody></table></div></section>
<p id="stream-state" class="stream-state" aria-live="polite"></p>"#;
    layout("DNS and routes", true, body, Some("network.js"))
}
