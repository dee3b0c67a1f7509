//! The error type of the crate.

/// Errors of the Xenstore client and the in-memory store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// I/O on the transport failed.
    #[error("Xenstore I/O failed during {op}")]
    Io {
        /// The operation.
        op: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The daemon answered with an error string such as `ENOENT`.
    #[error("Xenstore {op} of {path} failed with {name}")]
    Daemon {
        /// The operation.
        op: &'static str,
        /// The path, or "" for path-less operations.
        path: String,
        /// The daemon's error name, e.g. `"ENOENT"`.
        name: String,
        /// The errno it maps to.
        errno: i32,
    },
    /// The peer broke the protocol.
    #[error("Xenstore protocol error: {detail}")]
    Protocol {
        /// What was wrong.
        detail: String,
    },
    /// No reply within the timeout.
    #[error("Xenstore {op} got no reply within {millis} ms")]
    Timeout {
        /// The operation.
        op: &'static str,
        /// The timeout.
        millis: u64,
    },
    /// The caller passed something the protocol cannot carry.
    #[error("Invalid Xenstore request: {detail}")]
    Invalid {
        /// What was wrong.
        detail: String,
    },
}

impl Error {
    /// A daemon-style error for `errno` (used by the in-memory store).
    pub fn daemon(op: &'static str, path: &str, errno: i32) -> Error {
        Error::Daemon {
            op,
            path: path.to_owned(),
            name: crate::wire::name_of(errno).to_owned(),
            errno,
        }
    }

    /// The errno: the daemon's, the OS's, or the closest one for local failures.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Daemon { errno, .. } => Some(*errno),
            Error::Io { source, .. } => source.raw_os_error(),
            Error::Timeout { .. } => Some(libc::ETIMEDOUT),
            Error::Protocol { .. } => Some(libc::EPROTO),
            Error::Invalid { .. } => Some(libc::EINVAL),
        }
    }

    /// Whether the daemon said the node does not exist.
    pub fn is_not_found(&self) -> bool {
        self.errno() == Some(libc::ENOENT)
    }

    /// Whether the daemon said `EAGAIN` (a transaction conflict: retry it).
    pub fn is_again(&self) -> bool {
        matches!(self, Error::Daemon { errno, .. } if *errno == libc::EAGAIN)
    }

    /// Whether the daemon refused access.
    pub fn is_access_denied(&self) -> bool {
        matches!(self, Error::Daemon { errno, .. } if *errno == libc::EACCES || *errno == libc::EPERM)
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
