//! The command line, parsed the way xenguest's `getopt_long_only` does.
//!
//! Hand-written rather than clap: every option is a long option written with one or two
//! dashes, `-opt=value` and unique prefixes are accepted, options are processed in order
//! (later ones overwrite earlier ones, `-cmdline` binds to modules by position,
//! `-supports` answers the moment it is reached), non-option words are ignored, and the
//! error texts must be xenguest's own. clap models none of that without an argv rewrite
//! that would be as long as this parser.

use std::path::PathBuf;

use xg_build::cparse;

/// Build and non-build modes (§1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `save`.
    Save,
    /// `hvm_save`.
    HvmSave,
    /// `restore`.
    Restore,
    /// `hvm_restore`.
    HvmRestore,
    /// `resume_slow`.
    ResumeSlow,
    /// `linux_build` (PV).
    LinuxBuild,
    /// `hvm_build`.
    HvmBuild,
    /// `pvh_build`.
    PvhBuild,
    /// `test`.
    Test,
    /// `listen`.
    Listen,
}

impl Mode {
    fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "save" => Mode::Save,
            "hvm_save" => Mode::HvmSave,
            "restore" => Mode::Restore,
            "hvm_restore" => Mode::HvmRestore,
            "resume_slow" => Mode::ResumeSlow,
            "linux_build" => Mode::LinuxBuild,
            "hvm_build" => Mode::HvmBuild,
            "pvh_build" => Mode::PvhBuild,
            "test" => Mode::Test,
            "listen" => Mode::Listen,
            _ => return None,
        })
    }

    /// The mode's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Save => "save",
            Mode::HvmSave => "hvm_save",
            Mode::Restore => "restore",
            Mode::HvmRestore => "hvm_restore",
            Mode::ResumeSlow => "resume_slow",
            Mode::LinuxBuild => "linux_build",
            Mode::HvmBuild => "hvm_build",
            Mode::PvhBuild => "pvh_build",
            Mode::Test => "test",
            Mode::Listen => "listen",
        }
    }

    /// The syslog ident suffix (§1.6 step 3).
    pub fn ident_suffix(self) -> &'static str {
        match self {
            Mode::Save | Mode::HvmSave => "-save",
            Mode::Listen => "-emp",
            Mode::Restore | Mode::HvmRestore => "-restore",
            Mode::ResumeSlow => "-resume",
            Mode::LinuxBuild | Mode::HvmBuild | Mode::PvhBuild => "-build",
            Mode::Test => "",
        }
    }
}

/// Which hypervisor backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The in-process simulator.
    Sim,
    /// A real Xen through `/dev/xen/privcmd`.
    Privcmd,
}

/// Which Xenstore to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// In-memory, seeded from `--platform`.
    Memory,
    /// A running xenstored (`XENSTORED_PATH`).
    Socket,
}

/// How meminit issues populate calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Populate {
    /// Exactly libxenguest's calls.
    Compat,
    /// Fewer, larger calls.
    Batched,
}

/// The guest the simulator stands in for `resume_slow` (`--sim-guest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimGuest {
    /// An HVM guest that shut down for suspend.
    Hvm,
    /// A 64-bit PV guest built from the test kernel that suspended itself.
    Pv,
}

