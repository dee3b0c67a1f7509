//! What xenopsd's `build_pre` does before it runs xenguest, for hosts without a
//! toolstack (the simulator, tests, a person at a shell): create the HVM domain, set its
//! vCPU and memory limits, and create its Xenstore directory.

use xg_ctrl::{DomId, DomainConfig, Hypervisor};
use xg_store::{Access, Perm, Request, Store, TxId};

use crate::cparse;
use crate::error::{BuildError, Step};

/// `HVM_MAX_VCPUS`.
const MAX_VCPUS: u64 = 128;

/// Creates HVM+HAP domain `domid` with `max_vcpus` from `platform/vcpu/number`
/// (default one) and `max_mem` = `mem_max_mib`, and creates the domain's Xenstore
/// directory (owned by dom0, readable by the guest). Returns the domain path.
pub fn build_pre<H, S>(
    hv: &H,
    store: &S,
    domid: DomId,
    mem_max_mib: u64,
) -> Result<String, BuildError>
where
    H: Hypervisor + ?Sized,
    S: Store + ?Sized,
{
    build_pre_as(hv, store, domid, mem_max_mib, true)
}

/// [`build_pre`] for an HVM+HAP domain (`hvm`) or a PV one.
pub fn build_pre_as<H, S>(
    hv: &H,
    store: &S,
    domid: DomId,
    mem_max_mib: u64,
    hvm: bool,
) -> Result<String, BuildError>
where
    H: Hypervisor + ?Sized,
    S: Store + ?Sized,
{
    let err = |e| BuildError::xen(Step::CreateDomain, e);
    let serr = |e| BuildError::store(Step::CreateDomain, e);
    let path = store.get_domain_path(u32::from(domid.0)).map_err(serr)?;
    let vcpus = store
        .read_opt(TxId::NONE, &format!("{path}/platform/vcpu/number"))
        .map_err(serr)?
        .map(|v| cparse::xs_num(&String::from_utf8_lossy(&v)).0.value)
        .filter(|n| (1..=MAX_VCPUS).contains(n))
        .unwrap_or(1);
    let max_vcpus = u32::try_from(vcpus).unwrap_or(1);
    let cfg = DomainConfig {
        hvm,
        hap: hvm,
        max_vcpus,
        ..DomainConfig::default()
    };
    let created = hv.create_domain(domid, &cfg).map_err(err)?;
    if created != domid {
        return Err(BuildError::refused(
            Step::CreateDomain,
            format!("Created domain {created}, not {domid}"),
            libc::EEXIST,
        ));
    }
    hv.set_max_vcpus(domid, max_vcpus).map_err(err)?;
    hv.set_max_mem(domid, mem_max_mib.saturating_mul(1024))
        .map_err(err)?;
    let perms = vec![
        Perm {
            domid: 0,
            access: Access::None,
        },
        Perm {
            domid: u32::from(domid.0),
            access: Access::Read,
        },
    ];
    let reqs = [
        Request::Mkdir(path.clone()),
        Request::SetPerms(path.clone(), perms),
        Request::Write(format!("{path}/domid"), domid.0.to_string().into_bytes()),
    ];
    xg_store::transaction(store, |tx| {
        for r in store.submit(tx, &reqs)? {
            r?;
        }
        Ok(())
    })
    .map_err(serr)?;
    let kind = if hvm { "HVM" } else { "PV" };
    log::info!("Created {kind} domain {domid}: {max_vcpus} vCPUs, {mem_max_mib} MiB");
    Ok(path)
}

/// Where a `--platform KEY=VALUE` key goes: absolute keys stay, `platform/`, `hvmloader/`
/// and `vm-data/` keys are relative to the domain path, anything else to its `platform/`.
pub fn platform_key(domain_path: &str, key: &str) -> String {
    if key.starts_with('/') {
        key.to_owned()
    } else if ["platform/", "hvmloader/", "vm-data/"]
        .iter()
        .any(|p| key.starts_with(p))
    {
        format!("{domain_path}/{key}")
    } else {
        format!("{domain_path}/platform/{key}")
    }
}
