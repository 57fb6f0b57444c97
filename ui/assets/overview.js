// The overview: one row per object, from /ui/stream (every kind in one
// stream), filtered in the page. Rows are updated in place, so nothing
// moves when an object changes.
import { age, escapeHtml, follow } from "./common.js";

const rows = new Map(); // key -> { row, tr }
const body = document.querySelector("#objects tbody");
const counts = document.getElementById("counts");
const text = document.getElementById("filter-text");
const namespace = document.getElementById("filter-namespace");
const kind = document.getElementById("filter-kind");
const failing = document.getElementById("filter-failing");

function order(row) {
  return `${row.namespace}\u0000${row.kind}\u0000${row.name}`;
}

function cells(row) {
  const link = `/ui/objects/${encodeURIComponent(row.namespace)}/${row.plural}/${encodeURIComponent(row.name)}`;
  return `<td>${escapeHtml(row.namespace)}</td><td>${escapeHtml(row.kind)}</td>` +
    `<td><a href="${link}">${escapeHtml(row.name)}</a></td>` +
    `<td class="ready" title="${escapeHtml(row.message)}">${escapeHtml(row.status)}</td>` +
    `<td>${escapeHtml(row.replicas ?? "")}</td><td>${escapeHtml(row.reason)}</td>` +
    `<td>${escapeHtml(row.source)}</td><td class="age" data-created="${escapeHtml(row.created ?? "")}">${age(row.created)}</td>`;
}

function matches(row) {
  if (namespace.value && row.namespace !== namespace.value) return false;
  if (kind.value && row.kind !== kind.value) return false;
  if (failing.checked && row.ready) return false;
  const wanted = text.value.trim().toLowerCase();
  if (!wanted) return true;
  return wanted.split(/\s+/).every((word) => {
    const [k, v] = word.split("=");
    if (v !== undefined && k) return (row.labels[k] ?? "").toLowerCase() === v;
    return [row.name, row.reason, row.source, row.kind, row.namespace, row.message].some((f) => (f ?? "").toLowerCase().includes(word));
  });
}

function refresh() {
  let shown = 0;
  let notReady = 0;
  for (const { row, tr } of rows.values()) {
    tr.hidden = !matches(row);
    if (!tr.hidden) shown += 1;
    if (!row.ready) notReady += 1;
  }
  const failingText = notReady ? `<span class="bad">${notReady} not ready</span>` : "all ready";
  counts.innerHTML = `${rows.size} objects · ${failingText}${shown !== rows.size ? ` · ${shown} shown` : ""}`;
  const namespaces = [...new Set([...rows.values()].map(({ row }) => row.namespace))].sort();
  const have = [...namespace.options].slice(1).map((o) => o.value);
  if (namespaces.join("\u0000") !== have.join("\u0000")) {
    const chosen = namespace.value;
    namespace.length = 1;
    for (const ns of namespaces) namespace.add(new Option(ns, ns, false, ns === chosen));
  }
}

function upsert(row) {
  let entry = rows.get(row.key);
  if (!entry) {
    const tr = document.createElement("tr");
    tr.dataset.key = row.key;
    entry = { row, tr };
    rows.set(row.key, entry);
    const after = [...rows.values()].filter((e) => e !== entry && order(e.row) > order(row))
      .sort((a, b) => (order(a.row) < order(b.row) ? -1 : 1))[0];
    body.insertBefore(tr, after ? after.tr : null);
  }
  entry.row = row;
  entry.tr.className = row.ready ? "ready" : "not-ready";
  entry.tr.dataset.ready = String(row.ready);
  entry.tr.innerHTML = cells(row);
}

function clear() {
  rows.clear();
  body.replaceChildren();
}

follow("/ui/stream", {
  row: (row) => { upsert(row); refresh(); },
  gone: (key) => { rows.get(key)?.tr.remove(); rows.delete(key); refresh(); },
  reset: () => { clear(); refresh(); },
}, document.getElementById("stream-state"));

for (const input of [text, namespace, kind, failing]) input.addEventListener("input", refresh);
// Ages move on by themselves; nothing is fetched for them.
setInterval(() => {
  for (const cell of body.querySelectorAll("td.age")) cell.textContent = age(cell.dataset.created);
}, 10000);
