//! `XENMEM_reserved_device_memory_map` on the simulator: the RMRRs of a host file, the
//! ENOBUFS/count protocol xenguest's `get_rdm` relies on, `XENMEM_RDM_ALL`, errors and
//! trace records.

use xg_ctrl::sim::{FaultRule, HostConfig, Simulator};
use xg_ctrl::trace::{TraceSink, Traced};
use xg_ctrl::{rdm, Error, MemoryOps, PciDev, ReservedRegion};

const HOST: &str = r#"
[[node]]
memory_mib = 4096
cpus = 4

[[pci_device]]
sbdf = "0000:00:02.0"
rmrrs = [[0xBF800, 0x800], [0xC0000, 0x10]]

[[pci_device]]
sbdf = "0000:00:14.0"
rmrrs = [[0xBF800, 0x800], [0xD0000, 0]]

[[pci_device]]
sbdf = "0001:03:00.1"
rmrrs = []
"#;

fn dev(seg: u16, bus: u8, slot: u8, func: u8) -> PciDev {
    PciDev {
        seg,
        bus,
        devfn: (slot << 3) | func,
    }
}

fn region(start_pfn: u64, nr_pages: u64) -> ReservedRegion {
    ReservedRegion {
        start_pfn,
        nr_pages,
    }
}

fn sim() -> Simulator {
    Simulator::new(&HostConfig::from_toml(HOST).unwrap()).unwrap()
}

#[test]
fn counting_call_fails_with_enobufs_and_the_count() {
    let s = sim();
    let gpu = dev(0, 0, 2, 0);
    let err = s.reserved_device_memory_map(0, gpu, 0).unwrap_err();
    assert_eq!(err.errno(), Some(libc::ENOBUFS));
    assert!(matches!(err, Error::TooSmall { needed: 2, .. }), "{err:?}");
    // Room for fewer is still too small; room for exactly the count or more fits.
    assert!(matches!(
        s.reserved_device_memory_map(0, gpu, 1),
        Err(Error::TooSmall { needed: 2, .. })
    ));
    let want = vec![region(0xBF800, 0x800), region(0xC0000, 0x10)];
    assert_eq!(s.reserved_device_memory_map(0, gpu, 2).unwrap(), want);
    assert_eq!(s.reserved_device_memory_map(0, gpu, 64).unwrap(), want);
    assert_eq!(s.reserved_device_memory(0, gpu).unwrap(), want);
}

#[test]
fn devices_without_regions_succeed_at_once() {
    let s = sim();
    // Listed with an empty list, or not listed at all: the counting call succeeds.
    for d in [dev(1, 3, 0, 1), dev(0, 5, 0, 0)] {
        assert_eq!(s.reserved_device_memory_map(0, d, 0).unwrap(), vec![]);
        assert_eq!(s.reserved_device_memory(0, d).unwrap(), vec![]);
    }
    // A region of no pages is not reported (Xen skips it).
    assert_eq!(
        s.reserved_device_memory(0, dev(0, 0, 0x14, 0)).unwrap(),
        vec![region(0xBF800, 0x800)]
    );
}

#[test]
fn rdm_all_reports_each_region_once_whatever_the_device() {
    let s = sim();
    let all = s
        .reserved_device_memory(rdm::ALL, dev(0, 0x7f, 0, 0))
        .unwrap();
    assert_eq!(all, vec![region(0xBF800, 0x800), region(0xC0000, 0x10)]);
    let err = s
        .reserved_device_memory_map(rdm::ALL, dev(0, 0, 0, 0), 1)
        .unwrap_err();
    assert!(matches!(err, Error::TooSmall { needed: 2, .. }), "{err:?}");
}

#[test]
fn unknown_flags_and_injected_faults_keep_their_errno() {
    let s = sim();
    let err = s.reserved_device_memory(2, dev(0, 0, 2, 0)).unwrap_err();
    assert_eq!(err.errno(), Some(libc::EINVAL));
    // The second call (the read) fails: get_rdm's second failure path.
    s.inject_fault(FaultRule {
        op: "reserved_device_memory_map".into(),
        nth: 2,
        times: 1,
        errno: libc::EFAULT,
    })
    .unwrap();
    let err = s.reserved_device_memory(0, dev(0, 0, 2, 0)).unwrap_err();
    assert_eq!(err.errno(), Some(libc::EFAULT));
    assert_eq!(s.calls("reserved_device_memory_map"), 2);
    assert_eq!(
        s.reserved_device_memory(0, dev(0, 0, 2, 0)).unwrap().len(),
        2
    );
}

#[test]
fn traced_calls_show_both_steps() {
    let sink = TraceSink::new();
    let t = Traced::new(sim(), sink.clone());
    t.reserved_device_memory(0, dev(0, 0, 2, 0)).unwrap();
    t.reserved_device_memory(0, dev(0, 9, 0, 0)).unwrap();
    assert_eq!(
        sink.lines(),
        vec![
            r#"{"seq":0,"call":"reserved_device_memory_map","flags":0,"sbdf":"0000:00:02.0","max_entries":0,"rc":-1,"errno":105,"nr_entries":2}"#,
            r#"{"seq":1,"call":"reserved_device_memory_map","flags":0,"sbdf":"0000:00:02.0","max_entries":2,"rc":0,"nr_entries":2,"regions":[[784384,2048],[786432,16]]}"#,
            r#"{"seq":2,"call":"reserved_device_memory_map","flags":0,"sbdf":"0000:09:00.0","max_entries":0,"rc":0,"nr_entries":0,"regions":[]}"#,
        ]
    );
}

#[test]
fn host_files_with_bad_devices_are_rejected() {
    let base = "[[node]]\nmemory_mib = 64\ncpus = 1\n";
    for bad in [
        "[[pci_device]]\nsbdf = \"0000:00:20.0\"",
        "[[pci_device]]\nsbdf = \"0000:00:02.8\"",
        "[[pci_device]]\nsbdf = \"0000:100:02.0\"",
        "[[pci_device]]\nsbdf = \"garbage\"",
        "[[pci_device]]\nsbdf = \"00:02.0\"\n[[pci_device]]\nsbdf = \"0000:00:02.0\"",
        "[[pci_device]]\nsbdf = \"00:02.0\"\nrmrrs = [[1]]",
        "[[pci_device]]\nsbdf = \"00:02.0\"\nbogus = 1",
    ] {
        let err = HostConfig::from_toml(&format!("{base}{bad}")).unwrap_err();
        assert!(matches!(err, Error::HostConfig { .. }), "{bad}: {err:?}");
    }
    let cfg = HostConfig::from_toml(HOST).unwrap();
    assert_eq!(cfg.pci_devices.len(), 3);
    assert_eq!(HostConfig::from_toml(&cfg.to_toml().unwrap()).unwrap(), cfg);
}
