//! PCI passthrough inputs of the HVM layout (§4.3, §4.4): the `-pci_passthrough` list,
//! each device's BAR space from sysfs, the MxGPU probe and the reserved device memory
//! (RMRR) regions.
//!
//! The sysfs root is configurable ([`PciHost::sysfs_root`]), so tests point it at a
//! directory of their own. RMRRs come from an [`RmrrSource`]: [`XenRmrr`] asks the
//! hypervisor (`XENMEM_reserved_device_memory_map`, as xenguest's `get_rdm` does) through
//! any [`MemoryOps`] backend, so the simulator serves the RMRRs of its host file;
//! [`NoRmrr`] is for callers without a hypervisor.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde::Serialize;
use xg_ctrl::{MemoryOps, PciDev};

use crate::cparse;
use crate::error::{BuildError, ErrorKind, Step};

/// `MAX_RMRR_DEVICES` (= `E820MAX`).
pub const MAX_RMRR_DEVICES: usize = 128;

/// A PCI address as xenguest parses it (the C `unsigned int`s, truncated later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Sbdf {
    /// Segment.
    pub seg: u16,
    /// Bus.
    pub bus: u8,
    /// Device.
    pub dev: u8,
    /// Function.
    pub func: u8,
}

impl Sbdf {
    /// The sysfs directory name, `%04x:%02x:%02x.%01x`.
    pub fn sysfs_name(&self) -> String {
        format!(
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.seg, self.bus, self.dev, self.func
        )
    }

    /// `devfn` as passed to `xc_reserved_device_memory_map` (a `uint8_t`).
    pub fn devfn(&self) -> u8 {
        self.dev.wrapping_shl(3).wrapping_add(self.func)
    }

    /// The device as Xen names it (`physdev_pci_device`).
    pub fn pci_dev(&self) -> PciDev {
        PciDev {
            seg: self.seg,
            bus: self.bus,
            devfn: self.devfn(),
        }
    }
}

/// One reserved device memory range (`struct xen_reserved_device_memory`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RmrrEntry {
    /// First frame.
    pub start_pfn: u64,
    /// Number of frames.
    pub nr_pages: u64,
}

/// Which call of `get_rdm` failed.
#[derive(Debug, thiserror::Error)]
pub enum RmrrError {
    /// The first call, which asks for the count.
    #[error("Counting the RMRRs of device {sbdf} failed")]
    Count {
        /// The device, `SSSS:BB:DD.F`.
        sbdf: String,
        /// The hypercall error.
        #[source]
        source: xg_ctrl::Error,
    },
    /// The second call, with room for the count.
    #[error("Reading {count} RMRRs of device {sbdf} failed")]
    Read {
        /// The device, `SSSS:BB:DD.F`.
        sbdf: String,
        /// The count the first call reported.
        count: u32,
        /// The hypercall error.
        #[source]
        source: xg_ctrl::Error,
    },
}

impl RmrrError {
    /// The errno of the failed call.
    pub fn errno(&self) -> Option<i32> {
        match self {
            RmrrError::Count { source, .. } | RmrrError::Read { source, .. } => source.errno(),
        }
    }
}

/// Where RMRR entries of a device come from.
pub trait RmrrSource {
    /// The regions of `sbdf` (`xc_reserved_device_memory_map` with flags 0). xenguest
    /// takes a failure as "no entries"; [`pci_inputs`] logs it and does the same.
    fn reserved_device_memory(&self, sbdf: Sbdf) -> Result<Vec<RmrrEntry>, RmrrError>;
}

/// No RMRRs at all (no hypervisor to ask, e.g. a plan without PCI devices).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRmrr;

impl RmrrSource for NoRmrr {
    fn reserved_device_memory(&self, _sbdf: Sbdf) -> Result<Vec<RmrrEntry>, RmrrError> {
        Ok(Vec::new())
    }
}

/// RMRRs from the hypervisor, as xenguest's `get_rdm` reads them: a call with no room,
/// which succeeds when the device has none and otherwise fails with ENOBUFS and the
/// count, then a call with room for that count.
#[derive(Debug)]
pub struct XenRmrr<'a, M: ?Sized> {
    hv: &'a M,
}

impl<M: ?Sized> Clone for XenRmrr<'_, M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M: ?Sized> Copy for XenRmrr<'_, M> {}

impl<'a, M: MemoryOps + ?Sized> XenRmrr<'a, M> {
    /// Asks `hv`.
    pub fn new(hv: &'a M) -> Self {
        XenRmrr { hv }
    }
}

