//! YUV4MPEG2 (`.y4m`) files: play a recorded clip as a [`VideoSource`], and record one.
//!
//! The format: one header line `YUV4MPEG2 W<width> H<height> F<num>:<den> [I.. A.. C.. X..]`, then
//! per frame a line `FRAME[ params]` followed by the raw I420 bytes. We read 4:2:0 8-bit only.

use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::clock::SharedClock;
use crate::error::{MediaError, Result};
use crate::frame::{check_dimensions, i420_len, VideoFrame};
use crate::source::{VideoFormat, VideoSource};

/// The first bytes of every Y4M file.
const MAGIC: &str = "YUV4MPEG2";
/// Longest header or frame line we read (the real ones are well under 100 bytes).
pub const MAX_LINE: usize = 1024;
/// Highest frame rate we accept.
pub const MAX_FPS: u32 = 240;

/// The stream header of a Y4M file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Y4mHeader {
    /// Width in pixels (even).
    pub width: u32,
    /// Height in pixels (even).
    pub height: u32,
    /// Frame rate numerator (`F<num>:<den>`).
    pub fps_num: u32,
    /// Frame rate denominator.
    pub fps_den: u32,
}

impl Y4mHeader {
    /// Parses a header line (without its trailing newline).
    ///
    /// Errors: `Malformed` for a missing magic, tag or value that does not parse; `InvalidSize`
    /// for sizes a frame cannot have; `Unsupported` for a colour space other than 8-bit 4:2:0 or
    /// a rate outside 1..=240 frames per second.
    pub fn parse(line: &[u8]) -> Result<Y4mHeader> {
        let line = std::str::from_utf8(line)
            .map_err(|_| MediaError::Malformed("Y4M header is not ASCII".into()))?;
        let mut fields = line.split(' ');
        if fields.next() != Some(MAGIC) {
            return Err(MediaError::Malformed(format!(
                "not a Y4M file (no {MAGIC} magic)"
            )));
        }
        let (mut width, mut height, mut rate) = (None, None, None);
        for field in fields {
            let mut chars = field.chars();
            let tag = chars.next();
            let value = chars.as_str();
            match tag {
                Some('W') => width = Some(parse_number("width", value)?),
                Some('H') => height = Some(parse_number("height", value)?),
                Some('F') => {
                    let Some((num, den)) = value.split_once(':') else {
                        return Err(MediaError::Malformed(format!(
                            "Y4M frame rate {value:?} is not num:den"
                        )));
                    };
                    rate = Some((parse_number("rate", num)?, parse_number("rate", den)?));
                }
                Some('C') => match value {
                    "420" | "420jpeg" | "420paldv" | "420mpeg2" => {}
                    other => {
                        return Err(MediaError::Unsupported(format!(
                            "Y4M colour space C{other}: only 8-bit 4:2:0"
                        )))
                    }
                },
                // Interlacing, aspect ratio and extensions do not change the bytes we read.
                Some('I' | 'A' | 'X') => {}
                _ => {
                    return Err(MediaError::Malformed(format!(
                        "Y4M header has an unknown field {field:?}"
                    )))
                }
            }
        }
        let missing = |what: &str| MediaError::Malformed(format!("Y4M header without {what}"));
        let width = width.ok_or_else(|| missing("W (width)"))?;
        let height = height.ok_or_else(|| missing("H (height)"))?;
        let (fps_num, fps_den) = rate.ok_or_else(|| missing("F (frame rate)"))?;
        check_dimensions(width, height)?;
        check_rate(fps_num, fps_den)?;
        Ok(Y4mHeader {
            width,
            height,
            fps_num,
            fps_den,
        })
    }

    /// The header line, newline included.
    pub fn to_line(&self) -> String {
        format!(
            "{MAGIC} W{} H{} F{}:{} Ip A1:1 C420jpeg\n",
            self.width, self.height, self.fps_num, self.fps_den
        )
    }

