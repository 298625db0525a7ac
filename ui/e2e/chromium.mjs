// Launching Debian's Chromium headless for the browser tests and benchmarks (never a downloaded
// browser): fake camera and microphone from our files, loopback candidates allowed, nothing
// fetched in the background.
import { chromium } from "playwright-core";

/** Chromium with `y4m` as its camera and `wav` as its microphone; `deny` refuses both. */
export function launch({ y4m, wav, deny = false }) {
  return chromium.launch({
    executablePath: process.env.DYAD_CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      deny ? "--deny-permission-prompts" : "--use-fake-ui-for-media-stream",
      "--use-fake-device-for-media-stream",
      `--use-file-for-fake-video-capture=${y4m}`,
      `--use-file-for-fake-audio-capture=${wav}`,
      "--allow-loopback-in-peer-connection",
      "--autoplay-policy=no-user-gesture-required",
      "--disable-background-networking",
      "--disable-component-update",
      "--no-first-run",
    ],
  });
}
