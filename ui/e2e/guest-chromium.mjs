// Drives the guest page in headless Chromium (Debian's /usr/bin/chromium through
// playwright-core; never a downloaded browser) for tests/guest_chromium.rs, which runs it inside
// a network namespace that has only loopback. The fake camera plays a y4m of Dyad's test pattern
// and the fake microphone a wav, so the other side can check what it decodes.
//
//   node ui/e2e/guest-chromium.mjs --url URL --y4m F --wav F [--hangup guest|host] [--seconds N]
//        [--shot PNG] [--refused URL]... [--deny-media]
//
// --deny-media: the browser refuses camera and microphone (as a user who clicks "Block"); the
// run then only reports what the page says.
//
// Prints one JSON object per line: {"event": "sample", report} while in the call,
// {"event": "ended", report} at the end, {"event": "refused", url, report} for each --refused.
import { launch } from "./chromium.mjs";

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const all = (name) => args.flatMap((a, i) => (a === `--${name}` ? [args[i + 1]] : []));
const emit = (o) => console.log(JSON.stringify(o));

const browser = await launch({ y4m: opt("y4m"), wav: opt("wav"), deny: args.includes("--deny-media") });
const report = (page) => page.evaluate(() => ({ ...window.dyadGuest, markers: [...window.dyadGuest.markers] }));
const phase = async (page, want, ms) => {
  try {
    await page.waitForFunction((w) => w.includes(window.dyadGuest?.phase), want, { timeout: ms, polling: 100 });
  } catch (e) {
    emit({ event: "timeout", want, report: await report(page).catch(() => null) });
    throw e;
  }
};

try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 940 } });
  page.on("console", (m) => m.type() === "error" && console.error(`page: ${m.text()}`));
  page.on("response", (r) => r.status() >= 400 && console.error(`page: ${r.status()} ${r.url()}`));
  await page.goto(opt("url"));
  await phase(page, ["ready", "error"], 15000);
  await page.getByRole("button", { name: "Join the call" }).click();
  await phase(page, ["in-call", "ended", "error"], 30000);
  const now = await report(page);
  if (now.phase !== "in-call") {
    emit({ event: "ended", report: now, text: await page.locator(".status").textContent() });
    process.exit(0);
  }
  const seconds = Number(opt("seconds", "5"));
  for (let i = 0; i < seconds; i++) {
    await page.waitForTimeout(1000);
    emit({ event: "sample", report: await report(page) });
    if (i === 2 && opt("shot")) await page.screenshot({ path: opt("shot") });
  }
  if (opt("hangup", "guest") === "guest") await page.getByRole("button", { name: "Hang up" }).click();
  await phase(page, ["ended", "error"], 30000);
  emit({ event: "ended", report: await report(page), text: await page.locator(".status").textContent() });
  for (const url of all("refused")) {
    const again = await browser.newPage();
    await again.goto(url);
    await phase(again, ["ready", "error"], 15000);
    emit({ event: "refused", url, report: await report(again), text: await again.locator(".status").textContent() });
    await again.close();
  }
} finally {
  await browser.close();
}
