//! Guest consoles as the fixture's xenconsoled logs them, and waiting on a running guest.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use xg_ctrl::{DomId, DomainOps, XenCtrl};

use crate::cmd::xl;

/// Where dom0's xenconsoled (`--log=guest --log-dir=/var/log/xen/console`) appends what
/// the guest named `name` writes to its console ring.
pub fn log_path(name: &str) -> PathBuf {
    PathBuf::from(format!("/var/log/xen/console/guest-{name}.log"))
}

/// How waiting for a guest's console ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every needle was in the log.
    Seen,
    /// The domain shut down (`SHUTDOWN_*` reason) first.
    ShutDown(u32),
    /// The domain is gone.
    Gone,
    /// Time ran out.
    TimedOut,
}

/// The end of a wait and the console log at that moment.
#[derive(Debug, Clone)]
pub struct Waited {
    /// How it ended.
    pub outcome: Outcome,
    /// The log's text (lossy UTF-8, empty when xenconsoled never opened it).
    pub log: String,
    /// Time from the start of the wait.
    pub elapsed: Duration,
}

impl Waited {
    /// The last `n` lines of the log.
    pub fn tail(&self, n: usize) -> Vec<&str> {
        let lines: Vec<&str> = self.log.lines().collect();
        lines[lines.len().saturating_sub(n)..].to_vec()
    }
}

/// Polls the console log of guest `name` (domain `domid`) until it holds every needle,
/// the domain shuts down or disappears, or `timeout` passes. A shutdown is reported only
/// after one more read of the log, so lines written just before it count.
pub fn wait_for(
    xc: &XenCtrl,
    domid: DomId,
    name: &str,
    needles: &[&str],
    timeout: Duration,
) -> Waited {
    let start = Instant::now();
    let path = log_path(name);
    let read = || String::from_utf8_lossy(&std::fs::read(&path).unwrap_or_default()).into_owned();
    loop {
        let state = xc.domain_info(domid).map(|i| i.shutdown_reason());
        let log = read();
        let outcome = if needles.iter().all(|n| log.contains(n)) {
            Some(Outcome::Seen)
        } else {
            match state {
                Err(_) => Some(Outcome::Gone),
                Ok(Some(reason)) => Some(Outcome::ShutDown(reason)),
                Ok(None) if start.elapsed() > timeout => Some(Outcome::TimedOut),
                Ok(None) => None,
            }
        };
        if let Some(outcome) = outcome {
            return Waited {
                outcome,
                log: if outcome == Outcome::Seen {
                    log
                } else {
                    read()
                },
                elapsed: start.elapsed(),
            };
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The last `n` lines Xen's console (`xl dmesg`) holds from domain `domid`: what a HVM
/// or PVH guest wrote to port 0xE9, and Xen's own messages about it.
pub fn xen_console_of(domid: DomId, n: usize) -> Vec<String> {
    let dmesg = xl(&["dmesg"]).unwrap_or_default();
    let prefix = format!("(d{})", domid.0);
    let lines: Vec<String> = dmesg
        .lines()
        .filter(|l| l.contains(&prefix))
        .map(str::to_owned)
        .collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

/// Waits up to `timeout` for every needle in Xen's console lines of `domid`; returns
/// those lines, or the last ones seen when time ran out.
pub fn wait_xen_console(
    domid: DomId,
    needles: &[&str],
    timeout: Duration,
) -> Result<Vec<String>, Vec<String>> {
    let start = Instant::now();
    loop {
        let lines = xen_console_of(domid, usize::MAX);
        if needles.iter().all(|n| lines.iter().any(|l| l.contains(n))) {
            return Ok(lines);
        }
        if start.elapsed() > timeout {
            return Err(lines);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
