//! The Xenstore client over a Unix socket or `/dev/xen/xenbus`.
//!
//! Requests are pipelined on the socket: [`Store::submit`] writes every request of a
//! batch (within a window of [`WINDOW_BYTES`] unanswered bytes, so neither side can block
//! on a full socket) before reading replies, and matches replies to requests by `req_id`.
//! On `/dev/xen/xenbus` requests go one at a time: Linux (checked on 6.1) keeps a queued
//! request's body in the file's single write buffer until its xenbus thread copies it to
//! the ring, so a second write can overwrite the first request (a batch of pipelined
//! writes was seen to lose data in dom0). Watch
//! events that arrive in between are queued for [`Client::wait_event`]. Every wait for a
//! reply is bounded by the client's timeout.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::wire::{self, Decoder, Frame, MsgType};
use crate::{Error, Perm, Reply, Request, Result, Store, TxId};

/// The reply timeout of a new client.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Request bytes that may be unanswered at once in a pipelined batch.
pub const WINDOW_BYTES: usize = 64 * 1024;
/// The xenbus device of a Linux dom0.
pub const XENBUS_PATH: &str = "/dev/xen/xenbus";
/// The socket used when neither `XENSTORED_PATH` nor `XENSTORED_RUNDIR` is set.
pub const DEFAULT_SOCKET: &str = "/run/xenstored/socket";

/// A fired watch: the path that changed and the token given to [`Client::watch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    /// The node that changed (or the watched path itself for the initial event).
    pub path: String,
    /// The watch's token.
    pub token: String,
}

/// The socket path libxenstore would use: `$XENSTORED_PATH`, else
/// `$XENSTORED_RUNDIR/socket`, else [`DEFAULT_SOCKET`].
pub fn socket_path_from_env() -> PathBuf {
    if let Some(p) = std::env::var_os("XENSTORED_PATH").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(d) = std::env::var_os("XENSTORED_RUNDIR").filter(|p| !p.is_empty()) {
        return PathBuf::from(d).join("socket");
    }
    PathBuf::from(DEFAULT_SOCKET)
}

/// A connection to xenstored.
#[derive(Debug)]
pub struct Client {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
enum Conn {
    Socket(UnixStream),
    Xenbus {
        file: File,
        /// Chunks read by the reader thread (a `File` has no read timeout).
        chunks: mpsc::Receiver<io::Result<Vec<u8>>>,
        /// Tells the reader thread to stop at its next wake-up.
        closing: Arc<AtomicBool>,
    },
}

#[derive(Debug)]
struct Inner {
    conn: Conn,
    decoder: Decoder,
    next_req_id: u32,
    events: VecDeque<WatchEvent>,
    watches: HashSet<(String, String)>,
    timeout: Duration,
    /// Set once the stream can no longer be trusted (EOF, I/O error, corrupt framing).
    broken: Option<String>,
    /// The read timeout last set on the socket.
    read_timeout: Option<Duration>,
}

/// One request of a batch, ready for the wire.
struct Outgoing {
    op: &'static str,
    path: String,
    msg_type: MsgType,
    payload: Vec<u8>,
}

impl Client {
    /// Connects the way libxenstore does: the socket of [`socket_path_from_env`]; when no
    /// variable names one and the default socket is absent, `/dev/xen/xenbus`.
    pub fn open() -> Result<Client> {
        let path = socket_path_from_env();
        let explicit = std::env::var_os("XENSTORED_PATH").is_some_and(|p| !p.is_empty())
            || std::env::var_os("XENSTORED_RUNDIR").is_some_and(|p| !p.is_empty());
        match Client::open_socket(&path) {
            Ok(c) => Ok(c),
            Err(e) if !explicit && Path::new(XENBUS_PATH).exists() => {
                log::debug!(
                    "socket {} unusable ({e}), using {XENBUS_PATH}",
                    path.display()
                );
                Client::open_xenbus(XENBUS_PATH)
            }
            Err(e) => Err(e),
        }
    }

    /// Connects to the daemon's Unix socket at `path`.
    pub fn open_socket(path: impl AsRef<Path>) -> Result<Client> {
        let stream = UnixStream::connect(path.as_ref()).map_err(|source| Error::Io {
            op: "connect",
            source,
        })?;
        stream
            .set_write_timeout(Some(DEFAULT_TIMEOUT))
            .map_err(|source| Error::Io {
                op: "connect",
                source,
            })?;
        Ok(Client::with_conn(Conn::Socket(stream)))
    }

