//! `cargo xtask dist`: a release build of `xenguest` packaged three ways, a tarball,
//! a Debian package and an RPM, all with the same files:
//!
//! | file | default path |
//! |---|---|
//! | the binary | `/usr/libexec/xen/bin/xenguest` (where xenopsd and emu-manager run it) |
//! | the man page | `/usr/share/man/man1/xenguest.1.gz` (from `xenguest --man`) |
//! | README, CHANGELOG, licences | `/usr/share/doc/xenguest/` |
//! | the default simulated host | `/usr/share/xenguest/hosts/default.toml` |
//!
//! The packages are made by the distributions' own tools, `dpkg-deb` and `rpmbuild`
//! (Debian's `rpm` package), from templates in `packaging/`: they are what Debian and
//! XenServer build their own packages with, so the results are canonical, and xtask
//! needs no packaging crate compiled into every CI run. `rpmbuild` only wraps the
//! prebuilt, staged tree (no `%build`).
//!
//! [`ci_check`] is the CI step: it installs the .deb with `dpkg -i`, runs the installed
//! binary (`--help` and a simulated build on the installed host file), removes it with
//! `dpkg -r`, and compares the .rpm's and the tarball's contents with the staged list.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, ensure, Context, Result};

use crate::util::{cargo, ensure_debian_packages, run, stdout_of, workspace_root};

/// The package version: the workspace's.
const VERSION: &str = env!("CARGO_PKG_VERSION");

const USAGE: &str = "\
usage: cargo xtask dist [--prefix DIR] [--bindir DIR] [--datadir DIR] [--out DIR] [--no-rpm]

  --prefix DIR   install prefix (default /usr)
  --bindir DIR   directory of the xenguest binary (default PREFIX/libexec/xen/bin,
                 XenServer's path)
  --datadir DIR  directory of the data files (default PREFIX/share/xenguest)
  --out DIR      where the packages go (default TARGET/dist)
  --no-rpm       skip the RPM (no rpmbuild needed)
  --check        what CI runs: default layout, then install the .deb, run xenguest,
                 remove it, and check the .rpm's and the tarball's file lists (root)
";

/// The install paths, all absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The binary's directory.
    pub bindir: String,
    /// Data files: `hosts/default.toml`.
    pub datadir: String,
    /// The man page root (`man1/` below it).
    pub mandir: String,
    /// README, CHANGELOG, licences.
    pub docdir: String,
}

impl Layout {
    /// The layout under `prefix`, with XenServer's binary path for `/usr`.
    pub fn under(prefix: &str) -> Layout {
        let prefix = prefix.trim_end_matches('/');
        Layout {
            bindir: format!("{prefix}/libexec/xen/bin"),
            datadir: format!("{prefix}/share/xenguest"),
            mandir: format!("{prefix}/share/man"),
            docdir: format!("{prefix}/share/doc/xenguest"),
        }
    }

    fn check(&self) -> Result<()> {
        for dir in [&self.bindir, &self.datadir, &self.mandir, &self.docdir] {
            ensure!(
                dir.starts_with('/') && !dir.split('/').any(|c| c == ".." || c == "."),
                "Install directory '{dir}' is not a plain absolute path"
            );
        }
        Ok(())
    }
}

/// Options of `cargo xtask dist`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Options {
    layout: Layout,
    out: Option<PathBuf>,
    rpm: bool,
}

fn parse_args(args: &[String]) -> Result<Options> {
    let mut prefix = "/usr".to_owned();
    let (mut bindir, mut datadir, mut out) = (None, None, None);
    let mut rpm = true;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .with_context(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--prefix" => prefix = value("--prefix")?,
            "--bindir" => bindir = Some(value("--bindir")?),
            "--datadir" => datadir = Some(value("--datadir")?),
            "--out" => out = Some(PathBuf::from(value("--out")?)),
            "--no-rpm" => rpm = false,
            "-h" | "--help" => {
                print!("{USAGE}");
                bail!("help shown");
            }
            other => {
                eprint!("{USAGE}");
                bail!("unknown dist option '{other}'");
            }
        }
    }
    let mut layout = Layout::under(&prefix);
    if let Some(b) = bindir {
        layout.bindir = b.trim_end_matches('/').to_owned();
    }
    if let Some(d) = datadir {
        layout.datadir = d.trim_end_matches('/').to_owned();
    }
    layout.check()?;
    Ok(Options { layout, out, rpm })
}

