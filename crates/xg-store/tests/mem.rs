//! The in-memory store on its own: path rules, implicit parents, recursive rm,
//! permissions for unprivileged callers, transactions, seeding, dumps and the op log.

use std::sync::{Arc, Mutex};

use xg_store::mem::Op;
use xg_store::{
    transaction, transaction_with_attempts, Access, Error, MemStore, Perm, Reply, Request, Store,
    TxId,
};

const NONE: TxId = TxId::NONE;

fn errno<T: std::fmt::Debug>(r: xg_store::Result<T>) -> i32 {
    r.unwrap_err().errno().unwrap()
}

fn perm(domid: u32, access: Access) -> Perm {
    Perm { domid, access }
}

#[test]
fn writes_create_parents_and_rm_is_recursive() {
    let s = MemStore::new();
    s.write(NONE, "/a/b/c", b"v").unwrap();
    assert_eq!(s.read(NONE, "/a/b").unwrap(), b"");
    assert_eq!(s.directory(NONE, "/").unwrap(), ["a"]);
    s.write(NONE, "/a/b/d", b"w").unwrap();
    s.rm(NONE, "/a/b").unwrap();
    assert!(s.read(NONE, "/a/b/c").unwrap_err().is_not_found());
    assert_eq!(s.directory(NONE, "/a").unwrap(), Vec::<String>::new());
    s.rm(NONE, "/a/gone").unwrap();
    assert_eq!(errno(s.rm(NONE, "/gone/x")), libc::ENOENT);
    assert_eq!(errno(s.rm(NONE, "/")), libc::EINVAL);
}

#[test]
fn paths_follow_the_daemon_rules() {
    let s = MemStore::new();
    s.write(NONE, "rel", b"1").unwrap();
    assert_eq!(s.read(NONE, "/local/domain/0/rel").unwrap(), b"1");
    let guest = s.connect_as(3);
    assert_eq!(s.get_domain_path(3).unwrap(), "/local/domain/3");
    s.write(NONE, "/local/domain/3/x", b"").unwrap();
    s.set_perms(NONE, "/local/domain/3", &[perm(3, Access::None)])
        .unwrap();
    guest.write(NONE, "mine", b"g").unwrap();
    assert_eq!(s.read(NONE, "/local/domain/3/mine").unwrap(), b"g");
    for bad in ["", "/a//b", "/a/", "/a b", "/ü", "@introduceDomain"] {
        assert_eq!(errno(s.write(NONE, bad, b"x")), libc::EINVAL, "{bad:?}");
    }
    assert_eq!(
        errno(s.write(NONE, &format!("/{}", "x".repeat(2048)), b"")),
        libc::EINVAL
    );
    s.write(NONE, &format!("/{}", "x".repeat(2047)), b"")
        .unwrap();
}

#[test]
fn listings_keep_creation_order() {
    let s = MemStore::new();
    for k in ["zz", "aa", "mm"] {
        s.write(NONE, &format!("/o/{k}"), b"").unwrap();
    }
    assert_eq!(s.directory(NONE, "/o").unwrap(), ["zz", "aa", "mm"]);
}

#[test]
fn unprivileged_callers_are_checked() {
    let s = MemStore::new();
    let d5 = s.connect_as(5);
    let d6 = s.connect_as(6);
    s.write(NONE, "/vm/secret", b"s").unwrap();
    assert!(errno(d5.read(NONE, "/vm/secret")) == libc::EACCES);
    assert_eq!(errno(d5.write(NONE, "/vm/new", b"x")), libc::EACCES);
    // Owner 5, everyone else may read, domain 6 may also write.
    s.write(NONE, "/vm/shared", b"v").unwrap();
    s.set_perms(
        NONE,
        "/vm/shared",
        &[perm(5, Access::Read), perm(6, Access::Both)],
    )
    .unwrap();
    assert_eq!(d5.read(NONE, "/vm/shared").unwrap(), b"v");
    d5.write(NONE, "/vm/shared", b"by owner").unwrap();
    d6.write(NONE, "/vm/shared", b"by acl").unwrap();
    let d7 = s.connect_as(7);
    assert_eq!(d7.read(NONE, "/vm/shared").unwrap(), b"by acl");
    assert_eq!(errno(d7.write(NONE, "/vm/shared", b"no")), libc::EACCES);
    // Only the owner (or dom0) changes permissions.
    assert_eq!(
        errno(d6.set_perms(NONE, "/vm/shared", &[perm(6, Access::None)])),
        libc::EACCES
    );
    // A node a guest creates is owned by the guest, with the parent's ACL.
    d6.write(NONE, "/vm/shared/child", b"c").unwrap();
    assert_eq!(
        s.get_perms(NONE, "/vm/shared/child").unwrap(),
        [perm(6, Access::Read), perm(6, Access::Both)]
    );
    assert_eq!(errno(s.set_perms(NONE, "/vm/shared", &[])), libc::EINVAL);
}

