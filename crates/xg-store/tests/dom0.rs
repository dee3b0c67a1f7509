//! On a real Xen dom0 (e.g. the shared `xen-in-qemu` fixture): the xenbus device and the
//! system socket. Ignored by default; run with `--ignored` as root in dom0:
//!
//! ```sh
//! RUSTFLAGS="-C target-feature=+crt-static" cargo test --release -p xg-store --test dom0 \
//!     --no-run --target x86_64-unknown-linux-gnu
//! PROBE_ARGS="--ignored --test-threads=1" xen-in-qemu/run.sh OUT target/.../dom0-<hash>
//! ```
#![allow(clippy::print_stderr)]

use std::time::{Duration, Instant};

use xg_store::client::{DEFAULT_SOCKET, XENBUS_PATH};
use xg_store::{transaction, Client, Reply, Request, Store, TxId};

const NONE: TxId = TxId::NONE;

fn exercise(xs: &Client, name: &str) {
    let base = format!("/xg-store-probe/{name}");
    xs.write(NONE, &format!("{base}/a"), b"1").unwrap();
    assert_eq!(xs.read(NONE, &format!("{base}/a")).unwrap(), b"1");
    assert_eq!(xs.get_domain_path(0).unwrap(), "/local/domain/0");
    assert!(xs
        .read(NONE, &format!("{base}/none"))
        .unwrap_err()
        .is_not_found());

    xs.watch(&base, "probe").unwrap();
    let first = xs.wait_event(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(
        (first.path.as_str(), first.token.as_str()),
        (base.as_str(), "probe")
    );

    let keys: Vec<String> = (0..40).map(|i| format!("{base}/k{i}")).collect();
    let writes: Vec<Request> = keys
        .iter()
        .map(|k| Request::Write(k.clone(), k.as_bytes().to_vec()))
        .collect();
    assert!(xs.submit(NONE, &writes).unwrap().iter().all(Result::is_ok));
    let reads: Vec<Request> = keys.iter().map(|k| Request::Read(k.clone())).collect();
    let replies = xs.submit(NONE, &reads).unwrap();
    for (k, r) in keys.iter().zip(&replies) {
        assert_eq!(r.as_ref().unwrap(), &Reply::Data(k.as_bytes().to_vec()));
    }
    let mut events = 0;
    while xs.wait_event(Duration::from_millis(500)).unwrap().is_some() {
        events += 1;
    }
    assert_eq!(events, 40, "one event per write, none lost");
    xs.unwatch(&base, "probe").unwrap();

    let n = transaction(xs, |tx| {
        let replies = xs.submit(tx, &reads)?;
        xs.write(
            tx,
            &format!("{base}/sum"),
            replies.len().to_string().as_bytes(),
        )?;
        Ok(replies.len())
    })
    .unwrap();
    assert_eq!(n, 40);

    let t = Instant::now();
    for _ in 0..20 {
        for k in &keys {
            xs.read(NONE, k).unwrap();
        }
    }
    let sequential = t.elapsed() / 20;
    let t = Instant::now();
    for _ in 0..20 {
        xs.submit(NONE, &reads).unwrap();
    }
    let pipelined = t.elapsed() / 20;
    eprintln!(
        "{name}: 40 reads one at a time {sequential:?}, pipelined {pipelined:?}, ratio {:.1} (TCG: not a real timing)",
        sequential.as_secs_f64() / pipelined.as_secs_f64()
    );
    xs.rm(NONE, &base).unwrap();
}

#[test]
#[ignore = "needs a Xen dom0 with /dev/xen/xenbus"]
fn xenbus_device() {
    let xs = Client::open_xenbus(XENBUS_PATH).unwrap();
    exercise(&xs, "xenbus");
    xs.watch("/xg-store-probe", "left-open").unwrap();
    drop(xs);
    // The reader thread is woken and closes the device, dropping the kernel-side watch.
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

#[test]
#[ignore = "needs a Xen dom0 with a running xenstored"]
fn system_socket() {
    let xs = Client::open_socket(DEFAULT_SOCKET).unwrap();
    exercise(&xs, "socket");
}
