// A guest joins the app by its own link: the app's "Invite by link" makes the link on its
// built-in server, headless Chromium (ui/e2e/guest-chromium.mjs) opens it and joins, the app
// rings, accepts, both decode the other's test pattern, and the app hangs up. scripts/e2e.sh runs
// this file inside a network namespace of its own that has only loopback (app, built-in server,
// WebKit and Chromium all inside). The screenshots are the app's side of a guest call.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { assertAdvancing, CLI, click, js, root, shot, startApp, stopApp, waitFor } from "./driver.mjs";

const dir = mkdtempSync(join(tmpdir(), "dyad-guest-"));
let guest = null;
before(() => startApp());
after(() => {
  guest?.kill("SIGTERM");
  rmSync(dir, { recursive: true, force: true });
  return stopApp();
});

test("a guest opens the app's link in Chromium; the app accepts, both see video, the app hangs up", async () => {
  await waitFor("[data-screen=home]", 40000);
  const me = await js(`return document.querySelector("[data-role=me]").textContent`);
  await click("[data-action=invite-link]");
  await waitFor("[data-role=guest-url]");
  const url = await js(`return document.querySelector("[data-role=guest-url]").value`);
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/join\/[A-Za-z0-9_-]{43}$/);
  await shot("guest-link-app");

  const y4m = join(dir, "pattern.y4m");
  const wav = join(dir, "tone.wav");
  const made = spawnSync(CLI, ["pattern", "--y4m", y4m, "--wav", wav], { encoding: "utf8" });
  assert.equal(made.status, 0, made.stderr);
  const lines = [];
  guest = spawn("node", [join(root, "ui/e2e/guest-chromium.mjs"), "--url", url, "--y4m", y4m, "--wav", wav, "--hangup", "host", "--seconds", "6"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let buffered = "";
  guest.stdout.on("data", (d) => {
    buffered += d;
    const parts = buffered.split("\n");
    buffered = parts.pop();
    for (const p of parts) if (p.startsWith("{")) lines.push(JSON.parse(p));
  });
  const exited = new Promise((r) => guest.on("exit", r));

  await waitFor("[data-screen=incoming]", 30000);
  const caller = await js(`return document.querySelector("[data-role=caller]").textContent`);
  assert.match(caller, /^guest-[0-9a-f]{8}$/);
  await click("[data-action=accept]");
  await waitFor("[data-screen=in-call]");
  // The app decodes the browser's camera (our pattern from the y4m).
  await assertAdvancing("remote");
  await waitFor("[data-role=verification]");
  const appCode = await js(`return document.querySelector("[data-role=verification] b").textContent`);
  assert.match(appCode, /^\d{3} \d{3}$/);
  await shot("guest-call-app");
  await click("[data-action=hang-up]");
  await waitFor("[data-screen=home]");

  assert.equal(await exited, 0, JSON.stringify(lines.at(-1)));
  const ended = lines.find((l) => l.event === "ended");
  assert.equal(ended?.report.endReason, "user_hangup", JSON.stringify(ended));
  assert.equal(ended?.report.endedBy, me);
  // Both sides showed the same verification code.
  const pageCode = lines.filter((l) => l.event === "sample").at(-1)?.report.verification;
  assert.equal(pageCode, appCode);
  // The page decoded the app's video: our pattern, in order.
  const markers = lines.filter((l) => l.event === "sample").at(-1)?.report.markers ?? [];
  assert.ok(markers.length >= 10, `the page read ${markers.length} frame numbers`);
  assert.ok(markers.every((m, i) => i === 0 || m > markers[i - 1]), markers.join(","));
});
