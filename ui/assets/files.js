// A replica's files: the listing of one directory (the files endpoint,
// read from the engine's archive), links into subdirectories, downloads of
// files, and uploads by drop or by picking, each written with PUT .../file.
import { API, escapeHtml } from "./common.js";

const table = document.getElementById("files");
const { namespace, name, replica, path } = table.dataset;
const state = document.getElementById("files-state");
const uploadState = document.getElementById("upload-state");
const base = `${API}/namespaces/${encodeURIComponent(namespace)}/containers/${encodeURIComponent(name)}`;
const MAX_UPLOAD = 64 * 1024 * 1024;
const join = (dir, entry) => `${dir.replace(/\/$/, "")}/${entry}`;
const page = (p) => `/ui/files/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}?replica=${replica}&path=${encodeURIComponent(p)}`;

function size(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function crumbs() {
  const parts = path.split("/").filter(Boolean);
  const links = [`<a href="${page("/")}">/</a>`];
  parts.forEach((part, i) => links.push(`<a href="${page(`/${parts.slice(0, i + 1).join("/")}`)}">${escapeHtml(part)}</a>`));
  document.getElementById("crumbs").innerHTML = links.join(" / ");
}

async function load() {
  const answer = await fetch(`${base}/files?replica=${replica}&path=${encodeURIComponent(path)}`);
  const listing = await answer.json();
  if (!answer.ok) {
    state.textContent = listing.message;
    return;
  }
  if (listing.self.type !== "directory") {
    state.innerHTML = `${escapeHtml(path)} is a ${listing.self.type} of ${size(listing.self.size)}: ` +
      `<a href="${base}/file?replica=${replica}&path=${encodeURIComponent(path)}" download>download</a>`;
    return;
  }
  state.textContent = `${listing.entries.length} entries${listing.truncated ? " (cut: the directory is larger than berth lists)" : ""}`;
  table.querySelector("tbody").innerHTML = listing.entries.map((entry) => {
    const full = join(path, entry.name);
    const link = entry.type === "directory"
      ? `<a href="${page(full)}">${escapeHtml(entry.name)}/</a>`
      : escapeHtml(entry.name) + (entry.linkTarget ? ` → ${escapeHtml(entry.linkTarget)}` : "");
    const download = entry.type === "file"
      ? `<a href="${base}/file?replica=${replica}&path=${encodeURIComponent(full)}" download="${escapeHtml(entry.name)}">Download</a>` : "";
    return `<tr data-name="${escapeHtml(entry.name)}"><td>${link}</td><td>${entry.type}</td>` +
      `<td>${entry.type === "file" ? size(entry.size) : ""}</td><td><code>${entry.mode}</code></td>` +
      `<td>${escapeHtml((entry.modified ?? "").replace("T", " ").slice(0, 19))}</td><td>${download}</td></tr>`;
  }).join("");
}

async function upload(files) {
  for (const file of files) {
    if (file.size > MAX_UPLOAD) {
      uploadState.textContent = `${file.name} is over 64 MiB: copy it with berth cp in parts`;
      continue;
    }
    uploadState.textContent = `uploading ${file.name}…`;
    const answer = await fetch(`${base}/file?replica=${replica}&path=${encodeURIComponent(join(path, file.name))}`, { method: "PUT", body: file });
    if (!answer.ok) {
      const status = await answer.json().catch(() => ({ message: answer.statusText }));
      uploadState.textContent = `${file.name}: ${status.message}`;
      return;
    }
    uploadState.textContent = `uploaded ${file.name}`;
  }
  await load();
}

const drop = document.getElementById("upload");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => { event.preventDefault(); drop.classList.remove("over"); upload(event.dataTransfer.files); });
document.getElementById("upload-input").addEventListener("change", (event) => upload(event.target.files));
crumbs();
load().catch((error) => { state.textContent = `the listing failed: ${error}`; });
