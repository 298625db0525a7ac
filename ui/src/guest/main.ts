// The guest page (`/join/<token>`, served by `dyad serve`): someone without Dyad joins a call
// with the person who sent them the link, with the browser's own RTCPeerConnection and
// getUserMedia, speaking docs/protocol.md over the server's WebSocket. No framework, no CDN.
import "./guest.css";
import { bandHeight, readMarker } from "./marker";
import { verificationCode } from "./sas";

type Phase = "loading" | "ready" | "calling" | "ringing" | "connecting" | "in-call" | "ended" | "error";

interface GuestSession {
  token: string;
  username: string;
  host: string;
  expires_at: number;
}

interface Candidate {
  candidate: string;
  sdp_mid?: string | null;
  sdp_mline_index?: number | null;
}

/** What the page reports to whoever drives it (the Chromium tests read `window.dyadGuest`). */
export interface GuestReport {
  phase: Phase;
  message: string;
  host: string;
  framesDecoded: number;
  /** Test-pattern frame numbers read from the remote video, in the order seen. */
  markers: number[];
  audioPacketsReceived: number;
  /** Strongest frequency in the remote audio over the last analysis, Hz. */
  audioPeakHz: number | null;
  endReason: string | null;
  endedBy: string | null;
  /** The host's answer arriving → the first remote video frame shown, ms. */
  firstFrameMs: number | null;
  /** The verification code shown (the host's app shows the same one). */
  verification: string | null;
  /** Offers from the other side (ICE restarts) this page answered. */
  renegotiations: number;
  /** ICE restarts this page offered. */
  restarts: number;
}

const el = <K extends keyof HTMLElementTagNameMap>(tag: K, cls = "", text = ""): HTMLElementTagNameMap[K] => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text) e.textContent = text;
  return e;
};

const root = document.getElementById("guest") as HTMLElement;
const status = el("p", "status");
const stage = el("div", "stage");
const remote = el("video", "remote");
const self = el("video", "self");
const controls = el("div", "controls");
const join = el("button", "btn primary", "Join the call");
const mute = el("button", "btn", "Mute");
const camera = el("button", "btn", "Camera off");
const hangup = el("button", "btn danger", "Hang up");
const statsLine = el("p", "stats");
const verify = el("p", "verify");
const title = el("h1", "", "Dyad");
remote.autoplay = true;
remote.playsInline = true;
self.autoplay = true;
self.playsInline = true;
self.muted = true;
stage.append(remote, self);
controls.append(join, mute, camera, hangup);
root.append(title, status, verify, stage, controls, statsLine);

const report: GuestReport = {
  phase: "loading",
  message: "",
  host: "",
  framesDecoded: 0,
  markers: [],
  audioPacketsReceived: 0,
  audioPeakHz: null,
  endReason: null,
  endedBy: null,
  firstFrameMs: null,
  verification: null,
  renegotiations: 0,
  restarts: 0,
};
(window as unknown as { dyadGuest: GuestReport }).dyadGuest = report;

function show(phase: Phase, message: string) {
  report.phase = phase;
  report.message = message;
  status.textContent = message;
  document.body.dataset.phase = phase;
  const inCall = phase === "calling" || phase === "ringing" || phase === "connecting" || phase === "in-call";
  join.hidden = phase !== "ready";
  for (const b of [mute, camera, hangup]) b.hidden = !inCall;
  stage.hidden = !(inCall || phase === "ended") || phase === "ended";
}

class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

async function api<T>(path: string, init: RequestInit = {}): Promise<T> {
  const res = await fetch(path, init);
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new ApiError(body.code ?? "internal", body.message ?? res.statusText);
  return body as T;
}

