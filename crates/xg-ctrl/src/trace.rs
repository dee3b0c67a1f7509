//! Call traces: every hypervisor call a build makes, as JSON Lines.
//!
//! [`Traced`] wraps any backend (the simulator or privcmd) and records each call into a
//! [`TraceSink`]. The memory calls are recorded exactly as the libxenguest oracle
//! (`shared/fixtures/libxenguest-oracle`) writes them, field for field and in the same
//! order, so a trace of our `meminit` diffs directly against the real library's with
//! `tools/compare-traces.py`.
//!
//! # Format
//!
//! One JSON object per line.
//!
//! * **Hypervisor calls** start with `"seq"` (0, 1, 2, … in call order) and then
//!   `"call"`, the operation's name, exactly as the oracle does. Then come the arguments
//!   (`domid` first when there is one), then `rc` (0 or the count the call returns on
//!   success, -1 on failure) and, for failures of calls other than the oracle's four,
//!   `errno`. Results follow `rc`.
//!   * `populate_physmap`, `populate_physmap_exact`: `domid, nr_extents, extent_order,
//!     mem_flags, pod, exact_node` (-1 = none)`, first_gpfn, last_gpfn,
//!     gpfns_contiguous, done, rc`. `first_gpfn`/`last_gpfn` are the first and the last
//!     entry of the extent list (0 when empty), `gpfns_contiguous` says every entry `i`
//!     is `first + (i << order)`. `populate_physmap`'s `rc` equals `done`;
//!     `populate_physmap_exact`'s is 0, or -1 when `done` is short (libxenctrl's EBUSY).
//!   * `claim_pages`: `domid, nr_pages, rc`. `set_pod_target`: `domid, target_pages, rc`.
//!   * Every other operation uses its name in [`crate::sim::fault::OP_NAMES`], e.g.
//!     `{"seq":7,"call":"set_max_mem","domid":5,"max_memkb":1048576,"rc":0}` or
//!     `{"seq":9,"call":"set_hvm_param","domid":5,"param":99,"value":1,"rc":-1,"errno":22}`.
//!     Bitmaps (cpumap, nodemap) are hex strings of their bytes; guest writes carry
//!     `len` and `fnv1a`, a 64-bit FNV-1a hash of the bytes (hex), instead of the data.
//! * **Other records** (Xenstore operations, build phases, the driver's `config` and
//!   `result`) are added with [`TraceSink::record_other`]. They start with `"call"`, have
//!   no `seq` and do not advance it, so hypervisor-call numbering stays comparable with
//!   the oracle's whatever else a build records; their position in the file shows where
//!   they happened.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::ops::{
    AffinityKind, CpuPolicy, CreditParams, DomainConfig, DomainInfo, DomainOps, E820Entry,
    GuestMemory, HostOps, MemoryOps, NumaInfo, PciDev, PhysInfo, PvOps, ReservedRegion,
    SystemCpuPolicy, XenVersion,
};
use crate::types::{DomId, Gfn, MemFlags, Mfn, PageOrder};

/// One trace record: fields in the order they are written.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    fields: Vec<(String, Value)>,
}

impl Record {
    /// A record from ordered fields.
    pub fn new(fields: Vec<(String, Value)>) -> Record {
        Record { fields }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The `call` field.
    pub fn call(&self) -> Option<&str> {
        self.get("call").and_then(Value::as_str)
    }

    /// The `seq` field (hypervisor calls only).
    pub fn seq(&self) -> Option<u64> {
        self.get("seq").and_then(Value::as_u64)
    }

    /// Field names in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(k, _)| k.as_str())
    }

    /// The record as a JSON object (serde_json maps are sorted by key, so the order of
    /// the fields is only kept by [`Record::to_json_line`]).
    pub fn to_value(&self) -> Value {
        Value::Object(self.fields.iter().cloned().collect())
    }

