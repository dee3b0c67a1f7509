//! Differential test of our `meminit_pv` against the REAL libxenguest 4.17's: our own
//! driver (`tests/oracle_pv/driver.c`) runs Debian's `libxenguest.so.4.17` through
//! `xc_dom_boot_mem_init()` → `meminit_pv()` of a 64-bit PV guest on the recording
//! libxenctrl stand-in of `<shared>/fixtures/libxenguest-oracle`; ours runs on the
//! oracle-compatible simulator. A case table and seeded random configurations must give
//! the same hypervisor calls, record by record, and the same outcome.
//!
//! Our records are put in the oracle's terms first: `seq` is dropped on both sides (the
//! driver's `set_address_size` record cannot know the stand-in's private counter; the
//! order of the records is the sequence), and our `populate_physmap_mfns` becomes the
//! libxenctrl call libxenguest makes: `xc_domain_populate_physmap` for 2 MiB extents
//! (`rc` = extents done) and `xc_domain_populate_physmap_exact` for 4 KiB pages (`rc` 0,
//! or -1 when short), without the machine frame our trace adds.
//!
//! Skips (with a message) when the oracle cannot be built, except under `CI=true`.
#![allow(clippy::print_stderr, clippy::print_stdout)]

mod oracle_fixture;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value};
use xg_ctrl::sim::{FaultRule, OracleModel, Simulator};
use xg_ctrl::trace::{TraceSink, Traced};
use xg_ctrl::{DomId, DomainConfig, DomainOps};
use xg_guest::pv::image::{meminit_pv, PvImageError, PvMemory};

/// One PV meminit configuration: the driver's options and the host.
#[derive(Debug, Clone)]
struct PvCase {
    /// `--mem-mib` (`xc_dom_mem_init`).
    mem_mib: u64,
    /// `--total-pages`: page-granular sizes.
    total_pages: Option<u64>,
    domid: u16,
    host: OracleModel,
    /// `ORACLE_ADDRESS_SIZE_ERRNO`: `XEN_DOMCTL_set_address_size` fails.
    address_size_errno: Option<i32>,
}

impl PvCase {
    fn mib(mem_mib: u64) -> PvCase {
        PvCase {
            mem_mib,
            total_pages: None,
            domid: 1,
            host: OracleModel::default(),
            address_size_errno: None,
        }
    }

    fn pages(total: u64) -> PvCase {
        PvCase {
            total_pages: Some(total),
            ..PvCase::mib(total >> 8)
        }
    }

    fn host(mut self, vars: &[(&str, &str)]) -> PvCase {
        self.host = OracleModel::from_vars(|k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        })
        .expect("valid oracle environment");
        self
    }

    fn total(&self) -> u64 {
        self.total_pages.unwrap_or(self.mem_mib << 8)
    }

    fn cli(&self) -> Vec<String> {
        let mut a = vec!["--mem-mib".to_owned(), self.mem_mib.to_string()];
        if let Some(p) = self.total_pages {
            a.extend(["--total-pages".to_owned(), p.to_string()]);
        }
        a.extend(["--domid".to_owned(), self.domid.to_string()]);
        a
    }

    fn vars(&self) -> Vec<(String, String)> {
        let mut v = self.host.to_vars();
        if let Some(e) = self.address_size_errno {
            v.push(("ORACLE_ADDRESS_SIZE_ERRNO".to_owned(), e.to_string()));
        }
        v
    }
}

/// Builds our driver against the fixture's stand-in and Debian's libxenguest, next to
/// the fixture's `meminit-oracle` (its RPATH is `$ORIGIN/lib`), once per test process.
fn pv_oracle() -> Option<&'static Path> {
    static BIN: OnceLock<Option<PathBuf>> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = oracle_fixture::built_fixture()?;
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle_pv/driver.c");
        let bin = out.join("pv-meminit-oracle");
        let built = Command::new("gcc")
            .args([
                "-O2",
                "-g",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-Wno-unused-parameter",
            ])
            .arg("-o")
            .arg(&bin)
            .arg(&src)
            .arg(format!("-L{}", out.join("lib").display()))
            .arg("-l:libxenctrl.so.4.17")
            .arg("/usr/lib/x86_64-linux-gnu/libxenguest.so.4.17")
            .args([
                "-Wl,--no-as-needed",
                "-Wl,--disable-new-dtags,-rpath,$ORIGIN/lib",
                // libxenguest's unversioned xencall1 (do_domctl) must bind to ours.
                "-Wl,--export-dynamic-symbol=xencall1",
            ])
            .output();
        if let Some(why) = oracle_fixture::failure(built) {
            return oracle_fixture::unavailable("the PV meminit driver", &why);
        }
        // The real libxenctrl must never be the one loaded.
        let ldd = Command::new("ldd").arg(&bin).output().expect("ldd");
        let ldd = String::from_utf8_lossy(&ldd.stdout);
        let ctrl = ldd
            .lines()
            .find(|l| l.contains("libxenctrl"))
            .expect("driver needs libxenctrl");
        assert!(
            ctrl.contains(&out.display().to_string()),
            "driver would load the real libxenctrl: {ctrl}"
        );
        Some(bin)
    })
    .as_deref()
}

