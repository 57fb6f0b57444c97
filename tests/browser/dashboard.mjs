// The dashboard in a real browser: Debian's Chromium driven by
// playwright-core against a `berth serve` on real Docker, as a person uses
// it. Run by tests/integration/dashboard.rs, which starts berth on the
// example stack and passes:
//   BERTH_URL, BERTH_TOKEN, NAMESPACE, KILL (the engine name of web's
//   replica 0, removed with `docker rm -f` mid-test), SCREENSHOTS (a dir).
// Steps: login, overview, drift repaired live, object page, files (upload,
// list, download), terminal (echo, stty size through a resize, cat of the
// upload, exit code), events, logs, refusals, logout.
// Exits non-zero with the step that failed; prints each step as it passes.
import { chromium } from "playwright-core";
import { execFileSync } from "node:child_process";
import http from "node:http";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";

const { BERTH_URL: url, BERTH_TOKEN: token, NAMESPACE: ns, KILL: kill, SCREENSHOTS: shots } = process.env;
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
  await page.screenshot({ path: `${shots}/object.png`, fullPage: true });
  step("the object page shows conditions, replicas, spec and events");

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
