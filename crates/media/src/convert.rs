//! Pixel conversion: camera and image formats to I420, and I420 back to RGBA.
//!
//! The colour maths lives in maintained libraries: yuvutils-rs for packed YUV and RGB, zune-jpeg
//! for MJPEG. Camera and RGB input is converted with BT.601 limited range, which is what VP8
//! encoders and decoders assume. Every input is validated (size, exact length) before any byte of
//! it is read, and nothing here panics on input.

use std::fmt;

use yuvutils_rs::{
    bgr_to_yuv420, bgra_to_yuv420, rgb_to_yuv420, rgba_to_yuv420, yuv420_to_rgba,
    yuyv422_to_yuv420, BufferStoreMut, YuvConversionMode, YuvError, YuvPackedImage, YuvPlanarImage,
    YuvPlanarImageMut, YuvRange, YuvStandardMatrix,
};
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use crate::error::{MediaError, Result};
use crate::frame::{check_dimensions, VideoFrame};

/// The YUV range of everything we produce and consume (VP8 uses limited "studio" range).
const RANGE: YuvRange = YuvRange::Limited;
/// The YUV matrix of everything we produce and consume (standard-definition video, as VP8).
const MATRIX: YuvStandardMatrix = YuvStandardMatrix::Bt601;

/// A pixel layout that a camera or an image can deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// Packed 4:2:2, bytes Y0 U Y1 V (V4L2 `YUYV`).
    Yuyv,
    /// Y plane, then one interleaved U V plane at half resolution (V4L2 `NV12`).
    Nv12,
    /// Packed 8-bit R G B.
    Rgb,
    /// Packed 8-bit R G B A (alpha ignored).
    Rgba,
    /// Packed 8-bit B G R.
    Bgr,
    /// Packed 8-bit B G R A (alpha ignored).
    Bgra,
    /// Motion JPEG: each frame a complete JPEG image of variable length.
    Mjpeg,
    /// Planar Y, U, V at 4:2:0 (our own frame format).
    I420,
}

impl PixelFormat {
    /// Exact byte length of one `width × height` frame, or `None` for MJPEG (variable length).
    ///
    /// Call after [`check_dimensions`], which bounds the sizes so this cannot overflow.
    pub fn frame_len(self, width: u32, height: u32) -> Option<usize> {
        let pixels = width as usize * height as usize;
        match self {
            PixelFormat::Yuyv => Some(pixels * 2),
            PixelFormat::Nv12 | PixelFormat::I420 => Some(pixels + pixels / 2),
            PixelFormat::Rgb | PixelFormat::Bgr => Some(pixels * 3),
            PixelFormat::Rgba | PixelFormat::Bgra => Some(pixels * 4),
            PixelFormat::Mjpeg => None,
        }
    }

