//! `-mode linux_build` on the simulator: result line with machine frames and the ABI,
//! start info and p2m read back, trace, failures.

mod common;

use std::fmt::Write;

use common::summarize;
use serde_json::Value;
use xg_build::pv::{build_pv, PvBuildOutcome, PvBuildRequest};
use xg_build::{toolstack, BuildError};
use xg_ctrl::sim::{FaultRule, HostConfig, Simulator};
use xg_ctrl::trace::{TraceSink, Traced};
use xg_ctrl::{DomId, Gfn, Mfn, PvOps};
use xg_guest::kernel::test_kernel::{test_pv_kernel, test_pvh_kernel};
use xg_store::{MemStore, Store, TxId};

const DOMID: u16 = 7;

struct Run {
    result: Result<PvBuildOutcome, BuildError>,
    store: MemStore,
    sim: Traced<Simulator>,
    sink: TraceSink,
    path: String,
}

fn request(mem_mib: u64) -> PvBuildRequest {
    let mut r = PvBuildRequest::new(DomId(DOMID), mem_mib, mem_mib, test_pv_kernel());
    r.cmdline = Some("root=/dev/xvda1 console=hvc0".into());
    r.ramdisk = Some((0..5000u32).map(|i| (i % 253) as u8).collect());
    r.store_evtchn = 3;
    r.console_evtchn = 4;
    r
}

fn run(req: &PvBuildRequest) -> Run {
    run_faulty(req, None)
}

fn run_faulty(req: &PvBuildRequest, fault: Option<FaultRule>) -> Run {
    run_in(req, fault, &[])
}

fn run_in(req: &PvBuildRequest, fault: Option<FaultRule>, platform: &[(&str, &str)]) -> Run {
    let store = MemStore::new();
    let sink = TraceSink::new();
    let inner = Simulator::new(&HostConfig::uniform(1, 16384, 4)).unwrap();
    if let Some(f) = fault {
        inner.inject_fault(f).unwrap();
    }
    let sim = Traced::new(inner, sink.clone());
    let path = store.get_domain_path(u32::from(DOMID)).unwrap();
    for (k, v) in [("vcpu/number", "2"), ("vcpu/current", "2")]
        .iter()
        .chain(platform)
    {
        store
            .write(TxId::NONE, &toolstack::platform_key(&path, k), v.as_bytes())
            .unwrap();
    }
    toolstack::build_pre_as(&sim, &store, DomId(DOMID), req.mem_max_mib, false).unwrap();
    let result = build_pv(&sim, &store, req);
    Run {
        result,
        store,
        sim,
        sink,
        path,
    }
}