    /// Opens the xenbus device (normally [`XENBUS_PATH`]).
    ///
    /// A background thread reads the device so replies can be waited for with a timeout;
    /// it ends at the first read error or when the device reports end of file after the
    /// client is dropped.
    pub fn open_xenbus(path: impl AsRef<Path>) -> Result<Client> {
        let io_err = |source| Error::Io {
            op: "open xenbus",
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path.as_ref())
            .map_err(io_err)?;
        let mut reader = file.try_clone().map_err(io_err)?;
        let (tx, rx) = mpsc::channel();
        let closing = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&closing);
        std::thread::Builder::new()
            .name("xg-store-xenbus".into())
            .spawn(move || {
                let mut buf = vec![0u8; wire::HEADER_LEN + wire::PAYLOAD_MAX];
                loop {
                    let read = reader.read(&mut buf);
                    if stop_flag.load(Ordering::Acquire) {
                        // The client is gone: close our copy of the device so the kernel
                        // drops this connection's watches and transactions.
                        break;
                    }
                    let item = match read {
                        Ok(0) => Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
                        Ok(n) => Ok(buf[..n].to_vec()),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => Err(e),
                    };
                    let stop = item.is_err();
                    if tx.send(item).is_err() || stop {
                        break;
                    }
                }
            })
            .map_err(io_err)?;
        Ok(Client::with_conn(Conn::Xenbus {
            file,
            chunks: rx,
            closing,
        }))
    }