/// What a dist run produced.
#[derive(Debug)]
pub struct Artifacts {
    /// Installed files, absolute paths, sorted.
    pub files: Vec<String>,
    /// Directories the packages own, absolute paths.
    pub owned_dirs: Vec<String>,
    /// `xenguest-VERSION-ARCH.tar.gz`.
    pub tarball: PathBuf,
    /// `xenguest_VERSION-1_ARCH.deb`.
    pub deb: PathBuf,
    /// `xenguest-VERSION-1.ARCH.rpm`, unless skipped.
    pub rpm: Option<PathBuf>,
}

/// The cargo target directory (honours `CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// `cargo xtask dist`.
pub fn run_cmd(args: &[String]) -> Result<()> {
    if args.iter().any(|a| a == "--check") {
        ensure!(args.len() == 1, "--check takes no other options");
        return ci_check();
    }
    let opts = match parse_args(args) {
        Err(e) if e.to_string() == "help shown" => return Ok(()),
        other => other?,
    };
    let out = opts
        .out
        .clone()
        .unwrap_or_else(|| target_dir().join("dist"));
    let a = build_all(&opts.layout, &out, opts.rpm)?;
    println!("{}", a.tarball.display());
    println!("{}", a.deb.display());
    if let Some(rpm) = &a.rpm {
        println!("{}", rpm.display());
    }
    Ok(())
}

/// Builds the release binary for `layout` and returns its path.
fn release_binary(layout: &Layout) -> Result<PathBuf> {
    let mut c = cargo();
    c.args([
        "build",
        "--release",
        "--package",
        "xenguest-cli",
        "--bin",
        "xenguest",
    ]);
    // The man page's FILES section names the install paths. Only non-default paths are
    // passed, so the default build is the same one `cargo build --release` makes.
    let default = Layout::under("/usr");
    if layout.bindir != default.bindir {
        c.env("XENGUEST_BINDIR", &layout.bindir);
    }
    if layout.datadir != default.datadir {
        c.env("XENGUEST_DATADIR", &layout.datadir);
    }
    run(&mut c)?;
    let bin = target_dir().join("release").join("xenguest");
    ensure!(bin.is_file(), "cargo built no {}", bin.display());
    Ok(bin)
}

fn staged(stage: &Path, abs: &str) -> PathBuf {
    stage.join(abs.trim_start_matches('/'))
}