/// Everything the command line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// `-mode`.
    pub mode: Option<Mode>,
    /// `-controlinfd`.
    pub control_in_fd: i32,
    /// `-controloutfd`.
    pub control_out_fd: i32,
    /// `-debuglog` (the last one).
    pub debuglog: Option<PathBuf>,
    /// `-fd`.
    pub stream_fd: i32,
    /// `-image`.
    pub image: Option<String>,
    /// First `-cmdline`.
    pub cmdline: Option<String>,
    /// Later `-cmdline`s, one per module position.
    pub module_cmdlines: Vec<String>,
    /// `-ramdisk`.
    pub ramdisk: Option<String>,
    /// `-domid`.
    pub domid: i32,
    /// `-live`/`-debug`/`-flags` bits.
    pub flags: i32,
    /// `-store_port`.
    pub store_port: i32,
    /// `-store_domid`.
    pub store_domid: i32,
    /// `-console_port`.
    pub console_port: i32,
    /// `-console_domid`.
    pub console_domid: i32,
    /// `-features`.
    pub features: Option<String>,
    /// `-mem_max_mib`.
    pub mem_max_mib: i32,
    /// `-mem_start_mib`.
    pub mem_start_mib: i32,
    /// `-mem_pnode`.
    pub mem_pnode: Option<i32>,
    /// `-pci_passthrough`.
    pub pci_passthrough: Option<String>,
    /// `-force`.
    pub force: bool,
    /// `-vgpu`.
    pub vgpu: bool,
    /// `-module` paths.
    pub modules: Vec<String>,
    /// `--backend`.
    pub backend: Backend,
    /// `--host`.
    pub host: Option<PathBuf>,
    /// `--store`.
    pub store: Option<StoreKind>,
    /// `--platform KEY=VALUE`, in order.
    pub platform: Vec<(String, String)>,
    /// `--platform-file`.
    pub platform_files: Vec<PathBuf>,
    /// `--trace`.
    pub trace: Option<PathBuf>,
    /// `--plan`.
    pub plan: bool,
    /// `--populate`.
    pub populate: Populate,
    /// `--memory-map`.
    pub memory_map: Option<PathBuf>,
    /// `--sim-guest`.
    pub sim_guest: SimGuest,
    /// `--sysfs-root`.
    pub sysfs_root: Option<PathBuf>,
    /// `-v` count.
    pub verbose: u8,
    /// `-q`.
    pub quiet: bool,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            mode: None,
            control_in_fd: -1,
            control_out_fd: -1,
            debuglog: None,
            stream_fd: -1,
            image: None,
            cmdline: None,
            module_cmdlines: Vec::new(),
            ramdisk: None,
            domid: -1,
            flags: 0,
            store_port: -1,
            store_domid: 0,
            console_port: -1,
            console_domid: 0,
            features: None,
            mem_max_mib: -1,
            mem_start_mib: -1,
            mem_pnode: None,
            pci_passthrough: None,
            force: false,
            vgpu: false,
            modules: Vec::new(),
            backend: Backend::Sim,
            host: None,
            store: None,
            platform: Vec::new(),
            platform_files: Vec::new(),
            trace: None,
            plan: false,
            populate: Populate::Compat,
            memory_map: None,
            sim_guest: SimGuest::Hvm,
            sysfs_root: None,
            verbose: 0,
            quiet: false,
        }
    }
}

/// What parsing produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Run with these arguments.
    Run(Box<Args>),
    /// `-supports <feature>`: print the answer and exit 0.
    Supports(bool),
    /// `--help`.
    Help,
    /// `--man`: print the manual page.
    Man,
}

/// A command-line error, worded as xenguest words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgError {
    /// Unknown option, missing or unexpected argument.
    #[error("xenguest: invalid command line '{0}'")]
    Invalid(String),
    /// A bad integer.
    #[error("xenguest: '{0}' is not a valid integer")]
    BadInt(String),
    /// An unknown mode.
    #[error("xenguest: unrecognized mode '{0}'")]
    BadMode(String),
    /// A bad value of one of our own options.
    #[error("xenguest: invalid value '{value}' for --{option}")]
    BadValue {
        /// The option.
        option: &'static str,
        /// The value.
        value: String,
    },
    /// More than `PVH_MODULE_MAX` modules.
    #[error("xenguest: too many modules (maximum {0})")]
    TooManyModules(usize),
}

/// `PVH_MODULE_MAX`.
pub const PVH_MODULE_MAX: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    Mode,
    ControlInFd,
    ControlOutFd,
    DebugLog,
    Fake,
    Fd,
    Image,
    Cmdline,
    Ramdisk,
    Domid,
    Live,
    Debug,
    StorePort,
    StoreDomid,
    ConsolePort,
    ConsoleDomid,
    Features,
    Flags,
    MemMaxMib,
    MemStartMib,
    Fork,
    NoIncrGenerationId,
    Supports,
    PciPassthrough,
    Force,
    Vgpu,
    Module,
    MemPnode,
    Backend,
    Host,
    Store,
    Platform,
    PlatformFile,
    Trace,
    Plan,
    Populate,
    MemoryMap,
    SimGuest,
    SysfsRoot,
    Verbose,
    Quiet,
    Help,
    Man,
}

