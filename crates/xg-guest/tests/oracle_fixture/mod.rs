//! Building the libxenguest oracle fixture (`<shared>/fixtures/libxenguest-oracle`) into
//! the target directory, shared by the HVM (`oracle.rs`) and PV (`oracle_pv.rs`)
//! differential tests. The fixture folder itself is never written to.
#![allow(dead_code, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// `$XG_SHARED_DIR`, or `shared/` next to the workspace.
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("XG_SHARED_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    }
}

/// The fixture folder.
pub fn fixture_dir() -> PathBuf {
    shared_dir().join("fixtures/libxenguest-oracle")
}

/// Reports that an oracle cannot be had: a panic under `CI=true`, else a `SKIPPED`
/// message. Returns `None` so callers can `return` it.
pub fn unavailable<T>(what: &str, why: &str) -> Option<T> {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but {what} cannot be built: {why}");
    }
    eprintln!("SKIPPED: {what} not available: {why}");
    None
}

/// The stderr of a failed command, or the error that kept it from running.
pub fn failure(out: std::io::Result<Output>) -> Option<String> {
    match out {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )),
        Err(e) => Some(e.to_string()),
    }
}

/// Runs the fixture's `build.sh` once per test process into
/// `$CARGO_TARGET_TMPDIR/libxenguest-oracle`; returns that folder (the HVM driver
/// `meminit-oracle` and the recording `lib/libxenctrl.so.4.17`), `None` after a
/// message when it cannot be built (a panic under `CI=true`).
pub fn built_fixture() -> Option<&'static Path> {
    static OUT: OnceLock<Option<PathBuf>> = OnceLock::new();
    OUT.get_or_init(|| {
        let script = fixture_dir().join("build.sh");
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("libxenguest-oracle");
        let built = Command::new("bash").arg(&script).arg(&out).output();
        match failure(built) {
            None => Some(out),
            Some(why) => unavailable(
                &format!("the libxenguest oracle ({})", script.display()),
                &why,
            ),
        }
    })
    .as_deref()
}
