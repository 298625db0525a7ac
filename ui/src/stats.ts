// The call statistics screen: a summary strip (quality and why, duration, path, codecs,
// encryption), per-direction figures, graphs over the whole call (uPlot) with event markers, and
// export. It keeps the call's series as columns from the first second, whether open or not, and
// draws only while open (once a second, when a point arrives).
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import type { ExportFormat, ExportResult, InboundRtp, StatsPoint } from "./bindings";
import { h } from "./dom";
import { asIpcError } from "./ipc";
import { formatDuration } from "./state";

/** One graph: a title, a unit, and its lines (each a column of the series). */
interface ChartSpec {
  id: string;
  title: string;
  unit: string;
  lines: { label: string; color: string; value: (p: StatsPoint) => number | null; dash?: number[] }[];
  /** Shown instead of an empty graph. */
  empty?: string;
}

const kbps = (bps: number) => bps / 1000;
const ms = (s: number | null | undefined) => (s === null || s === undefined ? null : s * 1000);

const CHARTS: ChartSpec[] = [
  {
    id: "score",
    title: "Quality score",
    unit: "0–100",
    lines: [
      { label: "Score", color: "#e8eaf0", value: (p) => p.score.score },
      { label: "Audio (worse way)", color: "#2fb344", value: (p) => Math.min(p.score.audioIn, p.score.audioOut) },
      { label: "Video (worse way)", color: "#4c6ef5", value: (p) => Math.min(p.score.videoIn, p.score.videoOut) },
    ],
  },
  {
    id: "bitrate",
    title: "Video bitrate",
    unit: "kbit/s",
    lines: [
      { label: "Sent", color: "#4c6ef5", value: (p) => kbps(p.snapshot.outboundVideo.bitrate) },
      { label: "Target", color: "#f59f00", value: (p) => kbps(p.snapshot.outboundVideo.targetBitrate), dash: [6, 4] },
      { label: "Estimate", color: "#e03131", value: (p) => kbps(p.snapshot.estimate.availableOutgoingBitrate), dash: [2, 3] },
      { label: "Received", color: "#2fb344", value: (p) => kbps(p.snapshot.inboundVideo.bitrate) },
    ],
  },
  {
    id: "loss",
    title: "Packet loss",
    unit: "%",
    lines: [
      { label: "Video in", color: "#2fb344", value: (p) => p.snapshot.inboundVideo.lossPercent },
      { label: "Audio in", color: "#94d82d", value: (p) => p.snapshot.inboundAudio.lossPercent },
      { label: "Video out", color: "#4c6ef5", value: (p) => p.snapshot.remoteInboundVideo.fractionLost * 100 },
      { label: "Audio out", color: "#74c0fc", value: (p) => p.snapshot.remoteInboundAudio.fractionLost * 100 },
    ],
  },
  {
    id: "rtt",
    title: "Round-trip time",
    unit: "ms",
    lines: [
      { label: "Video", color: "#4c6ef5", value: (p) => ms(p.snapshot.remoteInboundVideo.roundTripTime) },
      { label: "Audio", color: "#74c0fc", value: (p) => ms(p.snapshot.remoteInboundAudio.roundTripTime) },
      { label: "ICE", color: "#adb5bd", value: (p) => ms(p.snapshot.candidatePair?.currentRoundTripTime ?? null), dash: [2, 3] },
    ],
  },
  {
    id: "jitter",
    title: "Jitter",
    unit: "ms",
    lines: [
      { label: "Video in", color: "#2fb344", value: (p) => ms(p.snapshot.inboundVideo.jitter) },
      { label: "Audio in", color: "#94d82d", value: (p) => ms(p.snapshot.inboundAudio.jitter) },
      { label: "Audio out", color: "#74c0fc", value: (p) => ms(p.snapshot.remoteInboundAudio.jitter) },
    ],
  },
  {
    id: "fps",
    title: "Frame rate",
    unit: "fps",
    lines: [
      { label: "Captured", color: "#adb5bd", value: (p) => p.snapshot.outboundVideo.captureFramesPerSecond, dash: [2, 3] },
      { label: "Sent", color: "#4c6ef5", value: (p) => p.snapshot.outboundVideo.framesPerSecond },
      { label: "Received", color: "#2fb344", value: (p) => p.snapshot.inboundVideo.framesPerSecond },
    ],
  },
  {
    id: "g2g",
    title: "Glass-to-glass latency",
    unit: "ms",
    lines: [{ label: "Capture → decoded", color: "#f59f00", value: (p) => p.snapshot.inboundVideo.glassToGlassMs }],
    empty: "Not measurable on this call: it needs both ends on one clock (the echo test, or a loopback call).",
  },
];

