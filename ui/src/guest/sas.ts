// The verification code, as crates/call/src/sas.rs computes it (keep the two in step): six
// digits from SHA-256 of the two DTLS fingerprints of the call, in sorted order.

/** The SDP's DTLS fingerprint, normalised (`sha-256 AB:CD:…`; the SHA-256 one if several). */
export function fingerprint(sdp: string): string | null {
  const all = sdp
    .split(/\r?\n/)
    .filter((l) => l.startsWith("a=fingerprint:"))
    .map((l) => l.slice("a=fingerprint:".length).trim().split(/\s+/))
    .filter((p) => p.length >= 2)
    .map(([alg, hex]) => [alg.toLowerCase(), hex.toUpperCase()] as const);
  const pick = all.find(([alg]) => alg === "sha-256") ?? all[0];
  return pick ? `${pick[0]} ${pick[1]}` : null;
}

/** `"123 456"` for a call with these local and remote descriptions, or null. */
export async function verificationCode(localSdp: string, remoteSdp: string): Promise<string | null> {
  const a = fingerprint(localSdp);
  const b = fingerprint(remoteSdp);
  if (!a || !b) return null;
  const [lo, hi] = a <= b ? [a, b] : [b, a];
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(`${lo}\n${hi}`)));
  const n = ((d[0] * 2 ** 24) + (d[1] << 16) + (d[2] << 8) + d[3]) % 1_000_000;
  return `${String(Math.floor(n / 1000)).padStart(3, "0")} ${String(n % 1000).padStart(3, "0")}`;
}
