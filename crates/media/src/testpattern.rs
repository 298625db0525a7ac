//! The synthetic camera: deterministic moving frames that carry their own frame number and
//! capture time, and the reader that gets them back out of a decoded frame.
//!
//! Every frame has a band at the top: a 24 × 4 grid of black/white blocks holding 96 bits —
//! the frame number (32 bits), the low 48 bits of the capture time in microseconds and a
//! CRC-16/CCITT over both. Blocks are large (24 px at 640×480, 48 px at 1280×720) and aligned to
//! 8 px, so they survive VP8 at low bitrates; the reader averages the middle of each block and
//! the CRC rejects a misread. Below the band: colour bars, a scrolling textured ramp and a bouncing
//! box, so the encoder sees real motion. Pixels depend only on (size, frame number, capture time).

use crate::clock::SharedClock;
use crate::error::{MediaError, Result};
use crate::frame::{check_dimensions, VideoFrame};
use crate::source::{VideoFormat, VideoSource};

const COLS: u32 = 24;
const ROWS: u32 = 4;
const BITS: u32 = COLS * ROWS;
const BLACK: u8 = 16;
const WHITE: u8 = 235;
/// The capture time carried in a frame is this many bits of microseconds (≈ 8.9 years).
const TIME_BITS: u32 = 48;
const TIME_MASK: u64 = (1 << TIME_BITS) - 1;

/// Smallest frame that can carry a marker.
pub const MIN_WIDTH: u32 = COLS * 4;
/// Smallest frame height that can carry a marker (and leave room for the picture).
pub const MIN_HEIGHT: u32 = ROWS * 4 * 2;

/// What a test-pattern frame says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    /// The frame number, counting from 0 at the source's start.
    pub frame: u32,
    /// The low 48 bits of the capture time in microseconds.
    pub capture_us_low48: u64,
}

impl Marker {
    /// A marker for frame `frame` captured at `capture_us`.
    pub fn new(frame: u32, capture_us: u64) -> Self {
        Self {
            frame,
            capture_us_low48: capture_us & TIME_MASK,
        }
    }

    /// The full capture time, given a time `now_us` on the same clock that is later than the
    /// capture and less than 2^48 µs (8.9 years) after it.
    pub fn capture_us_near(&self, now_us: u64) -> u64 {
        let candidate = (now_us & !TIME_MASK) | self.capture_us_low48;
        if candidate > now_us {
            candidate.saturating_sub(1 << TIME_BITS)
        } else {
            candidate
        }
    }

    /// Microseconds from capture to `now_us` (glass-to-glass latency when `now_us` is the
    /// moment the decoded frame is shown).
    pub fn age_us(&self, now_us: u64) -> u64 {
        now_us.wrapping_sub(self.capture_us_low48) & TIME_MASK
    }

    fn to_bits(self) -> u128 {
        let payload = (u128::from(self.frame) << TIME_BITS) | u128::from(self.capture_us_low48);
        let crc = crc16(&payload.to_be_bytes()[6..]);
        (payload << 16) | u128::from(crc)
    }

    fn from_bits(bits: u128) -> Option<Self> {
        let payload = bits >> 16;
        let crc = (bits & 0xffff) as u16;
        if crc16(&payload.to_be_bytes()[6..]) != crc {
            return None;
        }
        Some(Self {
            // 32 bits by construction: payload is 80 bits, time is the low 48.
            frame: (payload >> TIME_BITS) as u32,
            capture_us_low48: (payload as u64) & TIME_MASK,
        })
    }
}

/// CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF).
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0xffff;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Where the marker's blocks are in a frame of this size.
#[derive(Debug, Clone, Copy)]
struct Grid {
    block: u32,
}

impl Grid {
    fn for_size(width: u32, height: u32) -> Result<Self> {
        check_dimensions(width, height)?;
        if width < MIN_WIDTH || height < MIN_HEIGHT {
            return Err(MediaError::InvalidSize(format!(
                "{width}x{height}: the test pattern needs at least {MIN_WIDTH}x{MIN_HEIGHT}"
            )));
        }
        let natural = width / COLS;
        // Align to 8 px where the frame is big enough: block edges then fall on VP8 block edges.
        let aligned = if natural >= 8 {
            natural / 8 * 8
        } else {
            natural / 2 * 2
        };
        // Keep the band to at most half of the frame.
        let block = aligned.min(height / (ROWS * 2) / 2 * 2).max(4);
        Ok(Self { block })
    }

    fn band_height(&self) -> u32 {
        self.block * ROWS
    }
}

