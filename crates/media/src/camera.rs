//! The camera as a [`VideoSource`], over nokhwa (V4L2 on Linux).
//!
//! Every nokhwa call runs on a thread of its own and the caller waits for it with a timeout:
//! nokhwa's V4L2 backend polls the device with no timeout when it waits for a frame (and offers no
//! way to set one), so a camera that stops delivering would otherwise block `next_frame` forever.
//! The thread also contains panics inside nokhwa or v4l (there are `unwrap`s on device names): the
//! caller sees a [`MediaError::Device`] instead. A thread stuck in the driver is left behind
//! (detached) when the [`Camera`] is dropped; it ends when the driver returns.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::Duration;

use nokhwa::utils::{
    ApiBackend, CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType,
};
use nokhwa::NokhwaError;

use crate::clock::SharedClock;
use crate::convert::{to_i420, PixelFormat};
use crate::error::{MediaError, Result};
use crate::frame::{check_dimensions, VideoFrame};
use crate::source::{VideoFormat, VideoSource};

/// How long listing the cameras (and their modes) may take.
const LIST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long opening a camera and starting its stream may take (some USB cameras need seconds).
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for one frame before reporting [`MediaError::Timeout`] (well above the
/// interval of the slowest rate a camera uses in low light).
const FRAME_TIMEOUT: Duration = Duration::from_secs(3);

/// The camera formats we can convert to I420, as nokhwa names them. GRAY is not among them.
const CONVERTIBLE: [FrameFormat; 5] = [
    FrameFormat::NV12,
    FrameFormat::YUYV,
    FrameFormat::MJPEG,
    FrameFormat::RAWRGB,
    FrameFormat::RAWBGR,
];

/// One size, rate and pixel format a camera can deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CameraMode {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// The pixel format of the frames.
    pub format: PixelFormat,
}

/// A camera found on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraInfo {
    /// The index to pass to [`Camera::open`].
    pub index: u32,
    /// A name for people ("HD Webcam C525").
    pub name: String,
    /// More detail from the driver (bus, device node).
    pub description: String,
    /// The modes we can convert; empty when the camera could not be asked (busy, for instance).
    pub modes: Vec<CameraMode>,
}

/// Lists the cameras and the modes of each. Ok(empty) when there are none.
///
/// A camera whose modes cannot be read (held by another program, driver error) is listed with no
/// modes rather than failing the whole list.
pub fn list_cameras() -> Result<Vec<CameraInfo>> {
    run_bounded("listing cameras", LIST_TIMEOUT, || {
        let devices = nokhwa::query(ApiBackend::Auto).map_err(map_nokhwa_error)?;
        Ok(devices
            .iter()
            .filter_map(|device| {
                let index = device.index().as_index().ok()?;
                Some(CameraInfo {
                    index,
                    name: device.human_name(),
                    description: device.description().to_string(),
                    modes: probe_modes(index).unwrap_or_default(),
                })
            })
            .collect())
    })
}

/// Picks the mode to open for a wanted format.
///
/// In order of preference: exactly the wanted size and rate; else the smallest mode at least as
/// large at at least the wanted rate; else the closest by area, then by rate. Among otherwise
/// equal modes the format cheapest to convert wins (I420/NV12, then YUYV, MJPEG, RGB). Modes that
/// cannot become an I420 frame (odd or oversized sides, zero rate) are skipped.
pub fn choose_mode(available: &[CameraMode], want: VideoFormat) -> Option<CameraMode> {
    let usable = || {
        available
            .iter()
            .copied()
            .filter(|m| m.fps > 0 && check_dimensions(m.width, m.height).is_ok())
    };
    let area = |m: &CameraMode| u64::from(m.width) * u64::from(m.height);
    let want_area = u64::from(want.width) * u64::from(want.height);

    let exact = usable()
        .filter(|m| m.width == want.width && m.height == want.height && m.fps == want.fps)
        .min_by_key(|m| conversion_cost(m.format));
    if exact.is_some() {
        return exact;
    }
    let larger = usable()
        .filter(|m| m.width >= want.width && m.height >= want.height && m.fps >= want.fps)
        .min_by_key(|m| (area(m), m.fps, conversion_cost(m.format)));
    if larger.is_some() {
        return larger;
    }
    usable().min_by_key(|m| {
        (
            area(m).abs_diff(want_area),
            m.fps.abs_diff(want.fps),
            conversion_cost(m.format),
        )
    })
}

/// Relative cost of converting a format to I420 (lower is cheaper).
fn conversion_cost(format: PixelFormat) -> u8 {
    match format {
        PixelFormat::I420 | PixelFormat::Nv12 => 0,
        PixelFormat::Yuyv => 1,
        PixelFormat::Mjpeg => 2,
        PixelFormat::Rgb | PixelFormat::Rgba | PixelFormat::Bgr | PixelFormat::Bgra => 3,
    }
}

