// The controller: loads the snapshot, subscribes to events, renders the screen for the state
// (sign-in, contacts + pre-join, outgoing, incoming, in call) and sends the user's actions.
import type { AudioProcessingChoice, CallSummary, ContactView, DeviceChoice, ExportFormat, IpcError, UiEvent } from "./bindings";
import { api, asIpcError } from "./ipc";
import { apply, formatDuration, initialModel, Model, OUTCOME_TEXT, Tab } from "./state";
import { h } from "./dom";
import { ChartFactory, saveStats, StatsScreen, uplotCharts } from "./stats";
import { VideoView } from "./video";

export { h };

export interface Videos {
  remote: { el: HTMLElement; refresh(): void; stop(): void };
  local: { el: HTMLElement; refresh(): void; stop(): void };
}

/** How video views are made (tests replace it: jsdom has neither WebGL nor our socket). */
export type VideoFactory = (app: App) => Videos;

export const realVideos: VideoFactory = (app) => ({
  remote: new VideoView("remote", app.model?.app.frames ?? null, () => app.remoteEmptyText()),
  local: new VideoView("local", app.model?.app.frames ?? null, () => app.localEmptyText()),
});

const initial = (name: string) => (name[0] ?? "?").toUpperCase();

/** A remote server reached over http:// (not this computer): passwords would travel in clear. */
function plainHttp(m: Model): boolean {
  const u = m.app.server_url ?? "";
  if (m.app.embedded || !u.startsWith("http://")) return false;
  const host = u.slice("http://".length).split(/[/:]/)[0];
  return !["127.0.0.1", "localhost", "[", "::1"].includes(host) && !host.startsWith("127.");
}

export class App {
  model: Model | null = null;
  readonly stats: StatsScreen;
  private statsCall: string | null = null;
  /** What the ended banner's export said (kept across re-renders). */
  private endedExport: { text: string; path?: string } | null = null;
  private videos: Videos | null = null;
  private timer: number | undefined;
  private previewing = false;

  constructor(
    private root: HTMLElement,
    private makeVideos: VideoFactory = realVideos,
    makeChart: ChartFactory = uplotCharts,
  ) {
    this.stats = new StatsScreen(() => this.toggleStats(false), (f) => api.exportStats(f), makeChart);
  }

  async start() {
    this.render();
    try {
      await api.subscribe((e) => this.onEvent(e));
      const app = await api.appState();
      this.model = initialModel(app);
      this.videos = this.makeVideos(this);
      this.render();
      void this.refreshDevices();
      if (app.session.state === "signed_in") void this.refreshHistory();
    } catch (e) {
      this.fatal(asIpcError(e));
    }
    document.addEventListener("keydown", this.keyListener);
    window.addEventListener("resize", this.resizeListener);
    this.timer = window.setInterval(() => this.tick(), 1000);
  }

  private keyListener = (ev: KeyboardEvent) => this.onKey(ev);
  private resizeListener = () => this.stats.resize();

  stop() {
    document.removeEventListener("keydown", this.keyListener);
    window.removeEventListener("resize", this.resizeListener);
    this.stats.hide();
    window.clearInterval(this.timer);
    this.videos?.remote.stop();
    this.videos?.local.stop();
  }

  private fatal(err: IpcError) {
    this.root.replaceChildren(
      h("div", { class: "center" }, h("div", { class: "card error-card" }, h("h2", {}, "Dyad could not start"), h("p", { class: "error" }, err.message))),
    );
  }

  remoteEmptyText(): string {
    const call = this.model?.app.call;
    if (!call) return "";
    if (call.phase === "connected") return `${call.peer}'s camera is off`;
    return `Connecting to ${call.peer}…`;
  }

  localEmptyText(): string {
    return this.model?.app.call?.camera_off ? "Your camera is off" : "No picture yet";
  }

  onEvent(e: UiEvent) {
    if (!this.model) return;
    const m = this.model;
    const wasCall = m.app.call;
    const what = apply(m, e);
    // The statistics screen keeps the call's series from its first second, open or not.
    if (e.type === "call" && e.call.call_id !== this.statsCall) {
      this.statsCall = e.call.call_id;
      this.stats.reset();
    }
    if (e.type === "call") this.stats.setVerification(e.call.verification);
    if (e.type === "stats") this.stats.push(e.point);
    if (e.type === "ended") {
      this.stats.hide();
      this.endedExport = null;
    }
    if (e.type === "ended" || (e.type === "session" && e.session.state === "signed_in")) {
      void this.refreshHistory();
    }
    if (e.type === "session" && e.session.state === "signed_in") void this.refreshDevices();
    if (what === "render") this.render();
    else this.live();
    // A call that starts ringing brings the window's attention to it (the ring tone and the OS
    // notification come from the Rust side).
    if (e.type === "call" && e.call.phase === "incoming" && wasCall?.phase !== "incoming") {
      document.title = `Dyad — ${e.call.peer} is calling`;
    } else if (m.app.call?.phase !== "incoming") {
      document.title = "Dyad";
    }
  }

