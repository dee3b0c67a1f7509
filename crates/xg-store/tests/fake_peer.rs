//! The client against scripted peers: replies out of order, events before replies, stale
//! and oversized replies, silence (timeouts), a closed connection, and the xenbus
//! transport over a FIFO that echoes every request back.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use xg_store::wire::{self, Decoder, Frame, Header, MsgType};
use xg_store::{Client, Error, Reply, Request, Store, TxId};

/// A one-connection server running `script` on the accepted stream.
struct Peer {
    path: PathBuf,
    _dir: tempfile::TempDir,
    handle: Option<JoinHandle<Vec<Frame>>>,
}

impl Peer {
    fn start(script: impl FnOnce(&mut Conn) + Send + 'static) -> Peer {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let listener = UnixListener::bind(&path).unwrap();
        let handle = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut conn = Conn {
                stream,
                decoder: Decoder::new(),
                seen: Vec::new(),
            };
            script(&mut conn);
            conn.seen
        });
        Peer {
            path,
            _dir: dir,
            handle: Some(handle),
        }
    }

    fn client(&self) -> Client {
        Client::open_socket(&self.path).unwrap()
    }

    /// Every frame the peer received.
    fn finish(mut self) -> Vec<Frame> {
        self.handle.take().unwrap().join().unwrap()
    }
}

struct Conn {
    stream: UnixStream,
    decoder: Decoder,
    seen: Vec<Frame>,
}

impl Conn {
    fn recv(&mut self) -> Option<Frame> {
        loop {
            if let Some(f) = self.decoder.next_frame().unwrap() {
                self.seen.push(f.clone());
                return Some(f);
            }
            let mut buf = [0u8; 8192];
            match self.stream.read(&mut buf) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.decoder.feed(&buf[..n]),
            }
        }
    }

    fn send_raw(&mut self, ty: u32, req_id: u32, payload: &[u8]) {
        let h = Header {
            msg_type: ty,
            req_id,
            tx_id: 0,
            len: u32::try_from(payload.len()).unwrap(),
        };
        let _ = self.stream.write_all(&h.to_bytes());
        let _ = self.stream.write_all(payload);
    }

    fn reply(&mut self, to: &Frame, payload: &[u8]) {
        self.send_raw(to.header.msg_type, to.header.req_id, payload);
    }

    fn event(&mut self, path: &str, token: &str) {
        let p = wire::strings_payload(&[path.as_bytes(), token.as_bytes()]);
        self.send_raw(MsgType::WatchEvent as u32, 0, &p);
    }
}

#[test]
fn replies_are_matched_by_req_id_and_events_queued() {
    let peer = Peer::start(|c| {
        let mut reqs = Vec::new();
        for _ in 0..3 {
            reqs.push(c.recv().unwrap());
        }
        // A stale reply nobody asked for, an event, then the replies backwards.
        c.send_raw(MsgType::Read as u32, 999, b"stale");
        c.event("/w/x", "tok");
        for r in reqs.iter().rev() {
            let path = wire::first_string(&r.payload);
            if path == "/missing" {
                c.send_raw(MsgType::Error as u32, r.header.req_id, b"ENOENT\0");
            } else {
                c.reply(r, format!("value of {path}").as_bytes());
            }
        }
        c.event("/w/y", "tok");
        while c.recv().is_some() {}
    });
    let xs = peer.client();
    let replies = xs
        .submit(
            TxId(5),
            &[
                Request::Read("/a".into()),
                Request::Read("/missing".into()),
                Request::Read("/b".into()),
            ],
        )
        .unwrap();
    assert_eq!(
        replies[0].as_ref().unwrap(),
        &Reply::Data(b"value of /a".to_vec())
    );
    assert!(replies[1].as_ref().unwrap_err().is_not_found());
    assert_eq!(
        replies[2].as_ref().unwrap(),
        &Reply::Data(b"value of /b".to_vec())
    );
    assert_eq!(xs.try_event().unwrap().path, "/w/x");
    assert_eq!(
        xs.wait_event(Duration::from_secs(5)).unwrap().unwrap().path,
        "/w/y"
    );
    drop(xs);
    let seen = peer.finish();
    // All three went out before any reply was read, with distinct ids and the tx id.
    let ids: std::collections::HashSet<u32> = seen.iter().map(|f| f.header.req_id).collect();
    assert_eq!(ids.len(), 3);
    assert!(seen.iter().all(|f| f.header.tx_id == 5));
}

