// The real app in a real window (Xvfb), driven over WebDriver (tauri-driver → WebKitWebDriver):
// sign-in, an echo call with frames arriving, mute / camera off / hang up, the history row; then
// the app against headless clients on its own embedded server (outgoing and incoming calls);
// then sign-out and a wrong password. Screenshots of every screen go to $DYAD_SHOTS
// (default: target/e2e-shots).
//
// Run: scripts/e2e.sh (builds the app and the CLI, starts Xvfb and tauri-driver).
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import {
  assertAdvancing, attr, click, cpuSeconds, js, jsAsync, readStats, shot, sleep, SHOTS, startApp, startCli, stopApp, type, waitAttr, waitFor,
} from "./driver.mjs";

before(() => startApp());
after(stopApp);

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
  await statsDuringTheCall();
  const stats = await jsAsync(
    `const done = arguments[arguments.length - 1]; window.__TAURI_INTERNALS__.invoke("frame_stats").then(done, (e) => done({ error: String(e) }));`,
  );
  console.log("frame delivery:", JSON.stringify(stats));
  writeFileSync(join(SHOTS, "frame-stats.json"), JSON.stringify(stats, null, 2));
  assert.ok(stats.remote.drawn > 30, JSON.stringify(stats));
  await click("[data-action=hang-up]");
  await waitFor("[data-screen=home]");
  await waitFor("[data-role=ended]");
  // The ended call's statistics can still be saved from the banner.
  await click("[data-action=export-last-json]");
  const saved = await waitAttr("[data-role=ended-export-note]", "data-path", (v) => /\.json$/.test(v ?? ""));
  const dump = JSON.parse(readFileSync(saved, "utf8"));
  assert.ok(JSON.parse(Object.values(dump.PeerConnections)[0].stats["IT01V-framesDecoded"].values).length > 20);
  await click("[data-tab=history]");
  await waitFor("[data-screen=history] tr[data-outcome=answered] [data-role=summary]");
  const row = await js(`return document.querySelector("tr[data-outcome=answered]").innerText`);
  assert.match(row, /echo/);
  assert.match(row, /\d:\d\d/);
  // The summary the app kept: quality, freezes, path.
  assert.match(row, /(Good|Fair|Poor) \d+ %/);
  assert.match(row, /direct \((host|prflx)\) over UDP/);
  await shot("4-history");
});

/** The statistics screen over the echo call: opens from the pill, graphs have points and grow,
 * numbers change second by second, the video keeps playing, export writes both files, and its
 * rendering cost is measured (written to $DYAD_SHOTS/stats-cpu.json for docs/benchmarks.md). */
async function statsDuringTheCall() {
  // CPU of the page with the screen closed, then open (same call, same video).
  const web = "WebKitWebProcess";
  const cpuOver10s = async () => {
    const c0 = cpuSeconds(web);
    const t0 = Date.now();
    await sleep(10000);
    return (cpuSeconds(web) - c0) / ((Date.now() - t0) / 1000);
  };
  const closed1 = await cpuOver10s();
  await click("[data-role=quality]");
  await waitFor("[data-role=stats].open");
  assert.equal(await attr("[data-screen=in-call]", "data-stats"), "open");
  const a = await readStats();
  await sleep(2500);
  const b = await readStats();
  for (const [id, c] of Object.entries(b.charts)) {
    assert.ok(c.points > 0 && c.canvas, `graph ${id}: ${JSON.stringify(c)}`);
    assert.ok(c.points >= a.charts[id].points + 2, `graph ${id} grows: ${a.charts[id].points} → ${c.points}`);
  }
  // uPlot holds the points of the graphs in view (those redraw each second; the others when
  // scrolled to): the first graph keeps up, and the last one catches up once in view.
  assert.ok(b.charts.score.drawn >= a.charts.score.drawn + 2, `score graph drew ${a.charts.score.drawn} → ${b.charts.score.drawn}`);
  await js(`document.querySelector("[data-chart=g2g]").scrollIntoView()`);
  await sleep(1500);
  const g = await readStats();
  assert.ok(g.charts.g2g.drawn >= b.charts.g2g.points, `glass-to-glass graph drew ${g.charts.g2g.drawn} of ${g.charts.g2g.points}`);
  await shot("8b-stats-graphs");
  await js(`document.querySelector("[data-role=stats]").scrollTop = 0`);
  assert.notEqual(a.metrics.duration, b.metrics.duration);
  const moving = ["out-video-bitrate", "in-video-bitrate", "out-audio-bitrate", "in-audio-bitrate", "in-video-jitter", "in-audio-jitter", "out-video-encode", "in-video-decode", "in-audio-level"];
  const changed = moving.filter((k) => a.metrics[k] !== b.metrics[k]);
  assert.ok(changed.length >= 3, `figures that changed in 2.5 s: ${changed.join(", ")}\n${JSON.stringify(b.metrics)}`);
  assert.match(b.metrics.path, /^direct \((host|prflx)\) over UDP$/);
  assert.equal(b.metrics.encryption, "DTLS-SRTP, AEAD_AES_128_GCM");
  assert.equal(b.metrics.codecs, "VP8 video, opus audio");
  assert.match(b.metrics["out-video-size"], /^\d+×\d+$/);
  assert.ok(["good", "fair", "poor"].includes(b.band), b.band);
  // The video beside it keeps playing.
  await assertAdvancing("remote");
  await shot("8-stats-echo");
  const open1 = await cpuOver10s();
  const c = await readStats();
  // Export: both files land in the export folder and hold the whole call.
  await click("[data-action=export-json]");
  const jsonPath = await waitAttr("[data-role=export-note]", "data-path", (v) => /\.json$/.test(v ?? ""));
  const dump = JSON.parse(readFileSync(jsonPath, "utf8"));
  const pc = Object.values(dump.PeerConnections)[0];
  const sent = JSON.parse(pc.stats["OT01V-bytesSent"].values);
  assert.ok(sent.length >= c.charts.bitrate.points, `${sent.length} seconds in the dump`);
  assert.ok(sent[sent.length - 1] > sent[0], "bytesSent grows");
  assert.equal(pc.stats["OT01V-bytesSent"].statsType, "outbound-rtp");
  await click("[data-action=export-csv]");
  const csvPath = await waitAttr("[data-role=export-note]", "data-path", (v) => /\.csv$/.test(v ?? ""));
  const lines = readFileSync(csvPath, "utf8").trim().split("\n");
  assert.ok(lines.length - 1 >= sent.length, `${lines.length - 1} CSV rows`);
  assert.match(lines[0], /^timestamp,callSeconds,events,/);
  // Closed again: a second closed window, then Esc must close the screen, not hang up.
  await click("[data-action=close-stats]");
  await waitAttr("[data-screen=in-call]", "data-stats", (v) => v === "closed");
  const closed2 = await cpuOver10s();
  await click("[data-role=quality]");
  await waitFor("[data-role=stats].open");
  const open2 = await cpuOver10s();
  const d = await readStats();
  await js(`document.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape" }))`);
  await waitAttr("[data-screen=in-call]", "data-stats", (v) => v === "closed");
  await waitFor("[data-screen=in-call]");
  const cost = {
    webProcessCpuClosed: [closed1, closed2],
    webProcessCpuOpen: [open1, open2],
    extraCpuOpenMinusClosed: (open1 + open2 - closed1 - closed2) / 2,
    pageUpdateMsPerSecond: (d.renderMs - a.renderMs) / Math.max(1, d.renders - a.renders),
    updates: d.renders,
  };
  console.log("statistics screen cost:", JSON.stringify(cost));
  writeFileSync(join(SHOTS, "stats-cpu.json"), JSON.stringify(cost, null, 2));
}

