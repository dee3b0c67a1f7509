//! Running a build: opening the backend and the store, the build, the summary.

use crate::args::Args;

/// Runs `-mode hvm_build`; returns (store pfn, console pfn) or the error lines.
pub fn hvm_build(_args: &Args) -> Result<(u64, u64), Vec<String>> {
    Err(vec!["xenguest: hvm_build is not wired up yet\n".to_owned()])
}