#[test]
fn a_silent_peer_times_out_instead_of_hanging() {
    let peer = Peer::start(|c| while c.recv().is_some() {});
    let xs = peer.client();
    xs.set_timeout(Duration::from_millis(150));
    let t = Instant::now();
    let e = xs.read(TxId::NONE, "/x").unwrap_err();
    assert!(
        matches!(
            e,
            Error::Timeout {
                op: "read",
                millis: 150
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.errno(), Some(libc::ETIMEDOUT));
    assert!(t.elapsed() < Duration::from_secs(2));
    drop(xs);
    peer.finish();
}

#[test]
fn a_late_reply_after_a_timeout_is_not_mistaken_for_the_next() {
    let peer = Peer::start(|c| {
        let first = c.recv().unwrap();
        let second = c.recv().unwrap();
        c.reply(&first, b"late");
        c.reply(&second, b"right");
        while c.recv().is_some() {}
    });
    let xs = peer.client();
    xs.set_timeout(Duration::from_millis(100));
    assert!(matches!(
        xs.read(TxId::NONE, "/first"),
        Err(Error::Timeout { .. })
    ));
    xs.set_timeout(Duration::from_secs(5));
    assert_eq!(xs.read(TxId::NONE, "/second").unwrap(), b"right");
    drop(xs);
    peer.finish();
}

#[test]
fn no_request_has_an_empty_payload() {
    let peer = Peer::start(|c| {
        while let Some(f) = c.recv() {
            let payload: &[u8] = match f.header.kind() {
                Some(MsgType::TransactionStart) => b"3\0",
                _ => b"OK\0",
            };
            c.reply(&f, payload);
        }
    });
    let xs = peer.client();
    let tx = xs.transaction_start().unwrap();
    assert_eq!(tx, TxId(3));
    xs.transaction_end(tx, true).unwrap();
    xs.reset_watches().unwrap();
    xs.control(&[]).unwrap();
    xs.write(TxId::NONE, "/e", b"").unwrap();
    drop(xs);
    let seen = peer.finish();
    assert_eq!(seen.len(), 5);
    for f in &seen {
        assert!(f.header.len > 0, "{:?} sent empty", f.header.kind());
    }
    assert_eq!(seen[1].payload, b"T\0");
    assert_eq!(seen[4].payload, b"/e\0");
}

#[test]
fn oversized_replies_fail_their_request_only() {
    let peer = Peer::start(|c| {
        let r = c.recv().unwrap();
        c.reply(&r, &vec![b'a'; 6000]);
        let r = c.recv().unwrap();
        c.reply(&r, b"fine");
        // Then a length no daemon would send: the stream is dead.
        let r = c.recv().unwrap();
        let h = Header {
            msg_type: r.header.msg_type,
            req_id: r.header.req_id,
            tx_id: 0,
            len: 0x7fff_ffff,
        };
        let _ = c.stream.write_all(&h.to_bytes());
        while c.recv().is_some() {}
    });
    let xs = peer.client();
    let e = xs.read(TxId::NONE, "/big").unwrap_err();
    assert!(matches!(e, Error::Protocol { .. }), "{e:?}");
    assert_eq!(xs.read(TxId::NONE, "/ok").unwrap(), b"fine");
    assert!(matches!(
        xs.read(TxId::NONE, "/x"),
        Err(Error::Protocol { .. })
    ));
    // Poisoned: refused at once, nothing more is sent.
    let t = Instant::now();
    assert!(matches!(
        xs.read(TxId::NONE, "/y"),
        Err(Error::Protocol { .. })
    ));
    assert!(t.elapsed() < Duration::from_secs(1));
    drop(xs);
    assert_eq!(peer.finish().len(), 3);
}

#[test]
fn a_closed_connection_is_an_io_error() {
    let peer = Peer::start(|c| {
        c.recv();
    });
    let xs = peer.client();
    let e = xs.read(TxId::NONE, "/x").unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    peer.finish();
}

#[test]
fn xenbus_transport_over_an_echoing_fifo() {
    // A FIFO opened read-write hands every request straight back: each request reads its
    // own frame as the reply, which exercises the device transport end to end.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("xenbus");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let xs = Client::open_xenbus(&fifo).unwrap();
    assert_eq!(xs.read(TxId::NONE, "/echo").unwrap(), b"/echo\0");
    let replies = xs
        .submit(
            TxId::NONE,
            &[Request::Read("/a".into()), Request::Read("/b".into())],
        )
        .unwrap();
    assert_eq!(replies[1].as_ref().unwrap(), &Reply::Data(b"/b\0".to_vec()));
    assert_eq!(xs.wait_event(Duration::from_millis(50)).unwrap(), None);
    assert!(Client::open_xenbus(dir.path().join("absent")).is_err());

    // Dropping the client wakes and ends its reader thread (which would otherwise keep
    // the device, and the kernel-side watches, open).
    assert_eq!(reader_threads(), 1);
    drop(xs);
    let t = Instant::now();
    while reader_threads() > 0 && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(reader_threads(), 0);
}

fn reader_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == "xg-store-xenbus")
        .count()
}
