//! The domain's CPUID policy (xenguest's `construct_cpuid_policy` and the XenServer
//! `xc_cpuid_apply_policy`).
//!
//! Steps: the host featureset and the VM featureset (`platform/featureset`, else the
//! hypervisor's default for the guest type) → clear NX/PAE when the platform flags are 0,
//! expose ITSC to non-migratable guests on hosts that have it → clear dependent features →
//! start from Xen's default policy for the domain type, write the featureset words into
//! their CPUID leaves, apply
//! the topology rules (XenServer's, including its legacy `cores-per-socket`) → set the
//! domain's policy (CPUID leaves only, no MSRs, as libxenguest).
//!
//! Features whose prerequisites are cleared are cleared too (`clear_deep_deps`, with the
//! dependency table of Xen's `gen-cpuid.py`). Not reproduced: the restore-only clamps and
//! the Intel cache-leaf limit beyond 8 subleaves.

use xg_ctrl::{CpuPolicy, DomId, Hypervisor, SystemCpuPolicy};

use crate::error::SetupError;

/// Words in a Xen 4.17 featureset (`FEATURESET_NR_ENTRIES` / `FSCAPINTS`).
pub const FEATURESET_NR_ENTRIES: usize = 19;
/// `XEN_CPUID_NO_SUBLEAF`.
pub const NO_SUBLEAF: u32 = u32::MAX;
/// `MSR_ARCH_CAPABILITIES`, home of featureset words 16 and 17.
pub const MSR_ARCH_CAPS: u32 = 0x10A;