fn install_file(stage: &Path, abs: &str, from: &Path, mode: u32) -> Result<()> {
    let dest = staged(stage, abs);
    if let Some(dir) = dest.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::copy(from, &dest)
        .with_context(|| format!("Copying {} to {} failed", from.display(), dest.display()))?;
    fs::set_permissions(&dest, fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Fills the staged tree and returns the installed files (absolute paths, sorted).
fn stage_tree(layout: &Layout, bin: &Path, stage: &Path) -> Result<Vec<String>> {
    if stage.exists() {
        fs::remove_dir_all(stage)?;
    }
    fs::create_dir_all(stage)?;
    let root = workspace_root();
    let mut files = Vec::new();

    let bin_path = format!("{}/xenguest", layout.bindir);
    install_file(stage, &bin_path, bin, 0o755)?;
    // Symbols are not needed on a dom0; the unstripped binary stays in the target dir.
    if Command::new("strip").arg("--version").output().is_ok() {
        run(Command::new("strip")
            .arg("--strip-unneeded")
            .arg(staged(stage, &bin_path)))?;
    }
    files.push(bin_path.clone());

    // The man page comes from the staged binary itself: the same option table as --help.
    let man = stdout_of(Command::new(staged(stage, &bin_path)).arg("--man"))?;
    ensure!(
        man.contains(".TH XENGUEST 1"),
        "xenguest --man printed no man page"
    );
    let man_path = format!("{}/man1/xenguest.1", layout.mandir);
    let man_file = staged(stage, &man_path);
    fs::create_dir_all(man_file.parent().context("man page path has no parent")?)?;
    fs::write(&man_file, man)?;
    run(Command::new("gzip").arg("-9nf").arg(&man_file))?;
    let man_gz = format!("{man_path}.gz");
    fs::set_permissions(staged(stage, &man_gz), fs::Permissions::from_mode(0o644))?;
    files.push(man_gz);

    for (name, from) in [
        ("README.md", root.join("README.md")),
        ("CHANGELOG.md", root.join("CHANGELOG.md")),
        ("LICENSE-MIT", root.join("LICENSE-MIT")),
        ("LICENSE-APACHE", root.join("LICENSE-APACHE")),
        ("copyright", root.join("packaging/debian/copyright")),
    ] {
        let path = format!("{}/{name}", layout.docdir);
        install_file(stage, &path, &from, 0o644)?;
        files.push(path);
    }

    let host = format!("{}/hosts/default.toml", layout.datadir);
    install_file(
        stage,
        &host,
        &root.join("crates/xg-ctrl/hosts/default.toml"),
        0o644,
    )?;
    files.push(host);

    files.sort();
    Ok(files)
}

/// The directories that belong to this package alone (removed with it).
fn owned_dirs(layout: &Layout) -> Vec<String> {
    vec![
        layout.datadir.clone(),
        format!("{}/hosts", layout.datadir),
        layout.docdir.clone(),
    ]
}

/// `SOURCE_DATE_EPOCH`, else the last commit's time: reproducible archive timestamps.
fn source_date_epoch() -> String {
    if let Ok(v) = std::env::var("SOURCE_DATE_EPOCH") {
        return v;
    }
    Command::new("git")
        .args(["log", "-1", "--format=%ct"])
        .current_dir(workspace_root())
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "0".to_owned())
}

fn machine_arch() -> Result<String> {
    Ok(stdout_of(Command::new("uname").arg("-m"))?
        .trim()
        .to_owned())
}

fn tarball(stage: &Path, out: &Path, arch: &str, epoch: &str) -> Result<PathBuf> {
    let top = format!("xenguest-{VERSION}-{arch}");
    let path = out.join(format!("{top}.tar.gz"));
    run(Command::new("tar")
        .arg("--sort=name")
        .args(["--owner=0", "--group=0", "--numeric-owner"])
        .arg(format!("--mtime=@{epoch}"))
        .arg(format!("--transform=s,^\\.,{top},"))
        .arg("-czf")
        .arg(&path)
        .arg("-C")
        .arg(stage)
        .arg("."))?;
    Ok(path)
}

/// Fills a template's `@NAME@` placeholders; fails on any left over.
fn render(template: &str, vars: &[(&str, &str)]) -> Result<String> {
    let mut s = template.to_owned();
    for (k, v) in vars {
        s = s.replace(&format!("@{k}@"), v);
    }
    let parts: Vec<&str> = s.split('@').collect();
    for name in parts.iter().skip(1).take(parts.len().saturating_sub(2)) {
        if !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
            bail!("Template placeholder @{name}@ was not filled");
        }
    }
    Ok(s)
}

/// The Debian `Depends` of the binary, as dpkg-shlibdeps computes it.
fn debian_depends(bin: &Path, scratch: &Path) -> String {
    let fallback = "libc6, libgcc-s1".to_owned();
    let dir = scratch.join("shlibdeps");
    let control = "Source: xenguest\n\nPackage: xenguest\nArchitecture: any\n";
    if fs::create_dir_all(dir.join("debian")).is_err()
        || fs::write(dir.join("debian/control"), control).is_err()
    {
        return fallback;
    }
    let out = Command::new("dpkg-shlibdeps")
        .arg("-O")
        .arg(bin)
        .current_dir(&dir)
        .stderr(Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("shlibs:Depends="))
            .map(str::to_owned)
            .unwrap_or(fallback),
        _ => fallback,
    }
}

