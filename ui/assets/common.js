// What the dashboard's pages share: escaping, ages, and an EventSource that
// says when it is reconnecting.

export const API = "/apis/berth.dev/v1alpha1";

export function escapeHtml(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

// kubectl's age: 45s, 12m, 5h, 3d.
export function age(time) {
  if (!time) return "-";
  const seconds = Math.max(0, Math.floor((Date.now() - Date.parse(time)) / 1000));
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 172800) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86400)}d`;
}

// Follows `url` (Server-Sent Events); `handlers` maps event names to
// functions of the parsed data. The browser reconnects by itself, resuming
// from the last id; `state` shows that it is.
export function follow(url, handlers, state) {
  const source = new EventSource(url);
  for (const [name, handle] of Object.entries(handlers)) {
    source.addEventListener(name, (event) => {
      let data = event.data;
      try { data = JSON.parse(event.data); } catch { /* plain text */ }
      handle(data);
    });
  }
  source.onopen = () => { if (state) state.textContent = ""; };
  source.onerror = () => { if (state) state.textContent = "Connection to berth lost; reconnecting…"; };
  return source;
}

// Filter forms filter as one types; Enter must not submit (and reload) them.
for (const form of document.querySelectorAll("form.filters")) {
  form.addEventListener("submit", (event) => event.preventDefault());
}

// Sends a request to berth with the session cookie (same origin); the
// answer's status and its JSON (or text). Errors are berth's `Status`
// objects: `message`, and `details.causes` with lines and columns.
export async function send(method, url, body, headers = {}) {
  const options = { method, headers: { ...headers }, credentials: "same-origin" };
  if (body !== undefined) {
    options.body = typeof body === "string" ? body : JSON.stringify(body);
    options.headers["Content-Type"] ??= "application/json";
  }
  let response;
  try {
    response = await fetch(url, options);
  } catch (error) {
    return { ok: false, status: 0, data: { message: `berth did not answer: ${error}` } };
  }
  const text = await response.text();
  let data = text;
  try { data = JSON.parse(text); } catch { /* plain text */ }
  return { ok: response.ok, status: response.status, data };
}

// The message of a failed answer.
export function problemOf(answer) {
  return typeof answer.data === "string" ? answer.data : (answer.data?.message ?? `HTTP ${answer.status}`);
}

// Asks to confirm `question`, with an optional reason for the audit log;
// resolves to the reason ("" for none), or null when cancelled.
export function confirmWithReason(question, confirmLabel) {
  const dialog = document.createElement("dialog");
  dialog.className = "confirm";
  dialog.innerHTML = `<form method="dialog"><p>${escapeHtml(question)}</p>` +
    `<label for="reason">Reason (kept in the audit log)</label><input id="reason" name="reason" maxlength="500" autocomplete="off">` +
    `<p class="actions"><button value="ok" type="submit" class="primary">${escapeHtml(confirmLabel)}</button> <button value="cancel" type="submit">Cancel</button></p></form>`;
  document.body.append(dialog);
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      const reason = dialog.querySelector("#reason").value;
      resolve(dialog.returnValue === "ok" ? reason : null);
      dialog.remove();
    });
    dialog.showModal();
    dialog.querySelector("#reason").focus();
  });
}