const linkToken = decodeURIComponent(location.pathname.replace(/^\/join\//, "").split("/")[0] ?? "");

function endText(reason: string, by: string | null, host: string, me: string): string {
  switch (reason) {
    case "user_hangup":
      return by === me ? "You hung up." : `${host} hung up.`;
    case "busy":
      return `${host} is in another call. Try again later.`;
    case "unavailable":
      return `${host} is not online right now. Try again later.`;
    case "rejected":
      return `${host} declined the call.`;
    case "invite_timeout":
      return `${host} did not answer.`;
    case "ice_failed":
    case "ice_timeout":
      return "The connection failed: the network between you and the other side does not let the call through.";
    case "media_failed":
      return "The call connected but its audio and video could not be played.";
    case "peer_disconnected":
      return `${host} lost their connection.`;
    default:
      return `The call ended (${reason}).`;
  }
}

let session: GuestSession | null = null;

async function start() {
  if (!("RTCPeerConnection" in window) || !navigator.mediaDevices?.getUserMedia) {
    show("error", "This browser cannot make video calls (no WebRTC). Open the link in a current Chrome, Firefox, Edge or Safari.");
    return;
  }
  try {
    session = await api<GuestSession>("/v1/guest", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ invite: linkToken }),
    });
  } catch (e) {
    const code = e instanceof ApiError ? e.code : "network";
    const text: Record<string, string> = {
      invite_used: "This link was used already. Each link works once: ask for a new one.",
      invite_expired: "This link has expired. Ask for a new one.",
      not_found: "This link is not valid. Check that you have all of it.",
      network: "The server cannot be reached. Check your connection and reload the page.",
    };
    show("error", text[code] ?? (e as Error).message);
    report.endReason = code;
    return;
  }
  report.host = session.host;
  title.textContent = `Call with ${session.host}`;
  show("ready", `${session.host} invited you to a video call.`);
}

join.onclick = () => {
  if (session) void call(session);
};

