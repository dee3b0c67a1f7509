//! `MemStore` must behave like C xenstored: the same scripts of requests over two
//! connections run against both, and every outcome (replies, listings in order, errno,
//! transaction conflicts) must be identical.

mod common;

use xg_store::fixture::Flavour;
use xg_store::{Access, Perm, Reply, Request, Store, TxId};

/// One step of a script: on connection 0 or 1, in transaction slot `Some(n)` or none.
enum Step {
    Req(usize, Option<usize>, Request),
    Start(usize, usize),
    End(usize, usize, bool),
}

use Step::{End, Req, Start};

fn w(p: &str, v: &str) -> Request {
    Request::Write(p.into(), v.as_bytes().to_vec())
}
fn r(p: &str) -> Request {
    Request::Read(p.into())
}
fn ls(p: &str) -> Request {
    Request::Directory(p.into())
}
fn rm(p: &str) -> Request {
    Request::Rm(p.into())
}

fn outcome(res: xg_store::Result<Reply>) -> String {
    match res {
        Ok(Reply::Ok) => "ok".into(),
        Ok(Reply::Data(d)) => format!("data {:?}", String::from_utf8_lossy(&d)),
        Ok(Reply::List(l)) => format!("list {l:?}"),
        Ok(Reply::Perms(p)) => {
            let p: Vec<String> = p.iter().map(ToString::to_string).collect();
            format!("perms {}", p.join(","))
        }
        Err(e) => format!("errno {}", e.errno().unwrap_or(0)),
    }
}

fn run(conns: &[&dyn Store; 2], script: &[Step]) -> Vec<String> {
    let mut slots: Vec<TxId> = vec![TxId::NONE; 8];
    script
        .iter()
        .map(|step| match step {
            Req(c, slot, req) => {
                let tx = slot.map_or(TxId::NONE, |s| slots[s]);
                let mut replies = conns[*c].submit(tx, std::slice::from_ref(req)).unwrap();
                outcome(replies.remove(0))
            }
            Start(c, slot) => {
                slots[*slot] = conns[*c].transaction_start().unwrap();
                "started".into()
            }
            End(c, slot, commit) => outcome(
                conns[*c]
                    .transaction_end(slots[*slot], *commit)
                    .map(|()| Reply::Ok),
            ),
        })
        .collect()
}

fn check(script: &[Step]) {
    let Some(d) = common::daemon(Flavour::C) else {
        return;
    };
    let (c0, c1) = (d.client().unwrap(), d.client().unwrap());
    let real = run(&[&c0, &c1], script);
    let m0 = xg_store::MemStore::new();
    let m1 = m0.connect();
    let mem = run(&[&m0, &m1], script);
    for (i, (a, b)) in real.iter().zip(&mem).enumerate() {
        assert_eq!(a, b, "step {i}: xenstored said {a}, MemStore said {b}");
    }
}

#[test]
fn data_operations_match() {
    let long_ok = format!("/{}", "x".repeat(2047));
    let long_bad = format!("/{}", "x".repeat(2048));
    check(&[
        Req(0, None, w("/a/b/c", "1")),
        Req(0, None, r("/a/b")),
        Req(0, None, w("/o/zz", "")),
        Req(0, None, w("/o/aa", "")),
        Req(0, None, w("/o/mm", "")),
        Req(0, None, ls("/o")),
        Req(0, None, Request::Mkdir("/o/aa".into())),
        Req(0, None, Request::Mkdir("/o/new".into())),
        Req(0, None, ls("/o")),
        Req(1, None, w("rel/x", "r")),
        Req(0, None, r("/local/domain/0/rel/x")),
        Req(0, None, r("/nope")),
        Req(0, None, ls("/nope")),
        Req(0, None, rm("/o/absent")),
        Req(0, None, rm("/absent/x")),
        Req(0, None, rm("/a")),
        Req(0, None, r("/a/b/c")),
        Req(0, None, w("/bad path", "")),
        Req(0, None, w("/a//b", "")),
        Req(0, None, w("/trailing/", "")),
        Req(0, None, w("/dot.ted", "")),
        Req(0, None, w(&long_ok, "")),
        Req(0, None, w(&long_bad, "")),
        Req(0, None, Request::GetPerms("/o/zz".into())),
        Req(
            0,
            None,
            Request::SetPerms(
                "/o".into(),
                vec![
                    Perm {
                        domid: 0,
                        access: Access::Read,
                    },
                    Perm {
                        domid: 0,
                        access: Access::Write,
                    },
                ],
            ),
        ),
        Req(0, None, w("/o/child/grandchild", "")),
        Req(0, None, Request::GetPerms("/o/child/grandchild".into())),
        Req(0, None, Request::GetPerms("/o/zz".into())),
        Req(0, None, Request::SetPerms("/absent".into(), vec![])),
    ]);
}

#[test]
fn transactions_match() {
    check(&[
        Req(0, None, w("/x", "0")),
        Req(0, None, Request::Mkdir("/e".into())),
        // Isolation and commit.
        Start(0, 0),
        Req(0, Some(0), w("/t/a", "1")),
        Req(1, None, r("/t/a")),
        Req(0, Some(0), r("/t/a")),
        Req(0, Some(0), ls("/t")),
        End(0, 0, true),
        Req(1, None, r("/t/a")),
        // Abort.
        Start(0, 1),
        Req(0, Some(1), w("/t/b", "1")),
        End(0, 1, false),
        Req(0, None, r("/t/b")),
        // Write-write conflict.
        Start(0, 2),
        Req(0, Some(2), w("/x", "tx")),
        Req(1, None, w("/x", "other")),
        End(0, 2, true),
        Req(0, None, r("/x")),
        // Sibling creation.
        Start(0, 3),
        Req(0, Some(3), w("/e/f", "1")),
        Req(1, None, w("/e/g", "1")),
        End(0, 3, true),
        Req(0, None, ls("/e")),
        // Read-only transaction.
        Start(0, 4),
        Req(0, Some(4), r("/x")),
        Req(1, None, w("/x", "again")),
        End(0, 4, true),
        // Untouched nodes do not conflict; a node changed before its first touch is read
        // fresh.
        Start(0, 5),
        Req(1, None, w("/x", "fresh")),
        Req(1, None, w("/elsewhere", "1")),
        Req(0, Some(5), r("/x")),
        Req(0, Some(5), w("/x", "committed")),
        End(0, 5, true),
        Req(1, None, r("/x")),
        // rm inside a transaction versus a child added outside.
        Req(0, None, w("/r/k", "1")),
        Start(0, 6),
        Req(0, Some(6), rm("/r")),
        Req(0, Some(6), r("/r/k")),
        Req(1, None, w("/r/new", "1")),
        End(0, 6, true),
        Req(0, None, ls("/r")),
        // Two transactions that both add a node under the root: the root's children
        // changed, so the second commit conflicts.
        Start(0, 0),
        Start(1, 1),
        Req(0, Some(0), w("/d/one", "1")),
        Req(1, Some(1), w("/other/two", "2")),
        End(0, 0, true),
        End(1, 1, true),
        Req(0, None, r("/other/two")),
        // Finished transaction id.
        End(0, 0, true),
    ]);
}
