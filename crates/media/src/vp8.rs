//! VP8 encoder and decoder: a small safe wrapper over libvpx (`env-libvpx-sys` bindings).
//!
//! Why our own wrapper (docs/architecture.md): `vpx-encode` cannot force a keyframe, change the
//! bitrate at run time, set cpu-used or decode, and hard-codes 8 threads. A call needs all of
//! that: a PLI from the peer must become a keyframe now, and the bandwidth estimator moves the
//! bitrate every few hundred milliseconds.
//!
//! All `unsafe` lives in this file. The invariants it rests on:
//! - a libvpx context is initialised once, used only through `&mut self`, and destroyed once in
//!   `Drop`;
//! - libvpx keeps a pointer to the encoder configuration it was initialised with
//!   (`ctx->config.enc`), so the context and the configuration are boxed: their addresses never
//!   change while the context lives;
//! - input images only borrow our frame's bytes for the duration of one `vpx_codec_encode` call;
//!   output packets and decoded images are copied out before the next libvpx call.

use std::ffi::CStr;
use std::os::raw::{c_int, c_uint, c_ulong};
use std::ptr;

use vpx_sys as vpx;

use crate::error::{MediaError, Result};
use crate::frame::{check_dimensions, VideoFrame, VIDEO_RTP_CLOCK_HZ};

/// Largest VP8 frame we hand to the decoder (a 1080p keyframe at high quality is ~500 KB).
pub const MAX_ENCODED_FRAME: usize = 4 << 20;

/// Encoder settings. Bitrates are in kbit/s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp8Config {
    /// Frame width (even).
    pub width: u32,
    /// Frame height (even).
    pub height: u32,
    /// Nominal frame rate, used by rate control.
    pub fps: u32,
    /// Target bitrate in kbit/s (CBR).
    pub bitrate_kbps: u32,
    /// libvpx speed: 4..=16; higher is faster and a little worse. Realtime calls use 6–12.
    pub cpu_used: i32,
    /// Encoder threads (1 keeps latency and CPU predictable).
    pub threads: u32,
    /// Allow rate control to skip frames when over budget (a call wants this).
    pub drop_frames: bool,
    /// Longest run of frames without a keyframe; keyframes otherwise come on request (PLI).
    pub keyframe_interval: u32,
}

impl Vp8Config {
    /// Sensible call settings for a size, rate and bitrate.
    pub fn realtime(width: u32, height: u32, fps: u32, bitrate_kbps: u32) -> Self {
        Self {
            width,
            height,
            fps,
            bitrate_kbps,
            cpu_used: 8,
            threads: 1,
            drop_frames: true,
            keyframe_interval: 3000,
        }
    }

    fn validate(&self) -> Result<()> {
        check_dimensions(self.width, self.height)?;
        let bad = |what: String| Err(MediaError::Config(what));
        if !(1..=240).contains(&self.fps) {
            return bad(format!("{} fps: must be 1..=240", self.fps));
        }
        if !(10..=50_000).contains(&self.bitrate_kbps) {
            return bad(format!("{} kbit/s: must be 10..=50000", self.bitrate_kbps));
        }
        if !(4..=16).contains(&self.cpu_used) {
            return bad(format!("cpu_used {}: must be 4..=16", self.cpu_used));
        }
        if !(1..=16).contains(&self.threads) {
            return bad(format!("{} threads: must be 1..=16", self.threads));
        }
        if self.keyframe_interval == 0 {
            return bad("keyframe interval 0".into());
        }
        Ok(())
    }
}

/// One encoded VP8 frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    /// The VP8 bitstream of one frame (RFC 6386), ready for RTP packetisation (RFC 7741).
    pub data: Vec<u8>,
    /// Whether this is a keyframe.
    pub keyframe: bool,
    /// Capture time of the source frame, microseconds on the media clock.
    pub capture_us: u64,
}

impl EncodedFrame {
    /// The capture time on the 90 kHz RTP clock (wrapping).
    pub fn rtp_timestamp(&self) -> u32 {
        (u128::from(self.capture_us) * u128::from(VIDEO_RTP_CLOCK_HZ) / 1_000_000) as u32
    }
}

/// True when `data` starts a VP8 keyframe (RFC 6386 §9.1: frame-type bit 0 and start code
/// 9d 01 2a). Reads the bitstream itself, independent of what the encoder reported.
pub fn is_keyframe(data: &[u8]) -> bool {
    data.len() >= 10 && data[0] & 1 == 0 && data[3..6] == [0x9d, 0x01, 0x2a]
}

