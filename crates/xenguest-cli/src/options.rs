//! The command line, described once: every option with its argument, section and
//! description, the modes, and the prose of the manual. `--help` (help.rs) and the man
//! page (man.rs) are both rendered from here, and a test checks this table against the
//! names the parser (args.rs) accepts, so the three cannot drift apart.

/// Where an option belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// Options of XenServer's C xenguest, as xenopsd passes them (written with one dash).
    Xenguest,
    /// Options of this implementation (written with two dashes).
    Implementation,
}

impl Section {
    /// The heading of the section.
    pub fn title(self) -> &'static str {
        match self {
            Section::Xenguest => "xenguest options (as xenopsd passes them)",
            Section::Implementation => "Options of this implementation",
        }
    }

    /// How options of the section are written: xenopsd's single dash or GNU's two.
    pub fn dashes(self) -> &'static str {
        match self {
            Section::Xenguest => "-",
            Section::Implementation => "--",
        }
    }
}

/// One option of the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionDef {
    /// Its names, the canonical one first (a one-letter alias is written `-v`).
    pub names: &'static [&'static str],
    /// The name of its argument, `None` for a flag.
    pub arg: Option<&'static str>,
    /// The section it is listed in.
    pub section: Section,
    /// What it does: one paragraph, plain text.
    pub description: &'static str,
}

impl OptionDef {
    /// The option as a user writes it, e.g. `-domid N` or `-v, --verbose`.
    pub fn synopsis(&self) -> String {
        let mut names: Vec<String> = Vec::new();
        for n in self.names.iter().rev().filter(|n| n.len() == 1) {
            names.push(format!("-{n}"));
        }
        for n in self.names.iter().filter(|n| n.len() > 1) {
            names.push(format!("{}{n}", self.section.dashes()));
        }
        let mut s = names.join(", ");
        if let Some(arg) = self.arg {
            s.push(' ');
            s.push_str(arg);
        }
        s
    }
}

/// A `-mode` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeDef {
    /// The name on the command line.
    pub name: &'static str,
    /// Whether this implementation carries it out (others fail with exit status 1).
    pub supported: bool,
    /// What it is.
    pub description: &'static str,
}

/// The modes, in the order the manual lists them.
pub const MODES: &[ModeDef] = &[
    ModeDef {
        name: "hvm_build",
        supported: true,
        description: "build an HVM guest: memory, firmware (hvmloader), special pages, \
                      HVM parameters, CPUID policy",
    },
    ModeDef {
        name: "pvh_build",
        supported: true,
        description: "build a PVH guest from a kernel image and boot modules",
    },
    ModeDef {
        name: "linux_build",
        supported: true,
        description: "build a PV guest from a kernel and ramdisk",
    },
    ModeDef {
        name: "save",
        supported: false,
        description: "save or migrate a PV guest",
    },
    ModeDef {
        name: "hvm_save",
        supported: false,
        description: "save or migrate an HVM guest",
    },
    ModeDef {
        name: "restore",
        supported: false,
        description: "restore a PV guest",
    },
    ModeDef {
        name: "hvm_restore",
        supported: false,
        description: "restore an HVM guest",
    },
    ModeDef {
        name: "resume_slow",
        supported: true,
        description: "let a domain run again after a failed or cancelled suspend \
                      (libxenguest's xc_domain_resume, slow path) and write result:0 0; \
                      for a PV domain the start info's Xenstore and console frames are \
                      turned back into machine frames and the secondary vCPUs reset",
    },
    ModeDef {
        name: "listen",
        supported: false,
        description: "emu-manager protocol server used for migration",
    },
    ModeDef {
        name: "test",
        supported: true,
        description: "fails with \"test mode not supported\", as the C xenguest does",
    },
];

