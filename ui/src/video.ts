// Video from the Rust side: binary WebSocket messages (header + I420 planes, see
// src-tauri/src/frames.rs) drawn with WebGL, the YUV→RGB conversion in a shader. Only the newest
// frame is drawn: frames that arrive while the page waits for the next animation frame replace
// each other (latency beats smoothness). Each drawn frame is acknowledged with its
// capture → drawn time so the Rust side can report it.
import type { FrameEndpoint } from "./bindings";

export const HEADER_LEN = 32;
const LOW48 = 2 ** 48;

export interface FrameHeader {
  width: number;
  height: number;
  seq: number;
  /** The test pattern's frame number, or null. */
  marker: number | null;
  cameraOff: boolean;
  /** Low 48 bits of the capture time in UNIX µs; 0 when unknown. */
  captureUs: number;
}

export function parseHeader(buf: ArrayBuffer): FrameHeader | null {
  if (buf.byteLength < HEADER_LEN) return null;
  const d = new DataView(buf);
  if (d.getUint32(0, false) !== 0x44595631) return null; // "DYV1"
  const marker = d.getUint32(16, true);
  return {
    width: d.getUint32(4, true),
    height: d.getUint32(8, true),
    seq: d.getUint32(12, true),
    marker: marker === 0xffffffff ? null : marker,
    cameraOff: (d.getUint32(20, true) & 1) === 1,
    captureUs: d.getUint32(24, true) + d.getUint32(28, true) * 2 ** 32,
  };
}

/** Microseconds from capture (low 48 bits of UNIX µs) to now, on this machine's clock. */
export function ageUs(captureUs: number, nowMs: number): number {
  const now = (nowMs * 1000) % LOW48;
  return (now - captureUs + LOW48) % LOW48;
}

const VS = `attribute vec2 p; varying vec2 t;
void main(){ t = vec2((p.x + 1.0) / 2.0, (1.0 - p.y) / 2.0); gl_Position = vec4(p, 0.0, 1.0); }`;
const FS = `precision mediump float; varying vec2 t; uniform sampler2D ty, tu, tv;
void main(){
  float y = 1.1643 * (texture2D(ty, t).r - 0.0625);
  float u = texture2D(tu, t).r - 0.5;
  float v = texture2D(tv, t).r - 0.5;
  gl_FragColor = vec4(y + 1.5958 * v, y - 0.39173 * u - 0.8129 * v, y + 2.017 * u, 1.0);
}`;

class Renderer {
  private tex: WebGLTexture[] = [];
  constructor(private gl: WebGLRenderingContext) {
    const prog = gl.createProgram();
    const shader = (type: number, src: string) => {
      const s = gl.createShader(type);
      if (!s) throw new Error("WebGL: no shader");
      gl.shaderSource(s, src);
      gl.compileShader(s);
      gl.attachShader(prog, s);
    };
    if (!prog) throw new Error("WebGL: no program");
    shader(gl.VERTEX_SHADER, VS);
    shader(gl.FRAGMENT_SHADER, FS);
    gl.linkProgram(prog);
    gl.useProgram(prog);
    const buf = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, buf);
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW);
    const loc = gl.getAttribLocation(prog, "p");
    gl.enableVertexAttribArray(loc);
    gl.vertexAttribPointer(loc, 2, gl.FLOAT, false, 0, 0);
    gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
    ["ty", "tu", "tv"].forEach((name, i) => {
      const t = gl.createTexture();
      if (!t) throw new Error("WebGL: no texture");
      gl.activeTexture(gl.TEXTURE0 + i);
      gl.bindTexture(gl.TEXTURE_2D, t);
      for (const [k, v] of [
        [gl.TEXTURE_MIN_FILTER, gl.LINEAR],
        [gl.TEXTURE_MAG_FILTER, gl.LINEAR],
        [gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE],
        [gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE],
      ])
        gl.texParameteri(gl.TEXTURE_2D, k, v);
      gl.uniform1i(gl.getUniformLocation(prog, name), i);
      this.tex.push(t);
    });
  }

  draw(h: FrameHeader, buf: ArrayBuffer) {
    const gl = this.gl;
    const { width: w, height: ht } = h;
    const cw = (w + 1) >> 1;
    const ch = (ht + 1) >> 1;
    const canvas = gl.canvas as HTMLCanvasElement;
    if (canvas.width !== w || canvas.height !== ht) {
      canvas.width = w;
      canvas.height = ht;
    }
    gl.viewport(0, 0, w, ht);
    const planes: [number, number, number][] = [
      [HEADER_LEN, w, ht],
      [HEADER_LEN + w * ht, cw, ch],
      [HEADER_LEN + w * ht + cw * ch, cw, ch],
    ];
    planes.forEach(([off, pw, ph], i) => {
      gl.activeTexture(gl.TEXTURE0 + i);
      gl.bindTexture(gl.TEXTURE_2D, this.tex[i]);
      const data = new Uint8Array(buf, off, pw * ph);
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.LUMINANCE, pw, ph, 0, gl.LUMINANCE, gl.UNSIGNED_BYTE, data);
    });
    gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
  }
}

