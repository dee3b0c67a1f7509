//! Fault-injection sweep of whole HVM, PVH and PV builds on the simulator.
//!
//! A good build is traced; every hypercall and every Xenstore operation in that trace is
//! a *point*. The build is then run once per point with exactly that call failing (the
//! errno Xen or xenstored would give, see [`hypercall_errno`]). New build steps therefore
//! become new points without touching this file.
//!
//! Each point has an expectation derived from the specs (xenguest.md §3.2, §4.7,
//! libxen.md §1.3): most failures are fatal, a few are tolerated by xenguest/libxenguest
//! (credit scheduler get, the ignored HVM param sets, the X87 FIP width get, superpage
//! populate, the claim release, unreadable Xenstore keys, a transaction EAGAIN). For
//! every point the test checks: no panic; fatal points fail with a [`BuildError`] whose
//! `error:` line names the step and carries the injected errno; tolerated points build
//! the same guest (result line, Xenstore writes, final store); the store is exactly as
//! before the build after a failure, no transaction is left open, no claim is
//! outstanding, and the domain can be destroyed, giving every page back.
//!
//! The outcomes are folded into a table (runs of equal outcomes on one line) and
//! snapshotted, so a change in any error text or tolerated call shows up in review.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

use serde_json::Value;
use xg_build::pci::PciHost;
use xg_build::pv::{build_pv, PvBuildRequest};
use xg_build::pvh::{build_pvh, PvhBuildRequest};
use xg_build::xstrace::TracedStore;
use xg_build::{build_hvm, toolstack, BuildError, ErrorKind, HvmBuildRequest};
use xg_ctrl::sim::{FaultRule, HostConfig, Simulator};
use xg_ctrl::trace::{Record, TraceSink, Traced};
use xg_ctrl::{DomId, DomainOps};
use xg_store::{Error as XsError, MemStore, Reply, Request, Store, TxId};

// ---------------------------------------------------------------------------------------
// A store that fails the Nth operation of a kind.

/// Which Xenstore operation fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreFault {
    /// `XS_GET_DOMAIN_PATH`.
    DomainPath,
    /// The whole `submit` call (the connection broke): the nth batch.
    Transport(u64),
    /// The daemon answers the nth request (over all batches) with `errno`.
    Request(u64, i32),
    /// The nth `XS_TRANSACTION_START`.
    TxStart(u64, i32),
    /// The nth `XS_TRANSACTION_END` (the daemon discards the transaction).
    TxEnd(u64, i32),
}

#[derive(Debug, Default)]
struct Counters {
    submits: u64,
    requests: u64,
    tx_starts: u64,
    tx_ends: u64,
}

/// Wraps a [`MemStore`]; fails the operation `fault` names.
struct FaultyStore<'a> {
    inner: &'a MemStore,
    fault: Option<StoreFault>,
    counters: Mutex<Counters>,
}

impl<'a> FaultyStore<'a> {
    fn new(inner: &'a MemStore, fault: Option<StoreFault>) -> Self {
        FaultyStore {
            inner,
            fault,
            counters: Mutex::new(Counters::default()),
        }
    }
}

fn op_name(r: &Request) -> (&'static str, &str) {
    match r {
        Request::Read(p) => ("read", p),
        Request::Write(p, _) => ("write", p),
        Request::Mkdir(p) => ("mkdir", p),
        Request::Rm(p) => ("rm", p),
        Request::Directory(p) => ("directory", p),
        Request::GetPerms(p) => ("get_perms", p),
        Request::SetPerms(p, _) => ("set_perms", p),
    }
}