  private async act(f: () => Promise<unknown>, after?: () => void) {
    if (!this.model) return;
    this.model.error = null;
    try {
      await f();
      after?.();
    } catch (e) {
      this.model.error = asIpcError(e);
    }
    this.render();
  }

  /** Loads something into the model (keeping any error already shown), then re-renders. */
  private async load(f: (m: Model) => Promise<void>) {
    if (!this.model) return;
    try {
      await f(this.model);
    } catch (e) {
      this.model.error = asIpcError(e);
    }
    this.render();
  }

  private refreshHistory() {
    return this.load(async (m) => {
      m.history = await api.callHistory();
    });
  }

  private refreshDevices() {
    return this.load(async (m) => {
      m.devices = await api.listDevices();
    });
  }

  /** Lists the devices again and redraws only when the list changed (an open picker stays open). */
  async pollDevices() {
    const m = this.model;
    if (!m) return;
    try {
      const list = await api.listDevices();
      if (JSON.stringify(list) !== JSON.stringify(m.devices)) {
        m.devices = list;
        this.render();
      }
    } catch {
      // The next poll tries again; the pickers keep what they show.
    }
  }

  private onKey(ev: KeyboardEvent) {
    const call = this.model?.app.call;
    if (!call) return;
    const t = ev.target as HTMLElement | null;
    if (t && (t.tagName === "INPUT" || t.tagName === "SELECT" || t.tagName === "TEXTAREA")) return;
    const key = ev.key.toLowerCase();
    if (call.phase === "incoming") {
      if (key === "enter") void this.act(() => api.acceptCall());
      if (key === "escape") void this.act(() => api.declineCall());
      return;
    }
    if (key === "escape" && this.model?.statsOpen) {
      this.toggleStats(false);
      return;
    }
    if (key === "s") this.toggleStats(!this.model?.statsOpen);
    else if (key === "m") void this.act(() => api.setMicMuted(!call.mic_muted));
    else if (key === "v") void this.act(() => api.setCameraOff(!call.camera_off));
    else if (key === "escape" || (key === "h" && ev.ctrlKey)) void this.act(() => api.hangUp());
  }

  /** Opens or closes the statistics screen over the call (the video keeps playing under it). */
  toggleStats(open: boolean) {
    const m = this.model;
    if (!m || !m.app.call) return;
    m.statsOpen = open;
    if (open) {
      this.stats.show();
      // After a reload the page missed the first seconds: fetch what the app kept.
      if (this.stats.series.x.length < (m.point?.snapshot.callSeconds ?? 0) - 1) {
        api.callStats().then((points) => this.stats.seed(points)).catch(() => undefined);
      }
    } else {
      this.stats.hide();
    }
    this.root.querySelector("[data-role=quality]")?.setAttribute("aria-expanded", String(open));
    this.root.querySelector("[data-screen=in-call]")?.setAttribute("data-stats", open ? "open" : "closed");
    // The video's box changed size: let the graphs take theirs once laid out.
    requestAnimationFrame(() => this.stats.resize());
  }

  /** Once a second: the call timer. */
  private ticks = 0;
  /** The Sound settings sent and not yet confirmed. */
  private soundPending: AudioProcessingChoice | null = null;

  private tick() {
    // A device plugged in (or out) shows in the pickers within 3 s, without a restart. Not
    // during a call: listing opens the default devices to see that they work.
    if (++this.ticks % 3 === 0 && this.model && !this.model.app.call) void this.pollDevices();
    const el = this.root.querySelector<HTMLElement>("[data-role=timer]");
    const at = this.model?.app.call?.connected_at_ms;
    if (el && at) el.textContent = formatDuration((Date.now() - at) / 1000);
  }

