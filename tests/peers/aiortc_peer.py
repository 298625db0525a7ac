#!/usr/bin/env python3
"""A third-party WebRTC peer for Dyad's interop tests: aiortc speaking docs/protocol.md.

It signs in to a Dyad signalling server, then calls a user (--call NAME) or answers the first
call (--answer). It sends Dyad's test pattern (frames that carry their frame number in the top
band, the same 24 x 4 block code as crates/media/src/testpattern.rs) and a sine tone, and reads
the frame numbers and the tone frequency out of what it receives. One JSON object per line on
stdout: {"event": ...} while the call runs, then {"event": "summary", ...}.

Loopback or a test namespace only: no public STUN server (aiortc's default when iceServers is
None), and aioice's host address list is replaced by --host-ip (default 127.0.0.1, which aioice
skips when it gathers by itself).
"""

import argparse
import asyncio
import fractions
import json
import math
import sys
import time
import urllib.error
import urllib.request
import uuid

import aioice.ice
import av
import numpy as np
import websockets
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.sdp import candidate_from_sdp

# Counted for the summary: generic NACKs aiortc sent (its receiver asking for our packets) and
# packets it sent again (its sender answering ours).
NACKS = {"sent": 0, "retransmitted": 0}
_send_nack = RTCRtpReceiver._send_rtcp_nack
_retransmit = RTCRtpSender._retransmit


async def _counting_nack(self, media_ssrc, lost):
    NACKS["sent"] += 1
    await _send_nack(self, media_ssrc, lost)


async def _counting_retransmit(self, sequence_number):
    NACKS["retransmitted"] += 1
    await _retransmit(self, sequence_number)


RTCRtpReceiver._send_rtcp_nack = _counting_nack
RTCRtpSender._retransmit = _counting_retransmit

COLS, ROWS, BITS = 24, 4, 96
BLACK, WHITE = 16, 235
TIME_MASK = (1 << 48) - 1


def emit(**fields):
    print(json.dumps(fields), flush=True)


