//! `-mode pvh_build` on the simulator: result line, layout, e820 (T11), trace with the
//! Xenstore operations, the `hvmloader_flag` fix-ups, the `/mh/limits` keys, failures.

mod common;

use std::fmt::Write;

use common::summarize;
use serde_json::Value;
use xg_build::pvh::{
    build_pvh, image_max_size, parse_limit, read_limit, PvhBuildOutcome, PvhBuildRequest,
    KERNEL_LIMIT_KEY, MODULE_LIMIT_KEY,
};
use xg_build::xstrace::TracedStore;
use xg_build::{toolstack, BuildError};
use xg_ctrl::sim::{HostConfig, Simulator};
use xg_ctrl::trace::{TraceSink, Traced};
use xg_ctrl::{DomId, DomainOps};
use xg_guest::kernel::test_kernel::test_pvh_kernel;
use xg_guest::kernel::DECOMPRESS_MAX;
use xg_store::{MemStore, Store, TxId};

const DOMID: u16 = 4;

struct Run {
    result: Result<PvhBuildOutcome, BuildError>,
    sink: TraceSink,
    path: String,
    store: MemStore,
    /// The domain's keys just before the build.
    before: String,
}

impl Run {
    /// The domain's keys, relative to its path.
    fn domain_keys(&self) -> String {
        domain_keys(&self.store, &self.path)
    }
}

fn domain_keys(store: &MemStore, path: &str) -> String {
    store
        .dump()
        .lines()
        .filter(|l| l.starts_with(path))
        .map(|l| format!("{}\n", l.replace(path, "~")))
        .collect()
}

fn request(mem_mib: u64) -> PvhBuildRequest {
    let mut r = PvhBuildRequest::new(DomId(DOMID), mem_mib, mem_mib, test_pvh_kernel());
    r.cmdline = Some("console=hvc0".into());
    r.store_evtchn = 5;
    r.console_evtchn = 6;
    r
}

/// Seeds `store` with the platform keys (`vcpu/number` and `vcpu/current` = 2, then
/// `platform`; absolute keys as they are), creates the domain as xenopsd would, and
/// returns the simulator and the domain path.
fn prepare<S: Store + ?Sized>(
    store: &S,
    sink: &TraceSink,
    req: &PvhBuildRequest,
    platform: &[(&str, &str)],
) -> (Traced<Simulator>, String) {
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
    let tstore = TracedStore::new(store, sink.clone());
    toolstack::build_pre(&sim, &tstore, DomId(DOMID), req.mem_max_mib).unwrap();
    // xenopsd's maxmem leaves room for the special and ACPI pages.
    sim.set_max_mem(DomId(DOMID), (req.mem_max_mib + 1) * 1024)
        .unwrap();
    (sim, path)
}

fn run_with(req: &PvhBuildRequest, platform: &[(&str, &str)]) -> Run {
    let store = MemStore::new();
    let sink = TraceSink::new();
    let (sim, path) = prepare(&store, &sink, req, platform);
    let before = domain_keys(&store, &path);
    let result = build_pvh(&sim, &TracedStore::new(&store, sink.clone()), req);
    Run {
        result,
        sink,
        path,
        store,
        before,
    }
}

fn trace_text(sink: &TraceSink, path: &str) -> String {
    let records: Vec<Value> = sink
        .records()
        .iter()
        .map(xg_ctrl::trace::Record::to_value)
        .collect();
    summarize(&records, path)
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
    s.push_str("--- xenstore writes of the build\n");
    for (k, v) in &o.xenstore_writes {
        let _ = writeln!(s, "{k} = {v}");
    }
    s.push_str("--- xenstore after the build\n");
    s.push_str(&r.domain_keys());
    s.push_str("--- trace\n");
    s.push_str(&trace_text(&r.sink, &r.path));
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
    assert_eq!(o.limits, (0x10_0000, DECOMPRESS_MAX));
    assert!(o.limit_warnings.is_empty(), "{:?}", o.limit_warnings);
    assert_eq!(o.image.start_info.nr_modules, 2);

    // A kernel limit below the image size fails in xc_dom_kernel_file, with
    // xc_dom_malloc_filemap's XC_OUT_OF_MEMORY.
    let r = run_with(&request(256), &[(KERNEL_LIMIT_KEY, "100")]);
    let e = r.result.unwrap_err();
    assert_eq!(
        e.wire_lines(),
        ["xenguest: xc_dom_kernel_file: [4] Kernel image of 324 bytes is larger than the limit of 100 bytes\n"]
    );
    // Likewise a module over the ramdisk limit, in xc_dom_module_file.
    let mut req = request(256);
    req.modules = vec![(vec![1; 64], String::new()), (vec![2; 65], String::new())];
    let e = run_with(&req, &[(MODULE_LIMIT_KEY, "64")])
        .result
        .unwrap_err();
    assert_eq!(
        e.wire_lines(),
        ["xenguest: xc_dom_module_file: [4] Module 1 of 65 bytes is larger than the limit of 64 bytes\n"]
    );
}

