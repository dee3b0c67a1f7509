//! Fuzz target: the client's reply handling against a scripted peer.
//!
//! A one-connection server answers every request the client sends as the input script
//! says: a proper reply with fuzzed payload, an `XS_ERROR` with a fuzzed name, a watch
//! event first, a reply of the wrong type or with a stale request id, raw garbage, an
//! oversized reply, or a closed connection. The client runs a pipelined batch, a
//! transaction, a watch and a directory that overflows into `XS_DIRECTORY_PART`.
//! Checked: no panic, and every call returns within the client's reply timeout (the
//! harness treats a slow input as a hang).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::Duration;

use xg_store::wire::{Decoder, Header, MsgType};
use xg_store::{Client, Request, Store, TxId};

/// Name in reports.
pub const NAME: &str = "xs_replies";
/// Inputs are cut to this length.
pub const MAX_LEN: usize = 4096;
/// Tokens worth inserting.
pub const DICT: &[&[u8]] = &[
    b"E2BIG\0",
    b"EAGAIN\0",
    b"ENOENT\0",
    b"r5\0b0\0",
    b"17\0",
    b"a\0b\0\0",
    b"/local/domain/3\0",
    b"\x00\x05",
    b"\x04\x00",
];

/// The client keeps at most one payload per outstanding request and its read buffer.
pub fn alloc_cap(_len: usize) -> usize {
    512 * 1024
}

/// How long the client waits for a reply; the peer gives up on silence sooner.
const CLIENT_TIMEOUT: Duration = Duration::from_millis(400);
const PEER_SILENCE: Duration = Duration::from_millis(5);

/// Seed inputs.
pub fn seeds() -> Vec<Vec<u8>> {
    vec![
        vec![
            0, 0, 5, b'h', b'e', b'l', b'l', b'o', 0, 2, b'a', 0, 0, 4, b'r', b'5', 0, b'b',
        ],
        vec![1, 1, 7, b'E', b'A', b'G', b'A', b'I', b'N', 0],
        vec![2, 5, 6, b'/', b'x', 0, b't', 0, 0, 0, 1, 0],
        vec![
            3, 1, 6, b'E', b'2', b'B', b'I', b'G', 0, 0, 4, b'1', 0, b'a', 0,
        ],
        vec![0, 7, 3, 1, 2, 3, 9],
        vec![0, 10, 0, 8, 6, 2, 1, 2],
    ]
}

struct Script<'a> {
    data: &'a [u8],
}

impl Script<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.data.split_first()?;
        self.data = rest;
        Some(b)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head.to_vec()
    }
}

fn header(ty: u32, req_id: u32, tx_id: u32, len: usize) -> [u8; 16] {
    Header {
        msg_type: ty,
        req_id,
        tx_id,
        len: u32::try_from(len).unwrap_or(u32::MAX),
    }
    .to_bytes()
}

/// Serves one connection: one scripted answer per request, then proper replies.
fn serve(listener: &UnixListener, script: &[u8]) {
    let Ok((mut stream, _)) = listener.accept() else {
        return;
    };
    let _ = stream.set_read_timeout(Some(PEER_SILENCE));
    let mut s = Script { data: script };
    let mut decoder = Decoder::new();
    let mut buf = [0u8; 8192];
    loop {
        let frame = loop {
            match decoder.next_frame() {
                Ok(Some(f)) => break Some(f),
                Ok(None) => {}
                Err(_) => break None,
            }
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break None,
                Ok(n) => decoder.feed(&buf[..n]),
            }
        };
        let Some(req) = frame else {
            return;
        };
        let (ty, id, tx) = (req.header.msg_type, req.header.req_id, req.header.tx_id);
        let mut out = Vec::new();
        loop {
            let Some(op) = s.byte() else {
                // Script over: a plain reply (a number, so transaction_start parses).
                out.extend(header(ty, id, tx, 2));
                out.extend(b"1\0");
                break;
            };
            let n = usize::from(s.byte().unwrap_or(0));
            match op % 11 {
                0..=3 => {
                    let p = s.bytes(n);
                    out.extend(header(ty, id, tx, p.len()));
                    out.extend(p);
                    break;
                }
                4 => {
                    let p = s.bytes(n);
                    out.extend(header(MsgType::Error as u32, id, tx, p.len()));
                    out.extend(p);
                    break;
                }
                5 => {
                    let p = s.bytes(n);
                    out.extend(header(MsgType::WatchEvent as u32, 0, 0, p.len()));
                    out.extend(p);
                }
                6 => {
                    let p = s.bytes(4);
                    let mut t = [0u8; 4];
                    t[..p.len()].copy_from_slice(&p);
                    out.extend(header(u32::from_le_bytes(t), id, tx, 0));
                    break;
                }
                7 => out.extend(s.bytes(n)),
                8 => {
                    // A stale reply first, then the real one.
                    out.extend(header(ty, id.wrapping_sub(1 + u32::from(op)), tx, 1));
                    out.push(b'x');
                }
                9 => return,
                _ => {
                    // Oversized: the client must drop it and fail this request only.
                    let len = 4097 + n * 8;
                    out.extend(header(ty, id, tx, len));
                    out.extend(std::iter::repeat_n(0u8, len));
                    break;
                }
            }
        }
        if stream.write_all(&out).is_err() {
            return;
        }
    }
}

fn socket_path() -> PathBuf {
    let id = format!("{:?}", std::thread::current().id());
    let id: String = id.chars().filter(char::is_ascii_digit).collect();
    std::env::temp_dir().join(format!("xg-fuzz-{}-{id}.sock", std::process::id()))
}

/// Checks one input.
pub fn check(data: &[u8]) {
    let Some((&plan, script)) = data.split_first() else {
        return;
    };
    let path = socket_path();
    let _ = std::fs::remove_file(&path);
    let Ok(listener) = UnixListener::bind(&path) else {
        return;
    };
    std::thread::scope(|scope| {
        scope.spawn(|| serve(&listener, script));
        let Ok(client) = Client::open_socket(&path) else {
            // Unblock the peer's accept.
            let _ = std::os::unix::net::UnixStream::connect(&path);
            return;
        };
        client.set_timeout(CLIENT_TIMEOUT);
        match plan % 4 {
            0 => {
                let _ = client.submit(
                    TxId::NONE,
                    &[
                        Request::Read("/a".into()),
                        Request::Directory("/a".into()),
                        Request::GetPerms("/a".into()),
                        Request::Write("/a/b".into(), b"v".to_vec()),
                    ],
                );
            }
            1 => {
                let _ = xg_store::transaction_with_attempts(&client, 3, |tx| {
                    client.write(tx, "/t/k", b"1")?;
                    client.read(tx, "/t/k")
                });
            }
            2 => {
                let _ = client.watch("/w", "tok");
                let _ = client.wait_event(Duration::from_millis(1));
                let _ = client.get_domain_path(3);
            }
            _ => {
                let _ = client.directory(TxId::NONE, "/big");
            }
        }
        let _ = client.read(TxId::NONE, "/after");
        drop(client);
    });
    let _ = std::fs::remove_file(&path);
}