    /// The record as one JSON line (without the newline), fields in order.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl fmt::Display for Record {
    /// The record as its JSON line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_json_line())
    }
}

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.fields.len()))?;
        for (k, v) in &self.fields {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

struct SinkInner {
    records: Vec<Record>,
    keep: bool,
    next_seq: u64,
    writer: Option<Box<dyn Write + Send>>,
}

impl SinkInner {
    fn push(&mut self, record: Record) {
        if let Some(w) = &mut self.writer {
            let written = serde_json::to_writer(&mut *w, &record)
                .map_err(io::Error::from)
                .and_then(|()| w.write_all(b"\n"));
            if let Err(e) = written {
                log::warn!("trace: writing failed, trace file dropped: {e}");
                self.writer = None;
            }
        }
        if self.keep {
            self.records.push(record);
        }
    }
}

impl Drop for SinkInner {
    fn drop(&mut self) {
        if let Some(w) = &mut self.writer {
            if let Err(e) = w.flush() {
                log::warn!("trace: flushing failed: {e}");
            }
        }
    }
}

/// Where trace records go: kept in memory (for tests and reports) and optionally
/// streamed as JSON Lines to a writer. Cloning gives another handle to the same sink.
#[derive(Clone)]
pub struct TraceSink {
    inner: Arc<Mutex<SinkInner>>,
}

impl fmt::Debug for TraceSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.lock();
        f.debug_struct("TraceSink")
            .field("records", &s.records.len())
            .field("next_seq", &s.next_seq)
            .field("streaming", &s.writer.is_some())
            .finish()
    }
}

impl Default for TraceSink {
    fn default() -> Self {
        TraceSink::new()
    }
}

impl TraceSink {
    fn build(keep: bool, writer: Option<Box<dyn Write + Send>>) -> TraceSink {
        TraceSink {
            inner: Arc::new(Mutex::new(SinkInner {
                records: Vec::new(),
                keep,
                next_seq: 0,
                writer,
            })),
        }
    }

    /// A sink that keeps records in memory only.
    pub fn new() -> TraceSink {
        TraceSink::build(true, None)
    }

    /// A sink that keeps records and also writes each as a JSON line to `writer`.
    pub fn with_writer(writer: impl Write + Send + 'static) -> TraceSink {
        TraceSink::build(true, Some(Box::new(writer)))
    }

    /// A sink that only streams to `writer` (for long runs: memory stays flat).
    pub fn streaming(writer: impl Write + Send + 'static) -> TraceSink {
        TraceSink::build(false, Some(Box::new(writer)))
    }

    /// A sink that keeps records and writes them to a new file at `path`.
    pub fn create(path: &Path) -> Result<TraceSink> {
        let file = File::create(path).map_err(|source| Error::Open {
            path: path.to_owned(),
            source,
        })?;
        Ok(TraceSink::with_writer(BufWriter::new(file)))
    }

    fn lock(&self) -> MutexGuard<'_, SinkInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a hypervisor call: `{"seq": n, "call": call, ...fields}`. Returns `n`.
    pub fn record_call<K: Into<String>>(
        &self,
        call: &str,
        fields: impl IntoIterator<Item = (K, Value)>,
    ) -> u64 {
        let mut s = self.lock();
        let seq = s.next_seq;
        s.next_seq += 1;
        let mut all = vec![
            ("seq".to_owned(), json!(seq)),
            ("call".to_owned(), json!(call)),
        ];
        all.extend(fields.into_iter().map(|(k, v)| (k.into(), v)));
        s.push(Record::new(all));
        seq
    }

    /// Records something that is not a hypervisor call: `{"call": call, ...fields}`,
    /// without a `seq` (see the module documentation).
    pub fn record_other<K: Into<String>>(
        &self,
        call: &str,
        fields: impl IntoIterator<Item = (K, Value)>,
    ) {
        let mut all = vec![("call".to_owned(), json!(call))];
        all.extend(fields.into_iter().map(|(k, v)| (k.into(), v)));
        self.lock().push(Record::new(all));
    }

    /// Every record kept so far, in order.
    pub fn records(&self) -> Vec<Record> {
        self.lock().records.clone()
    }

    /// Every record kept so far as JSON values.
    pub fn values(&self) -> Vec<Value> {
        self.lock().records.iter().map(Record::to_value).collect()
    }

    /// The hypervisor-call records kept so far (those with a `seq`).
    pub fn hypercalls(&self) -> Vec<Record> {
        self.lock()
            .records
            .iter()
            .filter(|r| r.seq().is_some())
            .cloned()
            .collect()
    }

    /// The kept records as JSON lines (fields in order, no newlines).
    pub fn lines(&self) -> Vec<String> {
        self.lock()
            .records
            .iter()
            .map(Record::to_json_line)
            .collect()
    }

    /// The `seq` the next hypervisor call gets.
    pub fn next_seq(&self) -> u64 {
        self.lock().next_seq
    }

