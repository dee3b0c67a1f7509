//! `configure_vcpus` (hard affinity, credit weight/cap) and `configure_tsc` (§3).

use serde::Serialize;
use xg_ctrl::{AffinityKind, DomId, DomainOps, HostOps};

use crate::error::{BuildError, Step};
use crate::flags::Flags;

/// What configure_vcpus did, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VcpuConfig {
    /// (vCPU, cpumap bytes) for each hard affinity set.
    pub affinity: Vec<(u32, Vec<u8>)>,
    /// Credit parameters written, `None` when the credit scheduler is not in use.
    pub credit: Option<(u16, u16)>,
}

/// Builds the cpumap of `cpumap_size` bytes for an affinity string: character j == '1'
/// sets pCPU j; characters beyond the map are ignored (§3.1).
pub fn affinity_cpumap(affinity: &str, cpumap_size: usize) -> Vec<u8> {
    let mut map = vec![0u8; cpumap_size];
    let bits = cpumap_size.saturating_mul(8);
    for (j, c) in affinity.bytes().take(bits).enumerate() {
        if c == b'1' {
            map[j / 8] |= 1 << (j % 8);
        }
    }
    map
}

/// `configure_vcpus`: hard affinity for every vCPU with an affinity key, then the credit
/// scheduler's weight and cap (get, change, set).
pub fn configure_vcpus<X: HostOps + DomainOps + ?Sized>(
    xen: &X,
    domid: DomId,
    flags: &Flags,
) -> Result<VcpuConfig, BuildError> {
    let mut out = VcpuConfig::default();
    if flags.vcpu_affinity.iter().any(Option::is_some) {
        // xc_get_cpumap_size comes from physinfo; xc_cpumap_alloc fails when it does.
        let size = xen
            .physinfo()
            .map_err(|e| BuildError::xen(Step::CpumapAlloc, e))?
            .cpumap_size();
        for (vcpu, aff) in flags.vcpu_affinity.iter().enumerate() {
            let Some(aff) = aff else { continue };
            let vcpu = u32::try_from(vcpu).unwrap_or(u32::MAX);
            let map = affinity_cpumap(aff, size);
            xen.set_vcpu_affinity(domid, vcpu, AffinityKind::Hard, &map)
                .map_err(|e| BuildError::xen(Step::VcpuSetAffinity, e))?;
            out.affinity.push((vcpu, map));
        }
    }
    let mut sdom = match xen.sched_credit_get(domid) {
        Ok(p) => p,
        Err(e) => {
            log::info!("Failed to get credit scheduler parameters: scheduler not enabled? ({e})");
            return Ok(out);
        }
    };
    if flags.vcpu_weight != 0 {
        sdom.weight = flags.vcpu_weight;
    }
    if flags.vcpu_cap != 0 {
        sdom.cap = flags.vcpu_cap;
    }
    xen.sched_credit_set(domid, sdom)
        .map_err(|e| BuildError::xen(Step::SchedCreditSet, e))?;
    out.credit = Some((sdom.weight, sdom.cap));
    Ok(out)
}

/// `configure_tsc`: `xc_domain_set_tsc_info(tsc_mode, 0, 0, 0)`.
pub fn configure_tsc<X: DomainOps + ?Sized>(
    xen: &X,
    domid: DomId,
    flags: &Flags,
) -> Result<(), BuildError> {
    let mode = u32::from_ne_bytes(flags.tsc_mode.to_ne_bytes());
    xen.set_tsc_info(domid, mode)
        .map_err(|e| BuildError::xen(Step::SetTscInfo, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpumap_from_string() {
        assert_eq!(affinity_cpumap("0110", 8)[0], 0x06);
        let long = "1".repeat(70);
        let m = affinity_cpumap(&long, 8);
        assert_eq!(m, vec![0xFF; 8]);
        assert_eq!(affinity_cpumap("x1y1", 1), vec![0x0A]);
        assert_eq!(affinity_cpumap("000000001", 2), vec![0, 1]);
    }
}