fn report(r: &Run) -> String {
    let o = r.result.as_ref().expect("build succeeded");
    let mut s = o.result_line();
    let _ = writeln!(s, "kernel {:?} {:?}", o.format, o.kernel);
    let _ = writeln!(
        s,
        "meminit: {} superpages, {} small pages",
        o.memory.superpages, o.memory.small_pages
    );
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

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

#[test]
fn pv_256mib_on_the_simulator() {
    let r = run(&request(256));
    let o = r.result.as_ref().unwrap();
    let d = DomId(DOMID);
    let l = &o.image.layout;
    let p2m = &o.memory.p2m;
    assert_eq!(p2m.len(), 256 << 8);
    // The result names machine frames of the xenstore and console pages.
    assert_eq!(
        o.result_line(),
        format!(
            "result:{} {} x86_64-abi\n",
            r.sim.inner().mfn_of(d, Gfn(l.xenstore_pfn)).unwrap(),
            r.sim.inner().mfn_of(d, Gfn(l.console_pfn)).unwrap()
        )
    );
    // Start info read back by machine frame.
    let mut si = vec![0u8; 4096];
    let si_mfn = p2m[usize::try_from(l.start_info_pfn).unwrap()];
    r.sim
        .inner()
        .read_machine(d, &[Mfn(si_mfn)], 0, &mut si)
        .unwrap();
    assert_eq!(&si[..14], b"xen-3.0-x86_64");
    assert_eq!(u64_at(&si, 56), o.store_mfn);
    assert_eq!(u64_at(&si, 72), o.console_mfn);
    assert_eq!(u64_at(&si, 120), 5000, "ramdisk length");
    assert_eq!(&si[128..157], b"root=/dev/xvda1 console=hvc0\0");
    // Every p2m entry is the simulator's frame.
    for (pfn, m) in p2m.iter().enumerate().step_by(97) {
        let pfn = u64::try_from(pfn).unwrap();
        assert_eq!(r.sim.inner().mfn_of(d, Gfn(pfn)), Some(*m));
    }
    let st = r.sim.inner().pv_state(d).unwrap();
    assert_eq!(st.pinned.len(), 1);
    assert_eq!(st.vcpu_contexts.len(), 1);
    assert_eq!(st.address_size, Some(64));
    assert!(o.cpu_policy.leaves.iter().any(|l| l.leaf == 1));
    r.sim.inner().check_invariants().unwrap();
    insta::assert_snapshot!(report(&r));
}

#[test]
fn hvmloader_flag_fixups_as_in_c() {
    // C's stub_xc_linux_build starts with get_flags, which rewrites platform/acpi* for PV
    // guests too.
    let platform = [("acpi", "true"), ("acpi_s4", "1"), ("acpi_s3", "yes")];
    let r = run_in(&request(64), None, &platform);
    let o = r.result.as_ref().unwrap();
    let want = [
        ("platform/acpi".to_owned(), "1".to_owned()),
        ("platform/acpi_s3".to_owned(), "0".to_owned()),
    ];
    assert_eq!(o.xenstore_writes, want);
    let read = |k: &str| {
        r.store
            .read(TxId::NONE, &format!("{}/platform/{k}", r.path))
            .unwrap()
    };
    assert_eq!(
        (read("acpi"), read("acpi_s4"), read("acpi_s3")),
        (b"1".to_vec(), b"1".to_vec(), b"0".to_vec())
    );
    // Absent keys are written as "0", as C's hvmloader_flag does.
    let plain = run(&request(64));
    let zeroes: Vec<(String, String)> = ["acpi", "acpi_s4", "acpi_s3"]
        .iter()
        .map(|k| (format!("platform/{k}"), "0".to_owned()))
        .collect();
    assert_eq!(plain.result.unwrap().xenstore_writes, zeroes);
}

#[test]
fn pv_without_ramdisk() {
    let mut req = request(64);
    req.ramdisk = None;
    let r = run(&req);
    let o = r.result.as_ref().unwrap();
    assert!(o.image.layout.ramdisk.is_none());
    assert_eq!(o.image.start_info.mod_len, 0);
}

#[test]
fn failures_name_their_step() {
    // Not an ELF at all.
    let mut req = request(64);
    req.kernel = b"not a kernel".to_vec();
    let e = run(&req).result.unwrap_err();
    assert!(e.wire_lines()[0].starts_with("xenguest: xc_dom_"), "{e:?}");

    // A PVH-only kernel: no PV notes.
    let mut req = request(64);
    req.kernel = test_pvh_kernel();
    let e = run(&req).result.unwrap_err();
    assert_eq!(e.step.c_name(), "xc_dom_parse_image");
    assert!(
        e.wire_lines()[0].starts_with("xenguest: xc_dom_parse_image: [2] "),
        "{:?}",
        e.wire_lines()
    );

    // More memory than the domain may have.
    let mut req = request(64);
    req.mem_start_mib = 128;
    let e = run(&req).result.unwrap_err();
    assert_eq!(e.step.c_name(), "xc_dom_boot_mem_init");

    // Too little memory for the layout.
    let mut req = request(1);
    req.ramdisk = Some(vec![0; 2 << 20]);
    let e = run(&req).result.unwrap_err();
    assert_eq!(e.step.c_name(), "xc_dom_build_image");
}

/// Every PV operation failing once: the build fails at the libxenguest step that made
/// the call, never panics, and reports Xen's errno.
#[test]
fn each_pv_call_failing_names_its_step() {
    let cases = [
        ("set_address_size", 1, "xc_dom_boot_mem_init"),
        ("populate_physmap_mfns", 1, "xc_dom_boot_mem_init"),
        ("write_machine", 1, "xc_dom_build_image"),
        ("write_machine", 6, "xc_dom_boot_image"),
        ("hypercall_init", 1, "xc_dom_boot_image"),
        ("pin_table", 1, "xc_dom_boot_image"),
        ("set_vcpu_context", 1, "xc_dom_boot_image"),
        ("write_grant_table", 1, "xc_dom_gnttab_init"),
    ];
    for (op, nth, step) in cases {
        let fault = FaultRule {
            op: op.into(),
            nth,
            times: 1,
            errno: libc::ENOMEM,
        };
        let e = run_faulty(&request(64), Some(fault)).result.unwrap_err();
        assert_eq!(e.step.c_name(), step, "{op} #{nth}: {e:?}");
        assert_eq!(e.errno(), libc::ENOMEM, "{op}: {e:?}");
    }
}
