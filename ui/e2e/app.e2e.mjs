// The real app in a real window (Xvfb), driven over WebDriver (tauri-driver → WebKitWebDriver):
// sign-in, an echo call with frames arriving, mute / camera off / hang up, the history row; then
// the app against headless clients on its own embedded server (outgoing and incoming calls);
// then sign-out and a wrong password. Screenshots of every screen go to $DYAD_SHOTS
// (default: target/e2e-shots).
//
// Run: scripts/e2e.sh (builds the app and the CLI, starts Xvfb and tauri-driver).
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, test } from "node:test";
import assert from "node:assert/strict";

const root = resolve(import.meta.dirname, "../..");
const target = process.env.CARGO_TARGET_DIR ?? join(root, "target");
const APP = process.env.DYAD_APP ?? join(target, "debug/dyad-app");
const CLI = process.env.DYAD_CLI ?? join(target, "debug/dyad");
const DRIVER = process.env.TAURI_DRIVER ?? "tauri-driver";
const SHOTS = process.env.DYAD_SHOTS ?? join(target, "e2e-shots");
const PORT = 4444 + Math.floor(Math.random() * 500);
const W3C = "element-6066-11e4-a52f-4a6fb5d5a3d6";

const children = [];
let session = null;
let dataDir = null;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function wd(method, path, body) {
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

async function find(css) {
  const v = await wd("POST", s("/element"), { using: "css selector", value: css });
  const id = v?.[W3C] ?? v?.ELEMENT ?? (v && Object.values(v)[0]);
  if (!id) throw new Error(`no element id in ${JSON.stringify(v)}`);
  return id;
}
async function click(css) {
  const id = await waitFor(css);
  await wd("POST", s(`/element/${id}/click`), {});
}
async function type(css, text) {
  const id = await waitFor(css);
  await wd("POST", s(`/element/${id}/clear`), {});
  await wd("POST", s(`/element/${id}/value`), { text });
}
async function js(script, ...args) {
  return wd("POST", s("/execute/sync"), { script, args });
}
async function jsAsync(script, ...args) {
  return wd("POST", s("/execute/async"), { script, args });
}
/** Waits until `css` matches; returns the element id. */
async function waitFor(css, ms = 20000) {
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
async function attr(css, name) {
  return js(`const e = document.querySelector(arguments[0]); return e ? e.getAttribute(arguments[1]) : null;`, css, name);
}
async function waitAttr(css, name, pred, ms = 20000) {
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
async function shot(name) {
  await sleep(300);
  const r = spawnSync("import", ["-window", "root", join(SHOTS, `${name}.png`)], { timeout: 20000 });
  if (r.status !== 0) throw new Error(`screenshot ${name}: ${r.stderr}`);
}
/** Frames drawn and the test-pattern frame number in a video view. */
async function video(which) {
  return js(
    `const e = document.querySelector(arguments[0]); return e ? [Number(e.dataset.frames), Number(e.dataset.marker ?? -1), e.dataset.state] : null;`,
    `.video-${which}`,
  );
}
/** Checks that `which` video advances: more frames drawn and a later pattern frame number. */
async function assertAdvancing(which) {
  const a = await waitFor(`.video-${which}[data-state=video]`);
  assert.ok(a);
  const [f1, m1] = await video(which);
  await sleep(1500);
  const [f2, m2] = await video(which);
  assert.ok(f2 > f1 + 10, `${which}: frames drawn ${f1} → ${f2}`);
  assert.ok(m2 > m1, `${which}: pattern frame ${m1} → ${m2}`);
  return { fps: (f2 - f1) / 1.5, marker: m2 };
}
function startCli(args) {
  const p = spawn(CLI, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: "warn" } });
  let out = "";
  p.stdout.on("data", (d) => (out += d));
  p.stderr.on("data", (d) => (out += d));
  p.output = () => out;
  p.exited = new Promise((r) => p.on("exit", r));
  children.push(p);
  return p;
}

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  dataDir = mkdtempSync(join(tmpdir(), "dyad-e2e-"));
  const driver = spawn(DRIVER, ["--port", String(PORT), "--native-port", String(PORT + 1000)], {
    stdio: ["ignore", "inherit", "inherit"],
    env: { ...process.env, WEBKIT_DISABLE_COMPOSITING_MODE: "1", DYAD_DATA_DIR: dataDir, RUST_LOG: "info,webrtc=off" },
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
});

after(async () => {
  if (session) await wd("DELETE", s("")).catch(() => undefined);
  for (const c of children) c.kill("SIGTERM");
  // WebKitWebDriver started the app; if it outlived the session, stop it (this exact binary).
  spawnSync("pkill", ["-TERM", "-f", APP]);
  await sleep(500);
  spawnSync("pkill", ["-KILL", "-f", APP]);
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  // Nothing of ours is left; do not wait for stray handles (keep-alive sockets to the driver).
  setTimeout(() => process.exit(), 200).unref();
});

let me = null;
let server = null;

test("first run: the embedded server signs the user in and the echo contact is there", async () => {
  await waitFor("[data-screen=home]", 40000);
  me = await js(`return document.querySelector("[data-role=me]").textContent`);
  assert.ok(me.length > 0);
  await waitFor("[data-contact=echo][data-presence=online]");
  // The pre-join preview draws the self-view from the test pattern.
  await assertAdvancing("local");
  await sleep(500);
  await shot("1-home-prejoin");
});

test("echo call: remote frames arrive, mute, camera off, hang up, history row", async () => {
  await click("[data-contact=echo]");
  await click("[data-action=call]");
  await waitFor("[data-screen=in-call]");
  const remote = await assertAdvancing("remote");
  assert.ok(remote.fps > 10, `remote fps ${remote.fps}`);
  await waitFor("[data-role=timer]");
  await waitAttr("[data-role=quality]", "class", (c) => /q-(good|fair|poor)/.test(c ?? ""));
  await shot("2-in-call-echo");
  await click("[data-action=mute]");
  await waitAttr("[data-action=mute]", "aria-pressed", (v) => v === "true");
  // Camera off: the echo sends our black frames back; the page shows "camera off", not a frozen frame.
  await click("[data-action=camera]");
  await waitAttr("[data-action=camera]", "aria-pressed", (v) => v === "true");
  await waitAttr(".video-remote", "data-state", (v) => v === "camera-off");
  await shot("3-in-call-camera-off");
  await click("[data-action=camera]");
  await waitAttr(".video-remote", "data-state", (v) => v === "video");
  const stats = await jsAsync(
    `const done = arguments[arguments.length - 1]; window.__TAURI_INTERNALS__.invoke("frame_stats").then(done, (e) => done({ error: String(e) }));`,
  );
  console.log("frame delivery:", JSON.stringify(stats));
  writeFileSync(join(SHOTS, "frame-stats.json"), JSON.stringify(stats, null, 2));
  assert.ok(stats.remote.drawn > 30, JSON.stringify(stats));
  await click("[data-action=hang-up]");
  await waitFor("[data-screen=home]");
  await waitFor("[data-role=ended]");
  await click("[data-tab=history]");
  await waitFor("[data-screen=history] tr[data-outcome=answered]");
  const row = await js(`return document.querySelector("tr[data-outcome=answered]").innerText`);
  assert.match(row, /echo/);
  assert.match(row, /0:\d\d/);
  await shot("4-history");
});

test("the app calls a headless client on its embedded server and sees its test pattern", async () => {
  await click("[data-tab=settings]");
  server = await js(`return document.querySelector("[data-role=server-url]").textContent`);
  assert.match(server, /^http:\/\/127\.0\.0\.1:\d+$/);
  await shot("5-settings");
  const bob = startCli(["answer", "--server", server, "--user", "bob", "--password", "bob password 1"]);
  await sleep(1500);
  await type("#new-contact", "bob");
  await click("[data-action=add-contact]");
  await waitFor("[data-contact=bob][data-presence=online]", 20000);
  await click("[data-contact=bob]");
  await click("[data-action=call]");
  await waitFor("[data-screen=in-call]", 20000);
  await assertAdvancing("remote");
  await click("[data-action=hang-up]");
  await waitFor("[data-screen=home]");
  bob.kill("SIGTERM");
});

test("a headless client calls the app: ringing screen, accept, frames, the caller hangs up", async () => {
  const carol = startCli(["call", me, "--server", server, "--user", "carol", "--password", "carol password 1", "--seconds", "8"]);
  await waitFor("[data-screen=incoming]", 20000);
  const caller = await js(`return document.querySelector("[data-role=caller]").textContent`);
  assert.equal(caller, "carol");
  await shot("6-incoming");
  await click("[data-action=accept]");
  await waitFor("[data-screen=in-call]");
  await assertAdvancing("remote");
  // carol hangs up after her 8 s; the app returns home with the end shown.
  await waitFor("[data-screen=home]", 20000);
  await carol.exited;
  await click("[data-tab=history]");
  await waitFor("tr[data-outcome=answered] ~ tr, tr[data-outcome=answered]");
  const rows = await js(`return [...document.querySelectorAll("tr[data-call]")].map(r => r.innerText)`);
  assert.ok(rows.some((r) => /carol/.test(r)), rows.join("\n"));
});

test("a declined call shows in the caller's history as declined", async () => {
  const dan = startCli(["call", me, "--server", server, "--user", "dan", "--password", "dan password 1", "--seconds", "20"]);
  await waitFor("[data-screen=incoming]", 20000);
  await click("[data-action=decline]");
  await waitFor("[data-screen=home]");
  await dan.exited;
  await click("[data-tab=history]");
  await waitFor("tr[data-outcome=declined]");
});

test("sign out, a wrong password shows an error, a new account signs in", async () => {
  await click("[data-tab=settings]");
  await click("[data-action=sign-out]");
  await waitFor("[data-screen=sign-in]");
  await type("#username", me);
  await type("#password", "not the password");
  await click("[data-action=sign-in]");
  await waitFor("[data-role=error][data-kind=wrong_credentials]");
  await shot("7-sign-in-error");
  await type("#username", "erin");
  await type("#password", "erin password 1");
  await click("[data-action=register]");
  await waitFor("[data-screen=home]");
  assert.equal(await js(`return document.querySelector("[data-role=me]").textContent`), "erin");
});
