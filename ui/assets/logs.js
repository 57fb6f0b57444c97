// A Container's logs: each replica's output followed from the logs
// endpoint (a streamed text body), interleaved as it arrives with a
// replica prefix; search hides lines that do not match; download saves
// what has arrived. At most KEPT lines stay in the page.
import { API } from "./common.js";

const pre = document.getElementById("logs");
const state = document.getElementById("logs-state");
const text = document.getElementById("filter-text");
const follow = document.getElementById("follow");
const { namespace, name, replicas } = pre.dataset;
const indexes = replicas.split(",");
const KEPT = 5000;
const lines = [];
let open = 0;

function matches(line) {
  const wanted = text.value.trim().toLowerCase();
  return !wanted || line.toLowerCase().includes(wanted);
}

function add(replica, line) {
  const shown = indexes.length > 1 ? `[${replica}] ${line}` : line;
  lines.push(shown);
  const span = document.createElement("span");
  span.textContent = `${shown}\n`;
  span.hidden = !matches(shown);
  pre.append(span);
  while (lines.length > KEPT) { lines.shift(); pre.firstChild.remove(); }
  if (follow.checked) pre.scrollTop = pre.scrollHeight;
}

async function stream(replica) {
  const path = `${API}/namespaces/${encodeURIComponent(namespace)}/containers/${encodeURIComponent(name)}/logs`;
  const answer = await fetch(`${path}?follow=true&tail=500&replica=${replica}`);
  if (!answer.ok) {
    const status = await answer.json().catch(() => ({ message: answer.statusText }));
    add(replica, `(no logs: ${status.message})`);
    return;
  }
  open += 1;
  state.textContent = `following ${open} replica(s)`;
  const reader = answer.body.pipeThrough(new TextDecoderStream()).getReader();
  let partial = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    const parts = (partial + value).split("\n");
    partial = parts.pop();
    for (const line of parts) add(replica, line);
  }
  if (partial) add(replica, partial);
  open -= 1;
  state.textContent = open ? `following ${open} replica(s)` : "the replicas stopped; reload to follow again";
}

for (const replica of indexes) stream(replica).catch((error) => add(replica, `(the stream broke: ${error})`));
text.addEventListener("input", () => {
  for (const span of pre.children) span.hidden = !matches(span.textContent);
});
document.getElementById("download").addEventListener("click", () => {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([`${lines.join("\n")}\n`], { type: "text/plain" }));
  link.download = `${namespace}-${name}.log`;
  link.click();
  URL.revokeObjectURL(link.href);
});
