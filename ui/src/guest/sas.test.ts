import { describe, expect, it } from "vitest";
import { fingerprint, verificationCode } from "./sas";

// The same descriptions as crates/call/src/sas.rs's tests: both implementations give 218 795.
const A = "v=0\r\na=fingerprint:sha-256 AB:CD:EF\r\nm=video 9 X 96\r\n";
const B = "v=0\r\nm=audio 9 X 96\r\na=fingerprint:sha-512 11:22\r\na=fingerprint:SHA-256 12:34:56\r\n";

describe("verification code", () => {
  it("matches the Rust side's code and is the same from both ends", async () => {
    expect(fingerprint(B)).toBe("sha-256 12:34:56");
    expect(await verificationCode(A, B)).toBe("218 795");
    expect(await verificationCode(B, A)).toBe("218 795");
    expect(await verificationCode(A, "v=0\r\na=fingerprint:sha-256 66:66\r\n")).not.toBe("218 795");
    expect(await verificationCode(A, "v=0\r\n")).toBeNull();
  });
});
