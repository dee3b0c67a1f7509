//! The same builds against Debian's real C xenstored (the shared fixture), through
//! `xg_store::Client`: the Xenstore traffic and the result must match the in-memory run.

mod common;

use common::{run, run_on, summarize, Scenario};
use serde_json::Value;
use xg_store::fixture::{required_by_ci, Daemon, Flavour};
use xg_store::{Store, TxId};

#[allow(clippy::print_stderr)]
fn daemon() -> Option<Daemon> {
    match Daemon::start(Flavour::C) {
        Ok(d) => Some(d),
        Err(e) if e.is_missing() && !required_by_ci() => {
            eprintln!("skipping: the xenstored fixture is not available ({e})");
            None
        }
        Err(e) => panic!("starting xenstored: {e:?}"),
    }
}

fn records(r: &common::Run) -> Vec<Value> {
    r.sink
        .records()
        .iter()
        .map(xg_ctrl::trace::Record::to_value)
        .collect()
}

#[test]
fn build_against_c_xenstored_matches_memstore() {
    let Some(d) = daemon() else { return };
    let client = d.client().unwrap();
    let mut sc = Scenario::new(2048)
        .platform("vcpu/number", "4")
        .platform("vcpu/1/affinity", "01")
        .platform("acpi", "TRUE");
    sc.vgpu = true;
    let real = run_on(&sc, &client, None);
    let (mem, _) = run(&sc, None);
    let ro = real.result.as_ref().unwrap();
    let mo = mem.result.as_ref().unwrap();
    assert_eq!(ro.result_line(), "result:1044476 1044479\n");
    assert_eq!(ro.xenstore_writes, mo.xenstore_writes);
    assert_eq!(
        summarize(&records(&real), &real.domain_path),
        summarize(&records(&mem), &mem.domain_path)
    );
    // Read the build's keys back from the daemon.
    let p = &real.domain_path;
    let read =
        |k: &str| String::from_utf8(client.read(TxId::NONE, &format!("{p}/{k}")).unwrap()).unwrap();
    assert_eq!(read("platform/acpi"), "1");
    assert_eq!(read("platform/acpi_s3"), "0");
    assert_eq!(read("vm-data/mmio-hole-size"), "536870912");
    assert_eq!(read("vm-data/vram-reserved-addr"), "fb000000");
    assert_eq!(read("vm-data/vram-reserved-size"), "16777216");
}

#[test]
fn failed_build_leaves_no_keys_in_c_xenstored() {
    let Some(d) = daemon() else { return };
    let client = d.client().unwrap();
    let sc = Scenario::new(1024).platform("featureset", "nothex");
    let r = run_on(&sc, &client, None);
    assert!(r.result.is_err());
    let p = &r.domain_path;
    for k in ["platform/acpi", "vm-data/mmio-hole-size"] {
        assert!(
            client
                .read_opt(TxId::NONE, &format!("{p}/{k}"))
                .unwrap()
                .is_none(),
            "{k} was written"
        );
    }
}
