//! An in-memory Xenstore with the rules of C xenstored.
//!
//! Paths are checked and resolved like the daemon does ([`crate::path`]); writing a node
//! creates its missing parents (inheriting the parent's permissions); `rm` is recursive;
//! permissions are an owner plus an ACL, enforced for non-zero callers (dom0 is
//! privileged). Transactions follow C xenstored 4.17: a transaction works on its own copy,
//! remembers the generation of every node it touched (read or written) at first touch,
//! and its commit fails with `EAGAIN` if any of them changed meanwhile. Changing a node's
//! children changes the node, so creating siblings conflicts too.
//!
//! Several handles can share one store ([`MemStore::connect`], [`MemStore::connect_as`]);
//! each is a connection of its own, with its own transactions.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::path::{self, PathError};
use crate::{Access, Error, Perm, Reply, Request, Result, Store, TxId};

/// A recorded operation (see [`MemStore::ops`] and [`MemStore::set_hook`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// A request of [`Store::submit`] and its outcome.
    Submit {
        /// Calling domain.
        domid: u32,
        /// Its transaction.
        tx: TxId,
        /// The request.
        request: Request,
        /// `None` on success, else the errno.
        errno: Option<i32>,
    },
    /// A transaction was started.
    TransactionStart {
        /// Calling domain.
        domid: u32,
        /// The new id.
        tx: TxId,
    },
    /// A transaction was ended.
    TransactionEnd {
        /// Calling domain.
        domid: u32,
        /// Its id.
        tx: TxId,
        /// Commit (true) or abort.
        commit: bool,
        /// `None` on success, else the errno (`EAGAIN` on conflict).
        errno: Option<i32>,
    },
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let outcome = |e: &Option<i32>| match e {
            None => "ok".to_owned(),
            Some(n) => crate::wire::name_of(*n).to_owned(),
        };
        match self {
            Op::Submit {
                domid,
                tx,
                request,
                errno,
            } => {
                write!(f, "d{domid} t{} ", tx.0)?;
                match request {
                    Request::Read(p) => write!(f, "read {p}")?,
                    Request::Write(p, v) => write!(f, "write {p} = \"{}\"", escape(v))?,
                    Request::Mkdir(p) => write!(f, "mkdir {p}")?,
                    Request::Rm(p) => write!(f, "rm {p}")?,
                    Request::Directory(p) => write!(f, "directory {p}")?,
                    Request::GetPerms(p) => write!(f, "get_perms {p}")?,
                    Request::SetPerms(p, perms) => {
                        write!(f, "set_perms {p}")?;
                        for perm in perms {
                            write!(f, " {perm}")?;
                        }
                    }
                }
                write!(f, " -> {}", outcome(errno))
            }
            Op::TransactionStart { domid, tx } => write!(f, "d{domid} start t{}", tx.0),
            Op::TransactionEnd {
                domid,
                tx,
                commit,
                errno,
            } => write!(
                f,
                "d{domid} {} t{} -> {}",
                if *commit { "commit" } else { "abort" },
                tx.0,
                outcome(errno)
            ),
        }
    }
}

/// A callback that sees every recorded [`Op`].
pub type Hook = Box<dyn Fn(&Op) + Send + Sync>;

#[derive(Debug, Clone)]
struct Node {
    value: Vec<u8>,
    perms: Vec<Perm>,
    generation: u64,
    /// Creation order, so listings come out in the daemon's (insertion) order.
    created: u64,
}

#[derive(Debug)]
struct Tx {
    conn: u64,
    nodes: BTreeMap<String, Node>,
    accessed: BTreeMap<String, Option<u64>>,
    written: BTreeSet<String>,
    /// Successful `XS_WRITE`s, applied to [`State::writes`] at commit.
    writes: Vec<(String, Vec<u8>)>,
}

struct State {
    nodes: BTreeMap<String, Node>,
    /// Last value of every path written by a successful, committed `XS_WRITE`.
    writes: BTreeMap<String, Vec<u8>>,
    counter: u64,
    next_tx: u32,
    txs: HashMap<u32, Tx>,
    ops: Vec<Op>,
    hook: Option<Hook>,
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State")
            .field("nodes", &self.nodes.len())
            .field("transactions", &self.txs.len())
            .finish_non_exhaustive()
    }
}

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// The in-memory store. See the module documentation.
#[derive(Debug)]
pub struct MemStore {
    shared: Arc<Mutex<State>>,
    domid: u32,
    conn: u64,
}

