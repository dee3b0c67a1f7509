//! RMRRs of passed-through devices come from the hypervisor backend: on the simulator,
//! from the `[[pci_device]]` lists of the `--host` file.

mod common;

use std::path::Path;

use common::{text, xenguest};

const HOST: &str = r#"
[[node]]
memory_mib = 16384
cpus = 4

[[pci_device]]
sbdf = "0000:00:1f.3"
rmrrs = [[0xBF800, 0x800]]
"#;

/// A sysfs tree with one device of one 16 KiB BAR.
fn sysfs(dir: &Path) {
    let d = dir.join("sys/bus/pci/devices/0000:00:1f.3");
    std::fs::create_dir_all(&d).unwrap();
    let mut resource = String::from("0xf0000000 0xf0003fff 0x40200\n");
    resource.push_str(&"0 0 0\n".repeat(6));
    std::fs::write(d.join("resource"), resource).unwrap();
    std::fs::write(d.join("vendor"), "0x8086\n").unwrap();
    std::fs::write(d.join("device"), "0xa348\n").unwrap();
}

fn argv(dir: &Path, host: Option<&Path>, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "-mode",
        "hvm_build",
        "-domid",
        "2",
        "-mem_max_mib",
        "4096",
        "-mem_start_mib",
        "4096",
        "-store_port",
        "1",
        "-console_port",
        "2",
        "-image",
        "/nonexistent/hvmloader",
        "-pci_passthrough",
        "0000:00:1f.3",
        "--sysfs-root",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    v.push(dir.join("sys").to_str().unwrap().to_owned());
    if let Some(h) = host {
        v.push("--host".into());
        v.push(h.to_str().unwrap().to_owned());
    }
    v.extend(extra.iter().map(|s| (*s).to_owned()));
    v
}

#[test]
fn plan_and_build_take_rmrrs_from_the_host_file() {
    let dir = tempfile::tempdir().unwrap();
    sysfs(dir.path());
    let host = dir.path().join("host.toml");
    std::fs::write(&host, HOST).unwrap();

    let out = xenguest(argv(dir.path(), Some(&host), &["--plan"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        plan["pci"]["devices"][0]["rmrr"],
        serde_json::json!([{"start_pfn": 0xBF800, "nr_pages": 0x800}])
    );
    assert_eq!(plan["lowmem_end"], "0xbf800000");
    assert!(
        plan["e820"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["addr"] == "0xbf800000" && e["size"] == "0x800000"),
        "{plan:#}"
    );

    let trace = dir.path().join("t.jsonl");
    let out = xenguest(argv(
        dir.path(),
        Some(&host),
        &["-q", "--trace", trace.to_str().unwrap()],
    ));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("result:"));
    let rdm: Vec<String> = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .filter(|l| l.contains("reserved_device_memory_map"))
        .map(str::to_owned)
        .collect();
    assert_eq!(rdm.len(), 2, "{rdm:#?}");
    assert!(rdm[0].contains(r#""max_entries":0,"rc":-1,"errno":105,"nr_entries":1"#));
    assert!(rdm[1].contains(r#""max_entries":1,"rc":0,"nr_entries":1,"regions":[[784384,2048]]"#));
}

#[test]
fn a_device_the_host_lists_without_rmrrs_has_none() {
    let dir = tempfile::tempdir().unwrap();
    sysfs(dir.path());
    // The default host lists no devices.
    let out = xenguest(argv(dir.path(), None, &["--plan"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["pci"]["devices"][0]["rmrr"], serde_json::json!([]));
    assert_eq!(plan["rmrr_overlap"], "0x0");
    // The BAR grows the hole to 512 MiB; no RMRR lowers the end of low RAM further.
    assert_eq!(plan["lowmem_end"], "0xe0000000");
}
