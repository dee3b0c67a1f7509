//! `cargo xtask codegen [--check]`: generates `crates/xg-sys/src/x86_64/bindings.rs`.
//!
//! The bindings come from the bindgen library (pinned in the workspace) run over
//! `crates/xg-sys/wrapper.h`, which includes the Xen 4.17 public headers of Debian 12's
//! `libxen-dev`. Everything that shapes the output (allowlists, derives, integer types of
//! a few macro families, the preamble) is an option here: the generated file is never
//! edited by hand.
//!
//! Formatting: bindgen emits unformatted tokens and we pipe the whole file (preamble
//! included) through the toolchain's `rustfmt` with the workspace `rustfmt.toml` and
//! edition 2021, so the committed file is exactly what `cargo fmt --check` expects and
//! the output depends only on the pinned bindgen, libclang, the header package and the
//! one stable toolchain.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use bindgen::callbacks::{IntKind, ParseCallbacks};

use crate::util::{ensure_debian_packages, workspace_root};

/// Debian packages the generator reads: the Xen headers and libclang for bindgen.
pub const PACKAGES: &[&str] = &["libxen-dev", "libclang-dev"];

/// The header bindgen parses, relative to the workspace root.
const WRAPPER: &str = "crates/xg-sys/wrapper.h";

/// The generated file, relative to the workspace root.
pub const OUTPUT: &str = "crates/xg-sys/src/x86_64/bindings.rs";

/// The message of `--check` when the committed file differs from a fresh generation.
const STALE: &str = "bindings are stale: run `cargo xtask codegen` and commit";

/// Types (bindgen regexes, anchored) the builder needs. `xen_domctl` and `xen_sysctl`
/// pull in every payload of their unions; the payloads are listed again so the list
/// documents what is used and survives a change of the unions.
const TYPES: &[&str] = &[
    // domctl
    "xen_domctl",
    "xen_domctl_createdomain",
    "xen_domctl_getdomaininfo",
    "xen_domctl_max_mem",
    "xen_domctl_max_vcpus",
    "xen_domctl_vcpuaffinity",
    "xen_domctl_nodeaffinity",
    "xen_domctl_scheduler_op",
    "xen_domctl_sched_credit",
    "xen_domctl_tsc_info",
    "xen_domctl_hvmcontext",
    "xen_domctl_cpu_policy",
    "xen_domctl_settimeoffset",
    "xen_arch_domainconfig",
    // sysctl
    "xen_sysctl",
    "xen_sysctl_physinfo",
    "xen_sysctl_numainfo",
    "xen_sysctl_meminfo",
    "xen_sysctl_cputopoinfo",
    "xen_sysctl_cputopo",
    "xen_sysctl_cpu_policy",
    "xen_sysctl_cpu_featureset",
    // memory ops
    "xen_memory_reservation",
    "xen_pod_target",
    "xen_foreign_memory_map",
    "xen_memory_map",
    "xen_mem_acquire_resource",
    "xen_add_to_physmap",
    "xen_remove_from_physmap",
    "xen_reserved_device_memory_map",
    "xen_reserved_device_memory",
    "physdev_pci_device",
    // hvm
    "xen_hvm_param",
    "hvm_info_table",
    "hvm_save_descriptor",
    "hvm_save_header",
    "hvm_save_end",
    "hvm_hw_cpu",
    "hvm_hw_mtrr",
    // boot information
    "start_info",
    "hvm_start_info",
    "hvm_modlist_entry",
    "hvm_memmap_table_entry",
    // xenstore wire protocol
    "xsd_sockmsg",
    "xsd_sockmsg_type",
    "xsd_errors",
    "xenstore_domain_interface",
    // x86 CPUID/MSR policy, hypercall batches, event channels, grant tables
    "xen_cpuid_leaf",
    "xen_msr_entry",
    "multicall_entry",
    "evtchn_alloc_unbound",
    "evtchn_port_t",
    "grant_entry_v1",
    "grant_ref_t",
    "domid_t",
    "xen_pfn_t",
    "xen_ulong_t",
];

/// bindgen's generated Debug impls (for structs holding a union) skip every field whose
/// type does not resolve to an allowlisted item, and bindgen never traverses the
/// `<stdint.h>` typedefs on its own. Allowlisting them and glibc's underlying `__uintN_t`
/// keeps fields like `xen_domctl::cmd` in the output, at the price of eight aliases.
const DEBUG_TYPE_HELPERS: &[&str] = &["u?int(8|16|32|64)_t", "__u?int(8|16|32|64)_t"];