    /// Flushes the writer, if any.
    pub fn flush(&self) -> io::Result<()> {
        match &mut self.lock().writer {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }

    /// Writes the kept records as JSON Lines.
    pub fn write_jsonl(&self, mut out: impl Write) -> io::Result<()> {
        for r in &self.lock().records {
            serde_json::to_writer(&mut out, r)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }

    /// Reads JSON Lines (ours or the oracle's) back, keeping each line's field order;
    /// blank lines are skipped.
    pub fn read_jsonl(input: impl BufRead) -> io::Result<Vec<Record>> {
        let mut out = Vec::new();
        for line in input.lines() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            out.push(parse_ordered(&line)?);
        }
        Ok(out)
    }
}

/// Parses one JSON object keeping the order of its top-level keys.
fn parse_ordered(line: &str) -> io::Result<Record> {
    struct Ordered(Vec<(String, Value)>);
    impl<'de> Deserialize<'de> for Ordered {
        fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Ordered;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> std::result::Result<Ordered, A::Error> {
                    let mut fields = Vec::new();
                    while let Some((k, v)) = map.next_entry::<String, Value>()? {
                        fields.push((k, v));
                    }
                    Ok(Ordered(fields))
                }
            }
            d.deserialize_map(V)
        }
    }
    let Ordered(fields) = serde_json::from_str(line)?;
    Ok(Record::new(fields))
}