/** Event markers drawn on every graph. */
export interface Marker {
  x: number;
  kind: "ice_restart" | "resolution_change" | "keyframe_request" | "other";
  label: string;
}

const MARKER_COLORS: Record<Marker["kind"], string> = {
  ice_restart: "#e03131",
  resolution_change: "#4c6ef5",
  keyframe_request: "#f59f00",
  other: "#adb5bd",
};

export function markerOf(x: number, ev: string): Marker {
  const [name, ...rest] = ev.split(" ");
  const arg = rest.join(" ");
  if (name === "ice_restart") return { x, kind: "ice_restart", label: "ICE restart" };
  if (name === "resolution_change") return { x, kind: "resolution_change", label: `Resolution → ${arg.replace("x", "×")}` };
  if (name.startsWith("keyframe_request")) {
    return { x, kind: "keyframe_request", label: name.endsWith("received") ? "Keyframe asked of us" : "Keyframe requested" };
  }
  return { x, kind: "other", label: ev };
}

/** The call's series as columns: x (call seconds), then one column per line of each chart. */
export class Series {
  x: number[] = [];
  cols = new Map<string, (number | null)[][]>();
  markers: Marker[] = [];
  last: StatsPoint | null = null;

  constructor() {
    this.reset();
  }

  reset() {
    this.x = [];
    this.markers = [];
    this.last = null;
    for (const c of CHARTS) this.cols.set(c.id, c.lines.map(() => []));
  }

  /** Adds a point (one already held, by call time, is skipped). */
  push(p: StatsPoint): boolean {
    const t = p.snapshot.callSeconds;
    if (this.x.length > 0 && t <= this.x[this.x.length - 1]) return false;
    this.x.push(t);
    for (const c of CHARTS) {
      const cols = this.cols.get(c.id)!;
      c.lines.forEach((l, i) => {
        const v = l.value(p);
        cols[i].push(v === null || !Number.isFinite(v) ? null : v);
      });
    }
    for (const ev of p.snapshot.events) this.markers.push(markerOf(t, ev));
    this.last = p;
    return true;
  }

  data(id: string): uPlot.AlignedData {
    return [this.x, ...(this.cols.get(id) ?? [])] as uPlot.AlignedData;
  }

  hasValues(id: string): boolean {
    return (this.cols.get(id) ?? []).some((col) => col.some((v) => v !== null));
  }
}

/** What draws the graphs (tests replace it: jsdom has no canvas). */
export interface Chart {
  el: HTMLElement;
  setData(d: uPlot.AlignedData): void;
  setSize(width: number): void;
  destroy(): void;
}
export type ChartFactory = (spec: ChartSpec, series: Series, width: number) => Chart;

export const uplotCharts: ChartFactory = (spec, series, width) => {
  const el = h("div", { class: "chart-canvas" });
  const markers: uPlot.Plugin = {
    hooks: {
      draw: (u: uPlot) => {
        const ctx = u.ctx;
        const { top, height } = u.bbox;
        ctx.save();
        ctx.lineWidth = Math.max(1, devicePixelRatio);
        ctx.setLineDash([4 * devicePixelRatio, 3 * devicePixelRatio]);
        for (const m of series.markers) {
          const x = Math.round(u.valToPos(m.x, "x", true));
          if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
          ctx.strokeStyle = MARKER_COLORS[m.kind];
          ctx.beginPath();
          ctx.moveTo(x, top);
          ctx.lineTo(x, top + height);
          ctx.stroke();
        }
        ctx.restore();
      },
    },
  };
  const axis = { stroke: "#8b93a7", grid: { stroke: "rgba(255,255,255,.07)", width: 1 }, ticks: { stroke: "rgba(255,255,255,.12)", width: 1 } };
  const plot = new uPlot(
    {
      width,
      height: 150,
      legend: { show: true, live: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: false } },
      series: [
        { label: "Call time" },
        ...spec.lines.map((l) => ({ label: l.label, stroke: l.color, width: 1.5, dash: l.dash, spanGaps: false, points: { show: false } })),
      ],
      axes: [
        { ...axis, values: (_u: uPlot, splits: number[]) => splits.map((s) => formatDuration(s)) },
        { ...axis, size: 52 },
      ],
      plugins: [markers],
    },
    series.data(spec.id),
    el,
  );
  return {
    el,
    setData: (d) => plot.setData(d),
    setSize: (w) => plot.setSize({ width: w, height: 150 }),
    destroy: () => plot.destroy(),
  };
};

