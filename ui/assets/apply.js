// The apply page: a manifest editor, its plan (POST /apply?dryRun=true),
// then the apply of exactly the planned text. Problems are listed at their
// line and column; choosing one puts the cursor there and marks the line.
import { escapeHtml, problemOf, send } from "./common.js";

const editor = document.getElementById("manifest");
const gutter = document.getElementById("gutter");
const planButton = document.getElementById("plan-button");
const applyButton = document.getElementById("apply-button");
const force = document.getElementById("force");
const state = document.getElementById("apply-state");
const problems = document.getElementById("problems");
const plan = document.getElementById("plan");
const planItems = document.getElementById("plan-items");
let planned = null; // the text and options the shown plan is of
let marked = new Set();

function drawGutter() {
  const lines = editor.value.split("\n").length;
  gutter.innerHTML = Array.from({ length: lines }, (_, i) =>
    `<span class="${marked.has(i + 1) ? "marked" : ""}">${i + 1}</span>`).join("\n");
  gutter.scrollTop = editor.scrollTop;
}

function options() {
  return force.checked ? "force=true" : "";
}

function stale() {
  if (planned && (planned.text !== editor.value || planned.options !== options())) {
    applyButton.disabled = true;
    state.textContent = "The manifest changed since the plan: plan again before applying.";
  }
}

editor.addEventListener("input", () => { marked = new Set(); drawGutter(); stale(); });
editor.addEventListener("scroll", () => { gutter.scrollTop = editor.scrollTop; });
force.addEventListener("change", stale);
drawGutter();

// Files: opened or dropped, read into the editor.
async function load(file) {
  if (!file) return;
  if (file.size > 16 * 1024 * 1024) {
    state.textContent = `${file.name} is larger than 16 MiB, the most berth takes in one apply.`;
    return;
  }
  editor.value = await file.text();
  marked = new Set();
  drawGutter();
  stale();
  state.textContent = `Loaded ${file.name}.`;
}
document.getElementById("manifest-file").addEventListener("change", (event) => load(event.target.files[0]));
const drop = document.getElementById("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  load(event.dataTransfer.files[0]);
});

// Puts the cursor at `line`:`column` (1-based) and shows it.
function goTo(line, column) {
  const lines = editor.value.split("\n");
  let offset = 0;
  for (let i = 0; i < Math.min(line - 1, lines.length); i += 1) offset += lines[i].length + 1;
  offset += Math.max(0, (column ?? 1) - 1);
  editor.focus();
  editor.setSelectionRange(offset, offset);
  const lineHeight = parseFloat(getComputedStyle(editor).lineHeight) || 18;
  editor.scrollTop = Math.max(0, (line - 3) * lineHeight);
}

function showProblems(answer) {
  const causes = answer.data?.details?.causes ?? [];
  const located = causes.filter((c) => c.line);
  marked = new Set(located.map((c) => Number(c.line)));
  drawGutter();
  const items = located.length ? located.map((c) => {
    const [line, column] = [Number(c.line), Number(c.column ?? 1)];
    const what = c.object ? ` ${escapeHtml(c.object)}` : "";
    return `<li><a href="#manifest" data-line="${line}" data-column="${column}">line ${line}, column ${column}</a>${what}: ${escapeHtml(c.message)}</li>`;
  }) : [`<li>${escapeHtml(problemOf(answer))}</li>`];
  problems.innerHTML = items.join("");
  if (located.length) goTo(Number(located[0].line), Number(located[0].column));
}

problems.addEventListener("click", (event) => {
  const link = event.target.closest("a[data-line]");
  if (!link) return;
  event.preventDefault();
  goTo(Number(link.dataset.line), Number(link.dataset.column));
});