/// 64-bit FNV-1a of `data`, as hex.
pub fn fnv1a_hex(data: &[u8]) -> String {
    let hash = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A backend whose every call is recorded into a [`TraceSink`].
#[derive(Debug, Clone)]
pub struct Traced<H> {
    inner: H,
    sink: TraceSink,
}

impl<H> Traced<H> {
    /// Wraps `inner`, recording into `sink`.
    pub fn new(inner: H, sink: TraceSink) -> Traced<H> {
        Traced { inner, sink }
    }

    /// The wrapped backend (calls made through it are not recorded).
    pub fn inner(&self) -> &H {
        &self.inner
    }

    /// The sink.
    pub fn sink(&self) -> &TraceSink {
        &self.sink
    }

    /// Unwraps the backend.
    pub fn into_inner(self) -> H {
        self.inner
    }
}

/// Ordered record fields.
type Fields = Vec<(String, Value)>;

/// Builds ordered fields from `key => value` pairs.
macro_rules! fields {
    ($($k:literal => $v:expr),* $(,)?) => {{
        let m: Fields = vec![$( ($k.to_owned(), json!($v)) ),*];
        m
    }};
}

/// Appends `rc`/`errno` (and `extra` on success) and records the call.
fn finish<T>(
    sink: &TraceSink,
    call: &str,
    mut fields: Fields,
    result: &Result<T>,
    extra: impl FnOnce(&T) -> Fields,
) {
    match result {
        Ok(v) => {
            fields.push(("rc".to_owned(), json!(0)));
            fields.extend(extra(v));
        }
        Err(e) => {
            fields.push(("rc".to_owned(), json!(-1)));
            fields.push(("errno".to_owned(), json!(e.errno().unwrap_or(0))));
        }
    }
    sink.record_call(call, fields);
}

fn none<T>(_: &T) -> Fields {
    Fields::new()
}

fn populate_fields(domid: DomId, order: PageOrder, flags: MemFlags, gfns: &[Gfn]) -> Fields {
    let first = gfns.first().map_or(0, |g| g.0);
    let last = gfns.last().map_or(0, |g| g.0);
    let contiguous = gfns.iter().enumerate().all(|(i, g)| {
        crate::types::conv::usize_to_u64(i)
            .checked_shl(u32::from(order.get()))
            .and_then(|off| first.checked_add(off))
            == Some(g.0)
    });
    let exact_node = match (flags.is_exact(), flags.get_node()) {
        (true, Some(n)) => i64::from(n),
        _ => -1,
    };
    fields! {
        "domid" => domid.0,
        "nr_extents" => gfns.len(),
        "extent_order" => order.get(),
        "mem_flags" => flags.0,
        "pod" => flags.is_pod(),
        "exact_node" => exact_node,
        "first_gpfn" => first,
        "last_gpfn" => last,
        "gpfns_contiguous" => contiguous,
    }
}

fn machine_fields(domid: DomId, mfns: &[Mfn], offset: u64, len: usize) -> Fields {
    fields! {
        "domid" => domid.0,
        "nr_frames" => mfns.len(),
        "first_mfn" => mfns.first().map_or(0, |m| m.0),
        "offset" => offset,
        "len" => len,
    }
}

impl<H: PvOps> PvOps for Traced<H> {
    fn populate_physmap_mfns(
        &self,
        domid: DomId,
        order: PageOrder,
        flags: MemFlags,
        gfns: &[Gfn],
    ) -> Result<Vec<Mfn>> {
        let r = self.inner.populate_physmap_mfns(domid, order, flags, gfns);
        let f = populate_fields(domid, order, flags, gfns);
        finish(&self.sink, "populate_physmap_mfns", f, &r, |m| {
            fields! { "done" => m.len(), "first_mfn" => m.first().map_or(0, |x| x.0) }
        });
        r
    }

    fn set_address_size(&self, domid: DomId, bits: u32) -> Result<()> {
        let r = self.inner.set_address_size(domid, bits);
        let f = fields! { "domid" => domid.0, "size" => bits };
        finish(&self.sink, "set_address_size", f, &r, none);
        r
    }

    fn write_machine(&self, domid: DomId, mfns: &[Mfn], offset: u64, data: &[u8]) -> Result<()> {
        let r = self.inner.write_machine(domid, mfns, offset, data);
        let mut f = machine_fields(domid, mfns, offset, data.len());
        f.push(("fnv1a".to_owned(), json!(fnv1a_hex(data))));
        finish(&self.sink, "write_machine", f, &r, none);
        r
    }

    fn read_machine(&self, domid: DomId, mfns: &[Mfn], offset: u64, buf: &mut [u8]) -> Result<()> {
        let r = self.inner.read_machine(domid, mfns, offset, buf);
        let f = machine_fields(domid, mfns, offset, buf.len());
        finish(&self.sink, "read_machine", f, &r, none);
        r
    }

    fn set_vcpu_context(&self, domid: DomId, vcpu: u32, context: &[u8]) -> Result<()> {
        let r = self.inner.set_vcpu_context(domid, vcpu, context);
        let f = fields! {
            "domid" => domid.0,
            "vcpu" => vcpu,
            "len" => context.len(),
            "fnv1a" => fnv1a_hex(context),
        };
        finish(&self.sink, "set_vcpu_context", f, &r, none);
        r
    }

    fn hypercall_init(&self, domid: DomId, mfn: Mfn) -> Result<()> {
        let r = self.inner.hypercall_init(domid, mfn);
        let f = fields! { "domid" => domid.0, "gmfn" => mfn.0 };
        finish(&self.sink, "hypercall_init", f, &r, none);
        r
    }

    fn pin_table(&self, domid: DomId, level: u32, mfn: Mfn) -> Result<()> {
        let r = self.inner.pin_table(domid, level, mfn);
        let f = fields! { "domid" => domid.0, "level" => level, "mfn" => mfn.0 };
        finish(&self.sink, "pin_table", f, &r, none);
        r
    }

    fn address_size(&self, domid: DomId) -> Result<u32> {
        let r = self.inner.address_size(domid);
        let f = fields! { "domid" => domid.0 };
        finish(&self.sink, "address_size", f, &r, |&bits| {
            fields! { "size" => bits }
        });
        r
    }

    fn maximum_gpfn(&self, domid: DomId) -> Result<u64> {
        let r = self.inner.maximum_gpfn(domid);
        let f = fields! { "domid" => domid.0 };
        finish(&self.sink, "maximum_gpfn", f, &r, |&gpfn| {
            fields! { "gpfn" => gpfn }
        });
        r
    }

    fn vcpu_context(&self, domid: DomId, vcpu: u32) -> Result<Vec<u8>> {
        let r = self.inner.vcpu_context(domid, vcpu);
        let f = fields! { "domid" => domid.0, "vcpu" => vcpu };
        finish(&self.sink, "vcpu_context", f, &r, |ctx| {
            fields! { "len" => ctx.len(), "fnv1a" => fnv1a_hex(ctx) }
        });
        r
    }

    fn reset_vcpu(&self, domid: DomId, vcpu: u32) -> Result<()> {
        let r = self.inner.reset_vcpu(domid, vcpu);
        let f = fields! { "domid" => domid.0, "vcpu" => vcpu };
        finish(&self.sink, "reset_vcpu", f, &r, none);
        r
    }
}

fn kind_name(kind: AffinityKind) -> &'static str {
    match kind {
        AffinityKind::Hard => "hard",
        AffinityKind::Soft => "soft",
    }
}

impl<H: HostOps> HostOps for Traced<H> {
    fn xen_version(&self) -> Result<XenVersion> {
        let r = self.inner.xen_version();
        finish(&self.sink, "xen_version", Fields::new(), &r, |v| {
            fields! { "major" => v.major, "minor" => v.minor }
        });
        r
    }