/**
 * One video stream in the page. `el` holds the canvas and a notice shown when there is no
 * picture (camera off, not connected). Data attributes expose what was drawn, for tests:
 * `data-frames` (frames drawn), `data-marker` (last test-pattern frame number), `data-state`.
 */
export class VideoView {
  readonly el: HTMLDivElement;
  framesDrawn = 0;
  private canvas: HTMLCanvasElement;
  private notice: HTMLDivElement;
  private renderer: Renderer | null = null;
  private ws: WebSocket | null = null;
  private latest: ArrayBuffer | null = null;
  private scheduled = false;
  private stopped = false;

  constructor(
    private stream: "remote" | "local",
    private endpoint: FrameEndpoint | null,
    private emptyText: () => string,
  ) {
    this.el = document.createElement("div");
    this.el.className = `video video-${stream}`;
    this.el.dataset.frames = "0";
    this.el.dataset.state = "empty";
    this.canvas = document.createElement("canvas");
    this.notice = document.createElement("div");
    this.notice.className = "video-notice";
    this.el.append(this.canvas, this.notice);
    this.showEmpty();
    try {
      const gl = this.canvas.getContext("webgl", { alpha: false, antialias: false });
      if (gl) this.renderer = new Renderer(gl);
    } catch (e) {
      this.renderer = null;
    }
    if (!this.renderer) {
      this.notice.textContent = "Video can't be drawn here: WebGL is unavailable.";
    }
    this.connect();
  }

  private showEmpty() {
    this.el.dataset.state = "empty";
    this.notice.textContent = this.emptyText();
    this.notice.hidden = false;
    this.canvas.hidden = true;
  }

  /** Re-reads the notice text (e.g. the peer's name changed). */
  refresh() {
    if (this.el.dataset.state !== "video") this.notice.textContent = this.emptyText();
  }

  private connect() {
    if (this.stopped || !this.endpoint || !this.renderer) return;
    const url = `${this.endpoint.url}?stream=${this.stream}&secret=${this.endpoint.secret}`;
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    ws.onmessage = (m) => {
      if (!(m.data instanceof ArrayBuffer)) return;
      this.latest = m.data;
      if (!this.scheduled) {
        this.scheduled = true;
        requestAnimationFrame(() => this.drawLatest());
      }
    };
    ws.onclose = () => {
      if (!this.stopped) setTimeout(() => this.connect(), 500);
    };
    this.ws = ws;
  }

  private drawLatest() {
    this.scheduled = false;
    const buf = this.latest;
    this.latest = null;
    if (!buf || !this.renderer) return;
    const h = parseHeader(buf);
    if (!h) return;
    if (h.width === 0) {
      this.showEmpty();
      return;
    }
    if (h.cameraOff) {
      this.el.dataset.state = "camera-off";
      this.notice.textContent = this.emptyText();
      this.notice.hidden = false;
      this.canvas.hidden = true;
      return;
    }
    if (buf.byteLength < HEADER_LEN + (h.width * h.height * 3) / 2) return;
    this.renderer.draw(h, buf);
    this.canvas.hidden = false;
    this.notice.hidden = true;
    this.el.dataset.state = "video";
    this.framesDrawn += 1;
    this.el.dataset.frames = String(this.framesDrawn);
    if (h.marker !== null) this.el.dataset.marker = String(h.marker);
    const age =
      h.marker !== null && h.captureUs > 0
        ? Math.round(ageUs(h.captureUs, performance.timeOrigin + performance.now()))
        : -1;
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(`drawn ${h.seq} ${age}`);
  }

  stop() {
    this.stopped = true;
    this.ws?.close();
  }
}
