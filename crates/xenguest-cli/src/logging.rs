//! Logging: stderr, syslog (ident `xenguest-<domid>-build`, facility daemon) and the
//! optional `-debuglog` file. Nothing here ever writes to stdout or the control channel.

use std::fs::File;
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::sync::Mutex;

use log::{Level, LevelFilter, Log, Metadata, Record};

/// `LOG_DAEMON`.
const LOG_DAEMON: u8 = 3 << 3;

/// The process logger.
#[derive(Debug)]
pub struct Logger {
    ident: Mutex<String>,
    stderr_level: LevelFilter,
    syslog_level: LevelFilter,
    syslog: Mutex<Option<UnixDatagram>>,
    debuglog: Mutex<Option<File>>,
}

impl Logger {
    /// A logger for `-v` count and `-q`: by default stderr shows warnings and errors and
    /// syslog gets info; `-v` adds info (and `-v -v` debug) to stderr and debug to
    /// syslog; `-q` leaves only errors on stderr.
    pub fn new(verbose: u8, quiet: bool) -> Logger {
        let stderr_level = match (quiet, verbose) {
            (true, _) => LevelFilter::Error,
            (false, 0) => LevelFilter::Warn,
            (false, 1) => LevelFilter::Info,
            (false, _) => LevelFilter::Debug,
        };
        let syslog_level = if verbose > 0 {
            LevelFilter::Debug
        } else {
            LevelFilter::Info
        };
        Logger {
            ident: Mutex::new("xenguest".to_owned()),
            stderr_level,
            syslog_level,
            syslog: Mutex::new(None),
            debuglog: Mutex::new(None),
        }
    }

    /// The most verbose level any sink wants.
    pub fn max_level(&self) -> LevelFilter {
        self.stderr_level.max(self.syslog_level)
    }

    /// `openlog(ident, LOG_NDELAY|LOG_PID, LOG_DAEMON)`: connects now; failure to reach
    /// syslog is silent.
    pub fn open_syslog(&self, ident: &str) {
        if let Ok(mut i) = self.ident.lock() {
            ident.clone_into(&mut i);
        }
        let sock = UnixDatagram::unbound()
            .ok()
            .filter(|s| s.connect("/dev/log").is_ok());
        if let Ok(mut s) = self.syslog.lock() {
            *s = sock;
        }
    }

    /// Sets the `-debuglog` file (appended to).
    pub fn set_debuglog(&self, file: File) {
        if let Ok(mut d) = self.debuglog.lock() {
            *d = Some(file);
        }
    }

    fn syslog(&self, level: Level, msg: &str) {
        let severity: u8 = match level {
            Level::Error => 3,
            Level::Warn => 4,
            Level::Info => 6,
            Level::Debug | Level::Trace => 7,
        };
        let ident = self.ident.lock().map(|i| i.clone()).unwrap_or_default();
        let line = format!(
            "<{}>{ident}[{}]: {msg}",
            LOG_DAEMON | severity,
            std::process::id()
        );
        if let Ok(s) = self.syslog.lock() {
            if let Some(sock) = s.as_ref() {
                let _ = sock.send(line.as_bytes());
            }
        }
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.max_level()
    }

    fn log(&self, record: &Record<'_>) {
        let level = record.level();
        let msg = record.args().to_string();
        if level <= self.stderr_level {
            let _ = writeln!(std::io::stderr(), "{msg}");
        }
        if level <= self.syslog_level {
            self.syslog(level, &msg);
        }
        if level <= Level::Info {
            if let Ok(mut d) = self.debuglog.lock() {
                if let Some(f) = d.as_mut() {
                    let _ = writeln!(f, "{msg}");
                }
            }
        }
    }

    fn flush(&self) {}
}