    fn physinfo(&self) -> Result<PhysInfo> {
        let r = self.inner.physinfo();
        finish(&self.sink, "physinfo", Fields::new(), &r, |p| {
            fields! {
                "nr_cpus" => p.nr_cpus,
                "nr_nodes" => p.nr_nodes,
                "total_pages" => p.total_pages,
                "free_pages" => p.free_pages,
            }
        });
        r
    }

    fn numainfo(&self) -> Result<NumaInfo> {
        let r = self.inner.numainfo();
        finish(&self.sink, "numainfo", Fields::new(), &r, |n| {
            fields! { "nr_nodes" => n.nodes.len() }
        });
        r
    }

    fn system_cpu_policy(&self, which: SystemCpuPolicy) -> Result<CpuPolicy> {
        let r = self.inner.system_cpu_policy(which);
        let f = fields! { "index" => which as u32 };
        finish(&self.sink, "system_cpu_policy", f, &r, |p| {
            fields! { "nr_leaves" => p.leaves.len(), "nr_msrs" => p.msrs.len() }
        });
        r
    }
}

impl<H: DomainOps> DomainOps for Traced<H> {
    fn create_domain(&self, domid: DomId, config: &DomainConfig) -> Result<DomId> {
        let r = self.inner.create_domain(domid, config);
        let f = fields! {
            "domid" => domid.0,
            "hvm" => config.hvm,
            "hap" => config.hap,
            "max_vcpus" => config.max_vcpus,
            "max_evtchn_port" => config.max_evtchn_port,
            "max_grant_frames" => config.max_grant_frames,
            "max_maptrack_frames" => config.max_maptrack_frames,
        };
        finish(
            &self.sink,
            "create_domain",
            f,
            &r,
            |d| fields! { "new_domid" => d.0 },
        );
        r
    }

    fn domain_info(&self, domid: DomId) -> Result<DomainInfo> {
        let r = self.inner.domain_info(domid);
        finish(
            &self.sink,
            "domain_info",
            fields! { "domid" => domid.0 },
            &r,
            |i| {
                fields! {
                    "flags" => i.flags,
                    "tot_pages" => i.tot_pages,
                    "max_pages" => i.max_pages,
                    "outstanding_pages" => i.outstanding_pages,
                }
            },
        );
        r
    }

    fn set_max_vcpus(&self, domid: DomId, max: u32) -> Result<()> {
        let r = self.inner.set_max_vcpus(domid, max);
        let f = fields! { "domid" => domid.0, "max" => max };
        finish(&self.sink, "set_max_vcpus", f, &r, none);
        r
    }

    fn set_max_mem(&self, domid: DomId, max_kib: u64) -> Result<()> {
        let r = self.inner.set_max_mem(domid, max_kib);
        let f = fields! { "domid" => domid.0, "max_memkb" => max_kib };
        finish(&self.sink, "set_max_mem", f, &r, none);
        r
    }

    fn unpause(&self, domid: DomId) -> Result<()> {
        let r = self.inner.unpause(domid);
        finish(
            &self.sink,
            "unpause",
            fields! { "domid" => domid.0 },
            &r,
            none,
        );
        r
    }

    fn resume_domain(&self, domid: DomId) -> Result<()> {
        let r = self.inner.resume_domain(domid);
        finish(
            &self.sink,
            "resume_domain",
            fields! { "domid" => domid.0 },
            &r,
            none,
        );
        r
    }

    fn destroy(&self, domid: DomId) -> Result<()> {
        let r = self.inner.destroy(domid);
        finish(
            &self.sink,
            "destroy",
            fields! { "domid" => domid.0 },
            &r,
            none,
        );
        r
    }

    fn set_vcpu_affinity(
        &self,
        domid: DomId,
        vcpu: u32,
        kind: AffinityKind,
        cpumap: &[u8],
    ) -> Result<Vec<u8>> {
        let r = self.inner.set_vcpu_affinity(domid, vcpu, kind, cpumap);
        let f = fields! {
            "domid" => domid.0,
            "vcpu" => vcpu,
            "kind" => kind_name(kind),
            "cpumap" => hex(cpumap),
        };
        finish(&self.sink, "set_vcpu_affinity", f, &r, |m| {
            fields! { "effective" => hex(m) }
        });
        r
    }