impl Store for FaultyStore<'_> {
    fn submit(&self, tx: TxId, reqs: &[Request]) -> xg_store::Result<Vec<xg_store::Result<Reply>>> {
        let (batch, first) = {
            let mut c = self.counters.lock().unwrap();
            c.submits += 1;
            let first = c.requests + 1;
            c.requests += u64::try_from(reqs.len()).unwrap();
            (c.submits, first)
        };
        if self.fault == Some(StoreFault::Transport(batch)) {
            return Err(XsError::Io {
                op: "submit",
                source: std::io::Error::from_raw_os_error(libc::ECONNRESET),
            });
        }
        let failing = match self.fault {
            Some(StoreFault::Request(n, errno))
                if (first..first + reqs.len() as u64).contains(&n) =>
            {
                Some((usize::try_from(n - first).unwrap(), errno))
            }
            _ => None,
        };
        let Some((index, errno)) = failing else {
            return self.inner.submit(tx, reqs);
        };
        // The daemon carries out the other requests and refuses this one.
        let others: Vec<Request> = reqs
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != index)
            .map(|(_, r)| r.clone())
            .collect();
        let mut replies = self.inner.submit(tx, &others)?;
        let (op, path) = op_name(&reqs[index]);
        replies.insert(index, Err(XsError::daemon(op, path, errno)));
        Ok(replies)
    }

    fn transaction_start(&self) -> xg_store::Result<TxId> {
        let n = {
            let mut c = self.counters.lock().unwrap();
            c.tx_starts += 1;
            c.tx_starts
        };
        if let Some(StoreFault::TxStart(k, errno)) = self.fault {
            if k == n {
                return Err(XsError::daemon("transaction_start", "", errno));
            }
        }
        self.inner.transaction_start()
    }

    fn transaction_end(&self, tx: TxId, commit: bool) -> xg_store::Result<()> {
        let n = {
            let mut c = self.counters.lock().unwrap();
            c.tx_ends += 1;
            c.tx_ends
        };
        if let Some(StoreFault::TxEnd(k, errno)) = self.fault {
            if k == n {
                // xenstored drops the transaction whatever the commit's outcome.
                self.inner.transaction_end(tx, false)?;
                return Err(XsError::daemon("transaction_end", "", errno));
            }
        }
        self.inner.transaction_end(tx, commit)
    }

    fn get_domain_path(&self, domid: u32) -> xg_store::Result<String> {
        if self.fault == Some(StoreFault::DomainPath) {
            return Err(XsError::daemon("get_domain_path", "", libc::EACCES));
        }
        self.inner.get_domain_path(domid)
    }
}

// ---------------------------------------------------------------------------------------
// Scenarios and runs.

/// Which build mode a scenario runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Hvm,
    Pvh,
    Pv,
}

#[derive(Debug, Clone)]
struct Scenario {
    name: &'static str,
    mode: Mode,
    host: HostConfig,
    mem_max_mib: u64,
    mem_start_mib: u64,
    platform: Vec<(&'static str, &'static str)>,
    pnode: Option<u32>,
}

const DOMID: DomId = DomId(7);

impl Scenario {
    fn request(&self) -> HvmBuildRequest {
        let fw = xg_guest::firmware::builtin_test_firmware();
        let mut req = HvmBuildRequest::new(DOMID, self.mem_max_mib, self.mem_start_mib, fw);
        req.store_evtchn = 5;
        req.console_evtchn = 6;
        req.mem_pnode = self.pnode;
        req
    }
}

/// A 1 GiB guest that makes every optional call of the build: an affinity key, credit
/// weight and cap, viridian, the X87 FIP width, a time offset, absent ACPI keys (so
/// `hvmloader_flag` fix-ups are written in the final transaction).
fn full_featured() -> Scenario {
    Scenario {
        name: "hvm-1g",
        mode: Mode::Hvm,
        host: HostConfig::uniform(2, 4096, 4),
        mem_max_mib: 1024,
        mem_start_mib: 1024,
        platform: vec![
            ("vcpu/number", "2"),
            ("vcpu/current", "2"),
            ("vcpu/0/affinity", "11"),
            ("vcpu/weight", "512"),
            ("vcpu/cap", "50"),
            ("viridian", "1"),
            ("x87-fip-width", "8"),
            ("timeoffset", "3600"),
            ("pae", "1"),
            ("nx", "1"),
        ],
        pnode: None,
    }
}

/// Populate-on-demand with all RAM claimed on node 1 (`-mem_pnode`): adds the claim,
/// its release and `set_pod_target`.
fn pod_on_a_node() -> Scenario {
    Scenario {
        name: "hvm-pod-pnode",
        mode: Mode::Hvm,
        host: HostConfig::uniform(2, 2048, 2),
        mem_max_mib: 768,
        mem_start_mib: 512,
        platform: vec![("vcpu/number", "1"), ("vcpu/current", "1"), ("acpi", "1")],
        pnode: Some(1),
    }
}

/// A PVH guest with a kernel command line and viridian (PVH sets the same params).
fn pvh() -> Scenario {
    Scenario {
        name: "pvh-512m",
        mode: Mode::Pvh,
        host: HostConfig::uniform(1, 4096, 4),
        mem_max_mib: 512,
        mem_start_mib: 512,
        platform: vec![
            ("vcpu/number", "2"),
            ("vcpu/current", "1"),
            ("viridian", "1"),
            ("timeoffset", "-60"),
        ],
        pnode: None,
    }
}

/// A small 64-bit PV guest (`-mode linux_build`) with a ramdisk and a command line:
/// 128 MiB gives one batch of 2 MiB extents and no 4 KiB remainder.
fn pv() -> Scenario {
    Scenario {
        name: "pv-128m",
        mode: Mode::Pv,
        host: HostConfig::uniform(1, 4096, 4),
        mem_max_mib: 128,
        mem_start_mib: 128,
        platform: vec![("vcpu/number", "2"), ("vcpu/current", "2")],
        pnode: None,
    }
}

/// What a successful build returns that the sweep compares.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Built {
    result_line: String,
    writes: Vec<(String, String)>,
}