/// The text of the last error of a context.
fn context_error(ctx: &mut vpx::vpx_codec_ctx_t, what: &str) -> MediaError {
    // SAFETY: `ctx` is a live context; vpx_codec_error always returns a valid, static or
    // context-owned NUL-terminated string, which we copy before any other libvpx call.
    let msg = unsafe { CStr::from_ptr(vpx::vpx_codec_error(ctx)) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: as above; the detail may be NULL, which we check before reading.
    let detail_ptr = unsafe { vpx::vpx_codec_error_detail(ctx) };
    let detail = if detail_ptr.is_null() {
        String::new()
    } else {
        // SAFETY: non-NULL detail strings are NUL-terminated and owned by the context.
        let text = unsafe { CStr::from_ptr(detail_ptr) };
        format!(" ({})", text.to_string_lossy())
    };
    MediaError::Codec(format!("{what}: {msg}{detail}"))
}

/// A VP8 encoder in realtime CBR mode.
pub struct Vp8Encoder {
    ctx: Box<vpx::vpx_codec_ctx_t>,
    cfg: Box<vpx::vpx_codec_enc_cfg_t>,
    config: Vp8Config,
    next_pts: i64,
    force_keyframe: bool,
}

impl std::fmt::Debug for Vp8Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vp8Encoder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

// SAFETY: a libvpx encoder context has no thread affinity; every use goes through `&mut self`,
// so it is never touched from two threads at once.
unsafe impl Send for Vp8Encoder {}

impl Vp8Encoder {
    /// Creates an encoder; fails on invalid settings or if libvpx refuses them.
    pub fn new(config: Vp8Config) -> Result<Self> {
        config.validate()?;
        let mut cfg = Box::new(std::mem::MaybeUninit::<vpx::vpx_codec_enc_cfg_t>::uninit());
        // SAFETY: vpx_codec_vp8_cx returns a static interface; cfg points to writable memory of
        // the right size, which vpx_codec_enc_config_default fills in completely on success.
        let err = unsafe {
            vpx::vpx_codec_enc_config_default(vpx::vpx_codec_vp8_cx(), cfg.as_mut_ptr(), 0)
        };
        if err != vpx::VPX_CODEC_OK {
            return Err(MediaError::Codec(format!("VP8 default config: {err:?}")));
        }
        // SAFETY: initialised by vpx_codec_enc_config_default above (it returned OK). An all-zero
        // value would not do: some enum fields have no zero variant.
        let mut cfg: Box<vpx::vpx_codec_enc_cfg_t> = unsafe { cfg.assume_init() };
        apply_config(&mut cfg, &config);
        // SAFETY: a zeroed context is what vpx_codec_enc_init_ver expects to initialise.
        let mut ctx: Box<vpx::vpx_codec_ctx_t> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: ctx and cfg are boxed and outlive the context (both are fields of the encoder
        // and the context is destroyed in Drop before they are freed); the ABI version is the one
        // the bindings were generated for.
        let err = unsafe {
            vpx::vpx_codec_enc_init_ver(
                &mut *ctx,
                vpx::vpx_codec_vp8_cx(),
                &*cfg,
                0,
                vpx::VPX_ENCODER_ABI_VERSION as c_int,
            )
        };
        if err != vpx::VPX_CODEC_OK {
            return Err(MediaError::Codec(format!("VP8 encoder init: {err:?}")));
        }
        let mut enc = Self {
            ctx,
            cfg,
            config,
            next_pts: 0,
            force_keyframe: false,
        };
        enc.control(vpx::vp8e_enc_control_id::VP8E_SET_CPUUSED, config.cpu_used)?;
        // Skip encoding static blocks, no denoising (cameras here are clean enough, it costs CPU).
        enc.control(vpx::vp8e_enc_control_id::VP8E_SET_STATIC_THRESHOLD, 1)?;
        enc.control(vpx::vp8e_enc_control_id::VP8E_SET_NOISE_SENSITIVITY, 0)?;
        // Cap keyframes at 3× an average frame so a PLI does not flood a thin link.
        enc.control(
            vpx::vp8e_enc_control_id::VP8E_SET_MAX_INTRA_BITRATE_PCT,
            300,
        )?;
        Ok(enc)
    }

    fn control(&mut self, id: vpx::vp8e_enc_control_id, value: c_int) -> Result<()> {
        // SAFETY: the context is live; these control ids all take one `int` argument, which is
        // what we pass through the variadic call.
        let err = unsafe { vpx::vpx_codec_control_(&mut *self.ctx, id as c_int, value) };
        if err != vpx::VPX_CODEC_OK {
            return Err(context_error(
                &mut self.ctx,
                &format!("VP8 control {id:?}={value}"),
            ));
        }
        Ok(())
    }

    /// The current settings.
    pub fn config(&self) -> Vp8Config {
        self.config
    }

    /// Changes the target bitrate; takes effect from the next frame.
    pub fn set_bitrate(&mut self, kbps: u32) -> Result<()> {
        let next = Vp8Config {
            bitrate_kbps: kbps,
            ..self.config
        };
        next.validate()?;
        self.cfg.rc_target_bitrate = kbps;
        // SAFETY: live context; cfg is our boxed configuration, valid for the call.
        let err = unsafe { vpx::vpx_codec_enc_config_set(&mut *self.ctx, &*self.cfg) };
        if err != vpx::VPX_CODEC_OK {
            self.cfg.rc_target_bitrate = self.config.bitrate_kbps;
            return Err(context_error(&mut self.ctx, "VP8 set bitrate"));
        }
        self.config = next;
        Ok(())
    }

    /// Changes the frame size (the call engine steps resolution with the bitrate). Re-creates
    /// the encoder, so the next frame is a keyframe.
    pub fn set_resolution(&mut self, width: u32, height: u32) -> Result<()> {
        if (width, height) == (self.config.width, self.config.height) {
            return Ok(());
        }
        let fresh = Self::new(Vp8Config {
            width,
            height,
            ..self.config
        })?;
        *self = fresh;
        Ok(())
    }

    /// Makes the next encoded frame a keyframe (the answer to a PLI/FIR).
    pub fn request_keyframe(&mut self) {
        self.force_keyframe = true;
    }

    /// Encodes one frame. Returns `None` when rate control dropped it to stay within the budget.
    pub fn encode(&mut self, frame: &VideoFrame) -> Result<Option<EncodedFrame>> {
        if (frame.width(), frame.height()) != (self.config.width, self.config.height) {
            return Err(MediaError::InvalidSize(format!(
                "frame {}x{} given to a {}x{} encoder",
                frame.width(),
                frame.height(),
                self.config.width,
                self.config.height
            )));
        }
        // SAFETY: a zeroed vpx_image_t is valid input for vpx_img_wrap, which fills it in.
        let mut img: vpx::vpx_image_t = unsafe { std::mem::zeroed() };
        // SAFETY: the frame holds exactly width*height*3/2 tightly packed I420 bytes (checked by
        // VideoFrame's constructors), which is the layout vpx_img_wrap assumes with alignment 1.
        // libvpx only reads input images, so handing it a pointer derived from `&[u8]` is sound;
        // `img` does not outlive this function and the frame outlives `img`.
        let wrapped = unsafe {
            vpx::vpx_img_wrap(
                &mut img,
                vpx::vpx_img_fmt::VPX_IMG_FMT_I420,
                frame.width() as c_uint,
                frame.height() as c_uint,
                1,
                frame.data().as_ptr().cast_mut(),
            )
        };
        if wrapped.is_null() {
            return Err(MediaError::Codec(
                "VP8: could not wrap the input image".into(),
            ));
        }
        let flags = if std::mem::take(&mut self.force_keyframe) {
            vpx::VPX_EFLAG_FORCE_KF as vpx::vpx_enc_frame_flags_t
        } else {
            0
        };
        let duration = (VIDEO_RTP_CLOCK_HZ / u64::from(self.config.fps)) as c_ulong;
        let pts = self.next_pts;
        self.next_pts += duration as i64;
        // SAFETY: live context; img wraps the frame's bytes as established above.
        let err = unsafe {
            vpx::vpx_codec_encode(
                &mut *self.ctx,
                &img,
                pts,
                duration,
                flags,
                vpx::VPX_DL_REALTIME as c_ulong,
            )
        };
        if err != vpx::VPX_CODEC_OK {
            return Err(context_error(&mut self.ctx, "VP8 encode"));
        }
        let mut out: Option<EncodedFrame> = None;
        let mut iter: vpx::vpx_codec_iter_t = ptr::null();
        loop {
            // SAFETY: live context; iter is the iterator protocol's cursor, started at NULL.
            let pkt = unsafe { vpx::vpx_codec_get_cx_data(&mut *self.ctx, &mut iter) };
            if pkt.is_null() {
                break;
            }
            // SAFETY: non-NULL packets stay valid until the next encode call; we read the kind
            // first and touch the `frame` union member only for frame packets.
            let pkt = unsafe { &*pkt };
            if pkt.kind != vpx::vpx_codec_cx_pkt_kind::VPX_CODEC_CX_FRAME_PKT {
                continue;
            }
            // SAFETY: kind says this packet's union holds a frame.
            let f = unsafe { pkt.data.frame };
            // SAFETY: libvpx guarantees buf points to sz readable bytes for a frame packet;
            // we copy them out at once.
            let bytes = unsafe { std::slice::from_raw_parts(f.buf as *const u8, f.sz as usize) };
            let keyframe = f.flags & vpx::VPX_FRAME_IS_KEY != 0;
            match &mut out {
                // With one token partition VP8 emits one packet per frame; append defensively.
                Some(prev) => prev.data.extend_from_slice(bytes),
                None => {
                    out = Some(EncodedFrame {
                        data: bytes.to_vec(),
                        keyframe,
                        capture_us: frame.capture_us,
                    })
                }
            }
        }
        if out.is_none() && flags != 0 {
            // The forced keyframe was dropped by rate control: force the next one instead.
            self.force_keyframe = true;
        }
        Ok(out)
    }
}

fn apply_config(cfg: &mut vpx::vpx_codec_enc_cfg_t, c: &Vp8Config) {
    cfg.g_w = c.width;
    cfg.g_h = c.height;
    cfg.g_threads = c.threads;
    cfg.g_timebase = vpx::vpx_rational {
        num: 1,
        den: VIDEO_RTP_CLOCK_HZ as c_int,
    };
    cfg.g_lag_in_frames = 0;
    cfg.g_pass = vpx::vpx_enc_pass::VPX_RC_ONE_PASS;
    cfg.g_error_resilient = vpx::VPX_ERROR_RESILIENT_DEFAULT;
    cfg.rc_end_usage = vpx::vpx_rc_mode::VPX_CBR;
    cfg.rc_target_bitrate = c.bitrate_kbps;
    cfg.rc_min_quantizer = 2;
    cfg.rc_max_quantizer = 56;
    cfg.rc_undershoot_pct = 100;
    cfg.rc_overshoot_pct = 15;
    cfg.rc_buf_initial_sz = 500;
    cfg.rc_buf_optimal_sz = 600;
    cfg.rc_buf_sz = 1000;
    cfg.rc_dropframe_thresh = if c.drop_frames { 30 } else { 0 };
    cfg.rc_resize_allowed = 0;
    cfg.kf_mode = vpx::vpx_kf_mode::VPX_KF_AUTO;
    cfg.kf_min_dist = 0;
    cfg.kf_max_dist = c.keyframe_interval;
}

impl Drop for Vp8Encoder {
    fn drop(&mut self) {
        // SAFETY: the context was initialised in `new` and is destroyed exactly once, here.
        unsafe {
            vpx::vpx_codec_destroy(&mut *self.ctx);
        }
    }
}

/// A VP8 decoder.
pub struct Vp8Decoder {
    ctx: Box<vpx::vpx_codec_ctx_t>,
}

impl std::fmt::Debug for Vp8Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vp8Decoder").finish_non_exhaustive()
    }
}

