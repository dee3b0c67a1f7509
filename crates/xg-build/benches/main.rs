//! Whole builds on the simulator with the in-memory store: HVM 4 GiB and 1 TiB guests,
//! populate calls as libxenguest makes them (compat) and batched; PVH and PV builds of a
//! gzip-compressed 32 MiB kernel next to decompressing the same image alone (the floor:
//! what a builder cannot avoid), so the ratio shows what the rest of the build costs.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use xg_build::bench_support as kb;
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

fn bench_kernel_builds(c: &mut Criterion) {
    let mut g = c.benchmark_group("kernel_build");
    g.sample_size(10);
    let pvh = kb::pvh_kernel_gz();
    let pv = kb::pv_kernel_gz();
    g.bench_function("gunzip_32MiB_kernel_alone", |b| {
        b.iter(|| kb::gunzip(&pvh).expect("gunzip"))
    });
    let pvh_req = PvhBuildRequest::new(kb::DOMID, kb::GUEST_MIB, kb::GUEST_MIB, pvh);
    g.bench_function("pvh_build_256MiB_gzip_kernel", |b| {
        b.iter_batched(
            || kb::prepared_guest(true).expect("guest"),
            |(sim, store)| build_pvh(&sim, &store, &pvh_req).expect("pvh build"),
            BatchSize::PerIteration,
        );
    });
    let pv_req = PvBuildRequest::new(kb::DOMID, kb::GUEST_MIB, kb::GUEST_MIB, pv);
    g.bench_function("linux_build_256MiB_gzip_kernel", |b| {
        b.iter_batched(
            || kb::prepared_guest(false).expect("guest"),
            |(sim, store)| build_pv(&sim, &store, &pv_req).expect("pv build"),
            BatchSize::PerIteration,
        );
    });
    g.finish();
}

criterion_group!(benches, bench_builds, bench_kernel_builds);
criterion_main!(benches);
