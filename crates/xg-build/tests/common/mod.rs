//! Shared helpers of the build tests: a simulated host with an in-memory (or real)
//! Xenstore, PCI devices (sysfs fixtures plus their RMRRs in the simulated host), and a
//! readable summary of the hypercall trace.
#![allow(dead_code)]

use std::fmt::Write;
use std::path::Path;

use serde_json::Value;
use tempfile::TempDir;
use xg_build::pci::PciHost;
use xg_build::xstrace::TracedStore;
use xg_build::{build_hvm, toolstack, BuildError, HvmBuildOutcome, HvmBuildRequest, Strategy};
use xg_ctrl::sim::{HostConfig, PciDeviceConfig, Simulator};
use xg_ctrl::trace::{TraceSink, Traced};
use xg_ctrl::DomId;
use xg_store::{MemStore, Store, TxId};

/// One build scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub host: HostConfig,
    pub domid: u16,
    pub mem_max_mib: u64,
    pub mem_start_mib: u64,
    pub platform: Vec<(String, String)>,
    pub vgpu: bool,
    pub force: bool,
    pub pci: Option<String>,
    pub pnode: Option<u32>,
    pub strategy: Strategy,
}

impl Scenario {
    pub fn new(mem_mib: u64) -> Scenario {
        Scenario {
            host: HostConfig::uniform(2, 32768, 8),
            domid: 3,
            mem_max_mib: mem_mib,
            mem_start_mib: mem_mib,
            platform: vec![
                ("vcpu/number".into(), "2".into()),
                ("vcpu/current".into(), "2".into()),
            ],
            vgpu: false,
            force: false,
            pci: None,
            pnode: None,
            strategy: Strategy::Compat,
        }
    }

    pub fn platform(mut self, k: &str, v: &str) -> Scenario {
        self.platform.retain(|(x, _)| x != k);
        self.platform.push((k.into(), v.into()));
        self
    }

    pub fn request(&self) -> HvmBuildRequest {
        let fw = xg_guest::firmware::builtin_test_firmware();
        let mut req =
            HvmBuildRequest::new(DomId(self.domid), self.mem_max_mib, self.mem_start_mib, fw);
        req.store_evtchn = 5;
        req.console_evtchn = 6;
        req.vgpu = self.vgpu;
        req.force = self.force;
        req.pci_passthrough.clone_from(&self.pci);
        req.mem_pnode = self.pnode;
        req.strategy = self.strategy;
        req
    }
}

/// What a scenario produced.
pub struct Run {
    pub result: Result<HvmBuildOutcome, BuildError>,
    pub sim: Traced<Simulator>,
    pub sink: TraceSink,
    pub domain_path: String,
}

/// Seeds `store`, creates the domain and builds it.
pub fn run_on<S: Store + ?Sized>(sc: &Scenario, store: &S, sysfs: Option<&Path>) -> Run {
    let sink = TraceSink::new();
    let sim = Traced::new(Simulator::new(&sc.host).expect("host"), sink.clone());
    let path = store.get_domain_path(u32::from(sc.domid)).unwrap();
    for (k, v) in &sc.platform {
        store
            .write(TxId::NONE, &toolstack::platform_key(&path, k), v.as_bytes())
            .unwrap();
    }
    let tstore = TracedStore::new(store, sink.clone());
    toolstack::build_pre(&sim, &tstore, DomId(sc.domid), sc.mem_max_mib).unwrap();
    // RMRRs come from the simulated hypervisor (the host's [[pci_device]] lists).
    let host = PciHost::at(sysfs.unwrap_or(Path::new("/nonexistent-sysfs"))).with_hypervisor(&sim);
    let result = build_hvm(&sim, &tstore, &host, &sc.request());
    Run {
        result,
        sim,
        sink,
        domain_path: path,
    }
}

/// Runs a scenario on a fresh in-memory store; returns the run and the store.
pub fn run(sc: &Scenario, sysfs: Option<&Path>) -> (Run, MemStore) {
    let store = MemStore::new();
    let r = run_on(sc, &store, sysfs);
    (r, store)
}

/// One device of a sysfs fixture.
pub struct Dev<'a> {
    pub sbdf: &'a str,
    pub bars: &'a [u64],
    pub vendor: u16,
    pub device: u16,
    pub rmrr: &'a [(u64, u64)],
}

