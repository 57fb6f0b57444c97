//! The dashboard's HTML: one layout, and a shell per page that its module
//! fills from live streams. Pages are rendered here, not by a front-end
//! build; everything interpolated is escaped.

/// Escapes text for HTML content and attribute values.
pub(super) fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// A whole page: `title`, the navigation (with a logout button when
/// `logged_in`), `body`, and the page's module.
pub(super) fn layout(title: &str, logged_in: bool, body: &str, module: Option<&str>) -> String {
    let nav = if logged_in {
        r#"<nav aria-label="Main"><a href="/ui/">Overview</a><a href="/ui/apply">Apply</a><a href="/ui/sources">Sources</a><a href="/ui/network">DNS and routes</a><a href="/ui/events">Events</a>
<form method="post" action="/ui/logout"><button type="submit">Log out</button></form></nav>"#
    } else {
        ""
    };
    let module = module.map_or(String::new(), |m| format!(r#"<script type="module" src="/ui/assets/{m}"></script>"#));
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>{title} · berth</title>
<link rel="stylesheet" href="/ui/assets/berth.css">
</head>
<body>
<header><a class="brand" href="/ui/">berth</a>{nav}</header>
<main id="main">
{body}
</main>
{module}
</body>
</html>
"#,
        title = escape(title),
    )
}

/// The login page; `problem` says why the last attempt failed.
pub(super) fn login(problem: Option<&str>, over_tls: bool) -> String {
    let problem = problem.map_or(String::new(), |p| format!(r#"<p class="problem" role="alert">{}</p>"#, escape(p)));
    let plain = if over_tls {
        String::new()
    } else {
        r#"<p class="warning">This connection is not encrypted (no TLS): use it on this machine (loopback) or through an SSH tunnel, or open the dashboard on berth's TLS listener.</p>"#.to_string()
    };
    let body = format!(
        r#"<section class="login">
<h1>Log in</h1>
<p>Paste the API token: the <code>token</code> file in berth's state directory (<code>cat STATE_DIR/token</code>).</p>
{problem}{plain}
<form method="post" action="/ui/login">
<label for="token">API token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Log in</button>
</form>
</section>"#
    );
    layout("Log in", false, &body, None)
}

/// The overview: every object, filterable, live.
pub(super) fn overview() -> String {
    let kinds: String =
        crate::api::Kind::ALL.iter().map(|kind| format!(r#"<option value="{kind}">{kind}</option>"#)).collect();
    let body = format!(
        r#"<h1>Objects</h1>
<p id="counts" class="counts" aria-live="polite">Loading…</p>
<form class="filters" role="search">
<input id="filter-text" type="search" placeholder="Filter by name, reason, source or label=value" aria-label="Filter">
<select id="filter-namespace" aria-label="Namespace"><option value="">All namespaces</option></select>
<select id="filter-kind" aria-label="Kind"><option value="">All kinds</option>{kinds}</select>
<label><input id="filter-failing" type="checkbox"> Not ready only</label>
</form>
<div class="scroll">
<table id="objects">
<thead><tr><th>Namespace</th><th>Kind</th><th>Name</th><th>Ready</th><th>Replicas</th><th>Reason</th><th>Source</th><th>Age</th></tr></thead>
<tbody></tbody>
</table>
</div>
<p id="stream-state" class="stream-state" aria-live="polite"></p>"#
    );
    layout("Overview", true, &body, Some("overview.js"))
}

/// One object's page; `spec` is its YAML.
pub(super) fn object(key: &crate::api::ObjectKey, source: &str, spec: &str) -> String {
    let terminal = if key.kind == crate::api::Kind::Container {
        r#"<section><h2>Replicas <a class="small" href="/ui/logs/{namespace}/{name}">all logs</a></h2><div class="scroll"><table id="replicas"><thead><tr><th>Replica</th><th>State</th><th>Health</th><th>IPs</th><th>Host ports</th><th>Restarts</th><th>Container</th><th></th></tr></thead><tbody></tbody></table></div></section>
<section><h2>Usage <span id="stats-state" class="small" aria-live="polite"></span></h2><div class="scroll"><table id="stats"><thead><tr><th>Replica</th><th>CPU</th><th>Memory</th><th>Network in / out</th><th>Block read / write</th></tr></thead><tbody></tbody></table></div></section>"#
    } else {
        ""
    };
    let terminal = terminal.replace("{namespace}", &escape(&key.namespace)).replace("{name}", &escape(&key.name));
    let body = format!(
        r#"<h1><span class="kind">{kind}</span> {name} <span id="ready" class="badge">…</span></h1>
<p class="meta">Namespace <strong>{namespace}</strong> · source <strong>{source}</strong> · generation <span id="generation">…</span></p>
<div id="object" data-kind="{kind}" data-namespace="{namespace}" data-name="{name}" data-plural="{plural}" hidden></div>
<p id="suspended" class="banner" role="status" hidden></p>
<p id="actions" class="actions"><a class="button" href="/ui/apply?from={kind}/{namespace}/{name}">Edit and apply</a></p>
<p id="action-state" class="meta" aria-live="polite"></p>
<section><h2>Conditions</h2><div class="scroll"><table id="conditions"><thead><tr><th>Type</th><th>Status</th><th>Reason</th><th>Message</th><th>Since</th></tr></thead><tbody></tbody></table></div></section>
{terminal}
<section><h2>Spec</h2><pre id="spec" class="yaml" tabindex="0">{spec}</pre></section>
<section><h2>Events</h2><ol id="events" class="events" aria-live="polite"></ol></section>
<p id="stream-state" class="stream-state" aria-live="polite"></p>"#,
        source = escape(source),
        kind = key.kind,
        name = escape(&key.name),
        namespace = escape(&key.namespace),
        plural = key.kind.plural(),
        spec = escape(spec),
    );
    layout(&format!("{} {}", key.kind, key.name), true, &body, Some("object.js"))
}

/// The audit log, live, from sequence `after`.
pub(super) fn events(after: u64) -> String {
    let body = format!(
        r#"<h1>Events</h1>
<form class="filters" role="search"><input id="filter-text" type="search" placeholder="Filter by object, action, reason or message" aria-label="Filter"></form>
<div class="scroll"><table id="log" data-after="{after}"><thead><tr><th>Time</th><th>Object</th><th>Action</th><th>Reason</th><th>Message</th></tr></thead><tbody></tbody></table></div>"#
    );
    layout("Events", true, &body, Some("events.js"))
}

/// A Container's logs: `replicas` followed at once, interleaved.
pub(super) fn logs(namespace: &str, name: &str, replicas: &[u32]) -> String {
    let list: Vec<String> = replicas.iter().map(u32::to_string).collect();
    let body = format!(
        r#"<h1>Logs <span class="kind">Container</span> <a href="/ui/objects/{namespace}/containers/{name}">{name}</a></h1>
<form class="filters" role="search">
<input id="filter-text" type="search" placeholder="Search the lines" aria-label="Search">
<label><input id="follow" type="checkbox" checked> Follow</label>
<button id="download" type="button">Download</button>
</form>
<p class="meta">Replicas {shown} · <span id="logs-state" aria-live="polite">connecting…</span></p>
<pre id="logs" class="logs" tabindex="0" data-namespace="{namespace}" data-name="{name}" data-replicas="{replicas}"></pre>"#,
        namespace = escape(namespace),
        name = escape(name),
        shown = escape(&list.join(", ")),
        replicas = escape(&list.join(",")),
    );
    layout(&format!("Logs {name}"), true, &body, Some("logs.js"))
}

/// A replica's files at `path`: a listing the module fills, and an upload.
pub(super) fn files(namespace: &str, name: &str, replica: u32, path: &str) -> String {
    let body = format!(
        r#"<h1>Files <span class="kind">Container</span> <a href="/ui/objects/{namespace}/containers/{name}">{name}</a> replica {replica}</h1>
<nav id="crumbs" class="crumbs" aria-label="Path"></nav>
<p id="files-state" class="meta" aria-live="polite">loading…</p>
<div class="scroll"><table id="files" data-namespace="{namespace}" data-name="{name}" data-replica="{replica}" data-path="{path}">
<thead><tr><th>Name</th><th>Type</th><th>Size</th><th>Mode</th><th>Modified</th><th></th></tr></thead><tbody></tbody></table></div>
<section id="upload" class="drop" tabindex="0" aria-label="Upload files">
<h2>Upload into this directory</h2>
<p>Drop files here, or <label class="button" for="upload-input">choose files</label> (at most 64 MiB each).</p>
<input id="upload-input" type="file" multiple hidden>
<p id="upload-state" aria-live="polite"></p>
</section>"#,
        namespace = escape(namespace),
        name = escape(name),
        path = escape(path),
    );
    layout(&format!("Files {name}"), true, &body, Some("files.js"))
}

/// A terminal in replica `replica` of Container `name`, running `command`.
pub(super) fn terminal(namespace: &str, name: &str, replica: u32, command: &str) -> String {
    let body = format!(
        r#"<h1>Terminal <span class="kind">Container</span> <a href="/ui/objects/{namespace}/containers/{name}">{name}</a> replica {replica}</h1>
<p class="meta"><code>{command}</code> · <span id="terminal-state" aria-live="polite">connecting…</span></p>
<div id="terminal" class="terminal" data-namespace="{namespace}" data-name="{name}" data-replica="{replica}" data-command="{command}"></div>"#,
        namespace = escape(namespace),
        name = escape(name),
        command = escape(command),
    );
    let page = layout(&format!("Terminal {name}"), true, &body, Some("terminal.js"));
    page.replace(
        r#"<link rel="stylesheet" href="/ui/assets/berth.css">"#,
        r#"<link rel="stylesheet" href="/ui/assets/berth.css"><link rel="stylesheet" href="/ui/assets/vendor/xterm.css">"#,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolated_text_is_escaped() {
        assert_eq!(escape(r#"<script>"x"&'y'"#), "&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;");
        let page = terminal("default", "web", 0, "sh -c '<b>'");
        assert!(page.contains("sh -c &#39;&lt;b&gt;&#39;") && !page.contains("<b>"));
    }
}