/// Macro constants (bindgen regexes, anchored) the builder needs.
const VARS: &[&str] = &[
    "__HYPERVISOR_.*",
    "XEN_DOMCTL_.*",
    "XEN_SYSCTL_.*",
    "XEN_DOMINF_.*",
    "XEN_SCHEDULER_.*",
    "XEN_X86_EMU_.*",
    "XENMEM_.*",
    "XENMEMF_.*",
    "XENMAPSPACE_.*",
    "XENMAPIDX_.*",
    "HVM_PARAM_.*",
    "HVMOP_.*",
    "HVM_INFO_.*",
    "HVM_E820_.*",
    "HVM_BELOW_4G_.*",
    "HVM_SAVE_.*",
    "XEN_HVM_START_.*",
    "XEN_HVM_MEMMAP_TYPE_.*",
    "XS_.*",
    "XENSTORE_.*",
    "XEN_ELFNOTE_.*",
    "XEN_CPUID_.*",
    "GTF_.*",
    "GNTTAB_.*",
    "GNTTABOP_.*",
    "EVTCHNOP_.*",
    "DOMID_.*",
    "SIF_.*",
    "XENVER_.*",
    "XEN_LEGACY_MAX_VCPUS",
    // names wrapper.h gives to values hidden in macros
    "XG_HVM_SAVE_CODE_.*",
];

/// Gives macro families the width of the C field they are used with, where bindgen's
/// default (`u32`) would force a cast on every use.
#[derive(Debug)]
struct MacroTypes;

impl ParseCallbacks for MacroTypes {
    fn int_macro(&self, name: &str, _value: i64) -> Option<IntKind> {
        // domid_t and the grant entry flags are uint16_t.
        if name.starts_with("DOMID_") || name.starts_with("GTF_") {
            return Some(IntKind::U16);
        }
        None
    }
}

/// What the preamble records about the inputs.
struct Inputs {
    headers_version: String,
    bindgen_version: String,
    clang_version: String,
}

/// `cargo xtask codegen [--check]`.
pub fn run_cmd(args: &[String]) -> Result<()> {
    let check = match args {
        [] => false,
        [flag] if flag == "--check" => true,
        _ => bail!("usage: cargo xtask codegen [--check]"),
    };
    ensure_debian_packages(PACKAGES)?;
    let root = workspace_root();
    let started = Instant::now();
    let fresh = generate(&root)?;
    let path = root.join(OUTPUT);
    if check {
        check_fresh(&path, &fresh)?;
        eprintln!("xtask: {OUTPUT} is fresh");
        return Ok(());
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    if current == fresh {
        eprintln!("xtask: {OUTPUT} is up to date");
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("Creating {}", dir.display()))?;
    }
    std::fs::write(&path, &fresh).with_context(|| format!("Writing {}", path.display()))?;
    eprintln!(
        "xtask: wrote {OUTPUT} ({} bytes) in {:.1?}",
        fresh.len(),
        started.elapsed()
    );
    Ok(())
}

/// Fails with the stale message when the file at `path` is not `fresh`.
pub fn check_fresh(path: &Path, fresh: &str) -> Result<()> {
    let current =
        std::fs::read_to_string(path).with_context(|| format!("Reading {}", path.display()))?;
    if current != fresh {
        bail!("{STALE}");
    }
    Ok(())
}