/// (name, takes an argument, option).
const OPTIONS: &[(&str, bool, Opt)] = &[
    ("mode", true, Opt::Mode),
    ("controlinfd", true, Opt::ControlInFd),
    ("controloutfd", true, Opt::ControlOutFd),
    ("debuglog", true, Opt::DebugLog),
    ("fake", false, Opt::Fake),
    ("fd", true, Opt::Fd),
    ("image", true, Opt::Image),
    ("cmdline", true, Opt::Cmdline),
    ("ramdisk", true, Opt::Ramdisk),
    ("domid", true, Opt::Domid),
    ("live", false, Opt::Live),
    ("debug", false, Opt::Debug),
    ("store_port", true, Opt::StorePort),
    ("store_domid", true, Opt::StoreDomid),
    ("console_port", true, Opt::ConsolePort),
    ("console_domid", true, Opt::ConsoleDomid),
    ("features", true, Opt::Features),
    ("flags", true, Opt::Flags),
    ("mem_max_mib", true, Opt::MemMaxMib),
    ("mem_start_mib", true, Opt::MemStartMib),
    ("fork", false, Opt::Fork),
    ("no_incr_generationid", false, Opt::NoIncrGenerationId),
    ("supports", true, Opt::Supports),
    ("pci_passthrough", true, Opt::PciPassthrough),
    ("force", false, Opt::Force),
    ("vgpu", false, Opt::Vgpu),
    ("module", true, Opt::Module),
    ("mem_pnode", true, Opt::MemPnode),
    ("backend", true, Opt::Backend),
    ("host", true, Opt::Host),
    ("store", true, Opt::Store),
    ("platform", true, Opt::Platform),
    ("platform-file", true, Opt::PlatformFile),
    ("trace", true, Opt::Trace),
    ("plan", false, Opt::Plan),
    ("populate", true, Opt::Populate),
    ("memory-map", true, Opt::MemoryMap),
    ("sim-guest", true, Opt::SimGuest),
    ("sysfs-root", true, Opt::SysfsRoot),
    ("verbose", false, Opt::Verbose),
    ("v", false, Opt::Verbose),
    ("quiet", false, Opt::Quiet),
    ("q", false, Opt::Quiet),
    ("help", false, Opt::Help),
    ("h", false, Opt::Help),
    ("man", false, Opt::Man),
];

/// Every option name the parser accepts (without dashes), for the checks of the
/// option definitions that `--help` and the man page are rendered from.
#[cfg(test)]
pub fn option_names() -> impl Iterator<Item = &'static str> {
    OPTIONS.iter().map(|(n, _, _)| *n)
}

/// `XCFLAGS_LIVE`.
const XCFLAGS_LIVE: i32 = 1 << 0;
/// `XCFLAGS_DEBUG`.
const XCFLAGS_DEBUG: i32 = 1 << 1;

/// Finds an option by exact name, else by unique prefix (getopt's rule).
fn lookup(name: &str) -> Option<(bool, Opt)> {
    if let Some(&(_, arg, opt)) = OPTIONS.iter().find(|(n, _, _)| *n == name) {
        return Some((arg, opt));
    }
    let mut found = OPTIONS.iter().filter(|(n, _, _)| n.starts_with(name));
    match (found.next(), found.next()) {
        (Some(&(_, arg, opt)), None) if !name.is_empty() => Some((arg, opt)),
        _ => None,
    }
}

fn int(s: &str) -> Result<i32, ArgError> {
    cparse::cli_int(s).ok_or_else(|| ArgError::BadInt(s.to_owned()))
}