// A line diff of two specs (as indented JSON), `-` and `+` marked.
function diff(current, desired) {
  const a = current ? JSON.stringify(current, null, 2).split("\n") : [];
  const b = desired ? JSON.stringify(desired, null, 2).split("\n") : [];
  if (a.length * b.length > 4_000_000) return b.map((l) => ["+", l]);
  const lcs = Array.from({ length: a.length + 1 }, () => new Uint32Array(b.length + 1));
  for (let i = a.length - 1; i >= 0; i -= 1) {
    for (let j = b.length - 1; j >= 0; j -= 1) {
      lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const out = [];
  let [i, j] = [0, 0];
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) { out.push([" ", a[i]]); i += 1; j += 1; }
    else if (j < b.length && (i === a.length || lcs[i][j + 1] >= lcs[i + 1][j])) { out.push(["+", b[j]]); j += 1; }
    else { out.push(["-", a[i]]); i += 1; }
  }
  return out;
}

function showPlan(items, applied) {
  plan.hidden = false;
  plan.querySelector("h2").textContent = applied ? "Applied" : "Plan";
  planItems.innerHTML = items.map((item) => {
    const [kind, namespace, name] = item.object.split("/");
    const plural = { Container: "containers", Volume: "volumes", Network: "networks", Image: "images", DnsRecord: "dnsrecords", Route: "routes" }[kind];
    const link = applied && item.action !== "delete"
      ? `<a href="/ui/objects/${encodeURIComponent(namespace)}/${plural}/${encodeURIComponent(name)}">${escapeHtml(item.object)}</a>`
      : escapeHtml(item.object);
    const fields = (item.changedFields ?? []).length ? `<p class="meta">Changes ${item.changedFields.map((f) => `<code>${escapeHtml(f)}</code>`).join(", ")}</p>` : "";
    const operations = (item.operations ?? []).map((o) => `<li><strong>${escapeHtml(o.operation)}</strong>: ${escapeHtml(o.reason)}</li>`).join("");
    const lines = item.action === "unchanged" ? [] : diff(item.current, item.desired);
    const diffText = lines.map(([mark, line]) => `<span class="${mark === "+" ? "add" : mark === "-" ? "del" : ""}">${mark} ${escapeHtml(line)}</span>`).join("\n");
    const details = lines.length ? `<details><summary>Spec diff</summary><pre class="diff">${diffText}</pre></details>` : "";
    return `<article class="plan-item" data-object="${escapeHtml(item.object)}"><h3>${link} <span class="badge action-${escapeHtml(item.action)}">${escapeHtml(item.action)}</span></h3>` +
      `${fields}${operations ? `<ul class="operations">${operations}</ul>` : ""}${details}</article>`;
  }).join("");
}

async function post(dryRun) {
  const query = [dryRun ? "dryRun=true" : "", options()].filter(Boolean).join("&");
  return send("POST", `/apply${query ? `?${query}` : ""}`, editor.value, { "Content-Type": "application/yaml" });
}

planButton.addEventListener("click", async () => {
  problems.innerHTML = "";
  plan.hidden = true;
  applyButton.disabled = true;
  state.textContent = "Planning…";
  const text = editor.value;
  const answer = await post(true);
  if (!answer.ok) {
    state.textContent = `The manifest is refused: ${problemOf(answer)}`;
    showProblems(answer);
    planned = null;
    return;
  }
  marked = new Set();
  drawGutter();
  const changes = answer.data.items.filter((i) => i.action !== "unchanged").length;
  planned = { text, options: options() };
  applyButton.disabled = changes === 0;
  state.textContent = changes ? `${changes} of ${answer.data.items.length} objects change. Check the plan, then apply it.` : "Nothing changes.";
  showPlan(answer.data.items, false);
});

applyButton.addEventListener("click", async () => {
  if (!planned || planned.text !== editor.value) return;
  applyButton.disabled = true;
  state.textContent = "Applying…";
  const answer = await post(false);
  if (!answer.ok) {
    state.textContent = `The apply is refused: ${problemOf(answer)}`;
    showProblems(answer);
    return;
  }
  planned = null;
  state.textContent = `Applied at resourceVersion ${answer.data.resourceVersion}. The controller converges the engine now.`;
  showPlan(answer.data.items, true);
});