fn deb(
    layout: &Layout,
    stage: &Path,
    files: &[String],
    out: &Path,
    epoch: &str,
) -> Result<PathBuf> {
    let arch = stdout_of(Command::new("dpkg").arg("--print-architecture"))?
        .trim()
        .to_owned();
    let work = out.join("deb");
    if work.exists() {
        fs::remove_dir_all(&work)?;
    }
    let root = work.join("root");
    fs::create_dir_all(root.join("DEBIAN"))?;
    run(Command::new("cp").arg("-a").arg(stage.join(".")).arg(&root))?;

    let mut bytes = 0u64;
    let mut md5sums = String::new();
    for f in files {
        let p = staged(&root, f);
        bytes += fs::metadata(&p)?.len();
        let sum = stdout_of(Command::new("md5sum").arg(&p))?;
        let hash = sum
            .split_whitespace()
            .next()
            .context("md5sum printed nothing")?;
        md5sums.push_str(&format!("{hash}  {}\n", f.trim_start_matches('/')));
    }
    let bin = staged(&root, &format!("{}/xenguest", layout.bindir));
    let depends = debian_depends(&bin, &work);
    let template = fs::read_to_string(workspace_root().join("packaging/debian/control.in"))?;
    let control = render(
        &template,
        &[
            ("VERSION", VERSION),
            ("ARCH", &arch),
            ("INSTALLED_SIZE", &bytes.div_ceil(1024).to_string()),
            ("DEPENDS", &depends),
            ("BINDIR", &layout.bindir),
        ],
    )?;
    fs::write(root.join("DEBIAN/control"), control)?;
    fs::write(root.join("DEBIAN/md5sums"), md5sums)?;
    for f in ["control", "md5sums"] {
        fs::set_permissions(
            root.join("DEBIAN").join(f),
            fs::Permissions::from_mode(0o644),
        )?;
    }
    let path = out.join(format!("xenguest_{VERSION}-1_{arch}.deb"));
    run(Command::new("dpkg-deb")
        .env("SOURCE_DATE_EPOCH", epoch)
        .args(["--root-owner-group", "-Zxz", "--build"])
        .arg(&root)
        .arg(&path))?;
    Ok(path)
}

/// The `%files` section: owned directories, then the files (docs and licences marked).
fn rpm_files(layout: &Layout, files: &[String]) -> String {
    let mut s = String::new();
    for d in owned_dirs(layout) {
        s.push_str(&format!("%dir {d}\n"));
    }
    for f in files {
        let name = f.rsplit('/').next().unwrap_or(f);
        let tag = if !f.starts_with(&format!("{}/", layout.docdir)) {
            ""
        } else if name.starts_with("LICENSE") || name == "copyright" {
            "%license "
        } else {
            "%doc "
        };
        s.push_str(&format!("{tag}{f}\n"));
    }
    s
}

fn rpm(layout: &Layout, stage: &Path, files: &[String], out: &Path, arch: &str) -> Result<PathBuf> {
    if Command::new("rpmbuild").arg("--version").output().is_err() {
        ensure_debian_packages(&["rpm"])?;
    }
    let top = out.join("rpmbuild");
    if top.exists() {
        fs::remove_dir_all(&top)?;
    }
    fs::create_dir_all(top.join("SPECS"))?;
    let stage_abs = fs::canonicalize(stage)?;
    let template = fs::read_to_string(workspace_root().join("packaging/rpm/xenguest.spec.in"))?;
    let spec = render(
        &template,
        &[
            ("VERSION", VERSION),
            ("BINDIR", &layout.bindir),
            ("STAGE", &stage_abs.to_string_lossy()),
            ("FILES", rpm_files(layout, files).trim_end()),
        ],
    )?;
    let spec_path = top.join("SPECS/xenguest.spec");
    fs::write(&spec_path, spec)?;
    let top_abs = fs::canonicalize(&top)?;
    run(Command::new("rpmbuild")
        .arg("--quiet")
        .args(["-bb", "--target", arch])
        .arg("--define")
        .arg(format!("_topdir {}", top_abs.display()))
        .arg(&spec_path))?;
    let name = format!("xenguest-{VERSION}-1.{arch}.rpm");
    let built = top.join("RPMS").join(arch).join(&name);
    let path = out.join(&name);
    fs::rename(&built, &path).with_context(|| format!("rpmbuild made no {}", built.display()))?;
    Ok(path)
}

