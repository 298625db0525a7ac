// The statistics screen on a lossy link: scripts/e2e.sh runs this file inside a network
// namespace of its own. Once the echo call is up, the test makes that namespace's loopback drop
// $DYAD_LOSS_PERCENT % of incoming UDP (an nftables random-drop rule; this kernel has no netem).
// The app, its embedded server and the echo contact all talk over that loopback, so the call's
// media loses packets both ways while signalling (TCP) does not. The screen must say so, in
// words, and the screenshot shows it.
//
// The loss starts after the call connects: with it from the start, 2 of 10 calls never connected
// (before and after the call-engine rewrite alike) — webrtc-rs 0.17.2's DTLS server ignores the
// client's retransmitted last flight once it thinks the handshake is done (RFC 6347 § 4.2.4), so a
// lost server Finished leaves the client waiting until the 15 s connect timeout. That is a
// connection-setup bug of its own (docs/benchmarks.md), not what this screen test is about.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { click, js, readStats, shot, sleep, startApp, stopApp, waitAttr, waitFor } from "./driver.mjs";

const LOSS = Number(process.env.DYAD_LOSS_PERCENT ?? "0");

/** Drops LOSS % of incoming UDP in this namespace (`on`), or stops dropping. */
function lossRule(on) {
  const input = on
    ? [
        "table inet dyad_loss {",
        "  chain in {",
        "    type filter hook input priority 0; policy accept;",
        `    meta l4proto udp numgen random mod 100 < ${LOSS} drop`,
        "  }",
        "}",
      ].join("\n")
    : "delete table inet dyad_loss";
  const r = spawnSync("nft", ["-f", "-"], { input, encoding: "utf8" });
  if (on && r.status !== 0) throw new Error(`nft: ${r.stderr}`);
}

before(() => startApp());
after(() => {
  lossRule(false);
  return stopApp();
});

test(`a call over a link losing ${LOSS} % of UDP: the screen names the loss`, async () => {
  assert.ok(LOSS > 0, "run through scripts/e2e.sh (it builds the lossy namespace)");
  await waitFor("[data-screen=home]", 40000);
  await waitFor("[data-contact=echo][data-presence=online]");
  await click("[data-contact=echo]");
  await click("[data-action=call]");
  await waitFor("[data-screen=in-call]", 30000);
  // Connected, media flowing (the in-call screen already shows while connecting).
  await waitFor(".video-remote[data-state=video]", 30000);
  lossRule(true);
  const lossOn = Date.now();
  await click("[data-role=quality]");
  await waitFor("[data-role=stats].open");
  // The score judges 5 s means: read it only once a whole window lies after the rule went on
  // (counting chart points instead let a window straddle the start: "losing 4 %" under a 12 %
  // rule, once in CI), then give it up to 40 s to settle.
  let last = null;
  const end = Date.now() + 45000;
  while (Date.now() < end) {
    last = await readStats();
    const settled = last.charts.loss?.points >= 10 && Date.now() - lossOn >= 7000;
    if (settled && ["inbound_loss", "outbound_loss"].includes(last.reason) && last.band !== "good") break;
    await sleep(1000);
  }
  if (!last.reason) {
    await shot("9-stats-lossy-link-failed");
    console.log("page:", await js("return document.body.innerText"));
  }
  console.log("lossy link:", JSON.stringify({ band: last.band, reason: last.reason, text: last.metrics.reason, lossIn: last.metrics["in-audio-loss"], lossOut: last.metrics["out-audio-loss"] }));
  assert.ok(["inbound_loss", "outbound_loss"].includes(last.reason), `reason ${last.reason}: ${last.metrics.reason}`);
  assert.notEqual(last.band, "good");
  const pct = Number(/losing (\d+) %/.exec(last.metrics.reason)?.[1]);
  // The figure in the words is the measured loss: near the rule's rate (it is random).
  assert.ok(pct >= LOSS / 2 && pct <= LOSS * 2, `"${last.metrics.reason}" vs a ${LOSS} % drop rule`);
  // The compact indicator says the same beside the video.
  assert.match(await waitAttr("[data-role=quality]", "data-band", (v) => v === "fair" || v === "poor"), /fair|poor/);
  assert.ok(last.charts.loss.points > 5, JSON.stringify(last.charts.loss));
  await shot("9-stats-lossy-link");
  await click("[data-action=close-stats]");
  await click("[data-action=hang-up]");
  await waitFor("[data-screen=home]");
});
