//! Whole builds on the simulator with the in-memory store: HVM 4 GiB and 1 TiB guests,
//! populate calls as libxenguest makes them (compat) and batched; PVH and PV builds of a
//! gzip-compressed 32 MiB kernel next to decompressing the same image alone (the floor:
//! what a builder cannot avoid), so the ratio shows what the rest of the build costs.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use xg_build::pci::PciHost;
use xg_build::pv::{build_pv, PvBuildRequest};
use xg_build::pvh::{build_pvh, PvhBuildRequest};
use xg_build::{build_hvm, toolstack, HvmBuildRequest, Strategy};
use xg_ctrl::sim::{HostConfig, Simulator};
use xg_ctrl::DomId;
use xg_store::{MemStore, Store, TxId};

fn prepared(mem_mib: u64) -> (Simulator, MemStore) {
    let sim = Simulator::new(&HostConfig::uniform(2, 640 * 1024, 32)).expect("host");
    let store = MemStore::new();
    let path = store.get_domain_path(1).expect("path");
    for (k, v) in [("vcpu/number", "4"), ("vcpu/current", "4")] {
        store
            .write(TxId::NONE, &toolstack::platform_key(&path, k), v.as_bytes())
            .expect("seed");
    }
    toolstack::build_pre(&sim, &store, DomId(1), mem_mib).expect("build_pre");
    (sim, store)
}

fn bench_builds(c: &mut Criterion) {
    let fw = xg_guest::firmware::builtin_test_firmware();
    let host = PciHost::at("/nonexistent");
    let mut g = c.benchmark_group("hvm_build");
    g.sample_size(10);
    for (name, mib) in [("4GiB", 4096u64), ("1TiB", 1024 * 1024)] {
        for (sname, strategy) in [("compat", Strategy::Compat), ("batched", Strategy::Batched)] {
            let mut req = HvmBuildRequest::new(DomId(1), mib, mib, fw.clone());
            req.strategy = strategy;
            g.bench_function(format!("{name}/{sname}"), |b| {
                b.iter_batched(
                    || prepared(mib),
                    |(sim, store)| build_hvm(&sim, &store, &host, &req).expect("build"),
                    BatchSize::PerIteration,
                );
            });
        }
    }
    g.finish();
}

/// Size of the benches' kernel segment: the order of an uncompressed distribution kernel.
const KERNEL_BYTES: usize = 32 << 20;

/// Kernel bytes that compress like code (about 3:1), not like zeroes.
fn kernel_payload() -> Vec<u8> {
    let mut x: u32 = 0x2545_f491;
    (0..KERNEL_BYTES)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            // A few byte values dominate, as opcodes and zero displacements do in code.
            [0x00, 0x48, 0x89, 0xe8, 0x8b, 0x0f, 0xff, (x >> 24) as u8][(x & 7) as usize]
        })
        .collect()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::with_capacity(KERNEL_BYTES + 4096);
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .expect("gunzip");
    out
}

/// A PVH kernel: ELF64 with a `PHYS32_ENTRY` note and one 32 MiB segment at 16 MiB.
fn pvh_kernel() -> Vec<u8> {
    use xg_guest::kernel::notes;
    use xg_guest::kernel::test_kernel::Elf64Writer;
    const BASE: u64 = 0x100_0000;
    Elf64Writer::new(BASE)
        .load(BASE, BASE, &kernel_payload(), 0)
        .note("Xen", notes::PHYS32_ENTRY, &0x100_0000u32.to_le_bytes())
        .build()
}

/// A 64-bit PV kernel: the PV test kernel's notes and one 32 MiB segment.
fn pv_kernel() -> Vec<u8> {
    use xg_guest::kernel::notes;
    use xg_guest::kernel::test_kernel::{Elf64Writer, TEST_PV_HYPERCALL_PAGE, TEST_PV_VIRT_BASE};
    Elf64Writer::new(TEST_PV_VIRT_BASE)
        .load(TEST_PV_VIRT_BASE, 0, &kernel_payload(), 0)
        .note("Xen", notes::GUEST_OS, b"linux\0")
        .note("Xen", notes::XEN_VERSION, b"xen-3.0\0")
        .note("Xen", notes::VIRT_BASE, &TEST_PV_VIRT_BASE.to_le_bytes())
        .note("Xen", notes::PADDR_OFFSET, &0u64.to_le_bytes())
        .note("Xen", notes::ENTRY, &TEST_PV_VIRT_BASE.to_le_bytes())
        .note(
            "Xen",
            notes::HYPERCALL_PAGE,
            &TEST_PV_HYPERCALL_PAGE.to_le_bytes(),
        )
        .note("Xen", notes::FEATURES, b"!writable_page_tables\0")
        .build()
}

fn prepared_kernel_guest(hvm: bool) -> (Simulator, MemStore) {
    let sim = Simulator::new(&HostConfig::uniform(1, 16384, 4)).expect("host");
    let store = MemStore::new();
    toolstack::build_pre_as(&sim, &store, DomId(1), KERNEL_GUEST_MIB, hvm).expect("build_pre");
    // Room for the special and ACPI pages, as xenopsd's max_mem leaves.
    xg_ctrl::DomainOps::set_max_mem(&sim, DomId(1), (KERNEL_GUEST_MIB + 1) * 1024)
        .expect("max_mem");
    (sim, store)
}

/// Guest size of the kernel benches.
const KERNEL_GUEST_MIB: u64 = 256;

fn bench_kernel_builds(c: &mut Criterion) {
    let mut g = c.benchmark_group("kernel_build");
    g.sample_size(10);
    let pvh = gzip(&pvh_kernel());
    let pv = gzip(&pv_kernel());
    g.bench_function("gunzip_32MiB_kernel_alone", |b| b.iter(|| gunzip(&pvh)));
    let pvh_req = PvhBuildRequest::new(DomId(1), KERNEL_GUEST_MIB, KERNEL_GUEST_MIB, pvh);
    g.bench_function("pvh_build_256MiB_gzip_kernel", |b| {
        b.iter_batched(
            || prepared_kernel_guest(true),
            |(sim, store)| build_pvh(&sim, &store, &pvh_req).expect("pvh build"),
            BatchSize::PerIteration,
        );
    });
    let pv_req = PvBuildRequest::new(DomId(1), KERNEL_GUEST_MIB, KERNEL_GUEST_MIB, pv);
    g.bench_function("linux_build_256MiB_gzip_kernel", |b| {
        b.iter_batched(
            || prepared_kernel_guest(false),
            |(sim, store)| build_pv(&sim, &store, &pv_req).expect("pv build"),
            BatchSize::PerIteration,
        );
    });
    g.finish();
}

criterion_group!(benches, bench_builds, bench_kernel_builds);
criterion_main!(benches);
