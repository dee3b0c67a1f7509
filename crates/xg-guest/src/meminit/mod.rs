//! `meminit_hvm`: populating an HVM/PVH guest's RAM, as libxenguest 4.17 does.
//!
//! [`MeminitPlan`] is the pure, lazy plan (a state machine fed with call results);
//! [`meminit_hvm`] runs it against [`xg_ctrl::MemoryOps`] with a [`Strategy`].

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
