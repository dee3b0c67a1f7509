//! `-mode pvh_build` on the simulator: result line, layout, e820 (T11), trace, failures.

mod common;

use std::fmt::Write;

use common::summarize;
use serde_json::Value;
use xg_build::pvh::{build_pvh, PvhBuildOutcome, PvhBuildRequest, KERNEL_LIMIT_KEY};
use xg_build::{toolstack, BuildError};
use xg_ctrl::sim::{HostConfig, Simulator};
use xg_ctrl::trace::{TraceSink, Traced};
use xg_ctrl::{DomId, DomainOps};
use xg_guest::kernel::test_kernel::test_pvh_kernel;
use xg_store::{MemStore, Store, TxId};

const DOMID: u16 = 4;

struct Run {
    result: Result<PvhBuildOutcome, BuildError>,
    sink: TraceSink,
    path: String,
}

fn request(mem_mib: u64) -> PvhBuildRequest {
    let mut r = PvhBuildRequest::new(DomId(DOMID), mem_mib, mem_mib, test_pvh_kernel());
    r.cmdline = Some("console=hvc0".into());
    r.store_evtchn = 5;
    r.console_evtchn = 6;
    r
}

fn run_with(req: &PvhBuildRequest, platform: &[(&str, &str)]) -> Run {
    let store = MemStore::new();
    let sink = TraceSink::new();
    let sim = Traced::new(
        Simulator::new(&HostConfig::uniform(1, 16384, 4)).unwrap(),
        sink.clone(),
    );
    let path = store.get_domain_path(u32::from(DOMID)).unwrap();
    for (k, v) in [("vcpu/number", "2"), ("vcpu/current", "2")]
        .iter()
        .chain(platform)
    {
        store
            .write(TxId::NONE, &toolstack::platform_key(&path, k), v.as_bytes())
            .unwrap();
    }
    toolstack::build_pre(&sim, &store, DomId(DOMID), req.mem_max_mib).unwrap();
    // xenopsd's maxmem leaves room for the special and ACPI pages.
    sim.set_max_mem(DomId(DOMID), (req.mem_max_mib + 1) * 1024)
        .unwrap();
    let result = build_pvh(&sim, &store, req);
    Run { result, sink, path }
}

fn report(r: &Run) -> String {
    let o = r.result.as_ref().expect("build succeeded");
    let mut s = o.result_line();
    let l = &o.layout;
    let _ = writeln!(
        s,
        "mmio_start {:#x} lowmem_end {:#x} highmem_end {:#x} total {:#x} target {:#x}",
        l.mmio_start, l.lowmem_end, l.highmem_end, l.total_pages, l.target_pages
    );
    for e in xg_build::hvm::e820_lines(&l.e820) {
        let _ = writeln!(s, "e820 {e}");
    }
    let _ = writeln!(s, "kernel {:?} {:?}", o.kernel.format, o.kernel.pvh);
    for (name, addr, size) in &o.acpi.placed {
        let _ = writeln!(s, "acpi {name} {addr:#x} +{size:#x}");
    }
    let _ = writeln!(s, "{}", o.image);
    s.push_str("--- trace\n");
    let records: Vec<Value> = r
        .sink
        .records()
        .iter()
        .map(xg_ctrl::trace::Record::to_value)
        .collect();
    s.push_str(&summarize(&records, &r.path));
    s
}

#[test]
fn pvh_1gib_on_the_simulator() {
    let r = run_with(&request(1024), &[]);
    let o = r.result.as_ref().unwrap();
    assert_eq!(o.result_line(), "result:1044476 1044479\n");
    insta::assert_snapshot!(report(&r));
}

/// xenguest.md §7 T11: M = 4096, ACPI modules with their real lengths.
#[test]
fn t11_e820() {
    let r = run_with(&request(4096), &[]);
    let o = r.result.as_ref().unwrap();
    let lines = xg_build::hvm::e820_lines(&o.layout.e820);
    assert_eq!(
        lines,
        [
            "RAM 0x0 +0xf0000000",
            "ACPI 0xff000 +0x1000",
            "ACPI 0xfc000000 +0x1000",
            "ACPI 0xfc001000 +0x1000",
            "RAM 0x100000000 +0x10000000",
        ]
    );
    assert_eq!(o.layout.mmio_size, 0x1000_0000);
    // RAM below the hole starts at 0: no VGA hole for PVH.
    assert!(!o.meminit_config.device_model);
}

#[test]
fn modules_and_limits() {
    let mut req = request(256);
    req.modules = vec![
        (b"module zero".to_vec(), "m0".into()),
        (vec![1; 100], String::new()),
    ];
    let r = run_with(&req, &[(KERNEL_LIMIT_KEY, "0x100000")]);
    let o = r.result.as_ref().unwrap();
    assert_eq!(o.limits, (0x10_0000, 1 << 30));
    assert_eq!(o.image.start_info.nr_modules, 2);

    // strtoull(base 0): octal, decimal; garbage or 0 means the default.
    for (v, want) in [
        ("010", 8),
        ("4096", 4096),
        ("12abc", 1 << 30),
        ("0", 1 << 30),
    ] {
        let store = MemStore::new();
        store
            .write(TxId::NONE, KERNEL_LIMIT_KEY, v.as_bytes())
            .unwrap();
        assert_eq!(
            xg_build::pvh::read_limit(&store, KERNEL_LIMIT_KEY).unwrap(),
            want,
            "{v}"
        );
    }

    // A kernel limit below the image size fails in xc_dom_kernel_file.
    let r = run_with(&request(256), &[(KERNEL_LIMIT_KEY, "100")]);
    let e = r.result.unwrap_err();
    assert_eq!(
        e.wire_lines(),
        ["xenguest: xc_dom_kernel_file: [2] Kernel image of 324 bytes is larger than the limit of 100 bytes\n"]
    );
}

#[test]
fn failures_name_their_step() {
    let mut req = request(256);
    req.pci_passthrough = Some("0000:01:00.0".into());
    req.force = true;
    let e = run_with(&req, &[]).result.unwrap_err();
    assert_eq!(
        e.wire_lines(),
        ["PCI passthrough not supported under PVH\n"]
    );

    let mut req = request(256);
    req.kernel = xg_guest::firmware::builtin_test_firmware();
    let e = run_with(&req, &[]).result.unwrap_err();
    assert_eq!(
        e.wire_lines(),
        ["xenguest: xc_dom_parse_image: [2] Not a Xen-ELF image: no Xen ELF notes found\n"]
    );

    let mut req = request(256);
    req.modules = (0..3).map(|i| (vec![i; 8], String::new())).collect();
    let e = run_with(&req, &[]).result.unwrap_err();
    assert_eq!(e.step.c_name(), "xc_dom_boot_image");
}