/// Builds the release binary and all packages into `out`.
pub fn build_all(layout: &Layout, out: &Path, with_rpm: bool) -> Result<Artifacts> {
    layout.check()?;
    let bin = release_binary(layout)?;
    fs::create_dir_all(out)?;
    let stage = out.join("stage");
    let files = stage_tree(layout, &bin, &stage)?;
    let epoch = source_date_epoch();
    let arch = machine_arch()?;
    let tarball = tarball(&stage, out, &arch, &epoch)?;
    let deb = deb(layout, &stage, &files, out, &epoch)?;
    let rpm = if with_rpm {
        Some(rpm(layout, &stage, &files, out, &arch)?)
    } else {
        None
    };
    Ok(Artifacts {
        files,
        owned_dirs: owned_dirs(layout),
        tarball,
        deb,
        rpm,
    })
}

/// The CI step: build everything with the default layout, install the .deb, run the
/// installed binary, remove it, and check the .rpm's and the tarball's contents.
pub fn ci_check() -> Result<()> {
    let layout = Layout::under("/usr");
    let out = target_dir().join("dist-ci");
    let a = build_all(&layout, &out, true)?;

    run(Command::new("dpkg").arg("-i").arg(&a.deb))?;
    let checked = check_installed(&layout, &a);
    let removed = run(Command::new("dpkg").args(["-r", "xenguest"]));
    checked?;
    removed?;
    let bin = format!("{}/xenguest", layout.bindir);
    ensure!(!Path::new(&bin).exists(), "dpkg -r left {bin} behind");

    let rpm = a.rpm.as_ref().context("no RPM was built")?;
    let listed = stdout_of(Command::new("rpm").arg("-qlp").arg(rpm))?;
    let listed: BTreeSet<&str> = listed.lines().collect();
    let expected: BTreeSet<&str> = a
        .files
        .iter()
        .chain(&a.owned_dirs)
        .map(String::as_str)
        .collect();
    ensure!(
        listed == expected,
        "rpm -qlp lists {listed:?}, expected {expected:?}"
    );

    let tar = stdout_of(Command::new("tar").arg("-tzf").arg(&a.tarball))?;
    for f in &a.files {
        ensure!(
            tar.lines().any(|l| l.ends_with(f.as_str())),
            "{f} missing from {}",
            a.tarball.display()
        );
    }
    eprintln!("xtask: dist packages install, run and list the expected files");
    Ok(())
}

