//! Real Xenstore daemons for tests and benchmarks.
//!
//! Wraps the project's shared fixture `fixtures/xenstored/xenstored-up [--oxenstored] DIR`
//! (Debian's C `xenstored` or OCaml `oxenstored`, serving a private Unix socket). The
//! shared directory is `$XG_SHARED_DIR`, else `<workspace>/../shared`. Each [`Daemon`]
//! gets a fresh short directory under `/tmp` and is stopped with `xenstored-down` when
//! dropped, also during a panic.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::Client;

/// Which daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// The C `xenstored`.
    C,
    /// The OCaml `oxenstored`.
    OCaml,
}

impl Flavour {
    /// Both, C first.
    pub const BOTH: [Flavour; 2] = [Flavour::C, Flavour::OCaml];

    /// The daemon binary Debian installs.
    pub fn binary(self) -> &'static Path {
        Path::new(match self {
            Flavour::C => "/usr/lib/xen-4.17/bin/xenstored",
            Flavour::OCaml => "/usr/lib/xen-4.17/bin/oxenstored",
        })
    }

    /// Short name for messages and directory names.
    pub fn name(self) -> &'static str {
        match self {
            Flavour::C => "xenstored",
            Flavour::OCaml => "oxenstored",
        }
    }
}

/// Why a daemon could not be started.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    /// A binary or script is not installed.
    #[error("Fixture not available: {what} is missing")]
    Missing {
        /// The missing file.
        what: String,
    },
    /// Running the fixture script failed.
    #[error("Running {script} failed")]
    Spawn {
        /// The script.
        script: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The script ran but did not start the daemon.
    #[error("{script} exited with {status}: {stderr}")]
    Start {
        /// The script.
        script: String,
        /// Its exit status.
        status: String,
        /// Its standard error.
        stderr: String,
    },
}

impl FixtureError {
    /// Whether the failure is a missing package (a reason to skip outside CI).
    pub fn is_missing(&self) -> bool {
        matches!(self, FixtureError::Missing { .. })
    }
}

/// The shared directory: `$XG_SHARED_DIR`, else `<workspace root>/../shared`.
pub fn shared_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XG_SHARED_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    // crates/xg-store -> workspace root -> its parent.
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

/// The `xenstored/` fixture directory.
pub fn fixture_dir() -> PathBuf {
    shared_dir().join("fixtures/xenstored")
}

/// Whether CI asked for missing fixtures to be failures (`CI=true`).
pub fn required_by_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Checks that the daemon and the fixture scripts are installed.
pub fn check_available(flavour: Flavour) -> Result<(), FixtureError> {
    check_available_in(&fixture_dir(), flavour)
}

/// [`check_available`] with the fixture scripts looked for in `dir`.
pub fn check_available_in(dir: &Path, flavour: Flavour) -> Result<(), FixtureError> {
    let script = dir.join("xenstored-up");
    for path in [script.as_path(), flavour.binary()] {
        if !path.exists() {
            return Err(FixtureError::Missing {
                what: path.display().to_string(),
            });
        }
    }
    Ok(())
}

/// A running daemon in its own directory, stopped on drop.
#[derive(Debug)]
pub struct Daemon {
    flavour: Flavour,
    dir: PathBuf,
    socket: PathBuf,
    pid: u32,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl Daemon {
    /// Starts a fresh daemon.
    pub fn start(flavour: Flavour) -> Result<Daemon, FixtureError> {
        Daemon::start_with_env(flavour, &[])
    }

    /// Starts a fresh daemon with extra environment for `xenstored-up` (e.g.
    /// `XENSTORED_ARGS`, `OXENSTORED_CONF`).
    pub fn start_with_env(flavour: Flavour, env: &[(&str, &str)]) -> Result<Daemon, FixtureError> {
        check_available(flavour)?;
        let script = fixture_dir().join("xenstored-up");
        // Short and unique: the socket path must fit in 107 bytes.
        let dir = PathBuf::from(format!(
            "/tmp/xgs-{}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed),
            flavour.name()
        ));
        let mut cmd = Command::new(&script);
        if flavour == Flavour::OCaml {
            cmd.arg("--oxenstored");
        }
        cmd.arg(&dir).env_remove("XENSTORED_PATH");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().map_err(|source| FixtureError::Spawn {
            script: script.display().to_string(),
            source,
        })?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let value = |key: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(key).map(str::to_owned))
        };
        match (
            out.status.success(),
            value("XENSTORED_PATH="),
            value("XENSTORED_PID="),
        ) {
            (true, Some(socket), Some(pid)) => Ok(Daemon {
                flavour,
                dir,
                socket: PathBuf::from(socket),
                pid: pid.trim().parse().unwrap_or(0),
            }),
            _ => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(FixtureError::Start {
                    script: script.display().to_string(),
                    status: out.status.to_string(),
                    stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
                })
            }
        }
    }

    /// Which daemon this is.
    pub fn flavour(&self) -> Flavour {
        self.flavour
    }

    /// Its socket (the value for `XENSTORED_PATH`).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Its directory (logs, pid file).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// A new client connection.
    pub fn client(&self) -> crate::Result<Client> {
        Client::open_socket(&self.socket)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let down = fixture_dir().join("xenstored-down");
        match Command::new(&down).arg(&self.dir).output() {
            Ok(out) if out.status.success() => {
                let _ = std::fs::remove_dir_all(&self.dir);
            }
            Ok(out) => log::warn!(
                "xenstored-down {} failed: {}",
                self.dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => log::warn!("running {} failed: {e}", down.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_fixture_scripts_are_reported_as_missing() {
        let e = check_available_in(Path::new("/nonexistent/xg-store"), Flavour::C).unwrap_err();
        assert!(e.is_missing());
        assert!(
            e.to_string().contains("/nonexistent/xg-store/xenstored-up"),
            "{e}"
        );
    }

    #[test]
    fn the_shared_directory_sits_beside_the_workspace() {
        if std::env::var_os("XG_SHARED_DIR").is_none() {
            let dir = shared_dir();
            assert!(dir.ends_with("../../../shared"), "{}", dir.display());
        }
        assert_eq!(Flavour::OCaml.name(), "oxenstored");
    }
}