/// Our name for a nokhwa frame format; `None` for formats we cannot convert (GRAY).
pub fn pixel_format_of(format: FrameFormat) -> Option<PixelFormat> {
    match format {
        FrameFormat::MJPEG => Some(PixelFormat::Mjpeg),
        FrameFormat::YUYV => Some(PixelFormat::Yuyv),
        FrameFormat::NV12 => Some(PixelFormat::Nv12),
        FrameFormat::RAWRGB => Some(PixelFormat::Rgb),
        FrameFormat::RAWBGR => Some(PixelFormat::Bgr),
        FrameFormat::GRAY => None,
    }
}

/// nokhwa's name for one of our formats; `None` for formats no camera backend delivers.
fn frame_format_of(format: PixelFormat) -> Option<FrameFormat> {
    match format {
        PixelFormat::Mjpeg => Some(FrameFormat::MJPEG),
        PixelFormat::Yuyv => Some(FrameFormat::YUYV),
        PixelFormat::Nv12 => Some(FrameFormat::NV12),
        PixelFormat::Rgb => Some(FrameFormat::RAWRGB),
        PixelFormat::Bgr => Some(FrameFormat::RAWBGR),
        PixelFormat::Rgba | PixelFormat::Bgra | PixelFormat::I420 => None,
    }
}

fn mode_of(format: &CameraFormat) -> Option<CameraMode> {
    Some(CameraMode {
        width: format.width(),
        height: format.height(),
        fps: format.frame_rate(),
        format: pixel_format_of(format.format())?,
    })
}

/// Maps a nokhwa error to ours: missing device → `NoDevice`, held by another program →
/// `DeviceBusy`, no format we can use → `Unsupported`, anything else → `Device`.
pub fn map_nokhwa_error(error: NokhwaError) -> MediaError {
    let text = error.to_string();
    let lower = text.to_lowercase();
    let busy = lower.contains("busy") || text.contains("EBUSY") || lower.contains("os error 16");
    let missing = lower.contains("no such file")
        || lower.contains("no such device")
        || text.contains("ENOENT")
        || text.contains("ENODEV")
        || lower.contains("os error 2)")
        || lower.contains("os error 19)");
    let unfulfilled = lower.contains("fufill") || lower.contains("fulfill");
    match &error {
        _ if busy => MediaError::DeviceBusy(text),
        NokhwaError::OpenDeviceError(..) if missing => MediaError::NoDevice(text),
        NokhwaError::GetPropertyError { .. } if unfulfilled => MediaError::Unsupported(text),
        _ => MediaError::Device(text),
    }
}

/// Runs `work` on its own thread and waits at most `timeout` for its result.
fn run_bounded<T: Send + 'static>(
    what: &str,
    timeout: Duration,
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let (tx, rx) = mpsc::channel();
    thread::Builder::new()
        .name("dyad-camera-query".into())
        .spawn(move || {
            // The receiver may have given up (timeout); then nobody wants the result.
            let _ = tx.send(work());
        })
        .map_err(|e| MediaError::Device(format!("{what}: cannot start a thread: {e}")))?;
    match rx.recv_timeout(timeout) {
        Ok(result) => result,
        Err(RecvTimeoutError::Timeout) => Err(MediaError::Timeout(format!(
            "{what} took longer than {} s",
            timeout.as_secs()
        ))),
        Err(RecvTimeoutError::Disconnected) => Err(MediaError::Device(format!(
            "{what}: the camera backend failed (panicked)"
        ))),
    }
}

/// The modes of camera `index` that we can convert. Opens the device briefly.
fn probe_modes(index: u32) -> Result<Vec<CameraMode>> {
    let request = RequestedFormat::with_formats(RequestedFormatType::None, &CONVERTIBLE);
    let mut camera =
        nokhwa::Camera::new(CameraIndex::Index(index), request).map_err(map_nokhwa_error)?;
    let formats = camera
        .compatible_camera_formats()
        .map_err(map_nokhwa_error)?;
    Ok(formats.iter().filter_map(mode_of).collect())
}

/// A camera delivering I420 frames. See the module docs for how blocking is bounded.
#[derive(Debug)]
pub struct Camera {
    mode: CameraMode,
    name: String,
    /// One message per wanted frame.
    requests: Sender<()>,
    frames: Receiver<Result<VideoFrame>>,
    /// A frame was requested and has not arrived yet (the last `next_frame` timed out).
    pending: bool,
}