  /** Live values without rebuilding the screen: the quality pill and the mic meter. */
  private live() {
    const m = this.model;
    if (!m) return;
    const pill = this.root.querySelector<HTMLElement>("[data-role=quality]");
    if (pill) {
      const p = m.point;
      const q = p?.score;
      pill.className = `quality q-${q?.band ?? "none"}`;
      pill.textContent = q ? `${{ good: "Good", fair: "Fair", poor: "Poor" }[q.band]} ${q.score.toFixed(0)} %` : "…";
      pill.dataset.band = q?.band ?? "none";
      pill.setAttribute("aria-label", p && q
        ? [
            q.reasonText || "Connection is good",
            p.snapshot.remoteInboundVideo.roundTripTime !== null ? `round trip ${(p.snapshot.remoteInboundVideo.roundTripTime * 1000).toFixed(0)} ms` : "",
            `loss ${p.snapshot.inboundVideo.lossPercent.toFixed(1)} %`,
            `receiving ${p.snapshot.inboundVideo.frameWidth}×${p.snapshot.inboundVideo.frameHeight} at ${p.snapshot.inboundVideo.framesPerSecond.toFixed(0)} fps`,
            `sending ${(p.snapshot.outboundVideo.bitrate / 1000).toFixed(0)} kbit/s`,
            "open the call statistics (S)",
          ]
            .filter(Boolean)
            .join(", ")
        : "Measuring the call; open the call statistics (S)");
      const why = this.root.querySelector<HTMLElement>("[data-role=quality-reason]");
      if (why) why.textContent = q && q.band !== "good" ? q.reasonText : "";
    }
    const meter = this.root.querySelector<HTMLElement>("[data-role=mic-meter]");
    if (meter && m.micLevel !== null) {
      // -60 dBFS .. 0 dBFS → 0 .. 100 %.
      const pct = Math.max(0, Math.min(100, ((m.micLevel + 60) / 60) * 100));
      meter.style.width = `${pct.toFixed(0)}%`;
      meter.parentElement?.setAttribute("data-level", m.micLevel.toFixed(1));
    }
  }

  render() {
    const m = this.model;
    if (!m) {
      this.root.replaceChildren(h("div", { class: "center" }, h("div", { class: "spinner" }), h("p", { class: "muted" }, "Starting Dyad…")));
      return;
    }
    // Keep what the user is typing across re-renders.
    const typed = new Map<string, string>();
    const focused = (document.activeElement as HTMLElement | null)?.id;
    this.root.querySelectorAll<HTMLInputElement>("input[id]").forEach((i) => typed.set(i.id, i.value));

    const screen = this.screen(m);
    this.root.replaceChildren(screen);
    typed.forEach((v, id) => {
      const i = this.root.querySelector<HTMLInputElement>(`#${id}`);
      if (i && i.type !== "checkbox") i.value = v;
    });
    if (focused) this.root.querySelector<HTMLElement>(`#${focused}`)?.focus();
    this.videos?.remote.refresh();
    this.videos?.local.refresh();
    this.syncPreview(m);
    this.live();
    this.tick();
  }

  private syncPreview(m: Model) {
    const want = m.app.session.state === "signed_in" && !m.app.call && m.tab === "call";
    if (want && !this.previewing) {
      this.previewing = true;
      api.startPreview().catch((e) => {
        if (this.model) this.model.error = asIpcError(e);
        this.render();
      });
    } else if (!want && this.previewing) {
      this.previewing = false;
      if (!m.app.call) void api.stopPreview().catch(() => undefined);
    }
  }

  private screen(m: Model): HTMLElement {
    const s = m.app.session;
    if (s.state === "signed_out") return this.signIn(m);
    if (s.state === "signing_in") {
      return h("div", { class: "center", "data-screen": "signing-in" }, h("div", { class: "spinner" }), h("p", { class: "muted" }, m.app.embedded ? "Starting the local server and signing you in…" : "Signing in…"), this.errorBox(m));
    }
    const call = m.app.call;
    if (call && (call.phase === "dialling" || call.phase === "ringing")) return this.outgoing(m);
    if (call && call.phase === "incoming") return this.incoming(m);
    if (call) return this.inCall(m);
    return this.home(m);
  }

  private errorBox(m: Model): HTMLElement | null {
    if (!m.error) return null;
    return h(
      "div",
      { class: "banner banner-error", role: "alert", "data-role": "error", "data-kind": m.error.kind },
      h("span", {}, m.error.message),
      h("button", { class: "icon-btn", title: "Dismiss", onclick: () => { m.error = null; this.render(); } }, "×"),
    );
  }

  private signIn(m: Model): HTMLElement {
    let register = false;
    const submit = (ev: Event) => {
      ev.preventDefault();
      const u = (this.root.querySelector("#username") as HTMLInputElement).value;
      const p = (this.root.querySelector("#password") as HTMLInputElement).value;
      void this.act(() => api.signIn(u, p, register));
    };
    const where = m.app.embedded ? "This computer (built-in server)" : m.app.server_url ?? "";
    return h(
      "div",
      { class: "center", "data-screen": "sign-in" },
      h(
        "form",
        { class: "card signin", onsubmit: submit },
        h("div", { class: "brand big" }, h("span", { class: "logo" }), "Dyad"),
        h("p", { class: "muted" }, "Sign in to call the people you know."),
        this.errorBox(m),
        h("label", { for: "username" }, "Username"),
        h("input", { id: "username", autocomplete: "username", maxlength: "64", required: true }),
        h("label", { for: "password" }, "Password"),
        h("input", { id: "password", type: "password", autocomplete: "current-password", maxlength: "256", required: true }),
        h("div", { class: "row" },
          h("button", { type: "submit", class: "btn primary", "data-action": "sign-in", onclick: () => (register = false) }, "Sign in"),
          h("button", { type: "submit", class: "btn", "data-action": "register", onclick: () => (register = true) }, "Create account"),
        ),
        h("p", { class: "muted small" }, "Server: ", h("b", {}, where)),
        plainHttp(m)
          ? h("p", { class: "small warn", "data-role": "plain-http" }, "This server is reached over plain HTTP: your password and your calls' signalling travel unencrypted, readable by anyone on the way. Ask for its https:// address.")
          : null,
        this.serverForm(m),
      ),
    );
  }

