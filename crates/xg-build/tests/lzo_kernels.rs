//! PVH and PV builds on the simulator from bzImages with an lzo payload (made by
//! `xg_guest::kernel::lzop::write`, with the kernel's size trailer): they build the same
//! guest as the plain ELF, and the kernel size limit from `/mh/limits` caps the
//! decompression.

use xg_build::pv::{build_pv, PvBuildOutcome, PvBuildRequest};
use xg_build::pvh::{build_pvh, PvhBuildOutcome, PvhBuildRequest, KERNEL_LIMIT_KEY};
use xg_build::{toolstack, BuildError};
use xg_ctrl::sim::{HostConfig, Simulator};
use xg_ctrl::{DomId, DomainOps, Gfn, Mfn, PvOps};
use xg_guest::kernel::bzimage::wrap_payload;
use xg_guest::kernel::lzop;
use xg_guest::kernel::test_kernel::{
    pv_kernel_with, test_pvh_kernel, TEST_PV_HYPERCALL_PAGE, TEST_PV_VIRT_BASE,
};
use xg_guest::kernel::{Compression, KernelFormat};
use xg_store::{MemStore, Store, TxId};

const DOMID: u16 = 9;

/// The bzImage the kernel build makes with `CONFIG_KERNEL_LZO`.
fn lzo_bzimage(elf: &[u8]) -> Vec<u8> {
    let mut payload = lzop::write(elf, 256 << 10);
    payload.extend_from_slice(&u32::try_from(elf.len()).unwrap().to_le_bytes());
    wrap_payload(&payload)
}

/// A fresh simulator and store with the platform keys and `/mh/limits` entries.
fn host(limits: &[(&str, &str)]) -> (Simulator, MemStore, String) {
    let sim = Simulator::new(&HostConfig::uniform(1, 16384, 4)).unwrap();
    let store = MemStore::new();
    let path = store.get_domain_path(u32::from(DOMID)).unwrap();
    for (k, v) in [("vcpu/number", "2"), ("vcpu/current", "2")] {
        store
            .write(TxId::NONE, &toolstack::platform_key(&path, k), v.as_bytes())
            .unwrap();
    }
    for (k, v) in limits {
        store.write(TxId::NONE, k, v.as_bytes()).unwrap();
    }
    (sim, store, path)
}

fn pvh(kernel: Vec<u8>, limits: &[(&str, &str)]) -> Result<PvhBuildOutcome, BuildError> {
    let (sim, store, _) = host(limits);
    let mut req = PvhBuildRequest::new(DomId(DOMID), 256, 256, kernel);
    req.cmdline = Some("console=hvc0".into());
    req.store_evtchn = 5;
    req.console_evtchn = 6;
    toolstack::build_pre(&sim, &store, DomId(DOMID), 256).unwrap();
    sim.set_max_mem(DomId(DOMID), 257 * 1024).unwrap();
    build_pvh(&sim, &store, &req)
}

/// A PV build, with the kernel's pages read back from the guest.
fn pv(kernel: Vec<u8>, limits: &[(&str, &str)]) -> Result<(PvBuildOutcome, Vec<u8>), BuildError> {
    let (sim, store, _) = host(limits);
    let mut req = PvBuildRequest::new(DomId(DOMID), 256, 256, kernel);
    req.cmdline = Some("console=hvc0".into());
    req.store_evtchn = 3;
    req.console_evtchn = 4;
    toolstack::build_pre_as(&sim, &store, DomId(DOMID), 256, false).unwrap();
    let o = build_pv(&sim, &store, &req)?;
    let seg = &o.image.layout.kernel;
    let mut bytes = vec![0u8; usize::try_from(seg.pages * 4096).unwrap()];
    let mfns: Vec<Mfn> = (seg.pfn..seg.pfn + seg.pages)
        .map(|pfn| Mfn(sim.mfn_of(DomId(DOMID), Gfn(pfn)).unwrap()))
        .collect();
    sim.read_machine(DomId(DOMID), &mfns, 0, &mut bytes)
        .unwrap();
    Ok((o, bytes))
}

#[test]
fn pvh_build_from_an_lzo_bzimage() {
    let elf = test_pvh_kernel();
    let plain = pvh(elf.clone(), &[]).unwrap();
    let packed = pvh(lzo_bzimage(&elf), &[]).unwrap();
    assert_eq!(plain.kernel.format, KernelFormat::Elf);
    assert_eq!(
        packed.kernel.format,
        KernelFormat::BzImage(Compression::Lzo)
    );
    assert_eq!(packed.result_line(), plain.result_line());
    assert_eq!(packed.kernel.pvh, plain.kernel.pvh);
    assert_eq!(packed.image.to_string(), plain.image.to_string());
}

#[test]
fn pv_build_from_an_lzo_bzimage() {
    // 2 MiB of code and data with runs, so that the payload is much smaller.
    let text: Vec<u8> = (0..2u32 << 20)
        .map(|i| {
            if i % 4096 < 3000 {
                0x90
            } else {
                (i % 251) as u8
            }
        })
        .collect();
    let elf = pv_kernel_with(&text, 0x2000);
    let img = lzo_bzimage(&elf);
    assert!(img.len() < elf.len() / 2, "{} of {}", img.len(), elf.len());

    let (plain, plain_mem) = pv(elf.clone(), &[]).unwrap();
    let (packed, packed_mem) = pv(img.clone(), &[]).unwrap();
    assert_eq!(plain.format, KernelFormat::Elf);
    assert_eq!(packed.format, KernelFormat::BzImage(Compression::Lzo));
    assert_eq!(packed.result_line(), plain.result_line());
    assert_eq!(packed.kernel, plain.kernel);
    assert_eq!(packed.image.to_string(), plain.image.to_string());
    // The kernel pages hold the same bytes, and they are the ELF's text (at physical 0)
    // but for the hypercall page the builder fills in.
    assert!(packed_mem == plain_mem);
    let hypercall = usize::try_from(TEST_PV_HYPERCALL_PAGE - TEST_PV_VIRT_BASE).unwrap();
    assert!(packed_mem[..hypercall] == text[..hypercall]);
    assert!(packed_mem[hypercall + 4096..text.len()] == text[hypercall + 4096..]);
    assert!(packed_mem[hypercall..hypercall + 4096] != text[hypercall..hypercall + 4096]);

    // A kernel limit above the bzImage but below the ELF stops the decompression.
    let limit = format!("{}", elf.len() - 1);
    let e = pv(img, &[(KERNEL_LIMIT_KEY, limit.as_str())]).unwrap_err();
    let lines = e.wire_lines().concat();
    assert!(
        lines.contains(&format!(
            "Decompressed lzo kernel is larger than the limit of {limit} bytes"
        )),
        "{lines}"
    );
}

#[test]
fn malformed_lzo_bzimage_fails_the_build() {
    let elf = test_pvh_kernel();
    let mut img = lzo_bzimage(&elf);
    // Break the size trailer at the end of the payload.
    let n = img.len();
    img[n - 4] ^= 1;
    let e = pvh(img, &[]).unwrap_err();
    let lines = e.wire_lines().concat();
    assert!(
        lines.contains("Malformed lzo payload") && lines.contains("size trailer"),
        "{lines}"
    );
}
