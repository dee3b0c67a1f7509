//! Decompression of kernel payloads and modules with an output cap
//! (libxenguest's `xc_dom_try_gunzip` and the decoders of `xg_dom_bzimageloader.c`).
//!
//! Every decoder writes into a [`CappedSink`], so a hostile image cannot make us allocate
//! more than the cap (`/mh/limits/pv-kernel-max_size`, else 1 GiB) whatever its headers
//! claim. Crates: `flate2` (gzip), `liblzma` (xz with BCJ filters, legacy lzma), `ruzstd` (zstd),
//! `lz4_flex` (the blocks of the kernel's legacy lz4 framing), `lzo` (the LZO1X blocks of
//! the lzop container, which [`super::lzop`] reads as libxenguest does). bzip2 payloads
//! are refused with their own error: libxenguest decodes them only when built with
//! libbz2. (Debian's libxenguest 4.17 links neither libbz2 nor liblzo2, so it refuses
//! bzip2 and lzo kernels alike; upstream builds with liblzo2 accept lzo.)

use std::io::{self, Read, Write};

use super::KernelError;

/// `XC_DOM_DECOMPRESS_MAX`: libxenguest's default cap of a decompressed kernel (1 GiB).
pub const DECOMPRESS_MAX: u64 = 1 << 30;

/// A compression format, recognised by its magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Compression {
    /// gzip (`1f 8b`).
    Gzip,
    /// xz (`fd 37 7a 58 5a 00`).
    Xz,
    /// Legacy lzma "alone" format (`5d 00`).
    Lzma,
    /// zstd (`28 b5 2f fd`).
    Zstd,
    /// The kernel's legacy lz4 framing (`02 21 4c 18`).
    Lz4,
    /// lzop (`89 4c 5a 4f`).
    Lzo,
    /// bzip2 (`42 5a 68`): recognised, not supported.
    Bzip2,
}

impl Compression {
    /// The format of `data`, by the magic checks of `xc_dom_probe_bzimage_kernel` (in its
    /// order), or `None`.
    pub fn detect(data: &[u8]) -> Option<Compression> {
        let table: [(&[u8], Compression); 7] = [
            (b"\x1f\x8b", Compression::Gzip),
            (b"BZh", Compression::Bzip2),
            (b"\xfd7zXZ\x00", Compression::Xz),
            (b"\x28\xb5\x2f\xfd", Compression::Zstd),
            (b"\x5d\x00", Compression::Lzma),
            (b"\x89LZO", Compression::Lzo),
            (b"\x02\x21", Compression::Lz4),
        ];
        table
            .iter()
            .find(|(magic, _)| data.starts_with(magic))
            .map(|(_, c)| *c)
    }

    /// Lower-case name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Lzma => "lzma",
            Compression::Zstd => "zstd",
            Compression::Lz4 => "lz4",
            Compression::Lzo => "lzo",
            Compression::Bzip2 => "bzip2",
        }
    }
}

/// A `Write` that refuses to grow past `cap` bytes.
#[derive(Debug)]
pub struct CappedSink {
    buf: Vec<u8>,
    cap: u64,
    overflowed: bool,
}

impl CappedSink {
    /// An empty sink accepting at most `cap` bytes.
    pub fn new(cap: u64) -> Self {
        CappedSink {
            buf: Vec::new(),
            cap,
            overflowed: false,
        }
    }

    fn len64(&self) -> u64 {
        xg_ctrl::types::conv::usize_to_u64(self.buf.len())
    }
}

