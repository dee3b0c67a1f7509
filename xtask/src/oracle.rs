//! `cargo xtask oracle [FILTER]`: our `meminit_hvm` against the real libxenguest 4.17.
//!
//! Runs the differential test `crates/xg-guest/tests/oracle.rs`, which builds the oracle
//! from `<workspace>/../shared/fixtures/libxenguest-oracle` (or `$XG_SHARED_DIR`), runs
//! it and our executor on the oracle-compatible simulator over the oracle README's case
//! table and 220 random configurations, and compares the traces record by record.
//! FILTER selects tests by name (`readme`, `random`).

use anyhow::Result;

use crate::util;

/// Runs the oracle comparison; extra arguments are a test-name filter.
pub fn run_cmd(rest: &[String]) -> Result<()> {
    let mut cmd = util::cargo();
    cmd.args(["test", "--release", "-p", "xg-guest", "--test", "oracle"]);
    if let Some(filter) = rest.first() {
        cmd.arg(filter);
    }
    cmd.args(["--", "--nocapture"]);
    util::run(&mut cmd)
}