  private serverForm(m: Model): HTMLElement {
    const apply = (ev: Event) => {
      ev.preventDefault();
      const url = (this.root.querySelector("#server-url") as HTMLInputElement).value.trim();
      void this.act(() => api.setServer(url === "" ? null : url));
    };
    return h(
      "form",
      { class: "server-form", onsubmit: apply },
      h("label", { for: "server-url" }, "Signalling server"),
      h("div", { class: "row" },
        h("input", { id: "server-url", placeholder: "https://host:port — empty for the built-in server", value: m.app.embedded ? "" : m.app.server_url ?? "", maxlength: "512" }),
        h("button", { type: "submit", class: "btn", "data-action": "set-server" }, "Use"),
      ),
    );
  }

  private presenceDot(c: ContactView) {
    const label = { online: "Online", in_call: "In a call", offline: "Offline" }[c.presence];
    return h("span", { class: `dot p-${c.presence}`, title: label, "aria-label": label });
  }

  /** One row of the contact list: an accepted contact (presence, pick to call), a request we
   * sent (withdraw), or one we got (accept or decline). */
  private contactRow(m: Model, c: ContactView): HTMLElement {
    const remove = (title: string, label: string, action: string) =>
      h("button", { class: "icon-btn", title, "data-action": action, onclick: (ev: Event) => { ev.stopPropagation(); void this.act(() => api.removeContact(c.username)); } }, label);
    const status =
      c.echo ? "Hear and see yourself"
      : c.state === "incoming" ? "Wants to be your contact"
      : c.state === "requested" ? "Request sent"
      : { online: "Online", in_call: "In a call", offline: "Offline" }[c.presence];
    const actions =
      c.echo ? []
      : c.state === "incoming"
        ? [
            h("button", { class: "btn small-btn", title: `Accept ${c.username}: you will see each other's presence and can call each other`, "data-action": "accept-contact", onclick: (ev: Event) => { ev.stopPropagation(); void this.act(() => api.addContact(c.username)); } }, "Accept"),
            remove(`Decline ${c.username}'s request`, "×", "decline-contact"),
          ]
        : c.state === "requested"
          ? [remove(`Withdraw the request to ${c.username}`, "×", "withdraw-contact")]
          : [remove(`Remove ${c.username}`, "×", "remove-contact")];
    return h(
      "li",
      {
        class: `contact ${m.selected === c.username ? "selected" : ""} s-${c.state}`,
        "data-contact": c.username,
        "data-presence": c.presence,
        "data-state": c.state,
        onclick: () => { m.selected = c.username; m.tab = "call"; this.render(); },
      },
      h("div", { class: "avatar small" }, initial(c.username), c.state === "accepted" ? this.presenceDot(c) : null),
      h("div", { class: "grow" },
        h("div", { class: "name" }, c.echo ? "Echo test" : c.username),
        h("div", { class: "muted small" }, status),
      ),
      ...actions,
    );
  }

  private sidebar(m: Model): HTMLElement {
    const me = m.app.session.state === "signed_in" ? m.app.session.username : "";
    const add = (ev: Event) => {
      ev.preventDefault();
      const i = this.root.querySelector("#new-contact") as HTMLInputElement;
      const name = i.value.trim();
      if (!name) return;
      void this.act(() => api.addContact(name), () => (i.value = ""));
    };
    return h(
      "aside",
      { class: "sidebar" },
      h("div", { class: "brand" }, h("span", { class: "logo" }), "Dyad"),
      h("div", { class: "me" },
        h("div", { class: "avatar small" }, initial(me)),
        h("div", {}, h("div", { class: "name", "data-role": "me" }, me), h("div", { class: "muted small" }, m.app.online ? "Online" : "Reconnecting…")),
        h("span", { class: `dot ${m.app.online ? "p-online" : "p-offline"}` }),
      ),
      h("div", { class: "section-title" }, "Contacts"),
      h(
        "ul",
        { class: "contacts", "data-role": "contacts" },
        // Requests to us first: they wait for an answer.
        ...[...m.app.contacts].sort((a, b) => Number(b.state === "incoming") - Number(a.state === "incoming")).map((c) => this.contactRow(m, c)),
        m.app.contacts.length === 0 ? h("li", { class: "muted small empty" }, "No contacts yet. Add someone by username.") : null,
      ),
      h("form", { class: "add-contact", onsubmit: add },
        h("input", { id: "new-contact", placeholder: "Add a contact by username", title: "They are asked first: once they accept, you see each other's presence and can call each other.", maxlength: "64" }),
        h("button", { type: "submit", class: "btn", "data-action": "add-contact" }, "Add"),
      ),
      this.guestLinkBox(m),
    );
  }