/// Writes the marker into the top band of `frame` (luma black/white, chroma neutral).
pub fn write_marker(frame: &mut VideoFrame, marker: Marker) -> Result<()> {
    let grid = Grid::for_size(frame.width(), frame.height())?;
    let width = frame.width() as usize;
    let bits = marker.to_bits();
    let (y, u, v) = frame.planes_mut();
    let band = grid.band_height() as usize;
    let block = grid.block as usize;
    for row in 0..band {
        let line = &mut y[row * width..(row + 1) * width];
        for (x, px) in line.iter_mut().enumerate() {
            let col = x / block;
            *px = if col < COLS as usize {
                let bit = (row / block) as u32 * COLS + col as u32;
                if (bits >> (BITS - 1 - bit)) & 1 == 1 {
                    WHITE
                } else {
                    BLACK
                }
            } else {
                BLACK
            };
        }
    }
    let chroma_rows = band / 2 * (width / 2);
    u[..chroma_rows].fill(128);
    v[..chroma_rows].fill(128);
    Ok(())
}

/// Reads the marker back from a (possibly lossy-coded) frame.
///
/// Errors: `InvalidSize` when the frame is too small to carry one, `Malformed` when the blocks
/// do not spell a marker with a valid checksum (not a test-pattern frame, or damaged).
pub fn read_marker(frame: &VideoFrame) -> Result<Marker> {
    let grid = Grid::for_size(frame.width(), frame.height())?;
    let width = frame.width() as usize;
    let block = grid.block as usize;
    // Average the middle half of each block: edges are where a codec smears.
    let inset = block / 4;
    let span = (block - 2 * inset).max(1);
    let y = frame.y();
    let mut bits: u128 = 0;
    for bit in 0..BITS as usize {
        let (row, col) = (bit / COLS as usize, bit % COLS as usize);
        let (x0, y0) = (col * block + inset, row * block + inset);
        let mut sum = 0u32;
        for yy in y0..y0 + span {
            let line = &y[yy * width + x0..yy * width + x0 + span];
            sum += line.iter().map(|&p| u32::from(p)).sum::<u32>();
        }
        let mean = sum / (span * span) as u32;
        bits = (bits << 1) | u128::from(mean > u32::from(BLACK + WHITE) / 2);
    }
    Marker::from_bits(bits)
        .ok_or_else(|| MediaError::Malformed("test-pattern marker checksum mismatch".into()))
}

/// Seven bars: white, yellow, cyan, green, magenta, red, blue as BT.601 limited (Y, U, V).
const BARS: [(u8, u8, u8); 7] = [
    (180, 128, 128),
    (162, 44, 142),
    (131, 156, 44),
    (112, 72, 58),
    (84, 184, 198),
    (65, 100, 212),
    (35, 212, 114),
];

/// Draws test-pattern frame `n` (without the marker) into `frame`.
fn draw_picture(frame: &mut VideoFrame, band: u32, n: u32) {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let band = band as usize;
    let rest = h - band;
    // Bars take the upper two thirds of the picture, the ramp the lower third.
    let ramp_top = band + rest * 2 / 3;
    let bar_w = w.div_ceil(BARS.len());
    // The box: an eighth of the height, bouncing left and right over the bars.
    let side = (rest / 4).max(2) / 2 * 2;
    let travel = (w - side).max(1);
    let phase = (n as usize * 4) % (2 * travel);
    let box_x = if phase < travel {
        phase
    } else {
        2 * travel - phase
    };
    let box_y = band + (rest * 2 / 3).saturating_sub(side) / 2;
    let shift = n as usize * 3;

    let (y, u, v) = frame.planes_mut();
    for row in band..h {
        let line = &mut y[row * w..(row + 1) * w];
        if row < ramp_top {
            for (x, px) in line.iter_mut().enumerate() {
                *px = BARS[x / bar_w].0;
            }
        } else {
            for (x, px) in line.iter_mut().enumerate() {
                // A scrolling sawtooth ramp from 24 to 227 with a fine texture that scrolls with
                // it (camera-like detail: the encoder has to spend bits, motion search can help).
                let sx = (x + shift) as u32;
                let grain = (sx.wrapping_mul(0x9e37_79b1) ^ (row as u32).wrapping_mul(0x85eb_ca6b))
                    .wrapping_mul(0xc2b2_ae35)
                    >> 27;
                *px = 24 + (sx % 188) as u8 + grain as u8;
            }
        }
        if (box_y..box_y + side).contains(&row) {
            line[box_x..box_x + side].fill(WHITE);
        }
    }
    let cw = w / 2;
    for crow in band / 2..h / 2 {
        let row = crow * 2;
        let (uline, vline) = (
            &mut u[crow * cw..(crow + 1) * cw],
            &mut v[crow * cw..(crow + 1) * cw],
        );
        for cx in 0..cw {
            let x = cx * 2;
            let in_box = (box_y..box_y + side).contains(&row) && (box_x..box_x + side).contains(&x);
            let (cu, cv) = if row >= ramp_top || in_box {
                (128, 128)
            } else {
                let bar = BARS[x / bar_w];
                (bar.1, bar.2)
            };
            uline[cx] = cu;
            vline[cx] = cv;
        }
    }
}

