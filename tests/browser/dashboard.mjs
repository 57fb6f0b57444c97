// The dashboard in a real browser: Debian's Chromium driven by
// playwright-core against a `berth serve` on real Docker, as a person uses
// it. Run by tests/integration/dashboard.rs, which starts berth on the
// example stack and passes:
//   BERTH_URL, BERTH_TOKEN, NAMESPACE, SCREENSHOTS (a dir), MODE, and for
//   MODE=full: KILL (the engine name of web's replica 0, removed with
//   `docker rm -f` mid-test), MANIFESTS (the directory berth follows).
// MODE=full (Docker): login, overview, drift repaired live, object page with
// live usage, files (upload, list, download), terminal (echo, stty size
// through a resize, cat of the upload, exit code), events, logs, apply (an
// invalid manifest's line:column, a plan, its confirmation, a replica
// recreated by an edit), restart, suspend and resume, delete, sources (a
// broken file's error, live), DNS and routes, refusals, logout.
// MODE=replica (Podman): login, files and the terminal.
// Exits non-zero with the step that failed; prints each step as it passes.
import { chromium } from "playwright-core";
import { execFileSync } from "node:child_process";
import http from "node:http";
import { mkdirSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";

const { BERTH_URL: url, BERTH_TOKEN: token, NAMESPACE: ns, KILL: kill, SCREENSHOTS: shots, MODE: mode, MANIFESTS: manifests } = process.env;
const full = mode === "full";
mkdirSync(shots, { recursive: true });
const step = (text) => console.log(`ok: ${text}`);
const fail = (text) => { throw new Error(text); };

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.on("pageerror", (error) => console.log(`page error: ${error.message}`));

  // Log in: the page sends the browser to the login, a wrong token is refused.
  await page.goto(`${url}/ui/`);
  if (!page.url().endsWith("/ui/login")) fail(`not sent to the login page: ${page.url()}`);
  await page.screenshot({ path: `${shots}/login.png` });
  await page.fill("#token", "not-the-token");
  await page.click("button[type=submit]");
  await page.waitForSelector(".problem");
  step("a wrong token is refused on the login page");
  await page.fill("#token", token);
  await Promise.all([page.waitForURL(`${url}/ui/`), page.click("button[type=submit]")]);
  const cookie = (await context.cookies()).find((c) => c.name === "berth_session");
  if (!cookie || !cookie.httpOnly || cookie.sameSite !== "Strict") fail(`session cookie ${JSON.stringify(cookie)}`);
  step("logged in with an HttpOnly, SameSite=Strict session cookie");

  if (full) {
    // The overview: the example stack Ready, live.
    const row = (name, kind = "Container") => page.locator(`tr[data-key="${kind}/${ns}/${name}"]`);
    await page.fill("#filter-text", "");
    await page.selectOption("#filter-namespace", ns).catch(() => {});
    for (const [kind, name] of [["Container", "web"], ["Container", "api"], ["Network", "app"], ["Volume", "api-data"], ["Image", "busybox"], ["Route", "demo"]]) {
      await row(name, kind).locator("td.ready", { hasText: "True" }).waitFor({ timeout: 60000 });
    }
    await page.selectOption("#filter-namespace", ns);
    await page.screenshot({ path: `${shots}/overview.png`, fullPage: true });
    step("the overview shows the example stack Ready");

    // A replica removed by hand: its row goes not-ready, then Ready again,
    // without a reload.
    await page.evaluate((key) => {
      window.seen = [];
      const record = () => {
        const tr = document.querySelector(`tr[data-key="${key}"]`);
        if (tr) window.seen.push(`${tr.dataset.ready} ${tr.cells[4].textContent}`);
      };
      new MutationObserver(record).observe(document.querySelector("#objects tbody"), { subtree: true, childList: true, attributes: true });
    }, `Container/${ns}/web`);
    const loads = [];
    page.on("load", () => loads.push(page.url()));
    await page.press("#filter-text", "Enter"); // filters filter; Enter submits nothing
    execFileSync("docker", ["rm", "-f", kill]);
    await page.waitForFunction(() => window.seen.some((s) => !s.startsWith("true") || !s.endsWith("2/2")), null, { timeout: 30000 });
    await page.waitForFunction(() => window.seen.length && window.seen[window.seen.length - 1] === "true 2/2", null, { timeout: 60000 });
    if (loads.length) fail(`the page reloaded: ${loads}`);
    step(`after docker rm -f the web row went ${JSON.stringify(await page.evaluate(() => window.seen))} without a reload`);

    // The object page: conditions, replicas, spec, events.
    await row("web").locator("a").click();
    await page.waitForSelector("#replicas tbody tr[data-replica='1']");
    await page.locator("#ready", { hasText: "Ready" }).waitFor();
    if (!(await page.locator("#spec").textContent()).includes("replicas: 2")) fail("the spec is not shown");
    await page.locator("#events li").first().waitFor();
    step("the object page shows conditions, replicas, spec and events");

    // Usage, live: CPU once two samples are in, memory at once.
    await page.locator("#stats tr[data-replica='0'] td.cpu", { hasText: "%" }).waitFor({ timeout: 20000 });
    const memory = await page.locator("#stats tr[data-replica='0'] td.memory").textContent();
    if (!/[KMG]iB/.test(memory)) fail(`the memory cell says ${memory}`);
    step(`the object page shows live usage (memory ${memory})`);
    await page.screenshot({ path: `${shots}/object.png`, fullPage: true });
  }

  // Files: upload into replica 0's /www, see it listed, download it back.
  const uploaded = `${shots}/uploaded.txt`;
  writeFileSync(uploaded, "uploaded through the dashboard\n");
  await page.goto(`${url}/ui/files/${ns}/web?replica=0&path=/www`);
  await page.locator("#files-state", { hasText: "entries" }).waitFor();
  await page.setInputFiles("#upload-input", uploaded);
  await page.locator("#upload-state", { hasText: "uploaded uploaded.txt" }).waitFor();
  await page.locator("#files tr[data-name='uploaded.txt']").waitFor();
  const [fileDownload] = await Promise.all([
    page.waitForEvent("download"),
    page.locator("#files tr[data-name='uploaded.txt'] a", { hasText: "Download" }).click(),
  ]);
  await fileDownload.saveAs(`${shots}/downloaded.txt`);
  if (readFileSync(`${shots}/downloaded.txt`, "utf8") !== "uploaded through the dashboard\n") fail("the download differs");
  await page.screenshot({ path: `${shots}/files.png`, fullPage: true });
  step("uploaded a file into /www, saw it listed, downloaded it back");

  // The terminal: a shell in replica 0.
  await page.goto(`${url}/ui/objects/${ns}/containers/web`);
  await page.locator("#replicas tr[data-replica='0'] a", { hasText: "Terminal" }).click();
  await page.locator("#terminal-state", { hasText: "connected" }).waitFor();
  const screen = () => page.evaluate(() => {
    const buffer = window.berthTerminal.buffer.active;
    const lines = [];
    for (let i = 0; i < buffer.length; i++) lines.push(buffer.getLine(i).translateToString(true));
    return lines.join("\n");
  });
  const waitFor = async (text, what) => {
    const deadline = Date.now() + 20000;
    while (!(await screen()).includes(text)) {
      if (Date.now() > deadline) fail(`${what}: no ${JSON.stringify(text)} on the screen:\n${await screen()}`);
      await page.waitForTimeout(100);
    }
  };
  await page.locator(".xterm-helper-textarea").focus();
  await page.keyboard.type("echo $((6*7))\n");
  await waitFor("\n42", "echo");
  step("typed echo $((6*7)) and saw 42");
  const size = () => page.evaluate(() => `${window.berthTerminal.rows} ${window.berthTerminal.cols}`);
  const before = await size();
  await page.keyboard.type("stty size\n");
  await waitFor(`\n${before}`, "stty size");
  await page.setViewportSize({ width: 900, height: 600 });
  await page.waitForFunction((b) => `${window.berthTerminal.rows} ${window.berthTerminal.cols}` !== b, before);
  const after = await size();
  await page.keyboard.type("clear; stty size\n");
  await waitFor(after, "stty size after the resize");
  step(`stty size followed the window: ${before} then ${after}`);
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.keyboard.type("cat /www/uploaded.txt\n");
  await waitFor("\nuploaded through the dashboard", "the uploaded file, read in the terminal");
  step("cat in the terminal reads the uploaded file");
  await page.screenshot({ path: `${shots}/terminal.png` });
  await page.keyboard.type("exit 3\n");
  await page.locator("#terminal-state", { hasText: "exited with code 3" }).waitFor();
  step("exit ends the session with its code");

  if (full) {
    // The audit log has the session, with who opened it.
    await page.goto(`${url}/ui/events`);
    await page.locator("#log td", { hasText: "started by dashboard session" }).first().waitFor();
    await page.screenshot({ path: `${shots}/events.png` });
    step("the events page shows the terminal session and who opened it");

    // Logs: the api's output followed, searched, downloaded.
    await page.goto(`${url}/ui/objects/${ns}/containers/api`);
    await page.locator("#replicas a", { hasText: "Logs" }).first().click();
    await page.locator("#logs-state", { hasText: "following 1 replica" }).waitFor();
    await page.waitForFunction(() => document.querySelectorAll("#logs span").length > 0, null, { timeout: 30000 });
    const first = (await page.locator("#logs span").first().textContent()).trim();
    await page.fill("#filter-text", "no-such-text-in-any-line");
    if (await page.locator("#logs span:not([hidden])").count()) fail("the search did not hide lines");
    await page.fill("#filter-text", "");
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#download")]);
    const saved = `${shots}/api.log`;
    await download.saveAs(saved);
    if (!readFileSync(saved, "utf8").includes(first)) fail("the download lacks the lines shown");
    await page.screenshot({ path: `${shots}/logs.png` });
    step(`the logs page follows the api (first line ${JSON.stringify(first.slice(0, 60))}), searches and downloads`);


    // The apply page: an invalid manifest's problem at its line and column, then
    // a new Container planned and applied, then an edit that recreates its
    // replica, with the plan's reason.
    const scratch = (greeting) => [
      "apiVersion: berth.dev/v1alpha1", "kind: Container", "metadata:", "  name: scratch", `  namespace: ${ns}`, "spec:",
      "  imageRef: busybox", "  command: [sleep, \"3600\"]", "  stopGracePeriod: 1s", "  env:", "    - name: GREETING",
      `      value: ${greeting}`, "",
    ].join("\n");
    await page.goto(`${url}/ui/apply`);
    await page.fill("#manifest", scratch("one").replace("  imageRef: busybox", "  imageRef: busybox\n  replicas: many"));
    await page.click("#plan-button");
    const problem = page.locator("#problems a", { hasText: "line 8, column" });
    await problem.waitFor();
    const said = await page.locator("#problems li").first().textContent();
    await problem.click();
    const caret = await page.evaluate(() => {
      const editor = document.getElementById("manifest");
      return editor.value.slice(0, editor.selectionStart).split("\n").length;
    });
    if (caret !== 8) fail(`the problem's link put the cursor on line ${caret}`);
    if (!(await page.locator("#gutter .marked").textContent()).includes("8")) fail("line 8 is not marked");
    if (!(await page.isDisabled("#apply-button"))) fail("a refused manifest can be applied");
    await page.screenshot({ path: `${shots}/apply-error.png`, fullPage: true });
    step(`an invalid manifest shows its line and column: ${said.trim()}`);

    await page.fill("#manifest", scratch("one"));
    await page.click("#plan-button");
    await page.locator(".plan-item .badge", { hasText: "create" }).waitFor();
    await page.locator(".plan-item li", { hasText: "create and start replica 0" }).waitFor();
    await page.click("#apply-button");
    await page.locator("#apply-state", { hasText: "Applied at resourceVersion" }).waitFor();
    const objectPage = `${url}/ui/objects/${ns}/containers/scratch`;
    await page.goto(objectPage);
    await page.locator("#ready", { hasText: "Ready" }).waitFor({ timeout: 60000 });
    const replicaId = async () => (await page.locator("#replicas tr[data-replica='0'] code").textContent()).trim();
    const firstId = await replicaId();
    step(`a Container applied from the dashboard runs (replica ${firstId})`);

    await page.click("a.button[href*='/ui/apply?from=']");
    await page.waitForURL(/\/ui\/apply\?from=/);
    const loaded = await page.inputValue("#manifest");
    if (!loaded.includes("value: one") || loaded.includes("resourceVersion")) fail(`the object's manifest: ${loaded}`);
    await page.fill("#manifest", loaded.replace("value: one", "value: two"));
    await page.click("#plan-button");
    const recreate = page.locator(".plan-item li", { hasText: "recreate replica 0" });
    await recreate.waitFor();
    const why = await recreate.textContent();
    if (!why.includes("spec changed: env")) fail(`the plan's reason: ${why}`);
    await page.locator(".plan-item details summary").first().click();
    if (!(await page.locator("pre.diff .add").first().textContent()).includes("two")) fail("the diff lacks the new value");
    await page.screenshot({ path: `${shots}/apply-plan.png`, fullPage: true });
    await page.fill("#manifest", loaded.replace("value: one", "value: three"));
    if (!(await page.isDisabled("#apply-button"))) fail("an edit after the plan can be applied unplanned");
    await page.fill("#manifest", loaded.replace("value: one", "value: two"));
    await page.click("#plan-button");
    await recreate.waitFor();
    await page.click("#apply-button");
    await page.locator("#apply-state", { hasText: "Applied at resourceVersion" }).waitFor();
    await page.goto(objectPage);
    await page.waitForFunction((old) => {
      const cell = document.querySelector("#replicas tr[data-replica='0'] code");
      const ready = document.getElementById("ready").textContent;
      return cell && cell.textContent.trim() !== old && ready === "Ready";
    }, firstId, { timeout: 60000 });
    step(`the plan said "${why.trim()}"; confirmed, replica 0 was recreated (${await replicaId()})`);

    // Actions: each asks for a reason, then the page follows what happens.
    const act = async (action, reason) => {
      await page.click(`#actions button[data-action="${action}"]`);
      await page.fill("dialog.confirm #reason", reason);
      await page.click("dialog.confirm button[value=ok]");
    };
    const beforeRestart = await replicaId();
    await page.click("#replicas tr[data-replica='0'] button.restart-replica");
    await page.fill("dialog.confirm #reason", "testing a replica restart");
    await page.click("dialog.confirm button[value=ok]");
    await page.waitForFunction((old) => {
      const cell = document.querySelector("#replicas tr[data-replica='0'] code");
      return cell && cell.textContent.trim() !== old && document.getElementById("ready").textContent === "Ready";
    }, beforeRestart, { timeout: 60000 });
    step("restarting replica 0 replaced it");
    await act("suspend", "testing a suspension");
    await page.locator("#ready", { hasText: "Suspended" }).waitFor({ timeout: 30000 });
    await page.locator("#suspended", { hasText: "testing a suspension" }).waitFor();
    await page.waitForFunction(() => !document.querySelector("#replicas tbody tr"), null, { timeout: 30000 });
    await page.screenshot({ path: `${shots}/suspended.png`, fullPage: true });
    await page.goto(`${url}/ui/`);
    await page.locator(`tr[data-key="Container/${ns}/scratch"] td.ready`, { hasText: "Suspended" }).waitFor();
    step("suspend removed the replicas and the page and the overview say Suspended");
    await page.goto(objectPage);
    await act("resume", "testing a resume");
    await page.locator("#ready", { hasText: "Ready" }).waitFor({ timeout: 60000 });
    if (await page.locator("#suspended").isVisible()) fail("the suspension banner stays after resume");
    step("resume brought the replica back");
    await page.goto(`${url}/ui/objects/${ns}/containers/web`);
    if (await page.locator("#actions button[data-action=delete]").count()) fail("a file's object offers Delete");
    await page.goto(objectPage);
    await act("delete", "testing a délété ✓");
    const gone = async () => page.evaluate(async (path) => (await fetch(path)).status,
      `/apis/berth.dev/v1alpha1/namespaces/${ns}/containers/scratch`);
    for (let tries = 0; (await gone()) !== 404; tries++) {
      if (tries > 120) fail("the deleted Container is still there");
      await page.waitForTimeout(500);
    }
    step("delete removed the Container the dashboard applied");
    await page.goto(`${url}/ui/events`);
    for (const text of ["suspended by dashboard session", "testing a suspension", "resumed by dashboard session",
                        "replica 0 restarted by dashboard session", "testing a délété ✓"]) {
      await page.locator("#log td", { hasText: text }).first().waitFor();
    }
    step("the events page names who did each action and why");

    // Sources: a broken file shows its error at its line and column, live.
    await page.goto(`${url}/ui/sources`);
    await page.locator("#sources td", { hasText: "04-web.yaml" }).waitFor();
    writeFileSync(`${manifests}/99-broken.yaml`, "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata:\n  name: broken\nspec:\n  imageRef: busybox\n  replica: 2\n");
    await page.locator("#sources ul.errors li", { hasText: "99-broken.yaml:7:3" }).waitFor({ timeout: 30000 });
    await page.screenshot({ path: `${shots}/sources.png`, fullPage: true });
    unlinkSync(`${manifests}/99-broken.yaml`);
    step("the sources page showed a broken file's error at 99-broken.yaml:7:3 without a reload");

    // DNS and routes: the served records and the route's healthy backends.
    await page.goto(`${url}/ui/network`);
    await page.locator("#records td", { hasText: "web.demo" }).first().waitFor();
    await page.locator("#routes td.backends .ok", { hasText: `Container/${ns}/web#` }).first().waitFor({ timeout: 30000 });
    await page.screenshot({ path: `${shots}/network.png`, fullPage: true });
    step("the DNS and routes page shows the records and the route's healthy backends");
  }

  if (full) {
    // A phone's width in dark mode: nothing wider than the screen but the
    // tables' own scrolling boxes.
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, colorScheme: "dark" });
    await phone.addCookies([cookie]);
    const small = await phone.newPage();
    for (const path of ["/ui/", `/ui/objects/${ns}/containers/web`, "/ui/apply", "/ui/sources", "/ui/network"]) {
      await small.goto(`${url}${path}`);
      await small.waitForTimeout(300);
      const [width, screen] = await small.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
      if (width > screen) fail(`${path} is ${width}px wide on a ${screen}px screen`);
    }
    const background = await small.evaluate(() => getComputedStyle(document.body).backgroundColor);
    if (background === "rgb(255, 255, 255)") fail("dark mode kept a white page");
    await small.goto(`${url}/ui/`);
    await small.locator(`tr[data-key="Container/${ns}/web"] td.ready`, { hasText: "True" }).waitFor();
    await small.screenshot({ path: `${shots}/overview-phone-dark.png`, fullPage: true });
    await phone.close();
    step("at a phone's width in dark mode no page is wider than the screen");
  }

  // Refusals: no cookie, another origin, no origin.
  const session = `berth_session=${cookie.value}`;
  const api = `${url}/apis/berth.dev/v1alpha1/namespaces/${ns}/containers`;
  let answer = await fetch(api);
  if (answer.status !== 401) fail(`no cookie: ${answer.status}`);
  answer = await fetch(api, { headers: { cookie: session } });
  if (answer.status !== 200) fail(`the cookie reads: ${answer.status}`);
  answer = await fetch(`${api}/web`, { method: "DELETE", headers: { cookie: session } });
  if (answer.status !== 403) fail(`a delete without an Origin: ${answer.status}`);
  answer = await fetch(`${api}/web`, { method: "DELETE", headers: { cookie: session, origin: "http://evil.example" } });
  if (answer.status !== 403) fail(`a delete from another origin: ${answer.status}`);
  const upgrade = (origin) => new Promise((resolve, reject) => {
    const request = http.request(`${api}/web/exec?command=sh&tty=true&stdin=true`, {
      headers: { cookie: session, origin, connection: "Upgrade", upgrade: "websocket", "sec-websocket-version": "13",
                 "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-protocol": "v5.channel.k8s.io" },
    });
    request.on("response", (response) => resolve(response.statusCode));
    request.on("upgrade", (response, socket) => { socket.destroy(); resolve(response.statusCode); });
    request.on("error", reject);
    request.end();
  });
  const foreign = await upgrade("http://evil.example");
  if (foreign !== 403) fail(`a terminal from another origin: ${foreign}`);
  const own = await upgrade(new URL(url).origin);
  if (own !== 101) fail(`a terminal from the dashboard's origin: ${own}`);
  step("requests without the cookie, or from another origin, are refused");

  // Log out: the session ends, its cookie no longer works.
  await page.goto(`${url}/ui/`);
  await Promise.all([page.waitForURL(`${url}/ui/login`), page.click("nav button")]);
  answer = await fetch(api, { headers: { cookie: session } });
  if (answer.status !== 401) fail(`the cookie after logout: ${answer.status}`);
  step("logout ends the session");
} finally {
  await browser.close();
}