    fn with_conn(conn: Conn) -> Client {
        Client {
            inner: Mutex::new(Inner {
                conn,
                decoder: Decoder::new(),
                next_req_id: 1,
                events: VecDeque::new(),
                watches: HashSet::new(),
                timeout: DEFAULT_TIMEOUT,
                broken: None,
                read_timeout: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves nothing half-updated that matters more
        // than the `broken` flag, so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets how long to wait for each reply (and for a socket write to be accepted).
    pub fn set_timeout(&self, timeout: Duration) {
        let mut inner = self.lock();
        inner.timeout = timeout;
        if let Conn::Socket(s) = &inner.conn {
            if let Err(e) = s.set_write_timeout(Some(timeout.max(Duration::from_millis(1)))) {
                log::warn!("setting the socket write timeout failed: {e}");
            }
        }
    }

    /// The current reply timeout.
    pub fn timeout(&self) -> Duration {
        self.lock().timeout
    }

    /// `XS_WATCH`. The daemon fires one event for `path` itself right after the reply;
    /// it is queued like any other. `path` may be a special path such as
    /// `@introduceDomain`.
    pub fn watch(&self, path: &str, token: &str) -> Result<()> {
        let mut inner = self.lock();
        inner.simple(
            "watch",
            path,
            MsgType::Watch,
            TxId::NONE,
            wire::strings_payload(&[path.as_bytes(), token.as_bytes()]),
        )?;
        inner.watches.insert((path.to_owned(), token.to_owned()));
        Ok(())
    }

    /// `XS_UNWATCH`. Queued events of `token` are dropped when no other watch uses it.
    pub fn unwatch(&self, path: &str, token: &str) -> Result<()> {
        let mut inner = self.lock();
        inner.simple(
            "unwatch",
            path,
            MsgType::Unwatch,
            TxId::NONE,
            wire::strings_payload(&[path.as_bytes(), token.as_bytes()]),
        )?;
        inner.watches.remove(&(path.to_owned(), token.to_owned()));
        if !inner.watches.iter().any(|(_, t)| t == token) {
            inner.events.retain(|e| e.token != token);
        }
        Ok(())
    }

    /// The next watch event, waiting up to `timeout`; `Ok(None)` if none came.
    pub fn wait_event(&self, timeout: Duration) -> Result<Option<WatchEvent>> {
        let mut inner = self.lock();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = inner.events.pop_front() {
                return Ok(Some(e));
            }
            match inner.recv_frame("wait_event", deadline) {
                Ok(frame) => inner.route_unsolicited(frame),
                Err(Error::Timeout { .. }) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    /// Watch events as an iterator: each item waits up to `idle` for the next event, and
    /// the iterator ends when none comes in that time (or after yielding an error).
    pub fn events(&self, idle: Duration) -> Events<'_> {
        Events {
            client: self,
            idle,
            done: false,
        }
    }

    /// A queued watch event, without waiting or reading.
    pub fn try_event(&self) -> Option<WatchEvent> {
        self.lock().events.pop_front()
    }

    /// Number of queued watch events.
    pub fn queued_events(&self) -> usize {
        self.lock().events.len()
    }

    /// `XS_INTRODUCE`: tells the daemon about domain `domid`'s ring (toolstack use).
    pub fn introduce(&self, domid: u32, mfn: u64, port: u32) -> Result<()> {
        let payload = wire::strings_payload(&[
            domid.to_string().as_bytes(),
            mfn.to_string().as_bytes(),
            port.to_string().as_bytes(),
        ]);
        self.lock()
            .simple("introduce", "", MsgType::Introduce, TxId::NONE, payload)
            .map(drop)
    }

    /// `XS_RELEASE`: forgets domain `domid` (toolstack use).
    pub fn release(&self, domid: u32) -> Result<()> {
        self.domid_op("release", MsgType::Release, domid).map(drop)
    }

    /// `XS_RESUME` of domain `domid`.
    pub fn resume(&self, domid: u32) -> Result<()> {
        self.domid_op("resume", MsgType::Resume, domid).map(drop)
    }

    /// `XS_IS_DOMAIN_INTRODUCED`.
    pub fn is_domain_introduced(&self, domid: u32) -> Result<bool> {
        let reply = self.domid_op("is_domain_introduced", MsgType::IsDomainIntroduced, domid)?;
        Ok(wire::first_string(&reply) == "T")
    }

    /// `XS_SET_TARGET`: lets `target_domid`'s device model act for `domid`.
    pub fn set_target(&self, domid: u32, target_domid: u32) -> Result<()> {
        let payload = wire::strings_payload(&[
            domid.to_string().as_bytes(),
            target_domid.to_string().as_bytes(),
        ]);
        self.lock()
            .simple("set_target", "", MsgType::SetTarget, TxId::NONE, payload)
            .map(drop)
    }

    /// `XS_RESET_WATCHES`: drops every watch (and transaction) of this connection.
    pub fn reset_watches(&self) -> Result<()> {
        let mut inner = self.lock();
        inner.simple(
            "reset_watches",
            "",
            MsgType::ResetWatches,
            TxId::NONE,
            vec![0],
        )?;
        inner.watches.clear();
        inner.events.clear();
        Ok(())
    }

    /// `XS_CONTROL` with NUL-separated arguments; returns the raw reply.
    pub fn control(&self, args: &[&str]) -> Result<Vec<u8>> {
        let parts: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        let mut payload = wire::strings_payload(&parts);
        if payload.is_empty() {
            payload.push(0);
        }
        self.lock()
            .simple("control", "", MsgType::Control, TxId::NONE, payload)
    }

    /// `XS_DIRECTORY_PART` from byte `offset`: returns the generation string and the raw
    /// child bytes (NUL-terminated names; an extra NUL marks the end).
    pub fn directory_part(&self, tx: TxId, path: &str, offset: usize) -> Result<(String, Vec<u8>)> {
        self.lock().directory_part(tx, path, offset)
    }

    fn domid_op(&self, op: &'static str, msg_type: MsgType, domid: u32) -> Result<Vec<u8>> {
        let payload = wire::strings_payload(&[domid.to_string().as_bytes()]);
        self.lock().simple(op, "", msg_type, TxId::NONE, payload)
    }
}

/// Iterator of [`Client::events`].
#[derive(Debug)]
pub struct Events<'a> {
    client: &'a Client,
    idle: Duration,
    done: bool,
}

impl Iterator for Events<'_> {
    type Item = Result<WatchEvent>;

    fn next(&mut self) -> Option<Result<WatchEvent>> {
        if self.done {
            return None;
        }
        match self.client.wait_event(self.idle) {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl Inner {
    /// Sends one request and returns its reply payload (daemon errors as `Err`).
    fn simple(
        &mut self,
        op: &'static str,
        path: &str,
        msg_type: MsgType,
        tx: TxId,
        payload: Vec<u8>,
    ) -> Result<Vec<u8>> {
        let out = Outgoing {
            op,
            path: path.to_owned(),
            msg_type,
            payload,
        };
        let mut results = self.exchange(tx, vec![out])?;
        match results.pop() {
            Some(r) => r.map(|f| f.payload),
            None => Err(Error::Protocol {
                detail: "no reply".into(),
            }),
        }
    }

    fn check_usable(&self) -> Result<()> {
        match &self.broken {
            Some(why) => Err(Error::Protocol {
                detail: format!("connection unusable after an earlier failure: {why}"),
            }),
            None => Ok(()),
        }
    }

    fn take_req_id(&mut self) -> u32 {
        let id = self.next_req_id;
        // 0 is skipped: some peers use it for unsolicited messages.
        self.next_req_id = self.next_req_id.wrapping_add(1).max(1);
        id
    }

    /// Sends `reqs` pipelined and collects one reply frame (or error) per request.
    fn exchange(&mut self, tx: TxId, reqs: Vec<Outgoing>) -> Result<Vec<Result<Frame>>> {
        self.check_usable()?;
        let mut results: Vec<Option<Result<Frame>>> = Vec::with_capacity(reqs.len());
        let mut encoded: Vec<Option<(u32, Vec<u8>)>> = Vec::with_capacity(reqs.len());
        for r in &reqs {
            let id = self.take_req_id();
            match wire::encode(r.msg_type, id, tx.0, &r.payload) {
                Ok(bytes) => {
                    encoded.push(Some((id, bytes)));
                    results.push(None);
                }
                Err(e) => {
                    encoded.push(None);
                    results.push(Some(Err(e)));
                }
            }
        }
        let mut pending: HashMap<u32, (usize, usize)> = HashMap::new();
        let mut in_flight = 0usize;
        let mut next = 0usize;
        let mut deadline = Instant::now() + self.timeout;
        let xenbus = matches!(self.conn, Conn::Xenbus { .. });
        loop {
            // Fill the window.
            let mut batch: Vec<&[u8]> = Vec::new();
            while next < encoded.len() {
                let Some((id, bytes)) = &encoded[next] else {
                    next += 1;
                    continue;
                };
                if in_flight > 0 && in_flight + bytes.len() > WINDOW_BYTES {
                    break;
                }
                // Linux's xenbus device queues a request with its body still in the
                // per-file write buffer, which the next write overwrites: one at a time.
                if xenbus && !pending.is_empty() {
                    break;
                }
                batch.push(bytes);
                in_flight += bytes.len();
                pending.insert(*id, (next, bytes.len()));
                next += 1;
            }
            if !batch.is_empty() {
                self.send(reqs[next - 1].op, &batch)?;
            }
            if pending.is_empty() {
                break;
            }
            let frame = self.recv_frame(reqs[next.saturating_sub(1)].op, deadline)?;
            match pending.remove(&frame.header.req_id) {
                Some((index, len)) if frame.header.msg_type != MsgType::WatchEvent as u32 => {
                    in_flight -= len;
                    deadline = Instant::now() + self.timeout;
                    results[index] = Some(reply_frame(&reqs[index], frame));
                }
                Some(entry) => {
                    pending.insert(frame.header.req_id, entry);
                    self.route_unsolicited(frame);
                }
                None => self.route_unsolicited(frame),
            }
        }
        Ok(results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(Error::Protocol {
                        detail: "request left without reply".into(),
                    })
                })
            })
            .collect())
    }

    /// Queues a watch event; drops (and logs) a stale reply.
    fn route_unsolicited(&mut self, frame: Frame) {
        if frame.header.msg_type == MsgType::WatchEvent as u32 {
            let mut parts = wire::split_strings(&frame.payload).into_iter();
            match (parts.next(), parts.next()) {
                (Some(path), Some(token)) => self.events.push_back(WatchEvent { path, token }),
                _ => log::warn!("malformed watch event dropped"),
            }
        } else {
            log::debug!(
                "dropping reply type {} for unknown req_id {}",
                frame.header.msg_type,
                frame.header.req_id
            );
        }
    }

    /// Writes whole frames: on a socket all in one write; on xenbus one write per frame,
    /// because the Linux device takes exactly one message per write and drops the rest.
    fn send(&mut self, op: &'static str, frames: &[&[u8]]) -> Result<()> {
        let res = match &mut self.conn {
            Conn::Socket(s) => s.write_all(&frames.concat()),
            Conn::Xenbus { file, .. } => frames.iter().try_for_each(|f| file.write_all(f)),
        };
        res.map_err(|source| {
            self.broken = Some(format!("write failed: {source}"));
            Error::Io { op, source }
        })
    }

    /// The next frame from the peer, waiting until `deadline`.
    fn recv_frame(&mut self, op: &'static str, deadline: Instant) -> Result<Frame> {
        loop {
            match self.decoder.next_frame() {
                Ok(Some(frame)) => return Ok(frame),
                Ok(None) => {}
                Err(e) => {
                    self.broken = Some(e.to_string());
                    return Err(e);
                }
            }
            let now = Instant::now();
            let timeout = self.timeout;
            let millis = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
            let Some(left) = deadline
                .checked_duration_since(now)
                .filter(|d| !d.is_zero())
            else {
                return Err(Error::Timeout { op, millis });
            };
            let chunk = match &mut self.conn {
                Conn::Socket(s) => {
                    let mut buf = [0u8; 8192];
                    // Round the wait up to a sixteenth of the timeout so the socket
                    // option is not reset before every read of a fast exchange.
                    let quantum = (timeout / 16).max(Duration::from_millis(1));
                    let steps = left.as_nanos().div_ceil(quantum.as_nanos().max(1));
                    let wait = quantum * u32::try_from(steps).unwrap_or(u32::MAX);
                    if self.read_timeout != Some(wait) {
                        if let Err(source) = s.set_read_timeout(Some(wait)) {
                            return Err(Error::Io { op, source });
                        }
                        self.read_timeout = Some(wait);
                    }
                    match s.read(&mut buf) {
                        Ok(0) => Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
                        Ok(n) => Ok(buf[..n].to_vec()),
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                            ) =>
                        {
                            return Err(Error::Timeout { op, millis });
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => Err(e),
                    }
                }
                Conn::Xenbus { chunks, .. } => match chunks.recv_timeout(left) {
                    Ok(item) => item,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        return Err(Error::Timeout { op, millis });
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        Err(io::Error::from(io::ErrorKind::UnexpectedEof))
                    }
                },
            };
            match chunk {
                Ok(bytes) => self.decoder.feed(&bytes),
                Err(source) => {
                    self.broken = Some(format!("read failed: {source}"));
                    return Err(Error::Io { op, source });
                }
            }
        }
    }

    fn directory_part(&mut self, tx: TxId, path: &str, offset: usize) -> Result<(String, Vec<u8>)> {
        let payload = wire::strings_payload(&[path.as_bytes(), offset.to_string().as_bytes()]);
        let reply = self.simple("directory_part", path, MsgType::DirectoryPart, tx, payload)?;
        let gen_end = reply
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| Error::Protocol {
                detail: "directory part without generation".into(),
            })?;
        let generation = String::from_utf8_lossy(&reply[..gen_end]).into_owned();
        Ok((generation, reply[gen_end + 1..].to_vec()))
    }