    /// Frames per second rounded to a whole number (at least 1).
    pub fn fps(&self) -> u32 {
        let (num, den) = (u64::from(self.fps_num), u64::from(self.fps_den.max(1)));
        u32::try_from((num + den / 2) / den)
            .unwrap_or(MAX_FPS)
            .max(1)
    }

    /// Capture time of frame `n` relative to the first, in microseconds (exact, no drift).
    pub fn frame_time_us(&self, n: u64) -> u64 {
        let us = u128::from(n) * 1_000_000 * u128::from(self.fps_den) / u128::from(self.fps_num);
        u64::try_from(us).unwrap_or(u64::MAX)
    }

    /// The size and (rounded) rate as a [`VideoFormat`].
    pub fn format(&self) -> VideoFormat {
        VideoFormat {
            width: self.width,
            height: self.height,
            fps: self.fps(),
        }
    }
}

fn parse_number(what: &str, value: &str) -> Result<u32> {
    value
        .parse()
        .map_err(|_| MediaError::Malformed(format!("Y4M {what} {value:?} is not a number")))
}

/// Accepts rates from 1 to [`MAX_FPS`] frames per second.
fn check_rate(num: u32, den: u32) -> Result<()> {
    if num == 0 || den == 0 {
        return Err(MediaError::Unsupported(format!(
            "frame rate {num}:{den}: zero"
        )));
    }
    let (num, den) = (u64::from(num), u64::from(den));
    if num < den || num > u64::from(MAX_FPS) * den {
        return Err(MediaError::Unsupported(format!(
            "frame rate {num}:{den}: outside 1..={MAX_FPS} fps"
        )));
    }
    Ok(())
}

/// Reads one line of at most [`MAX_LINE`] bytes, without its newline. `Ok(None)` at end of file,
/// including a last line cut short.
fn read_line(reader: &mut impl BufRead) -> Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let limit = MAX_LINE as u64 + 1;
    reader.take(limit).read_until(b'\n', &mut line)?;
    match line.pop() {
        Some(b'\n') => Ok(Some(line)),
        Some(_) if line.len() >= MAX_LINE => Err(MediaError::Malformed(format!(
            "Y4M line longer than {MAX_LINE} bytes"
        ))),
        _ => Ok(None),
    }
}

/// A Y4M file played in a loop. Frames come as fast as they are asked for; pacing them to real
/// time is the caller's job (see [`crate::source::Pacer`]).
#[derive(Debug)]
pub struct Y4mFile {
    reader: BufReader<File>,
    header: Y4mHeader,
    /// Byte offset of the first `FRAME` line (where a loop restarts).
    first_frame: u64,
    /// Clock reading at open: the capture time of frame 0.
    start_us: u64,
    /// Frames returned so far (keeps counting across loops, so time keeps moving).
    frames: u64,
    /// Frames read since the last rewind.
    frames_this_pass: u64,
}

impl Y4mFile {
    /// Opens a Y4M file and checks that it holds at least one complete frame.
    ///
    /// Frame `n` is stamped `clock reading at open + n × frame interval`.
    pub fn open(path: impl AsRef<Path>, clock: SharedClock) -> Result<Y4mFile> {
        let mut reader = BufReader::new(File::open(path)?);
        let Some(line) = read_line(&mut reader)? else {
            return Err(MediaError::Truncated("Y4M file without a header".into()));
        };
        let header = Y4mHeader::parse(&line)?;
        let first_frame = line.len() as u64 + 1;
        let mut file = Y4mFile {
            reader,
            header,
            first_frame,
            start_us: clock.now_us(),
            frames: 0,
            frames_this_pass: 0,
        };
        if file.read_frame()?.is_none() {
            return Err(MediaError::Truncated(format!(
                "Y4M file has no complete {}x{} frame",
                header.width, header.height
            )));
        }
        file.rewind()?;
        Ok(file)
    }

    /// The stream header.
    pub fn header(&self) -> Y4mHeader {
        self.header
    }

    fn rewind(&mut self) -> Result<()> {
        self.reader.seek(SeekFrom::Start(self.first_frame))?;
        self.frames_this_pass = 0;
        Ok(())
    }