// SAFETY: as for the encoder: no thread affinity, used only through `&mut self`.
unsafe impl Send for Vp8Decoder {}

impl Vp8Decoder {
    /// Creates a decoder using `threads` threads (1 is right for call sizes).
    pub fn new(threads: u32) -> Result<Self> {
        if !(1..=16).contains(&threads) {
            return Err(MediaError::Config(format!(
                "{threads} decoder threads: must be 1..=16"
            )));
        }
        let cfg = vpx::vpx_codec_dec_cfg_t {
            threads,
            w: 0,
            h: 0,
        };
        // SAFETY: a zeroed context is what vpx_codec_dec_init_ver expects to initialise.
        let mut ctx: Box<vpx::vpx_codec_ctx_t> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: ctx is boxed and outlives the context; libvpx copies the decoder config during
        // init (it does not keep the pointer); the ABI version matches the bindings.
        let err = unsafe {
            vpx::vpx_codec_dec_init_ver(
                &mut *ctx,
                vpx::vpx_codec_vp8_dx(),
                &cfg,
                0,
                vpx::VPX_DECODER_ABI_VERSION as c_int,
            )
        };
        if err != vpx::VPX_CODEC_OK {
            return Err(MediaError::Codec(format!("VP8 decoder init: {err:?}")));
        }
        Ok(Self { ctx })
    }

