// Each screen's states, with the IPC mocked (@tauri-apps/api/mocks): what the page shows for a
// given snapshot or event, and which command (with which arguments) a click sends.
import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { App, Videos } from "./app";
import type { AppStateView, CallView, DeviceChoice, HistoryRow, NetworkReport, UiEvent } from "./bindings";
import { point } from "./testdata";
import { ageUs, parseHeader } from "./video";
import { apply, formatDuration, initialModel } from "./state";

function snapshot(over: Partial<AppStateView> = {}): AppStateView {
  return {
    session: { state: "signed_in", username: "ann" },
    server_url: "http://127.0.0.1:4000",
    embedded: true,
    online: true,
    contacts: [
      { username: "echo", presence: "online", state: "accepted", echo: true },
      { username: "bob", presence: "offline", state: "accepted", echo: false },
    ],
    anyone_may_call: false,
    call: null,
    frames: { url: "ws://127.0.0.1:1/", secret: "s" },
    devices: { camera: "pattern", microphone: "speech", speaker: "speaker:none" },
    audio_processing: { echo_cancellation: true, noise_suppression: true, auto_gain: true, high_pass: true },
    ...over,
  };
}

const fakeVideos = (): Videos => {
  const v = () => {
    const el = document.createElement("div");
    el.className = "video";
    return { el, refresh() {}, stop() {} };
  };
  return { remote: v(), local: v() };
};

let calls: { cmd: string; args: Record<string, unknown> }[] = [];
let state: AppStateView;
let history: HistoryRow[] = [];
let fail: Record<string, { kind: string; message: string }> = {};
let extraMics: { id: string; label: string }[] = [];
/** What `test_network` answers (a promise the test settles, to see the running state). */
let networkReply: Promise<NetworkReport> | null = null;

