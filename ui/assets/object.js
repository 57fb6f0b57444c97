// One object: its status, conditions and replicas follow the object's own
// watch (the REST API's, as Server-Sent Events); its events follow the
// audit log. The spec shown is the one the page was loaded with; a newer
// generation says so.
import { API, age, escapeHtml, follow } from "./common.js";
import { actionButtons, replicaRestart } from "./actions.js";

const info = document.getElementById("object").dataset;
const path = `${API}/namespaces/${encodeURIComponent(info.namespace)}/${info.plural}/${encodeURIComponent(info.name)}`;
const key = `${info.kind}/${info.namespace}/${info.name}`;
let loadedGeneration = null;

highlight(document.getElementById("spec"));

function highlight(pre) {
  pre.innerHTML = pre.textContent.split("\n").map((line) => {
    const match = line.match(/^(\s*(?:- )?)([A-Za-z0-9_.\/-]+)(:)(.*)$/);
    return match ? `${escapeHtml(match[1])}<span class="key">${escapeHtml(match[2])}</span>:${escapeHtml(match[4])}` : escapeHtml(line);
  }).join("\n");
}

function readiness(object) {
  const status = object.status ?? {};
  const ready = (status.conditions ?? []).find((c) => c.type === "Ready");
  const observed = (status.observedGeneration ?? 0) >= (object.metadata.generation ?? 0);
  if (object.metadata.deletionTimestamp) return ["Deleting", false];
  if (object.metadata.annotations?.["berth.dev/suspended"]) return ["Suspended", false];
  if (!ready) return ["Pending", false];
  if (!observed) return ["Reconciling", false];
  return [ready.status === "True" ? "Ready" : `Not ready: ${ready.reason}`, ready.status === "True"];
}

function show(object) {
  actionButtons(object, path);
  const suspended = object.metadata.annotations?.["berth.dev/suspended"];
  const banner = document.getElementById("suspended");
  banner.hidden = !suspended;
  banner.textContent = suspended ? `Suspended ${suspended}. Its replicas are removed until it is resumed; its file or repository cannot bring them back.` : "";
  const [text, ok] = readiness(object);
  const badge = document.getElementById("ready");
  badge.textContent = text;
  badge.className = `badge ${ok ? "ok" : "bad"}`;
  const generation = object.metadata.generation ?? 0;
  loadedGeneration ??= generation;
  document.getElementById("generation").textContent =
    generation === loadedGeneration ? String(generation) : `${generation} (the spec changed: reload to see it)`;
  const conditions = object.status?.conditions ?? [];
  document.querySelector("#conditions tbody").innerHTML = conditions.map((c) =>
    `<tr><td>${escapeHtml(c.type)}</td><td>${escapeHtml(c.status)}</td><td>${escapeHtml(c.reason)}</td>` +
    `<td class="message">${escapeHtml(c.message)}</td><td>${age(c.lastTransitionTime)}</td></tr>`).join("");
  const replicas = document.querySelector("#replicas tbody");
  if (replicas) {
    replicas.innerHTML = (object.status?.replicas ?? []).map((r) => {
      const ips = Object.entries(r.ips ?? {}).map(([net, ip]) => `${escapeHtml(net)} ${escapeHtml(ip)}`).join("<br>");
      const ports = Object.entries(r.hostPorts ?? {}).map(([port, host]) =>
        `<a href="http://${location.hostname}:${host}/" rel="noopener">${escapeHtml(port)} → ${host}</a>`).join("<br>");
      const terminal = `/ui/terminal/${encodeURIComponent(info.namespace)}/${encodeURIComponent(info.name)}?replica=${r.index}`;
      return `<tr data-replica="${r.index}"><td>${r.index}</td><td>${escapeHtml(r.state)}</td><td>${escapeHtml(r.health || "-")}</td>` +
        `<td>${ips}</td><td>${ports}</td><td>${r.restarts}</td><td><code>${escapeHtml(r.containerId.slice(0, 12))}</code></td>` +
        `<td><button type="button" class="small restart-replica" data-replica="${r.index}">Restart</button> <a href="${terminal}">Terminal</a> <a href="/ui/logs/${encodeURIComponent(info.namespace)}/${encodeURIComponent(info.name)}?replica=${r.index}">Logs</a> <a href="/ui/files/${encodeURIComponent(info.namespace)}/${encodeURIComponent(info.name)}?replica=${r.index}">Files</a></td></tr>`;
    }).join("");
    for (const button of replicas.querySelectorAll("button.restart-replica")) {
      button.addEventListener("click", () => replicaRestart(path, Number(button.dataset.replica)));
    }
  }
}

const changed = (event) => { if (event.object?.metadata) show(event.object); };
follow(`${path}?watch=true`, { ADDED: changed, MODIFIED: changed }, document.getElementById("stream-state"));

const events = document.getElementById("events");
follow(`/events?follow=true&object=${encodeURIComponent(key)}`, {
  event: (entry) => {
    const li = document.createElement("li");
    li.innerHTML = `<time datetime="${escapeHtml(entry.time)}">${escapeHtml(entry.time.replace("T", " ").slice(0, 19))}</time>` +
      `<strong>${escapeHtml(entry.action)}</strong> ${escapeHtml(entry.reason)}: ${escapeHtml(entry.message)}`;
    events.prepend(li);
    while (events.children.length > 200) events.lastChild.remove();
  },
});

// Usage, for Containers: a sample every two seconds while the page is open.
const stats = document.querySelector("#stats tbody");
if (stats) {
  const bytes = (n) => {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
  };
  follow(`/ui/stats/${encodeURIComponent(info.namespace)}/${encodeURIComponent(info.name)}`, {
    stats: (samples) => {
      document.getElementById("stats-state").textContent = "";
      stats.innerHTML = samples.map((s) => {
        const share = s.memoryLimitBytes ? ` of ${bytes(s.memoryLimitBytes)}` : "";
        const cpu = s.cpuPercent === null ? "…" : `${s.cpuPercent.toFixed(1)} %`;
        return `<tr data-replica="${s.replica}"><td>${s.replica}</td><td class="cpu">${cpu}</td><td class="memory">${bytes(s.memoryBytes)}${share}</td>` +
          `<td>${bytes(s.networkReceiveBytes)} / ${bytes(s.networkTransmitBytes)}</td><td>${bytes(s.blockReadBytes)} / ${bytes(s.blockWriteBytes)}</td></tr>`;
      }).join("");
    },
    problem: (message) => { document.getElementById("stats-state").textContent = message; },
  });
}