/// Renders frame `n` of the test pattern at `width × height`, stamped with `capture_us`.
pub fn render(width: u32, height: u32, n: u32, capture_us: u64) -> Result<VideoFrame> {
    let grid = Grid::for_size(width, height)?;
    let mut frame = VideoFrame::black(width, height, capture_us)?;
    draw_picture(&mut frame, grid.band_height(), n);
    write_marker(&mut frame, Marker::new(n, capture_us))?;
    Ok(frame)
}

/// The test pattern as a [`VideoSource`]: frame n is rendered on demand and stamped with the
/// clock's time at that moment. Never sleeps: hold it to real time with a [`crate::Pacer`].
#[derive(Debug)]
pub struct TestPattern {
    format: VideoFormat,
    clock: SharedClock,
    next: u32,
}

impl TestPattern {
    /// A test pattern of the given size and rate.
    pub fn new(format: VideoFormat, clock: SharedClock) -> Result<Self> {
        Grid::for_size(format.width, format.height)?;
        if format.fps == 0 || format.fps > 240 {
            return Err(MediaError::Config(format!(
                "{} fps: must be 1..=240",
                format.fps
            )));
        }
        Ok(Self {
            format,
            clock,
            next: 0,
        })
    }

    /// The number the next frame will carry.
    pub fn next_number(&self) -> u32 {
        self.next
    }
}

impl VideoSource for TestPattern {
    fn format(&self) -> VideoFormat {
        self.format
    }

    fn next_frame(&mut self) -> Result<VideoFrame> {
        let n = self.next;
        self.next = self.next.wrapping_add(1);
        render(
            self.format.width,
            self.format.height,
            n,
            self.clock.now_us(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::sync::Arc;

    #[test]
    fn crc_matches_the_reference_check_value() {
        // CRC-16/CCITT-FALSE of "123456789" is 0x29B1.
        assert_eq!(crc16(b"123456789"), 0x29b1);
    }

    #[test]
    fn marker_round_trips_through_bits_and_rejects_a_flipped_bit() {
        let m = Marker::new(0xdead_beef, 0x1234_5678_9abc_def0);
        let bits = m.to_bits();
        assert_eq!(Marker::from_bits(bits), Some(m));
        for flip in [0, 17, 50, 95] {
            assert_eq!(
                Marker::from_bits(bits ^ (1u128 << flip)),
                None,
                "bit {flip}"
            );
        }
    }

    #[test]
    fn marker_reads_back_at_many_sizes() {
        for (w, h) in [
            (96, 32),
            (160, 120),
            (320, 240),
            (640, 480),
            (1280, 720),
            (1920, 1080),
        ] {
            let f = render(w, h, 1234, 1_700_000_000_123_456).expect("valid size");
            let m = read_marker(&f).expect("marker");
            assert_eq!(m.frame, 1234, "{w}x{h}");
            assert_eq!(
                m.capture_us_near(1_700_000_000_200_000),
                1_700_000_000_123_456
            );
        }
    }

    #[test]
    fn too_small_or_unmarked_frames_are_errors() {
        assert_eq!(
            render(64, 64, 0, 0).map_err(|e| e.code()).err(),
            Some("invalid_size")
        );
        let black = VideoFrame::black(640, 480, 0).expect("valid size");
        assert_eq!(
            read_marker(&black).map_err(|e| e.code()).err(),
            Some("malformed")
        );
    }

    #[test]
    fn age_survives_the_48_bit_wrap() {
        let m = Marker::new(1, TIME_MASK - 10);
        assert_eq!(m.age_us((1 << TIME_BITS) + 5), 16);
        assert_eq!(m.capture_us_near((1 << TIME_BITS) + 5), TIME_MASK - 10);
    }

    #[test]
    fn source_numbers_frames_and_stamps_them_from_the_clock() {
        let clock = ManualClock::new(5_000_000);
        let fmt = VideoFormat {
            width: 320,
            height: 240,
            fps: 30,
        };
        let mut src = TestPattern::new(fmt, Arc::new(clock.clone())).expect("valid");
        let a = src.next_frame().expect("frame");
        clock.advance_us(33_333);
        let b = src.next_frame().expect("frame");
        assert_eq!(read_marker(&a).expect("marker").frame, 0);
        assert_eq!(read_marker(&b).expect("marker").frame, 1);
        assert_eq!((a.capture_us, b.capture_us), (5_000_000, 5_033_333));
        // Deterministic: the same number and time give the same pixels; the picture moves.
        assert_eq!(render(320, 240, 1, 5_033_333).expect("frame"), b);
        assert_ne!(a.data()[320 * 100..], b.data()[320 * 100..]);
    }
}