/// What one side did: hypervisor-call records in the oracle's terms, success, and the
/// pages the domain was given.
#[derive(Debug)]
struct Side {
    records: Vec<Value>,
    ok: bool,
    populated: u64,
    outstanding_claim: u64,
    misaligned: u64,
    p2m_size: Option<u64>,
}

fn run_oracle(bin: &Path, case: &PvCase, trace: &Path) -> Side {
    let status = Command::new(bin)
        .args(case.cli())
        .arg("--trace")
        .arg(trace)
        .envs(case.vars())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run the PV driver");
    let text = std::fs::read_to_string(trace).expect("oracle trace");
    let mut records = Vec::new();
    let mut result = Value::Null;
    let mut seq = 0;
    for line in text.lines() {
        let mut v: Value = serde_json::from_str(line).expect("oracle JSON");
        match v["call"].as_str() {
            Some("config") => {}
            Some("result") => result = v,
            _ => {
                // The stand-in numbers its records from 0 without gaps.
                if let Some(s) = v.as_object_mut().and_then(|o| o.remove("seq")) {
                    assert_eq!(s, seq, "oracle seq");
                    seq += 1;
                }
                records.push(v);
            }
        }
    }
    let ok = result["rc"] == 0;
    assert_eq!(status.success(), ok, "exit status vs rc");
    assert_eq!(
        result["overlap_pages"], 0,
        "libxenguest populated a page twice"
    );
    assert_eq!(result["pod_pages"], 0, "PoD in a PV build");
    let u = |k: &str| result[k].as_u64().expect("result field");
    Side {
        records,
        ok,
        populated: u("populated_pages"),
        outstanding_claim: u("outstanding_claim"),
        misaligned: u("misaligned_extents"),
        p2m_size: ok.then(|| u("p2m_size")),
    }
}

/// Our record in the oracle's terms (see the module comment).
fn as_oracle(record: &xg_ctrl::trace::Record, expected_seq: u64) -> Value {
    assert_eq!(record.seq(), Some(expected_seq), "our seq");
    let mut m: Map<String, Value> = Map::new();
    for key in record.keys().filter(|&k| k != "seq") {
        m.insert(key.to_owned(), record.get(key).cloned().unwrap_or_default());
    }
    if record.call() == Some("populate_physmap_mfns") {
        m.remove("first_mfn");
        let order = m["extent_order"].as_u64();
        let (nr, done) = (m["nr_extents"].clone(), m["done"].clone());
        let (call, rc) = if order == Some(0) {
            let rc = if done == nr { 0 } else { -1 };
            ("populate_physmap_exact", Value::from(rc))
        } else {
            ("populate_physmap", done)
        };
        m.insert("call".to_owned(), call.into());
        m.insert("rc".to_owned(), rc);
    }
    Value::Object(m)
}

fn run_ours(case: &PvCase) -> (Side, Result<PvMemory, PvImageError>) {
    let domid = DomId(case.domid);
    let sim = Simulator::oracle_compatible(&case.host).expect("oracle-compatible host");
    let pv = DomainConfig {
        hvm: false,
        hap: false,
        ..DomainConfig::default()
    };
    sim.create_domain(domid, &pv).expect("PV domain");
    if let Some(errno) = case.address_size_errno {
        sim.inject_fault(FaultRule {
            op: "set_address_size".to_owned(),
            nth: 1,
            times: 1,
            errno,
        })
        .expect("fault rule");
    }
    let hv = Traced::new(sim, TraceSink::new());
    let result = meminit_pv(&hv, domid, case.total());
    let records = (0..)
        .zip(hv.sink().hypercalls())
        .map(|(i, r)| as_oracle(&r, i))
        .collect();
    let sim = hv.inner();
    sim.check_invariants().expect("simulator invariants");
    let snap = sim.domain_snapshot(domid).expect("domain exists");
    let side = Side {
        records,
        ok: result.is_ok(),
        populated: snap.ram_pages,
        outstanding_claim: snap.outstanding_pages,
        misaligned: snap.misaligned_extents,
        p2m_size: result
            .as_ref()
            .ok()
            .map(|m| u64::try_from(m.p2m.len()).expect("p2m length")),
    };
    (side, result)
}

