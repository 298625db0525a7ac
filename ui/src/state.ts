// The page's model: the Rust side's snapshot plus what events changed since, and the UI's own
// bits (which tab, the last error). `apply` is pure so tests can feed it events.
import type {
  AppStateView,
  CallEnded,
  DeviceList,
  GuestLink,
  HistoryRow,
  IpcError,
  NetworkReport,
  StatsPoint,
  UiEvent,
} from "./bindings";

export type Tab = "call" | "history" | "settings";

export interface Model {
  app: AppStateView;
  /** The latest second of call statistics (its score drives the compact indicator). */
  point: StatsPoint | null;
  /** The statistics screen is open. */
  statsOpen: boolean;
  micLevel: number | null;
  history: HistoryRow[];
  devices: DeviceList | null;
  /** The last call's end, shown until the user moves on. */
  lastEnded: CallEnded | null;
  error: IpcError | null;
  tab: Tab;
  /** Contact picked in the list (the pre-join screen calls them). */
  selected: string | null;
  busy: boolean;
  /** The guest link made with "Invite by link", until it is revoked or dismissed. */
  guestLink: GuestLink | null;
  /** Settings → "Test my network": running, its last report, or why it could not run. */
  network: { running: boolean; report: NetworkReport | null; error: IpcError | null };
}

export function initialModel(app: AppStateView): Model {
  return {
    app,
    point: null,
    statsOpen: false,
    micLevel: null,
    history: [],
    devices: null,
    lastEnded: null,
    error: null,
    tab: "call",
    selected: app.contacts[0]?.username ?? null,
    busy: false,
    guestLink: null,
    network: { running: false, report: null, error: null },
  };
}

/** Applies one event; returns whether the screen's structure changed (else only live values). */
export function apply(m: Model, e: UiEvent): "render" | "live" {
  switch (e.type) {
    case "session":
      // A report is about one server: another server (or signing out) makes it stale.
      if (e.server_url !== m.app.server_url || e.session.state !== "signed_in") {
        m.network = { running: false, report: null, error: null };
      }
      m.app.session = e.session;
      m.app.server_url = e.server_url;
      m.app.embedded = e.embedded;
      return "render";
    case "connection":
      m.app.online = e.online;
      return "render";
    case "contacts":
      m.app.contacts = e.contacts;
      if (!m.selected || !e.contacts.some((c) => c.username === m.selected)) {
        m.selected = e.contacts[0]?.username ?? null;
      }
      return "render";
    case "privacy":
      m.app.anyone_may_call = e.anyone_may_call;
      return "render";
    case "call":
      m.app.call = e.call;
      m.lastEnded = null;
      return "render";
    case "ended":
      m.app.call = null;
      m.point = null;
      m.statsOpen = false;
      m.lastEnded = e.ended;
      if (e.ended.failed) m.error = { kind: "internal", message: e.ended.message };
      return "render";
    case "stats":
      m.point = e.point;
      return "live";
    case "mic_level":
      m.micLevel = e.dbfs;
      return "live";
    case "error":
      m.error = e.error;
      return "render";
  }
}

export function formatDuration(secs: number): string {
  const s = Math.max(0, Math.floor(secs));
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(h ? 2 : 1, "0");
  const ss = String(s % 60).padStart(2, "0");
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

export const OUTCOME_TEXT: Record<HistoryRow["outcome"], string> = {
  answered: "Answered",
  missed: "Missed",
  declined: "Declined",
  busy: "Busy",
  no_answer: "No answer",
  failed: "Failed",
  in_progress: "In progress",
};
