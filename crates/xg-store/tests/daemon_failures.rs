//! The client when the real daemon fails: killed (SIGKILL) or stopped (SIGSTOP) before
//! a request, in the middle of a pipelined batch and before a transaction commits, and a
//! watch firing inside a transaction. Every call must come back within the client's
//! reply timeout (never hang), with an error, and a transaction must be all or nothing.
//!
//! Uses the shared fixture (C xenstored and oxenstored); skipped when it is not
//! installed, except under `CI=true`.
#![allow(clippy::print_stderr)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::daemon;
use xg_store::fixture::{Daemon, Flavour};
use xg_store::{transaction, Client, Error, Request, Store, TxId};

const NONE: TxId = TxId::NONE;
/// The reply timeout the tests give their clients.
const TIMEOUT: Duration = Duration::from_millis(300);
/// How much later than the timeout a call may return (scheduling on a busy CI box).
const SLACK: Duration = Duration::from_millis(1500);

fn signal(d: &Daemon, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &d.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {sig} {}", d.pid());
}

/// Resumes a stopped daemon when dropped, so a failing assertion does not leave it
/// stopped (its `Drop` would then wait for SIGTERM to time out).
struct Stopped<'a>(&'a Daemon);

impl<'a> Stopped<'a> {
    fn new(d: &'a Daemon) -> Stopped<'a> {
        signal(d, "-STOP");
        Stopped(d)
    }
}

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        signal(self.0, "-CONT");
    }
}

fn client(d: &Daemon) -> Client {
    let c = d.client().unwrap();
    c.set_timeout(TIMEOUT);
    c
}

/// Runs `f`, asserting it returns within the timeout plus slack; returns its result.
fn bounded<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t0 = Instant::now();
    let r = f();
    let took = t0.elapsed();
    assert!(took < TIMEOUT + SLACK, "{what} took {took:?}");
    r
}

fn each(mut body: impl FnMut(&Daemon)) {
    for flavour in Flavour::BOTH {
        if let Some(d) = daemon(flavour) {
            body(&d);
        }
    }
}

#[test]
fn stopped_daemon_times_out_every_kind_of_call() {
    each(|d| {
        let xs = client(d);
        xs.write(NONE, "/t/a", b"1").unwrap();
        {
            let _stopped = Stopped::new(d);
            let e = bounded("read", || xs.read(NONE, "/t/a")).unwrap_err();
            assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
            assert_eq!(e.errno(), Some(libc::ETIMEDOUT));
            // Each later call is bounded too, whatever state the first left behind.
            let e = bounded("batch", || {
                xs.submit(
                    NONE,
                    &[
                        Request::Read("/t/a".into()),
                        Request::Write("/t/b".into(), b"2".to_vec()),
                        Request::Directory("/t".into()),
                    ],
                )
            });
            assert!(e.is_err(), "{e:?}");
            assert!(bounded("transaction start", || xs.transaction_start()).is_err());
            assert!(bounded("domain path", || xs.get_domain_path(3)).is_err());
        }
        // A new connection works once the daemon runs again.
        let fresh = client(d);
        assert_eq!(fresh.read(NONE, "/t/a").unwrap(), b"1");
    });
}

#[test]
fn killed_daemon_is_an_error_not_a_hang() {
    each(|d| {
        let xs = client(d);
        xs.write(NONE, "/k/a", b"1").unwrap();
        let tx = xs.transaction_start().unwrap();
        xs.write(tx, "/k/b", b"2").unwrap();
        signal(d, "-KILL");
        // Give the kernel a moment to close the daemon's end.
        std::thread::sleep(Duration::from_millis(50));
        let e = bounded("read after kill", || xs.read(NONE, "/k/a")).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Io { .. } | Error::Protocol { .. } | Error::Timeout { .. }
            ),
            "{e:?}"
        );
        assert!(bounded("commit after kill", || xs.transaction_end(tx, true)).is_err());
        assert!(bounded("batch after kill", || xs.submit(
            NONE,
            &[Request::Read("/k/a".into()), Request::Read("/k/b".into())]
        ))
        .is_err());
        // Connecting again fails at once: nobody listens any more.
        let again = bounded("connect after kill", || Client::open_socket(d.socket()));
        if let Ok(c) = again {
            c.set_timeout(TIMEOUT);
            assert!(bounded("read on a dead socket", || c.read(NONE, "/k/a")).is_err());
        }
    });
}