/// Our result must agree with our own trace: every pfn has a frame, the superpage and
/// small-page counts are what the calls did, the frames are distinct.
fn check_report(name: &str, case: &PvCase, side: &Side, mem: &PvMemory) {
    let total = case.total();
    let (mut superpages, mut small) = (0, 0);
    for r in &side.records {
        let done = r["done"].as_u64().unwrap_or(0);
        match r["extent_order"].as_u64() {
            Some(9) => superpages += done,
            Some(0) => small += done,
            _ => {}
        }
    }
    assert_eq!(
        (mem.superpages, mem.small_pages),
        (superpages, small),
        "{name}: PvMemory counters"
    );
    assert_eq!((superpages << 9) + small, total, "{name}: pages populated");
    if total <= 1 << 18 {
        let mut frames = mem.p2m.clone();
        frames.sort_unstable();
        frames.dedup();
        assert_eq!(
            frames.len(),
            mem.p2m.len(),
            "{name}: a machine frame used twice"
        );
    }
}

/// Compares one case; returns the number of identical records.
fn compare(bin: &Path, name: &str, case: &PvCase) -> usize {
    let trace = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("oracle-pv-{name}.jsonl"));
    let want = run_oracle(bin, case, &trace);
    let (got, result) = run_ours(case);
    let ctx = || format!("{name}: args {:?} env {:?}", case.cli(), case.vars());
    for (i, (w, g)) in want.records.iter().zip(&got.records).enumerate() {
        assert_eq!(w, g, "record {i} differs; {}", ctx());
    }
    assert_eq!(
        want.records.len(),
        got.records.len(),
        "trace lengths differ; {}\noracle: {:?}\nours: {:?}",
        ctx(),
        want.records,
        got.records
    );
    assert_eq!(want.ok, got.ok, "outcome differs ({result:?}); {}", ctx());
    assert_eq!(want.populated, got.populated, "populated pages; {}", ctx());
    assert_eq!(
        want.outstanding_claim,
        got.outstanding_claim,
        "claim; {}",
        ctx()
    );
    assert_eq!(want.misaligned, got.misaligned, "misaligned; {}", ctx());
    assert_eq!(want.p2m_size, got.p2m_size, "p2m_size; {}", ctx());
    if let Ok(mem) = &result {
        check_report(name, case, &got, mem);
    }
    got.records.len()
}

/// Sizes from 16 MiB to just over 4 GiB (odd ones, one below a 2 MiB extent, batch
/// boundaries of 512 extents and of 2^20 small pages), 2 MiB extents failing entirely,
/// partly or after some calls, running out of memory in either path, several nodes, the
/// address-size domctl failing, a domid other than 1.
fn case_table() -> Vec<(&'static str, PvCase)> {
    let m = PvCase::mib;
    let p = PvCase::pages;
    vec![
        ("16mib", m(16)),
        ("64mib", m(64)),
        ("256mib", m(256)),
        ("1gib-one-batch", m(1024)),
        ("1gib-plus-2mib", m(1026)),
        ("2gib", m(2048)),
        ("4gib", m(4096)),
        ("4097mib", m(4097)),
        ("odd-1023mib", m(1023)),
        ("odd-65537-pages", p(65537)),
        ("odd-1gib-plus-1-page", p(262_145)),
        ("odd-3000mib-plus-77-pages", p((3000 << 8) + 77)),
        ("511-pages", p(511)),
        ("1-page", p(1)),
        (
            "all-2m-fail-16mib",
            m(16).host(&[("ORACLE_FAIL_ORDER", "9")]),
        ),
        (
            "all-2m-fail-2gib-odd",
            p(524_301).host(&[("ORACLE_FAIL_ORDER", "9")]),
        ),
        (
            "all-2m-fail-4097mib",
            m(4097).host(&[("ORACLE_FAIL_ORDER", "9")]),
        ),
        (
            "fragment-partial-batch-2gib",
            p(524_301).host(&[("ORACLE_FRAGMENT", "9:700")]),
        ),
        (
            "fragment-then-fail-4gib",
            m(4096).host(&[("ORACLE_FRAGMENT", "9:100")]),
        ),
        (
            "fragment-none-left-1gib",
            m(1024).host(&[("ORACLE_FRAGMENT", "9:0")]),
        ),
        (
            "oom-in-4k-path-2gib",
            p(524_301).host(&[("ORACLE_FREE_PAGES", "300000")]),
        ),
        (
            "oom-4k-only-16mib",
            m(16).host(&[("ORACLE_FAIL_ORDER", "9"), ("ORACLE_FREE_PAGES", "1000")]),
        ),
        (
            "no-memory-at-all",
            m(64).host(&[("ORACLE_FREE_PAGES", "0")]),
        ),
        (
            "exactly-enough-1gib",
            m(1024).host(&[("ORACLE_FREE_PAGES", "262144")]),
        ),
        (
            "two-nodes-1gib",
            m(1024).host(&[("ORACLE_FREE_PAGES", "100000,200000")]),
        ),
        (
            "claim-fail-host-1gib",
            m(1024).host(&[("ORACLE_CLAIM_FAIL", "1")]),
        ),
        (
            "address-size-fails",
            PvCase {
                address_size_errno: Some(3),
                ..m(1024)
            },
        ),
        ("domid-7", PvCase { domid: 7, ..m(300) }),
    ]
}