    /// Reassembles a directory from `XS_DIRECTORY_PART` replies, restarting when the
    /// node's generation changes between parts.
    fn directory_by_parts(&mut self, tx: TxId, path: &str) -> Result<Vec<String>> {
        let mut restarts = 0;
        'restart: loop {
            let mut strings: Vec<u8> = Vec::new();
            let mut first_gen: Option<String> = None;
            loop {
                let (generation, data) = self.directory_part(tx, path, strings.len())?;
                match &first_gen {
                    Some(g) if *g != generation => {
                        restarts += 1;
                        if restarts > 8 {
                            return Err(Error::daemon("directory", path, libc::EAGAIN));
                        }
                        continue 'restart;
                    }
                    Some(_) => {}
                    None => first_gen = Some(generation),
                }
                let done = data.len() <= 1 || data.ends_with(&[0, 0]);
                strings.extend_from_slice(&data);
                if done {
                    break;
                }
            }
            return Ok(wire::split_strings(&strings)
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect());
        }
    }
}

fn request_wire(req: &Request) -> Outgoing {
    let (op, path, msg_type, payload) = match req {
        Request::Read(p) => (
            "read",
            p,
            MsgType::Read,
            wire::strings_payload(&[p.as_bytes()]),
        ),
        Request::Write(p, v) => {
            let mut payload = wire::strings_payload(&[p.as_bytes()]);
            payload.extend_from_slice(v);
            ("write", p, MsgType::Write, payload)
        }
        Request::Mkdir(p) => (
            "mkdir",
            p,
            MsgType::Mkdir,
            wire::strings_payload(&[p.as_bytes()]),
        ),
        Request::Rm(p) => ("rm", p, MsgType::Rm, wire::strings_payload(&[p.as_bytes()])),
        Request::Directory(p) => (
            "directory",
            p,
            MsgType::Directory,
            wire::strings_payload(&[p.as_bytes()]),
        ),
        Request::GetPerms(p) => (
            "get_perms",
            p,
            MsgType::GetPerms,
            wire::strings_payload(&[p.as_bytes()]),
        ),
        Request::SetPerms(p, perms) => {
            let texts: Vec<String> = perms.iter().map(Perm::to_string).collect();
            let mut parts: Vec<&[u8]> = vec![p.as_bytes()];
            parts.extend(texts.iter().map(|t| t.as_bytes()));
            (
                "set_perms",
                p,
                MsgType::SetPerms,
                wire::strings_payload(&parts),
            )
        }
    };
    Outgoing {
        op,
        path: path.clone(),
        msg_type,
        payload,
    }
}