/// Feature bit numbers (`xen/include/public/arch-x86/cpufeatureset.h`): word * 32 + bit.
/// Only the features guest setup or the dependency table names.
#[allow(missing_docs, clippy::identity_op, clippy::erasing_op)]
pub mod feature {
    pub const FPU: u32 = 0 * 32 + 0;
    pub const PSE: u32 = 0 * 32 + 3;
    pub const TSC: u32 = 0 * 32 + 4;
    pub const PAE: u32 = 0 * 32 + 6;
    pub const APIC: u32 = 0 * 32 + 9;
    pub const PSE36: u32 = 0 * 32 + 17;
    pub const MMX: u32 = 0 * 32 + 23;
    pub const FXSR: u32 = 0 * 32 + 24;
    pub const SSE: u32 = 0 * 32 + 25;
    pub const SSE2: u32 = 0 * 32 + 26;
    pub const HTT: u32 = 0 * 32 + 28;
    pub const SSE3: u32 = 1 * 32 + 0;
    pub const PCLMULQDQ: u32 = 1 * 32 + 1;
    pub const VMX: u32 = 1 * 32 + 5;
    pub const SSSE3: u32 = 1 * 32 + 9;
    pub const FMA: u32 = 1 * 32 + 12;
    pub const CX16: u32 = 1 * 32 + 13;
    pub const PCID: u32 = 1 * 32 + 17;
    pub const SSE4_1: u32 = 1 * 32 + 19;
    pub const SSE4_2: u32 = 1 * 32 + 20;
    pub const X2APIC: u32 = 1 * 32 + 21;
    pub const TSC_DEADLINE: u32 = 1 * 32 + 24;
    pub const AESNI: u32 = 1 * 32 + 25;
    pub const XSAVE: u32 = 1 * 32 + 26;
    pub const AVX: u32 = 1 * 32 + 28;
    pub const F16C: u32 = 1 * 32 + 29;
    pub const NX: u32 = 2 * 32 + 20;
    pub const MMXEXT: u32 = 2 * 32 + 22;
    pub const FFXSR: u32 = 2 * 32 + 25;
    pub const PAGE1GB: u32 = 2 * 32 + 26;
    pub const RDTSCP: u32 = 2 * 32 + 27;
    pub const LM: u32 = 2 * 32 + 29;
    pub const _3DNOWEXT: u32 = 2 * 32 + 30;
    pub const _3DNOW: u32 = 2 * 32 + 31;
    pub const LAHF_LM: u32 = 3 * 32 + 0;
    pub const CMP_LEGACY: u32 = 3 * 32 + 1;
    pub const SVM: u32 = 3 * 32 + 2;
    pub const EXTAPIC: u32 = 3 * 32 + 3;
    pub const SSE4A: u32 = 3 * 32 + 6;
    pub const MISALIGNSSE: u32 = 3 * 32 + 7;
    pub const XOP: u32 = 3 * 32 + 11;
    pub const LWP: u32 = 3 * 32 + 15;
    pub const FMA4: u32 = 3 * 32 + 16;
    pub const XSAVEOPT: u32 = 4 * 32 + 0;
    pub const XSAVEC: u32 = 4 * 32 + 1;
    pub const XGETBV1: u32 = 4 * 32 + 2;
    pub const XSAVES: u32 = 4 * 32 + 3;
    pub const TSC_ADJUST: u32 = 5 * 32 + 1;
    pub const AVX2: u32 = 5 * 32 + 5;
    pub const RTM: u32 = 5 * 32 + 11;
    pub const MPX: u32 = 5 * 32 + 14;
    pub const AVX512F: u32 = 5 * 32 + 16;
    pub const AVX512DQ: u32 = 5 * 32 + 17;
    pub const SMAP: u32 = 5 * 32 + 20;
    pub const AVX512_IFMA: u32 = 5 * 32 + 21;
    pub const AVX512PF: u32 = 5 * 32 + 26;
    pub const AVX512ER: u32 = 5 * 32 + 27;
    pub const AVX512CD: u32 = 5 * 32 + 28;
    pub const SHA: u32 = 5 * 32 + 29;
    pub const AVX512BW: u32 = 5 * 32 + 30;
    pub const AVX512VL: u32 = 5 * 32 + 31;
    pub const AVX512_VBMI: u32 = 6 * 32 + 1;
    pub const PKU: u32 = 6 * 32 + 3;
    pub const AVX512_VBMI2: u32 = 6 * 32 + 6;
    pub const GFNI: u32 = 6 * 32 + 8;
    pub const VAES: u32 = 6 * 32 + 9;
    pub const VPCLMULQDQ: u32 = 6 * 32 + 10;
    pub const AVX512_VNNI: u32 = 6 * 32 + 11;
    pub const AVX512_BITALG: u32 = 6 * 32 + 12;
    pub const AVX512_VPOPCNTDQ: u32 = 6 * 32 + 14;
    pub const ITSC: u32 = 7 * 32 + 8;
    pub const RSTR_FP_ERR_PTRS: u32 = 8 * 32 + 2;
    pub const IBPB: u32 = 8 * 32 + 12;
    pub const IBRS: u32 = 8 * 32 + 14;
    pub const AMD_STIBP: u32 = 8 * 32 + 15;
    pub const IBRS_ALWAYS: u32 = 8 * 32 + 16;
    pub const STIBP_ALWAYS: u32 = 8 * 32 + 17;
    pub const IBRS_FAST: u32 = 8 * 32 + 18;
    pub const IBRS_SAME_MODE: u32 = 8 * 32 + 19;
    pub const NO_LMSL: u32 = 8 * 32 + 20;
    pub const AMD_SSBD: u32 = 8 * 32 + 24;
    pub const PSFD: u32 = 8 * 32 + 28;
    pub const IBPB_RET: u32 = 8 * 32 + 30;
    pub const AVX512_4VNNIW: u32 = 9 * 32 + 2;
    pub const AVX512_4FMAPS: u32 = 9 * 32 + 3;
    pub const AVX512_VP2INTERSECT: u32 = 9 * 32 + 8;
    pub const TSXLDTRK: u32 = 9 * 32 + 16;
    pub const AVX512_FP16: u32 = 9 * 32 + 23;
    pub const IBRSB: u32 = 9 * 32 + 26;
    pub const STIBP: u32 = 9 * 32 + 27;
    pub const ARCH_CAPS: u32 = 9 * 32 + 29;
    pub const SSBD: u32 = 9 * 32 + 31;
    pub const AVX_VNNI: u32 = 10 * 32 + 4;
    pub const AVX512_BF16: u32 = 10 * 32 + 5;
    pub const SBPB: u32 = 11 * 32 + 27;
    pub const IBPB_BRTYPE: u32 = 11 * 32 + 28;
    pub const INTEL_PSFD: u32 = 13 * 32 + 0;
    pub const IPRED_CTRL: u32 = 13 * 32 + 1;
    pub const RRSBA_CTRL: u32 = 13 * 32 + 2;
    pub const BHI_CTRL: u32 = 13 * 32 + 4;
    pub const RDCL_NO: u32 = 16 * 32 + 0;
    pub const EIBRS: u32 = 16 * 32 + 1;
    pub const RRSBA: u32 = 16 * 32 + 19;
}

