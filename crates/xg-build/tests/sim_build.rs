//! Whole HVM builds on the simulator with the in-memory store: the hypercall trace, the
//! Xenstore writes and the result line, snapshotted for several platform
//! configurations.

mod common;

use common::{report, run, Dev, Scenario};
use xg_build::Step;
use xg_ctrl::sim::HostConfig;

const RESULT: &str = "result:1044476 1044479\n";

#[test]
fn defaults_4gib() {
    let (r, store) = run(&Scenario::new(4096), None);
    let out = r.result.as_ref().unwrap();
    assert_eq!(out.result_line(), RESULT);
    // libxenguest's worked example (libxen spec §1.4): 260 populate calls.
    assert_eq!(out.meminit.populate_calls, 260);
    insta::assert_snapshot!(report(&r, &store));
}

#[test]
fn four_vcpus_with_affinity() {
    let sc = Scenario::new(2048)
        .platform("vcpu/number", "4")
        .platform("vcpu/current", "3")
        .platform("vcpu/0/affinity", "1100")
        .platform("vcpu/2/affinity", "0011000000000001");
    let (r, store) = run(&sc, None);
    let out = r.result.as_ref().unwrap();
    assert_eq!(out.vcpus.affinity.len(), 2);
    assert_eq!(out.vcpus.affinity[0], (0, vec![0x03, 0x00]));
    assert_eq!(out.vcpus.affinity[1], (2, vec![0x0C, 0x80]));
    // hvm_info: 4 vCPUs, 0..2 online.
    assert_eq!(out.params.hvm_info.nr_vcpus, 4);
    assert_eq!(out.params.hvm_info.vcpu_online[0], 0x07);
    insta::assert_snapshot!(report(&r, &store));
}

#[test]
fn weight_and_cap() {
    let sc = Scenario::new(1024)
        .platform("vcpu/weight", "512")
        .platform("vcpu/cap", "50");
    let (r, store) = run(&sc, None);
    assert_eq!(r.result.as_ref().unwrap().vcpus.credit, Some((512, 50)));
    insta::assert_snapshot!(report(&r, &store));
}

#[test]
fn platform_quirks_are_reported_and_normalised() {
    let sc = Scenario::new(1024)
        .platform("vcpu/weight", "65792") // 0x10100: u16 truncation to 256
        .platform("acpi", "true")
        .platform("acpi_s3", "yes")
        .platform("hpet", "0")
        .platform("timeoffset", "-7200")
        .platform("viridian", "1")
        .platform("viridian_reference_tsc", "1")
        .platform("x87-fip-width", "8")
        .platform("tsc_mode", "1x");
    let (r, store) = run(&sc, None);
    let out = r.result.as_ref().unwrap();
    assert_eq!(out.flags.vcpu_weight, 256);
    assert_eq!(out.params.hpet, 0);
    assert_eq!(out.params.time_offset, -7200);
    assert_eq!(out.params.viridian, Some(0x1001 | 0x8));
    assert_eq!(out.params.x87_fip_width, Some(8));
    assert_eq!(out.flags.warnings.len(), 3, "{:?}", out.flags.warnings);
    insta::assert_snapshot!(report(&r, &store));
}

#[test]
fn pci_passthrough_with_bars_and_rmrr() {
    let mut sc = Scenario::new(4096);
    let dir = sc.devices(&[
        Dev {
            sbdf: "0000:03:00.0",
            bars: &[0x100_0000, 0, 0x1000_0000, 0, 0, 0, 0x8_0000],
            vendor: 0x10de,
            device: 0x1eb8,
            rmrr: &[],
        },
        Dev {
            sbdf: "0000:00:1f.3",
            bars: &[0x4000],
            vendor: 0x8086,
            device: 0xa348,
            rmrr: &[(0xBF800, 0x800)],
        },
    ]);
    sc.pci = Some("0000:03:00.0,,0000:00:1f.3,bogus".into());
    let (r, store) = run(&sc, Some(dir.path()));
    let out = r.result.as_ref().unwrap();
    assert_eq!(out.pci.devices.len(), 2);
    assert_eq!(out.pci.bar_bytes(), 0x1108_0000 + 0x4000);
    insta::assert_snapshot!(report(&r, &store));
}

