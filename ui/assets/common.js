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