    /// The next frame's I420 bytes, or `None` at the end (a cut-short last frame is an end too).
    fn read_frame(&mut self) -> Result<Option<Vec<u8>>> {
        let Some(line) = read_line(&mut self.reader)? else {
            return Ok(None);
        };
        if !(line == b"FRAME" || line.starts_with(b"FRAME ")) {
            return Err(MediaError::Malformed(format!(
                "Y4M frame {} does not start with FRAME",
                self.frames_this_pass
            )));
        }
        let mut data = vec![0u8; i420_len(self.header.width, self.header.height)];
        match self.reader.read_exact(&mut data) {
            Ok(()) => {
                self.frames_this_pass += 1;
                Ok(Some(data))
            }
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

impl VideoSource for Y4mFile {
    fn format(&self) -> VideoFormat {
        self.header.format()
    }

    fn next_frame(&mut self) -> Result<VideoFrame> {
        let data = match self.read_frame()? {
            Some(data) => data,
            None => {
                self.rewind()?;
                self.read_frame()?.ok_or_else(|| {
                    MediaError::Truncated("Y4M file has no complete frame any more".into())
                })?
            }
        };
        let capture_us = self
            .start_us
            .saturating_add(self.header.frame_time_us(self.frames));
        self.frames += 1;
        VideoFrame::from_i420(self.header.width, self.header.height, data, capture_us)
    }
}

/// Writes I420 frames as a Y4M stream to any [`Write`]: a file, a socket, a `Vec<u8>`.
#[derive(Debug)]
pub struct Y4mWriter<W: Write> {
    out: W,
    header: Y4mHeader,
}

impl<W: Write> Y4mWriter<W> {
    /// Writes the stream header for frames of `format` (`fps` frames per second).
    ///
    /// Errors: `InvalidSize` for a size a frame cannot have; `Config` for a rate outside
    /// 1..=240.
    pub fn new(mut out: W, format: VideoFormat) -> Result<Self> {
        check_dimensions(format.width, format.height)?;
        if format.fps == 0 || format.fps > MAX_FPS {
            return Err(MediaError::Config(format!(
                "{} fps: Y4M recording takes 1..={MAX_FPS}",
                format.fps
            )));
        }
        let header = Y4mHeader {
            width: format.width,
            height: format.height,
            fps_num: format.fps,
            fps_den: 1,
        };
        out.write_all(header.to_line().as_bytes())?;
        Ok(Self { out, header })
    }

    /// Appends one frame; it must have the stream's size.
    pub fn write_frame(&mut self, frame: &VideoFrame) -> Result<()> {
        if (frame.width(), frame.height()) != (self.header.width, self.header.height) {
            return Err(MediaError::InvalidSize(format!(
                "{}x{} frame in a {}x{} Y4M stream",
                frame.width(),
                frame.height(),
                self.header.width,
                self.header.height
            )));
        }
        self.out.write_all(b"FRAME\n")?;
        self.out.write_all(frame.data())?;
        Ok(())
    }

    /// Flushes and hands back the writer.
    pub fn finish(mut self) -> Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Y4mHeader, &'static str> {
        Y4mHeader::parse(line.as_bytes()).map_err(|e| e.code())
    }

    #[test]
    fn parses_real_headers() {
        let h = parse("YUV4MPEG2 W640 H480 F30000:1001 Ip A1:1 C420jpeg XYSCSS=420JPEG")
            .expect("ffmpeg's header");
        assert_eq!(
            h,
            Y4mHeader {
                width: 640,
                height: 480,
                fps_num: 30000,
                fps_den: 1001
            }
        );
        assert_eq!(h.fps(), 30);
        assert_eq!(h.frame_time_us(30), 1_001_000);
        for c in ["", " C420", " C420paldv", " C420mpeg2"] {
            let h = parse(&format!("YUV4MPEG2 W4 H2 F25:1{c}")).expect("4:2:0");
            assert_eq!(
                h.format(),
                VideoFormat {
                    width: 4,
                    height: 2,
                    fps: 25
                }
            );
            assert_eq!(h.frame_time_us(1), 40_000);
        }
    }

    #[test]
    fn rejects_bad_headers() {
        let cases = [
            ("YUV4MPEG W4 H2 F25:1", "malformed"),
            ("", "malformed"),
            ("YUV4MPEG2 H2 F25:1", "malformed"),
            ("YUV4MPEG2 W4 F25:1", "malformed"),
            ("YUV4MPEG2 W4 H2", "malformed"),
            ("YUV4MPEG2 W4 H2 F25", "malformed"),
            ("YUV4MPEG2 Wfour H2 F25:1", "malformed"),
            ("YUV4MPEG2 W-4 H2 F25:1", "malformed"),
            ("YUV4MPEG2 W4 H2 F25:1 Q7", "malformed"),
            ("YUV4MPEG2  W4 H2 F25:1", "malformed"),
            ("YUV4MPEG2 W5 H2 F25:1", "invalid_size"),
            ("YUV4MPEG2 W0 H2 F25:1", "invalid_size"),
            ("YUV4MPEG2 W99999 H2 F25:1", "invalid_size"),
            ("YUV4MPEG2 W4 H2 F25:1 C444", "unsupported_format"),
            ("YUV4MPEG2 W4 H2 F25:1 C420p10", "unsupported_format"),
            ("YUV4MPEG2 W4 H2 F0:1", "unsupported_format"),
            ("YUV4MPEG2 W4 H2 F25:0", "unsupported_format"),
            ("YUV4MPEG2 W4 H2 F241:1", "unsupported_format"),
            ("YUV4MPEG2 W4 H2 F1:2", "unsupported_format"),
        ];
        for (line, code) in cases {
            assert_eq!(parse(line), Err(code), "for {line:?}");
        }
        assert_eq!(
            Y4mHeader::parse(b"YUV4MPEG2 W4 H2 F25:1 \xff").map_err(|e| e.code()),
            Err("malformed")
        );
    }

    #[test]
    fn lines_are_bounded() {
        let mut long = vec![b'X'; MAX_LINE + 10];
        long.push(b'\n');
        let mut reader = &long[..];
        assert_eq!(
            read_line(&mut reader).map_err(|e| e.code()),
            Err("malformed")
        );
        let mut fits = vec![b'X'; MAX_LINE];
        fits.push(b'\n');
        let mut reader = &fits[..];
        assert_eq!(
            read_line(&mut reader).ok().flatten().map(|l| l.len()),
            Some(MAX_LINE)
        );
        let mut cut: &[u8] = b"FRAM";
        assert!(matches!(read_line(&mut cut), Ok(None)));
    }

    #[test]
    fn writer_header_reads_back() {
        let format = VideoFormat {
            width: 4,
            height: 2,
            fps: 30,
        };
        let mut writer = Y4mWriter::new(Vec::new(), format).expect("valid format");
        let frame = VideoFrame::black(4, 2, 0).expect("valid size");
        writer.write_frame(&frame).expect("same size");
        let bad = VideoFrame::black(2, 2, 0).expect("valid size");
        assert_eq!(
            writer.write_frame(&bad).map_err(|e| e.code()),
            Err("invalid_size")
        );
        let bytes = writer.finish().expect("vec never fails");
        let newline = bytes.iter().position(|&b| b == b'\n').expect("header line");
        let header = Y4mHeader::parse(&bytes[..newline]).expect("our own header");
        assert_eq!(header.format(), format);
        assert_eq!(&bytes[newline + 1..newline + 7], b"FRAME\n");
        assert_eq!(bytes.len(), newline + 7 + 12);
        for fps in [0, 241] {
            let format = VideoFormat { fps, ..format };
            assert_eq!(
                Y4mWriter::new(Vec::new(), format)
                    .map_err(|e| e.code())
                    .err(),
                Some("invalid_config")
            );
        }
    }
}