#[test]
fn vgpu() {
    let mut sc = Scenario::new(8192);
    sc.vgpu = true;
    let sc = sc
        .platform("viridian", "1")
        .platform("viridian_time_ref_count", "1");
    let (r, store) = run(&sc, None);
    let out = r.result.as_ref().unwrap();
    // stimer defaults on with a vGPU.
    assert_eq!(out.params.viridian, Some(0x1001 | 0x4 | 0x180));
    insta::assert_snapshot!(report(&r, &store));
}

#[test]
fn populate_on_demand() {
    let mut sc = Scenario::new(4096);
    sc.mem_start_mib = 2048;
    let (r, store) = run(&sc, None);
    let out = r.result.as_ref().unwrap();
    assert!(out.layout.is_pod());
    assert!(out.populated.iter().filter(|p| p.order > 0).all(|p| p.pod));
    insta::assert_snapshot!(report(&r, &store));
}

#[test]
fn pod_with_passthrough_is_refused_unless_forced() {
    let mut sc = Scenario::new(4096);
    sc.mem_start_mib = 2048;
    sc.pci = Some(String::new());
    let (r, store) = run(&sc, None);
    let e = r.result.unwrap_err();
    assert_eq!(e.step, Step::SafetyCheck);
    assert_eq!(
        e.wire_lines(),
        vec!["Populate on Demand and PCI Passthrough are mutually exclusive\n".to_owned()]
    );
    // Nothing of the build reached Xenstore: no acpi fix-ups, no vm-data.
    assert!(!store.dump().contains("vm-data"), "{}", store.dump());
    assert!(!store.dump().contains("acpi"), "{}", store.dump());
    sc.force = true;
    assert!(run(&sc, None).0.result.is_ok());
}

#[test]
fn mem_pnode_on_a_two_node_host() {
    let mut sc = Scenario::new(4096);
    sc.host = HostConfig::uniform(2, 8192, 4);
    sc.pnode = Some(1);
    let (r, store) = run(&sc, None);
    let out = r.result.as_ref().unwrap();
    assert!(out
        .populated
        .iter()
        .filter(|p| p.gfn >= 0xC0 && p.gfn < 0xfeff0)
        .all(|p| p.node == Some(1)));
    // Guest RAM came from node 1; only libxenguest's node-less calls (the 0xa0 low
    // pages and the special pages) may land elsewhere.
    let free = r.sim.inner().node_free_pages();
    assert!(free[0] >= 8192 * 256 - 0xB0, "{free:?}");
    assert!(free[1] < 8192 * 256 - 4096 * 256 + 0x200);
    insta::assert_snapshot!(report(&r, &store));
}

#[test]
fn mem_pnode_without_room_fails_before_allocating() {
    let mut sc = Scenario::new(4096);
    sc.host = HostConfig::uniform(2, 2048, 4);
    sc.pnode = Some(1);
    let (r, _) = run(&sc, None);
    let e = r.result.unwrap_err();
    assert_eq!(e.step, Step::SetupMem);
    assert_eq!(
        e.wire_lines(),
        vec!["NUMA node 1 has 2048 MiB free, the guest needs 4096 MiB\n".to_owned()]
    );
    let mut sc = Scenario::new(1024);
    sc.pnode = Some(7);
    let e = run(&sc, None).0.result.unwrap_err();
    assert_eq!(
        e.wire_lines(),
        vec!["NUMA node 7 does not exist (the host has 2)\n".to_owned()]
    );
}

#[test]
fn batched_populate_gives_the_same_guest() {
    let mut sc = Scenario::new(4096);
    let compat = run(&sc, None).0.result.unwrap();
    sc.strategy = xg_build::Strategy::Batched;
    let batched = run(&sc, None).0.result.unwrap();
    assert_eq!(compat.populated, batched.populated);
    assert_eq!(compat.meminit.stats, batched.meminit.stats);
    assert!(batched.meminit.populate_calls < compat.meminit.populate_calls);
}

