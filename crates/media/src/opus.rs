//! Opus (RFC 6716) for 20 ms frames of 48 kHz audio, over the system libopus.
//!
//! The encoder is set up for calls: VoIP mode, in-band FEC (RFC 6716 §2.1.7) against an expected
//! loss rate, optional DTX. The decoder takes packets from the network, so it bounds their size
//! before libopus sees them and turns every refusal into a [`MediaError`]; it also recovers a lost
//! frame from the FEC data of the next packet ([`OpusDecoder::decode_fec`]) or conceals it
//! ([`OpusDecoder::conceal`]).

// `::opus` is the libopus binding crate; this module shares its name.
use ::opus::{Application, Bitrate, Channels, ErrorCode};

use crate::audio::check_frame;
use crate::error::{MediaError, Result};
use crate::frame::{check_channels, AudioFrame, AUDIO_FRAME_SAMPLES, AUDIO_SAMPLE_RATE};

/// Largest packet we produce or accept (one MTU; a 20 ms Opus frame is at most 1275 bytes).
pub const MAX_PACKET_BYTES: usize = 1500;
/// Lowest bitrate we accept, bits per second.
pub const MIN_BITRATE_BPS: u32 = 6_000;
/// Highest bitrate we accept, bits per second (Opus's maximum).
pub const MAX_BITRATE_BPS: u32 = 510_000;
/// Packets of at most this many bytes are DTX "nothing new" packets while DTX is on.
const DTX_PACKET_BYTES: usize = 2;
/// Samples per channel in the longest Opus packet (120 ms), the decode buffer size.
const MAX_PACKET_SAMPLES: usize = AUDIO_FRAME_SAMPLES * 6;

/// Encoder settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusConfig {
    /// 1 (mono) or 2 (stereo).
    pub channels: u16,
    /// Target bitrate, 6 000 to 510 000 bits per second.
    pub bitrate_bps: u32,
    /// Add in-band forward error correction (the previous frame at low rate) to each packet.
    pub fec: bool,
    /// Discontinuous transmission: send (almost) nothing during silence.
    pub dtx: bool,
    /// Loss rate the FEC is sized for, 0 to 100 %.
    pub expected_loss_pct: u8,
    /// CPU effort, 0 (least) to 10 (best quality).
    pub complexity: u8,
}

impl Default for OpusConfig {
    fn default() -> Self {
        Self {
            channels: 1,
            bitrate_bps: 32_000,
            fec: true,
            dtx: false,
            expected_loss_pct: 10,
            complexity: 9,
        }
    }
}

fn check_bitrate(bps: u32) -> Result<()> {
    if (MIN_BITRATE_BPS..=MAX_BITRATE_BPS).contains(&bps) {
        Ok(())
    } else {
        Err(MediaError::Config(format!(
            "Opus bitrate {bps} bit/s: must be {MIN_BITRATE_BPS} to {MAX_BITRATE_BPS}"
        )))
    }
}

fn check_loss(pct: u8) -> Result<()> {
    if pct <= 100 {
        Ok(())
    } else {
        Err(MediaError::Config(format!(
            "expected loss {pct} %: must be 0 to 100"
        )))
    }
}

impl OpusConfig {
    /// Checks every field against its range.
    pub fn validate(&self) -> Result<()> {
        check_channels(self.channels)?;
        check_bitrate(self.bitrate_bps)?;
        check_loss(self.expected_loss_pct)?;
        if self.complexity > 10 {
            return Err(MediaError::Config(format!(
                "Opus complexity {}: must be 0 to 10",
                self.complexity
            )));
        }
        Ok(())
    }
}

/// One encoded 20 ms frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedAudio {
    /// The Opus packet.
    pub data: Vec<u8>,
    /// Capture time of the frame it encodes, microseconds on the media clock.
    pub capture_us: u64,
}

fn opus_channels(channels: u16) -> Result<Channels> {
    match channels {
        1 => Ok(Channels::Mono),
        2 => Ok(Channels::Stereo),
        n => Err(MediaError::Config(format!(
            "{n} audio channels: only 1 or 2"
        ))),
    }
}

/// libopus refusing a setting or a frame of ours is a codec error.
fn codec_error(context: &str, err: &::opus::Error) -> MediaError {
    MediaError::Codec(format!("{context}: {err}"))
}

/// libopus refusing a packet from outside is malformed input.
fn packet_error(context: &str, err: &::opus::Error) -> MediaError {
    match err.code() {
        ErrorCode::InvalidPacket | ErrorCode::BufferTooSmall | ErrorCode::BadArg => {
            MediaError::Malformed(format!("{context}: {err}"))
        }
        _ => codec_error(context, err),
    }
}

/// Encodes 20 ms frames to Opus packets.
#[derive(Debug)]
pub struct OpusEncoder {
    inner: ::opus::Encoder,
    config: OpusConfig,
    out: Vec<u8>,
}

impl OpusEncoder {
    /// An encoder with `config` (validated first).
    pub fn new(config: OpusConfig) -> Result<Self> {
        config.validate()?;
        let mut inner = ::opus::Encoder::new(
            AUDIO_SAMPLE_RATE,
            opus_channels(config.channels)?,
            Application::Voip,
        )
        .map_err(|e| codec_error("creating Opus encoder", &e))?;
        let setup = (|| {
            // Validated: at most 510 000, so it fits an i32.
            inner.set_bitrate(Bitrate::Bits(config.bitrate_bps as i32))?;
            inner.set_inband_fec(config.fec)?;
            inner.set_packet_loss_perc(i32::from(config.expected_loss_pct))?;
            inner.set_dtx(config.dtx)?;
            inner.set_complexity(i32::from(config.complexity))
        })();
        setup.map_err(|e| codec_error("configuring Opus encoder", &e))?;
        Ok(Self {
            inner,
            config,
            out: vec![0; MAX_PACKET_BYTES],
        })
    }