/// `get_image_max_size`: `errno = 0; strtoull(s, NULL, 0)`, ERANGE → 0, 0 → the default.
#[test]
fn limit_values_parse_like_strtoull() {
    let max = DECOMPRESS_MAX;
    // (value, limit, the warning's reason or "" for none)
    let cases: &[(&str, u64, &str)] = &[
        ("4096", 4096, ""),
        ("0x100000", 0x10_0000, ""),
        ("0X10", 16, ""),
        ("  \t4096", 4096, ""),
        ("+4096", 4096, ""),
        ("010", 8, "leading 0 makes it octal"),
        ("18446744073709551615", u64::MAX, ""),
        ("0", max, ""),
        ("0x0", max, ""),
        // Text after the number is ignored.
        ("12abc", 12, "trailing characters ignored"),
        ("16M", 16, "trailing characters ignored"),
        ("4096\n", 4096, "trailing characters ignored"),
        ("1.5e9", 1, "trailing characters ignored"),
        ("08", max, "trailing characters ignored"),
        ("0x", max, "trailing characters ignored"),
        ("0xg1", max, "trailing characters ignored"),
        // No digits at all: 0, so the default.
        ("", max, "not a number, read as 0"),
        ("   ", max, "not a number, read as 0"),
        ("abc", max, "not a number, read as 0"),
        ("-", max, "not a number, read as 0"),
        ("x10", max, "not a number, read as 0"),
        // ERANGE: 0, so the default.
        ("18446744073709551616", max, "out of range, read as 0"),
        ("0x10000000000000000", max, "out of range, read as 0"),
        ("-18446744073709551616", max, "out of range, read as 0"),
        // A minus sign wraps: "-1" is no limit at all.
        ("-1", u64::MAX, "negative value wraps around"),
        ("-18446744073709551615", 1, "negative value wraps around"),
        ("-0", max, ""),
    ];
    for (value, want, reason) in cases {
        let l = parse_limit(KERNEL_LIMIT_KEY, Some(value));
        assert_eq!(l.value, *want, "{value:?}");
        assert_eq!(l.raw.as_deref(), Some(*value));
        match (&l.warning, reason.is_empty()) {
            (None, true) => {}
            (Some(w), false) => {
                assert!(w.contains(reason), "{value:?}: {w}");
                assert!(w.contains(KERNEL_LIMIT_KEY), "{w}");
                assert!(w.contains(&format!("{want:#x}")), "{w}");
            }
            (w, _) => panic!("{value:?}: warning {w:?}, expected {reason:?}"),
        }
    }
    let absent = parse_limit(KERNEL_LIMIT_KEY, None);
    assert_eq!(
        (absent.value, absent.raw, absent.warning),
        (max, None, None)
    );

    // Through the store: absent key, and a value whose C string ends at a NUL.
    let store = MemStore::new();
    assert_eq!(read_limit(&store, KERNEL_LIMIT_KEY).unwrap(), max);
    store
        .write(TxId::NONE, KERNEL_LIMIT_KEY, b"12\0junk")
        .unwrap();
    let l = image_max_size(&store, KERNEL_LIMIT_KEY).unwrap();
    assert_eq!((l.value, l.warning), (12, None));
}

/// The limits a build used and the warnings for their misread values.
#[test]
fn build_uses_misread_limits_and_says_so() {
    let r = run_with(
        &request(256),
        &[(KERNEL_LIMIT_KEY, "2048 bytes"), (MODULE_LIMIT_KEY, "-1")],
    );
    let o = r.result.as_ref().unwrap();
    assert_eq!(o.limits, (2048, u64::MAX));
    assert_eq!(o.limit_warnings.len(), 2, "{:?}", o.limit_warnings);
    assert!(o.limit_warnings[0].contains("pv-kernel-max_size=\"2048 bytes\": trailing"));
    assert!(o.limit_warnings[1].contains("pv-ramdisk-max_size=\"-1\": negative"));

    // The trailing text is ignored, so 2048 still applies to a bigger kernel.
    let mut req = request(256);
    req.kernel.resize(4096, 0);
    let e = run_with(&req, &[(KERNEL_LIMIT_KEY, "2048 bytes")])
        .result
        .unwrap_err();
    assert!(e.wire_lines()[0].starts_with("xenguest: xc_dom_kernel_file: [4] "));
}

