//! `meminit_hvm`: populating an HVM/PVH guest's RAM, as libxenguest 4.17 does.
//!
//! [`MeminitPlan`] is the pure, lazy plan: a state machine that names the next
//! hypervisor call ([`Step`]) and is told its result ([`Answer`]). It holds a handful of
//! integers, so planning a 2 TiB guest costs no more memory than a 1 MiB one.
//! [`meminit_hvm`] runs it against [`xg_ctrl::MemoryOps`] with a [`Strategy`]:
//!
//! * [`Strategy::Compat`] makes libxenguest's calls one for one. The differential test
//!   `tests/oracle.rs` checks this against the real library, record by record.
//! * [`Strategy::Batched`] looks ahead on a clone of the plan, assuming success, and
//!   sends the consecutive requests of one order and flag set in one call. When the call
//!   comes back short, the real plan is fed each merged request's share (full, partial,
//!   or nothing), so it takes exactly the fallback libxenguest takes, and the look-ahead
//!   starts again from there. The hypervisor therefore sees the same extent requests in
//!   the same order at the same gfns; only the call boundaries move. Xen handles the
//!   extents of a call one after the other and stops at the first failure, so any
//!   hypervisor that decides extent by extent gives both strategies the same answers and
//!   the guest the same gfn -> (order, node) map (`tests/meminit.rs` checks the requests
//!   and the simulator's final p2m over the case table and random configurations).
//! * [`Strategy::BatchedSkipFailed`] also stops asking for superpages of an order and
//!   flag set that failed once and goes straight to the fallback. The map is the same as
//!   long as such failures last (nothing is freed during the build, as on the simulator
//!   and in the oracle's model); the calls on fragmented hosts drop from two per 8 MiB
//!   to a few per guest.

mod config;
mod error;
mod exec;
mod plan;

pub use config::MeminitConfig;
pub use error::MeminitError;
pub use exec::{meminit_hvm, MeminitReport, Strategy, MAX_BATCH_EXTENTS};
pub use plan::{
    Answer, CallKind, Failure, MeminitPlan, PageStats, PopulateCall, Step, CHUNK_2M_PAGES,
    LOW_PAGES, PAGES_1G, PAGES_2M, VGA_HOLE_END,
};