/// Direct dependencies between features (the `deps` table of Xen 4.17's
/// `xen/tools/gen-cpuid.py`): a feature in the key is a prerequisite of each in the
/// value. `ARCH_CAPS` → all 64 bits of `MSR_ARCH_CAPS` is handled in [`deep_deps`].
const DEPS: &[(u32, &[u32])] = {
    use feature::*;
    &[
        (FPU, &[MMX, RSTR_FP_ERR_PTRS]),
        (PSE, &[PSE36]),
        (PAE, &[LM, NX]),
        (TSC, &[TSC_DEADLINE, RDTSCP, TSC_ADJUST, ITSC]),
        (APIC, &[X2APIC, TSC_DEADLINE, EXTAPIC]),
        (MMX, &[MMXEXT, _3DNOW]),
        (FXSR, &[FFXSR, SSE]),
        (SSE, &[SSE2, MISALIGNSSE]),
        (SSE2, &[SSE3, LM, AESNI, PCLMULQDQ, SHA, GFNI]),
        (SSE3, &[SSSE3, SSE4A]),
        (SSSE3, &[SSE4_1]),
        (SSE4_1, &[SSE4_2]),
        (
            XSAVE,
            &[XSAVEOPT, XSAVEC, XGETBV1, XSAVES, AVX, MPX, PKU, LWP],
        ),
        (AVX, &[FMA, FMA4, F16C, AVX2, XOP]),
        (NX, &[SMAP]),
        (LM, &[CX16, PCID, LAHF_LM, PAGE1GB, PKU, NO_LMSL]),
        (_3DNOW, &[_3DNOWEXT]),
        (AVX2, &[AVX512F, VAES, VPCLMULQDQ, AVX_VNNI]),
        (
            AVX512F,
            &[
                AVX512DQ,
                AVX512_IFMA,
                AVX512PF,
                AVX512ER,
                AVX512CD,
                AVX512BW,
                AVX512VL,
                AVX512_4VNNIW,
                AVX512_4FMAPS,
                AVX512_VNNI,
                AVX512_VPOPCNTDQ,
                AVX512_VP2INTERSECT,
            ],
        ),
        (
            AVX512BW,
            &[
                AVX512_VBMI,
                AVX512_VBMI2,
                AVX512_BITALG,
                AVX512_BF16,
                AVX512_FP16,
            ],
        ),
        (PCLMULQDQ, &[VPCLMULQDQ]),
        (AESNI, &[VAES]),
        (
            IBRSB,
            &[
                STIBP, SSBD, INTEL_PSFD, EIBRS, IPRED_CTRL, RRSBA_CTRL, BHI_CTRL,
            ],
        ),
        (
            IBRS,
            &[
                AMD_STIBP,
                AMD_SSBD,
                PSFD,
                IBRS_ALWAYS,
                IBRS_FAST,
                IBRS_SAME_MODE,
            ],
        ),
        (IBPB, &[IBPB_RET, SBPB, IBPB_BRTYPE]),
        (AMD_STIBP, &[STIBP_ALWAYS]),
        (RTM, &[TSXLDTRK]),
        (EIBRS, &[RRSBA]),
    ]
};

/// A CPUID output register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reg {
    /// EAX.
    A,
    /// EBX.
    B,
    /// ECX.
    C,
    /// EDX.
    D,
}

/// Where a featureset word lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WordHome {
    /// A CPUID register.
    Cpuid {
        /// Leaf.
        leaf: u32,
        /// Subleaf, [`NO_SUBLEAF`] for leaves without.
        subleaf: u32,
        /// Register.
        reg: Reg,
    },
    /// Half of an MSR.
    Msr {
        /// MSR index.
        index: u32,
        /// Upper 32 bits?
        high: bool,
    },
}

const fn cpuid(leaf: u32, subleaf: u32, reg: Reg) -> WordHome {
    WordHome::Cpuid { leaf, subleaf, reg }
}

/// Featureset word i ↔ its home (the `FEATURESET_*` defines of `cpu-policy.h`).
pub const FEATURESET_WORDS: [WordHome; FEATURESET_NR_ENTRIES] = [
    cpuid(0x1, NO_SUBLEAF, Reg::D),         // 0: 1d
    cpuid(0x1, NO_SUBLEAF, Reg::C),         // 1: 1c
    cpuid(0x8000_0001, NO_SUBLEAF, Reg::D), // 2: e1d
    cpuid(0x8000_0001, NO_SUBLEAF, Reg::C), // 3: e1c
    cpuid(0xD, 1, Reg::A),                  // 4: Da1
    cpuid(0x7, 0, Reg::B),                  // 5: 7b0
    cpuid(0x7, 0, Reg::C),                  // 6: 7c0
    cpuid(0x8000_0007, NO_SUBLEAF, Reg::D), // 7: e7d
    cpuid(0x8000_0008, NO_SUBLEAF, Reg::B), // 8: e8b
    cpuid(0x7, 0, Reg::D),                  // 9: 7d0
    cpuid(0x7, 1, Reg::A),                  // 10: 7a1
    cpuid(0x8000_0021, NO_SUBLEAF, Reg::A), // 11: e21a
    cpuid(0x7, 1, Reg::B),                  // 12: 7b1
    cpuid(0x7, 2, Reg::D),                  // 13: 7d2
    cpuid(0x7, 1, Reg::C),                  // 14: 7c1
    cpuid(0x7, 1, Reg::D),                  // 15: 7d1
    WordHome::Msr {
        index: MSR_ARCH_CAPS,
        high: false,
    }, // 16: m10Al
    WordHome::Msr {
        index: MSR_ARCH_CAPS,
        high: true,
    }, // 17: m10Ah
    cpuid(0x8000_0021, NO_SUBLEAF, Reg::C), // 18: e21c
];