fn check_installed(layout: &Layout, a: &Artifacts) -> Result<()> {
    let bin = format!("{}/xenguest", layout.bindir);
    let listed = stdout_of(Command::new("dpkg").args(["-L", "xenguest"]))?;
    for f in &a.files {
        ensure!(listed.lines().any(|l| l == f), "dpkg -L xenguest lacks {f}");
    }
    let help = stdout_of(Command::new(&bin).arg("--help"))?;
    ensure!(
        help.starts_with("xenguest: the Xen domain builder") && help.contains("-mem_max_mib M"),
        "{bin} --help printed:\n{help}"
    );
    let host = format!("{}/hosts/default.toml", layout.datadir);
    let out = Command::new(&bin)
        .args(["-mode", "hvm_build", "-domid", "1"])
        .args(["-mem_max_mib", "1024", "-mem_start_mib", "1024"])
        .args(["-store_port", "1", "-console_port", "2"])
        .args(["-image", "/nonexistent/hvmloader", "--host", &host, "-q"])
        .env_remove("XENSTORED_PATH")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("Starting {bin} failed"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success() && stdout == "result:1044476 1044479\n",
        "simulated build with {bin} gave {} and stdout {stdout:?}, stderr {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    if Command::new("man").arg("--version").output().is_ok() {
        let page = stdout_of(Command::new("man").args(["-w", "xenguest"]))?;
        ensure!(
            page.trim() == format!("{}/man1/xenguest.1.gz", layout.mandir),
            "man -w xenguest found {page:?}"
        );
    }
    // Keep stdout quiet in CI: only the checks' conclusion is printed.
    let _ = std::io::stderr().flush();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where XenServer installs xenguest (Xen's `LIBEXEC_BIN`).
    const DEFAULT_BINDIR: &str = "/usr/libexec/xen/bin";

    fn args(a: &[&str]) -> Result<Options> {
        parse_args(&a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn default_layout_is_xenservers() {
        let o = args(&[]).unwrap();
        assert_eq!(o.layout.bindir, DEFAULT_BINDIR);
        assert_eq!(o.layout.datadir, "/usr/share/xenguest");
        assert_eq!(o.layout.mandir, "/usr/share/man");
        assert!(o.rpm);
    }

    #[test]
    fn prefix_and_bindir_are_configurable() {
        let o = args(&[
            "--prefix",
            "/opt/xg/",
            "--bindir",
            "/usr/lib/xen/bin",
            "--no-rpm",
        ])
        .unwrap();
        assert_eq!(o.layout.bindir, "/usr/lib/xen/bin");
        assert_eq!(o.layout.datadir, "/opt/xg/share/xenguest");
        assert_eq!(o.layout.docdir, "/opt/xg/share/doc/xenguest");
        assert!(!o.rpm);
        assert!(args(&["--bindir", "bin"]).is_err());
        assert!(args(&["--prefix", "/usr/../tmp"]).is_err());
        assert!(args(&["--bindir"]).is_err());
        assert!(args(&["--bogus"]).is_err());
    }

    #[test]
    fn templates_are_filled_completely() {
        assert_eq!(render("a @X@ b", &[("X", "1")]).unwrap(), "a 1 b");
        assert!(render("a @X@ @Y@", &[("X", "1")]).is_err());
        // An e-mail address is not a placeholder.
        assert!(render("<a@example.invalid> @X@", &[("X", "1")]).is_ok());
        let root = workspace_root();
        let control = fs::read_to_string(root.join("packaging/debian/control.in")).unwrap();
        let filled = render(
            &control,
            &[
                ("VERSION", "1"),
                ("ARCH", "amd64"),
                ("INSTALLED_SIZE", "1"),
                ("DEPENDS", "libc6"),
                ("BINDIR", DEFAULT_BINDIR),
            ],
        )
        .unwrap();
        assert!(filled.starts_with("Package: xenguest\nVersion: 1-1\n"));
        let spec = fs::read_to_string(root.join("packaging/rpm/xenguest.spec.in")).unwrap();
        let filled = render(
            &spec,
            &[
                ("VERSION", "1"),
                ("BINDIR", DEFAULT_BINDIR),
                ("STAGE", "/s"),
                ("FILES", "/f"),
            ],
        )
        .unwrap();
        assert!(filled.contains("cp -a /s/. %{buildroot}/") && filled.ends_with("%files\n/f\n"));
    }

    #[test]
    fn rpm_file_list_marks_docs_and_licences() {
        let l = Layout::under("/usr");
        let files = vec![
            "/usr/libexec/xen/bin/xenguest".to_owned(),
            "/usr/share/doc/xenguest/LICENSE-MIT".to_owned(),
            "/usr/share/doc/xenguest/README.md".to_owned(),
        ];
        assert_eq!(
            rpm_files(&l, &files),
            "%dir /usr/share/xenguest\n%dir /usr/share/xenguest/hosts\n\
             %dir /usr/share/doc/xenguest\n/usr/libexec/xen/bin/xenguest\n\
             %license /usr/share/doc/xenguest/LICENSE-MIT\n\
             %doc /usr/share/doc/xenguest/README.md\n"
        );
    }
}
