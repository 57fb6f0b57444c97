// The served DNS records and the route table, live from the DnsRecord and
// Route watches: what each serves now (its status) and whether each
// backend passes its health checks.
import { API, escapeHtml, follow } from "./common.js";

function ready(object) {
  const condition = (object.status?.conditions ?? []).find((c) => c.type === "Ready");
  return [condition?.status === "True", condition?.reason ?? "Pending"];
}

function link(object) {
  const meta = object.metadata;
  const plural = object.kind === "DnsRecord" ? "dnsrecords" : "routes";
  return `<a href="/ui/objects/${encodeURIComponent(meta.namespace ?? "default")}/${plural}/${encodeURIComponent(meta.name)}">` +
    `${escapeHtml(meta.namespace ?? "default")}/${escapeHtml(meta.name)}</a>`;
}

function recordRow(object) {
  const [ok, reason] = ready(object);
  const targets = (object.status?.targets ?? []).map(escapeHtml).join("<br>") || "-";
  return `<td>${link(object)}</td><td>${escapeHtml(object.status?.fqdn ?? "-")}</td><td>${escapeHtml(object.spec.type ?? "A")}</td>` +
    `<td>${targets}</td><td class="ready">${ok ? "True" : "False"}</td><td>${escapeHtml(reason)}</td>`;
}

function routeRow(object) {
  const [ok, reason] = ready(object);
  // A rule without matches takes every path.
  const paths = (object.spec.rules ?? []).flatMap((rule) =>
    (rule.matches?.length ? rule.matches : [{ value: "/" }]).map((m) => `${m.type ?? "PathPrefix"} ${m.value}`));
  const backends = (object.status?.backends ?? []).map((b) =>
    `<span class="${b.healthy ? "ok" : "bad"}" title="${b.healthy ? "passes its health checks" : "fails its health checks"}">` +
    `${b.healthy ? "●" : "○"} ${escapeHtml(b.target)} ${escapeHtml(b.address)}</span>`).join("<br>") || "none";
  return `<td>${link(object)}</td><td>${(object.spec.hostnames ?? []).map(escapeHtml).join("<br>")}</td>` +
    `<td>${paths.map(escapeHtml).join("<br>")}</td><td class="backends">${backends}</td>` +
    `<td class="ready">${ok ? "True" : "False"}</td><td>${escapeHtml(reason)}</td>`;
}

// Keeps table `id` in step with the watch of `plural`, rows in place.
function table(id, plural, render) {
  const body = document.querySelector(`#${id} tbody`);
  const rows = new Map();
  const put = (event) => {
    const object = event.object;
    const key = `${object.metadata.namespace}/${object.metadata.name}`;
    let tr = rows.get(key);
    if (!tr) {
      tr = document.createElement("tr");
      rows.set(key, tr);
      const after = [...rows.keys()].sort().indexOf(key);
      body.insertBefore(tr, body.children[after] ?? null);
    }
    tr.className = ready(object)[0] ? "ready" : "not-ready";
    tr.innerHTML = render(object);
  };
  const gone = (event) => {
    const key = `${event.object.metadata.namespace}/${event.object.metadata.name}`;
    rows.get(key)?.remove();
    rows.delete(key);
  };
  follow(`${API}/${plural}?watch=true`, { ADDED: put, MODIFIED: put, DELETED: gone }, document.getElementById("stream-state"));
}

table("records", "dnsrecords", recordRow);
table("routes", "routes", routeRow);