/// `get_flags` runs `hvmloader_flag` in the PVH build too: the same fix-ups as an HVM
/// build of the same platform keys, in the same order, written in the final transaction.
#[test]
fn hvmloader_flag_fixups_as_in_hvm() {
    let platform = [("acpi", "true"), ("acpi_s4", "1"), ("acpi_s3", "yes")];
    let r = run_with(&request(256), &platform);
    let o = r.result.as_ref().unwrap();
    let want = [
        ("platform/acpi".to_owned(), "1".to_owned()),
        ("platform/acpi_s3".to_owned(), "0".to_owned()),
    ];
    assert_eq!(o.xenstore_writes, want);
    let keys = r.domain_keys();
    for line in [
        "~/platform/acpi = \"1\"",
        "~/platform/acpi_s4 = \"1\"",
        "~/platform/acpi_s3 = \"0\"",
    ] {
        assert!(keys.contains(line), "{line} missing in\n{keys}");
    }
    // The writes are the last Xenstore operations, in one transaction after the CPUID
    // policy.
    let calls: Vec<String> = r
        .sink
        .records()
        .iter()
        .filter_map(|x| x.call().map(str::to_owned))
        .collect();
    let n = calls.len();
    assert_eq!(
        calls[n - 5..],
        [
            "set_domain_cpu_policy",
            "xs_transaction_start",
            "xs_write",
            "xs_write",
            "xs_transaction_end",
        ]
        .map(String::from)[..],
        "{calls:?}"
    );

    // An HVM build of the same keys writes the same fix-ups (plus its layout keys).
    let mut sc = common::Scenario::new(256);
    for (k, v) in platform {
        sc = sc.platform(k, v);
    }
    let (hvm, _) = common::run(&sc, None);
    let hvm_fixups: Vec<(String, String)> = hvm
        .result
        .unwrap()
        .xenstore_writes
        .into_iter()
        .filter(|(k, _)| k.starts_with("platform/"))
        .collect();
    assert_eq!(hvm_fixups, o.xenstore_writes);
}

/// The same build against Debian's real C xenstored (the shared fixture): the same
/// Xenstore traffic and hypercalls as on the in-memory store, the fix-ups committed, and
/// the absolute `/mh/limits` key read with its misread value.
#[test]
#[allow(clippy::print_stderr)]
fn build_against_c_xenstored_matches_memstore() {
    use xg_store::fixture::{required_by_ci, Daemon, Flavour};
    let d = match Daemon::start(Flavour::C) {
        Ok(d) => d,
        Err(e) if e.is_missing() && !required_by_ci() => {
            eprintln!("skipping: the xenstored fixture is not available ({e})");
            return;
        }
        Err(e) => panic!("starting xenstored: {e:?}"),
    };
    let client = d.client().unwrap();
    let platform = [
        ("acpi", "TRUE"),
        ("acpi_s3", "0"),
        (KERNEL_LIMIT_KEY, "65536 "),
    ];
    let req = request(512);
    let sink = TraceSink::new();
    let (sim, path) = prepare(&client, &sink, &req, &platform);
    let real = build_pvh(&sim, &TracedStore::new(&client, sink.clone()), &req);
    let mem = run_with(&req, &platform);
    let (ro, mo) = (real.as_ref().unwrap(), mem.result.as_ref().unwrap());
    assert_eq!(ro.result_line(), "result:1044476 1044479\n");
    assert_eq!(ro.xenstore_writes, mo.xenstore_writes);
    assert_eq!(
        (ro.limits, &ro.limit_warnings),
        (mo.limits, &mo.limit_warnings)
    );
    assert_eq!(ro.limits.0, 65536);
    assert_eq!(trace_text(&sink, &path), trace_text(&mem.sink, &mem.path));
    let read = |k: &str| {
        String::from_utf8(client.read(TxId::NONE, &format!("{path}/{k}")).unwrap()).unwrap()
    };
    assert_eq!(read("platform/acpi"), "1");
    assert_eq!(read("platform/acpi_s4"), "0");
    assert_eq!(read("platform/acpi_s3"), "0");
}

