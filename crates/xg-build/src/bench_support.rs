//! Inputs of the kernel-build benchmarks (criterion `benches/main.rs` and the
//! `kernel_builds` example `cargo xtask bench` runs): a gzip-compressed 32 MiB kernel for
//! PVH and for PV, and fresh simulated guests to build them into.

use std::io::{Read, Write};

use xg_ctrl::sim::{HostConfig, Simulator};
use xg_ctrl::{DomId, DomainOps};
use xg_guest::kernel::notes;
use xg_guest::kernel::test_kernel::{pv_kernel_with, Elf64Writer};
use xg_store::MemStore;

use crate::{toolstack, BuildError, Step};

/// Size of the kernel segment: the order of an uncompressed distribution kernel.
pub const KERNEL_BYTES: usize = 32 << 20;
/// Guest size of the kernel builds.
pub const GUEST_MIB: u64 = 256;
/// The domain the builds go into.
pub const DOMID: DomId = DomId(1);

/// Kernel bytes that compress like code (about 3:1), not like zeroes: a few byte values
/// dominate, as opcodes and zero displacements do in code.
fn payload() -> Vec<u8> {
    let mut x: u32 = 0x2545_f491;
    (0..KERNEL_BYTES)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let [_, _, _, top] = x.to_le_bytes();
            let pick = usize::try_from(x & 7).unwrap_or(0);
            [0x00, 0x48, 0x89, 0xe8, 0x8b, 0x0f, 0xff, top][pick]
        })
        .collect()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

/// Decompresses a gzip image the plainest way: what every builder must at least do.
pub fn gunzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(KERNEL_BYTES + 4096);
    flate2::read::GzDecoder::new(data).read_to_end(&mut out)?;
    Ok(out)
}

/// A gzip-compressed PVH kernel: ELF64 with a `PHYS32_ENTRY` note, one 32 MiB segment at
/// 16 MiB.
pub fn pvh_kernel_gz() -> Vec<u8> {
    const BASE: u64 = 0x100_0000;
    let elf = Elf64Writer::new(BASE)
        .load(BASE, BASE, &payload(), 0)
        .note("Xen", notes::PHYS32_ENTRY, &0x100_0000u32.to_le_bytes())
        .build();
    gzip(&elf)
}

/// A gzip-compressed 64-bit PV kernel: the PV test kernel's notes, one 32 MiB segment.
pub fn pv_kernel_gz() -> Vec<u8> {
    gzip(&pv_kernel_with(&payload(), 0))
}

/// A fresh one-node simulated host with domain [`DOMID`] created as xenopsd would (HVM
/// container for PVH, PV otherwise) with room for the special and ACPI pages.
pub fn prepared_guest(hvm: bool) -> Result<(Simulator, MemStore), BuildError> {
    let xen = |e| BuildError::xen(Step::CreateDomain, e);
    let sim = Simulator::new(&HostConfig::uniform(1, 16384, 4)).map_err(xen)?;
    let store = MemStore::new();
    toolstack::build_pre_as(&sim, &store, DOMID, GUEST_MIB, hvm)?;
    sim.set_max_mem(DOMID, (GUEST_MIB + 1) * 1024)
        .map_err(xen)?;
    Ok((sim, store))
}
