//! `get_flags`: the platform keys a build reads from Xenstore, parsed like xenguest does.
//!
//! All keys are read in one pipelined [`Store::submit`] batch; the per-vCPU affinity keys,
//! whose number depends on `platform/vcpu/number`, in a second one. Values the C parsers
//! would silently misread (trailing garbage, octal, overflow, truncation to the C field)
//! are logged as warnings naming the key and value, and kept in [`Flags::warnings`].

use serde::Serialize;
use xg_ctrl::DomainInfo;
use xg_store::{Reply, Request, Store, TxId};

use crate::cparse::{self, Quirk};
use crate::error::{BuildError, Step};

/// `HVM_MAX_VCPUS`: the hvm_info table has room for this many vCPUs.
pub const HVM_MAX_VCPUS: i32 = 128;

/// Keys of the first batch, relative to the domain path, in `get_flags` order (plus the
/// keys later stages read, so the whole build needs one round trip for its inputs).
const BATCH: &[&str] = &[
    "platform/vcpu/number",
    "platform/vcpu/current",
    "platform/vcpu/weight",
    "platform/vcpu/cap",
    "platform/viridian",
    "platform/viridian_time_ref_count",
    "platform/viridian_reference_tsc",
    "platform/viridian_hcall_remote_tlb_flush",
    "platform/viridian_apic_assist",
    "platform/viridian_crash_ctl",
    "platform/viridian_stimer",
    "platform/apic",
    "platform/pae",
    "platform/nx",
    "platform/tsc_mode",
    "platform/x87-fip-width",
    "platform/nested-virt",
    "platform/exp-nested-hvm",
    "platform/nomigrate",
    "platform/cores-per-socket",
    "platform/acpi",
    "platform/acpi_s4",
    "platform/acpi_s3",
    "platform/hpet",
    "platform/timeoffset",
    "hvmloader/bios",
    "platform/ovmf-override",
    "platform/featureset",
];

/// What `get_flags` determined (C `struct flags`), plus the inputs of later stages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flags {
    /// `xc_domain_getinfo` of the domain.
    #[serde(skip)]
    pub dominfo: Option<DomainInfo>,
    /// `platform/vcpu/number` (C int).
    pub vcpus: i32,
    /// `platform/vcpu/current`.
    pub vcpus_current: i32,
    /// `platform/vcpu/<n>/affinity`, `None` = unset.
    pub vcpu_affinity: Vec<Option<String>>,
    /// `platform/vcpu/weight` truncated to u16, 0 = unset.
    pub vcpu_weight: u16,
    /// `platform/vcpu/cap` truncated to u16, 0 = no change.
    pub vcpu_cap: u16,
    /// `platform/nx`.
    pub nx: i32,
    /// `platform/viridian`.
    pub viridian: i32,
    /// `platform/viridian_time_ref_count`.
    pub viridian_time_ref_count: i32,
    /// `platform/viridian_reference_tsc`.
    pub viridian_reference_tsc: i32,
    /// `platform/viridian_hcall_remote_tlb_flush`.
    pub viridian_hcall_remote_tlb_flush: i32,
    /// `platform/viridian_apic_assist`.
    pub viridian_apic_assist: i32,
    /// `platform/viridian_crash_ctl`.
    pub viridian_crash_ctl: i32,
    /// `platform/viridian_stimer` (defaulted to 1 for vGPU, see §2.2).
    pub viridian_stimer: i32,
    /// Never read by xenguest: always 0.
    pub viridian_hcall_ipi: i32,
    /// `platform/pae`.
    pub pae: i32,
    /// `platform/acpi` after hvmloader_flag (-1 = was absent).
    pub acpi: i32,
    /// `platform/apic`.
    pub apic: i32,
    /// `platform/acpi_s3`.
    pub acpi_s3: i32,
    /// `platform/acpi_s4`.
    pub acpi_s4: i32,
    /// `platform/tsc_mode`.
    pub tsc_mode: i32,
    /// `platform/hpet`, default 1.
    pub hpet: i32,
    /// `platform/nomigrate` (forced 1 by nested virt).
    pub nomigrate: i32,
    /// `platform/nested-virt`, else `platform/exp-nested-hvm`.
    pub nested_virt: i32,
    /// `platform/cores-per-socket` (HVM only).
    pub cores_per_socket: u32,
    /// `platform/x87-fip-width`.
    pub x87_fip_width: u32,
    /// `platform/timeoffset` in seconds.
    pub timeoffset: i64,
    /// `hvmloader/bios`.
    pub bios: Option<String>,
    /// `platform/ovmf-override`.
    pub ovmf_override: Option<String>,
    /// `platform/featureset`.
    pub featureset: Option<String>,
    /// Keys `hvmloader_flag` rewrites (relative key, value), written at the end.
    pub fixups: Vec<(String, String)>,
    /// Values the C code would have misread silently.
    pub warnings: Vec<String>,
}