async function call(s: GuestSession) {
  let media: MediaStream;
  try {
    media = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
  } catch (e) {
    const name = (e as DOMException).name;
    show(
      "error",
      name === "NotAllowedError"
        ? "Camera and microphone are blocked. Allow them for this page (the icon in the address bar) and reload."
        : `No camera or microphone could be opened (${name}).`,
    );
    return;
  }
  self.srcObject = media;
  const auth = { authorization: `Bearer ${s.token}` };
  const ice = await api<{ ice_servers: { urls: string[]; username?: string; credential?: string }[] }>("/v1/ice", {
    headers: auth,
  }).catch(() => ({ ice_servers: [] }));
  const pc = new RTCPeerConnection({
    iceServers: ice.ice_servers.map((i) => ({ urls: i.urls, username: i.username, credential: i.credential })),
  });
  for (const track of media.getTracks()) pc.addTrack(track, media);
  const remoteStream = new MediaStream();
  remote.srcObject = remoteStream;
  pc.ontrack = (ev) => {
    remoteStream.addTrack(ev.track);
    if (ev.track.kind === "audio") listen(remoteStream);
  };

  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const device = `browser-${Math.random().toString(36).slice(2, 10)}`;
  const ws = new WebSocket(`${scheme}://${location.host}/v1/ws?device=${device}&token=${encodeURIComponent(s.token)}`);
  const callId = crypto.randomUUID();
  const send = (m: object) => ws.readyState === WebSocket.OPEN && ws.send(JSON.stringify(m));
  let ended = false;
  let answeredAt = 0;
  let restartTimer: number | undefined;
  let ping: number | undefined;
  let stats: number | undefined;
  const finish = (reason: string, by: string | null, text: string) => {
    if (ended) return;
    ended = true;
    report.endReason = reason;
    report.endedBy = by;
    window.clearInterval(ping);
    window.clearInterval(stats);
    window.clearTimeout(restartTimer);
    pc.close();
    for (const t of media.getTracks()) t.stop();
    ws.close();
    show("ended", text);
  };
  const pending: Candidate[] = [];
  const addCandidate = async (c: Candidate) => {
    if (!c.candidate) return;
    await pc
      .addIceCandidate({ candidate: c.candidate, sdpMid: c.sdp_mid ?? undefined, sdpMLineIndex: c.sdp_mline_index ?? undefined })
      .catch(() => undefined);
  };
  pc.onicecandidate = (ev) => {
    const c = ev.candidate;
    send({
      type: "candidates",
      call_id: callId,
      candidates: c && c.candidate ? [{ candidate: c.candidate, sdp_mid: c.sdpMid, sdp_mline_index: c.sdpMLineIndex }] : [],
      end_of_candidates: !c,
    });
  };
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === "connected") {
      show("in-call", `In a call with ${s.host}.`);
      void verificationCode(pc.currentLocalDescription?.sdp ?? "", pc.currentRemoteDescription?.sdp ?? "").then((code) => {
        report.verification = code;
        verify.textContent = code
          ? `Verification code ${code}: read it to ${s.host}. The same code on both sides means nobody sits between you.`
          : "";
      });
    }
    // The path died: as the caller, offer the ICE restart (docs/protocol.md: the caller offers
    // at once, the callee only if the caller has not). It must be us: an offer from the other
    // side would make this browser the controlled ICE agent, and Dyad's stays controlled too
    // (webrtc-rs keeps its role across restarts), so nobody would nominate. Again every 5 s until
    // the path is back; the other side ends the call if it never is.
    window.clearTimeout(restartTimer);
    if (pc.connectionState === "disconnected" || pc.connectionState === "failed") {
      restartTimer = window.setTimeout(restartIce, pc.connectionState === "failed" ? 0 : 2000);
    }
  };
  const restartIce = async () => {
    if (ended || pc.connectionState === "connected" || pc.signalingState !== "stable") return;
    pc.restartIce();
    await pc.setLocalDescription(await pc.createOffer({ iceRestart: true }));
    send({ type: "negotiate", call_id: callId, description: { type: "offer", sdp: pc.localDescription?.sdp } });
    report.restarts += 1;
    restartTimer = window.setTimeout(restartIce, 5000);
  };
  ws.onmessage = async (ev) => {
    const m = JSON.parse(String(ev.data));
    if (m.call_id !== undefined && m.call_id !== callId) return;
    switch (m.type) {
      case "welcome": {
        ping = window.setInterval(() => send({ type: "ping" }), m.ping_interval_ms ?? 15000);
        const offer = await pc.createOffer();
        await pc.setLocalDescription(offer);
        send({ type: "invite", call_id: callId, to: s.host, sdp: pc.localDescription?.sdp, lifetime_ms: 60000 });
        show("calling", `Calling ${s.host}…`);
        break;
      }
      case "ringing":
        show("ringing", `Ringing ${s.host}…`);
        break;
      case "answer":
        answeredAt = performance.now();
        remote.requestVideoFrameCallback?.(() => {
          report.firstFrameMs = performance.now() - answeredAt;
        });
        send({ type: "select_answer", call_id: callId, device: m.device });
        await pc.setRemoteDescription({ type: "answer", sdp: m.sdp });
        for (const c of pending.splice(0)) await addCandidate(c);
        // On loopback the connection can be up before this line runs.
        if (pc.connectionState !== "connected") show("connecting", `Connecting to ${s.host}…`);
        break;
      case "candidates":
        for (const c of m.candidates as Candidate[]) {
          if (pc.remoteDescription) await addCandidate(c);
          else pending.push(c);
        }
        break;
      case "negotiate": {
        // An ICE restart or renegotiation from the other side (or its answer to ours).
        const d = m.description as RTCSessionDescriptionInit;
        // Glare: with our own offer out, theirs is ignored (docs/protocol.md).
        if (d.type === "offer" && pc.signalingState === "have-local-offer") break;
        await pc.setRemoteDescription(d);
        if (d.type === "offer") {
          await pc.setLocalDescription(await pc.createAnswer());
          send({ type: "negotiate", call_id: callId, description: { type: "answer", sdp: pc.localDescription?.sdp } });
          report.renegotiations += 1;
        }
        break;
      }
      case "call_ended":
        finish(m.reason, m.by ?? null, endText(m.reason, m.by ?? null, s.host, s.username));
        break;
      case "error":
        if (m.code === "not_allowed" || m.code === "unknown_user") finish(m.code, null, m.message);
        break;
    }
  };
  ws.onclose = () => finish("server_gone", null, "The connection to the server was lost.");
  hangup.onclick = () => {
    send({ type: "hangup", call_id: callId, reason: "user_hangup" });
    finish("user_hangup", s.username, "You hung up.");
  };
  mute.onclick = () => {
    const on = media.getAudioTracks().some((t) => t.enabled);
    for (const t of media.getAudioTracks()) t.enabled = !on;
    mute.textContent = on ? "Unmute" : "Mute";
  };
  camera.onclick = () => {
    const on = media.getVideoTracks().some((t) => t.enabled);
    for (const t of media.getVideoTracks()) t.enabled = !on;
    camera.textContent = on ? "Camera on" : "Camera off";
  };
  watchMarkers();
  let last: { at: number; bytesIn: number; bytesOut: number } | null = null;
  stats = window.setInterval(async () => {
    const r = await pc.getStats();
    let vin: Record<string, number> = {};
    let vout: Record<string, number> = {};
    let rtt: number | null = null;
    let lost = 0;
    let received = 0;
    r.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video") vin = s;
      if (s.type === "outbound-rtp" && s.kind === "video") vout = s;
      if (s.type === "inbound-rtp" && s.kind === "audio") report.audioPacketsReceived = s.packetsReceived ?? 0;
      if (s.type === "inbound-rtp") {
        lost += s.packetsLost ?? 0;
        received += s.packetsReceived ?? 0;
      }
      if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") rtt = s.currentRoundTripTime ?? null;
    });
    report.framesDecoded = vin.framesDecoded ?? 0;
    const now = performance.now();
    const bytesIn = vin.bytesReceived ?? 0;
    const bytesOut = vout.bytesSent ?? 0;
    const kbps = (b: number, a: number) => (last ? Math.round(((b - a) * 8) / (now - last.at)) : 0);
    const inK = kbps(bytesIn, last?.bytesIn ?? 0);
    const outK = kbps(bytesOut, last?.bytesOut ?? 0);
    last = { at: now, bytesIn, bytesOut };
    const loss = received + lost > 0 ? (100 * lost) / (received + lost) : 0;
    statsLine.textContent =
      `↓ ${vin.frameWidth ?? 0}×${vin.frameHeight ?? 0} ${Math.round(vin.framesPerSecond ?? 0)} fps ${inK} kbit/s · ` +
      `↑ ${vout.frameWidth ?? 0}×${vout.frameHeight ?? 0} ${Math.round(vout.framesPerSecond ?? 0)} fps ${outK} kbit/s · ` +
      `RTT ${rtt === null ? "–" : Math.round((rtt as number) * 1000)} ms · loss ${loss.toFixed(1)} %`;
  }, 1000);
}

