//! The simulated host's CPU policies and the HVM context blob of a fresh domain.

use crate::ops::{CpuPolicy, CpuidLeaf, MsrEntry, SystemCpuPolicy};

/// `XEN_CPUID_NO_SUBLEAF`.
pub const NO_SUBLEAF: u32 = u32::MAX;

const fn bits(list: &[u32]) -> u32 {
    let mut v = 0;
    let mut i = 0;
    while i < list.len() {
        v |= 1 << list[i];
        i += 1;
    }
    v
}

fn leaf(leaf: u32, subleaf: u32, a: u32, b: u32, c: u32, d: u32) -> CpuidLeaf {
    CpuidLeaf {
        leaf,
        subleaf,
        a,
        b,
        c,
        d,
    }
}

/// Leaf 1 ECX bit 31: running under a hypervisor.
pub const LEAF1_ECX_HYPERVISOR: u32 = 1 << 31;

/// A plausible x86_64 server policy (a Skylake-SP-like Intel CPU).
pub fn host_policy() -> CpuPolicy {
    // "GenuineIntel" in EBX, EDX, ECX.
    let vendor = leaf(0, NO_SUBLEAF, 0xd, 0x756e_6547, 0x6c65_746e, 0x4965_6e69);
    // SSE3 PCLMULQDQ SSSE3 FMA CX16 PCID SSE4.1 SSE4.2 X2APIC MOVBE POPCNT TSC-deadline
    // AES XSAVE AVX F16C RDRAND.
    let l1_ecx = bits(&[
        0, 1, 9, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 28, 29, 30,
    ]);
    // FPU VME DE PSE TSC MSR PAE MCE CX8 APIC SEP MTRR PGE MCA CMOV PAT PSE36 CLFLUSH
    // MMX FXSR SSE SSE2 SS HTT.
    let l1_edx = bits(&[
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 19, 23, 24, 25, 26, 27, 28,
    ]);
    // FSGSBASE BMI1 AVX2 SMEP BMI2 ERMS INVPCID RDSEED ADX SMAP CLFLUSHOPT CLWB.
    let l7_ebx = bits(&[0, 3, 5, 7, 8, 9, 10, 18, 19, 20, 23, 24]);
    // MD_CLEAR IBRSB STIBP L1D_FLUSH ARCH_CAPS SSBD.
    let l7_edx = bits(&[10, 26, 27, 28, 29, 31]);
    // LAHF_LM ABM PREFETCHW.
    let e1_ecx = bits(&[0, 5, 8]);
    // SYSCALL NX PAGE1GB RDTSCP LM.
    let e1_edx = bits(&[11, 20, 26, 27, 29]);
    CpuPolicy {
        leaves: vec![
            vendor,
            leaf(1, NO_SUBLEAF, 0x0005_0654, 0x0010_0800, l1_ecx, l1_edx),
            leaf(7, 0, 0, l7_ebx, 0, l7_edx),
            // x87, SSE and AVX state; sizes of the standard format.
            leaf(0xd, 0, 0x7, 0x340, 0x340, 0),
            // XSAVEOPT XSAVEC XGETBV1 XSAVES.
            leaf(0xd, 1, 0xf, 0, 0, 0),
            leaf(0xd, 2, 0x100, 0x240, 0, 0),
            leaf(0x8000_0000, NO_SUBLEAF, 0x8000_0008, 0, 0, 0),
            leaf(0x8000_0001, NO_SUBLEAF, 0, 0, e1_ecx, e1_edx),
            // Invariant TSC.
            leaf(0x8000_0007, NO_SUBLEAF, 0, 0, 0, bits(&[8])),
            // 46 physical, 48 virtual address bits.
            leaf(0x8000_0008, NO_SUBLEAF, 0x0000_302e, 0, 0, 0),
        ],
        msrs: vec![
            // MSR_INTEL_PLATFORM_INFO and MSR_ARCH_CAPABILITIES.
            MsrEntry {
                idx: 0xce,
                flags: 0,
                val: 0,
            },
            MsrEntry {
                idx: 0x10a,
                flags: 0,
                val: 0,
            },
        ],
    }
}

/// One of the system policies: guest policies add the hypervisor bit.
pub fn system_policy(which: SystemCpuPolicy) -> CpuPolicy {
    let mut p = host_policy();
    if !matches!(which, SystemCpuPolicy::Raw | SystemCpuPolicy::Host) {
        for l in &mut p.leaves {
            if l.leaf == 1 {
                l.c |= LEAF1_ECX_HYPERVISOR;
            }
        }
    }
    p
}