impl<M: MemoryOps + ?Sized> RmrrSource for XenRmrr<'_, M> {
    fn reserved_device_memory(&self, sbdf: Sbdf) -> Result<Vec<RmrrEntry>, RmrrError> {
        let dev = sbdf.pci_dev();
        let regions = match self.hv.reserved_device_memory_map(0, dev, 0) {
            // "0" means the device has no entry.
            Ok(none) => none,
            Err(xg_ctrl::Error::TooSmall { needed, .. }) => self
                .hv
                .reserved_device_memory_map(0, dev, needed)
                .map_err(|source| RmrrError::Read {
                    sbdf: sbdf.sysfs_name(),
                    count: needed,
                    source,
                })?,
            Err(source) => {
                return Err(RmrrError::Count {
                    sbdf: sbdf.sysfs_name(),
                    source,
                })
            }
        };
        Ok(regions
            .into_iter()
            .map(|r| RmrrEntry {
                start_pfn: r.start_pfn,
                nr_pages: r.nr_pages,
            })
            .collect())
    }
}

/// The host side of PCI passthrough: where sysfs is and where RMRRs come from.
#[derive(Debug, Clone)]
pub struct PciHost<R> {
    /// Root of sysfs (`/sys` on a real host).
    pub sysfs_root: PathBuf,
    /// RMRR source.
    pub rmrr: R,
}

impl PciHost<NoRmrr> {
    /// A host whose sysfs is at `root` and whose devices have no RMRRs (tests, or
    /// with [`PciHost::with_hypervisor`] the RMRRs of a backend).
    pub fn at(root: impl Into<PathBuf>) -> Self {
        PciHost {
            sysfs_root: root.into(),
            rmrr: NoRmrr,
        }
    }
}

impl<R> PciHost<R> {
    /// The same sysfs, RMRRs from `hv`.
    pub fn with_hypervisor<M: MemoryOps + ?Sized>(self, hv: &M) -> PciHost<XenRmrr<'_, M>> {
        PciHost {
            sysfs_root: self.sysfs_root,
            rmrr: XenRmrr::new(hv),
        }
    }
}

impl<'a, M: MemoryOps + ?Sized> PciHost<XenRmrr<'a, M>> {
    /// The real host: `/sys`, RMRRs from the hypervisor `hv`.
    pub fn system(hv: &'a M) -> Self {
        PciHost::at("/sys").with_hypervisor(hv)
    }
}

/// One passed-through device as the layout sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PciDevice {
    /// The address.
    pub sbdf: Sbdf,
    /// Sum of the first 7 resource lines' sizes (BARs + ROM).
    pub bar_bytes: u64,
    /// Its RMRR entries.
    pub rmrr: Vec<RmrrEntry>,
    /// AMD S7150x2 (MxGPU) needing a 2 GiB hole.
    pub mxgpu: bool,
}

/// All PCI inputs of the layout.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PciInputs {
    /// The devices, in command-line order.
    pub devices: Vec<PciDevice>,
}

impl PciInputs {
    /// Sum of all BAR space.
    pub fn bar_bytes(&self) -> u64 {
        self.devices
            .iter()
            .fold(0u64, |a, d| a.wrapping_add(d.bar_bytes))
    }

    /// Whether any device is an MxGPU.
    pub fn mxgpu(&self) -> bool {
        self.devices.iter().any(|d| d.mxgpu)
    }

    /// RMRR lists of the devices that have any, in order.
    pub fn rmrr_lists(&self) -> Vec<Vec<RmrrEntry>> {
        self.devices
            .iter()
            .filter(|d| !d.rmrr.is_empty())
            .map(|d| d.rmrr.clone())
            .collect()
    }
}

/// `parse_pci_sbdf`: `SSSS:BB:DD.F` or `BB:DD.F`, hex (the function with base 0);
/// `None` when a `:` or `.` is missing. Trailing characters are not checked.
pub fn parse_sbdf(tok: &str) -> Option<Sbdf> {
    let (seg, n) = cparse::strtoul_end(tok, 16);
    let rest = &tok[n..];
    let rest = rest.strip_prefix(':')?;
    let (bus, n) = cparse::strtoul_end(rest, 16);
    let rest = &rest[n..];
    let (seg, bus, dev, rest) = if let Some(r) = rest.strip_prefix(':') {
        let (dev, n) = cparse::strtoul_end(r, 16);
        (seg, bus, dev, &r[n..])
    } else {
        (0, seg, bus, rest)
    };
    let rest = rest.strip_prefix('.')?;
    let (func, _) = cparse::strtoul_end(rest, 0);
    // The C values are unsigned ints handed on as uint16_t/uint8_t: truncate like it.
    Some(Sbdf {
        seg: cparse::to_u16(seg),
        bus: low_u8(bus),
        dev: low_u8(dev),
        func: low_u8(func),
    })
}

