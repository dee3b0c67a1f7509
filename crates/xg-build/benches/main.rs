//! Whole HVM builds on the simulator with the in-memory store: 4 GiB and 1 TiB guests,
//! populate calls as libxenguest makes them (compat) and batched.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use xg_build::pci::PciHost;
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

criterion_group!(benches, bench_builds);
criterion_main!(benches);