/// Checks `policy` against `max` as Xen's audit would: every leaf must exist in `max`,
/// and feature leaves may only carry bits `max` has. Returns the first offending leaf.
pub fn audit(policy: &CpuPolicy, max: &CpuPolicy) -> Result<(), (u32, u32)> {
    for l in &policy.leaves {
        let Some(m) = max
            .leaves
            .iter()
            .find(|m| m.leaf == l.leaf && m.subleaf == l.subleaf)
        else {
            return Err((l.leaf, l.subleaf));
        };
        let feature_leaf = matches!(l.leaf, 1 | 7 | 0x8000_0001 | 0x8000_0007);
        let extra = |v: u32, m: u32| v & !m != 0;
        if feature_leaf && (extra(l.c, m.c) || extra(l.d, m.d) || (l.leaf == 7 && extra(l.b, m.b)))
        {
            return Err((l.leaf, l.subleaf));
        }
    }
    Ok(())
}

/// Save record type codes (`public/arch-x86/hvm/save.h`).
pub mod save {
    /// End marker.
    pub const END: u16 = 0;
    /// `struct hvm_save_header`.
    pub const HEADER: u16 = 1;
    /// `struct hvm_hw_cpu`.
    pub const CPU: u16 = 2;
    /// `struct hvm_hw_mtrr`.
    pub const MTRR: u16 = 14;
    /// `HVM_FILE_MAGIC`.
    pub const MAGIC: u32 = 0x5438_1286;
    /// `HVM_FILE_VERSION`.
    pub const VERSION: u32 = 1;
    /// `sizeof(struct hvm_save_descriptor)`.
    pub const DESCRIPTOR_LEN: usize = size_of::<xg_sys::hvm_save_descriptor>();
    /// `sizeof(struct hvm_save_header)`.
    pub const HEADER_LEN: usize = size_of::<xg_sys::hvm_save_header>();
    /// `sizeof(struct hvm_hw_cpu)`.
    pub const CPU_LEN: usize = size_of::<xg_sys::hvm_hw_cpu>();
    /// `sizeof(struct hvm_hw_mtrr)`.
    pub const MTRR_LEN: usize = size_of::<xg_sys::hvm_hw_mtrr>();
    /// Offset of `rflags` in `struct hvm_hw_cpu`.
    pub const CPU_RFLAGS: usize = offset_of!(xg_sys::hvm_hw_cpu, rflags);
    /// Offset of `cr0` in `struct hvm_hw_cpu`.
    pub const CPU_CR0: usize = offset_of!(xg_sys::hvm_hw_cpu, cr0);
    /// Offset of `msr_pat_cr` in `struct hvm_hw_mtrr`.
    pub const MTRR_PAT: usize = offset_of!(xg_sys::hvm_hw_mtrr, msr_pat_cr);
    /// Offset of `msr_mtrr_cap` in `struct hvm_hw_mtrr`.
    pub const MTRR_CAP: usize = offset_of!(xg_sys::hvm_hw_mtrr, msr_mtrr_cap);

    use std::mem::{offset_of, size_of};
}

fn push_record(blob: &mut Vec<u8>, typecode: u16, instance: u16, body: &[u8]) {
    blob.extend_from_slice(&typecode.to_le_bytes());
    blob.extend_from_slice(&instance.to_le_bytes());
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    blob.extend_from_slice(&len.to_le_bytes());
    blob.extend_from_slice(body);
}

/// The blob `XEN_DOMCTL_gethvmcontext` returns for a domain that has not run: a header,
/// a CPU and an MTRR record per vCPU, and the end marker.
pub fn initial_hvm_context(vcpus: u32, cpuid_eax: u32, gtsc_khz: u32) -> Vec<u8> {
    let mut blob = Vec::new();
    let mut header = Vec::with_capacity(save::HEADER_LEN);
    header.extend_from_slice(&save::MAGIC.to_le_bytes());
    header.extend_from_slice(&save::VERSION.to_le_bytes());
    header.extend_from_slice(&0u64.to_le_bytes());
    header.extend_from_slice(&cpuid_eax.to_le_bytes());
    header.extend_from_slice(&gtsc_khz.to_le_bytes());
    push_record(&mut blob, save::HEADER, 0, &header);
    let mut cpu = vec![0u8; save::CPU_LEN];
    // Architectural reset state: reserved RFLAGS bit 1; CR0 with CD, NW and ET.
    cpu[save::CPU_RFLAGS..save::CPU_RFLAGS + 8].copy_from_slice(&2u64.to_le_bytes());
    cpu[save::CPU_CR0..save::CPU_CR0 + 8].copy_from_slice(&0x6000_0010u64.to_le_bytes());
    let mut mtrr = vec![0u8; save::MTRR_LEN];
    // The power-on PAT; MTRRcap: 8 variable ranges, fixed ranges and write-combining.
    mtrr[save::MTRR_PAT..save::MTRR_PAT + 8]
        .copy_from_slice(&0x0007_0406_0007_0406u64.to_le_bytes());
    mtrr[save::MTRR_CAP..save::MTRR_CAP + 8].copy_from_slice(&0x508u64.to_le_bytes());
    for v in 0..vcpus {
        let instance = u16::try_from(v).unwrap_or(u16::MAX);
        push_record(&mut blob, save::CPU, instance, &cpu);
    }
    for v in 0..vcpus {
        let instance = u16::try_from(v).unwrap_or(u16::MAX);
        push_record(&mut blob, save::MTRR, instance, &mtrr);
    }
    push_record(&mut blob, save::END, 0, &[]);
    blob
}

