// The sources, live from /ui/sources/stream: each one's commits, objects
// and errors, and "Sync now" for git repositories.
import { age, escapeHtml, follow, problemOf, send } from "./common.js";

const body = document.querySelector("#sources tbody");
const state = document.getElementById("sources-state");

function errors(source) {
  const all = [...(source.fetchError ? [`fetch: ${source.fetchError}`] : []), ...source.errors];
  if (!all.length) return "-";
  return `<ul class="errors">${all.map((e) => `<li>${escapeHtml(e)}</li>`).join("")}</ul>`;
}

function row(source) {
  const git = source.source.type === "git";
  const short = (commit) => (commit ? `<code>${escapeHtml(commit.slice(0, 12))}</code>` : "-");
  const sync = git ? `<button type="button" class="sync" data-id="${escapeHtml(source.id)}">Sync now</button>` : "";
  const failing = source.errors.length || source.fetchError;
  return `<tr class="${failing ? "not-ready" : "ready"}"><td>${escapeHtml(source.id)}</td><td>${escapeHtml(source.source.type)}</td>` +
    `<td>${short(source.seenCommit)}</td><td>${short(source.appliedCommit)}</td><td>${source.objects.length}</td>` +
    `<td>${age(source.updated)}</td><td class="wrap">${errors(source)}</td><td>${sync}</td></tr>`;
}

follow("/ui/sources/stream", {
  sources: (list) => {
    body.innerHTML = list.length ? list.map(row).join("") : `<tr><td colspan="8">No sources yet.</td></tr>`;
    const failing = list.filter((s) => s.errors.length || s.fetchError).length;
    state.textContent = `${list.length} sources${failing ? ` · ${failing} with errors` : ""}`;
  },
  problem: (message) => { state.textContent = message; },
}, document.getElementById("stream-state"));

body.addEventListener("click", async (event) => {
  const button = event.target.closest("button.sync");
  if (!button) return;
  button.disabled = true;
  const answer = await send("POST", `/sources/sync?source=${encodeURIComponent(button.dataset.id)}`);
  state.textContent = answer.ok ? `${button.dataset.id}: fetching now` : `Sync refused: ${problemOf(answer)}`;
  button.disabled = false;
});