/** Packets whose payload type the negotiation never gave this codec: never decoded. */
const unknownCodec = (i: InboundRtp) =>
  i.packetsUnknownPayloadType > 0 ? `; ${i.packetsUnknownPayloadType} of a codec we did not negotiate` : "";
const fmt = (v: number | null | undefined, digits = 0, unit = "") =>
  v === null || v === undefined || !Number.isFinite(v) ? "—" : `${v.toFixed(digits)}${unit}`;
const bitrate = (bps: number) => (bps >= 1e6 ? `${(bps / 1e6).toFixed(2)} Mbit/s` : `${(bps / 1000).toFixed(0)} kbit/s`);
const size = (w: number, hgt: number) => (w > 0 && hgt > 0 ? `${w}×${hgt}` : "—");
const codec = (mime: string) => mime.split("/")[1] ?? mime;
/** The other side's picture against its sound, and what is held back to line them up. */
function lipSync(offsetMs: number | null, videoHeldMs: number): string {
  if (offsetMs === null || !Number.isFinite(offsetMs)) return "—";
  const o = Math.round(offsetMs);
  const said = o === 0 ? "in step" : `picture ${Math.abs(o)} ms ${o > 0 ? "after" : "before"} sound`;
  const hold = held(videoHeldMs);
  return hold ? `${said}, ${hold}` : said;
}
const held = (ms: number) => (ms >= 1 ? `held ${ms.toFixed(0)} ms` : "");
const BAND_TEXT = { good: "Good", fair: "Fair", poor: "Poor" } as const;

/** Each cell: a metric id, a row label, and its text for a point. */
type Cell = (p: StatsPoint) => string;
interface Row {
  label: string;
  cells: [string, Cell][];
}