/// Generates the complete text of `bindings.rs` in memory.
pub fn generate(root: &Path) -> Result<String> {
    let headers_version = package_version("libxen-dev")?;
    // bindgen's macro fallback writes a precompiled header and a .c file; give it a
    // private directory so concurrent runs (the test and the command) do not collide.
    let scratch = std::env::temp_dir().join(format!("xg-sys-codegen-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).with_context(|| format!("Creating {}", scratch.display()))?;
    let generated = run_bindgen(root, &scratch);
    // Best effort: a leftover scratch directory in /tmp is harmless.
    let _ = std::fs::remove_dir_all(&scratch);
    let (bindgen_version, body) = split_bindgen_header(&generated?)?;
    let inputs = Inputs {
        headers_version,
        bindgen_version,
        clang_version: bindgen::clang_version().full,
    };
    rustfmt(root, &format!("{}{body}", preamble(&inputs)))
}

/// Runs bindgen over the wrapper header and returns its unformatted output.
fn run_bindgen(root: &Path, scratch: &Path) -> Result<String> {
    let wrapper: PathBuf = root.join(WRAPPER);
    let mut builder = bindgen::builder()
        .header(wrapper.to_string_lossy())
        .clang_arg("--target=x86_64-unknown-linux-gnu")
        // Formatting happens once, over the whole file, in `rustfmt` below.
        .formatter(bindgen::Formatter::None)
        // Xen's headers use plain `/* */` comments, which clang does not attach as docs
        // anyway; off, so no C prose can ever break rustdoc or turn into a doctest.
        .generate_comments(false)
        .layout_tests(true)
        .derive_copy(true)
        .derive_debug(true)
        // Unions cannot derive Debug; bindgen writes an impl for them (printing
        // `{ union }`) and for the structs containing them (see DEBUG_TYPE_HELPERS).
        .impl_debug(true)
        .derive_default(true)
        .derive_partialeq(true)
        .derive_eq(true)
        .prepend_enum_name(false)
        .wrap_unsafe_ops(true)
        .allowlist_recursively(true)
        // Evaluates macros cexpr cannot, such as DOMID_SELF = xen_mk_uint(0x7FF0).
        .clang_macro_fallback()
        .clang_macro_fallback_build_dir(scratch)
        .parse_callbacks(Box::new(MacroTypes));
    for ty in TYPES.iter().chain(DEBUG_TYPE_HELPERS) {
        builder = builder.allowlist_type(*ty);
    }
    for var in VARS {
        builder = builder.allowlist_var(*var);
    }
    let bindings = builder
        .generate()
        .map_err(|e| anyhow!("bindgen failed on {WRAPPER}: {e}"))?;
    Ok(bindings.to_string())
}

/// Splits bindgen's own `/* automatically generated by rust-bindgen X */` line off the
/// output and returns the version it names, so the preamble states the version that
/// really ran.
fn split_bindgen_header(raw: &str) -> Result<(String, String)> {
    const PREFIX: &str = "/* automatically generated by rust-bindgen ";
    let Some(rest) = raw.strip_prefix(PREFIX) else {
        bail!("bindgen output lacks its version header");
    };
    let Some((version, body)) = rest.split_once(" */") else {
        bail!("bindgen version header is not closed");
    };
    Ok((version.trim().to_owned(), body.to_owned()))
}

fn preamble(inputs: &Inputs) -> String {
    let Inputs {
        headers_version,
        bindgen_version,
        clang_version,
    } = inputs;
    format!(
        "// Generated by `cargo xtask codegen`; do not edit by hand.\n\
         //\n\
         // Input: {WRAPPER} over the Xen public headers of Debian's libxen-dev {headers_version}.\n\
         // Generator: bindgen {bindgen_version} ({clang_version}), formatted by rustfmt.\n\
         #![allow(\n\
             non_camel_case_types,\n\
             non_snake_case,\n\
             non_upper_case_globals,\n\
             dead_code,\n\
             missing_docs,\n\
             missing_debug_implementations,\n\
             unsafe_op_in_unsafe_fn,\n\
             clippy::all,\n\
             clippy::pedantic,\n\
             clippy::undocumented_unsafe_blocks,\n\
             clippy::cast_possible_truncation,\n\
             clippy::cast_possible_wrap,\n\
             clippy::cast_sign_loss,\n\
             clippy::cast_lossless\n\
         )]\n\
         \n\
         /// Debian version of the `libxen-dev` package these bindings were generated from.\n\
         pub const XEN_HEADERS_VERSION: &str = \"{headers_version}\";\n\n"
    )
}

/// The installed version of a Debian package, as `dpkg-query` reports it.
fn package_version(pkg: &str) -> Result<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", pkg])
        .output()
        .context("Running dpkg-query failed")?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || version.is_empty() {
        bail!("Package {pkg} is not installed; run: apt-get install -y {pkg}");
    }
    Ok(version)
}

/// Formats `source` with the toolchain's rustfmt, the workspace config and edition 2021.
fn rustfmt(root: &Path, source: &str) -> Result<String> {
    let rustfmt = std::env::var("RUSTFMT").unwrap_or_else(|_| "rustfmt".into());
    let mut child = Command::new(&rustfmt)
        .current_dir(root)
        .args(["--edition", "2021", "--emit", "stdout", "--config-path"])
        .arg(root.join("rustfmt.toml"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("Starting {rustfmt} failed"))?;
    let mut stdin = child.stdin.take().context("rustfmt has no stdin")?;
    let input = source.to_owned();
    // Feed stdin from a thread so a full stdout pipe cannot deadlock us.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child
        .wait_with_output()
        .context("Waiting for rustfmt failed")?;
    writer
        .join()
        .map_err(|_| anyhow!("rustfmt stdin writer panicked"))?
        .context("Writing to rustfmt failed")?;
    if !out.status.success() {
        bail!(
            "rustfmt failed with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8(out.stdout).context("rustfmt printed invalid UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails when the committed bindings differ from what the generator produces now
    /// (G3 in the design conventions). Needs libclang and libxen-dev, as CI installs.
    #[test]
    fn bindings_are_fresh() {
        let missing: Vec<&str> = PACKAGES
            .iter()
            .copied()
            .filter(|p| package_version(p).is_err())
            .collect();
        assert!(
            missing.is_empty(),
            "bindings_are_fresh needs Debian packages {missing:?}: apt-get install -y {}",
            missing.join(" ")
        );
        let root = workspace_root();
        let fresh = generate(&root).expect("generating the bindings");
        if let Err(e) = check_fresh(&root.join(OUTPUT), &fresh) {
            panic!("{e:#}");
        }
    }

    /// Debug impls written by bindgen print every field (see DEBUG_TYPE_HELPERS).
    #[test]
    fn generated_debug_impls_keep_integer_fields() {
        let text = std::fs::read_to_string(workspace_root().join(OUTPUT)).unwrap();
        let start = text
            .find("impl ::std::fmt::Debug for xen_domctl {")
            .expect("xen_domctl has a Debug impl");
        let end = start + text[start..].find("\n}\n").expect("end of the impl");
        let body = &text[start..end];
        for field in ["cmd", "interface_version", "domain", "u"] {
            assert!(
                body.contains(&format!("{field}: {{:?}}")),
                "{field} missing in {body}"
            );
        }
    }

    /// bindgen silently ignores an allowlist entry that matches nothing (a typo, or a
    /// name that moved in a new header version); every entry must produce an item.
    #[test]
    fn every_allowlist_entry_is_generated() {
        let text = std::fs::read_to_string(workspace_root().join(OUTPUT)).unwrap();
        let missing_types: Vec<&str> = TYPES
            .iter()
            .copied()
            .filter(|ty| {
                !["pub struct", "pub union", "pub type"]
                    .iter()
                    .any(|kind| text.contains(&format!("{kind} {ty} ")))
            })
            .collect();
        assert!(
            missing_types.is_empty(),
            "types not generated: {missing_types:?}"
        );
        assert!(text.contains("pub type __uint32_t = "));
        let missing_vars: Vec<&str> = VARS
            .iter()
            .copied()
            .filter(|var| {
                let prefix = var.trim_end_matches(".*");
                !text.contains(&format!("pub const {prefix}"))
            })
            .collect();
        assert!(
            missing_vars.is_empty(),
            "constants not generated: {missing_vars:?}"
        );
    }

    #[test]
    fn stale_file_is_reported_with_the_fix() {
        let dir = std::env::temp_dir().join(format!("xg-sys-stale-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bindings.rs");
        std::fs::write(&path, "// old\n").unwrap();
        let err = check_fresh(&path, "// new\n").unwrap_err();
        assert_eq!(err.to_string(), STALE);
        std::fs::write(&path, "// new\n").unwrap();
        check_fresh(&path, "// new\n").unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bindgen_header_is_split_off() {
        let (version, body) = split_bindgen_header(
            "/* automatically generated by rust-bindgen 0.71.1 */\n\npub const A: u32 = 1;",
        )
        .unwrap();
        assert_eq!(version, "0.71.1");
        assert_eq!(body, "\n\npub const A: u32 = 1;");
        assert!(split_bindgen_header("pub const A: u32 = 1;").is_err());
    }

    #[test]
    fn preamble_stamps_versions_and_marks_the_file_generated() {
        let text = preamble(&Inputs {
            headers_version: "4.17.7-0+deb12u1".into(),
            bindgen_version: "0.71.1".into(),
            clang_version: "clang version 14".into(),
        });
        assert!(text.starts_with("// Generated by `cargo xtask codegen`; do not edit by hand."));
        assert!(text.contains("libxen-dev 4.17.7-0+deb12u1"));
        assert!(text.contains("bindgen 0.71.1"));
        assert!(text.contains("pub const XEN_HEADERS_VERSION: &str = \"4.17.7-0+deb12u1\";"));
        assert_eq!(text.matches("#![allow(").count(), 1);
    }
}