  /** "Invite by link": a one-use link for someone without Dyad, who joins from a browser. */
  private guestLinkBox(m: Model): HTMLElement {
    const make = () =>
      void this.act(async () => {
        m.guestLink = await api.createGuestLink();
      });
    const link = m.guestLink;
    if (!link) {
      return h("div", { class: "guest-link" },
        h("button", { class: "btn", "data-action": "invite-link", onclick: make }, "Invite by link"),
        h("div", { class: "muted small" }, "For someone without Dyad: they join from a browser."),
      );
    }
    const until = new Date(link.expires_at * 1000).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
    const copy = () => void navigator.clipboard?.writeText(link.url).catch(() => undefined);
    const revoke = () =>
      void this.act(async () => {
        await api.revokeGuestLink(link.token);
        m.guestLink = null;
      });
    return h("div", { class: "guest-link", "data-role": "guest-link" },
      h("div", { class: "section-title" }, "Guest link"),
      h("input", { readonly: "", value: link.url, "data-role": "guest-url", onfocus: (ev: Event) => (ev.target as HTMLInputElement).select() }),
      h("div", { class: "row" },
        h("button", { class: "btn", "data-action": "copy-link", onclick: copy }, "Copy"),
        h("button", { class: "btn danger", "data-action": "revoke-link", onclick: revoke }, "Revoke"),
        h("button", { class: "btn", onclick: () => { m.guestLink = null; this.render(); } }, "Done"),
      ),
      h("div", { class: "muted small" }, `Works once, until ${until}. Whoever opens it can call you, and only you.`),
      link.local_only
        ? h("div", { class: "muted small warn" }, "The built-in server listens on this computer only, so the link opens only here. To invite someone elsewhere, point Settings at a dyad serve they can reach.")
        : null,
    );
  }

  private home(m: Model): HTMLElement {
    const tabs: [Tab, string][] = [["call", "Call"], ["history", "History"], ["settings", "Settings"]];
    const body = m.tab === "history" ? this.historyView(m) : m.tab === "settings" ? this.settingsView(m) : this.preJoin(m);
    return h(
      "div",
      { class: "layout", "data-screen": "home" },
      this.sidebar(m),
      h("main", { class: "main" },
        h("nav", { class: "tabs" }, ...tabs.map(([t, label]) => h("button", { class: `tab ${m.tab === t ? "active" : ""}`, "data-tab": t, onclick: () => { m.tab = t; if (t === "history") void this.refreshHistory(); this.render(); } }, label))),
        this.endedBanner(m),
        this.errorBox(m),
        body,
      ),
    );
  }

  private endedBanner(m: Model): HTMLElement | null {
    const e = m.lastEnded;
    if (!e || e.failed) return null;
    const dur = e.duration_secs > 0 ? ` · ${formatDuration(e.duration_secs)}` : "";
    // The call's statistics stay exportable until the next call starts.
    const saved = this.endedExport;
    const note = h("span", { class: "muted small", "data-role": "ended-export-note", "data-path": saved?.path }, saved?.text ?? "");
    const save = (format: ExportFormat) =>
      saveStats((f) => api.exportStats(f), format).then((r) => {
        this.endedExport = r;
        this.render();
      });
    const exports = e.duration_secs > 0
      ? [
          h("button", { class: "btn small-btn", "data-action": "export-last-json", title: "Save this call's statistics as a webrtc-internals style JSON dump", onclick: () => void save("json") }, "Statistics JSON"),
          h("button", { class: "btn small-btn", "data-action": "export-last-csv", title: "Save this call's statistics as CSV", onclick: () => void save("csv") }, "CSV"),
          note,
        ]
      : [];
    return h("div", { class: "banner", "data-role": "ended" }, h("span", { class: "grow" }, `${e.message}${dur}`), ...exports, h("button", { class: "icon-btn", title: "Dismiss", onclick: () => { m.lastEnded = null; this.render(); } }, "×"));
  }