/** The figures table: one row per metric, columns sending/receiving × video/audio. */
const ROWS: Row[] = [
  {
    label: "Resolution",
    cells: [
      ["out-video-size", (p) => size(p.snapshot.outboundVideo.frameWidth, p.snapshot.outboundVideo.frameHeight)],
      ["in-video-size", (p) => size(p.snapshot.inboundVideo.frameWidth, p.snapshot.inboundVideo.frameHeight)],
      ["out-audio-none", () => ""],
      ["in-audio-none", () => ""],
    ],
  },
  {
    label: "Frame rate",
    cells: [
      ["out-video-fps", (p) => `${fmt(p.snapshot.outboundVideo.framesPerSecond)} fps (captured ${fmt(p.snapshot.outboundVideo.captureFramesPerSecond)})`],
      ["in-video-fps", (p) => `${fmt(p.snapshot.inboundVideo.framesPerSecond)} fps`],
      ["out-audio-fps", () => ""],
      ["in-audio-fps", (p) => `${fmt(p.snapshot.inboundAudio.framesPerSecond)} frames/s`],
    ],
  },
  {
    label: "Bitrate",
    cells: [
      ["out-video-bitrate", (p) => `${bitrate(p.snapshot.outboundVideo.bitrate)} (target ${bitrate(p.snapshot.outboundVideo.targetBitrate)})`],
      ["in-video-bitrate", (p) => bitrate(p.snapshot.inboundVideo.bitrate)],
      ["out-audio-bitrate", (p) => `${bitrate(p.snapshot.outboundAudio.bitrate)} (target ${bitrate(p.snapshot.outboundAudio.targetBitrate)})`],
      ["in-audio-bitrate", (p) => bitrate(p.snapshot.inboundAudio.bitrate)],
    ],
  },
  {
    label: "Packet loss",
    cells: [
      ["out-video-loss", (p) => fmt(p.snapshot.remoteInboundVideo.fractionLost * 100, 1, " %")],
      ["in-video-loss", (p) => `${fmt(p.snapshot.inboundVideo.lossPercent, 1, " %")} (${p.snapshot.inboundVideo.packetsLost} lost in all)${unknownCodec(p.snapshot.inboundVideo)}`],
      ["out-audio-loss", (p) => fmt(p.snapshot.remoteInboundAudio.fractionLost * 100, 1, " %")],
      ["in-audio-loss", (p) => `${fmt(p.snapshot.inboundAudio.lossPercent, 1, " %")}${unknownCodec(p.snapshot.inboundAudio)}`],
    ],
  },
  {
    label: "Jitter",
    cells: [
      ["out-video-jitter", (p) => fmt(ms(p.snapshot.remoteInboundVideo.jitter), 1, " ms")],
      ["in-video-jitter", (p) => fmt(ms(p.snapshot.inboundVideo.jitter), 1, " ms")],
      ["out-audio-jitter", (p) => fmt(ms(p.snapshot.remoteInboundAudio.jitter), 1, " ms")],
      ["in-audio-jitter", (p) => fmt(ms(p.snapshot.inboundAudio.jitter), 1, " ms")],
    ],
  },
  {
    label: "Round trip",
    cells: [
      ["out-video-rtt", (p) => fmt(ms(p.snapshot.remoteInboundVideo.roundTripTime), 0, " ms")],
      ["in-video-rtt", () => ""],
      ["out-audio-rtt", (p) => fmt(ms(p.snapshot.remoteInboundAudio.roundTripTime), 0, " ms")],
      ["in-audio-rtt", () => ""],
    ],
  },
  {
    label: "NACK / PLI",
    cells: [
      ["out-video-nack", (p) => `${p.snapshot.outboundVideo.nackCount} / ${p.snapshot.outboundVideo.pliCount} received`],
      ["in-video-nack", (p) => `${p.snapshot.inboundVideo.nackCount} / ${p.snapshot.inboundVideo.pliCount} sent`],
      ["out-audio-nack", () => ""],
      ["in-audio-nack", () => ""],
    ],
  },
  {
    label: "Freezes",
    cells: [
      ["out-video-freezes", () => ""],
      ["in-video-freezes", (p) => `${p.snapshot.inboundVideo.freezeCount} (${fmt(p.snapshot.inboundVideo.totalFreezesDuration, 1, " s")})`],
      ["out-audio-freezes", () => ""],
      ["in-audio-freezes", () => ""],
    ],
  },
  {
    label: "Jitter buffer",
    cells: [
      ["out-video-jb", () => ""],
      [
        "in-video-jb",
        (p) => {
          const v = p.snapshot.inboundVideo;
          return v.jitterBufferEmittedCount > 0 ? fmt((v.jitterBufferDelay / v.jitterBufferEmittedCount) * 1000, 1, " ms") : "—";
        },
      ],
      ["out-audio-jb", () => ""],
      [
        "in-audio-jb",
        (p) => {
          const a = p.snapshot.inboundAudio;
          if (a.jitterBufferEmittedCount === 0) return "—";
          const wait = (a.jitterBufferDelay / a.jitterBufferEmittedCount) * 1000;
          return `${fmt(wait, 0, " ms")} (target ${fmt(a.jitterBufferTargetDelay * 1000, 0, " ms")})`;
        },
      ],
    ],
  },
  {
    label: "Lip sync",
    cells: [
      ["out-video-sync", () => ""],
      ["in-video-sync", (p) => lipSync(p.snapshot.avSync.offsetMs, p.snapshot.avSync.videoDelayMs)],
      ["out-audio-sync", () => ""],
      ["in-audio-sync", (p) => held(p.snapshot.avSync.audioDelayMs)],
    ],
  },
  {
    label: "Encode / decode",
    cells: [
      ["out-video-encode", (p) => fmt(p.snapshot.outboundVideo.encodeTimePerFrameMs, 1, " ms/frame")],
      ["in-video-decode", (p) => fmt(p.snapshot.inboundVideo.decodeTimePerFrameMs, 1, " ms/frame")],
      ["out-audio-encode", () => ""],
      ["in-audio-decode", () => ""],
    ],
  },
  {
    label: "Audio level",
    cells: [
      ["out-video-level", () => ""],
      ["in-video-level", () => ""],
      ["out-audio-level", (p) => fmt(p.snapshot.outboundAudio.audioLevelDbfs, 0, " dBFS")],
      ["in-audio-level", (p) => fmt(p.snapshot.inboundAudio.audioLevelDbfs, 0, " dBFS")],
    ],
  },
  {
    label: "Concealment",
    cells: [
      ["out-video-concealed", () => ""],
      ["in-video-concealed", () => ""],
      ["out-audio-concealed", () => ""],
      ["in-audio-concealed", (p) => fmt(p.rates.concealmentPercent, 1, " %")],
    ],
  },
  {
    label: "Limited by",
    cells: [
      ["out-video-limit", (p) => ({ bandwidth: "bandwidth", cpu: "CPU", none: "nothing" })[p.snapshot.outboundVideo.qualityLimitationReason] ?? p.snapshot.outboundVideo.qualityLimitationReason],
      ["in-video-limit", () => ""],
      ["out-audio-limit", () => ""],
      ["in-audio-limit", () => ""],
    ],
  },
];

