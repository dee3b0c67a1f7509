//! For `cargo xtask bench`: median wall time of a PVH and a PV build of a 32 MiB gzip
//! kernel into a 256 MiB simulated guest, and of decompressing that kernel alone, as one
//! JSON line (milliseconds).
#![allow(clippy::print_stdout)]

use std::time::Instant;

use xg_build::bench_support as kb;
use xg_build::pv::{build_pv, PvBuildRequest};
use xg_build::pvh::{build_pvh, PvhBuildRequest};

const RUNS: usize = 5;

fn median_ms(mut f: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[RUNS / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pvh = kb::pvh_kernel_gz();
    let pv = kb::pv_kernel_gz();
    let gunzip = median_ms(|| {
        kb::gunzip(&pvh).expect("gunzip");
    });
    let pvh_req = PvhBuildRequest::new(kb::DOMID, kb::GUEST_MIB, kb::GUEST_MIB, pvh.clone());
    let mut pvh_ms = Vec::new();
    let mut pv_ms = Vec::new();
    for _ in 0..RUNS {
        let (sim, store) = kb::prepared_guest(true)?;
        let t = Instant::now();
        build_pvh(&sim, &store, &pvh_req)?;
        pvh_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let pv_req = PvBuildRequest::new(kb::DOMID, kb::GUEST_MIB, kb::GUEST_MIB, pv.clone());
    for _ in 0..RUNS {
        let (sim, store) = kb::prepared_guest(false)?;
        let t = Instant::now();
        build_pv(&sim, &store, &pv_req)?;
        pv_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "{}",
        serde_json::json!({
            "kernel_bytes": kb::KERNEL_BYTES,
            "gzip_bytes": pvh.len(),
            "gunzip_ms": gunzip,
            "pvh_build_ms": median(pvh_ms),
            "linux_build_ms": median(pv_ms),
        })
    );
    Ok(())
}