/// One record of a save blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaveRecord<'a> {
    /// Type code.
    pub typecode: u16,
    /// Instance (vCPU for per-vCPU records).
    pub instance: u16,
    /// Body bytes.
    pub body: &'a [u8],
}

/// Splits a save blob into records, up to and including END; `None` if malformed
/// (truncated, no END, or a header with the wrong magic or version).
pub fn parse_hvm_context(blob: &[u8]) -> Option<Vec<SaveRecord<'_>>> {
    let mut out = Vec::new();
    let mut rest = blob;
    loop {
        let desc = rest.get(..save::DESCRIPTOR_LEN)?;
        let typecode = u16::from_le_bytes([desc[0], desc[1]]);
        let instance = u16::from_le_bytes([desc[2], desc[3]]);
        let len = u32::from_le_bytes([desc[4], desc[5], desc[6], desc[7]]);
        let len = usize::try_from(len).ok()?;
        let body = rest.get(save::DESCRIPTOR_LEN..save::DESCRIPTOR_LEN.checked_add(len)?)?;
        rest = &rest[save::DESCRIPTOR_LEN + len..];
        if out.is_empty() {
            let magic = u32::from_le_bytes(body.get(0..4)?.try_into().ok()?);
            let version = u32::from_le_bytes(body.get(4..8)?.try_into().ok()?);
            if typecode != save::HEADER || magic != save::MAGIC || version != save::VERSION {
                return None;
            }
        }
        out.push(SaveRecord {
            typecode,
            instance,
            body,
        });
        if typecode == save::END {
            return Some(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_policy_has_the_usual_features() {
        let p = host_policy();
        let get = |l: u32| p.leaves.iter().find(|x| x.leaf == l).unwrap();
        assert_ne!(get(1).d & (1 << 6), 0, "PAE");
        assert_ne!(get(0x8000_0001).d & (1 << 20), 0, "NX");
        assert_ne!(get(0x8000_0001).d & (1 << 29), 0, "LM");
        assert_eq!(get(1).c & LEAF1_ECX_HYPERVISOR, 0);
        let hvm = system_policy(SystemCpuPolicy::HvmDefault);
        assert!(audit(&hvm, &system_policy(SystemCpuPolicy::HvmMax)).is_ok());
        assert_eq!(audit(&hvm, &host_policy()), Err((1, NO_SUBLEAF)));
    }

    #[test]
    fn hvm_context_round_trips() {
        let blob = initial_hvm_context(2, 0x50654, 2_600_000);
        let recs = parse_hvm_context(&blob).unwrap();
        let codes: Vec<_> = recs.iter().map(|r| (r.typecode, r.instance)).collect();
        assert_eq!(
            codes,
            vec![(1, 0), (2, 0), (2, 1), (14, 0), (14, 1), (0, 0)]
        );
        assert_eq!(recs[1].body.len(), save::CPU_LEN);
        // Xen 4.17's public/arch-x86/hvm/save.h, measured with gcc.
        assert_eq!(
            (save::CPU_LEN, save::MTRR_LEN, save::HEADER_LEN),
            (1032, 240, 24)
        );
        assert_eq!(
            (save::CPU_RFLAGS, save::CPU_CR0, save::MTRR_CAP),
            (648, 656, 224)
        );
        assert_eq!(blob.len(), 5 * 8 + 8 + 24 + 2 * 1032 + 2 * 240);
        assert!(parse_hvm_context(&blob[..blob.len() - 1]).is_none());
    }
}