fn build<H: xg_ctrl::PvHypervisor + ?Sized, S: Store + ?Sized>(
    sc: &Scenario,
    hv: &H,
    store: &S,
) -> Result<Built, BuildError> {
    match sc.mode {
        Mode::Hvm => {
            build_hvm(hv, store, &PciHost::at("/nonexistent-sysfs"), &sc.request()).map(|o| Built {
                result_line: o.result_line(),
                writes: o.xenstore_writes,
            })
        }
        Mode::Pvh => {
            let mut req = PvhBuildRequest::new(
                DOMID,
                sc.mem_max_mib,
                sc.mem_start_mib,
                xg_guest::kernel::test_kernel::test_pvh_kernel(),
            );
            req.cmdline = Some("console=hvc0".into());
            req.store_evtchn = 5;
            req.console_evtchn = 6;
            build_pvh(hv, store, &req).map(|o| Built {
                result_line: o.result_line(),
                writes: o.xenstore_writes,
            })
        }
        Mode::Pv => {
            let mut req = PvBuildRequest::new(
                DOMID,
                sc.mem_max_mib,
                sc.mem_start_mib,
                xg_guest::kernel::test_kernel::test_pv_kernel(),
            );
            req.cmdline = Some("root=/dev/xvda1 console=hvc0".into());
            req.ramdisk = Some(vec![0x5a; 5000]);
            req.store_evtchn = 5;
            req.console_evtchn = 6;
            build_pv(hv, store, &req).map(|o| Built {
                result_line: o.result_line(),
                writes: Vec::new(),
            })
        }
    }
}

/// Everything one run left behind.
struct Run {
    result: std::thread::Result<Result<Built, BuildError>>,
    records: Vec<Record>,
    store_before: String,
    store_after: String,
    open_transactions: usize,
    outstanding_claims: u64,
    destroy: Result<(), String>,
}

fn seed(sc: &Scenario, skip: Option<&str>) -> MemStore {
    let store = MemStore::new();
    let path = store.get_domain_path(u32::from(DOMID.0)).unwrap();
    for (k, v) in &sc.platform {
        let key = toolstack::platform_key(&path, k);
        if Some(key.as_str()) != skip {
            store.write(TxId::NONE, &key, v.as_bytes()).unwrap();
        }
    }
    store
}

