//! Running our `xenguest` the way xenopsd does, on the real Xen or on the simulator.

use std::path::Path;

use crate::cmd::{run, CmdError, Finished};
use crate::domain::GuestSpec;

fn base_args(domid: u16, spec: &GuestSpec, trace: Option<&Path>) -> Vec<String> {
    mode_args("hvm_build", crate::HVMLOADER, domid, spec, trace)
}

fn mode_args(
    mode: &str,
    image: &str,
    domid: u16,
    spec: &GuestSpec,
    trace: Option<&Path>,
) -> Vec<String> {
    let mib = spec.mem_mib.to_string();
    // As xenopsd: both control fds given. Fd 1 is the pipe `run` reads, so `result:` and
    // `error:` lines arrive on stdout; fd 0 is /dev/null (only save modes read it).
    let mut a: Vec<String> = [
        "-controloutfd",
        "1",
        "-controlinfd",
        "0",
        "-mode",
        mode,
        "-image",
        image,
        "-domid",
        &domid.to_string(),
        "-store_port",
        &spec.ports.store.to_string(),
        "-store_domid",
        "0",
        "-console_port",
        &spec.ports.console.to_string(),
        "-console_domid",
        "0",
        "-mem_max_mib",
        &mib,
        "-mem_start_mib",
        &mib,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    if let Some(t) = trace {
        a.push("--trace".to_owned());
        a.push(t.display().to_string());
    }
    a
}

/// `xenguest -mode hvm_build --backend privcmd --store socket` on an existing domain whose
/// Xenstore directory the toolstack has written; `trace` records every call.
pub fn hvm_build_privcmd(
    domid: u16,
    spec: &GuestSpec,
    trace: Option<&Path>,
) -> Result<Finished, CmdError> {
    let mut a = base_args(domid, spec, trace);
    a.extend(["--backend", "privcmd", "--store", "socket"].map(String::from));
    let prog = crate::xenguest_path().display().to_string();
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    run(&prog, &refs)
}

/// The same build on the simulator with an in-memory Xenstore seeded with the same
/// platform keys (the simulator creates the domain itself).
pub fn hvm_build_sim(
    domid: u16,
    spec: &GuestSpec,
    trace: Option<&Path>,
) -> Result<Finished, CmdError> {
    let mut a = base_args(domid, spec, trace);
    a.extend(["--backend", "sim", "--store", "memory"].map(String::from));
    for (k, v) in spec.platform_keys() {
        a.push("--platform".to_owned());
        a.push(format!("{k}={v}"));
    }
    let prog = crate::xenguest_path().display().to_string();
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    run(&prog, &refs)
}

/// A PVH kernel and its modules, as xenopsd passes them to `-mode pvh_build`.
#[derive(Debug, Clone, Default)]
pub struct PvhImage {
    /// `-image`.
    pub kernel: String,
    /// `-cmdline` of the kernel.
    pub cmdline: String,
    /// `-module` paths, each with the `-cmdline` that follows it.
    pub modules: Vec<(String, String)>,
}

/// `xenguest -mode pvh_build` with xenopsd's argv (`-cmdline`, `-features ""`,
/// `-flags 0`, then `-module`/`-cmdline` pairs) on `backend`: `privcmd` with the socket
/// store on an existing domain, or `sim` with an in-memory store seeded with the spec's
/// platform keys.
pub fn pvh_build(
    backend: &str,
    domid: u16,
    spec: &GuestSpec,
    image: &PvhImage,
    trace: Option<&Path>,
) -> Result<Finished, CmdError> {
    let mut a = mode_args("pvh_build", &image.kernel, domid, spec, trace);
    a.extend(["-cmdline".to_owned(), image.cmdline.clone()]);
    a.extend(["-features", "", "-flags", "0"].map(String::from));
    for (path, cmdline) in &image.modules {
        a.extend(["-module".to_owned(), path.clone()]);
        a.extend(["-cmdline".to_owned(), cmdline.clone()]);
    }
    run_on(backend, spec, a)
}

/// A PV kernel and its ramdisk, as xenopsd passes them to `-mode linux_build`.
#[derive(Debug, Clone, Default)]
pub struct PvImage {
    /// `-image`.
    pub kernel: String,
    /// `-ramdisk` (xenopsd passes an empty string for none).
    pub ramdisk: Option<String>,
    /// `-cmdline`.
    pub cmdline: String,
}

/// `xenguest -mode linux_build` with xenopsd's argv (`-ramdisk`, `-cmdline`,
/// `-features ""`, `-flags 0`) on `backend`, as [`pvh_build`].
pub fn linux_build(
    backend: &str,
    domid: u16,
    spec: &GuestSpec,
    image: &PvImage,
    trace: Option<&Path>,
) -> Result<Finished, CmdError> {
    let mut a = mode_args("linux_build", &image.kernel, domid, spec, trace);
    a.extend([
        "-ramdisk".to_owned(),
        image.ramdisk.clone().unwrap_or_default(),
    ]);
    a.extend(["-cmdline".to_owned(), image.cmdline.clone()]);
    a.extend(["-features", "", "-flags", "0"].map(String::from));
    run_on(backend, spec, a)
}

/// Adds the backend options and runs our xenguest with `args`.
fn run_on(backend: &str, spec: &GuestSpec, mut a: Vec<String>) -> Result<Finished, CmdError> {
    if backend == "sim" {
        a.extend(["--backend", "sim", "--store", "memory"].map(String::from));
        for (k, v) in spec.platform_keys() {
            a.push("--platform".to_owned());
            a.push(format!("{k}={v}"));
        }
    } else {
        a.extend(["--backend", "privcmd", "--store", "socket"].map(String::from));
    }
    let prog = crate::xenguest_path().display().to_string();
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    run(&prog, &refs)
}

/// The store and console frames of a `result:` line (the first two numbers).
pub fn result_frames(result: &str) -> Option<(u64, u64)> {
    let mut words = result.strip_prefix("result:")?.split_whitespace();
    let store = words.next()?.parse().ok()?;
    let console = words.next()?.parse().ok()?;
    Some((store, console))
}

/// What a kernel-loading build mode gets from xenopsd.
#[derive(Debug, Clone)]
pub enum KernelBuild {
    /// `-mode pvh_build`.
    Pvh(PvhImage),
    /// `-mode linux_build`.
    Pv(PvImage),
}

impl KernelBuild {
    /// Runs the build on `backend` (see [`pvh_build`]).
    pub fn run(
        &self,
        backend: &str,
        domid: u16,
        spec: &GuestSpec,
        trace: Option<&Path>,
    ) -> Result<Finished, CmdError> {
        match self {
            KernelBuild::Pvh(image) => pvh_build(backend, domid, spec, image, trace),
            KernelBuild::Pv(image) => linux_build(backend, domid, spec, image, trace),
        }
    }
}

/// A build on Xen that made the same memory calls as on the simulator.
#[derive(Debug, Clone)]
pub struct Compared {
    /// The `result:` line.
    pub result: String,
    /// Store and console frames of the result line.
    pub frames: (u64, u64),
    /// Memory calls both made.
    pub memory_calls: usize,
    /// The domain's pages after the build (= what the simulator's calls added).
    pub tot_pages: u64,
    /// Time xenguest took on Xen.
    pub elapsed: std::time::Duration,
}

/// Builds the existing domain `domid` (named `name`, for trace files) on Xen through
/// privcmd, the same build on the simulator, and checks what they must agree on: the
/// result line (for PV only its protocol: the frames are machine frames), every memory
/// call in order, and the domain's page count.
///
/// # Panics
/// When a build fails or the two disagree: this is a test helper, its message is the
/// test's failure.
pub fn build_compared(
    xc: &xg_ctrl::XenCtrl,
    domid: xg_ctrl::DomId,
    name: &str,
    spec: &GuestSpec,
    build: &KernelBuild,
) -> Compared {
    use xg_ctrl::DomainOps;

    use crate::trace::{memory_effect, read};

    let real_trace = std::env::temp_dir().join(format!("{name}-xen.jsonl"));
    let real = build
        .run("privcmd", domid.0, spec, Some(&real_trace))
        .expect("run xenguest");
    assert!(
        real.success(),
        "{name}: build on Xen failed: {:?}\nstdout: {}\nstderr: {}",
        real.status,
        real.stdout,
        real.stderr
    );
    let result = result_line(&real.stdout).expect("result line").to_owned();
    let frames = result_frames(&result).expect("store and console frames");

    let sim_trace = std::env::temp_dir().join(format!("{name}-sim.jsonl"));
    let sim = build
        .run("sim", domid.0, spec, Some(&sim_trace))
        .expect("run xenguest on the simulator");
    assert!(
        sim.success(),
        "{name}: build on the simulator failed: {}",
        sim.stderr
    );
    let sim_result = result_line(&sim.stdout).unwrap_or_default();
    if matches!(build, KernelBuild::Pv(_)) {
        // A PV result names machine frames, which each host picks: only the protocol
        // after them must agree.
        let protocol = |r: &str| r.split_whitespace().nth(2).map(str::to_owned);
        assert_eq!(
            protocol(sim_result),
            protocol(&result),
            "{name}: PV protocols"
        );
    } else {
        assert_eq!(sim_result, result, "{name}: result lines");
    }
    let real_fx = memory_effect(&read(&real_trace).expect("xen trace"));
    let sim_fx = memory_effect(&read(&sim_trace).expect("simulator trace"));
    if let Some(i) = (0..real_fx.calls.len().max(sim_fx.calls.len()))
        .find(|&i| real_fx.calls.get(i) != sim_fx.calls.get(i))
    {
        panic!(
            "{name}: memory call {i} differs:\n  xen: {:?}\n  sim: {:?}",
            real_fx.calls.get(i),
            sim_fx.calls.get(i)
        );
    }
    let info = xc.domain_info(domid).expect("getdomaininfo");
    assert_eq!(
        info.tot_pages, sim_fx.pages_added,
        "{name}: tot_pages vs simulator"
    );
    Compared {
        result,
        frames,
        memory_calls: real_fx.calls.len(),
        tot_pages: info.tot_pages,
        elapsed: real.elapsed,
    }
}

/// The `result:` line of a build's stdout, if any.
pub fn result_line(stdout: &str) -> Option<&str> {
    stdout.lines().find(|l| l.starts_with("result:"))
}

/// The `error:` lines of a build's stdout.
pub fn error_lines(stdout: &str) -> Vec<&str> {
    stdout.lines().filter(|l| l.starts_with("error:")).collect()
}

/// The lines of one section of xenguest's summary on stderr (`  <name>` followed by lines
/// indented by four spaces), trimmed.
pub fn summary_section(stderr: &str, name: &str) -> Vec<String> {
    let header = format!("  {name}");
    stderr
        .lines()
        .skip_while(|l| l.trim_end() != header)
        .skip(1)
        .take_while(|l| l.starts_with("    "))
        .map(|l| l.trim().to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_of_a_summary() {
        let err = "xenguest: HVM build\n  e820\n    RAM 0x0 +0x9f000\n    RAM 0x100000 +0x7f00000\n  pages        4 KiB\n  stages\n    meminit     1.000 ms\n";
        assert_eq!(
            summary_section(err, "e820"),
            vec!["RAM 0x0 +0x9f000", "RAM 0x100000 +0x7f00000"]
        );
        assert_eq!(summary_section(err, "stages"), vec!["meminit     1.000 ms"]);
        assert!(summary_section(err, "xenstore").is_empty());
    }

    #[test]
    fn frames_of_result_lines() {
        assert_eq!(
            result_frames("result:1044476 1044479"),
            Some((1044476, 1044479))
        );
        assert_eq!(
            result_frames("result:8193 8194 x86_64-abi"),
            Some((8193, 8194))
        );
        assert_eq!(result_frames("result:12"), None);
        assert_eq!(result_frames("error:12 13"), None);
    }
}