/// Errors of `platform/featureset`, with xenguest's messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeaturesetError {
    /// A word that is not a 32-bit hex number followed by `-`, `:` or the end.
    #[error("Bad '{rest}' in featureset")]
    Bad {
        /// The text from the bad word on.
        rest: String,
    },
    /// Non-zero words beyond what this host knows.
    #[error("Requested featureset '{featureset}' truncated on this host")]
    Truncated {
        /// The whole featureset string.
        featureset: String,
    },
}

/// `strtoul(s + start, &end, 16)`: returns the value (`None` on `ERANGE`) and the end
/// index; `end == start` when no digits were found.
fn strtoul_hex(b: &[u8], start: usize) -> (Option<u64>, usize) {
    let mut i = start;
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r') {
        i += 1;
    }
    let mut negative = false;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        negative = b[i] == b'-';
        i += 1;
    }
    if b.get(i) == Some(&b'0')
        && matches!(b.get(i + 1), Some(b'x' | b'X'))
        && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
    {
        i += 2;
    }
    let digits = i;
    let mut value: Option<u64> = Some(0);
    while let Some(d) = b.get(i).and_then(|c| char::from(*c).to_digit(16)) {
        value = value
            .and_then(|v| v.checked_mul(16))
            .and_then(|v| v.checked_add(u64::from(d)));
        i += 1;
    }
    if i == digits {
        return (Some(0), start);
    }
    (
        value.map(|v| if negative { v.wrapping_neg() } else { v }),
        i,
    )
}

/// Parses `platform/featureset` into `nr` words (`get_vm_featureset`): hex words separated
/// by `-` or `:`; missing trailing words are 0; words beyond `nr` must be 0.
pub fn parse_featureset(s: &str, nr: usize) -> Result<Vec<u32>, FeaturesetError> {
    let b = s.as_bytes();
    let mut out = vec![0u32; nr];
    let mut i = 0usize;
    let mut pos = 0usize;
    while pos < b.len() {
        let (value, end) = strtoul_hex(b, pos);
        let word = value.and_then(|v| u32::try_from(v).ok());
        let follows_ok = end == b.len() || b[end] == b'-' || b[end] == b':';
        let Some(word) = word.filter(|_| end != pos && follows_ok) else {
            return Err(FeaturesetError::Bad {
                rest: s.get(pos..).unwrap_or_default().to_owned(),
            });
        };
        if i < nr {
            out[i] = word;
            i += 1;
        } else if word != 0 {
            return Err(FeaturesetError::Truncated {
                featureset: s.to_owned(),
            });
        }
        pos = end;
        if pos < b.len() && (b[pos] == b'-' || b[pos] == b':') {
            pos += 1;
        }
    }
    Ok(out)
}

/// Is feature `bit` set?
pub fn test_bit(fs: &[u32], bit: u32) -> bool {
    let word = usize::try_from(bit / 32).unwrap_or(usize::MAX);
    fs.get(word).is_some_and(|w| w & (1 << (bit % 32)) != 0)
}

/// Sets feature `bit` (ignored beyond the set's length).
pub fn set_bit(fs: &mut [u32], bit: u32) {
    if let Some(w) = fs.get_mut(usize::try_from(bit / 32).unwrap_or(usize::MAX)) {
        *w |= 1 << (bit % 32);
    }
}

/// Clears feature `bit`.
pub fn clear_bit(fs: &mut [u32], bit: u32) {
    if let Some(w) = fs.get_mut(usize::try_from(bit / 32).unwrap_or(usize::MAX)) {
        *w &= !(1 << (bit % 32));
    }
}

fn reg_of(l: &xg_ctrl::CpuidLeaf, reg: Reg) -> u32 {
    match reg {
        Reg::A => l.a,
        Reg::B => l.b,
        Reg::C => l.c,
        Reg::D => l.d,
    }
}

fn reg_mut(l: &mut xg_ctrl::CpuidLeaf, reg: Reg) -> &mut u32 {
    match reg {
        Reg::A => &mut l.a,
        Reg::B => &mut l.b,
        Reg::C => &mut l.c,
        Reg::D => &mut l.d,
    }
}

fn find_leaf(p: &CpuPolicy, leaf: u32, subleaf: u32) -> Option<&xg_ctrl::CpuidLeaf> {
    p.leaves
        .iter()
        .find(|l| l.leaf == leaf && l.subleaf == subleaf)
}

fn find_leaf_mut(p: &mut CpuPolicy, leaf: u32, subleaf: u32) -> Option<&mut xg_ctrl::CpuidLeaf> {
    p.leaves
        .iter_mut()
        .find(|l| l.leaf == leaf && l.subleaf == subleaf)
}

