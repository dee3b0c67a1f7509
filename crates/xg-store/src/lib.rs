//! A Xenstore client.
//!
//! The [`Store`] trait is what the builder uses; the socket/xenbus [`Client`] and the
//! in-memory [`MemStore`] both implement it. Its one required data operation,
//! [`Store::submit`], sends a batch of requests and returns their replies in order, so a
//! client can pipeline them in one round trip.
//!
//! ```no_run
//! use xg_store::{Client, Request, Store, TxId};
//! # fn main() -> xg_store::Result<()> {
//! // 1. Connect ($XENSTORED_PATH, $XENSTORED_RUNDIR/socket, /run/xenstored/socket).
//! let xs = Client::open()?;
//! // 2. Single operations.
//! xs.write(TxId::NONE, "/local/domain/5/name", b"guest")?;
//! // 3. A pipelined batch: all requests go out before the first reply is read.
//! let replies = xs.submit(TxId::NONE, &[
//!     Request::Read("/local/domain/5/name".into()),
//!     Request::Directory("/local/domain/5".into()),
//! ])?;
//! // 4. A transaction, retried as a whole on EAGAIN.
//! xg_store::transaction(&xs, |tx| xs.write(tx, "/local/domain/5/x", b"1"))?;
//! # let _ = replies; Ok(()) }
//! ```
//!
//! Modules: [`wire`] (sans-IO codec), [`path`] (path rules), [`client`] (transports and
//! pipelining), [`mem`] (in-memory store), [`fixture`] (real daemons for tests and
//! benches), [`bench_support`] (the pipelining measurement).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::fmt;

pub mod bench_support;
pub mod client;
mod error;
pub mod fixture;
pub mod mem;
pub mod path;
mod txn;
pub mod wire;

pub use client::{Client, Events, WatchEvent, DEFAULT_TIMEOUT};
pub use error::{Error, Result};
pub use mem::MemStore;
pub use txn::{transaction, transaction_with_attempts, TRANSACTION_ATTEMPTS};

/// A transaction id; [`TxId::NONE`] is outside any transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TxId(pub u32);

impl TxId {
    /// No transaction.
    pub const NONE: TxId = TxId(0);
}

/// One access right in a node's permission list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `n`: none.
    None,
    /// `r`: read.
    Read,
    /// `w`: write.
    Write,
    /// `b`: both.
    Both,
}

/// One permission entry, e.g. `r5` = domain 5 may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Perm {
    /// Domain the entry is about (the first entry names the owner).
    pub domid: u32,
    /// Its access.
    pub access: Access,
}

impl Perm {
    /// Parses one entry such as `r5` or `b0`.
    pub fn parse(s: &str) -> Option<Perm> {
        let mut chars = s.chars();
        let access = match chars.next()? {
            'n' => Access::None,
            'r' => Access::Read,
            'w' => Access::Write,
            'b' => Access::Both,
            _ => return None,
        };
        let digits = chars.as_str();
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Perm {
            domid: digits.parse().ok()?,
            access,
        })
    }
}

impl Access {
    /// Whether this right includes reading.
    pub fn can_read(self) -> bool {
        matches!(self, Access::Read | Access::Both)
    }

    /// Whether this right includes writing.
    pub fn can_write(self) -> bool {
        matches!(self, Access::Write | Access::Both)
    }
}

impl fmt::Display for Perm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = match self.access {
            Access::None => 'n',
            Access::Read => 'r',
            Access::Write => 'w',
            Access::Both => 'b',
        };
        write!(f, "{c}{}", self.domid)
    }
}

/// A request that can be batched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `XS_READ`.
    Read(String),
    /// `XS_WRITE`.
    Write(String, Vec<u8>),
    /// `XS_MKDIR`.
    Mkdir(String),
    /// `XS_RM`.
    Rm(String),
    /// `XS_DIRECTORY`.
    Directory(String),
    /// `XS_GET_PERMS`.
    GetPerms(String),
    /// `XS_SET_PERMS`.
    SetPerms(String, Vec<Perm>),
}

/// The reply to one [`Request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Bytes of a read.
    Data(Vec<u8>),
    /// `OK` of a write, mkdir, rm or set_perms.
    Ok,
    /// Children of a directory.
    List(Vec<String>),
    /// A permission list.
    Perms(Vec<Perm>),
}

