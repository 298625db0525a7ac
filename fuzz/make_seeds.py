#!/usr/bin/env python3
"""Writes the seed corpus, fuzz/corpus/<target>/seed-*: a few real inputs per target (the
aiortc offer from crates/call/tests/fixtures, real STUN/TURN requests signed the way the
embedded server checks them, VP8 RTP packets, compound RTCP). Run from fuzz/."""
import base64, hashlib, hmac, json, os, struct

FIX = "../crates/call/tests/fixtures/aiortc-1.16-offer.sdp"
OFFER = open(FIX, encoding="utf-8").read()


def put(target, name, data):
    d = f"corpus/{target}"
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(f"{d}/seed-{name}", "wb") as f:
        f.write(data)


def packets(items):
    """fuzz/src/lib.rs's Packets: u16 big-endian length, then the bytes."""
    return b"".join(struct.pack(">H", len(p)) + p for p in items)


# --- signalling
cands = [l[2:] for l in OFFER.splitlines() if l.startswith("a=candidate:")]
put("signalling", "invite", json.dumps({"type": "invite", "ref": "r1", "call_id": "call-0001",
                                        "to": "bob", "sdp": OFFER, "lifetime_ms": 30000}))
put("signalling", "candidates", json.dumps({"type": "candidates", "call_id": "call-0001",
    "candidates": [{"candidate": c, "sdp_mid": "0", "sdp_mline_index": 0} for c in cands[:3]],
    "end_of_candidates": True}))
put("signalling", "negotiate", json.dumps({"type": "negotiate", "call_id": "call-0001",
    "description": {"type": "offer", "sdp": "v=0\r\n"}}))
put("signalling", "hangup", '{"type":"hangup","call_id":"call-0001","reason":"user_hangup"}')
put("signalling", "select-answer", '{"type":"select_answer","call_id":"call-0001","device":"laptop"}')
put("signalling", "welcome", json.dumps({"type": "welcome", "protocol_version": 1,
    "username": "alice", "device": "laptop", "ping_interval_ms": 20000, "idle_timeout_ms": 60000}))
put("signalling", "server-invite", json.dumps({"type": "invite", "call_id": "call-0001",
    "from": "alice", "device": "laptop", "sdp": "v=0\r\n", "lifetime_ms": 60000, "glare": False}))
put("signalling", "call-ended", '{"type":"call_ended","call_id":"call-0001","reason":"busy","by":"bob"}')
put("signalling", "error", '{"type":"error","code":"unknown_type","message":"x","ref":"r1"}')