impl Default for MemStore {
    fn default() -> MemStore {
        MemStore::new()
    }
}

impl MemStore {
    /// An empty store (just the root, permissions `n0`), used by dom0.
    pub fn new() -> MemStore {
        let mut nodes = BTreeMap::new();
        nodes.insert(
            "/".to_owned(),
            Node {
                value: Vec::new(),
                perms: vec![Perm {
                    domid: 0,
                    access: Access::None,
                }],
                generation: 0,
                created: 0,
            },
        );
        MemStore {
            shared: Arc::new(Mutex::new(State {
                nodes,
                writes: BTreeMap::new(),
                counter: 0,
                next_tx: 1,
                txs: HashMap::new(),
                ops: Vec::new(),
                hook: None,
            })),
            domid: 0,
            conn: NEXT_CONN.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// A store seeded with `(path, value)` pairs, written by dom0 outside transactions.
    pub fn from_pairs<I, K, V>(pairs: I) -> Result<MemStore>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<[u8]>,
    {
        let store = MemStore::new();
        for (k, v) in pairs {
            store.write(TxId::NONE, k.as_ref(), v.as_ref())?;
        }
        store.clear_ops();
        store.lock().writes.clear();
        Ok(store)
    }

    /// A store seeded from `KEY=VALUE` lines (split at the first `=`; blank lines and
    /// lines starting with `#` are skipped).
    pub fn from_kv_lines(text: &str) -> Result<MemStore> {
        let mut pairs = Vec::new();
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line.split_once('=').ok_or_else(|| Error::Invalid {
                detail: format!("seed line without '=': {line:?}"),
            })?;
            pairs.push((k.trim().to_owned(), v.to_owned()));
        }
        MemStore::from_pairs(pairs)
    }

    /// Another connection to the same store, as the same domain.
    pub fn connect(&self) -> MemStore {
        self.connect_as(self.domid)
    }

    /// Another connection to the same store, as domain `domid` (0 is privileged).
    pub fn connect_as(&self, domid: u32) -> MemStore {
        MemStore {
            shared: Arc::clone(&self.shared),
            domid,
            conn: NEXT_CONN.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The domain this handle acts as.
    pub fn domid(&self) -> u32 {
        self.domid
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every node except the root with its value, sorted by path components.
    pub fn entries(&self) -> Vec<(String, Vec<u8>)> {
        let state = self.lock();
        let mut out: Vec<(String, Vec<u8>)> = state
            .nodes
            .iter()
            .filter(|(p, _)| p.as_str() != "/")
            .map(|(p, n)| (p.clone(), n.value.clone()))
            .collect();
        out.sort_by(|a, b| a.0.split('/').cmp(b.0.split('/')));
        out
    }

    /// The whole store as `path = "value"` lines (like `xenstore-ls -f`), sorted by
    /// path components, non-printable bytes as `\xNN`: stable text for snapshots.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for (p, v) in self.entries() {
            out.push_str(&format!("{p} = \"{}\"\n", escape(&v)));
        }
        out
    }

    /// Every path written by a successful `XS_WRITE` (outside transactions, or in one
    /// that committed) with its last written value, sorted by path components. Unlike
    /// [`MemStore::dump`] this leaves out implicitly created parents, and keeps values
    /// of nodes removed since. Seeding writes are not included.
    pub fn writes(&self) -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<(String, Vec<u8>)> = self
            .lock()
            .writes
            .iter()
            .map(|(p, v)| (p.clone(), v.clone()))
            .collect();
        out.sort_by(|a, b| a.0.split('/').cmp(b.0.split('/')));
        out
    }

    /// [`MemStore::writes`] as `path = "value"` lines, for snapshots.
    pub fn dump_writes(&self) -> String {
        let mut out = String::new();
        for (p, v) in self.writes() {
            out.push_str(&format!("{p} = \"{}\"\n", escape(&v)));
        }
        out
    }

    /// Like [`MemStore::dump`] with each node's permissions appended as `(b0,r5)`.
    pub fn dump_with_perms(&self) -> String {
        let state = self.lock();
        let mut paths: Vec<&String> = state.nodes.keys().filter(|p| p.as_str() != "/").collect();
        paths.sort_by(|a, b| a.split('/').cmp(b.split('/')));
        let mut out = String::new();
        for p in paths {
            let n = &state.nodes[p];
            let perms: Vec<String> = n.perms.iter().map(Perm::to_string).collect();
            out.push_str(&format!(
                "{p} = \"{}\" ({})\n",
                escape(&n.value),
                perms.join(",")
            ));
        }
        out
    }

    /// The operations recorded so far, oldest first.
    pub fn ops(&self) -> Vec<Op> {
        self.lock().ops.clone()
    }

    /// Forgets the recorded operations.
    pub fn clear_ops(&self) {
        self.lock().ops.clear();
    }

    /// Calls `hook` with every operation from now on (replacing an earlier hook).
    pub fn set_hook(&self, hook: Hook) {
        self.lock().hook = Some(hook);
    }

    /// Number of open transactions (all connections).
    pub fn open_transactions(&self) -> usize {
        self.lock().txs.len()
    }
}

impl State {
    fn record(&mut self, op: Op) {
        if let Some(hook) = &self.hook {
            hook(&op);
        }
        self.ops.push(op);
    }
}

/// Escapes bytes for one-line display: printable ASCII as is, `"`/`\` and the rest as
/// `\"`, `\\`, `\xNN`.
pub fn escape(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(char::from(b)),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s
}

/// The tree an operation works on: the store itself, or a transaction's copy whose
/// first touch of each node refreshes it from the store and records its generation.
struct View<'a> {
    tree: &'a mut BTreeMap<String, Node>,
    tx: Option<TxParts<'a>>,
    counter: &'a mut u64,
}

