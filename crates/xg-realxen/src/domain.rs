//! Domains for tests: created the way xenopsd creates them, destroyed on drop.

use xg_ctrl::{DomId, DomainConfig, DomainOps, XenCtrl};
use xg_store::{Access, Client, Perm, Store, TxId};

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

/// The event channel ports xenopsd allocates before it runs xenguest (`-store_port`,
/// `-console_port`) and hands to xenstored and xenconsoled after the build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// The Xenstore ring's port.
    pub store: u32,
    /// The console ring's port.
    pub console: u32,
}

impl Default for Ports {
    /// Placeholder numbers for builds nothing will run (Xen only records them).
    fn default() -> Ports {
        Ports {
            store: 1,
            console: 2,
        }
    }
}

/// A guest as xenopsd would start it.
#[derive(Debug, Clone)]
pub struct GuestSpec {
    /// A PV domain (else HVM with HAP, also for PVH).
    pub pv: bool,
    /// `memory.build_max_mib` (and the start memory: no PoD).
    pub mem_mib: u64,
    /// vCPUs (`platform/vcpu/number` and `current`).
    pub vcpus: u32,
    /// Extra memory Xen may give the domain above `mem_mib`, in KiB, for the special
    /// and ioreq-server pages (libxl uses 1024, `LIBXL_MAXMEM_CONSTANT`).
    pub slack_kib: u64,
    /// `platform/*` keys besides the vCPU ones.
    pub platform: Vec<(String, String)>,
    /// Event channels passed to xenguest: placeholders until [`alloc_ports`] replaces
    /// them with real ones.
    pub ports: Ports,
}

impl GuestSpec {
    /// A small guest with the platform keys xapi writes for a default HVM VM.
    pub fn small(mem_mib: u64, vcpus: u32) -> GuestSpec {
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
        GuestSpec {
            pv: false,
            mem_mib,
            vcpus,
            slack_kib: 1024,
            platform: platform
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ports: Ports::default(),
        }
    }

    /// A small PV guest: [`GuestSpec::small`] without a device model. xapi keeps the
    /// VM's platform keys for PV too; `pae` matters: without it xenguest clears PAE and
    /// Xen then hides long mode from a 64-bit kernel.
    pub fn small_pv(mem_mib: u64, vcpus: u32) -> GuestSpec {
        let mut spec = GuestSpec::small(mem_mib, vcpus);
        spec.pv = true;
        spec.platform.retain(|(k, _)| k != "device-model");
        spec
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

/// Creates an empty domain (HVM+HAP, or PV for [`GuestSpec::pv`]) as xenopsd does before
/// it runs xenguest: createdomain,
/// max_vcpus, max_mem, then `/local/domain/<id>` (dom0-owned, guest-readable) with its
/// subdirectories, `name`, `domid`, and the `platform/` keys, in one transaction.
pub fn create_like_xenopsd(
    xc: &XenCtrl,
    xs: &impl Store,
    name: &str,
    spec: &GuestSpec,
) -> Result<DomId, CreateError> {
    let config = DomainConfig {
        hvm: !spec.pv,
        hap: !spec.pv,
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

fn write_store(
    xs: &impl Store,
    domid: DomId,
    name: &str,
    spec: &GuestSpec,
) -> xg_store::Result<()> {
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

/// Allocates the Xenstore and console event channels of `domid` for dom0 to bind, as
/// xenopsd's `build_pre` does, and records them in `spec`.
pub fn alloc_ports(xc: &XenCtrl, domid: DomId, spec: &mut GuestSpec) -> Result<Ports, CreateError> {
    let port = || {
        xc.alloc_unbound_evtchn(domid, DomId(0))
            .map_err(CreateError::Xen)
    };
    let ports = Ports {
        store: port()?,
        console: port()?,
    };
    spec.ports = ports;
    Ok(ports)
}

/// What xenopsd's `build_post` does after xenguest: writes the rings' keys under
/// `/local/domain/<id>/{store,console}` (xenconsoled watches the console ones) in one
/// transaction, then introduces the domain to xenstored, which maps the store ring and
/// binds its port. `store_frame` and `console_frame` are the frames of xenguest's result
/// line (gfns for HVM and PVH, mfns for PV).
pub fn start_like_xenopsd(
    xs: &Client,
    domid: DomId,
    ports: Ports,
    store_frame: u64,
    console_frame: u64,
) -> xg_store::Result<()> {
    let d = u32::from(domid.0);
    let dom = format!("/local/domain/{d}");
    xg_store::transaction(xs, |tx: TxId| {
        xs.write(
            tx,
            &format!("{dom}/store/port"),
            ports.store.to_string().as_bytes(),
        )?;
        xs.write(
            tx,
            &format!("{dom}/store/ring-ref"),
            store_frame.to_string().as_bytes(),
        )?;
        xs.write(
            tx,
            &format!("{dom}/console/port"),
            ports.console.to_string().as_bytes(),
        )?;
        xs.write(
            tx,
            &format!("{dom}/console/ring-ref"),
            console_frame.to_string().as_bytes(),
        )?;
        xs.write(tx, &format!("{dom}/console/limit"), b"1048576")?;
        xs.write(tx, &format!("{dom}/console/type"), b"xenconsoled")?;
        Ok(())
    })?;
    xs.introduce(d, store_frame, ports.store)
}

/// Removes `/local/domain/<id>` (what xenopsd does after destroying a domain).
pub fn remove_store(xs: &impl Store, domid: DomId) -> xg_store::Result<()> {
    xs.rm(TxId::NONE, &format!("/local/domain/{}", domid.0))
}
