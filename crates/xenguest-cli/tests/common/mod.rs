//! What the binary's integration tests share: a runner of `xenguest` on the simulator and
//! the build command lines xenopsd writes, with the values a test may change.
//!
//! Every integration test is its own crate and uses only part of this module, hence the
//! `dead_code` allowance.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fmt::Display;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_xenguest");

/// Runs the binary on the simulator (no `XENSTORED_PATH`, nothing on stdin) and waits.
pub fn xenguest<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Command::new(BIN)
        .args(args)
        .env_remove("XENSTORED_PATH")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Captured output as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Owned copies of argv words.
pub fn argv<S: AsRef<str>>(words: &[S]) -> Vec<String> {
    words.iter().map(|w| w.as_ref().to_owned()).collect()
}

/// Writes two PVH modules into `dir`, `m0` (the 11 bytes `module zero`) and `m1` (9000
/// zero bytes), and returns their words: `-module m0 -cmdline zero -module m1`.
pub fn two_modules(dir: &Path) -> Vec<String> {
    let m0 = dir.join("m0");
    let m1 = dir.join("m1");
    std::fs::write(&m0, b"module zero").unwrap();
    std::fs::write(&m1, vec![0u8; 9000]).unwrap();
    argv(&[
        "-module",
        m0.to_str().unwrap(),
        "-cmdline",
        "zero",
        "-module",
        m1.to_str().unwrap(),
    ])
}

/// The build modes xenopsd runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `-mode hvm_build`.
    Hvm,
    /// `-mode pvh_build`.
    Pvh,
    /// `-mode linux_build` (PV).
    Pv,
}

impl Mode {
    fn word(self) -> &'static str {
        match self {
            Mode::Hvm => "hvm_build",
            Mode::Pvh => "pvh_build",
            Mode::Pv => "linux_build",
        }
    }
}

/// A build command line: xenopsd's words by default, each value replaceable, then any
/// extra words. [`Build::argv`] writes the words in one fixed order per mode.
#[derive(Clone, Debug)]
pub struct Build {
    mode: Mode,
    /// `-controloutfd`, `-controlinfd`, written first when set.
    control_fds: Option<(u32, u32)>,
    domid: u32,
    image: String,
    cmdline: Option<String>,
    ramdisk: Option<String>,
    mem_max_mib: u64,
    mem_start_mib: u64,
    extra: Vec<String>,
    /// Flags of the build's own words to leave out.
    omitted: Vec<&'static str>,
}

impl Build {
    fn new(mode: Mode, domid: u32, image: &str, (max, start): (u64, u64)) -> Build {
        Build {
            mode,
            control_fds: None,
            domid,
            image: image.to_owned(),
            cmdline: None,
            ramdisk: None,
            mem_max_mib: max,
            mem_start_mib: start,
            extra: Vec::new(),
            omitted: Vec::new(),
        }
    }

    /// Domain 2, 1024 MiB, a firmware path that does not exist (so every machine uses
    /// the built-in test firmware).
    pub fn hvm() -> Build {
        Build::new(Mode::Hvm, 2, "/nonexistent/hvmloader", (1024, 1024))
    }

    /// Domain 3, 512 MiB, `image`, `console=hvc0`.
    pub fn pvh(image: &str) -> Build {
        Build::new(Mode::Pvh, 3, image, (512, 512)).cmdline("console=hvc0")
    }

    /// Domain 5, 256 MiB at most and 128 MiB at start, `image`, no ramdisk (`""`), a
    /// root-device command line.
    pub fn pv(image: &str) -> Build {
        Build::new(Mode::Pv, 5, image, (256, 128))
            .cmdline("root=/dev/xvda1 console=hvc0")
            .ramdisk("")
    }

    /// The domain to build.
    pub fn domid(mut self, domid: u32) -> Build {
        self.domid = domid;
        self
    }

    /// `-mem_max_mib` and `-mem_start_mib`.
    pub fn memory_mib(mut self, max: u64, start: u64) -> Build {
        self.mem_max_mib = max;
        self.mem_start_mib = start;
        self
    }

    /// The firmware (HVM) or kernel (PVH, PV).
    pub fn image(mut self, path: &str) -> Build {
        self.image = path.to_owned();
        self
    }

    /// The kernel command line (PVH, PV).
    pub fn cmdline(mut self, cmdline: &str) -> Build {
        self.cmdline = Some(cmdline.to_owned());
        self
    }

    /// The PV ramdisk; `""` is xenopsd's word for none.
    pub fn ramdisk(mut self, path: &str) -> Build {
        self.ramdisk = Some(path.to_owned());
        self
    }

    /// Leaves `flag` and its value out of the build's own words (not out of
    /// [`Build::args`]): for tests of a missing option.
    pub fn without(mut self, flag: &'static str) -> Build {
        self.omitted.push(flag);
        self
    }

    /// Passes the control channel as `-controloutfd out -controlinfd input`.
    pub fn control_fds(mut self, out: u32, input: u32) -> Build {
        self.control_fds = Some((out, input));
        self
    }

    /// Words after the build's own ones.
    pub fn args<S: AsRef<str>>(mut self, words: &[S]) -> Build {
        self.extra.extend(argv(words));
        self
    }

    /// The command line.
    pub fn argv(&self) -> Vec<String> {
        let mut w = Words {
            words: Vec::new(),
            omitted: &self.omitted,
        };
        if let Some((out, input)) = self.control_fds {
            w.put("-controloutfd", out);
            w.put("-controlinfd", input);
        }
        w.put("-mode", self.mode.word());
        w.put("-domid", self.domid);
        let memory = [
            ("-mem_max_mib", self.mem_max_mib),
            ("-mem_start_mib", self.mem_start_mib),
        ];
        let ports = [("-store_port", 1), ("-console_port", 2)];
        match self.mode {
            Mode::Hvm => {
                w.put_all(memory);
                w.put_all(ports);
                w.put("-image", &self.image);
            }
            Mode::Pvh | Mode::Pv => {
                w.put("-image", &self.image);
                w.put_some("-cmdline", &self.cmdline);
                w.put_some("-ramdisk", &self.ramdisk);
                w.put("-features", "");
                w.put("-flags", 0);
                w.put_all(ports);
                w.put_all(memory);
            }
        }
        w.words.extend(self.extra.iter().cloned());
        w.words
    }

    /// Runs the binary with this command line.
    pub fn run(&self) -> Output {
        xenguest(self.argv())
    }
}

/// Argv words, written as flag and value pairs unless the flag is omitted.
struct Words<'a> {
    words: Vec<String>,
    omitted: &'a [&'static str],
}

impl Words<'_> {
    fn put(&mut self, flag: &str, value: impl Display) {
        if !self.omitted.contains(&flag) {
            self.words.push(flag.to_owned());
            self.words.push(value.to_string());
        }
    }

    fn put_all<T: Display>(&mut self, pairs: impl IntoIterator<Item = (&'static str, T)>) {
        for (flag, value) in pairs {
            self.put(flag, value);
        }
    }

    fn put_some(&mut self, flag: &str, value: &Option<String>) {
        if let Some(value) = value {
            self.put(flag, value);
        }
    }
}
