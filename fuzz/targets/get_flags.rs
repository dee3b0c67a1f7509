//! Fuzz target: `get_flags` and the safety check on arbitrary platform keys.
//!
//! The input is `key=value` lines (keys relative to the domain path; the dictionary has
//! every key the build reads) seeded into an in-memory store, then read by `get_flags`
//! for an HVM+HAP domain, with and without `-vgpu`. Checked: no panic, no allocation or
//! time out of proportion (a huge `vcpu/number` must not make the builder read or
//! allocate billions of affinity keys), the vCPU count within `HVM_MAX_VCPUS` or
//! refused, the safety check and the viridian mask computable for every result.
#![allow(dead_code)]

use xg_build::flags::{self, HVM_MAX_VCPUS};
use xg_build::safety;
use xg_ctrl::{DomId, DomainInfo};
use xg_store::MemStore;

/// Name in reports.
pub const NAME: &str = "get_flags";
/// Inputs are cut to this length.
pub const MAX_LEN: usize = 8192;
/// Tokens worth inserting.
pub const DICT: &[&[u8]] = &[
    b"platform/vcpu/number=",
    b"platform/vcpu/current=",
    b"platform/vcpu/0/affinity=",
    b"platform/vcpu/1/affinity=",
    b"platform/vcpu/weight=",
    b"platform/vcpu/cap=",
    b"platform/viridian=",
    b"platform/viridian_stimer=",
    b"platform/viridian_time_ref_count=",
    b"platform/viridian_reference_tsc=",
    b"platform/apic=",
    b"platform/pae=",
    b"platform/nx=",
    b"platform/tsc_mode=",
    b"platform/x87-fip-width=",
    b"platform/nested-virt=",
    b"platform/exp-nested-hvm=",
    b"platform/nomigrate=",
    b"platform/cores-per-socket=",
    b"platform/acpi=",
    b"platform/acpi_s3=",
    b"platform/acpi_s4=",
    b"platform/hpet=",
    b"platform/timeoffset=",
    b"hvmloader/bios=",
    b"platform/ovmf-override=",
    b"platform/featureset=",
    b"\n",
    b"4294967295",
    b"2147483648",
    b"-1",
    b"0x80",
    b"true",
    b"ovmf",
    b"1111",
    b"99999999999999999999",
    b"-9223372036854775808",
];

/// Keys, values and warnings are copied a few times; the affinity table is bounded by
/// `HVM_MAX_VCPUS`.
pub fn alloc_cap(len: usize) -> usize {
    256 * len + 64 * 1024
}

/// Seed inputs.
pub fn seeds() -> Vec<Vec<u8>> {
    vec![
        b"platform/vcpu/number=4\nplatform/vcpu/current=2\nplatform/vcpu/0/affinity=1100\n\
          platform/vcpu/weight=65792\nplatform/viridian=1\nplatform/acpi=yes\n\
          platform/timeoffset=-7200\nplatform/cores-per-socket=2\n"
            .to_vec(),
        b"platform/vcpu/number=4294967295\nplatform/vcpu/current=-1\n".to_vec(),
        b"platform/nested-virt=1\nplatform/hpet=\nhvmloader/bios=ovmf\n\
          platform/ovmf-override=../x.fd\n"
            .to_vec(),
        b"platform/vcpu/number=0x80\nplatform/x87-fip-width=8\nplatform/tsc_mode=1x\n".to_vec(),
    ]
}

const PATH: &str = "/local/domain/1";

/// Checks one input.
pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut pairs = Vec::new();
    for line in text.lines().take(256) {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let k = k.trim_matches('/');
        if k.is_empty() || k.len() > 256 {
            continue;
        }
        pairs.push((format!("{PATH}/{k}"), v.to_owned()));
    }
    // Keys the store refuses (bad characters) are left out, as a toolstack would.
    let store = MemStore::new();
    for (k, v) in &pairs {
        let _ = xg_store::Store::write(&store, xg_store::TxId::NONE, k, v.as_bytes());
    }
    let info = DomainInfo {
        domid: DomId(1),
        flags: xg_ctrl::ops::dominf::HVM_GUEST | xg_ctrl::ops::dominf::HAP,
        tot_pages: 0,
        max_pages: 0,
        outstanding_pages: 0,
        shared_info_frame: 0,
        nr_online_vcpus: 1,
        max_vcpu_id: 0,
        cpupool: 0,
    };
    for vgpu in [false, true] {
        let Ok(f) = flags::get_flags(&store, PATH, &info, vgpu) else {
            continue;
        };
        assert!(f.vcpu_affinity.len() <= usize::try_from(HVM_MAX_VCPUS).unwrap_or(128));
        let _ = f.viridian_mask();
        for pod in [false, true] {
            let _ = safety::hvm_safety_check(&f, pod, pod, false);
        }
        for a in f.vcpu_affinity.iter().flatten() {
            let _ = xg_build::vcpus::affinity_cpumap(a, 8);
        }
    }
}