# --- http_bodies
put("http_bodies", "credentials", '{"username":"alice","password":"correct horse"}')
put("http_bodies", "invite-request", '{"ttl_secs":3600}')
put("http_bodies", "guest", '{"invite":"abcdefghijklmnopqrstuvwxyz012345"}')
body = json.dumps({"token": "tok", "username": "alice", "expires_at": 1800000000})
put("http_bodies", "response-session",
    f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n{body}")
ice = json.dumps({"ice_servers": [{"urls": ["stun:127.0.0.1:3478"]}, {"urls": [
    "turn:127.0.0.1:3478?transport=udp"], "username": "1800000000:alice", "credential": "x="}],
    "ttl_secs": 600})
put("http_bodies", "response-ice", f"HTTP/1.1 200 OK\r\n\r\n{ice}")
hist = json.dumps([{"call_id": "call-0001", "caller": "alice", "callee": "bob",
    "started_at_ms": 1, "answered_at_ms": 2, "ended_at_ms": 3, "end_reason": "user_hangup",
    "ended_by": "bob"}])
put("http_bodies", "response-history", f"HTTP/1.1 200 OK\r\n\r\n{hist}")
put("http_bodies", "response-error",
    'HTTP/1.1 429 Too Many Requests\r\nretry-after: 3\r\n\r\n{"code":"rate_limited","message":"slow down"}')

# --- sdp, sdp_answer, ice_candidate
put("sdp", "aiortc-offer", OFFER)
put("sdp_answer", "aiortc-offer", OFFER)
for i, c in enumerate(cands[:2]):
    put("ice_candidate", f"aiortc-{i}", c)
put("ice_candidate", "host", "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host")
put("ice_candidate", "srflx", "candidate:2 1 udp 1694498815 192.0.2.1 50001 typ srflx raddr 10.0.0.2 rport 50001")
put("ice_candidate", "relay", "candidate:3 1 udp 16777215 192.0.2.9 49160 typ relay raddr 192.0.2.1 rport 50001")
put("ice_candidate", "tcp", "candidate:4 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active")

# --- rtp_assembler: VP8 (PT 96, SSRC 11) with the transport-cc extension as id 3, Opus (111, 12)
TWCC_ID = 3


def rtp(pt, seq, ts, ssrc, marker, payload, tseq):
    ext = struct.pack(">BH", (TWCC_ID << 4) | 1, tseq) + b"\x00"
    head = struct.pack(">BBHII", 0x90, (0x80 if marker else 0) | pt, seq, ts, ssrc)
    return head + struct.pack(">HH", 0xBEDE, len(ext) // 4) + ext + payload


def vp8(start, pid, data):
    # X=1, S=start, PID=0; I=1; 15-bit PictureID
    return bytes([0x80 | (0x10 if start else 0), 0x80]) + struct.pack(">H", 0x8000 | pid) + data


key = bytes([0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A, 0x80, 0x02, 0xE0, 0x01]) + bytes(300)
inter = bytes([0x11, 0x02, 0x00]) + bytes(200)
video = [
    rtp(96, 100, 3000, 11, False, vp8(True, 1, key[:160]), 1),
    rtp(96, 101, 3000, 11, True, vp8(False, 1, key[160:]), 2),
    rtp(96, 102, 6000, 11, True, vp8(True, 2, inter), 3),
    rtp(96, 104, 9000, 11, True, vp8(True, 3, inter), 5),  # 103 lost: a NACK
]
audio = [rtp(111, 7, 960 * i, 12, False, bytes(60), 10 + i) for i in range(2)]
put("rtp_assembler", "vp8-frames", bytes([TWCC_ID]) + packets([bytes([20]) + p for p in video]))
put("rtp_assembler", "audio-and-video", bytes([TWCC_ID]) + packets(
    [bytes([21]) + audio[0], bytes([10]) + video[0], bytes([10]) + video[1], bytes([21]) + audio[1]]))

# --- rtcp (RFC 3550, 4585, draft-holmer TWCC, REMB)
def rtcp(fmt_or_count, pt, body):
    return struct.pack(">BBH", 0x80 | fmt_or_count, pt, (len(body) + 4) // 4 - 1) + body


block = struct.pack(">IIIIII", 1, (10 << 24) | 3, 200, 5, 0x12345678, 655)
rr = rtcp(1, 201, struct.pack(">I", 11) + block)
sr = rtcp(1, 200, struct.pack(">IIIIII", 11, 0xE0000000, 0, 3000, 10, 1000) + block)
pli = rtcp(1, 206, struct.pack(">II", 11, 1))
fir = rtcp(4, 206, struct.pack(">III", 11, 0, 1) + bytes([7, 0, 0, 0]))
nack = rtcp(1, 205, struct.pack(">IIHH", 11, 1, 3, 0b101))
# TWCC: base seq 0, 4 packets, reference time 1, fb count 0; one run-length chunk of 4 "small
# delta" (symbol 1), four 1-byte deltas, padded to 32 bits.
twcc_body = struct.pack(">IIHHI", 11, 1, 0, 4, (1 << 8) | 0) + struct.pack(">H", (1 << 13) | 4) \
    + bytes([4, 8, 12, 16]) + bytes(2)
twcc = rtcp(15, 205, twcc_body)
remb = rtcp(15, 206, struct.pack(">II", 11, 0) + b"REMB" + bytes([1, (3 << 2) | 0, 0x40, 0x00])
            + struct.pack(">I", 1))
put("rtcp", "reports", packets([bytes([50]) + rr + sr]))
put("rtcp", "feedback", packets([bytes([20]) + pli, bytes([20]) + nack, bytes([20]) + twcc,
                                 bytes([20]) + remb, bytes([20]) + fir]))
put("rtcp", "compound", packets([bytes([100]) + rr + twcc + nack]))

# --- turn: STUN/TURN (RFC 5389, 5766) signed as crates/server/src/fuzzing.rs's server checks
SECRET, REALM, NONCE = b"fuzz-secret", "dyad.fuzz", "fuzz-nonce-0123456789"
USER = "1900000000:alice"
PASSWORD = base64.b64encode(hmac.new(SECRET, USER.encode(), hashlib.sha1).digest()).decode()
KEY = hashlib.md5(f"{USER}:{REALM}:{PASSWORD}".encode()).digest()


def attr(t, v):
    return struct.pack(">HH", t, len(v)) + v + bytes((4 - len(v) % 4) % 4)


def stun(method_class, attrs, txid, integrity=False):
    body = b"".join(attrs)
    if integrity:
        head = struct.pack(">HHI", method_class, len(body) + 24, 0x2112A442) + txid
        mac = hmac.new(KEY, head + body, hashlib.sha1).digest()
        body += attr(0x0008, mac)
    return struct.pack(">HHI", method_class, len(body), 0x2112A442) + txid + body


def xor_addr(ip, port):
    x = bytes(a ^ b for a, b in zip(bytes(ip), struct.pack(">I", 0x2112A442)))
    return struct.pack(">BBH", 0, 1, port ^ 0x2112) + x


auth = [attr(0x0006, USER.encode()), attr(0x0014, REALM.encode()), attr(0x0015, NONCE.encode())]
peer = attr(0x0012, xor_addr([127, 0, 0, 1], 50000))
tx = lambda n: bytes([n]) * 12
binding = stun(0x0001, [], tx(1))
alloc_noauth = stun(0x0003, [attr(0x0019, bytes([17, 0, 0, 0]))], tx(2))
alloc = stun(0x0003, [attr(0x0019, bytes([17, 0, 0, 0]))] + auth, tx(3), True)
perm = stun(0x0008, [peer] + auth, tx(4), True)
chan = stun(0x0009, [attr(0x000C, struct.pack(">HH", 0x4000, 0)), peer] + auth, tx(5), True)
send = stun(0x0016, [peer, attr(0x0013, b"hello")], tx(6))
chdata = struct.pack(">HH", 0x4000, 5) + b"hello" + bytes(3)
refresh = stun(0x0004, [attr(0x000D, struct.pack(">I", 0))] + auth, tx(7), True)
put("turn", "binding", packets([binding]))
put("turn", "allocate-401", packets([alloc_noauth]))
put("turn", "session", packets([alloc, perm, chan, send, chdata, refresh]))
put("turn", "credentials", f"{USER} {PASSWORD}\n".encode() + packets([alloc]))
