// The statistics screen with the IPC mocked and the graphs replaced by a recorder (jsdom has no
// canvas; the window test draws real uPlot graphs): what it shows for given points, that it
// follows the call second by second, markers, export, and that it never disturbs the call.
import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { App, Videos } from "./app";
import type { AppStateView, CallView, StatsPoint } from "./bindings";
import { Chart, ChartFactory, markerOf, Series } from "./stats";
import { usableLanguage } from "./locale";
import { point } from "./testdata";

const call = (over: Partial<CallView> = {}): CallView => ({
  call_id: "c1", peer: "echo", outgoing: true, phase: "connected", connected_at_ms: Date.now(), mic_muted: false, camera_off: false, verification: null, stranger: false, ...over,
});

function appState(): AppStateView {
  return {
    session: { state: "signed_in", username: "ann" }, server_url: "http://127.0.0.1:4000", embedded: true, online: true,
    contacts: [{ username: "echo", presence: "online", state: "accepted", echo: true }], anyone_may_call: false, call: null,
    frames: { url: "ws://127.0.0.1:1/", secret: "s" }, devices: { camera: "pattern", microphone: "speech", speaker: "speaker:none" },
    audio_processing: { echo_cancellation: true, noise_suppression: true, auto_gain: true, high_pass: true },
  };
}

const fakeVideos = (): Videos => {
  const v = () => ({ el: document.createElement("div"), refresh() {}, stop() {} });
  return { remote: v(), local: v() };
};

/** Records what each graph was given. */
let drawn: Map<string, { points: number; lines: number; created: number; destroyed: number }>;
const fakeCharts: ChartFactory = (spec, series) => {
  const rec = drawn.get(spec.id) ?? { points: 0, lines: 0, created: 0, destroyed: 0 };
  rec.created += 1;
  const d = series.data(spec.id);
  rec.points = d[0].length;
  rec.lines = d.length - 1;
  drawn.set(spec.id, rec);
  const el = document.createElement("div");
  el.className = "chart-canvas";
  const chart: Chart = {
    el,
    setData: (data) => { rec.points = data[0].length; },
    setSize: () => {},
    destroy: () => { rec.destroyed += 1; },
  };
  return chart;
};

let calls: { cmd: string; args: Record<string, unknown> }[] = [];
let kept: StatsPoint[] = [];

beforeEach(() => {
  calls = [];
  kept = [];
  drawn = new Map();
  mockIPC((cmd, args) => {
    calls.push({ cmd, args: (args ?? {}) as Record<string, unknown> });
    switch (cmd) {
      case "app_state": return appState();
      case "call_history": return [];
      case "call_stats": return kept;
      case "export_stats": return { path: `/home/ann/Downloads/dyad-stats-echo-20251130T023320.${(args as { format: string }).format}`, bytes: 20480, points: 65 };
      case "list_devices": return { cameras: [], microphones: [], speakers: [], notes: [] };
      default: return null;
    }
  });
});

let mounted: App[] = [];
afterEach(() => {
  // Each test's app stops listening (the document's key handlers would pile up otherwise).
  for (const a of mounted) a.stop();
  mounted = [];
  clearMocks();
});

async function inCall() {
  const root = document.createElement("div");
  document.body.replaceChildren(root);
  const app = new App(root, fakeVideos, fakeCharts);
  await app.start();
  mounted.push(app);
  await new Promise((r) => setTimeout(r, 0));
  app.onEvent({ type: "call", call: call() });
  return { app, root };
}

const q = (root: HTMLElement, sel: string) => root.querySelector<HTMLElement>(sel);
const metric = (root: HTMLElement, id: string) => q(root, `[data-metric="${id}"]`)?.textContent;
const flush = () => new Promise((r) => setTimeout(r, 0));