    /// The current settings.
    pub fn config(&self) -> OpusConfig {
        self.config
    }

    /// Encodes one frame. `Ok(None)` means DTX: the frame is silence the receiver can fill in, so
    /// there is nothing to send.
    pub fn encode(&mut self, frame: &AudioFrame) -> Result<Option<EncodedAudio>> {
        check_frame(frame)?;
        if frame.channels != self.config.channels {
            return Err(MediaError::Config(format!(
                "{}-channel encoder given a {}-channel frame",
                self.config.channels, frame.channels
            )));
        }
        let len = self
            .inner
            .encode(&frame.samples, &mut self.out)
            .map_err(|e| codec_error("Opus encode", &e))?;
        if self.config.dtx && len <= DTX_PACKET_BYTES {
            return Ok(None);
        }
        Ok(Some(EncodedAudio {
            data: self.out[..len].to_vec(),
            capture_us: frame.capture_us,
        }))
    }

    /// Changes the target bitrate (6 000 to 510 000 bit/s) from the next frame on.
    pub fn set_bitrate(&mut self, bps: u32) -> Result<()> {
        check_bitrate(bps)?;
        self.inner
            // Checked: at most 510 000, so it fits an i32.
            .set_bitrate(Bitrate::Bits(bps as i32))
            .map_err(|e| codec_error("setting Opus bitrate", &e))?;
        self.config.bitrate_bps = bps;
        Ok(())
    }

    /// Changes the loss rate (0 to 100 %) that FEC is sized for.
    pub fn set_expected_loss(&mut self, pct: u8) -> Result<()> {
        check_loss(pct)?;
        self.inner
            .set_packet_loss_perc(i32::from(pct))
            .map_err(|e| codec_error("setting Opus expected loss", &e))?;
        self.config.expected_loss_pct = pct;
        Ok(())
    }
}

/// Decodes Opus packets to 20 ms frames, and fills in lost ones.
///
/// Decoded frames carry `capture_us = 0`: the decoder does not know when the audio was captured;
/// the caller (which maps RTP timestamps to capture time) stamps them.
#[derive(Debug)]
pub struct OpusDecoder {
    inner: ::opus::Decoder,
    channels: u16,
    buf: Vec<i16>,
}

impl OpusDecoder {
    /// A decoder producing `channels` (1 or 2) channels, whatever the packets carry.
    pub fn new(channels: u16) -> Result<Self> {
        let inner = ::opus::Decoder::new(AUDIO_SAMPLE_RATE, opus_channels(channels)?)
            .map_err(|e| codec_error("creating Opus decoder", &e))?;
        Ok(Self {
            inner,
            channels,
            buf: vec![0; MAX_PACKET_SAMPLES * usize::from(channels)],
        })
    }

    /// The channel count of the frames this decoder produces.
    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Decodes one packet, which must hold exactly 20 ms.
    pub fn decode(&mut self, packet: &[u8]) -> Result<AudioFrame> {
        check_packet(packet)?;
        let n = self
            .inner
            .decode(packet, &mut self.buf, false)
            .map_err(|e| packet_error("Opus decode", &e))?;
        self.frame_from(n)
    }

    /// Recovers the frame lost just before `next_packet` from the FEC data inside `next_packet`
    /// (when the packet has none, libopus conceals instead). Decode `next_packet` itself
    /// afterwards with [`OpusDecoder::decode`].
    pub fn decode_fec(&mut self, next_packet: &[u8]) -> Result<AudioFrame> {
        check_packet(next_packet)?;
        let len = AUDIO_FRAME_SAMPLES * usize::from(self.channels);
        let n = self
            .inner
            .decode(next_packet, &mut self.buf[..len], true)
            .map_err(|e| packet_error("Opus FEC decode", &e))?;
        self.frame_from(n)
    }

    /// Conceals one lost frame (packet loss concealment): a plausible continuation that fades out
    /// over a run of losses.
    pub fn conceal(&mut self) -> Result<AudioFrame> {
        let len = AUDIO_FRAME_SAMPLES * usize::from(self.channels);
        let n = self
            .inner
            .decode(&[], &mut self.buf[..len], false)
            .map_err(|e| codec_error("Opus concealment", &e))?;
        self.frame_from(n)
    }

    /// The first `n` samples per channel of the buffer as a frame; only 20 ms is a frame.
    fn frame_from(&self, n: usize) -> Result<AudioFrame> {
        if n != AUDIO_FRAME_SAMPLES {
            return Err(MediaError::Malformed(format!(
                "Opus packet holds {n} samples per channel, expected {AUDIO_FRAME_SAMPLES} (20 ms)"
            )));
        }
        let len = n * usize::from(self.channels);
        AudioFrame::new(self.channels, self.buf[..len].to_vec(), 0)
    }
}

/// Bounds a packet from outside before libopus sees it.
fn check_packet(packet: &[u8]) -> Result<()> {
    if packet.is_empty() {
        return Err(MediaError::Truncated(
            "empty Opus packet (use conceal() for a lost one)".into(),
        ));
    }
    if packet.len() > MAX_PACKET_BYTES {
        return Err(MediaError::Truncated(format!(
            "Opus packet of {} bytes, at most {MAX_PACKET_BYTES}",
            packet.len()
        )));
    }
    Ok(())
}