test("the app calls a headless client on its embedded server and sees its test pattern", async () => {
  await click("[data-tab=settings]");
  server = await js(`return document.querySelector("[data-role=server-url]").textContent`);
  assert.match(server, /^http:\/\/127\.0\.0\.1:\d+$/);
  // "Anyone may call me": the server stores it and says so back; off again for the rest.
  await click("[data-setting=anyone-may-call]");
  await waitFor("[data-setting=anyone-may-call]:checked");
  // Sound: echo cancellation off goes through the app's command to the client (and is kept);
  // back on for the calls that follow.
  await click("[data-setting=echo-cancellation]");
  await waitFor("[data-setting=echo-cancellation]:not(:checked)");
  await waitFor("[data-setting=noise-suppression]:checked");
  await shot("5-settings");
  // "Test my network" runs the doctor's checks against the built-in server with this session's
  // token: its WebSocket answers, and since the server is on this computer the conclusion says
  // calls through it reach only this computer (not "calls will not connect").
  await click("[data-action=test-network]");
  await waitFor("[data-role=network-verdict]", 30000);
  const network = await js(`return [...document.querySelectorAll("[data-role=network-lines] li")].map(l => l.textContent)`);
  assert.match(network[0], /^Server: reached over HTTP, round trip \d+ ms; its WebSocket answers/, network.join("\n"));
  assert.ok(network.some((l) => /^IPv4: /.test(l)), network.join("\n"));
  assert.match(network[network.length - 1], /^This server runs on this computer/, network.join("\n"));
  assert.equal(await js(`return document.querySelector("[data-role=network-test]").dataset.state`), "ok");
  // The settings scroll inside their pane (the window does not: the sidebar stays put).
  await js(`document.querySelector("[data-role=network-test]").scrollIntoView()`);
  assert.equal(await js(`return document.scrollingElement.scrollTop + document.querySelector("#app").scrollTop`), 0);
  await shot("5a-network-test");
  await js(`document.querySelector("[data-screen=settings]").scrollIntoView()`);
  await click("[data-setting=echo-cancellation]");
  await waitFor("[data-setting=echo-cancellation]:checked");
  await click("[data-setting=anyone-may-call]");
  await waitFor("[data-setting=anyone-may-call]:not(:checked)");
  const bob = startCli(["answer", "--server", server, "--user", "bob", "--password", "bob password 1"]);
  await sleep(1500);
  // A contact request: `dyad answer` accepts every request, then bob shows online.
  await type("#new-contact", "bob");
  await click("[data-action=add-contact]");
  await waitFor("[data-contact=bob][data-state=accepted][data-presence=online]", 20000);
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
  // carol is not a contact: her `dyad call` asks first, and waits for the user to accept.
  await waitFor("[data-contact=carol][data-state=incoming]", 20000);
  await shot("5b-contact-request");
  await click("[data-contact=carol] [data-action=accept-contact]");
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
  await waitFor("[data-contact=dan][data-state=incoming]", 20000);
  await click("[data-contact=dan] [data-action=accept-contact]");
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