struct TxParts<'a> {
    base: &'a BTreeMap<String, Node>,
    accessed: &'a mut BTreeMap<String, Option<u64>>,
    written: &'a mut BTreeSet<String>,
}

impl View<'_> {
    fn touch(&mut self, p: &str) {
        if let Some(tx) = &mut self.tx {
            if !tx.accessed.contains_key(p) {
                let current = tx.base.get(p);
                tx.accessed
                    .insert(p.to_owned(), current.map(|n| n.generation));
                match current {
                    Some(n) => {
                        self.tree.insert(p.to_owned(), n.clone());
                    }
                    None => {
                        self.tree.remove(p);
                    }
                }
            }
        }
    }

    fn get(&mut self, p: &str) -> Option<Node> {
        self.touch(p);
        self.tree.get(p).cloned()
    }

    fn put(&mut self, p: &str, mut node: Node) {
        self.touch(p);
        *self.counter += 1;
        node.generation = *self.counter;
        self.tree.insert(p.to_owned(), node);
        if let Some(tx) = &mut self.tx {
            tx.written.insert(p.to_owned());
        }
    }

    fn remove(&mut self, p: &str) {
        self.touch(p);
        self.tree.remove(p);
        if let Some(tx) = &mut self.tx {
            tx.written.insert(p.to_owned());
        }
    }

    /// Marks `p` changed (its children list changed).
    fn bump(&mut self, p: &str) {
        if let Some(n) = self.get(p) {
            self.put(p, n);
        }
    }

    fn descendants(&self, p: &str) -> Vec<String> {
        let start = if p == "/" {
            "/".to_owned()
        } else {
            format!("{p}/")
        };
        self.tree
            .range(start.clone()..)
            .take_while(|(k, _)| k.starts_with(&start))
            .map(|(k, _)| k.clone())
            .filter(|k| path::is_below(k, p))
            .collect()
    }

    fn children(&mut self, p: &str) -> Vec<String> {
        let mut kids: Vec<(u64, String)> = self
            .descendants(p)
            .into_iter()
            .filter(|k| path::parent(k) == Some(p))
            .filter_map(|k| {
                let created = self.tree.get(&k)?.created;
                Some((created, path::basename(&k).to_owned()))
            })
            .collect();
        kids.sort();
        kids.into_iter().map(|(_, name)| name).collect()
    }
}

fn allowed(caller: u32, perms: &[Perm], write: bool) -> bool {
    if caller == 0 {
        return true;
    }
    let Some(owner) = perms.first() else {
        return false;
    };
    if owner.domid == caller {
        return true;
    }
    let access = perms[1..]
        .iter()
        .find(|p| p.domid == caller)
        .map_or(owner.access, |p| p.access);
    if write {
        access.can_write()
    } else {
        access.can_read()
    }
}

