//! Domains for tests: created the way xenopsd creates them, destroyed on drop.

use xg_ctrl::{DomId, DomainConfig, DomainOps, XenCtrl};
use xg_store::{Access, Perm, Store, TxId};

/// Destroys its domain when dropped (errors ignored: the domain may already be gone).
#[derive(Debug)]
pub struct Guard<'a> {
    xc: &'a XenCtrl,
    domid: DomId,
}

impl<'a> Guard<'a> {
    /// Takes charge of `domid`.
    pub fn new(xc: &'a XenCtrl, domid: DomId) -> Guard<'a> {
        Guard { xc, domid }
    }

    /// The domain.
    pub fn domid(&self) -> DomId {
        self.domid
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let _ = self.xc.destroy(self.domid);
    }
}

/// Creating a test domain failed.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// A hypercall failed.
    #[error("Creating the domain failed")]
    Xen(#[source] xg_ctrl::Error),
    /// A Xenstore operation failed.
    #[error("Writing the domain's Xenstore directories failed")]
    Store(#[source] xg_store::Error),
}

/// An HVM guest as xenopsd would start it.
#[derive(Debug, Clone)]
pub struct HvmSpec {
    /// `memory.build_max_mib` (and the start memory: no PoD).
    pub mem_mib: u64,
    /// vCPUs (`platform/vcpu/number` and `current`).
    pub vcpus: u32,
    /// Extra memory Xen may give the domain above `mem_mib`, in KiB, for the special
    /// and ioreq-server pages (libxl uses 1024, `LIBXL_MAXMEM_CONSTANT`).
    pub slack_kib: u64,
    /// `platform/*` keys besides the vCPU ones.
    pub platform: Vec<(String, String)>,
}

impl HvmSpec {
    /// A small guest with the platform keys xapi writes for a default HVM VM.
    pub fn small(mem_mib: u64, vcpus: u32) -> HvmSpec {
        let platform = [
            ("acpi", "1"),
            ("apic", "1"),
            ("pae", "1"),
            ("nx", "1"),
            ("hpet", "1"),
            ("viridian", "0"),
            ("tsc_mode", "0"),
            ("acpi_s3", "0"),
            ("acpi_s4", "0"),
            ("timeoffset", "0"),
            ("device-model", "qemu-upstream-compat"),
        ];
        HvmSpec {
            mem_mib,
            vcpus,
            slack_kib: 1024,
            platform: platform
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    /// Every `platform/` key (relative to the platform directory) this guest gets.
    pub fn platform_keys(&self) -> Vec<(String, String)> {
        let mut keys = vec![
            ("vcpu/number".to_owned(), self.vcpus.to_string()),
            ("vcpu/current".to_owned(), self.vcpus.to_string()),
        ];
        keys.extend(self.platform.iter().cloned());
        keys
    }
}

/// Directories under `/local/domain/<id>` the guest may write (xenopsd `Domain.make`).
const GUEST_WRITABLE: &[&str] = &[
    "data",
    "attr",
    "drivers",
    "feature",
    "messages",
    "error",
    "control",
    "vm-data",
    "hvmloader",
];
/// Directories the guest may only read.
const GUEST_READONLY: &[&str] = &["cpu", "memory", "device", "platform"];

/// Creates an empty HVM+HAP domain as xenopsd does before it runs xenguest: createdomain,
/// max_vcpus, max_mem, then `/local/domain/<id>` (dom0-owned, guest-readable) with its
/// subdirectories, `name`, `domid`, and the `platform/` keys, in one transaction.
pub fn create_like_xenopsd(
    xc: &XenCtrl,
    xs: &impl Store,
    name: &str,
    spec: &HvmSpec,
) -> Result<DomId, CreateError> {
    let config = DomainConfig {
        hvm: true,
        hap: true,
        max_vcpus: spec.vcpus,
        ..DomainConfig::default()
    };
    let domid = xc
        .create_domain(DomId(0), &config)
        .map_err(CreateError::Xen)?;
    let rest = || -> Result<(), CreateError> {
        xc.set_max_vcpus(domid, spec.vcpus)
            .map_err(CreateError::Xen)?;
        xc.set_max_mem(domid, spec.mem_mib * 1024 + spec.slack_kib)
            .map_err(CreateError::Xen)?;
        write_store(xs, domid, name, spec).map_err(CreateError::Store)
    };
    if let Err(e) = rest() {
        let _ = xc.destroy(domid);
        return Err(e);
    }
    Ok(domid)
}

fn write_store(xs: &impl Store, domid: DomId, name: &str, spec: &HvmSpec) -> xg_store::Result<()> {
    let d = u32::from(domid.0);
    let dom = format!("/local/domain/{d}");
    let readonly = vec![
        Perm {
            domid: 0,
            access: Access::None,
        },
        Perm {
            domid: d,
            access: Access::Read,
        },
    ];
    let writable = vec![Perm {
        domid: d,
        access: Access::None,
    }];
    xg_store::transaction(xs, |tx: TxId| {
        xs.mkdir(tx, &dom)?;
        xs.set_perms(tx, &dom, &readonly)?;
        for sub in GUEST_READONLY {
            let p = format!("{dom}/{sub}");
            xs.mkdir(tx, &p)?;
            xs.set_perms(tx, &p, &readonly)?;
        }
        for sub in GUEST_WRITABLE {
            let p = format!("{dom}/{sub}");
            xs.mkdir(tx, &p)?;
            xs.set_perms(tx, &p, &writable)?;
        }
        xs.write(tx, &format!("{dom}/name"), name.as_bytes())?;
        xs.write(tx, &format!("{dom}/domid"), d.to_string().as_bytes())?;
        for (k, v) in spec.platform_keys() {
            xs.write(tx, &format!("{dom}/platform/{k}"), v.as_bytes())?;
        }
        Ok(())
    })
}

/// Removes `/local/domain/<id>` (what xenopsd does after destroying a domain).
pub fn remove_store(xs: &impl Store, domid: DomId) -> xg_store::Result<()> {
    xs.rm(TxId::NONE, &format!("/local/domain/{}", domid.0))
}