/** The summary strip's cells. */
function summary(p: StatsPoint): Record<string, string> {
  const s = p.snapshot;
  const t = s.transport;
  const pair = s.candidatePair;
  return {
    band: BAND_TEXT[p.score.band],
    score: `${p.score.score.toFixed(0)} %`,
    reason: p.score.reasonText || "No problems found",
    duration: formatDuration(s.callSeconds),
    path: p.path || "Finding a path…",
    codecs: `${codec(s.outboundVideo.codec || "video/VP8")} video, ${codec(s.outboundAudio.codec || "audio/opus")} audio`,
    encryption: t && t.srtpCipher ? `DTLS-SRTP, ${t.srtpCipher}` : t ? `DTLS ${t.dtlsState}…` : "—",
    mos: `${p.score.mos.toFixed(1)} (R ${Math.min(p.score.audioIn, p.score.audioOut).toFixed(0)})`,
    estimate: `${bitrate(s.estimate.availableOutgoingBitrate)} (${s.estimate.usage})`,
    addresses: pair ? `${pair.localAddress} (${pair.localCandidateType}) ⇄ ${pair.remoteAddress} (${pair.remoteCandidateType})` : "—",
    tls: t ? `${t.tlsVersion}, ${t.dtlsState}` : "—",
    delay: `${p.score.oneWayDelayMs.toFixed(0)} ms`,
  };
}

export class StatsScreen {
  readonly el: HTMLElement;
  readonly series = new Series();
  private charts = new Map<string, Chart>();
  private cells = new Map<string, HTMLElement>();
  private chartBoxes = new Map<string, HTMLElement>();
  private markerList: HTMLElement;
  private markerNone: HTMLElement;
  private exportNote: HTMLElement;
  private isOpen = false;
  /** Graphs scrolled into view: only those redraw each second (each redraws on coming into
   *  view). Without IntersectionObserver (tests' jsdom) all count as visible. */
  private visible = new Set<string>();
  private observer: IntersectionObserver | null = null;
  /** Milliseconds spent in update() (the rendering cost, read by the window test). */
  private renderMs = 0;
  private renders = 0;

