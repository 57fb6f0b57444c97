// The object page's buttons: restart (every replica, or one), suspend and
// resume a Container, delete an object the API owns. Each asks for a
// confirmation and a reason, which berth keeps in the audit log with who
// asked. The page's watch shows what follows.
import { confirmWithReason, problemOf, send } from "./common.js";

const bar = document.getElementById("actions");
const state = document.getElementById("action-state");
let shown = null;

async function act(question, label, run) {
  const reason = await confirmWithReason(question, label);
  if (reason === null) return;
  state.textContent = `${label}…`;
  const answer = await run(reason);
  state.textContent = answer.ok ? (answer.data?.message ?? `${label}: done`) : `${label} refused: ${problemOf(answer)}`;
  state.className = answer.ok ? "meta" : "meta problem";
}

const post = (path, verb, body) => send("POST", `${path}/${verb}`, body);

export function replicaRestart(path, replica) {
  return act(`Restart replica ${replica}? It is removed (within its grace period) and created again.`, "Restart",
    (reason) => post(path, "restart", { replica, reason }));
}

function button(label, handler, danger = false) {
  const element = document.createElement("button");
  element.type = "button";
  element.textContent = label;
  element.dataset.action = label.toLowerCase().replace(/\s+/g, "-");
  if (danger) element.className = "danger";
  element.addEventListener("click", handler);
  return element;
}

// Shows the buttons `object` allows, at `path` (its REST path); redrawn
// only when what they depend on changes, so focus stays put.
export function actionButtons(object, path) {
  const meta = object.metadata;
  const suspended = Boolean(meta.annotations?.["berth.dev/suspended"]);
  const container = object.kind === "Container";
  const ownedByApi = meta.source?.type === "api";
  const deleting = Boolean(meta.deletionTimestamp);
  const signature = JSON.stringify([suspended, container, ownedByApi, deleting]);
  if (signature === shown) return;
  shown = signature;
  for (const old of bar.querySelectorAll("button")) old.remove();
  if (deleting) return;
  const name = `${object.kind} ${meta.name}`;
  if (container && !suspended) {
    bar.append(button("Restart all", () => act(
      `Restart every replica of ${name}? Each is replaced as for a spec change, in its update strategy.`, "Restart all",
      (reason) => post(path, "restart", { reason }))));
    bar.append(button("Suspend", () => act(
      `Suspend ${name}? Its replicas are removed and stay removed, whatever its source says, until it is resumed.`, "Suspend",
      (reason) => post(path, "suspend", { reason }))));
  }
  if (container && suspended) {
    bar.append(button("Resume", () => act(`Resume ${name}? Its replicas are created again.`, "Resume",
      (reason) => post(path, "resume", { reason }))));
  }
  if (ownedByApi) {
    bar.append(button("Delete", () => act(
      `Delete ${name}? Its engine objects are torn down, then it goes.`, "Delete",
      (reason) => send("DELETE", path, undefined, { "Berth-Reason": encodeURIComponent(reason) })), true));
  }
}
