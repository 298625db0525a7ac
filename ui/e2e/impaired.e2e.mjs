// The statistics screen on a lossy link: scripts/e2e.sh runs this file inside a network
// namespace whose loopback drops $DYAD_LOSS_PERCENT % of UDP packets (an nftables random-drop
// rule on input; this kernel has no netem). The app, its embedded server and the echo contact all talk
// over that loopback, so the call's media loses packets both ways while signalling (TCP) does
// not. The screen must say so, in words, and the screenshot shows it.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { click, js, readStats, shot, sleep, startApp, stopApp, waitAttr, waitFor } from "./driver.mjs";

const LOSS = Number(process.env.DYAD_LOSS_PERCENT ?? "0");

before(() => startApp());
after(stopApp);

test(`a call over a link losing ${LOSS} % of UDP: the screen names the loss`, async () => {
  assert.ok(LOSS > 0, "run through scripts/e2e.sh (it builds the lossy namespace)");
  await waitFor("[data-screen=home]", 40000);
  await waitFor("[data-contact=echo][data-presence=online]");
  await click("[data-contact=echo]");
  await click("[data-action=call]");
  await waitFor("[data-screen=in-call]", 30000);
  await click("[data-role=quality]");
  await waitFor("[data-role=stats].open");
  // The score judges 5 s means; give it the first seconds and then up to 40 s to settle.
  let last = null;
  const end = Date.now() + 45000;
  while (Date.now() < end) {
    last = await readStats();
    const settled = last.charts.loss?.points >= 10;
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
