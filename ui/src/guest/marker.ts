// Reads the test pattern's marker (crates/media/src/testpattern.rs) out of a decoded picture:
// a 24 × 4 grid of black/white blocks in the top band holding the frame number (32 bits), the
// low 48 bits of the capture time and a CRC-16/CCITT-FALSE over both. The tests use it to check
// that the frames the browser decodes are Dyad's, in order; a camera picture reads as null.

const COLS = 24;
const ROWS = 4;
const BITS = COLS * ROWS;

export function crc16(bytes: Uint8Array): number {
  let crc = 0xffff;
  for (const b of bytes) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

/** Block size of the grid for a picture of this size (Grid::for_size), or null if too small. */
export function blockSize(width: number, height: number): number | null {
  if (width < COLS * 4 || height < ROWS * 8) return null;
  const natural = Math.floor(width / COLS);
  const aligned = natural >= 8 ? Math.floor(natural / 8) * 8 : Math.floor(natural / 2) * 2;
  return Math.max(Math.min(aligned, Math.floor(height / (ROWS * 2) / 2) * 2), 4);
}

/** Rows of the picture the marker band covers. */
export function bandHeight(width: number, height: number): number {
  return (blockSize(width, height) ?? 0) * ROWS;
}

/**
 * The frame number in `rgba` (the top `bandHeight` rows or more of a `width`-wide picture of
 * `height` rows), or null when the blocks do not spell a marker with a valid checksum.
 */
export function readMarker(rgba: Uint8ClampedArray, width: number, height: number): number | null {
  const block = blockSize(width, height);
  if (block === null) return null;
  const inset = Math.floor(block / 4);
  const span = Math.max(block - 2 * inset, 1);
  let bits = 0n;
  for (let bit = 0; bit < BITS; bit++) {
    const row = Math.floor(bit / COLS);
    const col = bit % COLS;
    const x0 = col * block + inset;
    const y0 = row * block + inset;
    let sum = 0;
    for (let y = y0; y < y0 + span; y++) {
      for (let x = x0; x < x0 + span; x++) {
        const i = (y * width + x) * 4;
        // BT.601 luma on the limited range the marker was drawn in (16 black, 235 white).
        sum += 16 + (65.481 * rgba[i] + 128.553 * rgba[i + 1] + 24.966 * rgba[i + 2]) / 255;
      }
    }
    bits = (bits << 1n) | (sum / (span * span) > (16 + 235) / 2 ? 1n : 0n);
  }
  const payload = bits >> 16n;
  const bytes = new Uint8Array(10);
  for (let i = 0; i < 10; i++) bytes[i] = Number((payload >> BigInt(8 * (9 - i))) & 0xffn);
  if (crc16(bytes) !== Number(bits & 0xffffn)) return null;
  return Number(payload >> 48n);
}