  constructor(
    private onClose: () => void,
    private exportStats: (f: ExportFormat) => Promise<ExportResult>,
    private makeChart: ChartFactory = uplotCharts,
  ) {
    const cell = (id: string, cls = "") => {
      const c = h("span", { class: cls, "data-metric": id }, "—");
      this.cells.set(id, c);
      return c;
    };
    const item = (label: string, id: string) => h("div", { class: "sum-item" }, h("div", { class: "muted small" }, label), cell(id, "sum-value"));
    this.markerList = h("ul", { class: "marker-list small", "data-role": "markers" });
    this.markerNone = h("p", { class: "muted small", "data-role": "no-markers" }, "None in this call so far.");
    this.exportNote = h("p", { class: "muted small export-note", "data-role": "export-note" });
    this.el = h(
      "aside",
      { class: "stats-panel", "data-role": "stats", "aria-label": "Call statistics" },
      h("header", { class: "stats-head" },
        h("h2", {}, "Call statistics"),
        h("div", { class: "grow" }),
        h("button", { class: "btn", "data-action": "export-json", title: "Save the whole call as a webrtc-internals style JSON dump", onclick: () => void this.doExport("json") }, "Export JSON"),
        h("button", { class: "btn", "data-action": "export-csv", title: "Save the whole call as CSV, one row per second", onclick: () => void this.doExport("csv") }, "Export CSV"),
        h("button", { class: "icon-btn", title: "Close (Esc or S)", "data-action": "close-stats", onclick: () => this.onClose() }, "×"),
      ),
      this.exportNote,
      h("section", { class: "summary-strip" },
        h("div", { class: "sum-quality", "data-role": "stats-quality" },
          cell("band", "band"),
          cell("score", "score"),
          cell("reason", "reason"),
        ),
        item("Duration", "duration"),
        item("Connection", "path"),
        item("Codecs", "codecs"),
        item("Encryption", "encryption"),
        item("Verification code", "verification"),
      ),
      h("table", { class: "figures" },
        h("thead", {}, h("tr", {}, h("th", {}, ""), h("th", {}, "Sending video"), h("th", {}, "Receiving video"), h("th", {}, "Sending audio"), h("th", {}, "Receiving audio"))),
        h("tbody", {}, ...ROWS.map((r) => h("tr", {}, h("th", {}, r.label), ...r.cells.map(([id]) => h("td", {}, cell(id)))))),
      ),
      h("section", { class: "more" },
        item("Audio quality (MOS)", "mos"),
        item("Mouth-to-ear delay (est.)", "delay"),
        item("Outgoing bandwidth estimate", "estimate"),
        item("Addresses", "addresses"),
        item("DTLS", "tls"),
      ),
      this.chartsSection(),
      h("section", { class: "events" },
        h("h3", {}, "Events"),
        h("p", { class: "muted small legend" },
          ...([["ice_restart", "ICE restart"], ["resolution_change", "Resolution change"], ["keyframe_request", "Keyframe request"]] as const).map(([k, label]) =>
            h("span", { class: "marker-key", "data-kind": k }, h("i", { class: `swatch m-${k}` }), label),
          ),
        ),
        this.markerList,
        this.markerNone,
      ),
    );
  }

  private chartsSection(): HTMLElement {
    if (typeof IntersectionObserver === "function") {
      this.observer = new IntersectionObserver(
        (entries) => {
          for (const e of entries) {
            const id = (e.target as HTMLElement).dataset.chart ?? "";
            if (e.isIntersecting) {
              this.visible.add(id);
              if (this.isOpen) this.draw(id);
            } else {
              this.visible.delete(id);
            }
          }
        },
        // The viewport: ancestors' overflow (the panel scrolls) clips what counts as visible.
      );
    }
    return h(
      "section",
      { class: "charts" },
      ...CHARTS.map((c) => {
        const box = h("div", { class: "chart", "data-chart": c.id, "data-points": "0", "data-drawn": "0" }, h("div", { class: "chart-title" }, c.title, h("span", { class: "muted small" }, ` ${c.unit}`)));
        this.chartBoxes.set(c.id, box);
        this.observer?.observe(box);
        return box;
      }),
    );
  }

  /** Gives a graph the whole series (data-drawn: how many points it holds now). */
  private draw(id: string) {
    const chart = this.charts.get(id);
    if (!chart) return;
    chart.setData(this.series.data(id));
    this.chartBoxes.get(id)?.setAttribute("data-drawn", String(this.series.x.length));
  }

  get open(): boolean {
    return this.isOpen;
  }

  /** A new call: forget the last one's series. */
  /** The call's verification code (from both DTLS fingerprints), once connected. */
  setVerification(code: string | null) {
    const c = this.cells.get("verification");
    if (c) c.textContent = code ?? "—";
  }

  reset() {
    this.series.reset();
    this.setVerification(null);
    this.exportNote.textContent = "";
    if (this.isOpen) this.update();
  }

