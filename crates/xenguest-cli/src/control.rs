//! The control channel to xenopsd (§1.5): `result:` and `error:` lines on `-controloutfd`.
//!
//! The fds arrive as numbers. They are opened through `/proc/self/fd/<n>` so no unsafe
//! code is needed: for the pipes xenopsd passes this opens the same pipe. The opened file
//! is close-on-exec (Rust's default); xenguest executes nothing, so the inherited number
//! itself needs no flag.

use std::fs::{File, OpenOptions};
use std::io::Write;

/// Where result and error lines go.
#[derive(Debug)]
pub enum Channel {
    /// xenopsd's control fd.
    Fd(File),
    /// No control fd: a person at a shell; the result goes to stdout, errors only to
    /// the log (stderr).
    Stdout,
}

/// The fd named on the command line is not open (§1.6 step 4).
#[derive(Debug, thiserror::Error)]
#[error("Failed fcntl(F_GETFD) on fd {fd}: {errno}, {text}")]
pub struct BadFd {
    /// The fd.
    pub fd: i32,
    /// errno.
    pub errno: i32,
    /// strerror.
    pub text: String,
}

fn bad_fd(fd: i32, e: &std::io::Error) -> BadFd {
    let errno = e.raw_os_error().unwrap_or(libc::EBADF);
    BadFd {
        fd,
        errno,
        text: xg_build::error::strerror(errno),
    }
}

/// Checks that `fd` is open (the `F_GETFD` xenguest does).
pub fn check_fd(fd: i32) -> Result<(), BadFd> {
    if fd < 0 {
        return Err(bad_fd(fd, &std::io::Error::from_raw_os_error(libc::EBADF)));
    }
    std::fs::symlink_metadata(format!("/proc/self/fd/{fd}"))
        .map(|_| ())
        .map_err(|_| bad_fd(fd, &std::io::Error::from_raw_os_error(libc::EBADF)))
}

/// Opens `-controloutfd` for writing.
pub fn open_out(fd: i32) -> Result<Channel, BadFd> {
    check_fd(fd)?;
    OpenOptions::new()
        .write(true)
        .open(format!("/proc/self/fd/{fd}"))
        .map(Channel::Fd)
        .map_err(|e| bad_fd(fd, &e))
}

impl Channel {
    fn write_line(&mut self, line: &str) {
        // The C buffer for the result line is 64 bytes; results are far shorter.
        match self {
            Channel::Fd(f) => {
                if let Err(e) = f.write_all(line.as_bytes()) {
                    log::error!("Writing to the control fd failed: {e}");
                }
            }
            Channel::Stdout => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(line.as_bytes());
                let _ = out.flush();
            }
        }
    }

    /// `result:<store> <console>\n` (on stdout without a control fd: the same line).
    pub fn result(&mut self, store: u64, console: u64) {
        let line = format!("result:{store} {console}\n");
        self.write_line(&line);
    }

    /// `result:<store_mfn> <console_mfn> <protocol>` (`linux_build`).
    pub fn result_with_protocol(&mut self, store: u64, console: u64, protocol: &str) {
        let line = format!("result:{store} {console} {protocol}\n");
        self.write_line(&line);
    }

    /// `error:<text>` (text ends in a newline). Without a control fd nothing is written
    /// here: the caller logs the error to stderr.
    pub fn error(&mut self, text: &str) {
        if let Channel::Fd(_) = self {
            let mut line = format!("error:{text}");
            if !line.ends_with('\n') {
                line.push('\n');
            }
            self.write_line(&line);
        }
    }
}
