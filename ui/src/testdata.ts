// Statistics points for the UI tests: a healthy 640×480 call, changed per test.
import type { InboundRtp, OutboundRtp, StatsPoint } from "./bindings";

const out = (kind: string): OutboundRtp => ({
  kind, ssrc: 1, codec: kind === "video" ? "video/VP8" : "audio/opus", packetsSent: 0, retransmittedPacketsSent: 0, bytesSent: 0, bitrate: 0, targetBitrate: 0,
  captureFramesPerSecond: 0, framesPerSecond: 0, framesEncoded: 0, keyFramesEncoded: 0, framesDroppedByEncoder: 0, frameWidth: 0,
  frameHeight: 0, totalEncodeTime: 0, encodeTimePerFrameMs: 0, nackCount: 0, pliCount: 0, firCount: 0, qualityLimitationReason: "none", audioLevelDbfs: -100,
});
const inb = (kind: string): InboundRtp => ({
  kind, codec: kind === "video" ? "video/VP8" : "audio/opus", packetsReceived: 0, packetsUnknownPayloadType: 0, packetsLost: 0, lossPercent: 0, bytesReceived: 0, bitrate: 0,
  jitter: 0, framesReceived: 0, framesDecoded: 0, framesDropped: 0, framesPerSecond: 0, frameWidth: 0, frameHeight: 0, totalDecodeTime: 0,
  decodeTimePerFrameMs: 0, jitterBufferDelay: 0, jitterBufferEmittedCount: 0, freezeCount: 0, totalFreezesDuration: 0, nackCount: 0, pliCount: 0,
  concealedFrames: 0, fecRecoveredFrames: 0, jitterBufferTargetDelay: 0, totalSamplesReceived: 0, concealedSamples: 0, concealmentEvents: 0,
  insertedSamplesForDeceleration: 0, removedSamplesForAcceleration: 0, audioLevelDbfs: -100, lastMarkerFrame: null, glassToGlassMs: null,
});

/** One second of a healthy 640×480 call at `secs`, with `f` applied. */
export function point(secs: number, f: (p: StatsPoint) => void = () => {}): StatsPoint {
  const p: StatsPoint = {
    snapshot: {
      timestamp: 1_764_470_000_000 + secs * 1000, callSeconds: secs,
      outboundVideo: { ...out("video"), bitrate: 800_000 + secs * 1000, targetBitrate: 900_000, framesPerSecond: 30, captureFramesPerSecond: 30, frameWidth: 640, frameHeight: 480, nackCount: secs, encodeTimePerFrameMs: 3.2 },
      outboundAudio: { ...out("audio"), bitrate: 32_000, targetBitrate: 32_000, audioLevelDbfs: -20 },
      inboundVideo: { ...inb("video"), bitrate: 780_000, framesPerSecond: 29, frameWidth: 640, frameHeight: 480, jitter: 0.004, jitterBufferDelay: 2, jitterBufferEmittedCount: 100, glassToGlassMs: 70 + secs },
      inboundAudio: { ...inb("audio"), bitrate: 31_000, framesPerSecond: 50, jitter: 0.002, audioLevelDbfs: -22, jitterBufferDelay: 24_000 * 0.042, jitterBufferEmittedCount: 24_000, jitterBufferTargetDelay: 0.038 },
      remoteInboundVideo: { kind: "video", roundTripTime: 0.02, fractionLost: 0, packetsLost: 0, jitter: 0.003 },
      remoteInboundAudio: { kind: "audio", roundTripTime: 0.021, fractionLost: 0, packetsLost: 0, jitter: 0.002 },
      candidatePair: { localCandidateType: "host", remoteCandidateType: "host", localAddress: "127.0.0.1:5000", remoteAddress: "127.0.0.1:5001", protocol: "udp", currentRoundTripTime: 0.001 },
      transport: { dtlsState: "connected", tlsVersion: "DTLS 1.2", srtpCipher: "AEAD_AES_128_GCM" },
      estimate: { availableOutgoingBitrate: 1_200_000, delayBased: 1_300_000, lossBased: 1_200_000, acknowledged: null, usage: "normal" },
      avSync: { offsetMs: 8.4, audioDelayMs: 0, videoDelayMs: 0 },
      events: [],
    },
    score: { score: 93, band: "good", reason: "none", reasonText: "", audioIn: 93, audioOut: 93, videoIn: 100, videoOut: 100, mos: 4.4, oneWayDelayMs: 54 },
    rates: { videoPacketsSent: 100, videoPacketsReceived: 98, nacksReceived: 0, nacksSent: 0, plisReceived: 0, plisSent: 0, concealmentPercent: 1.5, remoteVideoLost: 0 },
    path: "direct (host) over UDP",
  };
  f(p);
  return p;
}
