//! Running the build modes (`hvm_build`, `pvh_build`, `linux_build`): opening the
//! backend and the store, the simulator's `build_pre`, the build, the plan, the summary
//! and the memory map.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use xg_build::pci::{PciHost, RmrrSource, XenRmrr};
use xg_build::xstrace::TracedStore;
use xg_build::{toolstack, BuildError, HvmBuildRequest, Strategy};
use xg_ctrl::sim::Simulator;
use xg_ctrl::trace::{TraceSink, Traced};
use xg_ctrl::{DomId, Hypervisor};
use xg_store::{MemStore, Store, TxId};

use crate::args::{Args, Backend, Populate, StoreKind};
use crate::summary;

/// `IPXE_PATH` of the XS-8 build.
const IPXE_PATH: &str = "/usr/share/ipxe/ipxe.bin";

/// What a successful run produced.
#[derive(Debug)]
pub enum Done {
    /// A build: the two numbers of the result line.
    Built(u64, u64),
    /// `--plan`: the plan was printed.
    Planned,
    /// A PV build: store and console machine frames and the guest protocol.
    BuiltPv(u64, u64, &'static str),
}

type Lines = Vec<String>;

fn line(s: impl Into<String>) -> Lines {
    let mut s = s.into();
    if !s.ends_with('\n') {
        s.push('\n');
    }
    vec![s]
}

/// Validated numbers of the command line.
struct Numbers {
    domid: DomId,
    mem_max_mib: u64,
    mem_start_mib: u64,
    store_port: u32,
    console_port: u32,
    store_domid: DomId,
    console_domid: DomId,
    mem_pnode: Option<u32>,
}

fn numbers(a: &Args) -> Result<Numbers, Lines> {
    let domid = u16::try_from(a.domid)
        .ok()
        .filter(|d| (1..0x7FF0).contains(d))
        .ok_or_else(|| line(format!("xenguest: invalid domid {}", a.domid)))?;
    let mib = |v: i32, name: &str| {
        u64::try_from(v)
            .ok()
            .filter(|m| *m > 0)
            .ok_or_else(|| line(format!("xenguest: invalid -{name} {v}")))
    };
    let port = |v: i32, name: &str| {
        u32::try_from(v).map_err(|_| line(format!("xenguest: invalid -{name} {v}")))
    };
    let backend_dom = |v: i32, name: &str| {
        u16::try_from(v)
            .map(DomId)
            .map_err(|_| line(format!("xenguest: invalid -{name} {v}")))
    };
    Ok(Numbers {
        domid: DomId(domid),
        mem_max_mib: mib(a.mem_max_mib, "mem_max_mib")?,
        mem_start_mib: mib(a.mem_start_mib, "mem_start_mib")?,
        store_port: port(a.store_port, "store_port")?,
        console_port: port(a.console_port, "console_port")?,
        store_domid: backend_dom(a.store_domid, "store_domid")?,
        console_domid: backend_dom(a.console_domid, "console_domid")?,
        mem_pnode: match a.mem_pnode {
            None => None,
            Some(n) => Some(
                u32::try_from(n).map_err(|_| line(format!("xenguest: invalid -mem_pnode {n}")))?,
            ),
        },
    })
}

/// The PCI host of a build: sysfs at `--sysfs-root` (default `/sys`), RMRRs from the
/// hypervisor backend `hv` (`XENMEM_reserved_device_memory_map`; the simulator answers
/// from its host file).
fn pci_host<'a, M: xg_ctrl::MemoryOps + ?Sized>(a: &Args, hv: &'a M) -> PciHost<XenRmrr<'a, M>> {
    match &a.sysfs_root {
        Some(root) => PciHost::at(root).with_hypervisor(hv),
        None => PciHost::system(hv),
    }
}

/// Runs `-mode hvm_build` (or `--plan`).
pub fn hvm_build(a: &Args) -> Result<Done, Lines> {
    let n = numbers(a)?;
    if a.plan {
        return plan(a, &n);
    }
    open_backend(a, &n, Mode::Hvm)
}

/// `--plan`: the layout, nothing built. Passed-through devices need the backend for
/// their RMRRs; without them no backend is opened.
fn plan(a: &Args, n: &Numbers) -> Result<Done, Lines> {
    if a.pci_passthrough.is_none() {
        let no_devices = PciHost::at(a.sysfs_root.as_deref().unwrap_or(Path::new("/sys")));
        return print_plan(a, n, &no_devices);
    }
    match a.backend {
        Backend::Sim => print_plan(a, n, &pci_host(a, &open_sim(a)?)),
        Backend::Privcmd => print_plan(a, n, &pci_host(a, &open_xc()?)),
    }
}