#[test]
fn case_table_matches_libxenguest() {
    let Some(bin) = pv_oracle() else { return };
    let t = std::time::Instant::now();
    let (mut cases, mut records) = (0, 0);
    for (name, case) in case_table() {
        let n = compare(bin, name, &case);
        println!("{name}: {n} identical records");
        cases += 1;
        records += n;
    }
    println!(
        "PV case table: {cases} cases, {records} identical records in {:?}",
        t.elapsed()
    );
}

/// The one deliberate difference: a guest without memory. libxenguest sets the address
/// size, populates nothing and succeeds (the build fails later, placing the kernel);
/// ours refuses before any call.
#[test]
fn zero_pages_is_the_known_difference() {
    let Some(bin) = pv_oracle() else { return };
    let case = PvCase::mib(0);
    let trace = Path::new(env!("CARGO_TARGET_TMPDIR")).join("oracle-pv-zero.jsonl");
    let want = run_oracle(bin, &case, &trace);
    let calls: Vec<_> = want.records.iter().map(|r| r["call"].clone()).collect();
    assert_eq!(calls, ["set_address_size", "claim_pages"]);
    assert!(want.ok);
    let (got, result) = run_ours(&case);
    assert!(got.records.is_empty(), "{:?}", got.records);
    assert!(matches!(result, Err(PvImageError::NoMemory)), "{result:?}");
}

/// A random configuration: 16 MiB to 4 GiB, page-granular half of the time, hosts that
/// fail, fragment or run out.
fn random_case(rng: &mut SmallRng) -> PvCase {
    let mib = 16u64 << rng.gen_range(0..=8u32);
    let pages = rng.gen_range(mib << 8..=(mib << 9).min(1 << 20));
    let mut case = if rng.gen_bool(0.5) {
        PvCase::pages(pages)
    } else {
        PvCase::mib(pages >> 8)
    };
    let total = case.total();
    case.domid = rng.gen_range(1..=200);
    let host = &mut case.host;
    match rng.gen_range(0..8) {
        0 => host.fail_orders = vec![9],
        1 | 2 => host.fragment = vec![(9, rng.gen_range(0..=total >> 9))],
        3 | 4 => {
            let nodes = rng.gen_range(1..=3);
            host.free_pages = (0..nodes)
                .map(|_| rng.gen_range(0..=total * 2 / nodes))
                .collect();
        }
        5 => {
            host.fragment = vec![(9, rng.gen_range(0..=total >> 9))];
            host.free_pages = vec![rng.gen_range(total / 2..=total + 1)];
        }
        _ => {}
    }
    host.claim_fail = rng.gen_bool(0.1);
    if rng.gen_bool(0.03) {
        case.address_size_errno = Some(if rng.gen_bool(0.5) { 3 } else { 22 });
    }
    case
}

#[test]
fn random_configurations_match_libxenguest() {
    let Some(bin) = pv_oracle() else { return };
    let mut rng = SmallRng::seed_from_u64(0x9e3a_5417);
    let cases: Vec<_> = (0..120).map(|i| (i, random_case(&mut rng))).collect();
    let t = std::time::Instant::now();
    let records = std::sync::atomic::AtomicUsize::new(0);
    // Two workers: the machine's cores; the driver and the simulator are single-threaded.
    std::thread::scope(|scope| {
        for part in cases.chunks(cases.len().div_ceil(2)) {
            let records = &records;
            scope.spawn(move || {
                for (i, case) in part {
                    let n = compare(bin, &format!("random-{i}"), case);
                    records.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                    println!(
                        "random-{i}: {n} identical records: {:?} {:?}",
                        case.cli(),
                        case.vars()
                    );
                }
            });
        }
    });
    println!(
        "PV random: {} cases, {} identical records in {:?}",
        cases.len(),
        records.into_inner(),
        t.elapsed()
    );
}
