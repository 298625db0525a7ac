// Chromium calling itself, for the side-by-side figures in docs/benchmarks.md
// (scripts/bench-browser.sh): two RTCPeerConnections in one headless page, each sending the
// fake camera (a y4m of our test pattern) and microphone to the other, signalling in the page.
// Per call: answer applied → first remote video frame (ms, both ways), then `--seconds` of the
// call so the script can read the browser's CPU time around it.
//
//   node ui/e2e/chromium-self.mjs --origin URL --y4m F --wav F [--calls N] [--seconds S]
//
// --origin: any page on a loopback HTTP server (getUserMedia needs a secure context, which
// http://127.0.0.1 is and about:blank is not).
//
// Prints {"event": "call", "firstFrameMs": [a, b]} per call and {"event": "steady", "at": ms}
// when a call's steady window starts and ends (the script samples CPU between the two).
import { launch } from "./chromium.mjs";

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const emit = (o) => console.log(JSON.stringify(o));

const browser = await launch({ y4m: opt("y4m"), wav: opt("wav") });
try {
  const page = await browser.newPage();
  await page.goto(opt("origin"));
  await page.evaluate(() => {
    document.body.innerHTML = "<video id=a autoplay muted playsinline></video><video id=b autoplay muted playsinline></video>";
  });
  for (let i = 0; i < Number(opt("calls", "5")); i++) {
    const first = await page.evaluate(async () => {
      const media = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
      const a = new RTCPeerConnection();
      const b = new RTCPeerConnection();
      a.onicecandidate = (e) => e.candidate && b.addIceCandidate(e.candidate);
      b.onicecandidate = (e) => e.candidate && a.addIceCandidate(e.candidate);
      for (const t of media.getTracks()) {
        a.addTrack(t, media);
        b.addTrack(t.clone(), media);
      }
      const shown = (pc, el) =>
        new Promise((resolve) => {
          pc.ontrack = (ev) => {
            if (ev.track.kind !== "video") return;
            el.srcObject = new MediaStream([ev.track]);
            el.requestVideoFrameCallback(() => resolve(performance.now()));
          };
        });
      const atB = shown(b, document.getElementById("b"));
      const atA = shown(a, document.getElementById("a"));
      await a.setLocalDescription(await a.createOffer());
      await b.setRemoteDescription(a.localDescription);
      await b.setLocalDescription(await b.createAnswer());
      const answered = performance.now();
      await a.setRemoteDescription(b.localDescription);
      const times = await Promise.all([atA, atB]);
      window.call = { a, b, media };
      return times.map((t) => t - answered);
    });
    emit({ event: "call", firstFrameMs: first });
    await page.waitForTimeout(2000);
    emit({ event: "steady", at: Date.now() });
    await page.waitForTimeout(Number(opt("seconds", "10")) * 1000);
    emit({ event: "steady", at: Date.now() });
    await page.evaluate(() => {
      window.call.a.close();
      window.call.b.close();
      for (const t of window.call.media.getTracks()) t.stop();
    });
  }
} finally {
  await browser.close();
}