    /// Decodes one VP8 frame. `Ok(None)` means the data decoded but produced no picture (libvpx
    /// may hold one back); a corrupt or truncated frame is `Malformed` and the caller should
    /// request a keyframe. Odd stream sizes are cropped to even.
    pub fn decode(&mut self, data: &[u8], capture_us: u64) -> Result<Option<VideoFrame>> {
        if data.is_empty() {
            return Err(MediaError::Truncated("empty VP8 frame".into()));
        }
        if data.len() > MAX_ENCODED_FRAME {
            return Err(MediaError::Truncated(format!(
                "VP8 frame of {} bytes exceeds {MAX_ENCODED_FRAME}",
                data.len()
            )));
        }
        // SAFETY: live context; data is a valid slice of data.len() bytes (bounded above, so the
        // length fits c_uint); libvpx does not keep the pointer after the call returns.
        let err = unsafe {
            vpx::vpx_codec_decode(
                &mut *self.ctx,
                data.as_ptr(),
                data.len() as c_uint,
                ptr::null_mut(),
                0,
            )
        };
        if err != vpx::VPX_CODEC_OK {
            let e = context_error(&mut self.ctx, "VP8 decode");
            return Err(MediaError::Malformed(e.to_string()));
        }
        let mut last = None;
        let mut iter: vpx::vpx_codec_iter_t = ptr::null();
        loop {
            // SAFETY: live context; iterator protocol started at NULL.
            let img = unsafe { vpx::vpx_codec_get_frame(&mut *self.ctx, &mut iter) };
            if img.is_null() {
                break;
            }
            // SAFETY: non-NULL images are valid until the next decode call; we copy out now.
            last = Some(copy_image(unsafe { &*img }, capture_us)?);
        }
        Ok(last)
    }
}