/// Checks a reply frame against its request: daemon errors, oversized and mismatched
/// replies become errors.
fn reply_frame(req: &Outgoing, frame: Frame) -> Result<Frame> {
    if frame.oversized {
        return Err(Error::Protocol {
            detail: format!(
                "{} reply of {} bytes exceeds {}",
                req.op,
                frame.header.len,
                wire::PAYLOAD_MAX
            ),
        });
    }
    if frame.header.msg_type == MsgType::Error as u32 {
        let name = wire::error_name(&frame.payload);
        return Err(Error::Daemon {
            op: req.op,
            path: req.path.clone(),
            errno: wire::errno_of(&name),
            name,
        });
    }
    if frame.header.msg_type != req.msg_type as u32 {
        return Err(Error::Protocol {
            detail: format!(
                "{} answered with message type {}",
                req.msg_type.name(),
                frame.header.msg_type
            ),
        });
    }
    Ok(frame)
}

fn decode_reply(req: &Request, payload: Vec<u8>) -> Result<Reply> {
    Ok(match req {
        Request::Read(_) => Reply::Data(payload),
        Request::Write(..) | Request::Mkdir(_) | Request::Rm(_) | Request::SetPerms(..) => {
            Reply::Ok
        }
        Request::Directory(_) => Reply::List(
            wire::split_strings(&payload)
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect(),
        ),
        Request::GetPerms(_) => {
            let perms = wire::split_strings(&payload)
                .iter()
                .filter(|s| !s.is_empty())
                .map(|s| {
                    Perm::parse(s).ok_or_else(|| Error::Protocol {
                        detail: format!("bad permission entry {s:?}"),
                    })
                })
                .collect::<Result<Vec<Perm>>>()?;
            Reply::Perms(perms)
        }
    })
}