impl Write for CappedSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = self.cap.saturating_sub(self.len64());
        if xg_ctrl::types::conv::usize_to_u64(data.len()) > room {
            self.overflowed = true;
            return Err(io::Error::other("decompressed size cap reached"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Decompresses `data` in format `format` into at most `cap` bytes.
pub fn decompress(format: Compression, data: &[u8], cap: u64) -> Result<Vec<u8>, KernelError> {
    if format == Compression::Lzo {
        let out = super::lzop::decode(data, cap)?;
        if out.is_empty() {
            return Err(KernelError::EmptyPayload {
                format: format.name(),
            });
        }
        return Ok(out);
    }
    let mut sink = CappedSink::new(cap);
    let result: Result<(), io::Error> = match format {
        Compression::Gzip => gunzip(data, &mut sink),
        Compression::Xz => unxz(data, &mut sink),
        Compression::Lzma => unlzma(data, &mut sink),
        Compression::Zstd => unzstd(data, &mut sink),
        Compression::Lz4 => unlz4_legacy(data, &mut sink),
        Compression::Lzo | Compression::Bzip2 => {
            // Lzo is decoded above.
            return Err(KernelError::UnsupportedCompression {
                format: format.name(),
            });
        }
    };
    match result {
        Ok(()) if sink.buf.is_empty() => Err(KernelError::EmptyPayload {
            format: format.name(),
        }),
        Ok(()) => Ok(sink.buf),
        Err(_) if sink.overflowed => Err(KernelError::DecompressedTooLarge {
            format: format.name(),
            cap,
        }),
        Err(source) => Err(KernelError::Decompress {
            format: format.name(),
            source,
        }),
    }
}

fn gunzip(data: &[u8], sink: &mut CappedSink) -> io::Result<()> {
    let mut dec = flate2::read::GzDecoder::new(data);
    copy_capped(&mut dec, sink)
}

/// Decoder memory limit for xz and lzma: the window a hostile header asks for is refused
/// beyond this (Linux uses 32 MiB dictionaries).
const LZMA_MEMLIMIT: u64 = 256 << 20;

/// xz with any filter chain liblzma knows, in particular the x86 BCJ filter every x86
/// kernel build adds (`scripts/xz_wrap.sh`). One stream: the kernel's size trailer
/// after it is not read.
fn unxz(data: &[u8], sink: &mut CappedSink) -> io::Result<()> {
    let stream =
        liblzma::stream::Stream::new_stream_decoder(LZMA_MEMLIMIT, 0).map_err(io::Error::other)?;
    let mut dec = liblzma::bufread::XzDecoder::new_stream(data, stream);
    copy_capped(&mut dec, sink)
}

/// The legacy `.lzma` ("alone") format.
fn unlzma(data: &[u8], sink: &mut CappedSink) -> io::Result<()> {
    let stream =
        liblzma::stream::Stream::new_lzma_decoder(LZMA_MEMLIMIT).map_err(io::Error::other)?;
    let mut dec = liblzma::bufread::XzDecoder::new_stream(data, stream);
    copy_capped(&mut dec, sink)
}

fn unzstd(data: &[u8], sink: &mut CappedSink) -> io::Result<()> {
    let mut input = data;
    let mut dec = ruzstd::decoding::StreamingDecoder::new(&mut input).map_err(io::Error::other)?;
    copy_capped(&mut dec, sink)
}

/// Legacy lz4 framing (`lz4 -l`, what the kernel build uses): magic `0x184C2102`, then
/// blocks of `u32` compressed length + data, each decompressing to at most 8 MiB, until the
/// input ends or a length is not a block (the size trailer).
fn unlz4_legacy(data: &[u8], sink: &mut CappedSink) -> io::Result<()> {
    const LEGACY_MAGIC: u32 = 0x184C_2102;
    const BLOCK_MAX: usize = 8 << 20;
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_owned());
    let magic = read_le32(data, 0).ok_or_else(|| bad("lz4 header truncated"))?;
    if magic != LEGACY_MAGIC {
        return Err(bad("not a legacy lz4 stream"));
    }
    let mut at = 4usize;
    let mut block = vec![0u8; BLOCK_MAX];
    while let Some(len) = read_le32(data, at) {
        if len == LEGACY_MAGIC {
            // Concatenated stream.
            at += 4;
            continue;
        }
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let start = at + 4;
        let Some(end) = start.checked_add(len).filter(|e| *e <= data.len()) else {
            // The size trailer or garbage: the kernel's decoder stops here as well.
            break;
        };
        let n = lz4_flex::block::decompress_into(&data[start..end], &mut block)
            .map_err(io::Error::other)?;
        sink.write_all(&block[..n])?;
        at = end;
    }
    Ok(())
}

fn read_le32(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn copy_capped<R: Read>(r: &mut R, sink: &mut CappedSink) -> io::Result<()> {
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match r.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        sink.write_all(&chunk[..n])?;
    }
}