/// A failed PVH build writes nothing, fix-ups included.
#[test]
fn failed_build_leaves_no_fixups() {
    let mut req = request(256);
    req.kernel = xg_guest::firmware::builtin_test_firmware();
    let r = run_with(&req, &[]);
    assert!(r.result.is_err());
    assert_eq!(r.domain_keys(), r.before);
    assert!(!r.domain_keys().contains("platform/acpi"));
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

    // Empty files: xc_dom_malloc_filemap's "zero length file", XC_INTERNAL_ERROR.
    let mut req = request(256);
    req.kernel = Vec::new();
    let e = run_with(&req, &[]).result.unwrap_err();
    assert_eq!(
        e.wire_lines(),
        ["xenguest: xc_dom_kernel_file: [1] Kernel image is empty\n"]
    );
    let mut req = request(256);
    req.modules = vec![(vec![1; 8], String::new()), (Vec::new(), String::new())];
    let e = run_with(&req, &[]).result.unwrap_err();
    assert_eq!(
        e.wire_lines(),
        ["xenguest: xc_dom_module_file: [1] Module 1 is empty\n"]
    );
}

/// xenguest reads the kernel and module files before `xc_dom_boot_xen_init` asks Xen
/// anything, and parses the kernel only after: a bad module is reported before a bad
/// kernel, and without a `xen_version` call.
#[test]
fn files_are_read_before_xen_is_asked() {
    let mut req = request(256);
    req.kernel = xg_guest::firmware::builtin_test_firmware();
    req.modules = vec![(Vec::new(), String::new())];
    let r = run_with(&req, &[]);
    let e = r.result.as_ref().unwrap_err();
    assert_eq!(e.step.c_name(), "xc_dom_module_file");
    assert!(!r
        .sink
        .records()
        .iter()
        .any(|x| x.call() == Some("xen_version")));

    // A gzip kernel decompressing past the limit: libxenguest keeps the compressed blob
    // and no loader takes it, so xc_dom_parse_image fails, after xen_version.
    let elf = test_pvh_kernel();
    let mut req = request(256);
    req.kernel = gzip_with_zeros(&elf, 40);
    let unzipped = elf.len() + 1 + 258 * 40;
    assert!(req.kernel.len() < unzipped / 4);
    let limit = format!("{}", unzipped - 1);
    let r = run_with(&req, &[(KERNEL_LIMIT_KEY, &limit)]);
    let e = r.result.as_ref().unwrap_err();
    assert_eq!(
        e.step.c_name(),
        "xc_dom_parse_image",
        "{:?}",
        e.wire_lines()
    );
    assert!(e.wire_lines()[0].starts_with("xenguest: xc_dom_parse_image: [2] "));
    assert!(r
        .sink
        .records()
        .iter()
        .any(|x| x.call() == Some("xen_version")));
    // Within the limit it boots.
    let limit = format!("{unzipped}");
    let r = run_with(&req, &[(KERNEL_LIMIT_KEY, &limit)]);
    assert_eq!(
        r.result.as_ref().unwrap().kernel.format,
        xg_guest::kernel::KernelFormat::GzipElf
    );
}

/// Bits written least significant first, as deflate packs them.
#[derive(Default)]
struct Bits {
    out: Vec<u8>,
    acc: u32,
    n: u32,
}

impl Bits {
    fn put(&mut self, value: u32, len: u32) {
        self.acc |= value << self.n;
        self.n += len;
        while self.n >= 8 {
            self.out.push(self.acc.to_le_bytes()[0]);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    /// A Huffman code: most significant bit first.
    fn code(&mut self, code: u32, len: u32) {
        let rev = code.reverse_bits() >> (32 - len);
        self.put(rev, len);
    }

    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push(self.acc.to_le_bytes()[0]);
        }
        self.out
    }
}

/// `data` followed by `1 + 258 * runs` zero bytes, as a gzip file with one fixed-Huffman
/// deflate block: literals, then the zeros as matches at distance 1. The file is much
/// smaller than what it decompresses to.
fn gzip_with_zeros(data: &[u8], runs: usize) -> Vec<u8> {
    let mut b = Bits::default();
    b.put(1, 1); // BFINAL
    b.put(1, 2); // fixed Huffman codes
    let literal = |b: &mut Bits, v: u8| {
        let v = u32::from(v);
        if v < 144 {
            b.code(0x30 + v, 8);
        } else {
            b.code(0x190 + v - 144, 9);
        }
    };
    for v in data {
        literal(&mut b, *v);
    }
    literal(&mut b, 0);
    for _ in 0..runs {
        b.code(0xC5, 8); // symbol 285: length 258
        b.code(0, 5); // distance code 0: distance 1
    }
    b.code(0, 7); // end of block
    let mut whole = data.to_vec();
    whole.resize(data.len() + 1 + 258 * runs, 0);
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    out.extend_from_slice(&b.finish());
    out.extend_from_slice(&crc32(&whole).to_le_bytes());
    out.extend_from_slice(&u32::try_from(whole.len()).unwrap().to_le_bytes());
    out
}

/// CRC-32 of gzip's trailer.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(data);
    crc.sum()
}
