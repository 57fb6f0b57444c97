// A terminal in a replica: xterm.js over the exec WebSocket (Kubernetes'
// v5.channel.k8s.io framing: a channel byte, then data). Keys and pastes go
// to stdin (channel 0), the output comes on 1 and 2, the size follows the
// window (channel 4), and the command's exit status (channel 3) ends it.
import { Terminal } from "./vendor/xterm.mjs";
import { FitAddon } from "./vendor/addon-fit.mjs";
import { API } from "./common.js";

const element = document.getElementById("terminal");
const state = document.getElementById("terminal-state");
const { namespace, name, replica, command } = element.dataset;
const terminal = new Terminal({ cursorBlink: true, convertEol: false, scrollback: 5000, fontSize: 14 });
const fit = new FitAddon();
terminal.loadAddon(fit);
terminal.open(element);
fit.fit();
terminal.focus();
window.berthTerminal = terminal; // for tests and the curious

const argv = command.trim().split(/\s+/);
const query = new URLSearchParams([["replica", replica], ["tty", "true"], ["stdin", "true"], ...argv.map((a) => ["command", a])]);
const scheme = location.protocol === "https:" ? "wss" : "ws";
const url = `${scheme}://${location.host}${API}/namespaces/${encodeURIComponent(namespace)}/containers/${encodeURIComponent(name)}/exec?${query}`;
const socket = new WebSocket(url, ["v5.channel.k8s.io"]);
socket.binaryType = "arraybuffer";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function send(channel, bytes) {
  if (socket.readyState !== WebSocket.OPEN) return;
  const framed = new Uint8Array(bytes.length + 1);
  framed[0] = channel;
  framed.set(bytes, 1);
  socket.send(framed);
}

function sendSize() {
  send(4, encoder.encode(JSON.stringify({ Width: terminal.cols, Height: terminal.rows })));
}

socket.onopen = () => { state.textContent = "connected"; sendSize(); };
socket.onmessage = (message) => {
  const data = new Uint8Array(message.data);
  const payload = data.subarray(1);
  if (data[0] === 1 || data[0] === 2) terminal.write(payload);
  if (data[0] === 3) {
    const status = JSON.parse(decoder.decode(payload));
    const code = status.status === "Success" ? 0 : status.details?.causes?.find((c) => c.reason === "ExitCode")?.message;
    state.textContent = code !== undefined ? `exited with code ${code}` : `ended: ${status.message}`;
    element.dataset.exitCode = code ?? "";
  }
};
socket.onclose = (event) => {
  if (!state.textContent.startsWith("exited") && !state.textContent.startsWith("ended")) {
    state.textContent = event.code === 1000 ? "closed" : `disconnected (${event.code}${event.reason ? `: ${event.reason}` : ""})`;
  }
  terminal.options.disableStdin = true;
};
terminal.onData((text) => send(0, encoder.encode(text)));
terminal.onBinary((text) => send(0, Uint8Array.from(text, (c) => c.charCodeAt(0))));
terminal.onResize(() => sendSize());
new ResizeObserver(() => fit.fit()).observe(element);
window.addEventListener("beforeunload", () => socket.close(1000));
