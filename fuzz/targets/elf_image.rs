//! Fuzz target: the ELF loader of the firmware image (hvmloader, `-image`).
//!
//! The input is parsed as an HVM firmware image; an accepted image is loaded into a
//! guest memory stand-in that accepts writes below 64 MiB (like a populated guest) and
//! refuses the rest. Checked: no panic; accepted segments lie within the file and have
//! `filesz <= memsz`; loading never allocates more than a chunk at a time (a 4 GiB bss
//! must not become a 4 GiB buffer) and ends (refused writes stop it).
#![allow(dead_code)]

use xg_ctrl::{DomId, Gfn, GuestMemory};
use xg_guest::elf::HvmFirmware;

/// Name in reports.
pub const NAME: &str = "elf_image";
/// Inputs are cut to this length.
pub const MAX_LEN: usize = 64 * 1024;
/// Tokens worth inserting.
pub const DICT: &[&[u8]] = &[
    b"\x7fELF\x01\x01\x01\0",
    b"\x7fELF\x02\x01\x01\0",
    b"\x02\0\x03\0",
    b"\x01\0\0\0",
    b"\x04\0\0\0",
    b"Xen\0",
    b"\x34\0\x20\0",
    b"\x00\x00\x10\x00",
    b"\xff\xff\xff\xff",
];

/// Parsing keeps a few copies of the program headers; loading zeroes in chunks.
pub fn alloc_cap(len: usize) -> usize {
    8 * len + 2 * 1024 * 1024
}

/// Seed inputs: the built-in test firmware and a truncated copy.
pub fn seeds() -> Vec<Vec<u8>> {
    let fw = xg_guest::firmware::builtin_test_firmware();
    let half = fw[..fw.len() / 2].to_vec();
    let head = fw[..fw.len().min(256)].to_vec();
    vec![fw, half, head]
}

const LIMIT: u64 = 64 << 20;

struct Sink;

fn refuse(paddr: u64, len: usize) -> xg_ctrl::Result<()> {
    let end = paddr.saturating_add(u64::try_from(len).unwrap_or(u64::MAX));
    if end > LIMIT {
        return Err(xg_ctrl::Error::hypercall("write_guest", 22));
    }
    Ok(())
}

impl GuestMemory for Sink {
    fn write_guest(&self, _: DomId, paddr: u64, data: &[u8]) -> xg_ctrl::Result<()> {
        refuse(paddr, data.len())
    }
    fn read_guest(&self, _: DomId, paddr: u64, buf: &mut [u8]) -> xg_ctrl::Result<()> {
        refuse(paddr, buf.len())
    }
    fn clear_guest_pages(&self, _: DomId, _: &[Gfn]) -> xg_ctrl::Result<()> {
        Ok(())
    }
    fn write_grant_table(&self, _: DomId, _: u64, _: &[u8]) -> xg_ctrl::Result<()> {
        Ok(())
    }
    fn read_grant_table(&self, _: DomId, _: u64, _: &mut [u8]) -> xg_ctrl::Result<()> {
        Ok(())
    }
}

/// Checks one input.
pub fn check(data: &[u8]) {
    let Ok(fw) = HvmFirmware::parse(data) else {
        return;
    };
    assert!(fw.pstart() <= fw.pend());
    for seg in fw.segments() {
        assert!(seg.filesz <= seg.memsz, "{seg:?}");
        let bytes = fw.file_bytes(seg);
        assert_eq!(u64::try_from(bytes.len()).unwrap_or(u64::MAX), seg.filesz);
    }
    let _ = fw.entry();
    let _ = fw.load(&Sink, DomId(1));
}