impl Store for Client {
    fn submit(&self, tx: TxId, reqs: &[Request]) -> Result<Vec<Result<Reply>>> {
        let mut inner = self.lock();
        let frames = inner.exchange(tx, reqs.iter().map(request_wire).collect())?;
        let mut replies = Vec::with_capacity(reqs.len());
        for (req, frame) in reqs.iter().zip(frames) {
            let reply = match (frame, req) {
                (Ok(f), _) => decode_reply(req, f.payload),
                // C xenstored refuses a listing over 4096 bytes; fetch it in parts as
                // libxenstore does.
                (Err(Error::Daemon { errno, .. }), Request::Directory(path))
                    if errno == libc::E2BIG =>
                {
                    inner.directory_by_parts(tx, path).map(Reply::List)
                }
                (Err(e), _) => Err(e),
            };
            replies.push(reply);
        }
        Ok(replies)
    }

    fn transaction_start(&self) -> Result<TxId> {
        let reply = self.lock().simple(
            "transaction_start",
            "",
            MsgType::TransactionStart,
            TxId::NONE,
            vec![0],
        )?;
        let text = wire::first_string(&reply);
        text.parse::<u32>().map(TxId).map_err(|_| Error::Protocol {
            detail: format!("bad transaction id {text:?}"),
        })
    }

    fn transaction_end(&self, tx: TxId, commit: bool) -> Result<()> {
        let flag: &[u8] = if commit { b"T" } else { b"F" };
        self.lock()
            .simple(
                "transaction_end",
                "",
                MsgType::TransactionEnd,
                tx,
                wire::strings_payload(&[flag]),
            )
            .map(drop)
    }

    fn get_domain_path(&self, domid: u32) -> Result<String> {
        let reply = self.domid_op("get_domain_path", MsgType::GetDomainPath, domid)?;
        Ok(wire::first_string(&reply))
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        match &mut self.lock().conn {
            Conn::Socket(s) => {
                // Tells the daemon promptly, even if the descriptor was inherited.
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
            Conn::Xenbus { file, closing, .. } => {
                // The reader thread blocks in read(): ask for a harmless reply to wake it.
                closing.store(true, Ordering::Release);
                if let Ok(wake) = wire::encode(MsgType::GetDomainPath, 0, 0, b"0\0") {
                    let _ = file.write_all(&wake);
                }
            }
        }
    }
}