/// Parses argv (without the program name). `argv` elements are taken as given.
pub fn parse(argv: &[String]) -> Result<Parsed, ArgError> {
    let mut a = Args::default();
    let mut i = 0;
    let mut ncmdlines = 0usize;
    while i < argv.len() {
        let arg = &argv[i];
        i += 1;
        if arg == "--" {
            break;
        }
        let body = if let Some(b) = arg.strip_prefix("--") {
            b
        } else if let Some(b) = arg.strip_prefix('-') {
            if b.is_empty() {
                continue; // a lone "-" is a non-option word
            }
            b
        } else {
            continue; // non-option words are ignored (getopt permutes them away)
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (body, None),
        };
        let Some((takes_arg, opt)) = lookup(name) else {
            return Err(ArgError::Invalid(arg.clone()));
        };
        let value = if takes_arg {
            match inline {
                Some(v) => v,
                None => match argv.get(i) {
                    Some(v) => {
                        i += 1;
                        v.clone()
                    }
                    None => return Err(ArgError::Invalid(arg.clone())),
                },
            }
        } else {
            if inline.is_some() {
                return Err(ArgError::Invalid(arg.clone()));
            }
            String::new()
        };
        match opt {
            Opt::Mode => {
                a.mode = Some(Mode::parse(&value).ok_or(ArgError::BadMode(value))?);
            }
            Opt::ControlInFd => a.control_in_fd = int(&value)?,
            Opt::ControlOutFd => a.control_out_fd = int(&value)?,
            Opt::DebugLog => a.debuglog = Some(PathBuf::from(value)),
            Opt::Fake | Opt::Fork | Opt::NoIncrGenerationId => {}
            Opt::Fd => a.stream_fd = int(&value)?,
            Opt::Image => a.image = Some(value),
            Opt::Cmdline => {
                if ncmdlines == 0 {
                    a.cmdline = Some(value);
                } else {
                    a.module_cmdlines.push(value);
                }
                ncmdlines += 1;
            }
            Opt::Ramdisk => a.ramdisk = Some(value),
            Opt::Domid => a.domid = int(&value)?,
            Opt::Live => a.flags |= XCFLAGS_LIVE,
            Opt::Debug => a.flags |= XCFLAGS_DEBUG,
            Opt::StorePort => a.store_port = int(&value)?,
            Opt::StoreDomid => a.store_domid = int(&value)?,
            Opt::ConsolePort => a.console_port = int(&value)?,
            Opt::ConsoleDomid => a.console_domid = int(&value)?,
            Opt::Features => a.features = Some(value),
            Opt::Flags => a.flags = int(&value)?,
            Opt::MemMaxMib => a.mem_max_mib = int(&value)?,
            Opt::MemStartMib => a.mem_start_mib = int(&value)?,
            Opt::Supports => return Ok(Parsed::Supports(value == "migration-v2")),
            Opt::PciPassthrough => a.pci_passthrough = Some(value),
            Opt::Force => a.force = true,
            Opt::Vgpu => a.vgpu = true,
            Opt::Module => {
                if a.modules.len() == PVH_MODULE_MAX {
                    return Err(ArgError::TooManyModules(PVH_MODULE_MAX));
                }
                a.modules.push(value);
            }
            Opt::MemPnode => a.mem_pnode = Some(int(&value)?),
            Opt::Backend => {
                a.backend = match value.as_str() {
                    "sim" => Backend::Sim,
                    "privcmd" => Backend::Privcmd,
                    _ => {
                        return Err(ArgError::BadValue {
                            option: "backend",
                            value,
                        })
                    }
                }
            }
            Opt::Host => a.host = Some(PathBuf::from(value)),
            Opt::Store => {
                a.store = Some(match value.as_str() {
                    "memory" => StoreKind::Memory,
                    "socket" => StoreKind::Socket,
                    _ => {
                        return Err(ArgError::BadValue {
                            option: "store",
                            value,
                        })
                    }
                })
            }
            Opt::Platform => match value.split_once('=') {
                Some((k, v)) if !k.is_empty() => a.platform.push((k.to_owned(), v.to_owned())),
                _ => {
                    return Err(ArgError::BadValue {
                        option: "platform",
                        value,
                    })
                }
            },
            Opt::PlatformFile => a.platform_files.push(PathBuf::from(value)),
            Opt::Trace => a.trace = Some(PathBuf::from(value)),
            Opt::Plan => a.plan = true,
            Opt::Populate => {
                a.populate = match value.as_str() {
                    "compat" => Populate::Compat,
                    "batched" => Populate::Batched,
                    _ => {
                        return Err(ArgError::BadValue {
                            option: "populate",
                            value,
                        })
                    }
                }
            }
            Opt::MemoryMap => a.memory_map = Some(PathBuf::from(value)),
            Opt::SimGuest => {
                a.sim_guest = match value.as_str() {
                    "hvm" => SimGuest::Hvm,
                    "pv" => SimGuest::Pv,
                    _ => {
                        return Err(ArgError::BadValue {
                            option: "sim-guest",
                            value,
                        })
                    }
                }
            }
            Opt::SysfsRoot => a.sysfs_root = Some(PathBuf::from(value)),
            Opt::Verbose => a.verbose = a.verbose.saturating_add(1),
            Opt::Quiet => a.quiet = true,
            Opt::Help => return Ok(Parsed::Help),
            Opt::Man => return Ok(Parsed::Man),
        }
    }
    Ok(Parsed::Run(Box::new(a)))
}

impl Args {
    /// Whether every option the mode requires is present (§1.3); `false` means
    /// `missing command line options`.
    pub fn has_required(&self) -> bool {
        let Some(mode) = self.mode else { return true };
        let domid = self.domid != -1;
        let ports = self.store_port != -1 && self.console_port != -1;
        let mem = self.mem_max_mib != -1 && self.mem_start_mib != -1;
        let fd = self.stream_fd != -1;
        match mode {
            Mode::Save | Mode::HvmSave => domid && fd,
            Mode::Restore | Mode::HvmRestore => domid && fd && ports,
            Mode::ResumeSlow => domid,
            Mode::LinuxBuild => {
                domid
                    && mem
                    && self.image.is_some()
                    && self.ramdisk.is_some()
                    && self.cmdline.is_some()
                    && self.features.is_some()
                    && ports
            }
            Mode::HvmBuild => domid && mem && self.image.is_some() && ports,
            Mode::PvhBuild => {
                domid
                    && mem
                    && self.image.is_some()
                    && self.cmdline.is_some()
                    && self.features.is_some()
                    && ports
            }
            Mode::Test | Mode::Listen => true,
        }
    }