def crc16(data: bytes) -> int:
    crc = 0xFFFF
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def block_size(width: int, height: int) -> int:
    natural = width // COLS
    aligned = natural // 8 * 8 if natural >= 8 else natural // 2 * 2
    return max(min(aligned, height // (ROWS * 2) // 2 * 2), 4)


def marker_bits(frame: int, capture_us: int) -> int:
    payload = (frame << 48) | (capture_us & TIME_MASK)
    return (payload << 16) | crc16(payload.to_bytes(10, "big"))


def pattern(n: int, width: int, height: int) -> np.ndarray:
    """Test-pattern frame n as I420 (a moving box under the marker band)."""
    y = np.full((height, width), 90, np.uint8)
    box = 64
    x0 = (n * 7) % max(width - box, 1)
    y0 = height // 2 + int((height // 4) * math.sin(n / 15))
    y[max(y0 - box // 2, 0) : y0 + box // 2, x0 : x0 + box] = 200
    u = np.full((height // 2, width // 2), 128, np.uint8)
    v = np.full((height // 2, width // 2), 128, np.uint8)
    u[:, : width // 4] = 90
    block = block_size(width, height)
    bits = marker_bits(n, time.time_ns() // 1000)
    band = np.full((block * ROWS, width), BLACK, np.uint8)
    for bit in range(BITS):
        if (bits >> (BITS - 1 - bit)) & 1:
            r, c = divmod(bit, COLS)
            band[r * block : (r + 1) * block, c * block : (c + 1) * block] = WHITE
    y[: block * ROWS] = band
    u[: block * ROWS // 2] = 128
    v[: block * ROWS // 2] = 128
    return np.concatenate([y, u.reshape(-1, width), v.reshape(-1, width)])


def read_marker(y: np.ndarray):
    """The frame number in a decoded luma plane, or None (no marker / checksum mismatch)."""
    height, width = y.shape
    block = block_size(width, height)
    inset = block // 4
    span = max(block - 2 * inset, 1)
    bits = 0
    for bit in range(BITS):
        r, c = divmod(bit, COLS)
        x0, y0 = c * block + inset, r * block + inset
        mean = int(y[y0 : y0 + span, x0 : x0 + span].mean())
        bits = (bits << 1) | (1 if mean > (BLACK + WHITE) // 2 else 0)
    payload, crc = bits >> 16, bits & 0xFFFF
    if crc16(payload.to_bytes(10, "big")) != crc:
        return None
    return payload >> 48


class PatternTrack(MediaStreamTrack):
    kind = "video"

    def __init__(self, width=640, height=480, fps=30):
        super().__init__()
        self.size, self.fps, self.n, self.start = (width, height), fps, 0, None

    async def recv(self):
        if self.start is None:
            self.start = time.monotonic()
        due = self.start + self.n / self.fps
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        frame = av.VideoFrame.from_ndarray(pattern(self.n, *self.size), format="yuv420p")
        frame.pts, frame.time_base = self.n * 3000, fractions.Fraction(1, 90000)
        self.n += 1
        return frame


class ToneTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self, hz: float, rate=48000, ptime=0.02):
        super().__init__()
        self.hz, self.rate, self.samples, self.sent, self.start = hz, rate, int(rate * ptime), 0, None

    async def recv(self):
        if self.start is None:
            self.start = time.monotonic()
        due = self.start + self.sent / self.rate
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        t = (np.arange(self.samples) + self.sent) / self.rate
        pcm = (0.3 * 32767 * np.sin(2 * math.pi * self.hz * t)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts = self.rate, self.sent
        frame.time_base = fractions.Fraction(1, self.rate)
        self.sent += self.samples
        return frame


class Received:
    def __init__(self):
        self.frames, self.unreadable, self.audio, self.audio_rate = [], 0, [], 48000
        self.answered_at = None

    async def video(self, track):
        while True:
            try:
                frame = await track.recv()
            except Exception:
                return
            planes = frame.to_ndarray(format="yuv420p")
            n = read_marker(planes[: frame.height])
            if n is None:
                self.unreadable += 1
            else:
                if not self.frames:
                    after = (time.monotonic() - self.answered_at) * 1000 if self.answered_at else None
                    emit(event="first_frame", frame=n, width=frame.width, height=frame.height, ms_after_answer=after)
                self.frames.append(n)

    async def audio_in(self, track):
        while True:
            try:
                frame = await track.recv()
            except Exception:
                return
            pcm = frame.to_ndarray().reshape(-1, len(frame.layout.channels))[:, 0]
            self.audio_rate = frame.sample_rate
            self.audio.append(pcm.astype(np.float64))
            del self.audio[:-100]  # about the last 2 s

    def tone(self):
        """(Hz of the strongest component, RMS dBFS) over the last second received."""
        if not self.audio:
            return None, None
        x = np.concatenate(self.audio)[-self.audio_rate :]
        spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
        hz = float(np.argmax(spectrum[1:]) + 1) * self.audio_rate / len(x)
        rms = math.sqrt(float(np.mean(x * x))) or 1e-9
        return hz, 20 * math.log10(rms / 32768)


def account(server: str, user: str, password: str) -> str:
    body = json.dumps({"username": user, "password": password}).encode()
    for path in ("/v1/register", "/v1/login"):
        req = urllib.request.Request(
            server + path, body, {"content-type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return json.load(r)["token"]
        except urllib.error.HTTPError as e:
            if e.code != 409:
                raise
    raise RuntimeError("no token")


async def run(args) -> int:
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [args.host_ip]
    token = account(args.server, args.user, args.password)
    ws_url = args.server.replace("http", "ws", 1) + f"/v1/ws?device=aiortc&token={token}"
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    got = Received()
    pc.addTrack(ToneTrack(args.tone))
    pc.addTrack(PatternTrack())
    tasks = []

    @pc.on("track")
    def on_track(track):
        tasks.append(asyncio.ensure_future(got.video(track) if track.kind == "video" else got.audio_in(track)))

    @pc.on("connectionstatechange")
    def on_state():
        emit(event="state", state=pc.connectionState)

    ended = None
    call_id = None
    async with websockets.connect(ws_url, max_size=2**20) as ws:

        async def send(**m):
            await ws.send(json.dumps(m))

        async def pinger(every):
            while True:
                await asyncio.sleep(every)
                await send(type="ping")

        async def hang_up_later():
            await asyncio.sleep(args.seconds)
            await send(type="hangup", call_id=call_id, reason="user_hangup", ref="bye")

        welcome = json.loads(await ws.recv())
        assert welcome["type"] == "welcome", welcome
        tasks.append(asyncio.ensure_future(pinger(welcome["ping_interval_ms"] / 1000)))
        emit(event="signed_in", user=welcome["username"])
        if args.call:
            call_id = str(uuid.uuid4())
            await pc.setLocalDescription(await pc.createOffer())
            await send(type="invite", call_id=call_id, to=args.call, sdp=pc.localDescription.sdp, lifetime_ms=30000)
        async for raw in ws:
            m = json.loads(raw)
            t = m.get("type")
            if t == "invite" and args.answer and call_id is None:
                call_id = m["call_id"]
                await send(type="ringing", call_id=call_id)
                await pc.setRemoteDescription(RTCSessionDescription(m["sdp"], "offer"))
                await pc.setLocalDescription(await pc.createAnswer())
                await send(type="answer", call_id=call_id, sdp=pc.localDescription.sdp)
                got.answered_at = time.monotonic()
                emit(event="answered", call_id=call_id)
                if args.seconds > 0:
                    tasks.append(asyncio.ensure_future(hang_up_later()))
            elif t == "answer" and m.get("call_id") == call_id:
                await send(type="select_answer", call_id=call_id, device=m["device"])
                got.answered_at = time.monotonic()
                await pc.setRemoteDescription(RTCSessionDescription(m["sdp"], "answer"))
                emit(event="answered", call_id=call_id)
                if args.seconds > 0:
                    tasks.append(asyncio.ensure_future(hang_up_later()))
            elif t == "candidates" and m.get("call_id") == call_id:
                for c in m["candidates"]:
                    line = c["candidate"].removeprefix("candidate:")
                    if not line:
                        continue
                    cand = candidate_from_sdp(line)
                    cand.sdpMid, cand.sdpMLineIndex = c.get("sdp_mid"), c.get("sdp_mline_index")
                    emit(event="remote_candidate", sdp_mid=cand.sdpMid, mline=cand.sdpMLineIndex)
                    await pc.addIceCandidate(cand)
            elif t == "ack" and m.get("ref") == "bye":
                ended = {"reason": "user_hangup", "by": welcome["username"]}
                break
            elif t == "call_ended" and m.get("call_id") == call_id:
                ended = {"reason": m.get("reason"), "by": m.get("by")}
                break
            elif t == "error":
                emit(event="error", code=m.get("code"), message=m.get("message"))
    hz, dbfs = got.tone()
    frames = got.frames
    emit(
        event="summary",
        ended=ended,
        frames_decoded=len(frames),
        frames_unreadable=got.unreadable,
        first_frame=frames[0] if frames else None,
        last_frame=frames[-1] if frames else None,
        frames_in_order=all(b > a for a, b in zip(frames, frames[1:])),
        audio_hz=hz,
        audio_dbfs=dbfs,
        nacks_sent=NACKS["sent"],
        retransmitted=NACKS["retransmitted"],
    )
    for task in tasks:
        task.cancel()
    await pc.close()
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--server", required=True, help="http://host:port of dyad serve")
    p.add_argument("--user", default="aiortc")
    p.add_argument("--password", default="password of aiortc")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--call", metavar="USER", help="call this user")
    g.add_argument("--answer", action="store_true", help="answer the first call")
    p.add_argument("--seconds", type=float, default=0, help="hang up this long after the answer (0: wait)")
    p.add_argument("--tone", type=float, default=660.0, help="Hz of the tone we send")
    p.add_argument("--timeout", type=float, default=90.0, help="give up after this long")
    p.add_argument("--host-ip", default="127.0.0.1", help="the one address aiortc gathers")
    args = p.parse_args()
    try:
        sys.exit(asyncio.run(asyncio.wait_for(run(args), args.timeout)))
    except asyncio.TimeoutError:
        emit(event="timeout")
        sys.exit(2)


if __name__ == "__main__":
    main()
