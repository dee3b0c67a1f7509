//! lzo-compressed kernels: bzImages whose payload the real `lzop` tool made (as the
//! kernel build does: `lzop -9` plus a 4-byte size trailer), streams our own writer
//! makes, and malformed streams, each refused with its own error.
//!
//! The tool tests need `lzop` (Debian package `lzop`, installed by `cargo xtask ci`):
//! without it they are skipped locally and fail under `CI=true`.
#![allow(clippy::print_stderr)]

use std::io::Write;
use std::process::{Command, Stdio};

use proptest::prelude::*;
use xg_guest::kernel::bzimage::wrap_payload;
use xg_guest::kernel::decompress::decompress;
use xg_guest::kernel::lzop::{self, MAGIC};
use xg_guest::kernel::test_kernel::{pv_kernel_with, test_pv_kernel, test_pvh_kernel};
use xg_guest::kernel::{open_kernel, Compression, KernelError, KernelFormat, LzoProblem};

const CAP: u64 = 64 << 20;

/// Runs `lzop` with `args` on `input`; `None` (a skip) when the tool is missing, a panic
/// under `CI=true`.
fn lzop_tool(args: &[&str], input: &[u8]) -> Option<Vec<u8>> {
    let child = Command::new("lzop")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true but lzop cannot be run (apt-get install lzop): {e}");
            }
            eprintln!("SKIPPED: lzop not available: {e}");
            return None;
        }
    };
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "lzop {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(out.stdout)
}

fn with_size_trailer(mut c: Vec<u8>, raw_len: usize) -> Vec<u8> {
    c.extend_from_slice(&u32::try_from(raw_len).unwrap().to_le_bytes());
    c
}

/// Bytes that do not compress (xorshift), so lzop stores their blocks.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed.to_le_bytes()[0]
        })
        .collect()
}

/// A PV kernel of about 1 MiB: four lzop blocks, one of them all noise (stored).
fn big_pv_kernel() -> Vec<u8> {
    let mut data = vec![0x90u8; 300 << 10];
    data.extend(noise(600 << 10, 0x1234_5678));
    data.extend(b"text ".repeat(20_000));
    pv_kernel_with(&data, 0x1000)
}

fn lzo_bzimage(elf: &[u8], args: &[&str]) -> Option<Vec<u8>> {
    let packed = lzop_tool(args, elf)?;
    Some(wrap_payload(&with_size_trailer(packed, elf.len())))
}

#[test]
fn lzop_tool_bzimages_decompress_to_the_elf() {
    for elf in [test_pvh_kernel(), test_pv_kernel(), big_pv_kernel()] {
        for args in [&["-9", "-c"][..], &["-1", "-c"][..], &["-c", "--crc32"][..]] {
            let Some(img) = lzo_bzimage(&elf, args) else {
                return;
            };
            let (out, fmt) = open_kernel(&img, CAP).unwrap();
            assert_eq!(fmt, KernelFormat::BzImage(Compression::Lzo), "{args:?}");
            assert!(out == elf, "lzop {args:?}: decoded bytes differ");
        }
    }
}

#[test]
fn lzop_tool_stream_has_stored_and_compressed_blocks() {
    let elf = big_pv_kernel();
    let Some(packed) = lzop_tool(&["-9", "-c"], &elf) else {
        return;
    };
    // A payload without the size trailer decodes too (MiniOS's unlzo.c ignores it).
    assert!(decompress(Compression::Lzo, &packed, CAP).unwrap() == elf);
    // The noise block is stored: the lengths after the header are equal somewhere.
    let blocks = block_lengths(&packed);
    assert!(blocks.len() >= 4, "{blocks:?}");
    assert!(blocks.iter().any(|(d, s)| d == s), "{blocks:?}");
    assert!(blocks.iter().any(|(d, s)| s < d), "{blocks:?}");
}

/// The (dst_len, src_len) of each block of a stream with a nameless, filterless
/// version-0x0940+ header and one checksum per block.
fn block_lengths(stream: &[u8]) -> Vec<(u32, u32)> {
    let be32 = |at: usize| u32::from_be_bytes(stream[at..at + 4].try_into().unwrap());
    let mut at = 9 + 2 + 2 + 2 + 1 + 1 + 4 + 4 + 8;
    at += 1 + usize::from(stream[at]) + 4;
    let mut out = Vec::new();
    while be32(at) != 0 {
        let (dst, src) = (be32(at), be32(at + 4));
        out.push((dst, src));
        at += 12 + usize::try_from(src).unwrap();
    }
    out
}