/// Reads `paths` in one batch; a missing or unreadable key is `None` (as `xs_read`
/// returning NULL). Values are cut at the first NUL like the C strings.
pub fn read_batch<S: Store + ?Sized>(
    store: &S,
    tx: TxId,
    paths: &[String],
) -> xg_store::Result<Vec<Option<String>>> {
    let reqs: Vec<Request> = paths.iter().map(|p| Request::Read(p.clone())).collect();
    let replies = store.submit(tx, &reqs)?;
    Ok(replies
        .into_iter()
        .zip(paths)
        .map(|(r, p)| match r {
            Ok(Reply::Data(d)) => {
                let end = d.iter().position(|b| *b == 0).unwrap_or(d.len());
                Some(String::from_utf8_lossy(&d[..end]).into_owned())
            }
            Ok(_) => None,
            Err(e) => {
                if !e.is_not_found() {
                    log::debug!("Reading {p} failed: {e}");
                }
                None
            }
        })
        .collect())
}

struct Reader<'a> {
    values: std::collections::HashMap<&'static str, Option<String>>,
    warnings: &'a mut Vec<String>,
}

impl Reader<'_> {
    fn raw(&self, key: &str) -> Option<&str> {
        self.values.get(key).and_then(|v| v.as_deref())
    }

    fn warn(&mut self, key: &str, value: &str, quirk: Quirk) {
        let w = format!("platform key {key}={value:?}: {}", quirk.describe());
        log::warn!("WARNING: {w}");
        self.warnings.push(w);
    }

    /// `xenstore_get_value`: value and validity.
    fn num_valid(&mut self, key: &str) -> (u64, bool) {
        let Some(s) = self.raw(key).map(str::to_owned) else {
            return (0, false);
        };
        let (p, valid) = cparse::xs_num(&s);
        if let Some(q) = p.quirk {
            self.warn(key, &s, q);
        }
        (p.value, valid)
    }

    fn int(&mut self, key: &str) -> i32 {
        let (v, _) = self.num_valid(key);
        // Fits when it is a non-negative int or a small negative ("-1" wraps to u64::MAX
        // and back to -1; already reported as a negative value).
        let fits = v <= 0x7FFF_FFFF || is_small_negative(v);
        if !fits {
            if let Some(s) = self.raw(key).map(str::to_owned) {
                self.warn(key, &s, Quirk::Truncated);
            }
        }
        cparse::to_c_int(v)
    }

    fn uint(&mut self, key: &str) -> u32 {
        let (v, _) = self.num_valid(key);
        if v > u64::from(u32::MAX) {
            if let Some(s) = self.raw(key).map(str::to_owned) {
                self.warn(key, &s, Quirk::Truncated);
            }
        }
        cparse::to_c_uint(v)
    }

    fn u16(&mut self, key: &str) -> u16 {
        let (v, _) = self.num_valid(key);
        if v > 0xFFFF {
            if let Some(s) = self.raw(key).map(str::to_owned) {
                self.warn(key, &s, Quirk::Truncated);
            }
        }
        cparse::to_u16(v)
    }

    /// `hvmloader_flag`: returns the value and the rewrite of the key, if any.
    fn hvmloader_flag(&mut self, key: &str) -> (i32, Option<String>) {
        let Some(val) = self.raw(key).map(str::to_owned) else {
            return (-1, Some("0".to_owned()));
        };
        match val.as_str() {
            "1" => return (1, None),
            "0" => return (0, None),
            _ => {}
        }
        let ret = if val.eq_ignore_ascii_case("true") {
            1
        } else {
            let (v, erange) = cparse::strtol(&val, 0);
            if erange {
                0
            } else {
                // `int ret = strtol(...)`: the long is truncated to int.
                cparse::to_c_int(u64::from_ne_bytes(v.to_ne_bytes()))
            }
        };
        log::info!("HVMLoader error: Fixing up key '{key}' from '{val}' to '{ret}'");
        if !val.eq_ignore_ascii_case("true") {
            let w = format!(
                "platform key {key}={val:?}: rewritten to \"{}\"",
                i32::from(ret != 0)
            );
            log::warn!("WARNING: {w}");
            self.warnings.push(w);
        }
        (ret, Some(i32::from(ret != 0).to_string()))
    }
}