/// The Xenstore operations a builder and a toolstack use.
pub trait Store {
    /// Sends `reqs` (all in transaction `tx`) and returns one result per request, in
    /// order. A client may pipeline them; the outer error is a transport failure.
    fn submit(&self, tx: TxId, reqs: &[Request]) -> Result<Vec<Result<Reply>>>;
    /// `XS_TRANSACTION_START`.
    fn transaction_start(&self) -> Result<TxId>;
    /// `XS_TRANSACTION_END`; `commit = false` aborts. EAGAIN means: retry the transaction.
    fn transaction_end(&self, tx: TxId, commit: bool) -> Result<()>;
    /// `XS_GET_DOMAIN_PATH`.
    fn get_domain_path(&self, domid: u32) -> Result<String>;

    /// `XS_READ`.
    fn read(&self, tx: TxId, path: &str) -> Result<Vec<u8>> {
        match one(self.submit(tx, &[Request::Read(path.to_owned())])?)? {
            Reply::Data(d) => Ok(d),
            other => Err(unexpected("read", &other)),
        }
    }

    /// `XS_READ`, with a missing node as `None`.
    fn read_opt(&self, tx: TxId, path: &str) -> Result<Option<Vec<u8>>> {
        match self.read(tx, path) {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `XS_WRITE`.
    fn write(&self, tx: TxId, path: &str, value: &[u8]) -> Result<()> {
        expect_ok(
            "write",
            one(self.submit(tx, &[Request::Write(path.to_owned(), value.to_vec())])?)?,
        )
    }

    /// `XS_MKDIR`.
    fn mkdir(&self, tx: TxId, path: &str) -> Result<()> {
        expect_ok(
            "mkdir",
            one(self.submit(tx, &[Request::Mkdir(path.to_owned())])?)?,
        )
    }

    /// `XS_RM`.
    fn rm(&self, tx: TxId, path: &str) -> Result<()> {
        expect_ok(
            "rm",
            one(self.submit(tx, &[Request::Rm(path.to_owned())])?)?,
        )
    }

    /// `XS_DIRECTORY`.
    fn directory(&self, tx: TxId, path: &str) -> Result<Vec<String>> {
        match one(self.submit(tx, &[Request::Directory(path.to_owned())])?)? {
            Reply::List(l) => Ok(l),
            other => Err(unexpected("directory", &other)),
        }
    }

    /// `XS_GET_PERMS`.
    fn get_perms(&self, tx: TxId, path: &str) -> Result<Vec<Perm>> {
        match one(self.submit(tx, &[Request::GetPerms(path.to_owned())])?)? {
            Reply::Perms(p) => Ok(p),
            other => Err(unexpected("get_perms", &other)),
        }
    }

    /// `XS_SET_PERMS`.
    fn set_perms(&self, tx: TxId, path: &str, perms: &[Perm]) -> Result<()> {
        expect_ok(
            "set_perms",
            one(self.submit(tx, &[Request::SetPerms(path.to_owned(), perms.to_vec())])?)?,
        )
    }
}

fn one(mut replies: Vec<Result<Reply>>) -> Result<Reply> {
    match replies.pop() {
        Some(r) if replies.is_empty() => r,
        _ => Err(Error::Protocol {
            detail: "expected exactly one reply".into(),
        }),
    }
}

fn expect_ok(op: &'static str, reply: Reply) -> Result<()> {
    match reply {
        Reply::Ok => Ok(()),
        other => Err(unexpected(op, &other)),
    }
}

fn unexpected(op: &str, reply: &Reply) -> Error {
    Error::Protocol {
        detail: format!("unexpected reply to {op}: {reply:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_can_be_shared_between_threads_and_used_as_objects() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Client>();
        shareable::<MemStore>();
        let mem = MemStore::new();
        let store: &dyn Store = &mem;
        store.write(TxId::NONE, "/a", b"1").unwrap();
        assert_eq!(store.read_opt(TxId::NONE, "/b").unwrap(), None);
    }

    #[test]
    fn perms_parse_and_print() {
        for text in ["n0", "r5", "w12", "b65535"] {
            assert_eq!(Perm::parse(text).unwrap().to_string(), text);
        }
        for bad in ["", "x1", "r", "r-1", "r1a"] {
            assert_eq!(Perm::parse(bad), None, "{bad:?}");
        }
        assert!(Access::Both.can_read() && Access::Both.can_write());
        assert!(!Access::Read.can_write() && !Access::Write.can_read());
    }
}