describe("statistics screen", () => {
  it("opens from the quality indicator over the call, fills in, and follows each second", async () => {
    const { app, root } = await inCall();
    const video = q(root, ".stage")!.firstElementChild;
    for (let s = 1; s <= 5; s++) app.onEvent({ type: "stats", point: point(s) });
    // Closed: the series are kept, nothing is drawn.
    expect(drawn.size).toBe(0);
    const pill = q(root, "[data-role=quality]")!;
    expect(pill.textContent).toBe("Good 93 %");
    pill.click();
    expect(q(root, "[data-role=stats]")?.classList.contains("open")).toBe(true);
    expect(pill.getAttribute("aria-expanded")).toBe("true");
    // The call screen (and its video element) is still there, untouched.
    expect(q(root, "[data-screen=in-call]")).not.toBeNull();
    expect(q(root, ".stage")!.firstElementChild).toBe(video);

    expect(metric(root, "band")).toBe("Good");
    expect(metric(root, "reason")).toBe("No problems found");
    expect(metric(root, "duration")).toBe("0:05");
    expect(metric(root, "path")).toBe("direct (host) over UDP");
    expect(metric(root, "codecs")).toBe("VP8 video, opus audio");
    expect(metric(root, "encryption")).toBe("DTLS-SRTP, AEAD_AES_128_GCM");
    expect(metric(root, "out-video-size")).toBe("640×480");
    expect(metric(root, "out-video-bitrate")).toBe("805 kbit/s (target 900 kbit/s)");
    expect(metric(root, "in-video-jb")).toBe("20.0 ms");
    expect(metric(root, "in-audio-jb")).toBe("42 ms (target 38 ms)");
    expect(metric(root, "in-audio-concealed")).toBe("1.5 %");
    expect(metric(root, "in-video-sync")).toBe("picture 8 ms after sound");
    expect(metric(root, "in-audio-sync")).toBe("");
    expect(metric(root, "out-video-rtt")).toBe("20 ms");
    expect(metric(root, "estimate")).toBe("1.20 Mbit/s (normal)");
    expect(drawn.get("bitrate")).toMatchObject({ points: 5, lines: 4, created: 1 });
    expect(q(root, "[data-chart=bitrate]")?.dataset.points).toBe("5");
    expect(q(root, "[data-chart=g2g]")?.dataset.points).toBe("5");

    // Next second: numbers and graphs move on; graphs are updated, not rebuilt.
    app.onEvent({ type: "stats", point: point(6) });
    expect(metric(root, "duration")).toBe("0:06");
    expect(metric(root, "out-video-bitrate")).toBe("806 kbit/s (target 900 kbit/s)");
    expect(drawn.get("bitrate")).toMatchObject({ points: 6, created: 1 });
    // A point already held (same call time) is not added twice.
    app.onEvent({ type: "stats", point: point(6) });
    expect(drawn.get("bitrate")?.points).toBe(6);
  });

  it("shows the verification code once the call has one, and forgets it with the call", async () => {
    const { app, root } = await inCall();
    q(root, "[data-role=quality]")!.click();
    expect(metric(root, "verification")).toBe("—");
    app.onEvent({ type: "call", call: call({ verification: "218 795" }) });
    expect(metric(root, "verification")).toBe("218 795");
    app.onEvent({ type: "call", call: call({ call_id: "c2", verification: null }) });
    expect(metric(root, "verification")).toBe("—");
  });

  it("says why quality dropped, in the strip and on the indicator", async () => {
    const { app, root } = await inCall();
    app.toggleStats(true);
    app.onEvent({
      type: "stats",
      point: point(12, (p) => {
        p.score = { ...p.score, score: 58, band: "fair", reason: "upload_limited", reasonText: "your upload is limited to 400 kbit/s" };
      }),
    });
    expect(q(root, "[data-role=stats-quality]")?.dataset.band).toBe("fair");
    expect(q(root, "[data-role=stats-quality]")?.dataset.reason).toBe("upload_limited");
    expect(metric(root, "reason")).toBe("your upload is limited to 400 kbit/s");
    expect(q(root, "[data-role=quality]")?.className).toContain("q-fair");
    expect(q(root, "[data-role=quality-reason]")?.textContent).toBe("your upload is limited to 400 kbit/s");
  });

  it("says which of picture and sound leads, and what is held back to line them up", async () => {
    const { app, root } = await inCall();
    app.toggleStats(true);
    app.onEvent({ type: "stats", point: point(12, (p) => (p.snapshot.avSync = { offsetMs: -3.2, audioDelayMs: 0, videoDelayMs: 148.6 })) });
    expect(metric(root, "in-video-sync")).toBe("picture 3 ms before sound, held 149 ms");
    expect(metric(root, "in-audio-sync")).toBe("");
    app.onEvent({ type: "stats", point: point(13, (p) => (p.snapshot.avSync = { offsetMs: 0.2, audioDelayMs: 120, videoDelayMs: 0 })) });
    expect(metric(root, "in-video-sync")).toBe("in step");
    expect(metric(root, "in-audio-sync")).toBe("held 120 ms");
    app.onEvent({ type: "stats", point: point(14, (p) => (p.snapshot.avSync = { offsetMs: null, audioDelayMs: 0, videoDelayMs: 0 })) });
    expect(metric(root, "in-video-sync")).toBe("—");
  });

  it("marks events on the graphs and lists them", async () => {
    const { app, root } = await inCall();
    app.toggleStats(true);
    expect(q(root, "[data-role=no-markers]")?.hidden).toBe(false);
    app.onEvent({ type: "stats", point: point(3, (p) => (p.snapshot.events = ["resolution_change 320x240", "keyframe_request_sent"])) });
    expect(q(root, "[data-role=no-markers]")?.hidden).toBe(true);
    app.onEvent({ type: "stats", point: point(9, (p) => (p.snapshot.events = ["ice_restart"])) });
    const items = [...root.querySelectorAll<HTMLElement>("[data-role=markers] li")];
    expect(items.map((i) => i.dataset.kind)).toEqual(["resolution_change", "keyframe_request", "ice_restart"]);
    expect(items[0].textContent).toBe("0:03 Resolution → 320×240");
    expect(items[2].textContent).toBe("0:09 ICE restart");
    expect(app.stats.series.markers.map((m) => m.x)).toEqual([3, 3, 9]);
  });

  it("graphs with no data say why instead of drawing nothing", async () => {
    const { app, root } = await inCall();
    app.toggleStats(true);
    app.onEvent({ type: "stats", point: point(4, (p) => (p.snapshot.inboundVideo.glassToGlassMs = null)) });
    expect(q(root, "[data-chart=g2g]")?.dataset.points).toBe("0");
    expect(q(root, "[data-chart=g2g] .chart-empty")?.textContent).toContain("both ends on one clock");
    expect(drawn.has("g2g")).toBe(false);
  });

  it("exports JSON and CSV and says where they went", async () => {
    const { app, root } = await inCall();
    app.toggleStats(true);
    app.onEvent({ type: "stats", point: point(1) });
    q(root, "[data-action=export-json]")!.click();
    await flush();
    expect(calls.find((c) => c.cmd === "export_stats")?.args).toEqual({ format: "json" });
    const note = q(root, "[data-role=export-note]")!;
    expect(note.dataset.path).toBe("/home/ann/Downloads/dyad-stats-echo-20251130T023320.json");
    expect(note.textContent).toContain("1:05 of statistics (20 KiB)");
    q(root, "[data-action=export-csv]")!.click();
    await flush();
    expect(calls.filter((c) => c.cmd === "export_stats").map((c) => c.args.format)).toEqual(["json", "csv"]);
  });

  it("after the call, the ended banner still exports that call's statistics", async () => {
    const { app, root } = await inCall();
    app.onEvent({ type: "stats", point: point(1) });
    app.onEvent({ type: "ended", ended: { call_id: "c1", peer: "echo", reason: "user_hangup", message: "Call ended.", duration_secs: 65, failed: false } });
    q(root, "[data-action=export-last-csv]")!.click();
    await flush();
    expect(calls.find((c) => c.cmd === "export_stats")?.args).toEqual({ format: "csv" });
    expect(q(root, "[data-role=ended-export-note]")?.dataset.path).toBe("/home/ann/Downloads/dyad-stats-echo-20251130T023320.csv");
    // A call that never connected has nothing to export.
    app.onEvent({ type: "ended", ended: { call_id: "c2", peer: "bob", reason: "cancelled", message: "Cancelled.", duration_secs: 0, failed: false } });
    expect(q(root, "[data-action=export-last-csv]")).toBeNull();
  });

  it("Esc closes the screen without hanging up; S toggles it; a new call starts new series", async () => {
    const { app, root } = await inCall();
    document.dispatchEvent(new KeyboardEvent("keydown", { key: "s" }));
    expect(app.model?.statsOpen).toBe(true);
    app.onEvent({ type: "stats", point: point(2) });
    document.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape" }));
    await flush();
    expect(app.model?.statsOpen).toBe(false);
    expect(q(root, "[data-role=stats]")?.classList.contains("open")).toBe(false);
    expect(calls.some((c) => c.cmd === "hang_up")).toBe(false);
    expect(drawn.get("bitrate")?.destroyed).toBe(1);
    // The same call re-rendered (e.g. mute) keeps its series; a new call does not.
    app.onEvent({ type: "call", call: call({ mic_muted: true }) });
    expect(app.stats.series.x).toEqual([2]);
    app.onEvent({ type: "ended", ended: { call_id: "c1", peer: "echo", reason: "user_hangup", message: "Call ended.", duration_secs: 2, failed: false } });
    app.onEvent({ type: "call", call: call({ call_id: "c2" }) });
    expect(app.stats.series.x).toEqual([]);
  });

  it("only graphs in view redraw each second; one scrolled into view catches up", async () => {
    let fire: (entries: { target: Element; isIntersecting: boolean }[]) => void = () => {};
    class FakeObserver {
      constructor(cb: typeof fire) {
        fire = cb;
      }
      observe() {}
      unobserve() {}
      disconnect() {}
    }
    const real = globalThis.IntersectionObserver;
    (globalThis as { IntersectionObserver: unknown }).IntersectionObserver = FakeObserver;
    try {
      const { app, root } = await inCall();
      app.toggleStats(true);
      app.onEvent({ type: "stats", point: point(1) });
      const box = (id: string) => q(root, `[data-chart=${id}]`)!;
      fire([{ target: box("score"), isIntersecting: true }]);
      for (let s = 2; s <= 4; s++) app.onEvent({ type: "stats", point: point(s) });
      expect(drawn.get("score")?.points).toBe(4);
      expect(box("score").dataset.drawn).toBe("4");
      // Out of view: created (empty) when the panel opened, not redrawn since.
      expect(drawn.get("fps")?.points).toBe(0);
      expect(box("fps").dataset.points).toBe("4");
      fire([{ target: box("fps"), isIntersecting: true }, { target: box("score"), isIntersecting: false }]);
      expect(drawn.get("fps")?.points).toBe(4);
      app.onEvent({ type: "stats", point: point(5) });
      expect(drawn.get("fps")?.points).toBe(5);
      expect(drawn.get("score")?.points).toBe(4);
    } finally {
      (globalThis as { IntersectionObserver: unknown }).IntersectionObserver = real;
    }
  });

  it("fetches what it missed when opened after a reload", async () => {
    const { app } = await inCall();
    kept = [point(1), point(2), point(3)];
    app.onEvent({ type: "stats", point: point(4) });
    app.toggleStats(true);
    await flush();
    expect(calls.some((c) => c.cmd === "call_stats")).toBe(true);
    // 4 came live, 1–3 from the app: the series is in time order without duplicates.
    expect(app.stats.series.x).toEqual([1, 2, 3, 4]);
  });
});

describe("locale", () => {
  it("replaces a POSIX locale name that Intl refuses", () => {
    expect(usableLanguage("C")).toBe("en-US");
    expect(usableLanguage(undefined)).toBe("en-US");
    expect(usableLanguage("de-DE")).toBe("de-DE");
  });
});

describe("series", () => {
  it("keeps columns per chart, nulls for gaps, and reads events as markers", () => {
    const s = new Series();
    s.push(point(1, (p) => (p.snapshot.remoteInboundVideo.roundTripTime = null)));
    s.push(point(2));
    expect(s.push(point(2))).toBe(false);
    const rtt = s.data("rtt");
    expect(rtt[0]).toEqual([1, 2]);
    expect(rtt[1]).toEqual([null, 20]);
    expect(markerOf(5, "keyframe_request_received")).toEqual({ x: 5, kind: "keyframe_request", label: "Keyframe asked of us" });
    expect(markerOf(5, "something_new 1").kind).toBe("other");
  });
});
