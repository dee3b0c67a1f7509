//! `cargo xtask oracle [hvm|pv] [FILTER]`: our memory initialisation against the real
//! libxenguest 4.17.
//!
//! * `crates/xg-guest/tests/oracle.rs` (`hvm`): `meminit_hvm`. Builds the oracle from
//!   `<workspace>/../shared/fixtures/libxenguest-oracle` (or `$XG_SHARED_DIR`), runs it
//!   and our executor on the oracle-compatible simulator over the oracle README's case
//!   table and 220 random configurations, and compares the traces record by record.
//! * `crates/xg-guest/tests/oracle_pv.rs` (`pv`): `meminit_pv` of a 64-bit PV guest.
//!   Builds our driver `crates/xg-guest/tests/oracle_pv/driver.c` against the same
//!   fixture's recording libxenctrl and Debian's libxenguest, and compares 28 table
//!   cases and 120 random configurations the same way.
//!
//! Without `hvm` or `pv` both run. FILTER selects tests by name (`readme`, `case_table`,
//! `random`).

use anyhow::Result;

use crate::util;

/// Runs the oracle comparisons; extra arguments are `hvm`/`pv` and a test-name filter.
pub fn run_cmd(rest: &[String]) -> Result<()> {
    let (tests, filter): (&[&str], Option<&String>) = match rest.first().map(String::as_str) {
        Some("hvm") => (&["oracle"], rest.get(1)),
        Some("pv") => (&["oracle_pv"], rest.get(1)),
        _ => (&["oracle", "oracle_pv"], rest.first()),
    };
    let mut cmd = util::cargo();
    cmd.args(["test", "--release", "-p", "xg-guest"]);
    for t in tests {
        cmd.args(["--test", t]);
    }
    if let Some(filter) = filter {
        cmd.arg(filter);
    }
    cmd.args(["--", "--nocapture"]);
    util::run(&mut cmd)
}