/** Reads the test-pattern marker from the remote video ten times a second (cheap: the band only). */
function watchMarkers() {
  const canvas = document.createElement("canvas");
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  window.setInterval(() => {
    const w = remote.videoWidth;
    const h = remote.videoHeight;
    const band = bandHeight(w, h);
    if (!ctx || band === 0) return;
    canvas.width = w;
    canvas.height = band;
    ctx.drawImage(remote, 0, 0, w, band, 0, 0, w, band);
    const n = readMarker(ctx.getImageData(0, 0, w, band).data, w, h);
    if (n !== null && report.markers[report.markers.length - 1] !== n) {
      report.markers.push(n);
      if (report.markers.length > 600) report.markers.splice(0, 300);
    }
  }, 100);
}

/** The strongest frequency in the remote audio, once a second (WebAudio's analyser). */
function listen(stream: MediaStream) {
  const audio = new AudioContext();
  void audio.resume();
  const analyser = audio.createAnalyser();
  analyser.fftSize = 8192;
  audio.createMediaStreamSource(stream).connect(analyser);
  const bins = new Float32Array(analyser.frequencyBinCount);
  window.setInterval(() => {
    analyser.getFloatFrequencyData(bins);
    let best = 1;
    for (let i = 2; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
    report.audioPeakHz = bins[best] > -90 ? (best * audio.sampleRate) / analyser.fftSize : null;
  }, 1000);
}

show("loading", "Opening the call…");
void start();
