//! A [`Store`] wrapper that records every Xenstore operation into the hypercall trace
//! ([`xg_ctrl::trace::TraceSink`]), so one JSONL file shows both in order.

use serde_json::{json, Map, Value};
use xg_ctrl::trace::TraceSink;
use xg_store::{Reply, Request, Result, Store, TxId};

/// Records each request of a [`Store`] as a `xs_*` trace record.
#[derive(Debug)]
pub struct TracedStore<'a, S: ?Sized> {
    inner: &'a S,
    sink: TraceSink,
}

impl<'a, S: ?Sized> TracedStore<'a, S> {
    /// Wraps `inner`, recording into `sink`.
    pub fn new(inner: &'a S, sink: TraceSink) -> Self {
        TracedStore { inner, sink }
    }
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

fn record(sink: &TraceSink, tx: TxId, req: &Request, reply: &Result<Reply>, batch: usize) {
    let (call, path, value) = match req {
        Request::Read(p) => ("xs_read", p, None),
        Request::Write(p, v) => ("xs_write", p, Some(text(v))),
        Request::Mkdir(p) => ("xs_mkdir", p, None),
        Request::Rm(p) => ("xs_rm", p, None),
        Request::Directory(p) => ("xs_directory", p, None),
        Request::GetPerms(p) => ("xs_get_perms", p, None),
        Request::SetPerms(p, perms) => (
            "xs_set_perms",
            p,
            Some(
                perms
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        ),
    };
    let mut m = Map::new();
    m.insert("tx".into(), json!(tx.0));
    m.insert("batch".into(), json!(batch));
    m.insert("path".into(), json!(path));
    if let Some(v) = value {
        m.insert("value".into(), json!(v));
    }
    match reply {
        Ok(Reply::Data(d)) => {
            m.insert("result".into(), json!(text(d)));
        }
        Ok(_) => {
            m.insert("result".into(), Value::from("OK"));
        }
        Err(e) => {
            m.insert("errno".into(), json!(e.errno().unwrap_or(0)));
        }
    }
    sink.record_other(call, m);
}

impl<S: Store + ?Sized> Store for TracedStore<'_, S> {
    fn submit(&self, tx: TxId, reqs: &[Request]) -> Result<Vec<Result<Reply>>> {
        let replies = self.inner.submit(tx, reqs)?;
        for (r, reply) in reqs.iter().zip(&replies) {
            record(&self.sink, tx, r, reply, reqs.len());
        }
        Ok(replies)
    }

    fn transaction_start(&self) -> Result<TxId> {
        let r = self.inner.transaction_start();
        let mut m = Map::new();
        if let Ok(tx) = &r {
            m.insert("tx".into(), json!(tx.0));
        }
        self.sink.record_other("xs_transaction_start", m);
        r
    }

    fn transaction_end(&self, tx: TxId, commit: bool) -> Result<()> {
        let r = self.inner.transaction_end(tx, commit);
        let mut m = Map::new();
        m.insert("tx".into(), json!(tx.0));
        m.insert("commit".into(), json!(commit));
        if let Err(e) = &r {
            m.insert("errno".into(), json!(e.errno().unwrap_or(0)));
        }
        self.sink.record_other("xs_transaction_end", m);
        r
    }

    fn get_domain_path(&self, domid: u32) -> Result<String> {
        self.inner.get_domain_path(domid)
    }
}