fn is_small_negative(v: u64) -> bool {
    // "-1" parses to u64::MAX and means -1 in an int: already reported as NegativeWraps.
    v >= 0xFFFF_FFFF_8000_0000
}

/// `get_flags`: reads the platform keys of the domain at `domain_path`. `dominfo` is the
/// domain's `xc_domain_getinfo` result; `vgpu` is the `-vgpu` option.
pub fn get_flags<S: Store + ?Sized>(
    store: &S,
    domain_path: &str,
    dominfo: &DomainInfo,
    vgpu: bool,
) -> Result<Flags, BuildError> {
    let paths: Vec<String> = BATCH.iter().map(|k| format!("{domain_path}/{k}")).collect();
    let values =
        read_batch(store, TxId::NONE, &paths).map_err(|e| BuildError::store(Step::GetFlags, e))?;
    let mut warnings = Vec::new();
    let mut r = Reader {
        values: BATCH.iter().copied().zip(values).collect(),
        warnings: &mut warnings,
    };

    let mut vcpus = r.int("platform/vcpu/number");
    let vcpus_current = r.int("platform/vcpu/current");
    let vcpu_weight = r.u16("platform/vcpu/weight");
    let vcpu_cap = r.u16("platform/vcpu/cap");
    let viridian = r.int("platform/viridian");
    let viridian_time_ref_count = r.int("platform/viridian_time_ref_count");
    let viridian_reference_tsc = r.int("platform/viridian_reference_tsc");
    let viridian_hcall_remote_tlb_flush = r.int("platform/viridian_hcall_remote_tlb_flush");
    let viridian_apic_assist = r.int("platform/viridian_apic_assist");
    let viridian_crash_ctl = r.int("platform/viridian_crash_ctl");
    let (stimer, stimer_set) = r.num_valid("platform/viridian_stimer");
    let mut viridian_stimer = cparse::to_c_int(stimer);
    if vgpu && !stimer_set && (viridian_reference_tsc != 0 || viridian_time_ref_count != 0) {
        log::info!("vgpu attached and stimer not set - defaulting to enabled.");
        viridian_stimer = 1;
    }
    let apic = r.int("platform/apic");
    let pae = r.int("platform/pae");
    let nx = r.int("platform/nx");
    let tsc_mode = r.int("platform/tsc_mode");
    let x87_fip_width = r.uint("platform/x87-fip-width");
    let nested_virt = if r.raw("platform/nested-virt").is_some() {
        r.int("platform/nested-virt")
    } else {
        r.int("platform/exp-nested-hvm")
    };
    let mut nomigrate = r.int("platform/nomigrate");

    let mut cores_per_socket = 0;
    if dominfo.is_hvm() {
        let cps = r.uint("platform/cores-per-socket");
        if cps != 0 && vcpus_mod(vcpus, cps) != 0 {
            return Err(BuildError::refused(
                Step::GetFlags,
                format!(
                    "Bad cores/socket setting: {cps} (nr vcpus {})",
                    u32::from_ne_bytes(vcpus.to_ne_bytes())
                ),
                libc::EINVAL,
            ));
        }
        cores_per_socket = cps;
    }
    if nested_virt != 0 {
        nomigrate = 1;
    }

    let mut fixups = Vec::new();
    let mut flag = |key: &str, r: &mut Reader<'_>| {
        let (v, fix) = r.hvmloader_flag(key);
        if let Some(val) = fix {
            fixups.push((key.to_owned(), val));
        }
        v
    };
    let acpi = flag("platform/acpi", &mut r);
    let acpi_s4 = flag("platform/acpi_s4", &mut r);
    let acpi_s3 = flag("platform/acpi_s3", &mut r);

    let hpet = match r.raw("platform/hpet") {
        Some(s) if !s.is_empty() => r.int("platform/hpet"),
        _ => 1,
    };

    let mut timeoffset = 0;
    if let Some(s) = r.raw("platform/timeoffset").map(str::to_owned) {
        let p = cparse::scan_i64(&s);
        if let Some(q) = p.quirk {
            r.warn("platform/timeoffset", &s, q);
        }
        timeoffset = p.value.unwrap_or(0);
    }
    let bios = r.raw("hvmloader/bios").map(str::to_owned);
    let ovmf_override = r.raw("platform/ovmf-override").map(str::to_owned);
    let featureset = r.raw("platform/featureset").map(str::to_owned);

    if dominfo.is_hvm() && vcpus > HVM_MAX_VCPUS {
        let w = format!(
            "platform key platform/vcpu/number={vcpus}: more than {HVM_MAX_VCPUS} vCPUs, using {HVM_MAX_VCPUS}"
        );
        log::warn!("WARNING: {w}");
        warnings.push(w);
        vcpus = HVM_MAX_VCPUS;
    }

    // Second batch: the affinity keys, whose number the first batch told us.
    let n = usize::try_from(vcpus.max(0)).unwrap_or(0);
    let vcpu_affinity = if n == 0 {
        Vec::new()
    } else {
        let paths: Vec<String> = (0..n)
            .map(|i| format!("{domain_path}/platform/vcpu/{i}/affinity"))
            .collect();
        read_batch(store, TxId::NONE, &paths).map_err(|e| BuildError::store(Step::GetFlags, e))?
    };

    let flags = Flags {
        dominfo: Some(dominfo.clone()),
        vcpus,
        vcpus_current,
        vcpu_affinity,
        vcpu_weight,
        vcpu_cap,
        nx,
        viridian,
        viridian_time_ref_count,
        viridian_reference_tsc,
        viridian_hcall_remote_tlb_flush,
        viridian_apic_assist,
        viridian_crash_ctl,
        viridian_stimer,
        viridian_hcall_ipi: 0,
        pae,
        acpi,
        apic,
        acpi_s3,
        acpi_s4,
        tsc_mode,
        hpet,
        nomigrate,
        nested_virt,
        cores_per_socket,
        x87_fip_width,
        timeoffset,
        bios,
        ovmf_override,
        featureset,
        fixups,
        warnings,
    };
    flags.log();
    Ok(flags)
}

