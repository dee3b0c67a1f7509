//! A minimal recording [`Store`] for unit tests of the stages.

use std::collections::BTreeMap;
use std::sync::Mutex;

use xg_store::{Error, Reply, Request, Result, Store, TxId};

/// A map-backed store that records each `submit` batch.
#[derive(Debug, Default)]
pub struct MapStore {
    /// The nodes.
    pub nodes: Mutex<BTreeMap<String, Vec<u8>>>,
    /// Sizes of the batches submitted.
    pub batches: Mutex<Vec<usize>>,
}

impl MapStore {
    /// A store holding `keys` (absolute paths).
    pub fn with(keys: &[(&str, &str)]) -> MapStore {
        let s = MapStore::default();
        if let Ok(mut n) = s.nodes.lock() {
            for (k, v) in keys {
                n.insert((*k).to_owned(), v.as_bytes().to_vec());
            }
        }
        s
    }
}

impl Store for MapStore {
    fn submit(&self, _tx: TxId, reqs: &[Request]) -> Result<Vec<Result<Reply>>> {
        if let Ok(mut b) = self.batches.lock() {
            b.push(reqs.len());
        }
        let mut nodes = self.nodes.lock().map_err(|_| Error::Protocol {
            detail: "poisoned".into(),
        })?;
        Ok(reqs
            .iter()
            .map(|r| match r {
                Request::Read(p) => nodes.get(p).cloned().map(Reply::Data).ok_or(Error::Daemon {
                    op: "read",
                    path: p.clone(),
                    name: "ENOENT".into(),
                    errno: libc::ENOENT,
                }),
                Request::Write(p, v) => {
                    nodes.insert(p.clone(), v.clone());
                    Ok(Reply::Ok)
                }
                _ => Ok(Reply::Ok),
            })
            .collect())
    }

    fn transaction_start(&self) -> Result<TxId> {
        Ok(TxId(1))
    }

    fn transaction_end(&self, _tx: TxId, _commit: bool) -> Result<()> {
        Ok(())
    }

    fn get_domain_path(&self, domid: u32) -> Result<String> {
        Ok(format!("/local/domain/{domid}"))
    }
}