    fn vcpu_affinity(&self, domid: DomId, vcpu: u32, kind: AffinityKind) -> Result<Vec<u8>> {
        let r = self.inner.vcpu_affinity(domid, vcpu, kind);
        let f = fields! { "domid" => domid.0, "vcpu" => vcpu, "kind" => kind_name(kind) };
        finish(
            &self.sink,
            "vcpu_affinity",
            f,
            &r,
            |m| fields! { "cpumap" => hex(m) },
        );
        r
    }

    fn set_node_affinity(&self, domid: DomId, nodemap: &[u8]) -> Result<()> {
        let r = self.inner.set_node_affinity(domid, nodemap);
        let f = fields! { "domid" => domid.0, "nodemap" => hex(nodemap) };
        finish(&self.sink, "set_node_affinity", f, &r, none);
        r
    }

    fn node_affinity(&self, domid: DomId) -> Result<Vec<u8>> {
        let r = self.inner.node_affinity(domid);
        finish(
            &self.sink,
            "node_affinity",
            fields! { "domid" => domid.0 },
            &r,
            |m| {
                fields! { "nodemap" => hex(m) }
            },
        );
        r
    }

    fn sched_credit_get(&self, domid: DomId) -> Result<CreditParams> {
        let r = self.inner.sched_credit_get(domid);
        finish(
            &self.sink,
            "sched_credit_get",
            fields! { "domid" => domid.0 },
            &r,
            |p| {
                fields! { "weight" => p.weight, "cap" => p.cap }
            },
        );
        r
    }

    fn sched_credit_set(&self, domid: DomId, params: CreditParams) -> Result<()> {
        let r = self.inner.sched_credit_set(domid, params);
        let f = fields! { "domid" => domid.0, "weight" => params.weight, "cap" => params.cap };
        finish(&self.sink, "sched_credit_set", f, &r, none);
        r
    }

    fn set_tsc_info(&self, domid: DomId, tsc_mode: u32) -> Result<()> {
        let r = self.inner.set_tsc_info(domid, tsc_mode);
        let f = fields! { "domid" => domid.0, "tsc_mode" => tsc_mode };
        finish(&self.sink, "set_tsc_info", f, &r, none);
        r
    }

    fn set_time_offset(&self, domid: DomId, seconds: i32) -> Result<()> {
        let r = self.inner.set_time_offset(domid, seconds);
        let f = fields! { "domid" => domid.0, "seconds" => seconds };
        finish(&self.sink, "set_time_offset", f, &r, none);
        r
    }

    fn set_hvm_param(&self, domid: DomId, param: u32, value: u64) -> Result<()> {
        let r = self.inner.set_hvm_param(domid, param, value);
        let f = fields! { "domid" => domid.0, "param" => param, "value" => value };
        finish(&self.sink, "set_hvm_param", f, &r, none);
        r
    }

    fn hvm_param(&self, domid: DomId, param: u32) -> Result<u64> {
        let r = self.inner.hvm_param(domid, param);
        let f = fields! { "domid" => domid.0, "param" => param };
        finish(&self.sink, "hvm_param", f, &r, |v| fields! { "value" => v });
        r
    }

    fn alloc_unbound_evtchn(&self, domid: DomId, remote: DomId) -> Result<u32> {
        let r = self.inner.alloc_unbound_evtchn(domid, remote);
        let f = fields! { "domid" => domid.0, "remote" => remote.0 };
        finish(
            &self.sink,
            "alloc_unbound_evtchn",
            f,
            &r,
            |p| fields! { "port" => p },
        );
        r
    }

    fn domain_cpu_policy(&self, domid: DomId) -> Result<CpuPolicy> {
        let r = self.inner.domain_cpu_policy(domid);
        finish(
            &self.sink,
            "domain_cpu_policy",
            fields! { "domid" => domid.0 },
            &r,
            |p| {
                fields! { "nr_leaves" => p.leaves.len(), "nr_msrs" => p.msrs.len() }
            },
        );
        r
    }

    fn set_domain_cpu_policy(&self, domid: DomId, policy: &CpuPolicy) -> Result<()> {
        let r = self.inner.set_domain_cpu_policy(domid, policy);
        let f = fields! {
            "domid" => domid.0,
            "nr_leaves" => policy.leaves.len(),
            "nr_msrs" => policy.msrs.len(),
        };
        finish(&self.sink, "set_domain_cpu_policy", f, &r, none);
        r
    }