fn low_u8(v: u64) -> u8 {
    u8::try_from(v & 0xFF).unwrap_or(0)
}

/// Splits `-pci_passthrough` like `strtok(s, ",")` (empty tokens vanish) and parses each
/// token, silently skipping those that do not parse (with a log line).
pub fn parse_pci_list(list: &str) -> Vec<Sbdf> {
    list.split(',')
        .filter(|t| !t.is_empty())
        .filter_map(|t| {
            let p = parse_sbdf(t);
            if p.is_none() {
                log::warn!("WARNING: ignoring PCI device {t:?}: not an SBDF");
            }
            p
        })
        .collect()
}

fn device_dir(root: &Path, sbdf: Sbdf) -> PathBuf {
    root.join("bus/pci/devices").join(sbdf.sysfs_name())
}

/// Reads up to `N` hex numbers (`%llx`, optional `0x`) separated by whitespace.
fn hex_fields<const N: usize>(line: &str) -> Option<[u64; N]> {
    let mut out = [0u64; N];
    let mut rest = line;
    for slot in &mut out {
        let (v, n) = cparse::strtoul_end(rest, 16);
        if n == 0 {
            return None;
        }
        *slot = v;
        rest = &rest[n..];
    }
    Some(out)
}

/// `get_mmio_dev`: the BAR space of a device from the first 7 lines of its `resource`.
pub fn device_bar_bytes(root: &Path, sbdf: Sbdf) -> Result<u64, BuildError> {
    let path = device_dir(root, sbdf).join("resource");
    let fatal = |what: String, source: std::io::Error| BuildError {
        step: Step::SetupMem,
        kind: ErrorKind::HostFile {
            message: format!("{what}\nError: unable to get PCI MMIO info"),
            source,
        },
    };
    let file = std::fs::File::open(&path).map_err(|e| {
        fatal(
            format!(
                "Cannot open '{}': {}",
                path.display(),
                crate::error::strerror(e.raw_os_error().unwrap_or(libc::EIO))
            ),
            e,
        )
    })?;
    let mut total = 0u64;
    for line in std::io::BufReader::new(file).lines().take(7) {
        let line = line.map_err(|e| fatal(format!("Cannot read '{}'", path.display()), e))?;
        let Some([start, end, _flags]) = hex_fields::<3>(&line) else {
            return Err(fatal(
                format!("Syntax error in '{}'", path.display()),
                std::io::Error::from_raw_os_error(libc::EINVAL),
            ));
        };
        let size = if start != 0 {
            end.wrapping_sub(start).wrapping_add(1)
        } else {
            0
        };
        total = total.wrapping_add(size);
    }
    Ok(total)
}

/// `pci_get_id`: the first line of `vendor`/`device` as hex. A failure is logged and
/// ignored: xenguest reports it as an `error:` line but carries on, which xenopsd would
/// take as a failed build; we keep it log-only (deliberate, see the crate docs).
fn pci_id(root: &Path, sbdf: Sbdf, kind: &str) -> Option<u16> {
    let path = device_dir(root, sbdf).join(kind);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            log::warn!("Cannot open '{}': {e}", path.display());
            return None;
        }
    };
    let line = text.lines().next().unwrap_or("");
    let (v, n) = cparse::strtoul_end(line, 16);
    if n == 0 {
        log::warn!("Invalid {kind} id");
        return None;
    }
    Some(cparse::to_u16(v))
}