/// The featureset of a policy (`x86_cpu_policy_to_featureset`); absent leaves give 0.
pub fn policy_to_featureset(p: &CpuPolicy) -> Vec<u32> {
    FEATURESET_WORDS
        .iter()
        .map(|home| match *home {
            WordHome::Cpuid { leaf, subleaf, reg } => {
                find_leaf(p, leaf, subleaf).map_or(0, |l| reg_of(l, reg))
            }
            WordHome::Msr { index, high } => {
                p.msrs.iter().find(|m| m.idx == index).map_or(0, |m| {
                    let half = if high {
                        m.val >> 32
                    } else {
                        m.val & 0xFFFF_FFFF
                    };
                    u32::try_from(half).unwrap_or(0)
                })
            }
        })
        .collect()
}

/// All features that depend on `bit`, directly or not (gen-cpuid.py's `deep_deps`).
pub fn deep_deps(bit: u32) -> Vec<u32> {
    let mut seen: Vec<u32> = Vec::new();
    let mut todo: Vec<u32> = direct_deps(bit);
    while let Some(f) = todo.pop() {
        if !seen.contains(&f) {
            seen.push(f);
            todo.extend(direct_deps(f));
        }
    }
    seen.sort_unstable();
    seen
}

fn direct_deps(bit: u32) -> Vec<u32> {
    if bit == feature::ARCH_CAPS {
        return (feature::RDCL_NO..feature::RDCL_NO + 64).collect();
    }
    DEPS.iter()
        .filter(|(k, _)| *k == bit)
        .flat_map(|(_, v)| v.iter().copied())
        .collect()
}

fn has_deep_deps(bit: u32) -> bool {
    bit == feature::ARCH_CAPS || DEPS.iter().any(|(k, _)| *k == bit)
}

/// Clears every feature whose prerequisite is clear (`clear_deep_deps`), so a guest never
/// sees e.g. long mode without PAE.
pub fn clear_deep_deps(fs: &mut [u32]) {
    let nr_bits = u32::try_from(fs.len().min(FEATURESET_NR_ENTRIES) * 32).unwrap_or(0);
    let disabled: Vec<u32> = (0..nr_bits)
        .filter(|b| has_deep_deps(*b) && !test_bit(fs, *b))
        .collect();
    for b in disabled {
        for d in deep_deps(b) {
            clear_bit(fs, d);
        }
    }
}

/// Inputs of `construct_cpuid_policy` (from `get_flags` and Xenstore).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuidInputs {
    /// `platform/featureset`, if present.
    pub featureset: Option<String>,
    /// The `hvm` argument: default featureset of HVM (true) or PV (false) guests.
    /// xenguest passes true for `hvm_build`, false for `pvh_build` and PV.
    pub hvm_default: bool,
    /// `platform/nx` non-zero.
    pub nx: bool,
    /// `platform/pae` non-zero.
    pub pae: bool,
    /// `platform/nomigrate` non-zero (forced by nested virt).
    pub nomigrate: bool,
    /// `platform/nested-virt` non-zero.
    pub nested_virt: bool,
    /// `platform/cores-per-socket` (0 = not set).
    pub cores_per_socket: u32,
}

/// The VM featureset: parsed or the default, then NX/PAE/ITSC rules. Pure.
pub fn vm_featureset(
    inputs: &CpuidInputs,
    host: &[u32],
    default: &[u32],
) -> Result<Vec<u32>, FeaturesetError> {
    let nr = host.len();
    let mut fs = match &inputs.featureset {
        None => {
            log::info!("No featureset provided - using host maximum");
            let mut d = default.to_vec();
            d.resize(nr, 0);
            d
        }
        Some(s) => {
            log::info!("Parsing '{s}' as featureset");
            parse_featureset(s, nr)?
        }
    };
    if !inputs.nx {
        clear_bit(&mut fs, feature::NX);
    }
    if !inputs.pae {
        clear_bit(&mut fs, feature::PAE);
    }
    if inputs.nomigrate && test_bit(host, feature::ITSC) {
        set_bit(&mut fs, feature::ITSC);
    }
    Ok(fs)
}

/// CPU vendor, from leaf 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    /// GenuineIntel.
    Intel,
    /// AuthenticAMD.
    Amd,
    /// HygonGenuine.
    Hygon,
    /// Anything else.
    Other,
}

/// The vendor of a policy (`x86_cpuid_lookup_vendor`).
pub fn vendor(p: &CpuPolicy) -> Vendor {
    match find_leaf(p, 0, NO_SUBLEAF).map(|l| (l.b, l.c, l.d)) {
        Some((0x756e_6547, 0x6c65_746e, 0x4965_6e69)) => Vendor::Intel,
        Some((0x6874_7541, 0x444d_4163, 0x6974_6e65)) => Vendor::Amd,
        Some((0x6f67_7948, 0x656e_6975, 0x6e65_476e)) => Vendor::Hygon,
        _ => Vendor::Other,
    }
}