#[test]
fn own_writer_round_trips_through_the_decoder_and_lzop() {
    let cases: Vec<(Vec<u8>, usize)> = vec![
        (test_pvh_kernel(), 256 << 10),
        (big_pv_kernel(), 256 << 10),
        (big_pv_kernel(), 4096),
        (b"abc".to_vec(), 16),
        (b"aaaaaaaaaaaaaaaaaaaaaaaab".to_vec(), 64),
        (
            [vec![7u8; 5000], noise(300, 1), vec![0; 40]].concat(),
            1 << 20,
        ),
    ];
    for (data, block) in cases {
        let stream = lzop::write(&data, block);
        let out = decompress(Compression::Lzo, &stream, CAP).unwrap();
        assert!(out == data, "{} bytes, block {block}", data.len());
        // liblzo (through lzop) agrees that the writer makes valid LZO1X and checksums.
        if let Some(tool) = lzop_tool(&["-d", "-c"], &stream) {
            assert!(tool == data, "lzop -d of our stream differs");
        }
    }
}

#[test]
fn own_writer_compresses_runs() {
    let data = [vec![0u8; 100_000], b"tail".to_vec()].concat();
    let stream = lzop::write(&data, 256 << 10);
    // One match: its length extension takes a byte per 255.
    assert!(stream.len() < 100 + 100_000 / 255, "{} bytes", stream.len());
    let blocks = block_lengths(&stream);
    assert_eq!(blocks.len(), 1);
    assert!(blocks[0].1 < blocks[0].0);
}

/// A one-block stream of `data` from our writer with the header fields patched.
fn stream(data: &[u8]) -> Vec<u8> {
    lzop::write(data, 1 << 20)
}

/// Offset of the first block header in our writer's streams.
const FIRST_BLOCK: usize = 9 + 7 + 1 + 4 + 4 + 8 + 1 + 4;

fn lzo_err(data: &[u8], cap: u64) -> (u64, LzoProblem) {
    match decompress(Compression::Lzo, data, cap) {
        Err(KernelError::Lzo { offset, problem }) => (offset, problem),
        other => panic!("expected an lzo error, got {other:?}"),
    }
}