    /// The syslog ident: `xenguest-<domid><suffix>`, or `xenguest` without a domid.
    pub fn syslog_ident(&self) -> String {
        if self.domid >= 0 {
            let suffix = self.mode.map_or("", Mode::ident_suffix);
            let mut s = format!("xenguest-{}{suffix}", self.domid);
            s.truncate(31); // the C ident buffer is 32 bytes
            s
        } else {
            "xenguest".to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Parsed, ArgError> {
        parse(&args.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    fn run(args: &[&str]) -> Args {
        match p(args).unwrap() {
            Parsed::Run(a) => *a,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn xenopsd_argv() {
        let a = run(&[
            "-controloutfd",
            "5",
            "-controlinfd",
            "6",
            "-mode",
            "hvm_build",
            "-image",
            "/usr/libexec/xen/boot/hvmloader",
            "-vgpu",
            "-domid",
            "7",
            "-store_port",
            "3",
            "-store_domid",
            "0",
            "-console_port",
            "4",
            "-console_domid",
            "0",
            "-mem_max_mib",
            "4096",
            "-mem_start_mib",
            "2048",
            "-mem_pnode",
            "1",
            "--force",
            "-pci_passthrough",
            "0000:03:00.0,0000:04:00.0",
        ]);
        assert_eq!(a.mode, Some(Mode::HvmBuild));
        assert_eq!((a.control_out_fd, a.control_in_fd), (5, 6));
        assert_eq!((a.domid, a.store_port, a.console_port), (7, 3, 4));
        assert_eq!(
            (a.mem_max_mib, a.mem_start_mib, a.mem_pnode),
            (4096, 2048, Some(1))
        );
        assert!(a.vgpu && a.force);
        assert!(a.has_required());
        assert_eq!(a.syslog_ident(), "xenguest-7-build");
    }

    #[test]
    fn dashes_equals_and_prefixes() {
        let a = run(&[
            "--mode=hvm_build",
            "-dom=3",
            "--store_p",
            "1",
            "stray",
            "-fake",
        ]);
        assert_eq!((a.domid, a.store_port), (3, 1));
        assert_eq!(p(&["-mem", "1"]), Err(ArgError::Invalid("-mem".into())));
        assert_eq!(p(&["-bogus"]), Err(ArgError::Invalid("-bogus".into())));
        assert_eq!(p(&["-domid"]), Err(ArgError::Invalid("-domid".into())));
        assert_eq!(p(&["-force=1"]), Err(ArgError::Invalid("-force=1".into())));
        assert_eq!(p(&["-domid", "1x"]), Err(ArgError::BadInt("1x".into())));
        assert_eq!(
            p(&["-mode", "pv_build"]),
            Err(ArgError::BadMode("pv_build".into()))
        );
        assert_eq!(run(&["-domid", ""]).domid, 0);
    }

    #[test]
    fn supports_acts_immediately() {
        assert_eq!(
            p(&["-supports", "migration-v2", "-bogus"]),
            Ok(Parsed::Supports(true))
        );
        assert_eq!(p(&["-supports", "x"]), Ok(Parsed::Supports(false)));
    }

    #[test]
    fn cmdlines_bind_by_position() {
        let a = run(&[
            "-cmdline", "k", "-module", "m0", "-module", "m1", "-cmdline", "c1",
        ]);
        assert_eq!(a.cmdline.as_deref(), Some("k"));
        assert_eq!(a.module_cmdlines, vec!["c1".to_owned()]);
        assert_eq!(a.modules.len(), 2);
    }

    #[test]
    fn flags_overwrite_live_debug() {
        assert_eq!(run(&["-live", "-debug"]).flags, 3);
        assert_eq!(run(&["-live", "-flags", "0"]).flags, 0);
    }

    #[test]
    fn required_options() {
        let a = run(&["-mode", "hvm_build", "-domid", "1"]);
        assert!(!a.has_required());
        assert!(run(&["-mode", "resume_slow", "-domid", "1"]).has_required());
    }
}