/// Every option the parser accepts, in the order `--help` lists them.
pub const OPTIONS: &[OptionDef] = &[
    OptionDef {
        names: &["mode"],
        arg: Some("NAME"),
        section: Section::Xenguest,
        description: "what to do; see MODES",
    },
    OptionDef {
        names: &["domid"],
        arg: Some("N"),
        section: Section::Xenguest,
        description: "the domain to build (1 to 32751)",
    },
    OptionDef {
        names: &["mem_max_mib"],
        arg: Some("M"),
        section: Section::Xenguest,
        description: "guest RAM in MiB",
    },
    OptionDef {
        names: &["mem_start_mib"],
        arg: Some("S"),
        section: Section::Xenguest,
        description: "initial allocation in MiB; S < M builds the guest with \
                      populate-on-demand",
    },
    OptionDef {
        names: &["mem_pnode"],
        arg: Some("N"),
        section: Section::Xenguest,
        description: "allocate all guest RAM on physical NUMA node N: every populate call \
                      carries XENMEMF_exact_node(N), and the build first claims its pages \
                      (the claim is released when the build ends)",
    },
    OptionDef {
        names: &["image"],
        arg: Some("FILE"),
        section: Section::Xenguest,
        description: "the firmware loader (hvmloader) of an HVM guest, the kernel of a PV \
                      or PVH guest",
    },
    OptionDef {
        names: &["store_port"],
        arg: Some("P"),
        section: Section::Xenguest,
        description: "the Xenstore event channel of the guest",
    },
    OptionDef {
        names: &["store_domid"],
        arg: Some("D"),
        section: Section::Xenguest,
        description: "the domain running xenstored (default 0)",
    },
    OptionDef {
        names: &["console_port"],
        arg: Some("P"),
        section: Section::Xenguest,
        description: "the console event channel of the guest",
    },
    OptionDef {
        names: &["console_domid"],
        arg: Some("D"),
        section: Section::Xenguest,
        description: "the console backend domain (default 0)",
    },
    OptionDef {
        names: &["pci_passthrough"],
        arg: Some("LIST"),
        section: Section::Xenguest,
        description: "comma-separated SBDFs (SSSS:BB:DD.F) of passed-through PCI devices; \
                      their reserved regions shape the memory layout",
    },
    OptionDef {
        names: &["vgpu"],
        arg: None,
        section: Section::Xenguest,
        description: "an NVIDIA vGPU is attached (bigger MMIO hole, VRAM reservation)",
    },
    OptionDef {
        names: &["force"],
        arg: None,
        section: Section::Xenguest,
        description: "skip the safety checks",
    },
    OptionDef {
        names: &["controloutfd"],
        arg: Some("FD"),
        section: Section::Xenguest,
        description: "the file descriptor the result: and error: lines are written to \
                      (default: the result goes to standard output)",
    },
    OptionDef {
        names: &["controlinfd"],
        arg: Some("FD"),
        section: Section::Xenguest,
        description: "the file descriptor xenopsd writes to (save modes only); it must be \
                      open",
    },
    OptionDef {
        names: &["debuglog"],
        arg: Some("FILE"),
        section: Section::Xenguest,
        description: "also append every log message to FILE",
    },
    OptionDef {
        names: &["supports"],
        arg: Some("FEATURE"),
        section: Section::Xenguest,
        description: "print true (for migration-v2) or false and exit at once",
    },
    OptionDef {
        names: &["cmdline"],
        arg: Some("TEXT"),
        section: Section::Xenguest,
        description: "the kernel command line (PV, PVH); each later -cmdline belongs to \
                      the next boot module, by position",
    },
    OptionDef {
        names: &["ramdisk"],
        arg: Some("FILE"),
        section: Section::Xenguest,
        description: "the initial ramdisk of a PV guest (empty: none)",
    },
    OptionDef {
        names: &["module"],
        arg: Some("FILE"),
        section: Section::Xenguest,
        description: "a PVH boot module (at most 10, repeatable)",
    },
    OptionDef {
        names: &["features"],
        arg: Some("TEXT"),
        section: Section::Xenguest,
        description: "the kernel feature string of a PV or PVH guest",
    },
    OptionDef {
        names: &["flags"],
        arg: Some("N"),
        section: Section::Xenguest,
        description: "save flags (overwrites -live and -debug given before it)",
    },
    OptionDef {
        names: &["fd"],
        arg: Some("FD"),
        section: Section::Xenguest,
        description: "the save or restore stream",
    },
    OptionDef {
        names: &["live"],
        arg: None,
        section: Section::Xenguest,
        description: "live save (flag bit 0)",
    },
    OptionDef {
        names: &["debug"],
        arg: None,
        section: Section::Xenguest,
        description: "debug save (flag bit 1)",
    },
    OptionDef {
        names: &["fake"],
        arg: None,
        section: Section::Xenguest,
        description: "accepted and ignored",
    },
    OptionDef {
        names: &["fork"],
        arg: None,
        section: Section::Xenguest,
        description: "accepted and ignored",
    },
    OptionDef {
        names: &["no_incr_generationid"],
        arg: None,
        section: Section::Xenguest,
        description: "accepted and ignored",
    },
    OptionDef {
        names: &["backend"],
        arg: Some("sim|privcmd"),
        section: Section::Implementation,
        description: "the simulated hypervisor (default) or a real Xen through \
                      /dev/xen/privcmd",
    },
    OptionDef {
        names: &["host"],
        arg: Some("FILE"),
        section: Section::Implementation,
        description: "the simulated host (TOML); default: the built-in one, a copy of \
                      which is installed as hosts/default.toml in the data directory",
    },
    OptionDef {
        names: &["store"],
        arg: Some("memory|socket"),
        section: Section::Implementation,
        description: "an in-memory Xenstore (the default with sim) or the xenstored at \
                      XENSTORED_PATH (the default with privcmd)",
    },
    OptionDef {
        names: &["platform"],
        arg: Some("KEY=VALUE"),
        section: Section::Implementation,
        description: "seed the in-memory store (repeatable); KEY is relative to the \
                      domain's platform/ directory unless it starts with platform/, \
                      hvmloader/, vm-data/ or /; the store gets vcpu/number=1 and \
                      vcpu/current=1 unless given",
    },
    OptionDef {
        names: &["platform-file"],
        arg: Some("FILE"),
        section: Section::Implementation,
        description: "KEY=VALUE lines as for --platform, '#' starts a comment \
                      (repeatable)",
    },
    OptionDef {
        names: &["sysfs-root"],
        arg: Some("DIR"),
        section: Section::Implementation,
        description: "where to read PCI devices from (default /sys)",
    },
    OptionDef {
        names: &["trace"],
        arg: Some("FILE"),
        section: Section::Implementation,
        description: "record every hypercall and Xenstore operation as JSON lines",
    },
    OptionDef {
        names: &["plan"],
        arg: None,
        section: Section::Implementation,
        description: "print the memory plan as JSON on standard output and build nothing",
    },
    OptionDef {
        names: &["populate"],
        arg: Some("compat|batched"),
        section: Section::Implementation,
        description: "issue populate calls exactly as libxenguest does (default) or in \
                      fewer, larger batches",
    },
    OptionDef {
        names: &["memory-map"],
        arg: Some("FILE"),
        section: Section::Implementation,
        description: "draw the guest physical memory map as SVG",
    },
    OptionDef {
        names: &["sim-guest"],
        arg: Some("hvm|pv"),
        section: Section::Implementation,
        description: "the suspended guest the simulator stands in for resume_slow: an \
                      HVM guest (default) or a PV guest built from the test kernel",
    },
    OptionDef {
        names: &["verbose", "v"],
        arg: None,
        section: Section::Implementation,
        description: "more log on standard error (twice: debug)",
    },
    OptionDef {
        names: &["quiet", "q"],
        arg: None,
        section: Section::Implementation,
        description: "only errors on standard error, no summary",
    },
    OptionDef {
        names: &["man"],
        arg: None,
        section: Section::Implementation,
        description: "print this manual as a man page (roff) and exit; read it with \
                      xenguest --man | man -l -",
    },
    OptionDef {
        names: &["help", "h"],
        arg: None,
        section: Section::Implementation,
        description: "print the help and exit",
    },
];