/// `f->vcpus % cps` with the C operands: `int % unsigned` converts the int to unsigned.
fn vcpus_mod(vcpus: i32, cps: u32) -> u32 {
    u32::from_ne_bytes(vcpus.to_ne_bytes()) % cps
}

impl Flags {
    /// The HVM_PARAM_VIRIDIAN mask (§4.7 step 2), or `None` when viridian is off.
    pub fn viridian_mask(&self) -> Option<u64> {
        if self.viridian == 0 {
            return None;
        }
        let mut m: u64 = (1 << 0) | (1 << 12);
        let bits = [
            (self.viridian_time_ref_count, 1 << 2),
            (self.viridian_reference_tsc, 1 << 3),
            (self.viridian_hcall_remote_tlb_flush, 1 << 4),
            (self.viridian_apic_assist, 1 << 5),
            (self.viridian_crash_ctl, 1 << 6),
            (self.viridian_stimer, (1 << 7) | (1 << 8)),
            (self.viridian_hcall_ipi, 1 << 9),
        ];
        for (on, bit) in bits {
            if on != 0 {
                m |= bit;
            }
        }
        Some(m)
    }

    fn log(&self) {
        let (kind, hap) = match &self.dominfo {
            Some(d) => (if d.is_hvm() { "HVM" } else { "PV" }, u8::from(d.is_hap())),
            None => ("?", 0),
        };
        log::info!("Domain Properties: Type {kind}, hap {hap}");
        log::info!("Determined the following parameters from xenstore:");
        log::info!(
            "vcpu/number:{} vcpu/weight:{} vcpu/cap:{}",
            self.vcpus,
            self.vcpu_weight,
            self.vcpu_cap
        );
        log::info!(
            "nx: {}, pae {}, cores-per-socket {}, x86-fip-width {}, nested {}",
            self.nx,
            self.pae,
            self.cores_per_socket,
            self.x87_fip_width,
            self.nested_virt
        );
        log::info!(
            "apic: {} acpi: {} acpi_s4: {} acpi_s3: {} tsc_mode: {} hpet: {}",
            self.apic,
            self.acpi,
            self.acpi_s4,
            self.acpi_s3,
            self.tsc_mode,
            self.hpet
        );
        log::info!(
            "nomigrate {}, timeoffset {}",
            self.nomigrate,
            self.timeoffset
        );
        log::info!(
            "viridian: {}, time_ref_count: {}, reference_tsc: {} hcall_remote_tlb_flush: {} \
             apic_assist: {} crash_ctl: {} stimer: {} hcall_ipi: {}",
            self.viridian,
            self.viridian_time_ref_count,
            self.viridian_reference_tsc,
            self.viridian_hcall_remote_tlb_flush,
            self.viridian_apic_assist,
            self.viridian_crash_ctl,
            self.viridian_stimer,
            self.viridian_hcall_ipi
        );
        for (n, a) in self.vcpu_affinity.iter().enumerate() {
            log::info!("vcpu/{n}/affinity:{}", a.as_deref().unwrap_or("unset"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MapStore;
    use xg_ctrl::{dominf, DomId};

    fn dominfo(flags: u32) -> DomainInfo {
        DomainInfo {
            domid: DomId(5),
            flags,
            tot_pages: 0,
            max_pages: 0,
            outstanding_pages: 0,
            shared_info_frame: 0,
            nr_online_vcpus: 0,
            max_vcpu_id: 0,
            cpupool: 0,
        }
    }

    const HVM: u32 = dominf::HVM_GUEST | dominf::HAP;
    const P: &str = "/local/domain/5";

    fn flags_of(keys: &[(&str, &str)], vgpu: bool) -> Result<(Flags, Vec<usize>), BuildError> {
        let keys: Vec<(String, &str)> =
            keys.iter().map(|(k, v)| (format!("{P}/{k}"), *v)).collect();
        let refs: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let s = MapStore::with(&refs);
        let f = get_flags(&s, P, &dominfo(HVM), vgpu)?;
        let b = s.batches.lock().unwrap().clone();
        Ok((f, b))
    }

    #[test]
    fn defaults() {
        let (f, batches) = flags_of(&[], false).unwrap();
        assert_eq!(batches, vec![BATCH.len()], "one batch, no affinity batch");
        assert_eq!((f.vcpus, f.hpet, f.acpi, f.timeoffset), (0, 1, -1, 0));
        assert_eq!(
            f.fixups,
            vec![
                ("platform/acpi".to_owned(), "0".to_owned()),
                ("platform/acpi_s4".to_owned(), "0".to_owned()),
                ("platform/acpi_s3".to_owned(), "0".to_owned()),
            ]
        );
        assert_eq!(f.viridian_mask(), None);
        assert!(f.warnings.is_empty());
    }

    #[test]
    fn values_and_quirks() {
        let (f, batches) = flags_of(
            &[
                ("platform/vcpu/number", "4"),
                ("platform/vcpu/current", "2"),
                ("platform/vcpu/1/affinity", "0110"),
                ("platform/vcpu/weight", "70000"),
                ("platform/vcpu/cap", "0x32"),
                ("platform/viridian", "true"),
                ("platform/viridian_time_ref_count", "1"),
                ("platform/acpi", "true"),
                ("platform/acpi_s3", "1"),
                ("platform/acpi_s4", "yes"),
                ("platform/hpet", ""),
                ("platform/timeoffset", "-3600"),
                ("platform/tsc_mode", "2x"),
                ("platform/exp-nested-hvm", "1"),
                ("platform/cores-per-socket", "2"),
            ],
            true,
        )
        .unwrap();
        assert_eq!(batches, vec![BATCH.len(), 4]);
        assert_eq!(f.vcpu_affinity[1].as_deref(), Some("0110"));
        assert_eq!(f.vcpu_affinity[0], None);
        assert_eq!((f.vcpu_weight, f.vcpu_cap), (4464, 0x32));
        assert_eq!((f.acpi, f.acpi_s3, f.acpi_s4), (1, 1, 0));
        assert_eq!(
            f.fixups,
            vec![
                ("platform/acpi".to_owned(), "1".to_owned()),
                ("platform/acpi_s4".to_owned(), "0".to_owned()),
            ]
        );
        assert_eq!((f.hpet, f.timeoffset, f.tsc_mode), (1, -3600, 2));
        assert_eq!((f.nested_virt, f.nomigrate), (1, 1));
        // vGPU + time_ref_count and no stimer key: stimer defaults on.
        assert_eq!(f.viridian_stimer, 1);
        assert_eq!(f.viridian_mask(), Some(0x1001 | 0x4 | 0x180));
        let w = f.warnings.join("\n");
        assert!(w.contains("platform/vcpu/weight=\"70000\""), "{w}");
        assert!(w.contains("platform/tsc_mode=\"2x\""), "{w}");
        assert!(w.contains("platform/acpi_s4=\"yes\""), "{w}");
    }

    #[test]
    fn nested_virt_wins_over_exp_key() {
        let (f, _) = flags_of(
            &[
                ("platform/nested-virt", "0"),
                ("platform/exp-nested-hvm", "1"),
            ],
            false,
        )
        .unwrap();
        assert_eq!(f.nested_virt, 0);
    }

    #[test]
    fn cores_per_socket_must_divide() {
        let e = flags_of(
            &[
                ("platform/vcpu/number", "3"),
                ("platform/cores-per-socket", "2"),
            ],
            false,
        )
        .unwrap_err();
        assert_eq!(
            e.wire_lines(),
            vec!["Bad cores/socket setting: 2 (nr vcpus 3)\n".to_owned()]
        );
    }

    #[test]
    fn viridian_full_mask() {
        let (f, _) = flags_of(
            &[
                ("platform/viridian", "1"),
                ("platform/viridian_time_ref_count", "1"),
                ("platform/viridian_reference_tsc", "1"),
                ("platform/viridian_apic_assist", "1"),
                ("platform/viridian_crash_ctl", "1"),
                ("platform/viridian_hcall_remote_tlb_flush", "1"),
                ("platform/viridian_stimer", "1"),
            ],
            false,
        )
        .unwrap();
        assert_eq!(f.viridian_mask(), Some(0x11FD));
    }
}