  /** Takes the app's whole history of the call (after a reload the page missed seconds). The
   *  app keeps every point it sent, so its list replaces ours; a newer live point is kept. */
  seed(points: StatsPoint[]) {
    if (points.length <= this.series.x.length) return;
    const last = this.series.last;
    this.series.reset();
    for (const p of points) this.series.push(p);
    if (last) this.series.push(last);
    this.markerList.replaceChildren();
    if (this.isOpen) this.update();
  }

  /** One second's point. */
  push(p: StatsPoint) {
    if (this.series.push(p) && this.isOpen) this.update();
  }

  show() {
    if (this.isOpen) return;
    this.isOpen = true;
    this.el.classList.add("open");
    this.update();
  }

  hide() {
    if (!this.isOpen) return;
    this.isOpen = false;
    this.el.classList.remove("open");
    for (const c of this.charts.values()) c.destroy();
    this.charts.clear();
  }

  private chartWidth(): number {
    const w = this.el.querySelector<HTMLElement>(".charts")?.clientWidth ?? 0;
    return Math.max(280, w > 0 ? w - 4 : 600);
  }

  /** Redraws the figures and graphs from the series (only while open). */
  update() {
    const t0 = performance.now();
    const p = this.series.last;
    if (p) {
      const strip = summary(p);
      for (const [id, text] of Object.entries(strip)) this.set(id, text);
      this.el.querySelector<HTMLElement>("[data-role=stats-quality]")?.setAttribute("data-band", p.score.band);
      this.el.querySelector<HTMLElement>("[data-role=stats-quality]")?.setAttribute("data-reason", p.score.reason);
      for (const r of ROWS) for (const [id, f] of r.cells) this.set(id, f(p));
    }
    const width = this.chartWidth();
    for (const spec of CHARTS) {
      const box = this.chartBoxes.get(spec.id)!;
      const has = this.series.hasValues(spec.id);
      box.setAttribute("data-points", String(has ? this.series.x.length : 0));
      if (!has && spec.empty) {
        this.charts.get(spec.id)?.destroy();
        this.charts.delete(spec.id);
        box.querySelector(".chart-canvas")?.remove();
        if (!box.querySelector(".chart-empty")) box.append(h("p", { class: "muted small chart-empty" }, spec.empty));
        continue;
      }
      box.querySelector(".chart-empty")?.remove();
      const chart = this.charts.get(spec.id);
      if (!chart) {
        const made = this.makeChart(spec, this.series, width);
        this.charts.set(spec.id, made);
        box.append(made.el);
        box.setAttribute("data-drawn", String(this.series.x.length));
      } else if (!this.observer || this.visible.has(spec.id)) {
        this.draw(spec.id);
      }
    }
    this.markerNone.hidden = this.series.markers.length > 0;
    const shown = this.markerList.childElementCount;
    for (const m of this.series.markers.slice(shown)) {
      this.markerList.append(h("li", { "data-kind": m.kind }, h("i", { class: `swatch m-${m.kind}` }), `${formatDuration(m.x)} ${m.label}`));
    }
    this.renderMs += performance.now() - t0;
    this.renders += 1;
    this.el.dataset.renderMs = this.renderMs.toFixed(1);
    this.el.dataset.renders = String(this.renders);
  }

  /** The window was resized. */
  resize() {
    if (!this.isOpen) return;
    const w = this.chartWidth();
    for (const c of this.charts.values()) c.setSize(w);
  }

  private set(id: string, text: string) {
    const c = this.cells.get(id);
    if (c && c.textContent !== text) c.textContent = text;
  }

  private async doExport(format: ExportFormat) {
    this.exportNote.textContent = "Saving…";
    const r = await saveStats(this.exportStats, format);
    this.exportNote.textContent = r.text;
    if (r.path) this.exportNote.dataset.path = r.path;
    else delete this.exportNote.dataset.path;
  }
}

/** Saves the call's statistics: what to tell the user, and the file when one was written. */
export async function saveStats(
  exportStats: (f: ExportFormat) => Promise<ExportResult>,
  format: ExportFormat,
): Promise<{ text: string; path?: string }> {
  try {
    const r = await exportStats(format);
    return { text: `Saved ${formatDuration(r.points)} of statistics (${(r.bytes / 1024).toFixed(0)} KiB) to ${r.path}`, path: r.path };
  } catch (e) {
    return { text: `Could not save: ${asIpcError(e).message}` };
  }
}
