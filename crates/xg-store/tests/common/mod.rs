//! Shared helpers of the integration tests.
#![allow(dead_code, clippy::print_stderr)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use xg_store::fixture::{self, Daemon, Flavour};
use xg_store::wire::{self, Decoder, Frame, MsgType};

/// Starts a daemon; `None` (with a message) when it is not installed, except under
/// `CI=true`, where a missing fixture fails the test.
pub fn daemon(flavour: Flavour) -> Option<Daemon> {
    daemon_with_env(flavour, &[])
}

/// [`daemon`] with extra environment for `xenstored-up`.
pub fn daemon_with_env(flavour: Flavour, env: &[(&str, &str)]) -> Option<Daemon> {
    match Daemon::start_with_env(flavour, env) {
        Ok(d) => Some(d),
        Err(e) if e.is_missing() && !fixture::required_by_ci() => {
            eprintln!(
                "SKIPPED ({}): {e}; install xen-utils-4.17 xenstore-utils gcc (CI=true makes this a failure)",
                flavour.name()
            );
            None
        }
        Err(e) => panic!("cannot start {}: {e:?}", flavour.name()),
    }
}

/// Runs `body` once per available daemon, each on a fresh instance.
pub fn each_daemon(mut body: impl FnMut(&Daemon)) {
    for flavour in Flavour::BOTH {
        if let Some(d) = daemon(flavour) {
            body(&d);
        }
    }
}

/// A raw connection for wire-level checks the client deliberately hides.
pub struct Raw {
    stream: UnixStream,
    decoder: Decoder,
}

impl Raw {
    pub fn connect(d: &Daemon) -> Raw {
        let stream = UnixStream::connect(d.socket()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        Raw {
            stream,
            decoder: Decoder::new(),
        }
    }

    pub fn send(&mut self, ty: u32, req_id: u32, tx: u32, payload: &[u8]) {
        let header = wire::Header {
            msg_type: ty,
            req_id,
            tx_id: tx,
            len: u32::try_from(payload.len()).unwrap(),
        };
        self.stream.write_all(&header.to_bytes()).unwrap();
        self.stream.write_all(payload).unwrap();
    }

    pub fn recv(&mut self) -> Frame {
        loop {
            if let Some(f) = self.decoder.next_frame().unwrap() {
                return f;
            }
            let mut buf = [0u8; 4096];
            let n = self.stream.read(&mut buf).expect("reply within 5 s");
            assert!(n > 0, "daemon closed the connection");
            self.decoder.feed(&buf[..n]);
        }
    }

    /// Frames as `TYPE:req_id` strings, for ordering checks.
    pub fn recv_kinds(&mut self, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                let f = self.recv();
                let name = f.header.kind().map_or("?", MsgType::name);
                format!("{name}:{}", f.header.req_id)
            })
            .collect()
    }
}