fn op_name(req: &Request) -> (&'static str, &str) {
    match req {
        Request::Read(p) => ("read", p),
        Request::Write(p, _) => ("write", p),
        Request::Mkdir(p) => ("mkdir", p),
        Request::Rm(p) => ("rm", p),
        Request::Directory(p) => ("directory", p),
        Request::GetPerms(p) => ("get_perms", p),
        Request::SetPerms(p, _) => ("set_perms", p),
    }
}

/// Runs one request on `view` as domain `caller`; `Err` carries the errno.
fn apply(view: &mut View<'_>, caller: u32, req: &Request) -> std::result::Result<Reply, i32> {
    let (_, raw) = op_name(req);
    // The daemons answer every malformed path with EINVAL.
    let p = path::canonicalize(raw, caller).map_err(|_: PathError| libc::EINVAL)?;
    match req {
        Request::Read(_) => {
            let n = view.get(&p).ok_or(libc::ENOENT)?;
            check(allowed(caller, &n.perms, false))?;
            Ok(Reply::Data(n.value))
        }
        Request::Write(_, value) => {
            if let Some(mut n) = view.get(&p) {
                check(allowed(caller, &n.perms, true))?;
                n.value.clone_from(value);
                view.put(&p, n);
            } else {
                create(view, caller, &p, value)?;
            }
            Ok(Reply::Ok)
        }
        Request::Mkdir(_) => {
            if view.get(&p).is_none() {
                create(view, caller, &p, &[])?;
            }
            Ok(Reply::Ok)
        }
        Request::Rm(_) => {
            let parent = path::parent(&p).ok_or(libc::EINVAL)?.to_owned();
            let Some(n) = view.get(&p) else {
                // Like C xenstored: removing a missing node is fine if its parent exists.
                return match view.get(&parent) {
                    Some(_) => Ok(Reply::Ok),
                    None => Err(libc::ENOENT),
                };
            };
            check(allowed(caller, &n.perms, true))?;
            for d in view.descendants(&p) {
                view.remove(&d);
            }
            view.remove(&p);
            view.bump(&parent);
            Ok(Reply::Ok)
        }
        Request::Directory(_) => {
            let n = view.get(&p).ok_or(libc::ENOENT)?;
            check(allowed(caller, &n.perms, false))?;
            Ok(Reply::List(view.children(&p)))
        }
        Request::GetPerms(_) => {
            let n = view.get(&p).ok_or(libc::ENOENT)?;
            check(allowed(caller, &n.perms, false))?;
            Ok(Reply::Perms(n.perms))
        }
        Request::SetPerms(_, perms) => {
            if perms.is_empty() {
                return Err(libc::EINVAL);
            }
            let mut n = view.get(&p).ok_or(libc::ENOENT)?;
            let owner = n.perms.first().map(|o| o.domid);
            check(caller == 0 || owner == Some(caller))?;
            n.perms.clone_from(perms);
            view.put(&p, n);
            Ok(Reply::Ok)
        }
    }
}

fn check(ok: bool) -> std::result::Result<(), i32> {
    if ok {
        Ok(())
    } else {
        Err(libc::EACCES)
    }
}

/// Creates `p` with `value` and any missing ancestors (empty, inheriting permissions).
fn create(view: &mut View<'_>, caller: u32, p: &str, value: &[u8]) -> std::result::Result<(), i32> {
    let mut missing = vec![p.to_owned()];
    let mut cur = p;
    let existing = loop {
        let parent = path::parent(cur).ok_or(libc::EINVAL)?;
        match view.get(parent) {
            Some(n) => break (parent.to_owned(), n),
            None => {
                missing.push(parent.to_owned());
                cur = parent;
            }
        }
    };
    let (existing_path, existing_node) = existing;
    check(allowed(caller, &existing_node.perms, true))?;
    let mut perms = existing_node.perms.clone();
    if caller != 0 {
        if let Some(owner) = perms.first_mut() {
            owner.domid = caller;
        }
    }
    for (i, m) in missing.iter().rev().enumerate() {
        let is_target = i + 1 == missing.len();
        let created = *view.counter + 1;
        view.put(
            m,
            Node {
                value: if is_target {
                    value.to_vec()
                } else {
                    Vec::new()
                },
                perms: perms.clone(),
                generation: 0,
                created,
            },
        );
    }
    view.bump(&existing_path);
    Ok(())
}

