// Typed calls into the Rust side. Every command's argument and result types come from
// bindings.ts (generated from src-tauri/src/ipc.rs); errors arrive as IpcError {kind, message}.
import { Channel, invoke } from "@tauri-apps/api/core";
import type {
  AppStateView,
  AudioProcessingChoice,
  DeviceChoice,
  DeviceList,
  ExportFormat,
  ExportResult,
  FrameStats,
  GuestLink,
  HistoryRow,
  IpcError,
  NetworkReport,
  StatsPoint,
  UiEvent,
} from "./bindings";

export function isIpcError(e: unknown): e is IpcError {
  return typeof e === "object" && e !== null && "kind" in e && "message" in e;
}

/** Turns whatever a rejected invoke gave into an IpcError. */
export function asIpcError(e: unknown): IpcError {
  if (isIpcError(e)) return e;
  return { kind: "internal", message: e instanceof Error ? e.message : String(e) };
}

export const api = {
  appState: () => invoke<AppStateView>("app_state"),
  subscribe: (onEvent: (e: UiEvent) => void) => {
    const events = new Channel<UiEvent>();
    events.onmessage = onEvent;
    return invoke<null>("subscribe", { events });
  },
  signIn: (username: string, password: string, register: boolean) =>
    invoke<null>("sign_in", { username, password, register }),
  signOut: () => invoke<null>("sign_out"),
  setServer: (url: string | null) => invoke<null>("set_server", { url }),
  addContact: (username: string) => invoke<null>("add_contact", { username }),
  removeContact: (username: string) => invoke<null>("remove_contact", { username }),
  setPrivacy: (anyoneMayCall: boolean) => invoke<null>("set_privacy", { anyoneMayCall }),
  createGuestLink: () => invoke<GuestLink>("create_guest_link"),
  revokeGuestLink: (token: string) => invoke<null>("revoke_guest_link", { token }),
  startCall: (peer: string) => invoke<null>("start_call", { peer }),
  acceptCall: () => invoke<null>("accept_call"),
  declineCall: () => invoke<null>("decline_call"),
  hangUp: () => invoke<null>("hang_up"),
  setMicMuted: (muted: boolean) => invoke<null>("set_mic_muted", { muted }),
  setCameraOff: (off: boolean) => invoke<null>("set_camera_off", { off }),
  listDevices: () => invoke<DeviceList>("list_devices"),
  selectDevices: (choice: DeviceChoice) => invoke<null>("select_devices", { choice }),
  setAudioProcessing: (choice: AudioProcessingChoice) => invoke<null>("set_audio_processing", { choice }),
  startPreview: () => invoke<null>("start_preview"),
  stopPreview: () => invoke<null>("stop_preview"),
  callHistory: () => invoke<HistoryRow[]>("call_history"),
  frameStats: () => invoke<FrameStats>("frame_stats"),
  callStats: () => invoke<StatsPoint[]>("call_stats"),
  exportStats: (format: ExportFormat) => invoke<ExportResult>("export_stats", { format }),
  testNetwork: () => invoke<NetworkReport>("test_network"),
};
