//! Guest consoles as the fixture's xenconsoled logs them, and waiting on a running guest.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use xg_ctrl::{DomId, DomainOps, XenCtrl};

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