  private picker(id: keyof DeviceChoice, label: string, m: Model): HTMLElement {
    const options = m.devices?.[id === "camera" ? "cameras" : id === "microphone" ? "microphones" : "speakers"] ?? [];
    const current = m.app.devices[id];
    const change = (ev: Event) => {
      const v = (ev.target as HTMLSelectElement).value;
      const choice = { ...m.app.devices, [id]: v };
      void this.act(() => api.selectDevices(choice), () => (m.app.devices = choice));
    };
    return h("label", { class: "picker" }, h("span", {}, label),
      h("select", { "data-picker": id, onchange: change },
        ...options.map((o) => h("option", { value: o.id, selected: o.id === current }, o.label)),
        options.some((o) => o.id === current) ? null : h("option", { value: current, selected: true, disabled: true }, "Not available"),
      ),
    );
  }

  private preJoin(m: Model): HTMLElement {
    const who = m.app.contacts.find((c) => c.username === m.selected) ?? null;
    const name = who ? (who.echo ? "Echo test" : who.username) : null;
    const call = () => who && void this.act(() => api.startCall(who.username));
    return h(
      "section",
      { class: "prejoin", "data-screen": "prejoin" },
      h("div", { class: "preview-wrap" }, this.videos?.local.el ?? null, h("div", { class: "preview-label" }, "Your camera")),
      h("div", { class: "prejoin-side" },
        h("h2", {}, name ? `Ready to call ${name}?` : "Pick someone to call"),
        who ? h("p", { class: "muted", "data-role": "who" }, who.echo ? "The echo test sends your own video and sound back, so you can check them before a real call."
          : who.state === "requested" ? `${who.username} has not accepted your contact request yet. A call goes through only if they let anyone call them (then through the relay); once they accept, you can call each other.`
          : who.state === "incoming" ? `${who.username} wants to be your contact. Accept on the left to call each other.`
          : { online: `${who.username} is online.`, in_call: `${who.username} is in another call.`, offline: `${who.username} is offline.` }[who.presence]) : h("p", { class: "muted" }, "Add a contact on the left, or try the echo test."),
        this.picker("camera", "Camera", m),
        this.picker("microphone", "Microphone", m),
        h("div", { class: "meter", title: "Microphone level" }, h("div", { class: "meter-fill", "data-role": "mic-meter" })),
        this.picker("speaker", "Speaker", m),
        ...(m.devices?.notes ?? []).map((n) => h("p", { class: "note small" }, n)),
        h("button", { class: "btn primary call-btn", "data-action": "call", disabled: !who || who.state === "incoming" || (who.state === "accepted" && who.presence === "offline"), onclick: call }, "Call"),
      ),
    );
  }

  private historyView(m: Model): HTMLElement {
    if (m.history.length === 0) return h("section", { class: "history empty", "data-screen": "history" }, h("p", { class: "muted" }, "No calls yet."));
    return h(
      "section",
      { class: "history", "data-screen": "history" },
      h("table", {},
        h("thead", {}, h("tr", {}, h("th", {}, ""), h("th", {}, "Who"), h("th", {}, "Outcome"), h("th", {}, "When"), h("th", {}, "Duration"), h("th", {}, "Quality"))),
        h("tbody", {}, ...m.history.map((r) =>
          h("tr", { "data-call": r.call_id, "data-outcome": r.outcome },
            h("td", { class: "dir", title: r.outgoing ? "Outgoing" : "Incoming" }, r.outgoing ? "↗" : "↙"),
            h("td", {}, r.peer),
            h("td", {}, h("span", { class: `outcome o-${r.outcome}` }, OUTCOME_TEXT[r.outcome])),
            h("td", { class: "muted" }, new Date(r.started_at_ms).toLocaleString()),
            h("td", {}, r.duration_secs > 0 ? formatDuration(r.duration_secs) : "—"),
            h("td", { class: "summary small" }, r.summary ? this.summaryCell(r.summary) : ""),
          ),
        )),
      ),
    );
  }

  private summaryCell(s: CallSummary): HTMLElement {
    const band = { good: "Good", fair: "Fair", poor: "Poor" };
    const freezes = s.freezes === 0 ? "no freezes" : `${s.freezes} freeze${s.freezes === 1 ? "" : "s"} (${s.freeze_seconds.toFixed(1)} s)`;
    return h(
      "div",
      { "data-role": "summary", "data-average": s.average_band, "data-worst": s.worst_band },
      h("span", { class: `quality q-${s.average_band}` }, `${band[s.average_band]} ${s.average_score.toFixed(0)} %`),
      h("span", { class: "muted" }, ` worst ${band[s.worst_band]} ${s.worst_score.toFixed(0)} %${s.worst_reason ? `: ${s.worst_reason}` : ""}`),
      h("div", { class: "muted" }, `${freezes} · ${s.path || "no path recorded"}`),
    );
  }