fn print_plan<R: RmrrSource>(a: &Args, n: &Numbers, host: &PciHost<R>) -> Result<Done, Lines> {
    let plan = xg_build::plan::plan_hvm(
        host,
        n.mem_max_mib,
        n.mem_start_mib,
        a.vgpu,
        a.pci_passthrough.as_deref(),
        n.mem_pnode,
    )
    .map_err(|e| build_error_lines(&e))?;
    let json = serde_json::to_string_pretty(&plan)
        .map_err(|e| line(format!("xenguest: cannot render the plan: {e}")))?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{json}");
    Ok(Done::Planned)
}

/// The simulator of `--host` (or the default host).
fn open_sim(a: &Args) -> Result<Simulator, Lines> {
    match &a.host {
        Some(p) => Simulator::from_file(p),
        None => Ok(Simulator::default()),
    }
    .map_err(|e| {
        log::error!("{}", chain(&e));
        line("xenguest: Failed to open xc interface")
    })
}

/// The privcmd backend.
fn open_xc() -> Result<xg_ctrl::XenCtrl, Lines> {
    xg_ctrl::XenCtrl::open().map_err(|e| {
        log::error!("{}", chain(&e));
        line("xenguest: Failed to open xc interface")
    })
}

/// The build mode a `-mode` runs.
#[derive(Clone, Copy)]
enum Mode {
    Hvm,
    Pvh,
    Pv,
}

/// Opens the hypervisor backend `a.backend` names and runs `mode` on it.
fn open_backend(a: &Args, n: &Numbers, mode: Mode) -> Result<Done, Lines> {
    match a.backend {
        Backend::Sim => with_trace(open_sim(a)?, a, n, mode),
        Backend::Privcmd => with_trace(open_xc()?, a, n, mode),
    }
}

fn with_trace<H: xg_ctrl::PvHypervisor>(
    hv: H,
    a: &Args,
    n: &Numbers,
    mode: Mode,
) -> Result<Done, Lines> {
    let store_kind = a.store.unwrap_or(match a.backend {
        Backend::Sim => StoreKind::Memory,
        Backend::Privcmd => StoreKind::Socket,
    });
    let store: Box<dyn Store> = match store_kind {
        StoreKind::Memory => Box::new(MemStore::new()),
        StoreKind::Socket => Box::new(xg_store::Client::open().map_err(|e| {
            log::error!("{}", chain(&e));
            line("xenguest: Failed to open xenstore interface")
        })?),
    };
    match &a.trace {
        Some(path) => {
            let sink = create_trace(path)?;
            let traced = Traced::new(hv, sink.clone());
            let tstore = TracedStore::new(store.as_ref(), sink.clone());
            let r = run_mode(mode, &traced, &tstore, a, n, store_kind);
            flush_trace(&sink);
            r
        }
        None => run_mode(mode, &hv, store.as_ref(), a, n, store_kind),
    }
}

/// Opens `--trace FILE`; a file that cannot be created fails the run before any call.
pub(crate) fn create_trace(path: &std::path::Path) -> Result<TraceSink, Lines> {
    TraceSink::create(path).map_err(|e| {
        line(format!(
            "xenguest: cannot create trace file {}: {}",
            path.display(),
            chain(&e)
        ))
    })
}

/// Flushes the trace at the end of a run; the run's outcome stands either way.
pub(crate) fn flush_trace(sink: &TraceSink) {
    if let Err(e) = sink.flush() {
        log::warn!("Flushing the trace failed: {e}");
    }
}

/// Runs one build mode on an opened hypervisor and store.
fn run_mode<H: xg_ctrl::PvHypervisor + ?Sized>(
    mode: Mode,
    hv: &H,
    store: &dyn Store,
    a: &Args,
    n: &Numbers,
    store_kind: StoreKind,
) -> Result<Done, Lines> {
    match mode {
        Mode::Hvm => build(hv, store, a, n, store_kind),
        Mode::Pvh => pvh_run(hv, store, a, n, store_kind),
        Mode::Pv => pv_run(hv, store, a, n, store_kind),
    }
}

