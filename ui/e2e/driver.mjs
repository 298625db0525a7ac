// What the window tests share: WebDriver calls (tauri-driver → WebKitWebDriver), waits,
// screenshots of the X screen, video checks, headless CLI clients, and starting/stopping the app.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import assert from "node:assert/strict";

export const root = resolve(import.meta.dirname, "../..");
export const target = process.env.CARGO_TARGET_DIR ?? join(root, "target");
export const APP = process.env.DYAD_APP ?? join(target, "debug/dyad-app");
export const CLI = process.env.DYAD_CLI ?? join(target, "debug/dyad");
const DRIVER = process.env.TAURI_DRIVER ?? "tauri-driver";
export const SHOTS = process.env.DYAD_SHOTS ?? join(target, "e2e-shots");
const PORT = 4444 + Math.floor(Math.random() * 500);
const W3C = "element-6066-11e4-a52f-4a6fb5d5a3d6";

const children = [];
let session = null;
let dataDir = null;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function wd(method, path, body) {
  const r = await fetch(`http://127.0.0.1:${PORT}${path}`, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(60000),
  });
  const j = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(j)}`);
  return j.value;
}
const s = (p) => `/session/${session}${p}`;

export async function find(css) {
  const v = await wd("POST", s("/element"), { using: "css selector", value: css });
  const id = v?.[W3C] ?? v?.ELEMENT ?? (v && Object.values(v)[0]);
  if (!id) throw new Error(`no element id in ${JSON.stringify(v)}`);
  return id;
}
export async function click(css) {
  const id = await waitFor(css);
  await wd("POST", s(`/element/${id}/click`), {});
}
export async function type(css, text) {
  const id = await waitFor(css);
  await wd("POST", s(`/element/${id}/clear`), {});
  await wd("POST", s(`/element/${id}/value`), { text });
}
export async function js(script, ...args) {
  return wd("POST", s("/execute/sync"), { script, args });
}
export async function jsAsync(script, ...args) {
  return wd("POST", s("/execute/async"), { script, args });
}
/** Waits until `css` matches; returns the element id. */
export async function waitFor(css, ms = 20000) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try {
      return await find(css);
    } catch (e) {
      last = e;
      await sleep(150);
    }
  }
  const text = await js("return document.body.innerText").catch(() => "?");
  throw new Error(`timed out waiting for ${css}: ${last?.message}\npage text: ${text}`);
}
export async function attr(css, name) {
  return js(`const e = document.querySelector(arguments[0]); return e ? e.getAttribute(arguments[1]) : null;`, css, name);
}
export async function waitAttr(css, name, pred, ms = 20000) {
  const end = Date.now() + ms;
  let v;
  while (Date.now() < end) {
    v = await attr(css, name);
    if (pred(v)) return v;
    await sleep(150);
  }
  throw new Error(`timed out: ${css} @${name} = ${v}`);
}
/** A screenshot of the whole X screen (the window as a person sees it). WebKitWebDriver's own
 * screenshot command hung here once a WebGL canvas had been drawn and detached, so we ask X. */
export async function shot(name) {
  await sleep(300);
  const r = spawnSync("import", ["-window", "root", join(SHOTS, `${name}.png`)], { timeout: 20000 });
  if (r.status !== 0) throw new Error(`screenshot ${name}: ${r.stderr}`);
}
/** Frames drawn and the test-pattern frame number in a video view. */
export async function video(which) {
  return js(
    `const e = document.querySelector(arguments[0]); return e ? [Number(e.dataset.frames), Number(e.dataset.marker ?? -1), e.dataset.state] : null;`,
    `.video-${which}`,
  );
}
/** Checks that `which` video advances: more frames drawn and a later pattern frame number. */
export async function assertAdvancing(which) {
  const a = await waitFor(`.video-${which}[data-state=video]`);
  assert.ok(a);
  const [f1, m1] = await video(which);
  await sleep(1500);
  const [f2, m2] = await video(which);
  assert.ok(f2 > f1 + 10, `${which}: frames drawn ${f1} → ${f2}`);
  assert.ok(m2 > m1, `${which}: pattern frame ${m1} → ${m2}`);
  return { fps: (f2 - f1) / 1.5, marker: m2 };
}
export function startCli(args) {
  const p = spawn(CLI, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: "warn" } });
  let out = "";
  p.stdout.on("data", (d) => (out += d));
  p.stderr.on("data", (d) => (out += d));
  p.output = () => out;
  p.exited = new Promise((r) => p.on("exit", r));
  children.push(p);
  return p;
}

/** The statistics screen as data: each graph's point count and whether uPlot drew it, every
 * figure's text, the quality band and reason code, and the page's own rendering time. */
export async function readStats() {
  return js(`const q = document.querySelector("[data-role=stats-quality]");
    const panel = document.querySelector("[data-role=stats]");
    return {
      charts: Object.fromEntries([...document.querySelectorAll("[data-chart]")].map((c) => [c.dataset.chart, { points: Number(c.dataset.points), drawn: Number(c.dataset.drawn), canvas: !!c.querySelector("canvas"), empty: !!c.querySelector(".chart-empty") }])),
      metrics: Object.fromEntries([...document.querySelectorAll("[data-metric]")].map((e) => [e.dataset.metric, e.textContent])),
      band: q?.dataset.band ?? null,
      reason: q?.dataset.reason ?? null,
      renderMs: Number(panel?.dataset.renderMs ?? 0),
      renders: Number(panel?.dataset.renders ?? 0),
    };`);
}

/** CPU seconds used so far by the processes whose command line contains `name`. */
export function cpuSeconds(name) {
  const USER_HZ = 100;
  let ticks = 0;
  for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      if (!readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(name)) continue;
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      ticks += Number(f[11]) + Number(f[12]); // utime, stime
    } catch {
      // The process ended meanwhile.
    }
  }
  return ticks / USER_HZ;
}

/** Starts tauri-driver and a WebDriver session on the app (its data in a fresh directory). */
export async function startApp(extraEnv = {}) {
  mkdirSync(SHOTS, { recursive: true });
  dataDir = mkdtempSync(join(tmpdir(), "dyad-e2e-"));
  const driver = spawn(DRIVER, ["--port", String(PORT), "--native-port", String(PORT + 1000)], {
    stdio: ["ignore", "inherit", "inherit"],
    env: { ...process.env, WEBKIT_DISABLE_COMPOSITING_MODE: "1", DYAD_DATA_DIR: dataDir, DYAD_EXPORT_DIR: join(dataDir, "exports"), RUST_LOG: "info,webrtc=off", ...extraEnv },
  });
  children.push(driver);
  for (let i = 0; i < 100; i++) {
    try {
      await fetch(`http://127.0.0.1:${PORT}/status`);
      break;
    } catch {
      await sleep(100);
    }
  }
  const v = await wd("POST", "/session", {
    capabilities: { alwaysMatch: { "tauri:options": { application: APP } } },
  });
  session = v.sessionId;
  await wd("POST", s("/timeouts"), { script: 15000 });
  return { dataDir };
}

/** Ends the session and everything started. */
export async function stopApp() {
  if (session) await wd("DELETE", s("")).catch(() => undefined);
  for (const c of children) c.kill("SIGTERM");
  // WebKitWebDriver started the app; if it outlived the session, stop it (this exact binary).
  spawnSync("pkill", ["-TERM", "-f", APP]);
  await sleep(500);
  spawnSync("pkill", ["-KILL", "-f", APP]);
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  // Nothing of ours is left; do not wait for stray handles (keep-alive sockets to the driver).
  setTimeout(() => process.exit(), 200).unref();
}