fn set_field(v: &mut u32, shift: u32, width: u32, value: u32) {
    let mask = ((1u64 << width) - 1) << shift;
    let mask = u32::try_from(mask).unwrap_or(u32::MAX);
    *v = (*v & !mask) | ((value << shift) & mask);
}

fn set_feature_bit(p: &mut CpuPolicy, bit: u32, on: bool) {
    let word = usize::try_from(bit / 32).unwrap_or(usize::MAX);
    if let Some(WordHome::Cpuid { leaf, subleaf, reg }) = FEATURESET_WORDS.get(word).copied() {
        if let Some(l) = find_leaf_mut(p, leaf, subleaf) {
            let r = reg_mut(l, reg);
            if on {
                *r |= 1 << (bit % 32);
            } else {
                *r &= !(1 << (bit % 32));
            }
        }
    }
}

/// The domain policy: `base` (Xen's default for the domain type) with the featureset
/// written into its CPUID leaves and the topology rules applied. MSRs are dropped (the
/// policy is set with CPUID leaves only). Pure.
pub fn apply_featureset(
    base: &CpuPolicy,
    fs: &[u32],
    host_fs: &[u32],
    domain_is_hvm: bool,
    cores_per_socket: u32,
) -> CpuPolicy {
    let mut p = CpuPolicy {
        leaves: base.leaves.clone(),
        msrs: Vec::new(),
    };
    // Words beyond what we know must have been zero (checked by the parser).
    let mut fs = fs
        .iter()
        .copied()
        .take(FEATURESET_NR_ENTRIES)
        .collect::<Vec<_>>();
    clear_deep_deps(&mut fs);
    for (home, word) in FEATURESET_WORDS.iter().zip(fs.iter().copied()) {
        if let WordHome::Cpuid { leaf, subleaf, reg } = *home {
            // Leaves beyond the policy's max leaf are not serialised by Xen either.
            if let Some(l) = find_leaf_mut(&mut p, leaf, subleaf) {
                *reg_mut(l, reg) = word;
            }
        }
    }
    let vendor = vendor(base);
    if !domain_is_hvm {
        // PV guests see the real topology (no CPUID faulting).
        set_feature_bit(&mut p, feature::HTT, test_bit(host_fs, feature::HTT));
        set_feature_bit(
            &mut p,
            feature::CMP_LEGACY,
            test_bit(host_fs, feature::CMP_LEGACY),
        );
        return p;
    }
    // XenServer's HVM topology: no HTT, no CMP_LEGACY, Intel cache leaves without
    // core/thread counts.
    set_feature_bit(&mut p, feature::HTT, false);
    set_feature_bit(&mut p, feature::CMP_LEGACY, false);
    if vendor == Vendor::Intel {
        for_each_cache_leaf(&mut p, |eax| {
            set_field(eax, 26, 6, 0);
            set_field(eax, 14, 12, 0);
        });
    }
    if cores_per_socket > 0 {
        let lppp = cores_per_socket.wrapping_mul(2);
        set_feature_bit(&mut p, feature::HTT, true);
        if let Some(l) = find_leaf_mut(&mut p, 1, NO_SUBLEAF) {
            set_field(&mut l.b, 16, 8, lppp & 0xFF);
        }
        match vendor {
            Vendor::Intel => for_each_cache_leaf(&mut p, |eax| {
                set_field(eax, 26, 6, lppp.wrapping_sub(1) & 0x3F);
                set_field(eax, 14, 12, 0);
            }),
            Vendor::Amd | Vendor::Hygon => {
                set_feature_bit(&mut p, feature::CMP_LEGACY, true);
                if let Some(l) = find_leaf_mut(&mut p, 0x8000_0008, NO_SUBLEAF) {
                    set_field(&mut l.c, 12, 4, 0);
                    set_field(&mut l.c, 0, 8, lppp.wrapping_sub(1) & 0xFF);
                }
            }
            Vendor::Other => {}
        }
    }
    p
}

/// Leaf 4 subleaves in order while their cache type (EAX[4:0]) is non-zero.
fn for_each_cache_leaf(p: &mut CpuPolicy, mut f: impl FnMut(&mut u32)) {
    for sub in 0u32..8 {
        match find_leaf_mut(p, 4, sub) {
            Some(l) if l.a & 0x1F != 0 => f(&mut l.a),
            _ => break,
        }
    }
}