/// The daemon stops before the commit of a transaction with several writes: the commit
/// times out, and once the daemon runs again the writes are all there or none is.
#[test]
fn transaction_interrupted_before_commit_is_all_or_nothing() {
    each(|d| {
        let xs = client(d);
        let keys: Vec<String> = (0..8).map(|i| format!("/tx/k{i}")).collect();
        let tx = xs.transaction_start().unwrap();
        let reqs: Vec<Request> = keys
            .iter()
            .map(|k| Request::Write(k.clone(), b"v".to_vec()))
            .collect();
        for r in xs.submit(tx, &reqs).unwrap() {
            r.unwrap();
        }
        let outcome = {
            let _stopped = Stopped::new(d);
            bounded("commit", || xs.transaction_end(tx, true))
        };
        assert!(outcome.is_err(), "commit to a stopped daemon: {outcome:?}");
        drop(xs);
        // The commit was on the wire before the timeout: the daemon may still apply it.
        std::thread::sleep(Duration::from_millis(100));
        let check = client(d);
        let present: Vec<bool> = keys
            .iter()
            .map(|k| check.read_opt(NONE, k).unwrap().is_some())
            .collect();
        assert!(
            present.iter().all(|p| *p) || present.iter().all(|p| !*p),
            "{}: half a transaction is visible: {present:?}",
            d.flavour().name()
        );
    });
}

/// The daemon stops at each point of a build-like sequence (one batch of reads, then a
/// transaction with a batch of writes): every call returns within the timeout, and the
/// transaction's keys are never half there.
#[test]
fn stopping_the_daemon_at_each_step_of_a_build() {
    let Some(d) = daemon(Flavour::C) else {
        return;
    };
    let reads: Vec<Request> = (0..6)
        .map(|i| Request::Read(format!("/local/domain/9/platform/k{i}")))
        .collect();
    let writes: Vec<Request> = (0..4)
        .map(|i| Request::Write(format!("/local/domain/9/vm-data/w{i}"), b"1".to_vec()))
        .collect();
    for stop_before in 0..4 {
        let xs = client(&d);
        let seed = client(&d);
        seed.rm(NONE, "/local/domain/9/vm-data").ok();
        let mut step = 0;
        let mut stopped = None;
        let mut at = |step: &mut usize| {
            if *step == stop_before {
                stopped = Some(Stopped::new(&d));
            }
            *step += 1;
        };
        let result: Result<(), Error> = (|| {
            at(&mut step);
            for r in bounded("read batch", || xs.submit(NONE, &reads))? {
                let _ = r;
            }
            at(&mut step);
            let tx = bounded("transaction start", || xs.transaction_start())?;
            at(&mut step);
            for r in bounded("write batch", || xs.submit(tx, &writes))? {
                r?;
            }
            at(&mut step);
            bounded("commit", || xs.transaction_end(tx, true))
        })();
        assert!(
            result.is_err(),
            "stopped before step {stop_before}: {result:?}"
        );
        drop(stopped);
        drop(xs);
        std::thread::sleep(Duration::from_millis(100));
        let present = (0..4)
            .filter(|i| {
                seed.read_opt(NONE, &format!("/local/domain/9/vm-data/w{i}"))
                    .unwrap()
                    .is_some()
            })
            .count();
        assert!(
            present == 0 || present == 4,
            "stopped before step {stop_before}: {present} of 4 keys written"
        );
    }
}

/// A watch fires while a transaction is open (another connection changes the watched
/// node, which the transaction also read): the event is kept, the commit conflicts with
/// EAGAIN and the transaction helper runs the body again and commits.
#[test]
fn watch_firing_during_a_transaction() {
    each(|d| {
        let xs = client(d);
        let other = client(d);
        xs.write(NONE, "/w/node", b"0").unwrap();
        xs.watch("/w/node", "tok").unwrap();
        // The initial event of XS_WATCH.
        assert!(xs.wait_event(Duration::from_secs(2)).unwrap().is_some());
        let mut attempts = 0;
        let value = bounded("transaction", || {
            transaction(&xs, |tx| {
                attempts += 1;
                let v = xs.read(tx, "/w/node")?;
                if attempts == 1 {
                    // Fires the watch and makes this transaction's commit conflict.
                    other.write(NONE, "/w/node", b"1").unwrap();
                }
                xs.write(tx, "/w/copy", &v)?;
                Ok(v)
            })
        })
        .unwrap();
        assert_eq!(
            attempts,
            2,
            "{}: one conflict, one retry",
            d.flavour().name()
        );
        assert_eq!(value, b"1");
        assert_eq!(xs.read(NONE, "/w/copy").unwrap(), b"1");
        let mut events = Vec::new();
        while let Some(e) = xs.wait_event(Duration::from_millis(200)).unwrap() {
            events.push(e);
        }
        assert!(
            events
                .iter()
                .any(|e| e.path == "/w/node" && e.token == "tok"),
            "{}: the watch event was lost: {events:?}",
            d.flavour().name()
        );
    });
}

/// A request larger than a reply window, to a stopped daemon: the socket write itself
/// must be bounded too (the daemon does not read, the socket buffer fills up).
#[test]
fn writes_to_a_stopped_daemon_are_bounded() {
    let Some(d) = daemon(Flavour::C) else {
        return;
    };
    let xs = client(&d);
    let _stopped = Stopped::new(&d);
    let value = vec![b'x'; 4000];
    let reqs: Vec<Request> = (0..256)
        .map(|i| Request::Write(format!("/big/k{i}"), value.clone()))
        .collect();
    let r = bounded("1 MiB batch to a stopped daemon", || xs.submit(NONE, &reqs));
    assert!(r.is_err(), "{r:?}");
}