    /// A short upper-case name (`"YUYV"`, `"MJPEG"`...), as V4L2 and logs spell them.
    pub fn name(self) -> &'static str {
        match self {
            PixelFormat::Yuyv => "YUYV",
            PixelFormat::Nv12 => "NV12",
            PixelFormat::Rgb => "RGB",
            PixelFormat::Rgba => "RGBA",
            PixelFormat::Bgr => "BGR",
            PixelFormat::Bgra => "BGRA",
            PixelFormat::Mjpeg => "MJPEG",
            PixelFormat::I420 => "I420",
        }
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Converts one `width × height` picture in `format` to an I420 [`VideoFrame`] stamped `capture_us`.
///
/// Errors: `InvalidSize` for a zero, odd or oversized side; `Truncated` when `data` is not exactly
/// one frame long (MJPEG excepted); `Malformed` for an MJPEG frame that does not decode or whose
/// size is not the declared one; `Unsupported` for a JPEG in a colour space we do not take.
pub fn to_i420(
    format: PixelFormat,
    width: u32,
    height: u32,
    data: &[u8],
    capture_us: u64,
) -> Result<VideoFrame> {
    check_dimensions(width, height)?;
    if let Some(want) = format.frame_len(width, height) {
        if data.len() != want {
            return Err(MediaError::Truncated(format!(
                "{format} {width}x{height} needs {want} bytes, got {}",
                data.len()
            )));
        }
    }
    match format {
        PixelFormat::I420 => VideoFrame::from_i420(width, height, data.to_vec(), capture_us),
        PixelFormat::Mjpeg => mjpeg_to_i420(width, height, data, capture_us),
        PixelFormat::Nv12 => {
            let mut frame = VideoFrame::black(width, height, capture_us)?;
            nv12_into(data, &mut frame);
            Ok(frame)
        }
        PixelFormat::Yuyv
        | PixelFormat::Rgb
        | PixelFormat::Rgba
        | PixelFormat::Bgr
        | PixelFormat::Bgra => {
            let mut frame = VideoFrame::black(width, height, capture_us)?;
            packed_into(format, width, height, data, &mut frame)?;
            Ok(frame)
        }
    }
}

/// Converts an I420 frame to packed RGBA (alpha 255), `width × height × 4` bytes.
pub fn i420_to_rgba(frame: &VideoFrame) -> Vec<u8> {
    let (width, height) = (frame.width(), frame.height());
    let image = YuvPlanarImage {
        y_plane: frame.y(),
        y_stride: width,
        u_plane: frame.u(),
        u_stride: width / 2,
        v_plane: frame.v(),
        v_stride: width / 2,
        width,
        height,
    };
    let mut rgba = vec![0u8; width as usize * height as usize * 4];
    yuv420_to_rgba(&image, &mut rgba, width * 4, RANGE, MATRIX)
        .expect("a VideoFrame always holds tightly packed I420 planes of even size");
    rgba
}

/// NV12 → I420. yuvutils-rs 0.8 has no NV12 → I420 conversion, and none is needed: the Y plane is
/// the same in both (a copy) and the U/V planes are a de-interleave of NV12's U V pairs.
/// `data` has been checked to be exactly one NV12 frame of the frame's size.
fn nv12_into(data: &[u8], frame: &mut VideoFrame) {
    let (y, u, v) = frame.planes_mut();
    let (src_y, src_uv) = data.split_at(y.len());
    y.copy_from_slice(src_y);
    for ((pair, u), v) in src_uv.chunks_exact(2).zip(u.iter_mut()).zip(v.iter_mut()) {
        *u = pair[0];
        *v = pair[1];
    }
}

/// YUYV and packed RGB variants → I420 with yuvutils-rs, straight into the frame's planes.
fn packed_into(
    format: PixelFormat,
    width: u32,
    height: u32,
    data: &[u8],
    frame: &mut VideoFrame,
) -> Result<()> {
    let (y, u, v) = frame.planes_mut();
    let mut planar = YuvPlanarImageMut {
        y_plane: BufferStoreMut::Borrowed(y),
        y_stride: width,
        u_plane: BufferStoreMut::Borrowed(u),
        u_stride: width / 2,
        v_plane: BufferStoreMut::Borrowed(v),
        v_stride: width / 2,
        width,
        height,
    };
    let mode = YuvConversionMode::Balanced;
    let result = match format {
        PixelFormat::Yuyv => yuyv422_to_yuv420(
            &mut planar,
            &YuvPackedImage {
                yuy: data,
                yuy_stride: width * 2,
                width,
                height,
            },
        ),
        PixelFormat::Rgb => rgb_to_yuv420(&mut planar, data, width * 3, RANGE, MATRIX, mode),
        PixelFormat::Bgr => bgr_to_yuv420(&mut planar, data, width * 3, RANGE, MATRIX, mode),
        PixelFormat::Rgba => rgba_to_yuv420(&mut planar, data, width * 4, RANGE, MATRIX, mode),
        PixelFormat::Bgra => bgra_to_yuv420(&mut planar, data, width * 4, RANGE, MATRIX, mode),
        PixelFormat::Nv12 | PixelFormat::Mjpeg | PixelFormat::I420 => {
            return Err(MediaError::Unsupported(format!(
                "{format} is not a packed format"
            )))
        }
    };
    result.map_err(|e: YuvError| MediaError::Codec(format!("{format} to I420: {e}")))?;
    if format == PixelFormat::Yuyv && width > YUYV_SIMD_TAIL {
        yuyv_tail(width, height, data, frame)?;
    }
    Ok(())
}

/// Width of the strip at the right edge that yuvutils-rs 0.8.3's SIMD YUYV→I420 leaves unwritten.
const YUYV_SIMD_TAIL: u32 = 16;

/// Redoes the last [`YUYV_SIMD_TAIL`] columns of a YUYV→I420 conversion: the strip is copied
/// out, converted by the same library call at that width (which takes its exact scalar path) and
/// copied back. Only row copies here; the colour work stays in the library.
fn yuyv_tail(width: u32, height: u32, data: &[u8], frame: &mut VideoFrame) -> Result<()> {
    let (w, t) = (width as usize, YUYV_SIMD_TAIL as usize);
    let x = w - t;
    let mut strip = Vec::with_capacity(t * 2 * height as usize);
    for row in data.chunks_exact(w * 2) {
        strip.extend_from_slice(&row[x * 2..]);
    }
    let small = to_i420(PixelFormat::Yuyv, YUYV_SIMD_TAIL, height, &strip, 0)?;
    let (y, u, v) = frame.planes_mut();
    for (dst, src) in y.chunks_exact_mut(w).zip(small.y().chunks_exact(t)) {
        dst[x..].copy_from_slice(src);
    }
    for (plane, src) in [(u, small.u()), (v, small.v())] {
        for (dst, src) in plane.chunks_exact_mut(w / 2).zip(src.chunks_exact(t / 2)) {
            dst[x / 2..].copy_from_slice(src);
        }
    }
    Ok(())
}

/// MJPEG → RGB (zune-jpeg) → I420 (yuvutils-rs).
fn mjpeg_to_i420(width: u32, height: u32, data: &[u8], capture_us: u64) -> Result<VideoFrame> {
    // zune-jpeg fills a cut-off scan with grey rather than failing, so check the end-of-image
    // marker (FF D9) ourselves; some cameras pad frames with zeros after it.
    if !data.starts_with(&[0xff, 0xd8]) {
        return Err(MediaError::Malformed(
            "not a JPEG (no start-of-image marker)".into(),
        ));
    }
    let end = data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    if end < 4 || data[end - 2..end] != [0xff, 0xd9] {
        return Err(MediaError::Truncated(
            "MJPEG frame without its end-of-image marker (cut short)".into(),
        ));
    }
    // The limits make the decoder refuse a header larger than the frame we expect before it
    // allocates anything, so a hostile header cannot make it reserve gigabytes.
    let options = DecoderOptions::default()
        .set_max_width(width as usize)
        .set_max_height(height as usize)
        .set_strict_mode(true)
        .jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut decoder = JpegDecoder::new_with_options(data, options);
    decoder
        .decode_headers()
        .map_err(|e| MediaError::Malformed(format!("MJPEG header: {e}")))?;
    let Some((w, h)) = decoder.dimensions() else {
        return Err(MediaError::Malformed("MJPEG header without a size".into()));
    };
    if (w, h) != (width as usize, height as usize) {
        return Err(MediaError::Malformed(format!(
            "MJPEG frame is {w}x{h}, expected {width}x{height}"
        )));
    }
    let rgb_len = width as usize * height as usize * 3;
    if decoder.output_buffer_size() != Some(rgb_len) {
        return Err(MediaError::Unsupported(format!(
            "MJPEG in colour space {:?}",
            decoder.get_input_colorspace()
        )));
    }
    let mut rgb = vec![0u8; rgb_len];
    decoder
        .decode_into(&mut rgb)
        .map_err(|e| MediaError::Malformed(format!("MJPEG data: {e}")))?;
    let mut frame = VideoFrame::black(width, height, capture_us)?;
    packed_into(PixelFormat::Rgb, width, height, &rgb, &mut frame)?;
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lengths_match_the_layouts() {
        assert_eq!(PixelFormat::Yuyv.frame_len(4, 2), Some(16));
        assert_eq!(PixelFormat::Nv12.frame_len(4, 2), Some(12));
        assert_eq!(PixelFormat::I420.frame_len(4, 2), Some(12));
        assert_eq!(PixelFormat::Bgr.frame_len(4, 2), Some(24));
        assert_eq!(PixelFormat::Rgba.frame_len(4, 2), Some(32));
        assert_eq!(PixelFormat::Mjpeg.frame_len(4, 2), None);
    }

    #[test]
    fn nv12_deinterleaves_chroma() {
        let data = [1, 2, 3, 4, 5, 6, 7, 8, 10, 20, 11, 21];
        let frame = to_i420(PixelFormat::Nv12, 4, 2, &data, 7).expect("valid NV12");
        assert_eq!(frame.y(), &data[..8]);
        assert_eq!(frame.u(), &[10, 11]);
        assert_eq!(frame.v(), &[20, 21]);
        assert_eq!(frame.capture_us, 7);
    }

    #[test]
    fn i420_is_copied_as_is() {
        let data: Vec<u8> = (0..12).collect();
        let frame = to_i420(PixelFormat::I420, 4, 2, &data, 0).expect("valid I420");
        assert_eq!(frame.data(), &data[..]);
    }
}