fn read_lines_file(path: &Path) -> Result<Vec<(String, String)>, Lines> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        line(format!(
            "xenguest: cannot read platform file {}: {e}",
            path.display()
        ))
    })?;
    let mut out = Vec::new();
    for l in text.lines() {
        let l = l.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        match l.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => out.push((k.trim().to_owned(), v.to_owned())),
            _ => {
                return Err(line(format!(
                    "xenguest: bad line in platform file {}: '{l}'",
                    path.display()
                )))
            }
        }
    }
    Ok(out)
}

/// Reads the firmware loader; with the simulator a missing file means the built-in test
/// firmware.
fn firmware(a: &Args) -> Result<(Vec<u8>, String), Lines> {
    let path = a.image.as_deref().unwrap_or_default();
    match std::fs::read(path) {
        Ok(data) => Ok((data, path.to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && a.backend == Backend::Sim => {
            log::warn!("{path} not found: using the built-in test firmware");
            Ok((
                xg_guest::firmware::builtin_test_firmware(),
                format!("built-in test firmware ({path} not found)"),
            ))
        }
        Err(e) => Err(file_error("xc_dom_kernel_file", path, &e)),
    }
}

/// Finds the domain's Xenstore path and seeds its platform keys (the toolstack's job on a
/// real host).
fn seed_platform_keys(
    store: &dyn Store,
    a: &Args,
    n: &Numbers,
    store_kind: StoreKind,
) -> Result<(), Lines> {
    let path = store.get_domain_path(u32::from(n.domid.0)).map_err(|e| {
        log::error!("{}", chain(&e));
        line("Failed to obtain XenStore domain path")
    })?;
    let mut seed = Vec::new();
    for f in &a.platform_files {
        seed.extend(read_lines_file(f)?);
    }
    seed.extend(a.platform.iter().cloned());
    if store_kind == StoreKind::Memory {
        // xenopsd always writes the vCPU count; a person at a shell gets one vCPU.
        for (k, v) in [("vcpu/number", "1"), ("vcpu/current", "1")] {
            let given = seed.iter().any(|(s, _)| {
                toolstack::platform_key(&path, s) == toolstack::platform_key(&path, k)
            });
            if !given {
                seed.insert(0, (k.to_owned(), v.to_owned()));
            }
        }
    }
    for (k, v) in &seed {
        store
            .write(TxId::NONE, &toolstack::platform_key(&path, k), v.as_bytes())
            .map_err(|e| line(format!("xenguest: cannot seed {k}: {}", chain(&e))))?;
    }
    Ok(())
}

fn build<H: Hypervisor + ?Sized>(
    hv: &H,
    store: &dyn Store,
    a: &Args,
    n: &Numbers,
    store_kind: StoreKind,
) -> Result<Done, Lines> {
    let started = Instant::now();
    seed_platform_keys(store, a, n, store_kind)?;
    if a.backend == Backend::Sim {
        toolstack::build_pre(hv, store, n.domid, n.mem_max_mib)
            .map_err(|e| build_error_lines(&e))?;
    }

    let (fw, fw_label) = firmware(a)?;
    let ipxe = match std::fs::read(IPXE_PATH) {
        Ok(d) => Some(d),
        Err(e) => {
            log::info!("No iPXE ROM at {IPXE_PATH} ({e}): building without it");
            None
        }
    };
    let mut req = HvmBuildRequest::new(n.domid, n.mem_max_mib, n.mem_start_mib, fw);
    req.ipxe = ipxe;
    req.store_evtchn = n.store_port;
    req.console_evtchn = n.console_port;
    req.store_domid = n.store_domid;
    req.console_domid = n.console_domid;
    req.vgpu = a.vgpu;
    req.force = a.force;
    req.pci_passthrough.clone_from(&a.pci_passthrough);
    req.mem_pnode = n.mem_pnode;
    req.strategy = strategy(a);
    let out = xg_build::build_hvm(hv, store, &pci_host(a, hv), &req)
        .map_err(|e| build_error_lines(&e))?;

    if let Some(svg_path) = &a.memory_map {
        // The guest is built: a picture that cannot be written is not a failed build.
        if let Err(e) = std::fs::write(svg_path, xg_build::svg::memory_map(&out)) {
            log::warn!("Cannot write memory map {}: {e}", svg_path.display());
        }
    }
    if !a.quiet {
        print_summary(&summary::hvm::render(&summary::hvm::Context {
            outcome: &out,
            firmware: &fw_label,
            run: run_info(a, store_kind, started),
        }));
    }
    Ok(Done::Built(out.store_pfn, out.console_pfn))
}

/// How the build ran, for its summary.
fn run_info(a: &Args, store_kind: StoreKind, started: Instant) -> summary::Run<'_> {
    summary::Run {
        backend: match a.backend {
            Backend::Sim => "sim",
            Backend::Privcmd => "privcmd",
        },
        store: match store_kind {
            StoreKind::Memory => "memory",
            StoreKind::Socket => "socket",
        },
        total: started.elapsed(),
        memory_map: a.memory_map.as_deref(),
        trace: a.trace.as_deref(),
    }
}

/// Writes a summary to stderr (a closed stderr is no failed build).
fn print_summary(text: &str) {
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// The xenstore and console channels of the command line.
fn channels(n: &Numbers) -> (summary::Channel, summary::Channel) {
    (
        summary::Channel {
            port: n.store_port,
            backend: n.store_domid,
        },
        summary::Channel {
            port: n.console_port,
            backend: n.console_domid,
        },
    )
}

/// A file's bytes and how the summary names it.
fn input(label: String, data: &[u8]) -> summary::Input {
    summary::Input {
        label,
        bytes: xg_ctrl::types::conv::usize_to_u64(data.len()),
    }
}

/// The error lines of a build failure, after logging the whole cause chain.
pub fn build_error_lines(e: &BuildError) -> Lines {
    // A refusal's message is the error line itself; other failures have a cause chain
    // worth seeing next to xenguest's terse line.
    if !matches!(
        e.kind,
        xg_build::ErrorKind::Refused { .. } | xg_build::ErrorKind::HostFile { .. }
    ) {
        log::error!("{}", chain(e));
    }
    e.wire_lines()
}

/// An error and its causes, `: `-joined.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Runs `-mode pvh_build`.
pub fn pvh_build(a: &Args) -> Result<Done, Lines> {
    let n = numbers(a)?;
    open_backend(a, &n, Mode::Pvh)
}

/// Reads the `-image` kernel; with the simulator a missing file means the built-in test
/// kernel `builtin` (named `kind` in the warning). Returns the bytes and what the
/// summary calls them.
fn kernel_image(
    a: &Args,
    kind: &str,
    builtin: fn() -> Vec<u8>,
) -> Result<(Vec<u8>, String), Lines> {
    let path = a.image.as_deref().unwrap_or_default();
    match std::fs::read(path) {
        Ok(data) => Ok((data, path.to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && a.backend == Backend::Sim => {
            log::warn!("{path} not found: using the built-in {kind} test kernel");
            Ok((
                builtin(),
                format!("built-in {kind} test kernel ({path} not found)"),
            ))
        }
        Err(e) => Err(file_error("xc_dom_kernel_file", path, &e)),
    }
}

/// `--populate` as the builds take it.
fn strategy(a: &Args) -> Strategy {
    match a.populate {
        Populate::Compat => Strategy::Compat,
        Populate::Batched => Strategy::Batched,
    }
}

fn file_error(func: &str, path: &str, e: &std::io::Error) -> Lines {
    let errno = e.raw_os_error().unwrap_or(libc::EIO);
    log::error!("Reading {path} failed: {e}");
    line(format!(
        "xenguest: {func}: [{errno}] {}",
        xg_build::error::strerror(errno)
    ))
}

fn pvh_run<H: Hypervisor + ?Sized>(
    hv: &H,
    store: &dyn Store,
    a: &Args,
    n: &Numbers,
    store_kind: StoreKind,
) -> Result<Done, Lines> {
    let started = Instant::now();
    seed_platform_keys(store, a, n, store_kind)?;
    if a.backend == Backend::Sim {
        toolstack::build_pre(hv, store, n.domid, n.mem_max_mib)
            .map_err(|e| build_error_lines(&e))?;
        // xenopsd's maxmem leaves room for the special and ACPI pages.
        hv.set_max_mem(
            n.domid,
            n.mem_max_mib.saturating_add(1).saturating_mul(1024),
        )
        .map_err(|e| line(format!("xenguest: xc_domain_setmaxmem: {}", chain(&e))))?;
    }

    let (image, label) = kernel_image(a, "PVH", xg_guest::kernel::test_kernel::test_pvh_kernel)?;
    let kernel = input(label, &image);
    let mut req = xg_build::PvhBuildRequest::new(n.domid, n.mem_max_mib, n.mem_start_mib, image);
    req.cmdline.clone_from(&a.cmdline);
    let mut modules = Vec::with_capacity(a.modules.len());
    for (i, m) in a.modules.iter().enumerate() {
        let data = std::fs::read(m).map_err(|e| file_error("xc_dom_module_file", m, &e))?;
        modules.push(input(m.clone(), &data));
        // xenguest binds the i-th later -cmdline to module i, "" for the rest.
        let cmdline = a.module_cmdlines.get(i).cloned().unwrap_or_default();
        req.modules.push((data, cmdline));
    }
    req.store_evtchn = n.store_port;
    req.console_evtchn = n.console_port;
    req.store_domid = n.store_domid;
    req.console_domid = n.console_domid;
    req.force = a.force;
    req.pci_passthrough.clone_from(&a.pci_passthrough);
    req.strategy = strategy(a);
    let out = xg_build::build_pvh(hv, store, &req).map_err(|e| build_error_lines(&e))?;
    log::info!(
        "PVH guest d{} built in {:?}: kernel {:?} entry {:#x}, {} module(s)",
        n.domid,
        started.elapsed(),
        out.kernel.format,
        out.kernel.pvh.entry,
        out.image.plan.modules.len()
    );
    if !a.quiet {
        let (store, console) = channels(n);
        print_summary(&summary::pvh::render(&summary::pvh::Context {
            outcome: &out,
            kernel: &kernel,
            cmdline: a.cmdline.as_deref(),
            modules: &modules,
            store,
            console,
            run: run_info(a, store_kind, started),
        }));
    }
    Ok(Done::Built(out.store_pfn, out.console_pfn))
}

/// Runs `-mode linux_build` (64-bit PV).
pub fn linux_build(a: &Args) -> Result<Done, Lines> {
    let n = numbers(a)?;
    open_backend(a, &n, Mode::Pv)
}

fn pv_run<H: xg_ctrl::PvHypervisor + ?Sized>(
    hv: &H,
    store: &dyn Store,
    a: &Args,
    n: &Numbers,
    store_kind: StoreKind,
) -> Result<Done, Lines> {
    let started = Instant::now();
    seed_platform_keys(store, a, n, store_kind)?;
    if a.backend == Backend::Sim {
        toolstack::build_pre_as(hv, store, n.domid, n.mem_max_mib, false)
            .map_err(|e| build_error_lines(&e))?;
    }

    let (image, label) = kernel_image(a, "PV", xg_guest::kernel::test_kernel::test_pv_kernel)?;
    let kernel = input(label, &image);
    let mut req = xg_build::PvBuildRequest::new(n.domid, n.mem_max_mib, n.mem_start_mib, image);
    req.cmdline.clone_from(&a.cmdline);
    req.features = a.features.clone().unwrap_or_default();
    req.flags = u32::from_ne_bytes(a.flags.to_ne_bytes());
    // xenguest: an empty -ramdisk means none.
    let mut ramdisk = None;
    if let Some(r) = a.ramdisk.as_deref().filter(|r| !r.is_empty()) {
        let data = std::fs::read(r).map_err(|e| file_error("xc_dom_module_file", r, &e))?;
        ramdisk = Some(input(r.to_owned(), &data));
        req.ramdisk = Some(data);
    }
    req.store_evtchn = n.store_port;
    req.console_evtchn = n.console_port;
    req.store_domid = n.store_domid;
    req.console_domid = n.console_domid;
    let out = xg_build::build_pv(hv, store, &req).map_err(|e| build_error_lines(&e))?;
    log::info!(
        "PV guest d{} built in {:?}: kernel {:?} entry {:#x}, {} pages",
        n.domid,
        started.elapsed(),
        out.format,
        out.kernel.entry,
        out.memory.p2m.len()
    );
    if !a.quiet {
        let (store, console) = channels(n);
        print_summary(&summary::pv::render(&summary::pv::Context {
            outcome: &out,
            kernel: &kernel,
            cmdline: a.cmdline.as_deref(),
            ramdisk: ramdisk.as_ref(),
            store,
            console,
            run: run_info(a, store_kind, started),
        }));
    }
    Ok(Done::BuiltPv(out.store_mfn, out.console_mfn, out.protocol))
}