/// Reads everything the layout needs about the passed-through devices.
pub fn pci_inputs<R: RmrrSource>(host: &PciHost<R>, list: &str) -> Result<PciInputs, BuildError> {
    let mut inputs = PciInputs::default();
    let mut rmrr_devs = 0usize;
    for sbdf in parse_pci_list(list) {
        let name = sbdf.sysfs_name();
        log::info!("Getting RMRRs for device '{name}'");
        let rmrr = host.rmrr.reserved_device_memory(sbdf).unwrap_or_else(|e| {
            log::warn!("{}: taking the device to have no RMRRs", error_chain(&e));
            Vec::new()
        });
        if !rmrr.is_empty() {
            rmrr_devs += 1;
        }
        if rmrr_devs == MAX_RMRR_DEVICES {
            return Err(BuildError::refused(
                Step::SetupMem,
                format!("Error: hit limit of {MAX_RMRR_DEVICES} RMRR devices for domain"),
                libc::E2BIG,
            ));
        }
        log::info!("Getting total MMIO space occupied for device '{name}'");
        let bar_bytes = device_bar_bytes(&host.sysfs_root, sbdf)?;
        let mxgpu = pci_id(&host.sysfs_root, sbdf, "vendor") == Some(0x1002)
            && pci_id(&host.sysfs_root, sbdf, "device") == Some(0x692f);
        if mxgpu {
            log::info!("MxGPU device found. Applying MMIO hole workaround");
        }
        inputs.devices.push(PciDevice {
            sbdf,
            bar_bytes,
            rmrr,
            mxgpu,
        });
    }
    Ok(inputs)
}

