//! The lzop container of LZO-compressed kernels (`CONFIG_KERNEL_LZO`: `lzop -9` plus the
//! kernel's 4-byte size trailer), decoded as libxenguest 4.17 does
//! (`xc_try_lzo1x_decode` in `xg_dom_bzimageloader.c`; MiniOS builds use Xen's
//! `unlzo.c`, which reads the same layout).
//!
//! Header: 9 magic bytes, version, library version, version needed, method, a level byte
//! when the version is at least 0x0940, flags, mode, mtime (a high word too from 0x0940),
//! a name of up to 255 bytes and a checksum. Then blocks of `dst_len` (be32, 0 ends the
//! stream), `src_len` (be32), one 4-byte checksum and `src_len` bytes of LZO1X data (or
//! the bytes as they are when `src_len == dst_len`).
//!
//! Like libxenguest we skip both checksums without verifying them and always skip one
//! checksum word per block. Streams this layout cannot describe are refused up front
//! rather than misread: a filter or extra header field, a method that is not LZO1X, or
//! checksum flags that do not ask for exactly one word per block. Block sizes are capped
//! at libxenguest's 64 MiB (`LZOP_MAX_BLOCK_SIZE`; MiniOS's `unlzo.c` allows 256 KiB),
//! and the output at the caller's cap before anything is allocated for a block. A
//! stored block (`src_len == dst_len`) is copied, as lzop and `unlzo.c` do. When exactly
//! four bytes follow the end marker they are the size trailer and must match the output
//! (libxenguest's "Unexpected output size").
//!
//! The LZO1X blocks themselves are decoded by the `lzo` crate (safe Rust).

use super::{KernelError, LzoProblem};

/// The 9-byte lzop magic.
pub const MAGIC: [u8; 9] = [0x89, b'L', b'Z', b'O', 0x00, 0x0d, 0x0a, 0x1a, 0x0a];

/// `LZOP_MAX_BLOCK_SIZE`: the largest block libxenguest decodes (64 MiB).
pub const MAX_BLOCK: u32 = 64 << 20;

/// Header flag: a filter (its id follows the flags). libxenguest skips it without undoing
/// the filter; we refuse it.
pub const F_H_FILTER: u32 = 0x0000_0800;
/// Header flag: an extra field after the header, which libxenguest does not skip.
pub const F_H_EXTRA_FIELD: u32 = 0x0000_0040;
/// Header flag: an Adler-32 of the decompressed block.
pub const F_ADLER32_D: u32 = 0x0000_0001;
/// Header flag: an Adler-32 of the compressed block.
pub const F_ADLER32_C: u32 = 0x0000_0002;
/// Header flag: a CRC-32 of the decompressed block.
pub const F_CRC32_D: u32 = 0x0000_0100;
/// Header flag: a CRC-32 of the compressed block.
pub const F_CRC32_C: u32 = 0x0000_0200;

/// Oldest lzop format version (lzop refuses older ones).
const VERSION_MIN: u16 = 0x0900;
/// From this version on the header has a level byte and an mtime high word.
const VERSION_LEVEL: u16 = 0x0940;

/// `M_LZO1X_1`, `M_LZO1X_1_15`, `M_LZO1X_999`: the methods lzop writes with LZO1X.
const LZO1X_METHODS: [u8; 3] = [1, 2, 3];

/// Reads lzop data with bounds checks, tracking the offset for messages.
struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn offset(&self) -> u64 {
        xg_ctrl::types::conv::usize_to_u64(self.at)
    }

    fn fail(&self, problem: LzoProblem) -> KernelError {
        KernelError::Lzo {
            offset: self.offset(),
            problem,
        }
    }

    /// The next `len` bytes, or `Truncated` naming `what`.
    fn take(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], KernelError> {
        let bytes = self
            .at
            .checked_add(len)
            .and_then(|end| self.data.get(self.at..end))
            .ok_or_else(|| self.fail(LzoProblem::Truncated { what }))?;
        self.at += len;
        Ok(bytes)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, KernelError> {
        Ok(self.take(1, what)?[0])
    }

    fn be16(&mut self, what: &'static str) -> Result<u16, KernelError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn be32(&mut self, what: &'static str) -> Result<u32, KernelError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn rest(&self) -> &'a [u8] {
        self.data.get(self.at..).unwrap_or_default()
    }
}

