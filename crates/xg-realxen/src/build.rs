//! Running our `xenguest` the way xenopsd does, on the real Xen or on the simulator.

use std::path::Path;

use crate::cmd::{run, CmdError, Finished};
use crate::domain::HvmSpec;

/// The Xenstore event channel port the tests pass (xenopsd allocates a real one; Xen
/// only records the number in an HVM param).
pub const STORE_PORT: u32 = 1;
/// The console event channel port the tests pass.
pub const CONSOLE_PORT: u32 = 2;

fn base_args(domid: u16, spec: &HvmSpec, trace: Option<&Path>) -> Vec<String> {
    mode_args("hvm_build", crate::HVMLOADER, domid, spec, trace)
}

fn mode_args(
    mode: &str,
    image: &str,
    domid: u16,
    spec: &HvmSpec,
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
        &STORE_PORT.to_string(),
        "-store_domid",
        "0",
        "-console_port",
        &CONSOLE_PORT.to_string(),
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
    spec: &HvmSpec,
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
    spec: &HvmSpec,
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
    spec: &HvmSpec,
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
}