  private settingsView(m: Model): HTMLElement {
    return h(
      "section",
      { class: "settings", "data-screen": "settings" },
      h("h2", {}, "Settings"),
      h("p", { class: "muted" }, "Server in use: ", h("b", { "data-role": "server-url" }, m.app.server_url ?? "—"), m.app.embedded ? " (built into this app)" : ""),
      this.serverForm(m),
      this.networkTest(m),
      this.soundSettings(m),
      h("h3", {}, "Privacy"),
      h("label", { class: "check" },
        h("input", { type: "checkbox", "data-setting": "anyone-may-call", checked: m.app.anyone_may_call, onchange: (ev: Event) => { const on = (ev.target as HTMLInputElement).checked; void this.act(() => api.setPrivacy(on), () => (m.app.anyone_may_call = on)); } }),
        " Anyone with an account may call me",
      ),
      h("p", { class: "muted small" }, "Off: only people you accepted as contacts can call you or see whether you are online. On: others can ring you too; their calls go through the server's relay, so they never learn your IP address (and you never learn theirs)."),
      h("h3", {}, "Keyboard"),
      h("ul", { class: "keys" }, h("li", {}, h("kbd", {}, "M"), " mute or unmute the microphone"), h("li", {}, h("kbd", {}, "V"), " camera on or off"), h("li", {}, h("kbd", {}, "Esc"), " hang up (decline a ringing call)"), h("li", {}, h("kbd", {}, "Enter"), " answer a ringing call")),
      h("button", { class: "btn danger", "data-action": "sign-out", onclick: () => void this.act(() => api.signOut()) }, "Sign out"),
    );
  }

  /** Settings → "Test my network": what this network lets through to the server, in words. */
  private networkTest(m: Model): HTMLElement {
    const n = m.network;
    const run = async () => {
      if (n.running) return;
      // This run's own state: if the server changes (or the user signs out) meanwhile, the model
      // gets a fresh one and this run's answer, about the old server, is dropped.
      const mine: Model["network"] = { running: true, report: null, error: null };
      m.network = mine;
      this.render();
      try {
        mine.report = await api.testNetwork();
      } catch (e) {
        mine.error = asIpcError(e);
      }
      mine.running = false;
      if (m.network === mine) this.render();
    };
    const r = n.report;
    const state = n.running ? "running" : r ? (r.calls_possible ? "ok" : "blocked") : n.error ? "error" : "idle";
    return h(
      "div",
      { class: "network-test", "data-role": "network-test", "data-state": state },
      h("h3", {}, "Network"),
      h("p", { class: "muted small" }, "Checks what this network lets through to the server in use: its connection and WebSocket, your public address and how your router maps it, IPv4 and IPv6, and the relay over UDP, TCP and TLS. Takes a few seconds; longer where something is blocked, since each check then waits for its answer."),
      h("button", { class: "btn", "data-action": "test-network", disabled: n.running, "aria-busy": String(n.running), onclick: () => void run() }, n.running ? "Testing…" : r || n.error ? "Test again" : "Test my network"),
      r
        ? h("ul", { class: "network-lines", "data-role": "network-lines" },
            ...r.lines.map((line, i) =>
              h("li", i === r.lines.length - 1 ? { class: `verdict ${r.calls_possible ? "ok" : "bad"}`, "data-role": "network-verdict" } : {}, line),
            ),
          )
        : null,
      r ? h("p", { class: "muted small" }, `Tested ${r.server} in ${r.took_secs < 1 ? `${Math.round(r.took_secs * 1000)} ms` : `${r.took_secs.toFixed(1)} s`}.`) : null,
      n.error ? h("p", { class: "warn small", "data-role": "network-error", "data-kind": n.error.kind }, `The test could not run: ${n.error.message}`) : null,
    );
  }

  /** Settings → Sound: the microphone's processing, each part on its own switch. */
  private soundSettings(m: Model): HTMLElement {
    const parts: [keyof AudioProcessingChoice, string, string][] = [
      ["echo_cancellation", "Echo cancellation", "Keeps the other person from hearing their own voice come back from your speakers."],
      ["noise_suppression", "Noise suppression", "Removes steady background noise: fans, hum, hiss."],
      ["auto_gain", "Automatic volume", "Brings a quiet voice up and keeps a loud one from distorting."],
      ["high_pass", "Rumble filter", "Removes low rumble (desk knocks, traffic, wind)."],
    ];
    const toggle = (key: keyof AudioProcessingChoice, on: boolean) => {
      // Built on the last choice sent, not the last one confirmed: two quick clicks both count.
      const choice = { ...(this.soundPending ?? m.app.audio_processing), [key]: on };
      this.soundPending = choice;
      void this.act(
        () => api.setAudioProcessing(choice).finally(() => {
          if (this.soundPending === choice) this.soundPending = null;
        }),
        () => (m.app.audio_processing = choice),
      );
    };
    return h(
      "div",
      { class: "sound", "data-role": "sound-settings" },
      h("h3", {}, "Sound"),
      ...parts.map(([key, label, help]) =>
        h("div", { class: "sound-part" },
          h("label", { class: "check" },
            h("input", { type: "checkbox", "data-setting": key.replace(/_/g, "-"), checked: m.app.audio_processing[key], onchange: (ev: Event) => toggle(key, (ev.target as HTMLInputElement).checked) }),
            ` ${label}`,
          ),
          h("div", { class: "muted small help" }, help),
        ),
      ),
      h("p", { class: "muted small" }, "On by default, and applied at once, in a call too. For music, turn them off: your microphone is then sent as it is. Without echo cancellation on loudspeakers the other person hears their own voice back, and the call's quality says so."),
    );
  }