/// Decodes the lzop stream `data` into at most `cap` bytes.
pub fn decode(data: &[u8], cap: u64) -> Result<Vec<u8>, KernelError> {
    let mut r = Reader { data, at: 0 };
    read_header(&mut r)?;
    let mut out = Vec::new();
    let mut block = 0u64;
    loop {
        let start = r.at;
        let dst_len = r.be32("block length")?;
        if dst_len == 0 {
            break;
        }
        if dst_len > MAX_BLOCK {
            return Err(r.fail(LzoProblem::BlockTooLarge { dst_len }));
        }
        let src_len = r.be32("compressed block length")?;
        r.take(4, "block checksum")?;
        if src_len == 0 {
            return Err(r.fail(LzoProblem::EmptyBlock));
        }
        if src_len > dst_len {
            return Err(r.fail(LzoProblem::BlockExpands { src_len, dst_len }));
        }
        let left = xg_ctrl::types::conv::usize_to_u64(r.rest().len());
        if u64::from(src_len) > left {
            return Err(r.fail(LzoProblem::BlockPastEnd { src_len, left }));
        }
        let room = cap.saturating_sub(xg_ctrl::types::conv::usize_to_u64(out.len()));
        if u64::from(dst_len) > room {
            return Err(KernelError::DecompressedTooLarge { format: "lzo", cap });
        }
        // Both are at most 64 MiB (checked above), so they fit a usize.
        let src_len = usize::try_from(src_len).unwrap_or(usize::MAX);
        let dst_len_usize = usize::try_from(dst_len).unwrap_or(usize::MAX);
        let src = r.take(src_len, "block data")?;
        if src_len == dst_len_usize {
            out.extend_from_slice(src);
        } else {
            let old = out.len();
            out.resize(old + dst_len_usize, 0);
            let written = lzo::decompress_into(src, &mut out[old..]).map_err(|source| {
                KernelError::LzoBlock {
                    block,
                    offset: xg_ctrl::types::conv::usize_to_u64(start),
                    source,
                }
            })?;
            if written != dst_len_usize {
                return Err(KernelError::Lzo {
                    offset: xg_ctrl::types::conv::usize_to_u64(start),
                    problem: LzoProblem::ShortBlock {
                        dst_len,
                        written: xg_ctrl::types::conv::usize_to_u64(written),
                    },
                });
            }
        }
        block += 1;
    }
    check_trailer(&r, out.len())?;
    Ok(out)
}

/// The header, up to the first block; refuses what the block layout cannot describe.
fn read_header(r: &mut Reader<'_>) -> Result<(), KernelError> {
    let magic = r.take(MAGIC.len(), "magic")?;
    if magic != MAGIC {
        r.at = 0;
        return Err(r.fail(LzoProblem::BadMagic));
    }
    let version = r.be16("version")?;
    if version < VERSION_MIN {
        return Err(r.fail(LzoProblem::BadVersion { version }));
    }
    r.be16("library version")?;
    r.be16("version needed")?;
    let method = r.u8("method")?;
    if !LZO1X_METHODS.contains(&method) {
        return Err(r.fail(LzoProblem::BadMethod { method }));
    }
    if version >= VERSION_LEVEL {
        r.u8("level")?;
    }
    let flags = r.be32("flags")?;
    if flags & F_H_FILTER != 0 {
        return Err(r.fail(LzoProblem::Filter));
    }
    if flags & F_H_EXTRA_FIELD != 0 {
        return Err(r.fail(LzoProblem::ExtraField));
    }
    let decompressed_sums = [F_ADLER32_D, F_CRC32_D]
        .iter()
        .filter(|f| flags & **f != 0)
        .count();
    if decompressed_sums != 1 || flags & (F_ADLER32_C | F_CRC32_C) != 0 {
        return Err(r.fail(LzoProblem::ChecksumFlags { flags }));
    }
    r.be32("mode")?;
    r.be32("mtime")?;
    if version >= VERSION_LEVEL {
        r.be32("mtime high word")?;
    }
    let name_len = r.u8("name length")?;
    r.take(usize::from(name_len), "name")?;
    r.be32("header checksum")?;
    Ok(())
}

/// Four bytes after the end marker are the kernel's size trailer: they must match.
fn check_trailer(r: &Reader<'_>, out_len: usize) -> Result<(), KernelError> {
    let rest = r.rest();
    if let [a, b, c, d] = *rest {
        let trailer = u32::from_le_bytes([a, b, c, d]);
        let produced = xg_ctrl::types::conv::usize_to_u64(out_len);
        if u64::from(trailer) != produced {
            return Err(r.fail(LzoProblem::SizeTrailer { trailer, produced }));
        }
    } else if !rest.is_empty() {
        log::debug!("lzo: {} bytes after the end marker ignored", rest.len());
    }
    Ok(())
}

