//! meminit_hvm: plan + execute on the oracle-compatible simulator, per guest size and
//! strategy. Compiled in CI (`cargo bench --no-run`); run with `cargo xtask bench`.

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use xg_ctrl::sim::{OracleModel, Simulator};
use xg_ctrl::{DomId, DomainConfig, DomainOps};
use xg_guest::meminit::{meminit_hvm, Answer, MeminitConfig, MeminitPlan, Step, Strategy};

fn config(mib: u64) -> MeminitConfig {
    let mem = mib << 20;
    let mmio_start = 0xF000_0000u64;
    MeminitConfig {
        total_pages: mib << 8,
        target_pages: mib << 8,
        lowmem_end: mem.min(mmio_start),
        highmem_end: if mem > mmio_start {
            (1 << 32) + mem - mmio_start
        } else {
            0
        },
        mmio_start,
        mmio_size: 0x1000_0000,
        device_model: true,
        ..MeminitConfig::default()
    }
}

fn host() -> Simulator {
    let sim = Simulator::oracle_compatible(&OracleModel::default()).expect("host");
    sim.create_domain(DomId(1), &DomainConfig::default())
        .expect("domain");
    sim
}

fn meminit(c: &mut Criterion) {
    let mut group = c.benchmark_group("meminit_hvm");
    group.sample_size(10);
    for gib in [1u64, 16, 256, 1024] {
        let cfg = config(gib << 10);
        for strategy in [Strategy::Compat, Strategy::Batched] {
            group.bench_with_input(
                BenchmarkId::new(format!("{strategy:?}"), format!("{gib}GiB")),
                &cfg,
                |b, cfg| {
                    b.iter_batched(
                        host,
                        // The simulator is returned so that dropping it is not timed.
                        |sim| {
                            (
                                meminit_hvm(&sim, DomId(1), cfg, strategy).expect("meminit"),
                                sim,
                            )
                        },
                        BatchSize::LargeInput,
                    );
                },
            );
        }
    }
    group.finish();
}

/// The plan alone: every step answered "done", no hypervisor.
fn plan_only(c: &mut Criterion) {
    let mut group = c.benchmark_group("meminit_plan");
    for gib in [1u64, 1024] {
        let cfg = config(gib << 10);
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("{gib}GiB")),
            &cfg,
            |b, cfg| {
                b.iter(|| {
                    let mut plan = MeminitPlan::new(cfg);
                    let mut steps = 0u64;
                    while let Some(step) = plan.step() {
                        steps += 1;
                        let answer = match step {
                            Step::Populate(call) => Answer::Done(call.nr_extents),
                            _ => Answer::Done(0),
                        };
                        plan.complete(answer);
                    }
                    steps
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, meminit, plan_only);
criterion_main!(benches);
