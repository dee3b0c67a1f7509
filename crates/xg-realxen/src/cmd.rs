//! Running Debian's Xen tools and reading their output.

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A tool could not be run or failed.
#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    /// The program could not be started.
    #[error("Starting {cmd} failed")]
    Spawn {
        /// The command line.
        cmd: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The program exited unsuccessfully.
    #[error("{cmd} exited with status {status:?}: {stderr}")]
    Failed {
        /// The command line.
        cmd: String,
        /// Its exit status (`None` when killed by a signal).
        status: Option<i32>,
        /// What it wrote to stderr.
        stderr: String,
    },
}

/// What a finished command produced.
#[derive(Debug, Clone)]
pub struct Finished {
    /// Exit status (`None` when killed by a signal).
    pub status: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Wall time from spawn to exit.
    pub elapsed: Duration,
}

impl Finished {
    /// Exit status 0?
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }
}

fn line(prog: &str, args: &[&str]) -> String {
    std::iter::once(prog)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `prog args…`, whatever its exit status, and times it.
pub fn run(prog: &str, args: &[&str]) -> Result<Finished, CmdError> {
    let start = Instant::now();
    let out: Output = Command::new(prog)
        .args(args)
        .output()
        .map_err(|source| CmdError::Spawn {
            cmd: line(prog, args),
            source,
        })?;
    Ok(Finished {
        status: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: start.elapsed(),
    })
}

/// Runs `prog args…` and returns its stdout; a non-zero exit is an error.
pub fn run_ok(prog: &str, args: &[&str]) -> Result<String, CmdError> {
    let f = run(prog, args)?;
    if f.success() {
        Ok(f.stdout)
    } else {
        Err(CmdError::Failed {
            cmd: line(prog, args),
            status: f.status,
            stderr: f.stderr.trim_end().to_owned(),
        })
    }
}

/// `xl args…`, stdout on success.
pub fn xl(args: &[&str]) -> Result<String, CmdError> {
    run_ok("xl", args)
}

/// `key : value` lines (as `xl info` prints them), keys and values trimmed.
pub fn key_values(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// One row of `xl list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XlListRow {
    /// Name column.
    pub name: String,
    /// Domain id.
    pub domid: u32,
    /// Memory in MiB.
    pub mem_mib: u64,
    /// vCPUs.
    pub vcpus: u32,
    /// State flags, e.g. `--p---`.
    pub state: String,
}

/// The rows of `xl list` output (header skipped; unparsable rows dropped).
pub fn parse_xl_list(text: &str) -> Vec<XlListRow> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // Name may contain no spaces in xl's output; the last five columns are fixed.
            if f.len() < 6 {
                return None;
            }
            let n = f.len();
            Some(XlListRow {
                name: f[..n - 5].join(" "),
                domid: f[n - 5].parse().ok()?,
                mem_mib: f[n - 4].parse().ok()?,
                vcpus: f[n - 3].parse().ok()?,
                state: f[n - 2].to_owned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xl_list_rows() {
        let text = "Name                                        ID   Mem VCPUs\tState\tTime(s)\n\
                    Domain-0                                     0   512     1     r-----       8.7\n\
                    (null)                                       5    32     2     --p---       0.0\n";
        let rows = parse_xl_list(text);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].domid, 5);
        assert_eq!(rows[1].mem_mib, 32);
        assert_eq!(rows[1].vcpus, 2);
        assert_eq!(rows[1].state, "--p---");
        assert_eq!(rows[0].name, "Domain-0");
    }

    #[test]
    fn xl_info_keys() {
        let kv =
            key_values("xen_major              : 4\nxen_extra              : .7\nxen_caps : a b\n");
        assert_eq!(kv["xen_major"], "4");
        assert_eq!(kv["xen_extra"], ".7");
        assert_eq!(kv["xen_caps"], "a b");
    }
}