fn set_be32(s: &mut [u8], at: usize, v: u32) {
    s[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

#[test]
fn truncated_header_and_blocks() {
    let s = stream(&[0x90; 4000]);
    assert_eq!(
        lzo_err(&s[..5], CAP),
        (0, LzoProblem::Truncated { what: "magic" })
    );
    assert_eq!(
        lzo_err(&s[..20], CAP),
        (17, LzoProblem::Truncated { what: "flags" })
    );
    assert_eq!(
        lzo_err(&s[..FIRST_BLOCK - 2], CAP).1,
        LzoProblem::Truncated {
            what: "header checksum"
        }
    );
    assert_eq!(
        lzo_err(&s[..FIRST_BLOCK + 6], CAP).1,
        LzoProblem::Truncated {
            what: "compressed block length"
        }
    );
    // Cut before the end marker.
    assert_eq!(
        lzo_err(&s[..s.len() - 2], CAP).1,
        LzoProblem::Truncated {
            what: "block length"
        }
    );
    // Every prefix is an error, never a panic.
    for n in 0..s.len() {
        assert!(decompress(Compression::Lzo, &s[..n], CAP).is_err(), "{n}");
    }
}

#[test]
fn bad_magic_version_method_and_flags() {
    let good = stream(b"hello hello hello hello");
    let mut s = good.clone();
    s[5] = 0xff;
    assert_eq!(lzo_err(&s, CAP), (0, LzoProblem::BadMagic));
    let mut s = good.clone();
    s[9..11].copy_from_slice(&0x0800u16.to_be_bytes());
    assert_eq!(
        lzo_err(&s, CAP).1,
        LzoProblem::BadVersion { version: 0x0800 }
    );
    let mut s = good.clone();
    s[15] = 0x1a;
    assert_eq!(lzo_err(&s, CAP).1, LzoProblem::BadMethod { method: 0x1a });
    let flags_at = 17;
    let flags = u32::from_be_bytes(good[flags_at..flags_at + 4].try_into().unwrap());
    for (extra, problem) in [
        (lzop::F_H_FILTER, LzoProblem::Filter),
        (lzop::F_H_EXTRA_FIELD, LzoProblem::ExtraField),
        (
            lzop::F_ADLER32_C,
            LzoProblem::ChecksumFlags {
                flags: flags | lzop::F_ADLER32_C,
            },
        ),
        (
            lzop::F_CRC32_D,
            LzoProblem::ChecksumFlags {
                flags: flags | lzop::F_CRC32_D,
            },
        ),
    ] {
        let mut s = good.clone();
        set_be32(&mut s, flags_at, flags | extra);
        assert_eq!(lzo_err(&s, CAP), (21, problem));
    }
    let mut s = good.clone();
    set_be32(&mut s, flags_at, flags & !lzop::F_ADLER32_D);
    assert!(matches!(
        lzo_err(&s, CAP).1,
        LzoProblem::ChecksumFlags { .. }
    ));
}

#[test]
fn checksums_are_skipped_like_libxenguest() {
    // libxenguest reads neither the header nor the block checksum.
    let data = b"hello hello hello hello".to_vec();
    let mut s = stream(&data);
    set_be32(&mut s, FIRST_BLOCK - 4, 0xdead_beef);
    set_be32(&mut s, FIRST_BLOCK + 8, 0xdead_beef);
    assert_eq!(decompress(Compression::Lzo, &s, CAP).unwrap(), data);
}

#[test]
fn bad_block_lengths() {
    let data = vec![0x90u8; 4000];
    let good = stream(&data);
    let src_len = u32::from_be_bytes(good[FIRST_BLOCK + 4..FIRST_BLOCK + 8].try_into().unwrap());
    assert!(src_len < 4000);

    let mut s = good.clone();
    set_be32(&mut s, FIRST_BLOCK, (64 << 20) + 1);
    assert_eq!(
        lzo_err(&s, u64::MAX).1,
        LzoProblem::BlockTooLarge {
            dst_len: (64 << 20) + 1
        }
    );
    let mut s = good.clone();
    set_be32(&mut s, FIRST_BLOCK + 4, 0);
    assert_eq!(lzo_err(&s, CAP).1, LzoProblem::EmptyBlock);
    let mut s = good.clone();
    set_be32(&mut s, FIRST_BLOCK + 4, 4001);
    assert_eq!(
        lzo_err(&s, CAP).1,
        LzoProblem::BlockExpands {
            src_len: 4001,
            dst_len: 4000
        }
    );
    // Longer than the input, which has src_len + 4 (end marker) bytes left.
    let mut s = good.clone();
    set_be32(&mut s, FIRST_BLOCK + 4, src_len + 5);
    assert_eq!(
        lzo_err(&s, CAP),
        (
            u64::try_from(FIRST_BLOCK + 12).unwrap(),
            LzoProblem::BlockPastEnd {
                src_len: src_len + 5,
                left: u64::from(src_len) + 4
            }
        )
    );
    // The block decodes to fewer bytes than announced.
    let mut s = good.clone();
    set_be32(&mut s, FIRST_BLOCK, 4001);
    assert_eq!(
        lzo_err(&s, CAP),
        (
            u64::try_from(FIRST_BLOCK).unwrap(),
            LzoProblem::ShortBlock {
                dst_len: 4001,
                written: 4000
            }
        )
    );
    let mut s = good.clone();
    set_be32(&mut s, FIRST_BLOCK, 3999);
    assert!(matches!(
        decompress(Compression::Lzo, &s, CAP),
        Err(KernelError::LzoBlock {
            block: 0,
            source: lzo::Error::OutputOverrun,
            ..
        })
    ));
}

#[test]
fn short_literal_block() {
    // A valid LZO1X block of 4 literals announced as 8 bytes: decodes to 4.
    let mut s = stream(b"abcdabcdabcd");
    let body = [17 + 4, b'w', b'x', b'y', b'z', 0x11, 0, 0];
    s.truncate(FIRST_BLOCK);
    s.extend_from_slice(&8u32.to_be_bytes());
    s.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
    s.extend_from_slice(&[0; 4]);
    s.extend_from_slice(&body);
    s.extend_from_slice(&[0; 4]);
    // 8 bytes of body for 8 bytes of output would be a stored block: make dst 9.
    set_be32(&mut s, FIRST_BLOCK, 9);
    assert_eq!(
        lzo_err(&s, CAP),
        (
            u64::try_from(FIRST_BLOCK).unwrap(),
            LzoProblem::ShortBlock {
                dst_len: 9,
                written: 4
            }
        )
    );
}

#[test]
fn corrupt_lzo_data() {
    let data = [b"header".to_vec(), vec![0u8; 3000]].concat();
    let mut s = stream(&data);
    // The distance-1 match becomes a distance far before the output start.
    let body = FIRST_BLOCK + 12;
    // "header" and the first zero are literals, the other zeros one match.
    assert_eq!(s[body], 17 + 7);
    let m = body + 1 + 7;
    assert!(s[m] >= 32 && s[m] < 64, "{:#x}", s[m]);
    let d_at = if s[m] & 31 == 0 {
        m + 1 + s[m + 1..].iter().position(|b| *b != 0).unwrap() + 1
    } else {
        m + 1
    };
    s[d_at + 1] = 0xff;
    assert!(matches!(
        decompress(Compression::Lzo, &s, CAP),
        Err(KernelError::LzoBlock {
            block: 0,
            offset,
            source: lzo::Error::LookbehindOverrun,
        }) if offset == u64::try_from(FIRST_BLOCK).unwrap()
    ));
    // Garbage after the end marker inside the block.
    let mut s = stream(&[b"hell".to_vec(), vec![b'o'; 40]].concat());
    let src_at = FIRST_BLOCK + 4;
    let src_len = u32::from_be_bytes(s[src_at..src_at + 4].try_into().unwrap());
    let end = FIRST_BLOCK + 12 + usize::try_from(src_len).unwrap();
    s.insert(end, 0x55);
    set_be32(&mut s, src_at, src_len + 1);
    assert!(matches!(
        decompress(Compression::Lzo, &s, CAP),
        Err(KernelError::LzoBlock {
            source: lzo::Error::InputNotConsumed,
            ..
        })
    ));
}

#[test]
fn output_cap_and_size_trailer() {
    let data = vec![0x90u8; 10_000];
    let s = lzop::write(&data, 4096);
    // The third block would pass the cap: refused before it is decoded.
    assert!(matches!(
        decompress(Compression::Lzo, &s, 9000),
        Err(KernelError::DecompressedTooLarge {
            format: "lzo",
            cap: 9000
        })
    ));
    assert_eq!(decompress(Compression::Lzo, &s, 10_000).unwrap(), data);
    // A trailer that matches is fine, one that does not is an error.
    let good = with_size_trailer(s.clone(), 10_000);
    assert_eq!(decompress(Compression::Lzo, &good, CAP).unwrap(), data);
    let bad = with_size_trailer(s.clone(), 10_001);
    assert_eq!(
        lzo_err(&bad, CAP),
        (
            u64::try_from(s.len()).unwrap(),
            LzoProblem::SizeTrailer {
                trailer: 10_001,
                produced: 10_000
            }
        )
    );
    // A stream with no blocks is an empty payload.
    let empty = lzop::write(&[], 4096);
    assert!(matches!(
        decompress(Compression::Lzo, &empty, CAP),
        Err(KernelError::EmptyPayload { format: "lzo" })
    ));
    // The cap applies through open_kernel as well.
    let img = wrap_payload(&good);
    assert!(matches!(
        open_kernel(&img, 5000),
        Err(KernelError::DecompressedTooLarge { .. })
    ));
}

#[test]
fn header_with_name_and_old_version() {
    // Version 0x0900..0x0940: no level byte, no mtime high word; a name is skipped.
    let data = b"hello hello hello hello".to_vec();
    let new = stream(&data);
    let mut s = MAGIC.to_vec();
    s.extend_from_slice(&0x0930u16.to_be_bytes());
    s.extend_from_slice(&0x0930u16.to_be_bytes());
    s.extend_from_slice(&0x0900u16.to_be_bytes());
    s.push(1);
    s.extend_from_slice(&lzop::F_ADLER32_D.to_be_bytes());
    s.extend_from_slice(&[0; 8]);
    s.push(5);
    s.extend_from_slice(b"vmlin");
    s.extend_from_slice(&[0; 4]);
    s.extend_from_slice(&new[FIRST_BLOCK..]);
    assert_eq!(decompress(Compression::Lzo, &s, CAP).unwrap(), data);
    assert_eq!(MAGIC[..4], *b"\x89LZO");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn writer_round_trips(
        parts in proptest::collection::vec((any::<u8>(), 1usize..600, any::<bool>()), 0..20),
        block in 1usize..5000,
    ) {
        let mut data = Vec::new();
        for (byte, len, run) in parts {
            if run {
                data.extend(std::iter::repeat_n(byte, len));
            } else {
                data.extend(noise(len, u64::from(byte) + 1));
            }
        }
        let s = lzop::write(&data, block);
        match decompress(Compression::Lzo, &s, CAP) {
            Ok(out) => prop_assert!(out == data),
            Err(KernelError::EmptyPayload { .. }) => prop_assert!(data.is_empty()),
            Err(e) => prop_assert!(false, "{e}"),
        }
    }

    #[test]
    fn mutated_streams_never_panic_or_pass_the_cap(
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cap in 0u64..20_000,
    ) {
        let mut s = lzop::write(&big_slice(), 2048);
        for (at, byte) in flips {
            let n = s.len();
            s[at % n] = byte;
        }
        if let Ok(out) = decompress(Compression::Lzo, &s, cap) {
            prop_assert!(u64::try_from(out.len()).unwrap() <= cap);
        }
    }
}

fn big_slice() -> Vec<u8> {
    [
        vec![1u8; 3000],
        noise(2500, 9),
        b"abcabcabc".repeat(100),
        vec![0; 4000],
    ]
    .concat()
}
