// The audit log, newest first, followed live from the event log.
import { escapeHtml, follow } from "./common.js";

const table = document.getElementById("log");
const body = table.querySelector("tbody");
const text = document.getElementById("filter-text");
const KEPT = 1000;

function matches(tr) {
  const wanted = text.value.trim().toLowerCase();
  return !wanted || tr.textContent.toLowerCase().includes(wanted);
}

follow(`/events?follow=true&after=${table.dataset.after}`, {
  event: (entry) => {
    const tr = document.createElement("tr");
    const object = entry.object ?? "";
    const [kind, namespace, name] = object.split("/");
    const plural = { Container: "containers", Volume: "volumes", Network: "networks", Image: "images", DnsRecord: "dnsrecords", Route: "routes" }[kind];
    const link = plural ? `<a href="/ui/objects/${encodeURIComponent(namespace)}/${plural}/${encodeURIComponent(name)}">${escapeHtml(object)}</a>` : escapeHtml(object);
    tr.innerHTML = `<td>${escapeHtml(entry.time.replace("T", " ").slice(0, 19))}</td><td>${link}</td>` +
      `<td>${escapeHtml(entry.action)}</td><td>${escapeHtml(entry.reason)}</td><td class="message">${escapeHtml(entry.message)}</td>`;
    tr.hidden = !matches(tr);
    body.prepend(tr);
    while (body.children.length > KEPT) body.lastChild.remove();
  },
});
text.addEventListener("input", () => { for (const tr of body.rows) tr.hidden = !matches(tr); });