  private outgoing(m: Model): HTMLElement {
    const c = m.app.call!;
    return h(
      "div",
      { class: "ringing", "data-screen": "outgoing" },
      h("div", { class: "avatar huge pulse" }, initial(c.peer)),
      h("h2", {}, c.peer),
      h("p", { class: "muted", "data-role": "phase" }, c.phase === "ringing" ? "Ringing…" : "Calling…"),
      h("div", { class: "controls" }, h("button", { class: "round danger", "data-action": "cancel", title: "Cancel (Esc)", onclick: () => void this.act(() => api.hangUp()) }, "✕")),
      h("div", { class: "pip" }, this.videos?.local.el ?? null),
      this.errorBox(m),
    );
  }

  private incoming(m: Model): HTMLElement {
    const c = m.app.call!;
    return h(
      "div",
      { class: "ringing incoming", "data-screen": "incoming" },
      h("div", { class: "avatar huge pulse" }, initial(c.peer)),
      h("h2", { "data-role": "caller" }, c.peer),
      h("p", { class: "muted" }, "is calling you"),
      c.stranger ? h("p", { class: "note small", "data-role": "stranger" }, "Not one of your contacts. The call goes through the relay, so neither of you sees the other's address.") : null,
      h("div", { class: "controls" },
        h("button", { class: "round danger", "data-action": "decline", title: "Decline (Esc)", onclick: () => void this.act(() => api.declineCall()) }, "✕"),
        h("button", { class: "round accept", "data-action": "accept", title: "Accept (Enter)", onclick: () => void this.act(() => api.acceptCall()) }, "✆"),
      ),
      this.errorBox(m),
    );
  }

  private inCall(m: Model): HTMLElement {
    const c = m.app.call!;
    const switcher = (id: "camera" | "microphone", label: string) => {
      const el = this.picker(id, label, m);
      el.classList.add("in-call-picker");
      return el;
    };
    return h(
      "div",
      { class: "incall", "data-screen": "in-call", "data-stats": m.statsOpen ? "open" : "closed" },
      h("div", { class: "stage" }, this.videos?.remote.el ?? null),
      h("header", { class: "call-top" },
        h("div", {}, h("div", { class: "name" }, c.peer), h("div", { class: "muted small" }, c.phase === "connected" ? h("span", { "data-role": "timer" }, "0:00") : "Connecting…")),
        c.verification
          ? h("div", { class: "verify small", "data-role": "verification", title: "Read these digits to each other. The same code on both sides means nobody sits between you: the call is encrypted end to end between your two devices." }, "Verification ", h("b", {}, c.verification))
          : null,
        h("div", { class: "grow" }),
        h("span", { class: "quality-reason muted small", "data-role": "quality-reason" }),
        h("button", { class: "quality q-none", "data-role": "quality", "data-action": "stats", "aria-expanded": String(m.statsOpen), "aria-haspopup": "dialog", onclick: () => this.toggleStats(!m.statsOpen) }, "…"),
      ),
      this.stats.el,
      h("div", { class: "pip" }, this.videos?.local.el ?? null),
      this.errorBox(m),
      h("footer", { class: "controls" },
        h("button", { class: `round ${c.mic_muted ? "off" : ""}`, "data-action": "mute", "aria-pressed": String(c.mic_muted), title: c.mic_muted ? "Unmute (M)" : "Mute (M)", onclick: () => void this.act(() => api.setMicMuted(!c.mic_muted)) }, c.mic_muted ? "Mic off" : "Mic"),
        h("button", { class: `round ${c.camera_off ? "off" : ""}`, "data-action": "camera", "aria-pressed": String(c.camera_off), title: c.camera_off ? "Camera on (V)" : "Camera off (V)", onclick: () => void this.act(() => api.setCameraOff(!c.camera_off)) }, c.camera_off ? "Cam off" : "Cam"),
        h("button", { class: "round danger", "data-action": "hang-up", title: "Hang up (Esc)", onclick: () => void this.act(() => api.hangUp()) }, "End"),
        h("div", { class: "switchers" }, switcher("camera", "Camera"), switcher("microphone", "Mic")),
      ),
    );
  }
}