#[test]
fn transactions_isolate_and_conflict_like_c_xenstored() {
    let a = MemStore::new();
    let b = a.connect();
    a.write(NONE, "/x", b"0").unwrap();

    let tx = a.transaction_start().unwrap();
    a.write(tx, "/y", b"1").unwrap();
    assert!(b.read(NONE, "/y").unwrap_err().is_not_found());
    assert_eq!(a.read(tx, "/y").unwrap(), b"1");
    a.transaction_end(tx, true).unwrap();
    assert_eq!(b.read(NONE, "/y").unwrap(), b"1");

    // Write-write, sibling creation, read-only: all EAGAIN.
    let tx = a.transaction_start().unwrap();
    a.write(tx, "/x", b"tx").unwrap();
    b.write(NONE, "/x", b"b").unwrap();
    assert!(a.transaction_end(tx, true).unwrap_err().is_again());
    assert_eq!(a.read(NONE, "/x").unwrap(), b"b");

    a.mkdir(NONE, "/e").unwrap();
    let tx = a.transaction_start().unwrap();
    a.write(tx, "/e/f", b"1").unwrap();
    b.write(NONE, "/e/g", b"1").unwrap();
    assert!(a.transaction_end(tx, true).unwrap_err().is_again());
    assert!(a.read(NONE, "/e/f").unwrap_err().is_not_found());

    let tx = a.transaction_start().unwrap();
    a.read(tx, "/x").unwrap();
    b.write(NONE, "/x", b"c").unwrap();
    assert!(a.transaction_end(tx, true).unwrap_err().is_again());

    // Changes to nodes the transaction never touched do not conflict; a node changed
    // before its first touch is read fresh.
    let tx = a.transaction_start().unwrap();
    b.write(NONE, "/x", b"fresh").unwrap();
    b.write(NONE, "/unrelated", b"u").unwrap();
    assert_eq!(a.read(tx, "/x").unwrap(), b"fresh");
    a.write(tx, "/x", b"done").unwrap();
    a.transaction_end(tx, true).unwrap();
    assert_eq!(b.read(NONE, "/x").unwrap(), b"done");

    // rm in a transaction also takes what others added below meanwhile? No: adding
    // below changes the parent the rm touched, so it conflicts.
    a.write(NONE, "/r/k", b"1").unwrap();
    let tx = a.transaction_start().unwrap();
    a.rm(tx, "/r").unwrap();
    b.write(NONE, "/r/new", b"1").unwrap();
    assert!(a.transaction_end(tx, true).unwrap_err().is_again());
    let tx = a.transaction_start().unwrap();
    a.rm(tx, "/r").unwrap();
    a.transaction_end(tx, true).unwrap();
    assert!(a.read(NONE, "/r/new").unwrap_err().is_not_found());

    // Aborts discard, unknown or foreign ids are ENOENT.
    let tx = a.transaction_start().unwrap();
    a.write(tx, "/aborted", b"1").unwrap();
    assert_eq!(errno(b.transaction_end(tx, true)), libc::ENOENT);
    assert_eq!(errno(b.read(tx, "/x")), libc::ENOENT);
    a.transaction_end(tx, false).unwrap();
    assert!(a.read(NONE, "/aborted").unwrap_err().is_not_found());
    assert_eq!(errno(a.transaction_end(tx, false)), libc::ENOENT);
    assert_eq!(errno(a.read(TxId(999), "/x")), libc::ENOENT);
    assert_eq!(a.open_transactions(), 0);
}

#[test]
fn transaction_helper_retries_and_gives_up() {
    let a = MemStore::new();
    let b = a.connect();
    a.write(NONE, "/n", b"1").unwrap();
    let mut attempts = 0;
    let v = transaction(&a, |tx| {
        attempts += 1;
        let n = a.read(tx, "/n")?;
        if attempts < 3 {
            b.write(NONE, "/n", b"2")?;
        }
        a.write(tx, "/n", &[n, b"+".to_vec()].concat())?;
        Ok(attempts)
    })
    .unwrap();
    assert_eq!(v, 3);
    assert_eq!(a.read(NONE, "/n").unwrap(), b"2+");

    let mut attempts = 0;
    let e = transaction_with_attempts(&a, 4, |tx| {
        attempts += 1;
        a.read(tx, "/n")?;
        b.write(NONE, "/n", attempts.to_string().as_bytes())?;
        a.write(tx, "/n", b"never")
    })
    .unwrap_err();
    assert!(e.is_again());
    assert_eq!(attempts, 4);

    // Other errors abort at once, and the transaction is closed.
    let mut attempts = 0;
    let e = transaction(&a, |tx| {
        attempts += 1;
        a.read(tx, "/absent")
    })
    .unwrap_err();
    assert!(e.is_not_found());
    assert_eq!(attempts, 1);
    assert_eq!(a.open_transactions(), 0);
}