impl Camera {
    /// Opens camera `index` in the mode closest to `want` (see [`choose_mode`]) and starts it.
    ///
    /// Errors: `NoDevice` when there is no such camera, `DeviceBusy` when another program holds
    /// it, `Unsupported` when it offers no mode we can convert, `Timeout` when it does not open in
    /// time, `Device` for anything else.
    pub fn open(index: u32, want: VideoFormat, clock: SharedClock) -> Result<Camera> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (request_tx, request_rx) = mpsc::channel::<()>();
        let (frame_tx, frame_rx) = mpsc::channel();
        thread::Builder::new()
            .name(format!("dyad-camera-{index}"))
            .spawn(move || {
                let (mut camera, mode) = match open_device(index, want) {
                    Ok((camera, mode, name)) => {
                        if ready_tx.send(Ok((mode, name))).is_err() {
                            return; // `open` gave up waiting; dropping the camera closes it.
                        }
                        (camera, mode)
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                while request_rx.recv().is_ok() {
                    let frame = grab(&mut camera, mode, &clock);
                    if frame_tx.send(frame).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| {
                MediaError::Device(format!("camera {index}: cannot start a thread: {e}"))
            })?;
        let (mode, name) = match ready_rx.recv_timeout(OPEN_TIMEOUT) {
            Ok(opened) => opened?,
            Err(RecvTimeoutError::Timeout) => {
                return Err(MediaError::Timeout(format!(
                    "camera {index} did not open within {} s",
                    OPEN_TIMEOUT.as_secs()
                )))
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(MediaError::Device(format!(
                    "camera {index}: the camera backend failed (panicked) while opening"
                )))
            }
        };
        Ok(Camera {
            mode,
            name,
            requests: request_tx,
            frames: frame_rx,
            pending: false,
        })
    }

    /// The mode the camera was opened in.
    pub fn mode(&self) -> CameraMode {
        self.mode
    }

    /// The camera's name as the driver gives it.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl VideoSource for Camera {
    fn format(&self) -> VideoFormat {
        VideoFormat {
            width: self.mode.width,
            height: self.mode.height,
            fps: self.mode.fps,
        }
    }

    /// Waits for the next frame, at most [`FRAME_TIMEOUT`]. After a timeout the frame still on
    /// its way is the one the next call returns (stamped when it really arrived).
    fn next_frame(&mut self) -> Result<VideoFrame> {
        let ended = || MediaError::Device(format!("camera {}: capture thread ended", self.name));
        if !self.pending {
            self.requests.send(()).map_err(|_| ended())?;
            self.pending = true;
        }
        match self.frames.recv_timeout(FRAME_TIMEOUT) {
            Ok(frame) => {
                self.pending = false;
                frame
            }
            Err(RecvTimeoutError::Timeout) => Err(MediaError::Timeout(format!(
                "camera {} delivered no frame within {} s",
                self.name,
                FRAME_TIMEOUT.as_secs()
            ))),
            Err(RecvTimeoutError::Disconnected) => Err(ended()),
        }
    }
}

/// Opens the device, picks and sets the mode, starts the stream (on the camera thread).
fn open_device(index: u32, want: VideoFormat) -> Result<(nokhwa::Camera, CameraMode, String)> {
    let devices = nokhwa::query(ApiBackend::Auto).map_err(map_nokhwa_error)?;
    if !devices
        .iter()
        .any(|d| d.index().as_index().ok() == Some(index))
    {
        return Err(MediaError::NoDevice(format!(
            "no camera with index {index} ({} found)",
            devices.len()
        )));
    }
    let request = RequestedFormat::with_formats(RequestedFormatType::None, &CONVERTIBLE);
    let mut camera =
        nokhwa::Camera::new(CameraIndex::Index(index), request).map_err(map_nokhwa_error)?;
    let modes: Vec<CameraMode> = camera
        .compatible_camera_formats()
        .map_err(map_nokhwa_error)?
        .iter()
        .filter_map(mode_of)
        .collect();
    let Some(mode) = choose_mode(&modes, want) else {
        return Err(MediaError::Unsupported(format!(
            "camera {index} offers no mode we can convert to I420"
        )));
    };
    let Some(fourcc) = frame_format_of(mode.format) else {
        return Err(MediaError::Unsupported(format!(
            "camera {index}: {} is not a camera format",
            mode.format
        )));
    };
    let exact = CameraFormat::new_from(mode.width, mode.height, fourcc, mode.fps);
    camera
        .set_camera_requset(RequestedFormat::with_formats(
            RequestedFormatType::Exact(exact),
            &[fourcc],
        ))
        .map_err(map_nokhwa_error)?;
    camera.open_stream().map_err(map_nokhwa_error)?;
    let name = camera.info().human_name();
    Ok((camera, mode, name))
}

/// Waits for one buffer, stamps it when it arrived, converts it to I420 (on the camera thread).
fn grab(camera: &mut nokhwa::Camera, mode: CameraMode, clock: &SharedClock) -> Result<VideoFrame> {
    let buffer = camera.frame().map_err(map_nokhwa_error)?;
    let capture_us = clock.now_us();
    let source = buffer.source_frame_format();
    let format = pixel_format_of(source).ok_or_else(|| {
        MediaError::Unsupported(format!(
            "camera delivered {source} instead of {}",
            mode.format
        ))
    })?;
    let size = buffer.resolution();
    to_i420(
        format,
        size.width(),
        size.height(),
        buffer.buffer(),
        capture_us,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(width: u32, height: u32, fps: u32, format: PixelFormat) -> CameraMode {
        CameraMode {
            width,
            height,
            fps,
            format,
        }
    }

    fn want(width: u32, height: u32, fps: u32) -> VideoFormat {
        VideoFormat { width, height, fps }
    }

    #[test]
    fn choose_mode_follows_the_preference_table() {
        use PixelFormat::{Mjpeg, Nv12, Rgb, Yuyv};
        let modes = [
            mode(1920, 1080, 30, Mjpeg),
            mode(1280, 720, 30, Mjpeg),
            mode(1280, 720, 10, Yuyv),
            mode(640, 480, 30, Mjpeg),
            mode(640, 480, 30, Yuyv),
            mode(640, 480, 30, Rgb),
            mode(320, 240, 30, Yuyv),
            mode(320, 240, 30, Nv12),
            mode(161, 120, 30, Nv12), // odd width: never chosen
        ];
        let cases = [
            // exact size and rate, cheapest format of the three offered
            (want(640, 480, 30), Some(mode(640, 480, 30, Yuyv))),
            (want(320, 240, 30), Some(mode(320, 240, 30, Nv12))),
            // no exact match: smallest larger mode at the wanted rate
            (want(800, 600, 30), Some(mode(1280, 720, 30, Mjpeg))),
            (want(640, 480, 15), Some(mode(640, 480, 30, Yuyv))),
            (want(1280, 720, 25), Some(mode(1280, 720, 30, Mjpeg))),
            // nothing larger: closest by area, then by rate
            (want(3840, 2160, 30), Some(mode(1920, 1080, 30, Mjpeg))),
            (want(1920, 1080, 60), Some(mode(1920, 1080, 30, Mjpeg))),
            (want(160, 120, 30), Some(mode(320, 240, 30, Nv12))),
        ];
        for (wanted, expected) in cases {
            assert_eq!(choose_mode(&modes, wanted), expected, "for {wanted:?}");
        }
    }

    #[test]
    fn choose_mode_skips_unusable_modes() {
        assert_eq!(choose_mode(&[], want(640, 480, 30)), None);
        let unusable = [
            mode(641, 480, 30, PixelFormat::Yuyv),
            mode(640, 480, 0, PixelFormat::Yuyv),
            mode(16384, 480, 30, PixelFormat::Yuyv),
        ];
        assert_eq!(choose_mode(&unusable, want(640, 480, 30)), None);
    }

    #[test]
    fn gray_is_not_convertible() {
        assert_eq!(pixel_format_of(FrameFormat::GRAY), None);
        for format in CONVERTIBLE {
            let ours = pixel_format_of(format).expect("listed as convertible");
            assert_eq!(frame_format_of(ours), Some(format));
        }
        let gray = CameraFormat::new_from(640, 480, FrameFormat::GRAY, 30);
        assert_eq!(mode_of(&gray), None);
    }

    #[test]
    fn nokhwa_errors_map_to_stable_codes() {
        let cases = [
            (
                NokhwaError::OpenDeviceError(
                    "0".into(),
                    "V4L2 Error: No such file or directory (os error 2)".into(),
                ),
                "no_device",
            ),
            (
                NokhwaError::OpenDeviceError(
                    "0".into(),
                    "V4L2 Error: Device or resource busy (os error 16)".into(),
                ),
                "device_busy",
            ),
            (
                NokhwaError::OpenStreamError("Device or resource busy (os error 16)".into()),
                "device_busy",
            ),
            (
                NokhwaError::SetPropertyError {
                    property: "Resolution, FrameFormat".into(),
                    value: "640x480".into(),
                    error: "EBUSY".into(),
                },
                "device_busy",
            ),
            (
                NokhwaError::GetPropertyError {
                    property: "CameraFormat".into(),
                    error: "Failed to Fufill".into(),
                },
                "unsupported_format",
            ),
            (
                NokhwaError::ReadFrameError("Input/output error (os error 5)".into()),
                "device_error",
            ),
            (
                NokhwaError::OpenDeviceError("0".into(), "Permission denied (os error 13)".into()),
                "device_error",
            ),
            (
                NokhwaError::UnsupportedOperationError(ApiBackend::Video4Linux),
                "device_error",
            ),
        ];
        for (error, code) in cases {
            let text = error.to_string();
            assert_eq!(map_nokhwa_error(error).code(), code, "for {text}");
        }
    }
}