/// The one-line summary (the man page's NAME).
pub const SUMMARY: &str = "the Xen domain builder run by xenopsd";

/// The synopsis of a build, without the program name.
pub const SYNOPSIS: &str = "-mode hvm_build -domid N -mem_max_mib M -mem_start_mib S \
                            -image FILE -store_port P -console_port P [options]";

/// DESCRIPTION paragraphs.
pub const DESCRIPTION: &[&str] = &[
    "xenguest turns an empty Xen domain into a bootable guest. XenServer's toolstack \
     (xenopsd) runs it once per build with the domain already created; it lays out the \
     guest's physical memory, populates it, loads the firmware, writes the special \
     pages and HVM parameters and reports the guest frame numbers of the Xenstore and \
     console rings. This is a reimplementation of XenServer's C xenguest and of the \
     parts of libxenguest and libxenctrl it uses; its command line and result protocol \
     are those of the C program.",
    "Every option is a long option written with one or two dashes (-domid or --domid); \
     its value is the next word or follows '='; an option may be abbreviated to a \
     unique prefix. Options are processed in order and later ones overwrite earlier \
     ones; words that are not options are ignored.",
    "With --backend sim (the default) the domain lives in a simulated hypervisor, \
     created by xenguest itself as xenopsd's build_pre would (HVM with HAP, or PV for \
     linux_build; max_vcpus from platform/vcpu/number), so builds, plans and traces work \
     on any Linux machine. If -image does not exist and the backend is sim, a built-in \
     test firmware (hvm_build) or test kernel (pvh_build, linux_build) is used. \
     For resume_slow the simulator first creates the domain as an HVM guest that shut \
     down for suspend, or with --sim-guest pv builds a PV guest from the test kernel \
     that suspended itself (p2m published, ring frames turned into pfns). \
     With --backend privcmd xenguest drives a real Xen from dom0 through \
     /dev/xen/privcmd and needs root.",
];