#[test]
fn submit_returns_one_result_per_request() {
    let s = MemStore::from_pairs([("/a", "1")]).unwrap();
    let r = s
        .submit(
            NONE,
            &[
                Request::Read("/a".into()),
                Request::Read("/b".into()),
                Request::Write("/b".into(), b"2".to_vec()),
                Request::Directory("/".into()),
                Request::GetPerms("/b".into()),
            ],
        )
        .unwrap();
    assert_eq!(r[0].as_ref().unwrap(), &Reply::Data(b"1".to_vec()));
    assert!(matches!(&r[1], Err(Error::Daemon { name, .. }) if name == "ENOENT"));
    assert_eq!(r[2].as_ref().unwrap(), &Reply::Ok);
    assert_eq!(
        r[3].as_ref().unwrap(),
        &Reply::List(vec!["a".into(), "b".into()])
    );
    assert_eq!(
        r[4].as_ref().unwrap(),
        &Reply::Perms(vec![perm(0, Access::None)])
    );
}

#[test]
fn seeded_store_dump_snapshot() {
    let s = MemStore::from_kv_lines(
        "# platform keys\n\
         /local/domain/5/platform/acpi=1\n\
         /local/domain/5/platform/viridian=true\n\
         /local/domain/5/name=guest=with=equals\n\
         \n\
         rel/key=relative\n",
    )
    .unwrap();
    s.write(NONE, "/local/domain/5/bin", b"\x00\x01\"q\"\\")
        .unwrap();
    s.write(NONE, "/local/domain/5-x", b"sorts after the subtree")
        .unwrap();
    s.set_perms(
        NONE,
        "/local/domain/5/platform",
        &[perm(5, Access::None), perm(0, Access::Read)],
    )
    .unwrap();
    insta::assert_snapshot!("seeded_dump", s.dump());
    insta::assert_snapshot!("seeded_dump_with_perms", s.dump_with_perms());
    assert!(MemStore::from_kv_lines("no equals sign").is_err());
    assert!(MemStore::from_kv_lines("/bad path=1").is_err());
}

#[test]
fn op_log_and_hook_snapshot() {
    let s = MemStore::new();
    let seen = Arc::new(Mutex::new(0usize));
    let counter = Arc::clone(&seen);
    s.set_hook(Box::new(move |_op: &Op| {
        *counter.lock().unwrap() += 1;
    }));
    s.write(NONE, "/a", b"1").unwrap();
    let tx = s.transaction_start().unwrap();
    s.submit(
        tx,
        &[
            Request::Read("/a".into()),
            Request::Mkdir("/d".into()),
            Request::Rm("/missing/x".into()),
            Request::SetPerms(
                "/d".into(),
                vec![perm(0, Access::Both), perm(3, Access::Read)],
            ),
        ],
    )
    .unwrap();
    s.transaction_end(tx, true).unwrap();
    let log: Vec<String> = s.ops().iter().map(ToString::to_string).collect();
    insta::assert_snapshot!("op_log", log.join("\n"));
    assert_eq!(*seen.lock().unwrap(), s.ops().len());
    s.clear_ops();
    assert!(s.ops().is_empty());
}

#[test]
fn committed_writes_snapshot() {
    let s = MemStore::from_pairs([("/seed", "not listed")]).unwrap();
    let other = s.connect();
    s.write(NONE, "/vm/5/name", b"first").unwrap();
    s.write(NONE, "/vm/5/name", b"second").unwrap();
    s.write(NONE, "rel", b"relative").unwrap();
    assert!(s.write(NONE, "/bad path", b"x").is_err());
    let tx = s.transaction_start().unwrap();
    s.write(tx, "/vm/5/committed", b"yes").unwrap();
    s.transaction_end(tx, true).unwrap();
    let tx = s.transaction_start().unwrap();
    s.write(tx, "/vm/5/aborted", b"no").unwrap();
    s.transaction_end(tx, false).unwrap();
    let tx = s.transaction_start().unwrap();
    s.read(tx, "/vm/5/name").unwrap();
    other.write(NONE, "/vm/5/name", b"third").unwrap();
    s.write(tx, "/vm/5/conflicted", b"no").unwrap();
    assert!(s.transaction_end(tx, true).unwrap_err().is_again());
    s.rm(NONE, "/vm/5/committed").unwrap();
    insta::assert_snapshot!("committed_writes", s.dump_writes());
    assert_eq!(s.writes().len(), 3);
}