/// Copies a decoded libvpx image (with strides) into a tightly packed [`VideoFrame`].
fn copy_image(img: &vpx::vpx_image_t, capture_us: u64) -> Result<VideoFrame> {
    if img.fmt != vpx::vpx_img_fmt::VPX_IMG_FMT_I420 {
        return Err(MediaError::Unsupported(format!(
            "decoded image format {:?}",
            img.fmt
        )));
    }
    let (w, h) = (img.d_w & !1, img.d_h & !1);
    let mut frame = VideoFrame::black(w, h, capture_us)?;
    let (y, u, v) = frame.planes_mut();
    for (plane, dst, pw, ph) in [(0, y, w, h), (1, u, w / 2, h / 2), (2, v, w / 2, h / 2)] {
        let stride = usize::try_from(img.stride[plane])
            .map_err(|_| MediaError::Codec("negative stride from libvpx".into()))?;
        let (pw, ph) = (pw as usize, ph as usize);
        for row in 0..ph {
            // SAFETY: libvpx guarantees each plane has at least `stride` bytes per row for the
            // display height (rounded up for chroma), and pw ≤ stride; the image is valid until
            // the next decode call, and we finish copying before returning.
            let src =
                unsafe { std::slice::from_raw_parts(img.planes[plane].add(row * stride), pw) };
            dst[row * pw..(row + 1) * pw].copy_from_slice(src);
        }
    }
    Ok(frame)
}

impl Drop for Vp8Decoder {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, destroyed exactly once here.
        unsafe {
            vpx::vpx_codec_destroy(&mut *self.ctx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_out_of_range_are_refused() {
        let ok = Vp8Config::realtime(640, 480, 30, 800);
        assert!(ok.validate().is_ok());
        for bad in [
            Vp8Config { fps: 0, ..ok },
            Vp8Config {
                bitrate_kbps: 1,
                ..ok
            },
            Vp8Config { cpu_used: 99, ..ok },
            Vp8Config { threads: 0, ..ok },
            Vp8Config { width: 641, ..ok },
        ] {
            assert!(Vp8Encoder::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn keyframe_detection_reads_the_bitstream() {
        assert!(is_keyframe(&[
            0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01
        ]));
        assert!(!is_keyframe(&[
            0x11, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01
        ]));
        assert!(!is_keyframe(&[0x10, 0x02]));
    }
}