/// An error and its causes, `: `-joined, for one log line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use xg_ctrl::sim::{HostConfig, PciDeviceConfig, Simulator};

    #[test]
    fn sbdf_forms() {
        let s = parse_sbdf("0000:03:00.1").unwrap();
        assert_eq!((s.seg, s.bus, s.dev, s.func), (0, 3, 0, 1));
        let s = parse_sbdf("3:1f.0").unwrap();
        assert_eq!((s.seg, s.bus, s.dev, s.func), (0, 3, 0x1f, 0));
        assert_eq!(parse_sbdf("0000:03:00"), None);
        assert_eq!(parse_sbdf("garbage"), None);
        assert_eq!(s.sysfs_name(), "0000:03:1f.0");
        // Function with base 0: "0x1" is 1; trailing garbage is ignored.
        assert_eq!(parse_sbdf("0:1:2.0x1zz").unwrap().func, 1);
        assert_eq!(parse_sbdf("1:2.3").unwrap().devfn(), (2 << 3) + 3);
    }

    #[test]
    fn strtok_list() {
        let l = parse_pci_list(",0000:01:00.0,,bad,0000:02:00.0,");
        assert_eq!(l.len(), 2);
    }

    fn sim_with(devices: &[(&str, &[[u64; 2]])]) -> Simulator {
        let mut cfg = HostConfig::uniform(1, 1024, 1);
        for (sbdf, rmrrs) in devices {
            cfg.pci_devices.push(PciDeviceConfig {
                sbdf: (*sbdf).to_owned(),
                rmrrs: rmrrs.to_vec(),
            });
        }
        Simulator::new(&cfg).unwrap()
    }

    /// A sysfs tree with a one-BAR `resource` file for each device.
    fn sysfs_with(sbdfs: &[Sbdf]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for &sbdf in sbdfs {
            let d = device_dir(dir.path(), sbdf);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("resource"), "0xf0000000 0xf0000fff 0x40200\n").unwrap();
        }
        dir
    }

    #[test]
    fn rmrrs_come_from_the_hypervisor() {
        let sim = sim_with(&[("0000:00:1f.3", &[[0xBF800, 0x800], [0xC0000, 0x10]])]);
        let src = XenRmrr::new(&sim);
        let audio = parse_sbdf("0000:00:1f.3").unwrap();
        assert_eq!(
            src.reserved_device_memory(audio).unwrap(),
            vec![
                RmrrEntry {
                    start_pfn: 0xBF800,
                    nr_pages: 0x800
                },
                RmrrEntry {
                    start_pfn: 0xC0000,
                    nr_pages: 0x10
                },
            ]
        );
        // Counting, then reading: two calls for a device with regions, one without.
        assert_eq!(sim.calls("reserved_device_memory_map"), 2);
        let other = parse_sbdf("0000:03:00.0").unwrap();
        assert_eq!(src.reserved_device_memory(other).unwrap(), vec![]);
        assert_eq!(sim.calls("reserved_device_memory_map"), 3);
        assert_eq!(NoRmrr.reserved_device_memory(audio).unwrap(), vec![]);
    }

    #[test]
    fn rmrr_errors_name_the_call_and_keep_errno() {
        let sim = sim_with(&[("0000:00:02.0", &[[0xBF800, 0x800]])]);
        let gpu = parse_sbdf("0000:00:02.0").unwrap();
        let fail = |nth, errno| {
            sim.inject_fault(xg_ctrl::sim::FaultRule {
                op: "reserved_device_memory_map".into(),
                nth,
                times: 1,
                errno,
            })
            .unwrap();
        };
        fail(1, libc::EPERM);
        let e = XenRmrr::new(&sim).reserved_device_memory(gpu).unwrap_err();
        assert_eq!(e.errno(), Some(libc::EPERM));
        assert_eq!(
            e.to_string(),
            "Counting the RMRRs of device 0000:00:02.0 failed"
        );
        fail(3, libc::EFAULT);
        let e = XenRmrr::new(&sim).reserved_device_memory(gpu).unwrap_err();
        assert_eq!(e.errno(), Some(libc::EFAULT));
        assert_eq!(
            e.to_string(),
            "Reading 1 RMRRs of device 0000:00:02.0 failed"
        );
        assert_eq!(
            error_chain(&e),
            "Reading 1 RMRRs of device 0000:00:02.0 failed: \
             Hypercall reserved_device_memory_map failed: \
             Bad address (os error 14)"
        );
        // A failed device counts as one without RMRRs, as in xenguest.
        fail(4, libc::EFAULT);
        let dir = sysfs_with(&[gpu]);
        let host = PciHost::at(dir.path()).with_hypervisor(&sim);
        let inputs = pci_inputs(&host, "0000:00:02.0").unwrap();
        assert_eq!(inputs.devices.len(), 1);
        assert!(inputs.rmrr_lists().is_empty());
        let inputs = pci_inputs(&host, "0000:00:02.0").unwrap();
        assert_eq!(inputs.rmrr_lists().len(), 1);
    }

    #[test]
    fn at_most_127_devices_with_rmrrs() {
        let sbdfs: Vec<Sbdf> = (0..=128u8)
            .map(|i| Sbdf {
                seg: 0,
                bus: i,
                dev: 0,
                func: 0,
            })
            .collect();
        let names: Vec<String> = sbdfs.iter().map(Sbdf::sysfs_name).collect();
        let region: &[[u64; 2]] = &[[0xBF800, 0x800]];
        let with: Vec<(&str, &[[u64; 2]])> = names.iter().map(|n| (n.as_str(), region)).collect();
        let dir = sysfs_with(&sbdfs);
        // 127 devices with RMRRs, then any number without: accepted.
        let sim = sim_with(&with[..127]);
        let host = PciHost::at(dir.path()).with_hypervisor(&sim);
        let inputs = pci_inputs(&host, &names.join(",")).unwrap();
        assert_eq!(inputs.devices.len(), 129);
        assert_eq!(inputs.rmrr_lists().len(), 127);
        // The 128th device with RMRRs hits MAX_RMRR_DEVICES.
        let sim = sim_with(&with[..128]);
        let host = PciHost::at(dir.path()).with_hypervisor(&sim);
        let e = pci_inputs(&host, &names.join(",")).unwrap_err();
        assert_eq!(
            e.wire_lines(),
            vec!["Error: hit limit of 128 RMRR devices for domain\n"]
        );
        assert_eq!(e.errno(), libc::E2BIG);
        assert_eq!(e.step, Step::SetupMem);
    }

    #[test]
    fn bars_from_resource_file() {
        let dir = tempfile::tempdir().unwrap();
        let sbdf = parse_sbdf("0000:01:00.0").unwrap();
        let d = device_dir(dir.path(), sbdf);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("resource"),
            "0x00000000f0000000 0x00000000f0ffffff 0x0000000000040200\n\
             0x0000000000000000 0x0000000000000000 0x0000000000000000\n\
             0x000000000000e000 0x000000000000e07f 0x0000000000040101\n\
             0 0 0\n0 0 0\n0 0 0\n\
             0x00000000f1000000 0x00000000f107ffff 0x0000000000046200\n\
             0x0000000100000000 0x00000001ffffffff 0\n",
        )
        .unwrap();
        let total = device_bar_bytes(dir.path(), sbdf).unwrap();
        assert_eq!(total, 0x100_0000 + 0x80 + 0x8_0000);
        std::fs::write(d.join("resource"), "0x1 oops\n").unwrap();
        let e = device_bar_bytes(dir.path(), sbdf).unwrap_err();
        assert!(e.wire_lines()[0].starts_with("Syntax error in '"));
        let missing = parse_sbdf("0000:09:00.0").unwrap();
        let e = device_bar_bytes(dir.path(), missing).unwrap_err();
        assert_eq!(e.wire_lines()[1], "Error: unable to get PCI MMIO info\n");
    }
}