impl Scenario {
    /// Plugs `devs` into the host: a sysfs tree with their `resource`, `vendor` and
    /// `device` files (returned; pass its path to [`run`]), and their RMRRs in the
    /// simulated host's `[[pci_device]]` list, where `XENMEM_reserved_device_memory_map`
    /// finds them.
    pub fn devices(&mut self, devs: &[Dev<'_>]) -> TempDir {
        for d in devs.iter().filter(|d| !d.rmrr.is_empty()) {
            self.host.pci_devices.push(PciDeviceConfig {
                sbdf: d.sbdf.to_owned(),
                rmrrs: d.rmrr.iter().map(|&(pfn, n)| [pfn, n]).collect(),
            });
        }
        sysfs(devs)
    }
}

/// A sysfs tree with `resource`, `vendor` and `device` files.
fn sysfs(devs: &[Dev<'_>]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for d in devs {
        let p = dir.path().join("bus/pci/devices").join(d.sbdf);
        std::fs::create_dir_all(&p).unwrap();
        let mut res = String::new();
        let mut base = 0xE000_0000u64;
        for i in 0..7 {
            match d.bars.get(i) {
                Some(&size) if size > 0 => {
                    writeln!(
                        res,
                        "{base:#018x} {:#018x} {:#018x}",
                        base + size - 1,
                        0x40200
                    )
                    .unwrap();
                    base += size;
                }
                _ => writeln!(res, "{:#018x} {:#018x} {:#018x}", 0, 0, 0).unwrap(),
            }
        }
        // Lines after the seventh are bridge windows: never counted.
        writeln!(
            res,
            "{:#018x} {:#018x} {:#018x}",
            0x1_0000_0000u64, 0x1_FFFF_FFFFu64, 0
        )
        .unwrap();
        std::fs::write(p.join("resource"), res).unwrap();
        std::fs::write(p.join("vendor"), format!("{:#06x}\n", d.vendor)).unwrap();
        std::fs::write(p.join("device"), format!("{:#06x}\n", d.device)).unwrap();
    }
    dir
}

fn hex(v: &Value) -> String {
    v.as_u64()
        .map_or_else(|| v.to_string(), |n| format!("{n:#x}"))
}

/// A record as one line: call name and fields, without seq/rc noise.
fn render(r: &Value, domain_path: &str) -> String {
    let Some(obj) = r.as_object() else {
        return r.to_string();
    };
    let call = obj.get("call").and_then(Value::as_str).unwrap_or("?");
    let mut s = call.to_owned();
    for (k, v) in obj {
        if matches!(k.as_str(), "call" | "seq" | "domid" | "batch" | "tx") {
            continue;
        }
        if k == "rc" && v.as_i64() == Some(0) {
            continue;
        }
        let text = match v {
            Value::String(t) => t.replace(domain_path, "~"),
            Value::Number(_) if k.contains("gpfn") || k == "paddr" || k == "value" => hex(v),
            other => other.to_string(),
        };
        let _ = write!(s, " {k}={text}");
    }
    s
}

fn is_populate(r: &Value) -> bool {
    matches!(
        r.get("call").and_then(Value::as_str),
        Some("populate_physmap" | "populate_physmap_exact")
    )
}

fn field(r: &Value, k: &str) -> u64 {
    r.get(k).and_then(Value::as_u64).unwrap_or(0)
}

/// The trace, one line per call, runs of contiguous identical populate calls folded
/// into one line with a count and the gfn range they cover.
pub fn summarize(records: &[Value], domain_path: &str) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < records.len() {
        let r = &records[i];
        if is_populate(r) {
            let key = |x: &Value| {
                (
                    x.get("call").cloned(),
                    field(x, "extent_order"),
                    field(x, "nr_extents"),
                    field(x, "done"),
                    x.get("mem_flags").cloned(),
                )
            };
            let mut j = i + 1;
            let step = |x: &Value| field(x, "nr_extents") << field(x, "extent_order");
            while j < records.len()
                && is_populate(&records[j])
                && key(&records[j]) == key(r)
                && field(&records[j], "first_gpfn")
                    == field(&records[j - 1], "first_gpfn") + step(&records[j - 1])
            {
                j += 1;
            }
            let last = &records[j - 1];
            let end = field(last, "first_gpfn") + step(last);
            let _ = writeln!(
                out,
                "{} x{} order={} nr={} done={} flags={} gfn {:#x}..{:#x}",
                r["call"].as_str().unwrap_or("?"),
                j - i,
                field(r, "extent_order"),
                field(r, "nr_extents"),
                field(r, "done"),
                hex(&r["mem_flags"]),
                field(r, "first_gpfn"),
                end
            );
            i = j;
        } else {
            let _ = writeln!(out, "{}", render(r, domain_path));
            i += 1;
        }
    }
    out
}

/// The layout part of an outcome.
pub fn layout_text(o: &HvmBuildOutcome) -> String {
    let l = &o.layout;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "mmio_total {:#x} mmio_size {:#x} mmio_start {:#x} lowmem_end {:#x} highmem_end {:#x} overlap {:#x}",
        l.mmio_total, l.mmio_size, l.mmio_start, l.lowmem_end, l.highmem_end, l.rmrr_overlap
    );
    for e in xg_build::hvm::e820_lines(&l.e820) {
        let _ = writeln!(s, "e820 {e}");
    }
    let st = o.meminit.stats;
    let _ = writeln!(
        s,
        "pages 4k {:#x} 2m {:#x} 1g {:#x}, {} populate calls",
        st.pages_4k, st.pages_2m, st.pages_1g, o.meminit.populate_calls
    );
    s
}

/// Everything worth a snapshot about a successful run.
pub fn report(run: &Run, store: &MemStore) -> String {
    let o = run.result.as_ref().expect("build succeeded");
    let mut s = String::new();
    let _ = write!(s, "{}", o.result_line());
    s.push_str(&layout_text(o));
    s.push_str("--- xenstore writes of the build\n");
    for (k, v) in &o.xenstore_writes {
        let _ = writeln!(s, "{k} = {v}");
    }
    s.push_str("--- xenstore after the build\n");
    for line in store.dump().lines() {
        if line.starts_with(&run.domain_path) {
            let _ = writeln!(s, "{}", line.replace(&run.domain_path, "~"));
        }
    }
    s.push_str("--- trace\n");
    let records: Vec<Value> = run
        .sink
        .records()
        .iter()
        .map(xg_ctrl::trace::Record::to_value)
        .collect();
    s.push_str(&summarize(&records, &run.domain_path));
    s
}
