//! The client against the real C xenstored and OCaml oxenstored (Xen 4.17), started
//! from the shared fixture. Where the daemons differ, each one's documented behaviour is
//! asserted (fixtures/README.md, "Differences between the two daemons").

mod common;

use std::process::Command;
use std::time::Duration;

use common::{daemon, each_daemon, Raw};
use xg_store::fixture::{Daemon, Flavour};
use xg_store::wire::MsgType;
use xg_store::{transaction, Access, Client, Error, Perm, Reply, Request, Store, TxId, WatchEvent};

const NONE: TxId = TxId::NONE;

fn errno(r: &Result<impl std::fmt::Debug, Error>) -> i32 {
    match r {
        Err(e) => e.errno().unwrap_or(0),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

fn perm(domid: u32, access: Access) -> Perm {
    Perm { domid, access }
}

fn event(path: &str, token: &str) -> WatchEvent {
    WatchEvent {
        path: path.into(),
        token: token.into(),
    }
}

const WAIT: Duration = Duration::from_secs(5);

#[test]
fn every_data_operation() {
    each_daemon(|d| {
        let xs = d.client().unwrap();
        xs.write(NONE, "/t/a", b"hello").unwrap();
        assert_eq!(xs.read(NONE, "/t/a").unwrap(), b"hello");
        // Values are bytes, NULs included.
        xs.write(NONE, "/t/bin", b"a\0b\xff").unwrap();
        assert_eq!(xs.read(NONE, "/t/bin").unwrap(), b"a\0b\xff");
        xs.write(NONE, "/t/empty", b"").unwrap();
        assert_eq!(xs.read(NONE, "/t/empty").unwrap(), b"");
        // Implicit parents.
        xs.write(NONE, "/t/x/y/z", b"1").unwrap();
        assert_eq!(xs.read(NONE, "/t/x/y").unwrap(), b"");
        xs.mkdir(NONE, "/t/dir").unwrap();
        xs.mkdir(NONE, "/t/dir").unwrap();
        let mut children = xs.directory(NONE, "/t").unwrap();
        children.sort();
        assert_eq!(children, ["a", "bin", "dir", "empty", "x"]);
        assert_eq!(xs.directory(NONE, "/t/dir").unwrap(), Vec::<String>::new());
        // Recursive rm.
        xs.rm(NONE, "/t/x").unwrap();
        assert!(xs.read(NONE, "/t/x/y/z").unwrap_err().is_not_found());
        assert_eq!(xs.read_opt(NONE, "/t/x").unwrap(), None);
        assert_eq!(xs.read_opt(NONE, "/t/a").unwrap(), Some(b"hello".to_vec()));
        // Relative paths resolve under /local/domain/0 on both daemons.
        xs.write(NONE, "rel/k", b"v").unwrap();
        assert_eq!(xs.read(NONE, "/local/domain/0/rel/k").unwrap(), b"v");
        assert_eq!(xs.get_domain_path(7).unwrap(), "/local/domain/7");
        // Errors carry the daemon's name and errno.
        let e = xs.read(NONE, "/t/missing").unwrap_err();
        match &e {
            Error::Daemon {
                name,
                errno,
                path,
                op,
            } => {
                assert_eq!((name.as_str(), *errno), ("ENOENT", libc::ENOENT));
                assert_eq!((*op, path.as_str()), ("read", "/t/missing"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(errno(&xs.write(NONE, "/bad path", b"x")), libc::EINVAL);
        assert_eq!(errno(&xs.read(NONE, "/a//b")), libc::EINVAL);
        // rm of a missing node is fine when its parent exists.
        xs.rm(NONE, "/t/nothere").unwrap();
        assert_eq!(errno(&xs.rm(NONE, "/nothere/x")), libc::ENOENT);
        assert_eq!(errno(&xs.directory(NONE, "/nothere")), libc::ENOENT);
    });
}

#[test]
fn permissions() {
    each_daemon(|d| {
        let xs = d.client().unwrap();
        xs.write(NONE, "/p/node", b"v").unwrap();
        assert_eq!(
            xs.get_perms(NONE, "/p/node").unwrap(),
            [perm(0, Access::None)]
        );
        let acl = [perm(0, Access::Read), perm(0, Access::Both)];
        xs.set_perms(NONE, "/p/node", &acl).unwrap();
        assert_eq!(xs.get_perms(NONE, "/p/node").unwrap(), acl);
        // Children inherit the parent's permissions.
        xs.write(NONE, "/p/node/child", b"c").unwrap();
        assert_eq!(xs.get_perms(NONE, "/p/node/child").unwrap(), acl);
        assert_eq!(errno(&xs.set_perms(NONE, "/p/missing", &acl)), libc::ENOENT);
        // An owner that is no domain: C checks, oxenstored does not.
        let r = xs.set_perms(NONE, "/p/node", &[perm(5, Access::Read)]);
        match d.flavour() {
            Flavour::C => assert_eq!(errno(&r), libc::ENOENT),
            Flavour::OCaml => {
                r.unwrap();
                assert_eq!(
                    xs.get_perms(NONE, "/p/node").unwrap(),
                    [perm(5, Access::Read)]
                );
            }
        }
    });
}

#[test]
fn oversized_requests_are_refused_locally() {
    each_daemon(|d| {
        let xs = d.client().unwrap();
        let big = vec![b'x'; 4097];
        let e = xs.write(NONE, "/big", &big).unwrap_err();
        assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
        // Nothing was sent: the connection is still fine (oxenstored would hang it).
        xs.write(NONE, "/small", b"1").unwrap();
        assert_eq!(xs.read(NONE, "/small").unwrap(), b"1");
        // In a batch, only the oversized request fails.
        let replies = xs
            .submit(
                NONE,
                &[
                    Request::Write("/b1".into(), b"1".to_vec()),
                    Request::Write("/b2".into(), big.clone()),
                    Request::Read("/b1".into()),
                ],
            )
            .unwrap();
        assert!(replies[0].is_ok());
        assert!(matches!(replies[1], Err(Error::Invalid { .. })));
        assert_eq!(replies[2].as_ref().unwrap(), &Reply::Data(b"1".to_vec()));
        // 3000 bytes fits the wire; the daemons' quotas differ.
        let r = xs.write(NONE, "/v3000", &[b'v'; 3000]);
        match d.flavour() {
            Flavour::C => r.unwrap(),
            Flavour::OCaml => assert_eq!(errno(&r), libc::E2BIG),
        }
    });
}

#[test]
fn watches_fire_immediately_and_on_change() {
    each_daemon(|d| {
        let xs = d.client().unwrap();
        let other = d.client().unwrap();
        xs.watch("/w", "tok").unwrap();
        assert_eq!(xs.wait_event(WAIT).unwrap(), Some(event("/w", "tok")));
        other.write(NONE, "/w/a", b"1").unwrap();
        assert_eq!(xs.wait_event(WAIT).unwrap(), Some(event("/w/a", "tok")));
        // Our own write under the watch: C sends the event before the reply, oxenstored
        // after; either way it is queued, not lost.
        xs.write(NONE, "/w/b", b"2").unwrap();
        assert_eq!(xs.wait_event(WAIT).unwrap(), Some(event("/w/b", "tok")));
        assert_eq!(errno(&xs.watch("/w", "tok")), libc::EEXIST);
        // Special paths.
        xs.watch("@introduceDomain", "intro").unwrap();
        assert_eq!(
            xs.wait_event(WAIT).unwrap(),
            Some(event("@introduceDomain", "intro"))
        );
        xs.unwatch("/w", "tok").unwrap();
        other.write(NONE, "/w/c", b"3").unwrap();
        assert_eq!(xs.wait_event(Duration::from_millis(200)).unwrap(), None);
        assert_eq!(errno(&xs.unwatch("/w", "tok")), libc::ENOENT);

        // Events still queued for a token are dropped with its last watch.
        xs.watch("/q", "gone").unwrap();
        xs.watch("/q2", "kept").unwrap();
        xs.write(NONE, "/q/x", b"1").unwrap();
        xs.unwatch("/q", "gone").unwrap();
        let rest: Vec<WatchEvent> = xs
            .events(Duration::from_millis(200))
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rest, [event("/q2", "kept")]);
    });
}

#[test]
fn watch_event_order_differs_between_daemons() {
    each_daemon(|d| {
        // Wire level: event and reply order of a write under one's own watch.
        let mut raw = Raw::connect(d);
        raw.send(MsgType::Watch as u32, 1, 0, b"/o\0t\0");
        let mut first = raw.recv_kinds(2);
        first.sort();
        assert_eq!(first, ["XS_WATCH:1", "XS_WATCH_EVENT:0"]);
        raw.send(MsgType::Write as u32, 2, 0, b"/o/x\0v");
        let order = raw.recv_kinds(2);
        match d.flavour() {
            Flavour::C => assert_eq!(order, ["XS_WATCH_EVENT:0", "XS_WRITE:2"]),
            Flavour::OCaml => assert_eq!(order, ["XS_WRITE:2", "XS_WATCH_EVENT:0"]),
        }

        // Two tokens on one path: registration order in C, reversed in oxenstored.
        let xs = d.client().unwrap();
        let other = d.client().unwrap();
        xs.watch("/two", "first").unwrap();
        xs.watch("/two", "second").unwrap();
        assert_eq!(xs.wait_event(WAIT).unwrap().unwrap().token, "first");
        assert_eq!(xs.wait_event(WAIT).unwrap().unwrap().token, "second");
        other.write(NONE, "/two", b"1").unwrap();
        let a = xs.wait_event(WAIT).unwrap().unwrap().token;
        let b = xs.wait_event(WAIT).unwrap().unwrap().token;
        match d.flavour() {
            Flavour::C => assert_eq!([a, b], ["first", "second"]),
            Flavour::OCaml => assert_eq!([a, b], ["second", "first"]),
        }
    });
}

#[test]
fn transactions_commit_abort_and_fire_at_commit() {
    each_daemon(|d| {
        let xs = d.client().unwrap();
        let watcher = d.client().unwrap();
        watcher.watch("/tx", "w").unwrap();
        assert!(watcher.wait_event(WAIT).unwrap().is_some());

        let tx = xs.transaction_start().unwrap();
        assert_ne!(tx, NONE);
        xs.write(tx, "/tx/a", b"1").unwrap();
        assert_eq!(xs.read(tx, "/tx/a").unwrap(), b"1");
        assert!(xs.read(NONE, "/tx/a").unwrap_err().is_not_found());
        assert_eq!(
            watcher.wait_event(Duration::from_millis(200)).unwrap(),
            None,
            "no event before commit"
        );
        xs.transaction_end(tx, true).unwrap();
        assert_eq!(xs.read(NONE, "/tx/a").unwrap(), b"1");
        assert_eq!(watcher.wait_event(WAIT).unwrap(), Some(event("/tx/a", "w")));

        let tx = xs.transaction_start().unwrap();
        xs.write(tx, "/tx/b", b"2").unwrap();
        xs.transaction_end(tx, false).unwrap();
        assert!(xs.read(NONE, "/tx/b").unwrap_err().is_not_found());

        // A finished transaction id.
        let r = xs.transaction_end(tx, true);
        let expected = match d.flavour() {
            Flavour::C => libc::ENOENT,
            Flavour::OCaml => libc::EIO,
        };
        assert_eq!(errno(&r), expected);
        assert_eq!(errno(&xs.read(tx, "/tx/a")), expected);
    });
}

#[test]
fn transaction_conflicts() {
    each_daemon(|d| {
        let xs = d.client().unwrap();
        let other = d.client().unwrap();
        xs.write(NONE, "/c/x", b"0").unwrap();

        // Reliable on both: read X, X changes elsewhere, write, commit.
        let tx = xs.transaction_start().unwrap();
        xs.read(tx, "/c/x").unwrap();
        other.write(NONE, "/c/x", b"other").unwrap();
        xs.write(tx, "/c/x", b"mine").unwrap();
        let e = xs.transaction_end(tx, true).unwrap_err();
        assert!(e.is_again(), "{e:?}");
        assert_eq!(xs.read(NONE, "/c/x").unwrap(), b"other");

        // Blind write-write: C conflicts, oxenstored lets the last writer win.
        let tx = xs.transaction_start().unwrap();
        xs.write(tx, "/c/x", b"tx").unwrap();
        other.write(NONE, "/c/x", b"outside").unwrap();
        let r = xs.transaction_end(tx, true);
        match d.flavour() {
            Flavour::C => assert!(r.unwrap_err().is_again()),
            Flavour::OCaml => {
                r.unwrap();
                assert_eq!(xs.read(NONE, "/c/x").unwrap(), b"tx");
            }
        }

        // Sibling creation.
        xs.mkdir(NONE, "/c/e").unwrap();
        let tx = xs.transaction_start().unwrap();
        xs.write(tx, "/c/e/f", b"1").unwrap();
        other.write(NONE, "/c/e/g", b"1").unwrap();
        let r = xs.transaction_end(tx, true);
        match d.flavour() {
            Flavour::C => assert!(r.unwrap_err().is_again()),
            Flavour::OCaml => r.unwrap(),
        }

        // Read-only transaction whose node changed.
        let tx = xs.transaction_start().unwrap();
        xs.read(tx, "/c/x").unwrap();
        other.write(NONE, "/c/x", b"again").unwrap();
        let r = xs.transaction_end(tx, true);
        match d.flavour() {
            Flavour::C => assert!(r.unwrap_err().is_again()),
            Flavour::OCaml => r.unwrap(),
        }
    });
}

#[test]
fn transaction_helper_retries_a_conflict() {
    each_daemon(|d| {
        let xs = d.client().unwrap();
        let other = d.client().unwrap();
        xs.write(NONE, "/r/counter", b"1").unwrap();
        let mut attempts = 0;
        let result = transaction(&xs, |tx| {
            attempts += 1;
            let n: u32 = String::from_utf8(xs.read(tx, "/r/counter")?)
                .unwrap()
                .parse()
                .unwrap();
            if attempts == 1 {
                // Someone else increments meanwhile: this attempt must be retried.
                other.write(NONE, "/r/counter", b"10")?;
            }
            xs.write(tx, "/r/counter", (n + 1).to_string().as_bytes())?;
            Ok(n + 1)
        })
        .unwrap();
        assert_eq!(attempts, 2);
        assert_eq!(result, 11);
        assert_eq!(xs.read(NONE, "/r/counter").unwrap(), b"11");
    });
}

#[test]
fn transaction_helper_survives_random_eagain_of_oxenstored() {
    let Some(d) =
        common::daemon_with_env(Flavour::OCaml, &[("OXENSTORED_CONF", "test-eagain = true")])
    else {
        return;
    };
    let xs = d.client().unwrap();
    let mut attempts = 0;
    for i in 0..20u32 {
        transaction(&xs, |tx| {
            attempts += 1;
            xs.write(tx, &format!("/eagain/{i}"), b"1")
        })
        .unwrap();
    }
    assert_eq!(xs.directory(NONE, "/eagain").unwrap().len(), 20);
    assert!(attempts > 20, "test-eagain should have forced retries");
}

fn keys(n: usize, prefix: &str) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}/k{i}")).collect()
}

#[test]
fn pipelined_batches_outside_and_inside_transactions() {
    each_daemon(|d| {
        let xs = d.client().unwrap();
        let k = keys(40, "/pipe");
        let writes: Vec<Request> = k
            .iter()
            .map(|p| Request::Write(p.clone(), p.as_bytes().to_vec()))
            .collect();
        let replies = xs.submit(NONE, &writes).unwrap();
        assert!(replies.iter().all(|r| matches!(r, Ok(Reply::Ok))));

        let mut reads: Vec<Request> = k.iter().map(|p| Request::Read(p.clone())).collect();
        reads.insert(20, Request::Read("/pipe/missing".into()));
        reads.push(Request::Directory("/pipe".into()));
        reads.push(Request::GetPerms("/pipe/k0".into()));
        let replies = xs.submit(NONE, &reads).unwrap();
        assert_eq!(replies.len(), 43);
        for (i, r) in replies.iter().take(41).enumerate() {
            if i == 20 {
                assert!(r.as_ref().unwrap_err().is_not_found());
            } else {
                let key = &k[if i < 20 { i } else { i - 1 }];
                assert_eq!(r.as_ref().unwrap(), &Reply::Data(key.as_bytes().to_vec()));
            }
        }
        match &replies[41] {
            Ok(Reply::List(l)) => assert_eq!(l.len(), 40),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            replies[42].as_ref().unwrap(),
            &Reply::Perms(vec![perm(0, Access::None)])
        );

        // A batch larger than the send window.
        let many: Vec<Request> = (0..600)
            .map(|i| Request::Write(format!("/many/{i}"), vec![b'v'; 200]))
            .collect();
        assert!(xs.submit(NONE, &many).unwrap().iter().all(Result::is_ok));
        assert_eq!(xs.directory(NONE, "/many").unwrap().len(), 600);

        // Inside a transaction.
        let tx = xs.transaction_start().unwrap();
        let batch: Vec<Request> = keys(40, "/ptx")
            .into_iter()
            .map(|p| Request::Write(p, b"t".to_vec()))
            .chain([Request::Read("/pipe/k3".into())])
            .collect();
        let replies = xs.submit(tx, &batch).unwrap();
        assert!(replies[..40].iter().all(|r| matches!(r, Ok(Reply::Ok))));
        assert_eq!(
            replies[40].as_ref().unwrap(),
            &Reply::Data(b"/pipe/k3".to_vec())
        );
        assert!(xs.read(NONE, "/ptx/k0").unwrap_err().is_not_found());
        let reads: Vec<Request> = keys(40, "/ptx").into_iter().map(Request::Read).collect();
        assert!(xs
            .submit(tx, &reads)
            .unwrap()
            .iter()
            .all(|r| r.as_ref().unwrap() == &Reply::Data(b"t".to_vec())));
        xs.transaction_end(tx, true).unwrap();
        assert_eq!(xs.directory(NONE, "/ptx").unwrap().len(), 40);
    });
}

#[test]
fn watch_events_interleaved_with_a_batch_are_kept() {
    each_daemon(|d| {
        let xs = d.client().unwrap();
        xs.watch("/iw", "t").unwrap();
        let writes: Vec<Request> = (0..30)
            .map(|i| Request::Write(format!("/iw/{i}"), b"x".to_vec()))
            .collect();
        let replies = xs.submit(NONE, &writes).unwrap();
        assert!(replies.iter().all(|r| matches!(r, Ok(Reply::Ok))));
        let mut seen = Vec::new();
        while seen.len() < 31 {
            match xs.wait_event(WAIT).unwrap() {
                Some(e) => seen.push(e.path),
                None => break,
            }
        }
        assert_eq!(xs.wait_event(Duration::from_millis(100)).unwrap(), None);
        let mut expected: Vec<String> = std::iter::once("/iw".to_owned())
            .chain((0..30).map(|i| format!("/iw/{i}")))
            .collect();
        seen.sort();
        expected.sort();
        assert_eq!(seen, expected);
    });
}

#[test]
fn large_directories() {
    each_daemon(|d| {
        let xs = d.client().unwrap();
        let names: Vec<String> = (0..200)
            .map(|i| format!("child-with-a-long-name-{i:04}"))
            .collect();
        let writes: Vec<Request> = names
            .iter()
            .map(|n| Request::Write(format!("/big/{n}"), b"1".to_vec()))
            .collect();
        assert!(xs.submit(NONE, &writes).unwrap().iter().all(Result::is_ok));
        let r = xs.directory(NONE, "/big");
        match d.flavour() {
            // C refuses XS_DIRECTORY (E2BIG); the client falls back to DIRECTORY_PART.
            Flavour::C => {
                let mut got = r.unwrap();
                got.sort();
                assert_eq!(got, names);
                let (_, first) = xs.directory_part(NONE, "/big", 0).unwrap();
                assert!(first.len() < 4096);
            }
            // oxenstored sends an oversized reply, which is refused without being
            // buffered; the connection stays usable. It has no DIRECTORY_PART.
            Flavour::OCaml => {
                assert!(matches!(r, Err(Error::Protocol { .. })), "{r:?}");
                assert_eq!(errno(&xs.directory_part(NONE, "/big", 0)), libc::ENOSYS);
                assert_eq!(
                    xs.read(NONE, "/big/child-with-a-long-name-0001").unwrap(),
                    b"1"
                );
            }
        }
    });
}

#[test]
fn introduce_and_release() {
    each_daemon(|d| {
        let xs = d.client().unwrap();
        xs.watch("@introduceDomain", "in").unwrap();
        xs.watch("@releaseDomain", "out").unwrap();
        while xs.wait_event(Duration::from_millis(100)).unwrap().is_some() {}
        assert!(!xs.is_domain_introduced(5).unwrap());
        xs.introduce(5, 0x1234, 7).unwrap();
        assert!(xs.is_domain_introduced(5).unwrap());
        assert_eq!(
            xs.wait_event(WAIT).unwrap(),
            Some(event("@introduceDomain", "in"))
        );
        xs.resume(5).unwrap();
        xs.set_target(5, 0).unwrap();
        // An unknown domain: the same split as for a second RELEASE below.
        let unknown = xs.resume(9);
        match d.flavour() {
            Flavour::C => assert_eq!(errno(&unknown), libc::ENOENT),
            Flavour::OCaml => assert_eq!(errno(&unknown), libc::EINVAL),
        }
        // Now domain 5 exists, it can own nodes on both daemons.
        xs.write(NONE, "/local/domain/5/x", b"1").unwrap();
        xs.set_perms(NONE, "/local/domain/5/x", &[perm(5, Access::None)])
            .unwrap();
        xs.release(5).unwrap();
        assert_eq!(
            xs.wait_event(WAIT).unwrap(),
            Some(event("@releaseDomain", "out"))
        );
        let again = xs.release(5);
        match d.flavour() {
            Flavour::C => assert_eq!(errno(&again), libc::ENOENT),
            Flavour::OCaml => assert_eq!(errno(&again), libc::EINVAL),
        }
    });
}

#[test]
fn control_and_unsupported_types() {
    each_daemon(|d| {
        let xs = d.client().unwrap();
        let help = String::from_utf8(xs.control(&["help"]).unwrap()).unwrap();
        match d.flavour() {
            Flavour::C => assert!(help.contains("log"), "{help}"),
            Flavour::OCaml => assert!(help.starts_with("OK"), "{help}"),
        }
        let other = d.client().unwrap();
        xs.watch("/rw", "t").unwrap();
        assert!(xs.wait_event(WAIT).unwrap().is_some());
        xs.reset_watches().unwrap();
        other.write(NONE, "/rw/x", b"1").unwrap();
        assert_eq!(xs.wait_event(Duration::from_millis(200)).unwrap(), None);
        // The watch is gone on the daemon side too: it can be set again.
        xs.watch("/rw", "t").unwrap();
        let mut raw = Raw::connect(d);
        for (i, ty) in [20u32, 23, 24, 25, 26].into_iter().enumerate() {
            let id = u32::try_from(i).unwrap() + 1;
            raw.send(ty, id, 0, b"x\0");
            let f = raw.recv();
            assert_eq!(f.header.kind(), Some(MsgType::Error), "type {ty}");
            assert_eq!(xg_store::wire::error_name(&f.payload), "ENOSYS");
        }
    });
}

#[test]
fn timeouts_are_configurable() {
    each_daemon(|d| {
        let xs = d.client().unwrap();
        assert_eq!(xs.timeout(), xg_store::DEFAULT_TIMEOUT);
        xs.set_timeout(Duration::from_millis(50));
        assert_eq!(xs.wait_event(Duration::from_millis(50)).unwrap(), None);
        xs.write(NONE, "/to", b"1").unwrap();
    });
}

fn tool(d: &Daemon, args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .env("XENSTORED_PATH", d.socket())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", args[0]));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn tools_available() -> bool {
    let ok = Command::new("xenstore-read").arg("--help").output().is_ok();
    if !ok {
        assert!(
            !xg_store::fixture::required_by_ci(),
            "xenstore-utils missing under CI"
        );
    }
    ok
}

#[test]
fn cross_check_with_debian_xenstore_tools() {
    if !tools_available() {
        return;
    }
    each_daemon(|d| {
        let xs = d.client().unwrap();
        xs.write(NONE, "/cc/ours", b"from rust").unwrap();
        xs.write(NONE, "/cc/sub/leaf", b"x y").unwrap();
        assert_eq!(tool(d, &["xenstore-read", "/cc/ours"]), "from rust\n");
        tool(d, &["xenstore-write", "/cc/theirs", "from C", "rel", "r"]);
        assert_eq!(xs.read(NONE, "/cc/theirs").unwrap(), b"from C");
        assert_eq!(xs.read(NONE, "/local/domain/0/rel").unwrap(), b"r");
        let ls = tool(d, &["xenstore-ls", "-f", "/cc"]);
        let mut lines: Vec<&str> = ls.lines().collect();
        lines.sort_unstable();
        assert_eq!(
            lines,
            [
                "/cc/ours = \"from rust\"",
                "/cc/sub = \"\"",
                "/cc/sub/leaf = \"x y\"",
                "/cc/theirs = \"from C\"",
            ]
        );
        tool(d, &["xenstore-chmod", "/cc/ours", "n0", "r3"]);
        assert_eq!(
            xs.get_perms(NONE, "/cc/ours").unwrap(),
            [perm(0, Access::None), perm(3, Access::Read)]
        );
        tool(d, &["xenstore-rm", "/cc/sub"]);
        assert!(xs.read(NONE, "/cc/sub/leaf").unwrap_err().is_not_found());
    });
}

#[test]
fn xenstored_path_is_honoured_by_open() {
    // Only this test touches XENSTORED_PATH in this binary's environment... but tests run
    // in threads, so use a child process instead of set_var.
    let Some(d) = daemon(Flavour::C) else { return };
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([
            "--exact",
            "open_from_env_child",
            "--include-ignored",
            "--nocapture",
        ])
        .env("XENSTORED_PATH", d.socket())
        .env("XG_STORE_ENV_CHILD", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let xs = d.client().unwrap();
    assert_eq!(xs.read(NONE, "/from-env").unwrap(), b"1");
}

#[test]
#[ignore = "run by xenstored_path_is_honoured_by_open in a child process"]
fn open_from_env_child() {
    if std::env::var_os("XG_STORE_ENV_CHILD").is_none() {
        return;
    }
    let xs = Client::open().unwrap();
    xs.write(NONE, "/from-env", b"1").unwrap();
}