/// OUTPUT paragraphs: the control protocol.
pub const OUTPUT: &[&str] = &[
    "A successful build writes one line, result:<store pfn> <console pfn>, to the \
     -controloutfd descriptor, or to standard output when no control descriptor was \
     given. For an HVM or PVH guest on a default layout this is result:1044476 1044479. \
     linux_build names machine frames and the guest's ABI: result:<store mfn> \
     <console mfn> x86_64-abi. resume_slow writes result:0 0.",
    "Every failure writes error:<message> lines to the same place and exits with status \
     1. xenopsd stops at the first error: line.",
    "Logs go to standard error and syslog (ident xenguest-<domid>-build), never to the \
     control descriptor; unless --quiet, a readable summary of the build is written to \
     standard error just before the result line.",
];

/// EXIT STATUS entries: (status, meaning).
pub const EXIT_STATUS: &[(&str, &str)] = &[
    (
        "0",
        "the build succeeded, or -supports, --plan, --help or --man answered",
    ),
    (
        "1",
        "the command line was invalid or the build failed; the reason is on the error: \
         line(s)",
    ),
];

/// FILES entries: (path, meaning). `@BINDIR@` and `@DATADIR@` are replaced by the
/// install paths this binary was built for.
pub const FILES: &[(&str, &str)] = &[
    (
        "@BINDIR@/xenguest",
        "the program, where xenopsd and emu-manager look for it",
    ),
    (
        "@DATADIR@/hosts/default.toml",
        "the default simulated host, a starting point for --host files",
    ),
    (
        "/dev/xen/privcmd",
        "the hypercall interface used by --backend privcmd",
    ),
    (
        "/dev/xen/xenbus",
        "the Xenstore device used when no xenstored socket is configured",
    ),
    (
        "/run/xenstored/socket",
        "the default xenstored socket of --store socket",
    ),
];

/// ENVIRONMENT entries: (variable, meaning).
pub const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "XENSTORED_PATH",
        "the xenstored socket used by --store socket (default: $XENSTORED_RUNDIR/socket, \
         else /run/xenstored/socket, else /dev/xen/xenbus)",
    ),
    (
        "XENSTORED_RUNDIR",
        "the directory of the xenstored socket when XENSTORED_PATH is not set",
    ),
];