/// Writes `data` as an lzop stream (for tests and fuzz seeds): the header `lzop` writes
/// for a pipe (no name, an Adler-32 per block), blocks of at most `block_size` bytes
/// compressed with a simple LZO1X encoder that codes runs of one byte as matches, stored
/// where that does not make the block smaller, and the end marker.
pub fn write(data: &[u8], block_size: usize) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    let header_start = out.len();
    out.extend_from_slice(&0x1040u16.to_be_bytes()); // version
    out.extend_from_slice(&0x20a0u16.to_be_bytes()); // library version
    out.extend_from_slice(&0x0940u16.to_be_bytes()); // version needed
    out.push(1); // M_LZO1X_1
    out.push(5); // level
    out.extend_from_slice(&(F_ADLER32_D | 0x0300_0000).to_be_bytes()); // Unix
    out.extend_from_slice(&0o100_644u32.to_be_bytes()); // mode
    out.extend_from_slice(&[0; 8]); // mtime
    out.push(0); // no name
    let sum = adler32(&out[header_start..]);
    out.extend_from_slice(&sum.to_be_bytes());
    for chunk in data.chunks(block_size.max(1)) {
        let packed = lzo1x_runs(chunk);
        let body = if packed.len() < chunk.len() {
            &packed[..]
        } else {
            chunk
        };
        let len32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes();
        out.extend_from_slice(&len32(chunk.len()));
        out.extend_from_slice(&len32(body.len()));
        out.extend_from_slice(&adler32(chunk).to_be_bytes());
        out.extend_from_slice(body);
    }
    out.extend_from_slice(&[0; 4]);
    out
}

/// Adler-32, the checksum lzop writes by default.
fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for byte in data {
        a = (a + u32::from(*byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

/// A piece of an LZO1X block being written.
enum Token {
    /// Literal bytes `start..end` of the data.
    Literals(usize, usize),
    /// A distance-1 match of this length.
    Run(usize),
}

/// One LZO1X block of `data`: literal runs, and runs of three or more copies of the
/// previous byte as distance-1 matches.
fn lzo1x_runs(data: &[u8]) -> Vec<u8> {
    // Literal runs and matches alternate, starting with a literal run.
    let mut tokens = Vec::new();
    let mut lit_start = 0;
    let mut i = 1;
    while i < data.len() {
        let run = data[i..].iter().take_while(|b| **b == data[i - 1]).count();
        if run >= 3 && i > lit_start {
            tokens.push(Token::Literals(lit_start, i));
            tokens.push(Token::Run(run));
            i += run;
            lit_start = i;
        } else {
            i += 1;
        }
    }
    if lit_start < data.len() {
        tokens.push(Token::Literals(lit_start, data.len()));
    }
    let mut out = Vec::new();
    for (n, token) in tokens.iter().enumerate() {
        match *token {
            Token::Run(len) => {
                if len <= 33 {
                    out.push(32 | u8::try_from(len - 2).unwrap_or(0));
                } else {
                    out.push(32);
                    push_length(&mut out, len - 33);
                }
                // Up to three literals that follow ride in the distance word.
                let next = match tokens.get(n + 1) {
                    Some(Token::Literals(s, e)) if e - s <= 3 => e - s,
                    _ => 0,
                };
                out.extend_from_slice(&u16::try_from(next).unwrap_or(0).to_le_bytes());
            }
            Token::Literals(start, end) => {
                let lits = &data[start..end];
                if n == 0 && lits.len() <= 238 {
                    out.push(17 + u8::try_from(lits.len()).unwrap_or(0));
                } else if n > 0 && lits.len() <= 3 {
                    // Announced by the match before.
                } else if lits.len() <= 18 {
                    out.push(u8::try_from(lits.len() - 3).unwrap_or(0));
                } else {
                    out.push(0);
                    push_length(&mut out, lits.len() - 18);
                }
                out.extend_from_slice(lits);
            }
        }
    }
    out.extend_from_slice(&[0x11, 0, 0]);
    out
}

/// LZO1X's length extension of `value` (at least 1): zero bytes for 255 each, then the rest.
fn push_length(out: &mut Vec<u8>, value: usize) {
    let zeros = (value - 1) / 255;
    out.resize(out.len() + zeros, 0);
    out.push(u8::try_from(value - 255 * zeros).unwrap_or(255));
}