beforeEach(() => {
  extraMics = [];
  networkReply = null;
  calls = [];
  history = [];
  fail = {};
  state = snapshot();
  mockIPC((cmd, args) => {
    calls.push({ cmd, args: (args ?? {}) as Record<string, unknown> });
    if (fail[cmd]) throw fail[cmd];
    switch (cmd) {
      case "app_state":
        return state;
      case "call_history":
        return history;
      case "test_network":
        return networkReply;
      case "create_guest_link":
        return { url: "http://127.0.0.1:4000/join/tok", token: "tok", expires_at: 1_900_000_000, local_only: true };
      case "list_devices":
        return {
          cameras: [{ id: "pattern", label: "Test pattern" }],
          microphones: [{ id: "speech", label: "Synthetic speech" }, ...extraMics],
          speakers: [{ id: "speaker:none", label: "No sound" }],
          notes: ["No camera found: calls send the test pattern."],
        };
      default:
        return null;
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

async function mount(): Promise<{ app: App; root: HTMLElement }> {
  const root = document.createElement("div");
  document.body.replaceChildren(root);
  const app = new App(root, fakeVideos);
  await app.start();
  mounted.push(app);
  await new Promise((r) => setTimeout(r, 0));
  return { app, root };
}

const q = (root: HTMLElement, sel: string) => root.querySelector<HTMLElement>(sel);
const flush = () => new Promise((r) => setTimeout(r, 0));

function call(over: Partial<CallView> = {}): CallView {
  return {
    call_id: "c1",
    peer: "bob",
    outgoing: true,
    phase: "dialling",
    connected_at_ms: null,
    mic_muted: false,
    camera_off: false,
    verification: null,
    stranger: false,
    ...over,
  };
}

describe("sign-in screen", () => {
  it("shows the form and sends the credentials", async () => {
    state = snapshot({ session: { state: "signed_out" }, embedded: false, server_url: "http://example.org:8080" });
    const { root } = await mount();
    expect(q(root, "[data-screen=sign-in]")).not.toBeNull();
    expect(root.textContent).toContain("http://example.org:8080");
    (q(root, "#username") as HTMLInputElement).value = "ann";
    (q(root, "#password") as HTMLInputElement).value = "correct horse";
    q(root, "[data-action=register]")!.click();
    await flush();
    const c = calls.find((c) => c.cmd === "sign_in");
    expect(c?.args).toEqual({ username: "ann", password: "correct horse", register: true });
  });

  it("shows a wrong password as a message, not a blank screen", async () => {
    state = snapshot({ session: { state: "signed_out" } });
    fail.sign_in = { kind: "wrong_credentials", message: "Wrong username or password." };
    const { root } = await mount();
    (q(root, "#username") as HTMLInputElement).value = "ann";
    (q(root, "#password") as HTMLInputElement).value = "nope";
    q(root, "[data-action=sign-in]")!.click();
    await flush();
    await flush();
    const err = q(root, "[data-role=error]");
    expect(err?.dataset.kind).toBe("wrong_credentials");
    expect(err?.textContent).toContain("Wrong username or password.");
    // What was typed survives the re-render.
    expect((q(root, "#username") as HTMLInputElement).value).toBe("ann");
  });

  it("says so while the embedded server starts", async () => {
    state = snapshot({ session: { state: "signing_in" } });
    const { root } = await mount();
    expect(q(root, "[data-screen=signing-in]")?.textContent).toContain("local server");
  });
});

describe("home: contacts, pre-join, history", () => {
  it("lists contacts with presence and calls the selected one", async () => {
    const { root, app } = await mount();
    const items = root.querySelectorAll<HTMLElement>("[data-contact]");
    expect([...items].map((i) => [i.dataset.contact, i.dataset.presence])).toEqual([
      ["echo", "online"],
      ["bob", "offline"],
    ]);
    expect(q(root, "[data-contact=echo]")?.textContent).toContain("Echo test");
    expect(calls.some((c) => c.cmd === "start_preview")).toBe(true);
    // Offline contacts cannot be called; online ones can.
    q(root, "[data-contact=bob]")!.click();
    expect((q(root, "[data-action=call]") as HTMLButtonElement).disabled).toBe(true);
    app.onEvent({ type: "contacts", contacts: [{ username: "echo", presence: "online", state: "accepted", echo: true }, { username: "bob", presence: "online", state: "accepted", echo: false }] });
    expect(q(root, "[data-contact=bob]")?.dataset.presence).toBe("online");
    q(root, "[data-action=call]")!.click();
    await flush();
    expect(calls.find((c) => c.cmd === "start_call")?.args).toEqual({ peer: "bob" });
  });

  it("adds and removes contacts", async () => {
    const { root } = await mount();
    (q(root, "#new-contact") as HTMLInputElement).value = " carol ";
    q(root, "[data-action=add-contact]")!.click();
    await flush();
    expect(calls.find((c) => c.cmd === "add_contact")?.args).toEqual({ username: "carol" });
    q(root, "[data-contact=bob] [data-action=remove-contact]")!.click();
    await flush();
    expect(calls.find((c) => c.cmd === "remove_contact")?.args).toEqual({ username: "bob" });
  });

  it("shows device pickers, the device notes and the mic meter", async () => {
    const { root, app } = await mount();
    await flush();
    expect(q(root, "select[data-picker=camera]")).not.toBeNull();
    expect(root.textContent).toContain("No camera found");
    app.onEvent({ type: "mic_level", dbfs: -30 });
    expect(q(root, "[data-role=mic-meter]")?.style.width).toBe("50%");
    const sel = q(root, "select[data-picker=microphone]") as HTMLSelectElement;
    sel.dispatchEvent(new Event("change"));
    await flush();
    expect(calls.find((c) => c.cmd === "select_devices")?.args).toEqual({
      choice: { camera: "pattern", microphone: "speech", speaker: "speaker:none" },
    });
  });

  it("shows history rows with outcome and duration", async () => {
    history = [
      {
        call_id: "h1", peer: "echo", outgoing: true, outcome: "answered", started_at_ms: 1_700_000_000_000, duration_secs: 75,
        summary: { call_id: "h1", seconds: 75, average_score: 88, average_band: "good", worst_score: 55, worst_band: "fair", worst_reason: "the delay is long (800 ms round trip)", freezes: 2, freeze_seconds: 1.5, path: "direct (host) over UDP" },
      },
      { call_id: "h2", peer: "bob", outgoing: false, outcome: "missed", started_at_ms: 1_700_000_100_000, duration_secs: 0, summary: null },
    ];
    const { root } = await mount();
    q(root, "[data-tab=history]")!.click();
    await flush();
    const rows = root.querySelectorAll<HTMLElement>("[data-call]");
    expect([...rows].map((r) => r.dataset.outcome)).toEqual(["answered", "missed"]);
    expect(rows[0].textContent).toContain("1:15");
    expect(rows[1].textContent).toContain("Missed");
    // The call's quality summary stays in the history.
    const sum = q(rows[0], "[data-role=summary]")!;
    expect(sum.dataset.average).toBe("good");
    expect(sum.dataset.worst).toBe("fair");
    expect(sum.textContent).toBe("Good 88 % worst Fair 55 %: the delay is long (800 ms round trip)2 freezes (1.5 s) · direct (host) over UDP");
    expect(q(rows[1], "[data-role=summary]")).toBeNull();
  });
});

describe("calls", () => {
  it("outgoing: ringing screen with cancel", async () => {
    const { root, app } = await mount();
    app.onEvent({ type: "call", call: call() });
    expect(q(root, "[data-screen=outgoing]")?.textContent).toContain("Calling…");
    app.onEvent({ type: "call", call: call({ phase: "ringing" }) });
    expect(q(root, "[data-role=phase]")?.textContent).toBe("Ringing…");
    q(root, "[data-action=cancel]")!.click();
    await flush();
    expect(calls.some((c) => c.cmd === "hang_up")).toBe(true);
  });

  it("incoming: caller's name, accept and decline", async () => {
    const { root, app } = await mount();
    app.onEvent({ type: "call", call: call({ outgoing: false, phase: "incoming", peer: "carol" }) });
    expect(q(root, "[data-role=caller]")?.textContent).toBe("carol");
    q(root, "[data-action=accept]")!.click();
    await flush();
    expect(calls.some((c) => c.cmd === "accept_call")).toBe(true);
    q(root, "[data-action=decline]")!.click();
    await flush();
    expect(calls.some((c) => c.cmd === "decline_call")).toBe(true);
  });

  it("in call: timer, mute, camera, quality, keyboard, hang up", async () => {
    const { root, app } = await mount();
    app.onEvent({ type: "call", call: call({ phase: "connected", connected_at_ms: Date.now() - 65_000 }) });
    expect(q(root, "[data-screen=in-call]")).not.toBeNull();
    expect(q(root, "[data-role=timer]")?.textContent).toBe("1:05");
    q(root, "[data-action=mute]")!.click();
    await flush();
    expect(calls.find((c) => c.cmd === "set_mic_muted")?.args).toEqual({ muted: true });
    app.onEvent({ type: "call", call: call({ phase: "connected", connected_at_ms: Date.now(), mic_muted: true }) });
    expect(q(root, "[data-action=mute]")?.getAttribute("aria-pressed")).toBe("true");
    document.dispatchEvent(new KeyboardEvent("keydown", { key: "v" }));
    await flush();
    expect(calls.find((c) => c.cmd === "set_camera_off")?.args).toEqual({ off: true });
    app.onEvent({
      type: "stats",
      point: point(10, (p) => {
        p.snapshot.inboundVideo.lossPercent = 8;
        p.score = { ...p.score, score: 62, band: "fair", reason: "inbound_loss", reasonText: "the network is losing 8 % of the packets the other side sends you" };
      }),
    });
    expect(q(root, "[data-role=quality]")?.className).toContain("q-fair");
    expect(q(root, "[data-role=quality]")?.textContent).toBe("Fair 62 %");
    expect(q(root, "[data-role=quality]")?.getAttribute("aria-label")).toContain("loss 8.0 %");
    expect(q(root, "[data-role=quality-reason]")?.textContent).toBe("the network is losing 8 % of the packets the other side sends you");
    q(root, "[data-action=hang-up]")!.click();
    await flush();
    expect(calls.some((c) => c.cmd === "hang_up")).toBe(true);
  });

  it("a failed call ends with its reason on screen", async () => {
    const { root, app } = await mount();
    app.onEvent({ type: "call", call: call() });
    app.onEvent({ type: "ended", ended: { call_id: "c1", peer: "bob", reason: "busy", message: "bob is in another call.", duration_secs: 0, failed: true } });
    expect(q(root, "[data-screen=home]")).not.toBeNull();
    expect(q(root, "[data-role=error]")?.textContent).toContain("bob is in another call.");
  });

  it("a normal end shows the duration", async () => {
    const { root, app } = await mount();
    app.onEvent({ type: "ended", ended: { call_id: "c1", peer: "echo", reason: "user_hangup", message: "Call ended.", duration_secs: 12.4, failed: false } });
    expect(q(root, "[data-role=ended]")?.textContent).toContain("Call ended. · 0:12");
  });

  it("server unreachable and device errors are shown", async () => {
    const { root, app } = await mount();
    app.onEvent({ type: "error", error: { kind: "unreachable", message: "Can't reach the signalling server" } });
    expect(q(root, "[data-role=error]")?.dataset.kind).toBe("unreachable");
    app.onEvent({ type: "connection", online: false });
    expect(root.textContent).toContain("Reconnecting…");
  });
});

describe("model and frames", () => {
  it("apply keeps the selection valid and marks live-only events", () => {
    const m = initialModel(snapshot());
    expect(m.selected).toBe("echo");
    const e: UiEvent = { type: "contacts", contacts: [{ username: "bob", presence: "online", state: "accepted", echo: false }] };
    expect(apply(m, e)).toBe("render");
    expect(m.selected).toBe("bob");
    expect(apply(m, { type: "mic_level", dbfs: -12 })).toBe("live");
  });

  it("formats durations", () => {
    expect(formatDuration(0)).toBe("0:00");
    expect(formatDuration(75.9)).toBe("1:15");
    expect(formatDuration(3725)).toBe("1:02:05");
  });

  it("parses the frame header and computes the age across the 48-bit wrap", () => {
    const buf = new ArrayBuffer(32);
    const d = new DataView(buf);
    d.setUint32(0, 0x44595631, false);
    d.setUint32(4, 640, true);
    d.setUint32(8, 480, true);
    d.setUint32(12, 9, true);
    d.setUint32(16, 1234, true);
    d.setUint32(20, 1, true);
    d.setUint32(24, 5, true);
    d.setUint32(28, 1, true);
    expect(parseHeader(buf)).toEqual({ width: 640, height: 480, seq: 9, marker: 1234, cameraOff: true, captureUs: 5 + 2 ** 32 });
    d.setUint32(0, 0, false);
    expect(parseHeader(buf)).toBeNull();
    // Captured 3 ms before the low 48 bits wrapped; now is 2 ms after.
    const nowMs = (2 ** 48 * 7 + 2000) / 1000;
    expect(Math.round(ageUs(2 ** 48 - 3000, nowMs))).toBe(5000);
  });
});

describe("invite by link", () => {
  it("makes a guest link, shows it with its limits, and revokes it", async () => {
    const { root } = await mount();
    q(root, "[data-action=invite-link]")!.click();
    await flush();
    const url = q(root, "[data-role=guest-url]") as HTMLInputElement;
    expect(url.value).toBe("http://127.0.0.1:4000/join/tok");
    const box = q(root, "[data-role=guest-link]")!;
    expect(box.textContent).toContain("Works once");
    expect(box.textContent).toContain("opens only here");
    q(root, "[data-action=revoke-link]")!.click();
    await flush();
    expect(calls.find((c) => c.cmd === "revoke_guest_link")?.args).toEqual({ token: "tok" });
    expect(q(root, "[data-role=guest-link]")).toBeNull();
    expect(q(root, "[data-action=invite-link]")).not.toBeNull();
  });
});

describe("sign-in warnings", () => {
  it("warns before a password goes to a remote server over plain http", async () => {
    state = snapshot({ session: { state: "signed_out" }, embedded: false, server_url: "http://dyad.example.org:8470" });
    const { root } = await mount();
    expect(q(root, "[data-role=plain-http]")?.textContent).toContain("unencrypted");
  });

  it("says nothing for https or for this computer", async () => {
    for (const server_url of ["https://dyad.example.org", "http://127.0.0.1:8470"]) {
      state = snapshot({ session: { state: "signed_out" }, embedded: false, server_url });
      const { root } = await mount();
      expect(q(root, "[data-role=plain-http]")).toBeNull();
    }
  });
});

describe("verification code", () => {
  it("shows the call's code in the call once connected", async () => {
    state = snapshot({ call: call({ phase: "connected", connected_at_ms: Date.now(), verification: "218 795" }) });
    const { root } = await mount();
    expect(q(root, "[data-role=verification]")?.textContent).toBe("Verification 218 795");
  });
});

describe("contact requests and privacy", () => {
  it("shows requests both ways: accept or decline one we got, withdraw one we sent, no call until accepted", async () => {
    state = snapshot({
      contacts: [
        { username: "bob", presence: "offline", state: "requested", echo: false },
        // (the server says offline for requests; the state alone must keep Call off)
        { username: "carol", presence: "online", state: "incoming", echo: false },
      ],
    });
    const { root } = await mount();
    const items = [...root.querySelectorAll<HTMLElement>("[data-contact]")];
    expect(items.map((i) => [i.dataset.contact, i.dataset.state])).toEqual([
      ["carol", "incoming"],
      ["bob", "requested"],
    ]);
    expect(q(root, "[data-contact=carol]")?.textContent).toContain("Wants to be your contact");
    expect(q(root, "[data-contact=bob]")?.textContent).toContain("Request sent");
    expect(q(root, "[data-contact=bob] .dot")).toBeNull();
    // A request we sent: calling is allowed (it rings only if they let anyone call).
    q(root, "[data-contact=bob]")!.click();
    expect((q(root, "[data-action=call]") as HTMLButtonElement).disabled).toBe(false);
    expect(q(root, "[data-role=who]")?.textContent).toContain("has not accepted");
    // A request we got: accept first.
    q(root, "[data-contact=carol]")!.click();
    expect((q(root, "[data-action=call]") as HTMLButtonElement).disabled).toBe(true);
    q(root, "[data-contact=carol] [data-action=accept-contact]")!.click();
    await flush();
    expect(calls.find((c) => c.cmd === "add_contact")?.args).toEqual({ username: "carol" });
    q(root, "[data-contact=bob] [data-action=withdraw-contact]")!.click();
    await flush();
    expect(calls.find((c) => c.cmd === "remove_contact")?.args).toEqual({ username: "bob" });
  });

  it("turns 'anyone may call me' on in Settings and follows the server's answer", async () => {
    const { root, app } = await mount();
    q(root, "[data-tab=settings]")!.click();
    const box = q(root, "[data-setting=anyone-may-call]") as HTMLInputElement;
    expect(box.checked).toBe(false);
    box.checked = true;
    box.dispatchEvent(new Event("change"));
    await flush();
    expect(calls.find((c) => c.cmd === "set_privacy")?.args).toEqual({ anyoneMayCall: true });
    app.onEvent({ type: "privacy", anyone_may_call: false });
    expect((q(root, "[data-setting=anyone-may-call]") as HTMLInputElement).checked).toBe(false);
  });

  it("switches one part of the sound processing off in Settings and keeps the others", async () => {
    const { root } = await mount();
    q(root, "[data-tab=settings]")!.click();
    for (const key of ["echo-cancellation", "noise-suppression", "auto-gain", "high-pass"]) {
      expect((q(root, `[data-setting=${key}]`) as HTMLInputElement).checked).toBe(true);
    }
    const box = q(root, "[data-setting=echo-cancellation]") as HTMLInputElement;
    box.checked = false;
    box.dispatchEvent(new Event("change"));
    await flush();
    expect(calls.find((c) => c.cmd === "set_audio_processing")?.args).toEqual({
      choice: { echo_cancellation: false, noise_suppression: true, auto_gain: true, high_pass: true },
    });
    expect((q(root, "[data-setting=echo-cancellation]") as HTMLInputElement).checked).toBe(false);
    expect((q(root, "[data-setting=noise-suppression]") as HTMLInputElement).checked).toBe(true);
  });

  it("keeps both of two quick Sound switches", async () => {
    const { root } = await mount();
    q(root, "[data-tab=settings]")!.click();
    for (const key of ["echo-cancellation", "auto-gain"]) {
      const box = q(root, `[data-setting=${key}]`) as HTMLInputElement;
      box.checked = false;
      box.dispatchEvent(new Event("change"));
    }
    await flush();
    const sent = calls.filter((c) => c.cmd === "set_audio_processing").map((c) => c.args.choice);
    expect(sent[sent.length - 1]).toEqual({ echo_cancellation: false, noise_suppression: true, auto_gain: false, high_pass: true });
  });

  it("tests the network from Settings: busy while it runs, then the findings with the conclusion marked", async () => {
    let settle: (r: NetworkReport) => void = () => undefined;
    networkReply = new Promise((r) => (settle = r));
    const { root, app } = await mount();
    q(root, "[data-tab=settings]")!.click();
    const button = () => q(root, "[data-action=test-network]") as HTMLButtonElement;
    expect(button().textContent).toBe("Test my network");
    button().click();
    await flush();
    expect(calls.filter((c) => c.cmd === "test_network")).toHaveLength(1);
    expect(q(root, "[data-role=network-test]")?.dataset.state).toBe("running");
    expect(button().disabled).toBe(true);
    expect(button().textContent).toBe("Testing…");
    settle({
      server: "https://dyad.example.org",
      lines: [
        "Server: reached over HTTPS, round trip 12 ms; its WebSocket answers (calls can ring here).",
        "Relay over UDP: fails (blocked, or the relay does not answer).",
        "UDP is blocked here: calls will use the relay over TCP or TLS; video quality may be lower on a lossy link.",
      ],
      calls_possible: true,
      took_secs: 6.24,
    });
    await flush();
    const lines = [...root.querySelectorAll("[data-role=network-lines] li")].map((l) => l.textContent);
    expect(lines).toHaveLength(3);
    expect(lines[1]).toContain("Relay over UDP: fails");
    const verdict = q(root, "[data-role=network-verdict]")!;
    expect(verdict.textContent).toMatch(/^UDP is blocked here/);
    expect(verdict.className).toBe("verdict ok");
    expect(q(root, "[data-role=network-test]")?.dataset.state).toBe("ok");
    expect(q(root, "[data-role=network-test]")?.textContent).toContain("Tested https://dyad.example.org in 6.2 s.");
    expect(button().disabled).toBe(false);
    expect(button().textContent).toBe("Test again");
    // Another server: the report was about the old one, so it goes.
    app.onEvent({ type: "session", session: { state: "signed_in", username: "ann" }, server_url: "https://other.example.org", embedded: false });
    expect(q(root, "[data-role=network-lines]")).toBeNull();
  });

  it("drops a network test's answer that comes after the server changed", async () => {
    let settle: (r: NetworkReport) => void = () => undefined;
    networkReply = new Promise((r) => (settle = r));
    const { root, app } = await mount();
    q(root, "[data-tab=settings]")!.click();
    q(root, "[data-action=test-network]")!.click();
    await flush();
    app.onEvent({ type: "session", session: { state: "signed_in", username: "ann" }, server_url: "https://other.example.org", embedded: false });
    expect(q(root, "[data-role=network-test]")?.dataset.state).toBe("idle");
    expect((q(root, "[data-action=test-network]") as HTMLButtonElement).disabled).toBe(false);
    settle({ server: "http://127.0.0.1:4000", lines: ["This server runs on this computer: …"], calls_possible: true, took_secs: 0.1 });
    await flush();
    app.onEvent({ type: "connection", online: true });
    expect(q(root, "[data-role=network-lines]")).toBeNull();
    expect(q(root, "[data-role=network-test]")?.dataset.state).toBe("idle");
  });

  it("says why the network test could not run, and marks a network that cannot call", async () => {
    fail.test_network = { kind: "not_signed_in", message: "Sign in first." };
    const { root } = await mount();
    q(root, "[data-tab=settings]")!.click();
    q(root, "[data-action=test-network]")!.click();
    await flush();
    expect(q(root, "[data-role=network-error]")?.textContent).toBe("The test could not run: Sign in first.");
    expect(q(root, "[data-role=network-test]")?.dataset.state).toBe("error");
    delete fail.test_network;
    networkReply = Promise.resolve({ server: "http://127.0.0.1:4000", lines: ["Calls will not connect: offers and answers travel over the server's WebSocket, which this network does not let through."], calls_possible: false, took_secs: 1 });
    q(root, "[data-action=test-network]")!.click();
    await flush();
    expect(q(root, "[data-role=network-error]")).toBeNull();
    expect(q(root, "[data-role=network-verdict]")?.className).toBe("verdict bad");
    expect(q(root, "[data-role=network-test]")?.dataset.state).toBe("blocked");
  });

  it("shows a microphone plugged in after start-up, and picks it by its id", async () => {
    const { root, app } = await mount();
    const options = () => Array.from((q(root, "[data-picker=microphone]") as HTMLSelectElement).options).map((o) => o.value);
    expect(options()).not.toContain("mic:alsa:hw:CARD=USB,DEV=0");
    extraMics = [{ id: "mic:alsa:hw:CARD=USB,DEV=0", label: "USB headset" }];
    await app.pollDevices();
    expect(options()).toContain("mic:alsa:hw:CARD=USB,DEV=0");
    const select = q(root, "[data-picker=microphone]") as HTMLSelectElement;
    select.value = "mic:alsa:hw:CARD=USB,DEV=0";
    select.dispatchEvent(new Event("change"));
    await flush();
    expect((calls.find((c) => c.cmd === "select_devices")?.args.choice as DeviceChoice).microphone).toBe("mic:alsa:hw:CARD=USB,DEV=0");
  });

  it("says when an incoming call is from someone who is not a contact", async () => {
    state = snapshot({ call: call({ phase: "incoming", outgoing: false, peer: "mallory", stranger: true }) });
    const { root } = await mount();
    expect(q(root, "[data-role=stranger]")?.textContent).toContain("Not one of your contacts");
  });
});