#[test]
fn cores_per_socket_must_divide_vcpus() {
    let sc = Scenario::new(1024)
        .platform("vcpu/number", "3")
        .platform("cores-per-socket", "2");
    let e = run(&sc, None).0.result.unwrap_err();
    assert_eq!(e.step, Step::GetFlags);
    assert_eq!(
        e.wire_lines(),
        vec!["Bad cores/socket setting: 2 (nr vcpus 3)\n".to_owned()]
    );
}

#[test]
fn bad_featureset_fails_in_construct_cpuid_policy() {
    let sc = Scenario::new(1024).platform("featureset", "1fcbfbff-zz");
    let e = run(&sc, None).0.result.unwrap_err();
    assert_eq!(e.step, Step::CpuidPolicy);
    let lines = e.wire_lines();
    assert_eq!(lines[0], "Bad 'zz' in featureset\n");
    assert!(
        lines[1].starts_with("xenguest: construct_cpuid_policy: ["),
        "{lines:?}"
    );
}

#[test]
fn unsupported_bios_and_ovmf_override() {
    let sc = Scenario::new(1024).platform("hvmloader/bios", "coreboot");
    let e = run(&sc, None).0.result.unwrap_err();
    assert_eq!(
        e.wire_lines(),
        vec![
            "Unsupported bios type 'coreboot'\n".to_owned(),
            "xenguest: Failed to load firmware module: Operation not supported\n".to_owned()
        ]
    );
    let sc = Scenario::new(1024)
        .platform("hvmloader/bios", "ovmf")
        .platform("ovmf-override", "../x.fd");
    let e = run(&sc, None).0.result.unwrap_err();
    assert_eq!(
        e.wire_lines()[0],
        "ovmf-override key '../x.fd' must be a filename, not a path\n"
    );
}

#[test]
fn uefi_guest_loads_ovmf() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("OVMF-test.fd"), vec![0x5A; 2 * 1024 * 1024]).unwrap();
    let sc = Scenario::new(1024)
        .platform("hvmloader/bios", "ovmf")
        .platform("ovmf-override", "OVMF-test.fd");
    let store = xg_store::MemStore::new();
    let mut req_sc = sc.clone();
    req_sc.domid = 4;
    // The OVMF path is part of the request: point it into the temp dir.
    let sink = xg_ctrl::trace::TraceSink::new();
    let sim =
        xg_ctrl::trace::Traced::new(xg_ctrl::sim::Simulator::new(&req_sc.host).unwrap(), sink);
    let path = "/local/domain/4";
    use xg_store::Store;
    for (k, v) in &req_sc.platform {
        store
            .write(
                xg_store::TxId::NONE,
                &xg_build::toolstack::platform_key(path, k),
                v.as_bytes(),
            )
            .unwrap();
    }
    xg_build::toolstack::build_pre(&sim, &store, xg_ctrl::DomId(4), 1024).unwrap();
    let mut req = req_sc.request();
    req.ovmf_path = dir.path().join("OVMF-release.fd");
    let out =
        xg_build::build_hvm(&sim, &store, &xg_build::PciHost::at("/nonexistent"), &req).unwrap();
    match &out.system_firmware {
        xg_build::mem::SystemFirmware::Ovmf { path, bytes } => {
            assert!(path.ends_with("OVMF-test.fd"));
            assert_eq!(*bytes, 2 * 1024 * 1024);
        }
        other => panic!("{other:?}"),
    }
    let listed = out.setup.plan.listed_modules();
    assert_eq!(listed[0].cmdline.as_deref(), Some("firmware"));
}

#[test]
fn hypercall_failure_names_the_step() {
    let mut sc = Scenario::new(1024);
    sc.host.faults.push(xg_ctrl::sim::FaultRule {
        op: "set_memory_map".into(),
        nth: 1,
        times: 1,
        errno: 22,
    });
    let e = run(&sc, None).0.result.unwrap_err();
    assert_eq!(e.step, Step::SetMemoryMap);
    assert_eq!(
        e.wire_lines(),
        vec!["xenguest: xc_domain_set_memory_map: [22] Invalid argument\n".to_owned()]
    );
}