/// EXAMPLES: (what, command line).
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "Build a 4 GiB HVM guest with two vCPUs on the simulated host:",
        "xenguest -mode hvm_build -domid 1 -mem_max_mib 4096 -mem_start_mib 4096 \
         -store_port 1 -console_port 2 -image /usr/libexec/xen/boot/hvmloader \
         --platform vcpu/number=2 --platform vcpu/current=2",
    ),
    (
        "Show the memory plan of a 1 TiB guest without building it:",
        "xenguest -mode hvm_build -domid 1 -mem_max_mib 1048576 -mem_start_mib 1048576 \
         -store_port 1 -console_port 2 -image hvmloader --plan",
    ),
    (
        "What xenopsd runs on a XenServer host (file descriptors 5 and 6 are its pipes):",
        "xenguest -controloutfd 5 -controlinfd 6 -mode hvm_build \
         -image /usr/libexec/xen/boot/hvmloader -domid 7 -store_port 3 -store_domid 0 \
         -console_port 4 -console_domid 0 -mem_max_mib 4096 -mem_start_mib 4096 \
         --backend privcmd --force",
    ),
    (
        "Let domain 7 run again after xenopsd cancelled its suspend:",
        "xenguest -controloutfd 5 -mode resume_slow -domid 7 --backend privcmd",
    ),
];

/// SEE ALSO references.
pub const SEE_ALSO: &[&str] = &["xenopsd(8)", "xl(1)", "xenstored(8)", "xenstore-read(1)"];

/// The directory the binary is installed in (set at build time by `cargo xtask dist`).
pub const BINDIR: &str = match option_env!("XENGUEST_BINDIR") {
    Some(d) => d,
    None => "/usr/libexec/xen/bin",
};

/// The directory of the installed data files (set at build time by `cargo xtask dist`).
pub const DATADIR: &str = match option_env!("XENGUEST_DATADIR") {
    Some(d) => d,
    None => "/usr/share/xenguest",
};

/// Replaces the install-path placeholders of [`FILES`].
pub fn install_path(s: &str) -> String {
    s.replace("@BINDIR@", BINDIR).replace("@DATADIR@", DATADIR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{self, ArgError, Parsed};

    fn defined(name: &str) -> Option<&'static OptionDef> {
        OPTIONS.iter().find(|o| o.names.contains(&name))
    }

    /// Whether the parser takes a value after `name`: a flag given `=x` is an error, an
    /// option with an argument given nothing after it is an error.
    fn parser_takes_arg(name: &str) -> Option<bool> {
        let exact =
            |argv: &[&str]| args::parse(&argv.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        let alone = exact(&[&format!("--{name}")]);
        let with_value = exact(&[&format!("--{name}=x")]);
        match (alone, with_value) {
            (Err(ArgError::Invalid(_)), Err(ArgError::Invalid(_))) => None,
            (Err(ArgError::Invalid(_)), _) => Some(true),
            (_, Err(ArgError::Invalid(_))) => Some(false),
            other => panic!("--{name}: cannot tell from {other:?}"),
        }
    }

    #[test]
    fn every_parser_option_is_defined_with_its_argument() {
        for name in args::option_names() {
            let def = defined(name).unwrap_or_else(|| panic!("--{name} is not in OPTIONS"));
            assert_eq!(
                parser_takes_arg(name),
                Some(def.arg.is_some()),
                "--{name}: argument disagrees with the definition"
            );
        }
    }

    #[test]
    fn every_defined_option_is_parsed() {
        let parsed: Vec<&str> = args::option_names().collect();
        for def in OPTIONS {
            for name in def.names {
                assert!(parsed.contains(name), "--{name} is defined but not parsed");
            }
        }
        let mut all: Vec<&str> = OPTIONS
            .iter()
            .flat_map(|o| o.names.iter().copied())
            .collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "a name is defined twice");
    }

    #[test]
    fn every_mode_is_parsed_and_named() {
        for m in MODES {
            let argv = vec!["-mode".to_owned(), m.name.to_owned()];
            match args::parse(&argv) {
                Ok(Parsed::Run(a)) => assert_eq!(a.mode.map(|m| m.name()), Some(m.name)),
                other => panic!("-mode {}: {other:?}", m.name),
            }
        }
    }

    #[test]
    fn synopsis_spells_aliases_and_dashes() {
        assert_eq!(defined("v").unwrap().synopsis(), "-v, --verbose");
        assert_eq!(defined("domid").unwrap().synopsis(), "-domid N");
        assert_eq!(
            defined("populate").unwrap().synopsis(),
            "--populate compat|batched"
        );
    }
}