impl Store for MemStore {
    fn submit(&self, tx: TxId, reqs: &[Request]) -> Result<Vec<Result<Reply>>> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let mut results = Vec::with_capacity(reqs.len());
        let mut records = Vec::with_capacity(reqs.len());
        let mut writes = Vec::new();
        {
            let mut view = if tx == TxId::NONE {
                View {
                    tree: &mut state.nodes,
                    tx: None,
                    counter: &mut state.counter,
                }
            } else {
                match state.txs.get_mut(&tx.0).filter(|t| t.conn == self.conn) {
                    Some(t) => View {
                        tree: &mut t.nodes,
                        tx: Some(TxParts {
                            base: &state.nodes,
                            accessed: &mut t.accessed,
                            written: &mut t.written,
                        }),
                        counter: &mut state.counter,
                    },
                    None => {
                        // Unknown transaction: every request fails like C xenstored's.
                        for req in reqs {
                            let (op, p) = op_name(req);
                            results.push(Err(Error::daemon(op, p, libc::ENOENT)));
                        }
                        return Ok(results);
                    }
                }
            };
            for req in reqs {
                let (op, p) = op_name(req);
                let outcome = apply(&mut view, self.domid, req);
                if let (Ok(_), Request::Write(raw, value)) = (&outcome, req) {
                    if let Ok(p) = path::canonicalize(raw, self.domid) {
                        writes.push((p, value.clone()));
                    }
                }
                records.push(Op::Submit {
                    domid: self.domid,
                    tx,
                    request: req.clone(),
                    errno: outcome.as_ref().err().copied(),
                });
                results.push(outcome.map_err(|errno| Error::daemon(op, p, errno)));
            }
        }
        for r in records {
            state.record(r);
        }
        match state.txs.get_mut(&tx.0) {
            Some(t) if tx != TxId::NONE => t.writes.extend(writes),
            _ => state.writes.extend(writes),
        }
        Ok(results)
    }

    fn transaction_start(&self) -> Result<TxId> {
        let mut state = self.lock();
        let id = state.next_tx;
        state.next_tx = state.next_tx.wrapping_add(1).max(1);
        let tx = Tx {
            conn: self.conn,
            nodes: state.nodes.clone(),
            accessed: BTreeMap::new(),
            written: BTreeSet::new(),
            writes: Vec::new(),
        };
        state.txs.insert(id, tx);
        state.record(Op::TransactionStart {
            domid: self.domid,
            tx: TxId(id),
        });
        Ok(TxId(id))
    }

    fn transaction_end(&self, tx: TxId, commit: bool) -> Result<()> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let outcome = match state.txs.get(&tx.0) {
            Some(t) if t.conn == self.conn => {
                let t = state.txs.remove(&tx.0).ok_or(libc::ENOENT);
                t.and_then(|t| {
                    if !commit {
                        return Ok(());
                    }
                    let conflict = t
                        .accessed
                        .iter()
                        .any(|(p, g)| state.nodes.get(p).map(|n| n.generation) != *g);
                    if conflict {
                        return Err(libc::EAGAIN);
                    }
                    state.writes.extend(t.writes.iter().cloned());
                    for p in &t.written {
                        match t.nodes.get(p) {
                            Some(n) => {
                                state.counter += 1;
                                let mut n = n.clone();
                                n.generation = state.counter;
                                state.nodes.insert(p.clone(), n);
                            }
                            None => {
                                let below: Vec<String> = state
                                    .nodes
                                    .keys()
                                    .filter(|k| path::is_below(k, p))
                                    .cloned()
                                    .collect();
                                for k in below {
                                    state.nodes.remove(&k);
                                }
                                state.nodes.remove(p);
                            }
                        }
                    }
                    Ok(())
                })
            }
            _ => Err(libc::ENOENT),
        };
        state.record(Op::TransactionEnd {
            domid: self.domid,
            tx,
            commit,
            errno: outcome.err(),
        });
        outcome.map_err(|errno| Error::daemon("transaction_end", "", errno))
    }

    fn get_domain_path(&self, domid: u32) -> Result<String> {
        Ok(path::domain_path(domid))
    }
}