/// `construct_cpuid_policy` + `xc_cpuid_apply_policy`: computes and sets the domain's
/// policy; returns it.
pub fn construct_cpuid_policy<H: Hypervisor + ?Sized>(
    hv: &H,
    domid: DomId,
    inputs: &CpuidInputs,
) -> Result<CpuPolicy, SetupError> {
    let sys = |which, step| {
        hv.system_cpu_policy(which)
            .map_err(|source| SetupError::Hypervisor { step, source })
    };
    let host_fs = policy_to_featureset(&sys(SystemCpuPolicy::Host, "Reading the host featureset")?);
    let default_fs = if inputs.featureset.is_none() {
        let which = if inputs.hvm_default {
            SystemCpuPolicy::HvmDefault
        } else {
            SystemCpuPolicy::PvDefault
        };
        policy_to_featureset(&sys(which, "Reading the default featureset")?)
    } else {
        Vec::new()
    };
    let fs = vm_featureset(inputs, &host_fs, &default_fs)?;

    let info = hv
        .domain_info(domid)
        .map_err(|source| SetupError::Hypervisor {
            step: "Reading domain info",
            source,
        })?;
    let base = sys(
        if info.is_hvm() {
            SystemCpuPolicy::HvmDefault
        } else {
            SystemCpuPolicy::PvDefault
        },
        "Reading the default CPU policy",
    )?;
    let policy = apply_featureset(&base, &fs, &host_fs, info.is_hvm(), inputs.cores_per_socket);
    hv.set_domain_cpu_policy(domid, &policy)
        .map_err(|source| SetupError::Hypervisor {
            step: "Setting the domain CPU policy",
            source,
        })?;
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use xg_ctrl::CpuidLeaf;

    #[test]
    fn parse_table() {
        let ok: &[(&str, &[u32])] = &[
            ("", &[0, 0, 0]),
            ("1fcbfbff", &[0x1fcb_fbff, 0, 0]),
            ("1-2:3", &[1, 2, 3]),
            ("ffffffff-0", &[u32::MAX, 0, 0]),
            ("0x10-20", &[0x10, 0x20, 0]),
            (" a- b", &[0xa, 0xb, 0]),
            ("1-2-3-0-0", &[1, 2, 3]),
            ("1-", &[1, 0, 0]),
            ("-0", &[0, 0, 0]),
        ];
        for (s, want) in ok {
            assert_eq!(parse_featureset(s, 3).unwrap(), *want, "{s:?}");
        }
        let bad: &[(&str, &str)] = &[
            ("xyz", "xyz"),
            ("1-xyz", "xyz"),
            ("100000000", "100000000"),
            ("1-2g", "2g"),
            ("1--2", "-2"),
            ("1,2", "1,2"),
            ("0x", "0x"),
            ("ffffffffffffffffff", "ffffffffffffffffff"),
        ];
        for (s, rest) in bad {
            assert_eq!(
                parse_featureset(s, 3),
                Err(FeaturesetError::Bad {
                    rest: (*rest).into()
                }),
                "{s:?}"
            );
        }
        assert_eq!(
            parse_featureset("1-2-3-4", 3).unwrap_err().to_string(),
            "Requested featureset '1-2-3-4' truncated on this host"
        );
        assert_eq!(
            parse_featureset("1-zz", 3).unwrap_err().to_string(),
            "Bad 'zz' in featureset"
        );
    }

    #[test]
    fn deep_dependencies() {
        use feature::*;
        let pae = deep_deps(PAE);
        for f in [LM, NX, CX16, PCID, LAHF_LM, PAGE1GB, PKU, NO_LMSL, SMAP] {
            assert!(pae.contains(&f), "{f}");
        }
        assert!(!pae.contains(&SSE2));
        assert_eq!(deep_deps(ARCH_CAPS).len(), 64);
        assert!(
            deep_deps(FPU).contains(&_3DNOWEXT),
            "FPU -> MMX -> 3DNOW -> 3DNOWEXT"
        );
        assert!(deep_deps(HTT).is_empty());
        // Every key's closure is finite and excludes the key itself (no cycles).
        for (k, _) in DEPS {
            assert!(!deep_deps(*k).contains(k));
        }

        let mut fs = vec![u32::MAX; FEATURESET_NR_ENTRIES];
        clear_bit(&mut fs, PAE);
        clear_bit(&mut fs, ARCH_CAPS);
        clear_deep_deps(&mut fs);
        assert!(!test_bit(&fs, LM) && !test_bit(&fs, NX) && !test_bit(&fs, SMAP));
        assert!(test_bit(&fs, SSE2) && test_bit(&fs, AVX512F));
        assert_eq!((fs[16], fs[17]), (0, 0), "MSR_ARCH_CAPS words");
    }

    #[test]
    fn vm_featureset_rules() {
        let mut host = vec![0u32; FEATURESET_NR_ENTRIES];
        set_bit(&mut host, feature::ITSC);
        let mut default = vec![0u32; FEATURESET_NR_ENTRIES];
        set_bit(&mut default, feature::NX);
        set_bit(&mut default, feature::PAE);
        let mut inputs = CpuidInputs {
            nx: false,
            pae: true,
            nomigrate: true,
            ..Default::default()
        };
        let fs = vm_featureset(&inputs, &host, &default).unwrap();
        assert!(!test_bit(&fs, feature::NX));
        assert!(test_bit(&fs, feature::PAE));
        assert!(test_bit(&fs, feature::ITSC));
        inputs.nomigrate = false;
        inputs.pae = false;
        let fs = vm_featureset(&inputs, &host, &default).unwrap();
        assert!(!test_bit(&fs, feature::ITSC));
        assert!(!test_bit(&fs, feature::PAE));
        // Without ITSC on the host, nomigrate does not add it.
        inputs.nomigrate = true;
        let fs = vm_featureset(&inputs, &[0; FEATURESET_NR_ENTRIES], &default).unwrap();
        assert!(!test_bit(&fs, feature::ITSC));
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

    fn intel_policy() -> CpuPolicy {
        CpuPolicy {
            leaves: vec![
                leaf(0, NO_SUBLEAF, 0xd, 0x756e_6547, 0x6c65_746e, 0x4965_6e69),
                leaf(
                    1,
                    NO_SUBLEAF,
                    0x806ec,
                    0x0001_0800,
                    0xffff_ffff,
                    0xffff_ffff,
                ),
                leaf(4, 0, 0x1c00_4121, 0, 0, 0),
                leaf(4, 1, 0x1c00_4122, 0, 0, 0),
                leaf(4, 2, 0, 0, 0, 0),
                leaf(7, 0, 0, 0x1234, 0, 0),
                leaf(0x8000_0001, NO_SUBLEAF, 0, 0, 0, 0),
            ],
            msrs: vec![xg_ctrl::MsrEntry {
                idx: MSR_ARCH_CAPS,
                flags: 0,
                val: 0x1_0000_0002,
            }],
        }
    }

    #[test]
    fn featureset_roundtrip_and_msr_words() {
        let fs = policy_to_featureset(&intel_policy());
        assert_eq!(fs.len(), FEATURESET_NR_ENTRIES);
        assert_eq!(fs[0], 0xffff_ffff);
        assert_eq!(fs[5], 0x1234);
        assert_eq!((fs[16], fs[17]), (2, 1));
        assert_eq!(fs[13], 0, "absent leaf 7:2");
    }

    #[test]
    fn hvm_topology_and_cores_per_socket() {
        let base = intel_policy();
        let mut fs = vec![0u32; FEATURESET_NR_ENTRIES];
        fs[0] = 0xffff_ffff;
        fs[5] = 0x5;
        let p = apply_featureset(&base, &fs, &fs, true, 0);
        assert!(p.msrs.is_empty());
        let l1 = find_leaf(&p, 1, NO_SUBLEAF).unwrap();
        assert_eq!(l1.d & (1 << 28), 0, "HTT cleared");
        assert_eq!(find_leaf(&p, 7, 0).unwrap().b, 0x5);
        assert_eq!(
            find_leaf(&p, 4, 0).unwrap().a,
            0x121,
            "cores/threads cleared"
        );

        let p = apply_featureset(&base, &fs, &fs, true, 4);
        let l1 = find_leaf(&p, 1, NO_SUBLEAF).unwrap();
        assert_ne!(l1.d & (1 << 28), 0, "HTT set for cores-per-socket");
        assert_eq!((l1.b >> 16) & 0xFF, 8);
        assert_eq!(find_leaf(&p, 4, 1).unwrap().a >> 26, 7);
        assert_eq!(
            find_leaf(&p, 4, 2).unwrap().a,
            0,
            "past the last cache leaf"
        );
    }

    #[test]
    fn amd_cores_per_socket() {
        let mut base = CpuPolicy {
            leaves: vec![
                leaf(0, NO_SUBLEAF, 0xd, 0x6874_7541, 0x444d_4163, 0x6974_6e65),
                leaf(1, NO_SUBLEAF, 0, 0, 0, 0),
                leaf(0x8000_0001, NO_SUBLEAF, 0, 0, 0, 0),
                leaf(0x8000_0008, NO_SUBLEAF, 0, 0, 0x7007, 0),
            ],
            msrs: vec![],
        };
        let fs = vec![0u32; FEATURESET_NR_ENTRIES];
        let p = apply_featureset(&base, &fs, &fs, true, 3);
        assert_eq!(find_leaf(&p, 0x8000_0008, NO_SUBLEAF).unwrap().c, 0x0005);
        assert_ne!(find_leaf(&p, 0x8000_0001, NO_SUBLEAF).unwrap().c & 2, 0);
        // PV: host HTT/CMP_LEGACY pass through.
        base.leaves[1].d = 0;
        let mut host = fs.clone();
        set_bit(&mut host, feature::HTT);
        let p = apply_featureset(&base, &fs, &host, false, 0);
        assert_ne!(find_leaf(&p, 1, NO_SUBLEAF).unwrap().d & (1 << 28), 0);
    }
}