/// Runs the build of `sc` with at most one hypercall fault and one store fault; `skip`
/// leaves that key out of the seeded store.
fn run(
    sc: &Scenario,
    hv_fault: Option<(&'static str, u64, i32)>,
    xs_fault: Option<StoreFault>,
    skip: Option<&str>,
) -> Run {
    let store = seed(sc, skip);
    let sim = Simulator::new(&sc.host).unwrap();
    let free_at_start = sim.free_pages();
    toolstack::build_pre_as(&sim, &store, DOMID, sc.mem_max_mib, sc.mode != Mode::Pv).unwrap();
    if sc.mode == Mode::Pvh {
        // xenopsd's maxmem leaves room for the special and ACPI pages.
        sim.set_max_mem(DOMID, (sc.mem_max_mib + 1) * 1024).unwrap();
    }
    if let Some((op, k, errno)) = hv_fault {
        // Rules count calls from the simulator's start: skip build_pre's.
        let nth = sim.calls(op) + k;
        sim.inject_fault(FaultRule {
            op: op.to_owned(),
            nth,
            times: 1,
            errno,
        })
        .unwrap();
    }
    let store_before = store.dump();
    let sink = TraceSink::new();
    let traced = Traced::new(sim, sink.clone());
    let faulty = FaultyStore::new(&store, xs_fault);
    let tstore = TracedStore::new(&faulty, sink.clone());
    let result = catch_unwind(AssertUnwindSafe(|| build(sc, &traced, &tstore)));
    let sim = traced.inner();
    let outstanding_claims = sim.host_snapshot().outstanding_claims;
    let destroy = sim
        .destroy(DOMID)
        .map_err(|e| format!("destroy failed: {e}"))
        .and_then(|()| {
            let free = sim.free_pages();
            if free != free_at_start {
                return Err(format!("{} pages not given back", free_at_start - free));
            }
            sim.check_invariants()
        });
    Run {
        result,
        records: sink.records(),
        store_before,
        store_after: store.dump(),
        open_transactions: store.open_transactions(),
        outstanding_claims,
        destroy,
    }
}

// ---------------------------------------------------------------------------------------
// Points and expectations.

#[derive(Debug, Clone)]
enum Point {
    /// The kth call (from 1, counted within the build) of a simulator operation.
    Hypercall {
        op: &'static str,
        k: u64,
        /// Whether this is the last call of `op` in the good build.
        last: bool,
        record: Record,
    },
    Store(StoreFault, String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    /// The build fails.
    Fatal,
    /// The build succeeds with the same guest.
    Same,
    /// As if the key were absent (xs_read returning NULL).
    LikeAbsent(String),
}

/// The errno the real hypervisor would return for a failing `op`. The domain having
/// gone away (ESRCH) is the common failure of domctls; memory ops run out of memory;
/// HVM params and CPU policies are refused with EINVAL; foreign mapping of a frame that
/// is not there fails with EFAULT.
fn hypercall_errno(op: &str) -> i32 {
    match op {
        "populate_physmap"
        | "populate_physmap_exact"
        | "populate_physmap_mfns"
        | "claim_pages"
        | "set_pod_target"
        | "decrease_reservation" => libc::ENOMEM,
        "set_hvm_param"
        | "hvm_param"
        | "set_domain_cpu_policy"
        | "set_memory_map"
        | "set_hvm_context"
        | "hvm_context" => libc::EINVAL,
        "write_guest" | "read_guest" | "write_machine" | "read_machine" | "clear_guest_pages"
        | "write_grant_table" | "read_grant_table" => libc::EFAULT,
        "xen_version" | "physinfo" | "numainfo" | "system_cpu_policy" => libc::EPERM,
        _ => libc::ESRCH,
    }
}

/// `HVM_PARAM_VIRIDIAN`, `HVM_PARAM_HPET_ENABLED`, `HVM_PARAM_TRIPLE_FAULT_REASON`: their
/// set's return code is ignored by `hvm_build_set_params` (xenguest.md §4.7 steps 2-4).
const IGNORED_PARAM_SETS: [u64; 3] = [9, 11, 31];
/// The params `alloc_magic_pages_hvm` sets without checking the result (libxenguest
/// xg_dom_x86.c): STORE_PFN, IOREQ_PFN, BUFIOREQ_PFN, IDENT_PT, CONSOLE_PFN,
/// PAGING/MONITOR/SHARING_RING_PFN, IOREQ_SERVER_PFN, NR_IOREQ_SERVER_PAGES.
const UNCHECKED_SPECIAL_PARAMS: [u64; 10] = [1, 5, 6, 12, 17, 27, 28, 29, 32, 33];
/// The console and xenstore pages, cleared again at the end of `alloc_magic_pages_hvm`
/// without checking the result.
const RECLEARED_PAGES: [u64; 2] = [0xfefff, 0xfeffc];
/// `HVM_PARAM_X87_FIP_WIDTH`: set when the get reads 0 or fails; neither call's result
/// decides anything (`hvm_build_set_params`).
const X87_FIP_WIDTH: u64 = 36;

fn field(r: &Record, k: &str) -> u64 {
    r.get(k).and_then(Value::as_u64).unwrap_or(0)
}

fn expectation(point: &Point, seeded: &MemStore) -> Expect {
    match point {
        Point::Hypercall {
            op, record, last, ..
        } => match *op {
            // vcpu_hvm: the MTRRs of each vCPU are set first and a failure only logged;
            // the boot vCPU's context, set last, decides.
            "set_hvm_context" if !*last => Expect::Same,
            // configure_vcpus: "scheduler not enabled?" is logged, the build goes on.
            "sched_credit_get" => Expect::Same,
            "set_hvm_param" if IGNORED_PARAM_SETS.contains(&field(record, "param")) => Expect::Same,
            "set_hvm_param" if UNCHECKED_SPECIAL_PARAMS.contains(&field(record, "param")) => {
                Expect::Same
            }
            "clear_guest_pages"
                if field(record, "nr_pages") == 1
                    && RECLEARED_PAGES.contains(&field(record, "first_gpfn")) =>
            {
                Expect::Same
            }
            "hvm_param" | "set_hvm_param" if field(record, "param") == X87_FIP_WIDTH => {
                Expect::Same
            }
            // meminit_hvm: superpage failures fall back to smaller pages.
            "populate_physmap" if field(record, "extent_order") > 0 => Expect::Same,
            // The claim release on meminit's exit path ignores its result.
            "claim_pages" if field(record, "nr_pages") == 0 => Expect::Same,
            _ => Expect::Fatal,
        },
        Point::Store(StoreFault::Request(_, _), desc) if desc.starts_with("read ") => {
            let path = &desc["read ".len()..];
            match seeded.read_opt(TxId::NONE, path).unwrap() {
                Some(_) => Expect::LikeAbsent(path.to_owned()),
                None => Expect::Same,
            }
        }
        Point::Store(StoreFault::TxEnd(_, errno), _) if *errno == libc::EAGAIN => Expect::Same,
        Point::Store(..) => Expect::Fatal,
    }
}

/// The points of a good build's trace.
fn points(records: &[Record]) -> Vec<Point> {
    let mut out = Vec::new();
    let mut per_op: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut request = 0u64;
    let mut batch = 0u64;
    let mut left_in_batch = 0u64;
    let (mut starts, mut ends) = (0u64, 0u64);
    out.push(Point::Store(
        StoreFault::DomainPath,
        "get_domain_path".to_owned(),
    ));
    for r in records {
        let call = r.call().unwrap_or("?");
        if r.seq().is_some() {
            let op = xg_ctrl::sim::fault::check_op_name(call)
                .unwrap_or_else(|_| panic!("trace call {call} is not a simulator operation"));
            let k = per_op.entry(op).or_insert(0);
            *k += 1;
            out.push(Point::Hypercall {
                op,
                k: *k,
                last: false,
                record: r.clone(),
            });
            continue;
        }
        match call {
            "xs_transaction_start" => {
                starts += 1;
                out.push(Point::Store(
                    StoreFault::TxStart(starts, libc::EDQUOT),
                    "transaction_start".to_owned(),
                ));
            }
            "xs_transaction_end" => {
                ends += 1;
                for errno in [libc::EAGAIN, libc::EDQUOT] {
                    out.push(Point::Store(
                        StoreFault::TxEnd(ends, errno),
                        "transaction_end".to_owned(),
                    ));
                }
            }
            c if c.starts_with("xs_") => {
                if left_in_batch == 0 {
                    batch += 1;
                    left_in_batch = field(r, "batch");
                    out.push(Point::Store(
                        StoreFault::Transport(batch),
                        format!("batch of {left_in_batch}"),
                    ));
                }
                left_in_batch -= 1;
                request += 1;
                let path = r.get("path").and_then(Value::as_str).unwrap_or("?");
                let op = &c["xs_".len()..];
                // xenstored refuses a read or write of a node the caller may not access
                // with EACCES; a write over quota gets EQUOTA (EDQUOT).
                out.push(Point::Store(
                    StoreFault::Request(request, libc::EACCES),
                    format!("{op} {path}"),
                ));
                if op == "write" {
                    out.push(Point::Store(
                        StoreFault::Request(request, libc::EDQUOT),
                        format!("{op} {path}"),
                    ));
                }
            }
            _ => {}
        }
    }
    let mut seen: BTreeMap<&'static str, ()> = BTreeMap::new();
    for p in out.iter_mut().rev() {
        if let Point::Hypercall { op, last, .. } = p {
            *last = seen.insert(*op, ()).is_none();
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Checking one point.

fn injected_errno(point: &Point) -> i32 {
    match point {
        Point::Hypercall { op, .. } => hypercall_errno(op),
        Point::Store(StoreFault::DomainPath, _) => libc::EACCES,
        Point::Store(StoreFault::Transport(_), _) => libc::ECONNRESET,
        Point::Store(
            StoreFault::Request(_, e) | StoreFault::TxStart(_, e) | StoreFault::TxEnd(_, e),
            _,
        ) => *e,
    }
}

fn label(point: &Point) -> String {
    let errno = xg_store::wire::name_of(injected_errno(point));
    match point {
        Point::Hypercall { op, k, .. } => {
            format!("hv {op}#{k} {}", errno_name(injected_errno(point)))
        }
        Point::Store(f, desc) => {
            let errno = if matches!(f, StoreFault::Transport(_)) {
                "ECONNRESET"
            } else {
                errno
            };
            format!("xs {desc} {errno}").replace("/local/domain/7/", "~/")
        }
    }
}

fn errno_name(errno: i32) -> &'static str {
    match errno {
        libc::ENOMEM => "ENOMEM",
        libc::EINVAL => "EINVAL",
        libc::EFAULT => "EFAULT",
        libc::EPERM => "EPERM",
        libc::ESRCH => "ESRCH",
        _ => "E?",
    }
}

/// Runs one point; returns its outcome text or a list of violated guarantees.
fn check_point(
    sc: &Scenario,
    point: &Point,
    good: &Good,
    seeded: &MemStore,
) -> Result<String, String> {
    let (hv, xs) = match point {
        Point::Hypercall { op, k, .. } => (Some((*op, *k, hypercall_errno(op))), None),
        Point::Store(f, _) => (None, Some(*f)),
    };
    let r = run(sc, hv, xs, None);
    let mut bad = Vec::new();
    if r.open_transactions != 0 {
        bad.push(format!("{} transaction(s) left open", r.open_transactions));
    }
    if r.outstanding_claims != 0 {
        bad.push(format!(
            "{} claimed pages outstanding",
            r.outstanding_claims
        ));
    }
    if let Err(e) = &r.destroy {
        bad.push(format!("domain not cleanly destroyable: {e}"));
    }
    let outcome = match &r.result {
        Err(_) => {
            bad.push("panicked".to_owned());
            "PANIC".to_owned()
        }
        Ok(Ok(out)) => {
            match expectation(point, seeded) {
                Expect::Fatal => bad.push("succeeded, expected a failure".to_owned()),
                Expect::Same => {
                    if out.result_line != good.result_line
                        || out.writes != good.writes
                        || r.store_after != good.store_after
                    {
                        bad.push("tolerated failure changed the result".to_owned());
                    }
                }
                Expect::LikeAbsent(path) => {
                    let reference = run(sc, None, None, Some(&path));
                    let same = match &reference.result {
                        Ok(Ok(o)) => o == out,
                        _ => false,
                    };
                    if !same {
                        bad.push(format!("differs from a build without {path}"));
                    }
                }
            }
            "ok (tolerated)".to_owned()
        }
        Ok(Err(e)) => {
            let lines = e.wire_lines();
            let text = lines.concat().trim_end().replace('\n', " | ");
            let errno = injected_errno(point);
            match expectation(point, seeded) {
                Expect::Fatal => {
                    if r.store_after != r.store_before {
                        bad.push(format!(
                            "store changed by a failed build:\n{}",
                            diff(&r.store_before, &r.store_after)
                        ));
                    }
                    let named = matches!(
                        e.kind,
                        ErrorKind::Refused { .. } | ErrorKind::HostFile { .. }
                    ) || lines
                        .iter()
                        .any(|l| l.starts_with(&format!("xenguest: {}: [", e.step.c_name())));
                    if !named {
                        bad.push(format!("error does not name the step: {lines:?}"));
                    }
                    if e.errno() != errno {
                        bad.push(format!("errno {} reported, {errno} injected", e.errno()));
                    }
                }
                Expect::Same => bad.push(format!("tolerated failure failed the build: {text}")),
                Expect::LikeAbsent(path) => {
                    let reference = run(sc, None, None, Some(&path));
                    let same = matches!(&reference.result,
                        Ok(Err(re)) if re.step == e.step && re.wire_lines() == lines);
                    if !same {
                        bad.push(format!("differs from a build without {path}: {text}"));
                    }
                }
            }
            format!("{}: {text}", e.step.c_name())
        }
    };
    if bad.is_empty() {
        Ok(outcome)
    } else {
        Err(format!("{}: {}", label(point), bad.join("; ")))
    }
}

fn diff(a: &str, b: &str) -> String {
    let mut s = String::new();
    for l in a.lines().filter(|l| !b.contains(l)) {
        let _ = writeln!(s, "- {l}");
    }
    for l in b.lines().filter(|l| !a.contains(l)) {
        let _ = writeln!(s, "+ {l}");
    }
    s
}

struct Good {
    result_line: String,
    writes: Vec<(String, String)>,
    store_after: String,
}

/// Sweeps every point of `sc`; returns the folded outcome table and the point count.
fn sweep(sc: &Scenario) -> (String, usize) {
    let good_run = run(sc, None, None, None);
    let out = match &good_run.result {
        Ok(Ok(o)) => o,
        other => panic!("the good build of {} failed: {other:?}", sc.name),
    };
    assert!(good_run.destroy.is_ok(), "{:?}", good_run.destroy);
    let good = Good {
        result_line: out.result_line.clone(),
        writes: out.writes.clone(),
        store_after: good_run.store_after.clone(),
    };
    let seeded = seed(sc, None);
    let pts = points(&good_run.records);
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut failures = Vec::new();
    for p in &pts {
        match check_point(sc, p, &good, &seeded) {
            Ok(outcome) => rows.push((label(p), outcome)),
            Err(f) => {
                rows.push((label(p), "VIOLATION".to_owned()));
                failures.push(f);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} points of {} violate the failure guarantees:\n{}",
        failures.len(),
        pts.len(),
        sc.name,
        failures.join("\n")
    );
    (fold(&rows), pts.len())
}

/// One line per run of points with the same call and outcome.
fn fold(rows: &[(String, String)]) -> String {
    let key = |l: &str| -> String {
        // "hv populate_physmap#12 ENOMEM" -> "hv populate_physmap ENOMEM"
        l.split_whitespace()
            .map(|w| w.split('#').next().unwrap_or(w))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut s = String::new();
    let mut i = 0;
    while i < rows.len() {
        let mut j = i + 1;
        while j < rows.len() && key(&rows[j].0) == key(&rows[i].0) && rows[j].1 == rows[i].1 {
            j += 1;
        }
        if j - i > 1 {
            let _ = writeln!(s, "{} (x{}) -> {}", rows[i].0, j - i, rows[i].1);
        } else {
            let _ = writeln!(s, "{} -> {}", rows[i].0, rows[i].1);
        }
        i = j;
    }
    s
}

#[test]
fn every_point_of_a_full_featured_hvm_build() {
    let sc = full_featured();
    let (table, n) = sweep(&sc);
    // A build with every optional call has well over a hundred points; fewer means the
    // trace lost calls.
    assert!(n > 150, "only {n} points");
    insta::assert_snapshot!(format!("{n} points\n{table}"));
}

#[test]
fn every_point_of_a_pod_build_on_one_node() {
    let sc = pod_on_a_node();
    let (table, n) = sweep(&sc);
    assert!(n > 50, "only {n} points");
    assert!(table.contains("hv claim_pages#1"), "{table}");
    assert!(table.contains("hv set_pod_target#1"), "{table}");
    insta::assert_snapshot!(format!("{n} points\n{table}"));
}

/// The sweep's expectation for superpages, checked in detail: every 2 MiB populate
/// failing still gives a guest with the same memory, all in 4 KiB pages.
#[test]
fn superpage_failures_fall_back_to_small_pages() {
    let sc = full_featured();
    let good = run(&sc, None, None, None);
    let good_line = good.result.unwrap().unwrap().result_line;
    let store = seed(&sc, None);
    let mut cfg = sc.host.clone();
    cfg.faults.push(FaultRule {
        op: "populate_physmap".into(),
        nth: 1,
        times: u64::MAX / 2,
        errno: libc::ENOMEM,
    });
    let sim = Simulator::new(&cfg).unwrap();
    toolstack::build_pre(&sim, &store, DOMID, sc.mem_max_mib).unwrap();
    let out = build_hvm(
        &sim,
        &store,
        &PciHost::at("/nonexistent-sysfs"),
        &sc.request(),
    )
    .unwrap();
    assert_eq!(out.result_line(), good_line);
    assert_eq!(out.meminit.stats.pages_2m, 0);
    assert_eq!(out.meminit.stats.pages_1g, 0);
    let snap = sim.domain_snapshot(DOMID).unwrap();
    assert_eq!(snap.ram_pages, good_ram_pages(&sc));
}

fn good_ram_pages(sc: &Scenario) -> u64 {
    let store = seed(sc, None);
    let sim = Simulator::new(&sc.host).unwrap();
    toolstack::build_pre(&sim, &store, DOMID, sc.mem_max_mib).unwrap();
    build_hvm(
        &sim,
        &store,
        &PciHost::at("/nonexistent-sysfs"),
        &sc.request(),
    )
    .unwrap();
    sim.domain_snapshot(DOMID).unwrap().ram_pages
}

/// Short counts: a 2 MiB populate that does half its extents continues with the rest in
/// 4 KiB pages (libxen.md §1.3 step 7.4), whatever the simulator's allocator refuses.
#[test]
fn partial_superpage_populate_continues_with_small_pages() {
    let sc = full_featured();
    let reference = good_ram_pages(&sc);
    for budget in [1u64, 3, 7] {
        let mut cfg = sc.host.clone();
        // The oracle's extent budget: only `budget` 2 MiB extents are handed out.
        cfg.extent_budget = vec![xg_ctrl::sim::ExtentBudget {
            order: 9,
            count: budget,
        }];
        let store = seed(&sc, None);
        let sim = Simulator::new(&cfg).unwrap();
        toolstack::build_pre(&sim, &store, DOMID, sc.mem_max_mib).unwrap();
        let out = build_hvm(
            &sim,
            &store,
            &PciHost::at("/nonexistent-sysfs"),
            &sc.request(),
        )
        .unwrap();
        assert_eq!(out.meminit.stats.pages_2m, budget, "budget {budget}");
        assert_eq!(
            sim.domain_snapshot(DOMID).unwrap().ram_pages,
            reference,
            "budget {budget}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// The real xenstored stopped (SIGSTOP) before each Xenstore operation of a build.

/// Forwards to a real daemon's client, stopping the daemon before operation `stop_at`
/// (counted over get_domain_path, submits, transaction starts and ends, from 1).
struct StopAt<'a> {
    inner: &'a xg_store::Client,
    pid: u32,
    stop_at: u64,
    ops: Mutex<u64>,
}

fn kill(sig: &str, pid: u32) {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill {sig} {pid}");
}

impl StopAt<'_> {
    fn tick(&self) {
        let mut n = self.ops.lock().unwrap();
        *n += 1;
        if *n == self.stop_at {
            kill("-STOP", self.pid);
        }
    }
}

impl Store for StopAt<'_> {
    fn submit(&self, tx: TxId, reqs: &[Request]) -> xg_store::Result<Vec<xg_store::Result<Reply>>> {
        self.tick();
        self.inner.submit(tx, reqs)
    }
    fn transaction_start(&self) -> xg_store::Result<TxId> {
        self.tick();
        self.inner.transaction_start()
    }
    fn transaction_end(&self, tx: TxId, commit: bool) -> xg_store::Result<()> {
        self.tick();
        self.inner.transaction_end(tx, commit)
    }
    fn get_domain_path(&self, domid: u32) -> xg_store::Result<String> {
        self.tick();
        self.inner.get_domain_path(domid)
    }
}

/// Every node under `path` as `path = value` lines.
fn tree(xs: &xg_store::Client, path: &str) -> String {
    let mut out = String::new();
    let mut todo = vec![path.to_owned()];
    while let Some(p) = todo.pop() {
        let Ok(v) = xs.read(TxId::NONE, &p) else {
            continue;
        };
        let _ = writeln!(out, "{p} = {}", String::from_utf8_lossy(&v));
        for c in xs.directory(TxId::NONE, &p).unwrap_or_default() {
            todo.push(format!("{p}/{c}"));
        }
    }
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort_unstable();
    lines.join("\n")
}

#[test]
#[allow(clippy::print_stderr)]
fn real_xenstored_stopped_before_each_store_operation() {
    use xg_store::fixture::{required_by_ci, Daemon, Flavour};
    let d = match Daemon::start(Flavour::C) {
        Ok(d) => d,
        Err(e) if e.is_missing() && !required_by_ci() => {
            eprintln!("skipping: the xenstored fixture is not available ({e})");
            return;
        }
        Err(e) => panic!("starting xenstored: {e:?}"),
    };
    let timeout = std::time::Duration::from_millis(300);
    let sc = full_featured();
    let mut points = 0;
    for stop_at in 1.. {
        let domid = DomId(10 + u16::try_from(stop_at).unwrap());
        let client = d.client().unwrap();
        client.set_timeout(timeout);
        let path = client.get_domain_path(u32::from(domid.0)).unwrap();
        for (k, v) in &sc.platform {
            client
                .write(TxId::NONE, &toolstack::platform_key(&path, k), v.as_bytes())
                .unwrap();
        }
        let sim = Simulator::new(&sc.host).unwrap();
        let free = sim.free_pages();
        toolstack::build_pre(&sim, &client, domid, sc.mem_max_mib).unwrap();
        let before = tree(&client, &path);
        let store = StopAt {
            inner: &client,
            pid: d.pid(),
            stop_at,
            ops: Mutex::new(0),
        };
        let mut req = sc.request();
        req.domid = domid;
        let t0 = std::time::Instant::now();
        let result = build_hvm(&sim, &store, &PciHost::at("/nonexistent-sysfs"), &req);
        let took = t0.elapsed();
        let ops = *store.ops.lock().unwrap();
        if ops < stop_at {
            // The daemon was never stopped: every operation has had its turn.
            result.unwrap();
            break;
        }
        kill("-CONT", d.pid());
        points += 1;
        let e = result.expect_err("a build with a stopped xenstored must fail");
        assert!(
            took < std::time::Duration::from_secs(5),
            "stopped before operation {stop_at}: took {took:?}"
        );
        assert_eq!(
            e.errno(),
            libc::ETIMEDOUT,
            "stopped before operation {stop_at}"
        );
        assert!(
            e.wire_lines()[0].starts_with(&format!("xenguest: {}: [", e.step.c_name())),
            "{:?}",
            e.wire_lines()
        );
        // What was on the wire may still be applied after SIGCONT: the transaction is
        // then complete. Either way the domain's keys are before or after, never between.
        std::thread::sleep(std::time::Duration::from_millis(100));
        let check = d.client().unwrap();
        let after = tree(&check, &path);
        let has_vm_data = after.contains("vm-data/mmio-hole-size");
        let fixups = [
            "platform/acpi = 0",
            "platform/acpi_s3 = 0",
            "platform/acpi_s4 = 0",
        ];
        let has_fixups = fixups.iter().filter(|f| after.contains(*f)).count();
        assert!(
            (after == before) || (has_vm_data && has_fixups == 3),
            "stopped before operation {stop_at}: partial writes\nbefore:\n{before}\nafter:\n{after}"
        );
        sim.destroy(domid).unwrap();
        assert_eq!(sim.free_pages(), free);
        assert_eq!(sim.host_snapshot().outstanding_claims, 0);
    }
    assert!(points >= 5, "only {points} store operations");
}

#[test]
fn every_point_of_a_pvh_build() {
    let sc = pvh();
    let (table, n) = sweep(&sc);
    assert!(n > 60, "only {n} points");
    insta::assert_snapshot!(format!("{n} points\n{table}"));
}

/// PV: no call is tolerated. `meminit_pv` fails on a refused 2 MiB batch (negative rc,
/// libxen.md §1.5; only a short batch falls back to 4 KiB pages), and the image build,
/// boot, grant table and CPUID steps check every result.
#[test]
fn every_point_of_a_pv_build() {
    let sc = pv();
    let (table, n) = sweep(&sc);
    assert!(n > 30, "only {n} points");
    assert!(
        table.contains("hv populate_physmap_mfns#1 ENOMEM"),
        "{table}"
    );
    assert!(table.contains("hv pin_table#1"), "{table}");
    insta::assert_snapshot!(format!("{n} points\n{table}"));
}