    fn hvm_context(&self, domid: DomId) -> Result<Vec<u8>> {
        let r = self.inner.hvm_context(domid);
        finish(
            &self.sink,
            "hvm_context",
            fields! { "domid" => domid.0 },
            &r,
            |b| {
                fields! { "size" => b.len() }
            },
        );
        r
    }

    fn set_hvm_context(&self, domid: DomId, blob: &[u8]) -> Result<()> {
        let r = self.inner.set_hvm_context(domid, blob);
        let f = fields! { "domid" => domid.0, "size" => blob.len(), "fnv1a" => fnv1a_hex(blob) };
        finish(&self.sink, "set_hvm_context", f, &r, none);
        r
    }
}

impl<H: MemoryOps> MemoryOps for Traced<H> {
    fn populate_physmap(
        &self,
        domid: DomId,
        order: PageOrder,
        flags: MemFlags,
        gfns: &[Gfn],
    ) -> Result<usize> {
        let r = self.inner.populate_physmap(domid, order, flags, gfns);
        let mut f = populate_fields(domid, order, flags, gfns);
        match &r {
            Ok(done) => {
                f.push(("done".to_owned(), json!(done)));
                f.push(("rc".to_owned(), json!(done)));
            }
            Err(e) => {
                f.push(("done".to_owned(), json!(0)));
                f.push(("rc".to_owned(), json!(-1)));
                f.push(("errno".to_owned(), json!(e.errno().unwrap_or(0))));
            }
        }
        self.sink.record_call("populate_physmap", f);
        r
    }

    fn populate_physmap_exact(
        &self,
        domid: DomId,
        order: PageOrder,
        flags: MemFlags,
        gfns: &[Gfn],
    ) -> Result<()> {
        let r = self.inner.populate_physmap_exact(domid, order, flags, gfns);
        let mut f = populate_fields(domid, order, flags, gfns);
        match &r {
            Ok(()) => {
                f.push(("done".to_owned(), json!(gfns.len())));
                f.push(("rc".to_owned(), json!(0)));
            }
            Err(Error::Partial { done, .. }) => {
                f.push(("done".to_owned(), json!(done)));
                f.push(("rc".to_owned(), json!(-1)));
            }
            Err(e) => {
                f.push(("done".to_owned(), json!(0)));
                f.push(("rc".to_owned(), json!(-1)));
                f.push(("errno".to_owned(), json!(e.errno().unwrap_or(0))));
            }
        }
        self.sink.record_call("populate_physmap_exact", f);
        r
    }

    fn decrease_reservation(&self, domid: DomId, order: PageOrder, gfns: &[Gfn]) -> Result<usize> {
        let r = self.inner.decrease_reservation(domid, order, gfns);
        let mut f = fields! {
            "domid" => domid.0,
            "nr_extents" => gfns.len(),
            "extent_order" => order.get(),
            "first_gpfn" => gfns.first().map_or(0, |g| g.0),
            "last_gpfn" => gfns.last().map_or(0, |g| g.0),
        };
        match &r {
            Ok(done) => {
                f.push(("done".to_owned(), json!(done)));
                f.push(("rc".to_owned(), json!(done)));
            }
            Err(e) => {
                f.push(("done".to_owned(), json!(0)));
                f.push(("rc".to_owned(), json!(-1)));
                f.push(("errno".to_owned(), json!(e.errno().unwrap_or(0))));
            }
        }
        self.sink.record_call("decrease_reservation", f);
        r
    }

    fn claim_pages(&self, domid: DomId, pages: u64) -> Result<()> {
        let r = self.inner.claim_pages(domid, pages);
        let f = fields! {
            "domid" => domid.0,
            "nr_pages" => pages,
            "rc" => if r.is_ok() { 0 } else { -1 },
        };
        self.sink.record_call("claim_pages", f);
        r
    }

    fn set_pod_target(&self, domid: DomId, target_pages: u64) -> Result<()> {
        let r = self.inner.set_pod_target(domid, target_pages);
        let f = fields! {
            "domid" => domid.0,
            "target_pages" => target_pages,
            "rc" => if r.is_ok() { 0 } else { -1 },
        };
        self.sink.record_call("set_pod_target", f);
        r
    }

    fn set_memory_map(&self, domid: DomId, map: &[E820Entry]) -> Result<()> {
        let r = self.inner.set_memory_map(domid, map);
        let f = fields! { "domid" => domid.0, "nr_entries" => map.len() };
        finish(&self.sink, "set_memory_map", f, &r, none);
        r
    }

