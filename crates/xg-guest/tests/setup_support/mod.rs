//! Shared helpers of the guest-setup tests: a simulated host with one populated HVM guest.

#![allow(dead_code)]

use xg_ctrl::sim::Simulator;
use xg_ctrl::{DomId, DomainConfig, DomainOps, Gfn, GuestMemory, MemFlags, MemoryOps, PageOrder};
use xg_guest::setup::SetupInputs;

/// The guest's domid.
pub const DOMID: DomId = DomId(7);
/// Guest RAM: 128 MiB.
pub const GUEST_PAGES: u64 = 128 << 8;
/// `mmio_start` of the default hole.
pub const MMIO_START: u64 = 0xF000_0000;
/// Debian's hvmloader (package xen-utils-4.17).
pub const DEBIAN_HVMLOADER: &str = "/usr/lib/xen-4.17/boot/hvmloader";

/// A simulator with domain [`DOMID`] created (HVM, `vcpus` vCPUs) and its RAM populated
/// with 2 MiB extents.
pub fn sim_with_guest(vcpus: u32) -> Simulator {
    let sim = Simulator::default();
    populated_guest(&sim, vcpus);
    sim
}

/// Creates and populates the guest on any backend.
pub fn populated_guest<H: DomainOps + MemoryOps>(hv: &H, vcpus: u32) {
    let cfg = DomainConfig {
        max_vcpus: vcpus,
        ..DomainConfig::default()
    };
    hv.create_domain(DOMID, &cfg).unwrap();
    hv.set_max_vcpus(DOMID, vcpus).unwrap();
    hv.set_max_mem(DOMID, (GUEST_PAGES + 1024) * 4).unwrap();
    let extents: Vec<Gfn> = (0..GUEST_PAGES / 512).map(|i| Gfn(i * 512)).collect();
    hv.populate_physmap_exact(DOMID, PageOrder::ORDER_2M, MemFlags::NONE, &extents)
        .unwrap();
}

/// Setup inputs for the test guest (all of its RAM below 4 GiB).
pub fn inputs(firmware: &[u8]) -> SetupInputs<'_> {
    let mut i = SetupInputs::hvm(
        firmware,
        GUEST_PAGES,
        GUEST_PAGES << 12,
        1 << 32,
        MMIO_START,
    );
    i.max_vcpus = 2;
    i.console_evtchn = 3;
    i.store_evtchn = 4;
    i
}

/// Reads `len` bytes of guest memory.
pub fn read<M: GuestMemory>(m: &M, paddr: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    m.read_guest(DOMID, paddr, &mut buf).unwrap();
    buf
}
