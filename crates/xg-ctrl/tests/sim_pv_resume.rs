//! The simulator's answers to the reads and the vCPU reset of `xc_domain_resume`'s PV
//! path, as Xen 4.17 gives them.

use xg_ctrl::sim::Simulator;
use xg_ctrl::{DomId, DomainConfig, DomainOps, Gfn, MemFlags, PageOrder, PvOps};

const D: DomId = DomId(3);

fn pv_domain(vcpus: u32) -> (Simulator, Vec<xg_ctrl::Mfn>) {
    let sim = Simulator::default();
    let cfg = DomainConfig {
        hvm: false,
        hap: false,
        max_vcpus: vcpus,
        ..DomainConfig::default()
    };
    sim.create_domain(D, &cfg).unwrap();
    sim.set_max_mem(D, 4096).unwrap();
    let gfns: Vec<Gfn> = (0..8).map(Gfn).collect();
    let mfns = sim
        .populate_physmap_mfns(D, PageOrder::ORDER_4K, MemFlags::NONE, &gfns)
        .unwrap();
    (sim, mfns)
}

fn shared_info(sim: &Simulator) -> xg_ctrl::Mfn {
    xg_ctrl::Mfn(sim.domain_info(D).unwrap().shared_info_frame)
}

#[test]
fn address_size_is_64_until_set_and_unsupported_for_hvm() {
    let (sim, _) = pv_domain(1);
    assert_eq!(sim.address_size(D).unwrap(), 64);
    sim.set_address_size(D, 32).unwrap();
    assert_eq!(sim.address_size(D).unwrap(), 32);
    sim.create_domain(DomId(4), &DomainConfig::default())
        .unwrap();
    let e = sim.address_size(DomId(4)).unwrap_err();
    assert_eq!(e.errno(), Some(libc::EOPNOTSUPP));
    assert_eq!(
        sim.address_size(DomId(9)).unwrap_err().errno(),
        Some(libc::ESRCH)
    );
}

#[test]
fn pv_maximum_gpfn_comes_from_the_guests_max_pfn() {
    let (sim, _) = pv_domain(1);
    // Nothing written yet: (0 ?: 1) - 1.
    assert_eq!(sim.maximum_gpfn(D).unwrap(), 0);
    let si = shared_info(&sim);
    sim.write_machine(D, &[si], 3088, &0x1234u64.to_le_bytes())
        .unwrap();
    assert_eq!(sim.maximum_gpfn(D).unwrap(), 0x1233);
    // A 32-bit guest's arch_shared_info sits elsewhere and is 32 bits wide.
    sim.set_address_size(D, 32).unwrap();
    assert_eq!(sim.maximum_gpfn(D).unwrap(), 0);
    sim.write_machine(D, &[si], 2316, &0x20u32.to_le_bytes())
        .unwrap();
    assert_eq!(sim.maximum_gpfn(D).unwrap(), 0x1F);
}

#[test]
fn hvm_maximum_gpfn_is_the_highest_mapped_frame() {
    let sim = Simulator::default();
    sim.create_domain(D, &DomainConfig::default()).unwrap();
    sim.set_max_mem(D, 16384).unwrap();
    xg_ctrl::MemoryOps::populate_physmap(
        &sim,
        D,
        PageOrder::ORDER_4K,
        MemFlags::NONE,
        &[Gfn(0), Gfn(0x800)],
    )
    .unwrap();
    assert_eq!(sim.maximum_gpfn(D).unwrap(), 0x800);
}

#[test]
fn contexts_read_back_whole_and_reset_forgets_them() {
    let (sim, _) = pv_domain(2);
    assert_eq!(
        sim.vcpu_context(D, 1).unwrap_err().errno(),
        Some(libc::ENODATA),
        "never initialised"
    );
    assert_eq!(
        sim.vcpu_context(D, 2).unwrap_err().errno(),
        Some(libc::EINVAL),
        "no such vCPU"
    );
    sim.set_vcpu_context(D, 1, &[7u8; 100]).unwrap();
    let ctx = sim.vcpu_context(D, 1).unwrap();
    assert_eq!(ctx.len(), 5168);
    assert_eq!(&ctx[..100], &[7u8; 100]);
    assert!(ctx[100..].iter().all(|&b| b == 0));
    sim.reset_vcpu(D, 1).unwrap();
    assert_eq!(
        sim.vcpu_context(D, 1).unwrap_err().errno(),
        Some(libc::ENODATA)
    );
    // Resetting a vCPU that is already down is fine; one that does not exist is not.
    sim.reset_vcpu(D, 1).unwrap();
    assert_eq!(
        sim.reset_vcpu(D, 2).unwrap_err().errno(),
        Some(libc::EINVAL)
    );
    assert_eq!(
        sim.reset_vcpu(DomId(0), 0).unwrap_err().errno(),
        Some(libc::EINVAL),
        "the caller's own domain"
    );
}