    fn reserved_device_memory_map(
        &self,
        flags: u32,
        dev: PciDev,
        max_entries: u32,
    ) -> Result<Vec<ReservedRegion>> {
        let r = self
            .inner
            .reserved_device_memory_map(flags, dev, max_entries);
        let mut f = fields! {
            "flags" => flags,
            "sbdf" => dev.to_string(),
            "max_entries" => max_entries,
        };
        // nr_entries is what Xen writes back: the regions returned, or the count needed.
        match &r {
            Ok(regions) => {
                f.push(("rc".to_owned(), json!(0)));
                f.push(("nr_entries".to_owned(), json!(regions.len())));
                let list: Vec<Value> = regions
                    .iter()
                    .map(|g| json!([g.start_pfn, g.nr_pages]))
                    .collect();
                f.push(("regions".to_owned(), Value::Array(list)));
            }
            Err(e) => {
                f.push(("rc".to_owned(), json!(-1)));
                f.push(("errno".to_owned(), json!(e.errno().unwrap_or(0))));
                if let Error::TooSmall { needed, .. } = e {
                    f.push(("nr_entries".to_owned(), json!(needed)));
                }
            }
        }
        self.sink.record_call("reserved_device_memory_map", f);
        r
    }
}

impl<H: GuestMemory> GuestMemory for Traced<H> {
    fn write_guest(&self, domid: DomId, paddr: u64, data: &[u8]) -> Result<()> {
        let r = self.inner.write_guest(domid, paddr, data);
        let f = fields! {
            "domid" => domid.0,
            "paddr" => paddr,
            "len" => data.len(),
            "fnv1a" => fnv1a_hex(data),
        };
        finish(&self.sink, "write_guest", f, &r, none);
        r
    }

    fn read_guest(&self, domid: DomId, paddr: u64, buf: &mut [u8]) -> Result<()> {
        let r = self.inner.read_guest(domid, paddr, buf);
        let f = fields! { "domid" => domid.0, "paddr" => paddr, "len" => buf.len() };
        finish(&self.sink, "read_guest", f, &r, none);
        r
    }

    fn clear_guest_pages(&self, domid: DomId, gfns: &[Gfn]) -> Result<()> {
        let r = self.inner.clear_guest_pages(domid, gfns);
        let f = fields! {
            "domid" => domid.0,
            "nr_pages" => gfns.len(),
            "first_gpfn" => gfns.first().map_or(0, |g| g.0),
            "last_gpfn" => gfns.last().map_or(0, |g| g.0),
        };
        finish(&self.sink, "clear_guest_pages", f, &r, none);
        r
    }

    fn write_grant_table(&self, domid: DomId, offset: u64, data: &[u8]) -> Result<()> {
        let r = self.inner.write_grant_table(domid, offset, data);
        let f = fields! {
            "domid" => domid.0,
            "offset" => offset,
            "len" => data.len(),
            "fnv1a" => fnv1a_hex(data),
        };
        finish(&self.sink, "write_grant_table", f, &r, none);
        r
    }

    fn read_grant_table(&self, domid: DomId, offset: u64, buf: &mut [u8]) -> Result<()> {
        let r = self.inner.read_grant_table(domid, offset, buf);
        let f = fields! { "domid" => domid.0, "offset" => offset, "len" => buf.len() };
        finish(&self.sink, "read_grant_table", f, &r, none);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_counts_hypercalls_only() {
        let sink = TraceSink::new();
        sink.record_other("config", fields! { "mem_mib" => 256 });
        assert_eq!(sink.record_call("claim_pages", fields! { "domid" => 1 }), 0);
        sink.record_other("xenstore_write", fields! { "path" => "/a" });
        assert_eq!(sink.record_call("claim_pages", fields! { "domid" => 1 }), 1);
        let recs = sink.records();
        assert_eq!(recs.len(), 4);
        assert_eq!(sink.hypercalls().len(), 2);
        let mut out = Vec::new();
        sink.write_jsonl(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("{\"call\":\"config\",\"mem_mib\":256}\n"));
        assert!(text.contains("{\"seq\":1,\"call\":\"claim_pages\",\"domid\":1}\n"));
        assert_eq!(TraceSink::read_jsonl(text.as_bytes()).unwrap(), recs);
    }

    #[test]
    fn fnv1a_matches_reference_values() {
        assert_eq!(fnv1a_hex(b""), "cbf29ce484222325");
        assert_eq!(fnv1a_hex(b"a"), "af63dc4c8601ec8c");
    }
}
