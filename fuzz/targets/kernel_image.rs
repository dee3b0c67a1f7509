//! Fuzz target: PV/PVH kernel images (`-image` of `pvh_build` and `linux_build`).
//!
//! The input goes through [`open_kernel`] (bzImage unwrapping, the decompressors, lzo's
//! lzop container in particular: the seeds are lzo bzImages and bare lzop streams), then
//! the ELF parse and the PVH and PV checks. Checked: no panic, no allocation beyond a
//! few times the cap, and the decompressed kernel never exceeds the cap.
#![allow(dead_code)]

use xg_guest::kernel::bzimage::wrap_payload;
use xg_guest::kernel::decompress::decompress;
use xg_guest::kernel::test_kernel::{test_pv_kernel, test_pvh_kernel};
use xg_guest::kernel::{lzop, open_kernel, Compression, KernelElf};

/// Name in reports.
pub const NAME: &str = "kernel_image";
/// Inputs are cut to this length.
pub const MAX_LEN: usize = 64 * 1024;
/// The kernel size cap the check uses (`/mh/limits/pv-kernel-max_size`).
pub const CAP: u64 = 4 << 20;
/// Tokens worth inserting: lzop and bzImage magic, block lengths, flags.
pub const DICT: &[&[u8]] = &[
    &lzop::MAGIC,
    b"HdrS",
    b"\x10\x40\x20\xa0\x09\x40\x03\x09",
    b"\x03\x00\x00\x01",
    b"\x00\x04\x00\x00",
    b"\x04\x00\x00\x00",
    b"\x00\x00\x00\x00",
    b"\x11\x00\x00",
    b"\x7fELF\x02\x01\x01\0",
    b"\xff\xff\xff\xff",
];

/// Decoders grow their output up to the cap (Vec doubling) and keep a copy of the ELF.
pub fn alloc_cap(len: usize) -> usize {
    8 * len + 4 * usize::try_from(CAP).unwrap_or(usize::MAX)
}

fn lzo_bzimage(elf: &[u8], block: usize) -> Vec<u8> {
    let mut payload = lzop::write(elf, block);
    payload.extend_from_slice(&u32::try_from(elf.len()).unwrap_or(0).to_le_bytes());
    wrap_payload(&payload)
}

/// Seed inputs: lzo bzImages of the PVH and PV test kernels (one and several blocks),
/// a bare lzop stream, and the plain PVH kernel.
pub fn seeds() -> Vec<Vec<u8>> {
    let pvh = test_pvh_kernel();
    let pv = test_pv_kernel();
    vec![
        lzo_bzimage(&pvh, 256 << 10),
        lzo_bzimage(&pv, 256 << 10),
        lzo_bzimage(&pv, 512),
        lzop::write(&pv, 1024),
        pvh,
    ]
}

/// Checks one input.
pub fn check(data: &[u8]) {
    // The lzop decoder on its own, as if the input were a payload.
    if let Ok(out) = decompress(Compression::Lzo, data, CAP) {
        assert!(u64::try_from(out.len()).unwrap_or(u64::MAX) <= CAP);
    }
    let Ok((elf, _format)) = open_kernel(data, CAP) else {
        return;
    };
    assert!(u64::try_from(elf.len()).unwrap_or(u64::MAX) <= CAP);
    let Ok(kernel) = KernelElf::parse(elf) else {
        return;
    };
    let _ = kernel.pvh();
    let _ = xg_guest::pv::check::pv_kernel(&kernel);
}
