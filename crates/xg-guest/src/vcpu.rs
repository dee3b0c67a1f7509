//! The boot vCPU's initial state (`vcpu_hvm` in `xg_dom_x86.c`): a partial HVM context of
//! the fetched HEADER record, a CPU record starting the firmware in flat 32-bit protected
//! mode at its entry with `rbx` = start info, and the END record.
//!
//! Record layouts are those of `xen/include/public/arch-x86/hvm/save.h` (Xen 4.17, x86_64
//! tools ABI); the offsets below were measured with `offsetof` against Debian's headers.

use xg_ctrl::{DomId, Hypervisor};

use crate::error::SetupError;

/// `HVM_SAVE_CODE(END)`.
pub const TYPE_END: u16 = 0;
/// `HVM_SAVE_CODE(HEADER)`.
pub const TYPE_HEADER: u16 = 1;
/// `HVM_SAVE_CODE(CPU)`.
pub const TYPE_CPU: u16 = 2;
/// `HVM_SAVE_CODE(MTRR)`.
pub const TYPE_MTRR: u16 = 14;
/// `sizeof(struct hvm_save_descriptor)`.
pub const DESCRIPTOR_SIZE: usize = 8;
/// `HVM_SAVE_LENGTH(HEADER)`.
pub const HEADER_LEN: usize = 24;
/// `HVM_SAVE_LENGTH(CPU)` (`struct hvm_hw_cpu`).
pub const CPU_LEN: usize = 1032;
/// `HVM_SAVE_LENGTH(MTRR)` (`struct hvm_hw_mtrr`).
pub const MTRR_LEN: usize = 240;

/// Field offsets in `struct hvm_hw_cpu`.
pub mod cpu_off {
    /// `rbx`.
    pub const RBX: usize = 520;
    /// `rip`.
    pub const RIP: usize = 640;
    /// `cr0`.
    pub const CR0: usize = 656;
    /// `dr6`.
    pub const DR6: usize = 720;
    /// `dr7`.
    pub const DR7: usize = 728;
    /// `cs_limit`.
    pub const CS_LIMIT: usize = 768;
    /// `ds_limit`.
    pub const DS_LIMIT: usize = 772;
    /// `es_limit`.
    pub const ES_LIMIT: usize = 776;
    /// `ss_limit`.
    pub const SS_LIMIT: usize = 788;
    /// `tr_limit`.
    pub const TR_LIMIT: usize = 792;
    /// `cs_base`.
    pub const CS_BASE: usize = 808;
    /// `ds_base`.
    pub const DS_BASE: usize = 816;
    /// `es_base`.
    pub const ES_BASE: usize = 824;
    /// `ss_base`.
    pub const SS_BASE: usize = 848;
    /// `tr_base`.
    pub const TR_BASE: usize = 856;
    /// `cs_arbytes`.
    pub const CS_ARBYTES: usize = 888;
    /// `ds_arbytes`.
    pub const DS_ARBYTES: usize = 892;
    /// `es_arbytes`.
    pub const ES_ARBYTES: usize = 896;
    /// `ss_arbytes`.
    pub const SS_ARBYTES: usize = 908;
    /// `tr_arbytes`.
    pub const TR_ARBYTES: usize = 912;
}

/// Offset of `msr_mtrr_def_type` in `struct hvm_hw_mtrr`.
pub const MTRR_DEF_TYPE_OFF: usize = 232;
/// `X86_CR0_PE | X86_CR0_ET`.
pub const CR0_PE_ET: u64 = 0x11;
/// `X86_DR6_DEFAULT`.
pub const DR6_DEFAULT: u64 = 0xFFFF_0FF0;
/// `X86_DR7_DEFAULT`.
pub const DR7_DEFAULT: u64 = 0x400;
/// `MTRR_TYPE_WRBACK | MTRR_DEF_TYPE_ENABLE`.
pub const MTRR_DEF_TYPE_WB_ENABLED: u64 = 6 | (1 << 11);

/// One record of an HVM context blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Type code.
    pub typecode: u16,
    /// Instance (vCPU number for per-vCPU records).
    pub instance: u16,
    /// Offset of the payload in the blob.
    pub offset: usize,
    /// Payload length.
    pub length: usize,
}

/// Splits a context blob into records up to and excluding END, checking every length.
pub fn records(blob: &[u8]) -> Result<Vec<Record>, SetupError> {
    let mut out = Vec::new();
    let mut at = 0usize;
    loop {
        let Some(d) = blob.get(at..at + DESCRIPTOR_SIZE) else {
            return Err(context_error(format!(
                "descriptor at {at:#x} beyond the blob"
            )));
        };
        let typecode = u16::from_le_bytes([d[0], d[1]]);
        let instance = u16::from_le_bytes([d[2], d[3]]);
        let length = usize::try_from(u32::from_le_bytes([d[4], d[5], d[6], d[7]]))
            .map_err(|_| context_error(format!("record length at {at:#x} too large")))?;
        if typecode == TYPE_END {
            return Ok(out);
        }
        let offset = at + DESCRIPTOR_SIZE;
        let end = offset
            .checked_add(length)
            .filter(|e| *e <= blob.len())
            .ok_or_else(|| {
                context_error(format!("record {typecode} at {at:#x} beyond the blob"))
            })?;
        out.push(Record {
            typecode,
            instance,
            offset,
            length,
        });
        at = end;
    }
}

fn context_error(detail: String) -> SetupError {
    SetupError::HvmContext { detail }
}

fn descriptor(typecode: u16, instance: u16, length: usize) -> [u8; DESCRIPTOR_SIZE] {
    let mut d = [0u8; DESCRIPTOR_SIZE];
    d[0..2].copy_from_slice(&typecode.to_le_bytes());
    d[2..4].copy_from_slice(&instance.to_le_bytes());
    d[4..8].copy_from_slice(&u32::try_from(length).unwrap_or(u32::MAX).to_le_bytes());
    d
}

/// The HEADER descriptor and record (first in every blob Xen returns).
fn header_bytes(blob: &[u8]) -> Result<&[u8], SetupError> {
    let recs = records(blob)?;
    match recs.first() {
        Some(r)
            if r.typecode == TYPE_HEADER
                && r.offset == DESCRIPTOR_SIZE
                && r.length == HEADER_LEN =>
        {
            Ok(&blob[..DESCRIPTOR_SIZE + HEADER_LEN])
        }
        _ => Err(context_error(
            "the blob does not start with a HEADER record".into(),
        )),
    }
}

/// The CPU record of the boot vCPU.
pub fn boot_cpu_record(entry: u64, start_info_paddr: u64) -> Vec<u8> {
    use cpu_off::*;
    let mut c = vec![0u8; CPU_LEN];
    let mut put64 = |o: usize, v: u64| c[o..o + 8].copy_from_slice(&v.to_le_bytes());
    for o in [CS_BASE, DS_BASE, ES_BASE, SS_BASE, TR_BASE] {
        put64(o, 0);
    }
    put64(CR0, CR0_PE_ET);
    put64(RIP, entry);
    put64(DR6, DR6_DEFAULT);
    put64(DR7, DR7_DEFAULT);
    put64(RBX, start_info_paddr);
    let mut put32 = |o: usize, v: u32| c[o..o + 4].copy_from_slice(&v.to_le_bytes());
    for o in [CS_LIMIT, DS_LIMIT, ES_LIMIT, SS_LIMIT] {
        put32(o, u32::MAX);
    }
    put32(TR_LIMIT, 0x67);
    put32(CS_ARBYTES, 0xC9B);
    put32(DS_ARBYTES, 0xC93);
    put32(ES_ARBYTES, 0xC93);
    put32(SS_ARBYTES, 0xC93);
    put32(TR_ARBYTES, 0x8B);
    c
}

/// The partial context for the boot vCPU: fetched HEADER, CPU record, END.
/// `start_info_paddr` 0 leaves `rbx` 0, as libxenguest does without a start-info segment.
pub fn build_bsp_context(
    full: &[u8],
    entry: u64,
    start_info_paddr: u64,
) -> Result<Vec<u8>, SetupError> {
    let mut out = header_bytes(full)?.to_vec();
    out.extend_from_slice(&descriptor(TYPE_CPU, 0, CPU_LEN));
    out.extend_from_slice(&boot_cpu_record(entry, start_info_paddr));
    out.extend_from_slice(&descriptor(TYPE_END, 0, 0));
    Ok(out)
}

/// The MTRR context for vCPU `instance` of a guest without a device model (PVH): fetched
/// HEADER, the fetched MTRR record of vCPU 0 with write-back default type enabled, END.
pub fn build_mtrr_context(full: &[u8], instance: u16) -> Result<Vec<u8>, SetupError> {
    let header = header_bytes(full)?;
    let rec = records(full)?
        .into_iter()
        .find(|r| r.typecode == TYPE_MTRR && r.instance == 0)
        .ok_or_else(|| context_error("no MTRR record".into()))?;
    if rec.length != MTRR_LEN {
        return Err(context_error(format!(
            "MTRR record of {} bytes",
            rec.length
        )));
    }
    let mut mtrr = full[rec.offset..rec.offset + MTRR_LEN].to_vec();
    mtrr[MTRR_DEF_TYPE_OFF..MTRR_DEF_TYPE_OFF + 8]
        .copy_from_slice(&MTRR_DEF_TYPE_WB_ENABLED.to_le_bytes());
    let mut out = header.to_vec();
    out.extend_from_slice(&descriptor(TYPE_MTRR, instance, MTRR_LEN));
    out.extend_from_slice(&mtrr);
    out.extend_from_slice(&descriptor(TYPE_END, 0, 0));
    Ok(out)
}

/// `vcpu_hvm`: fetch the context, [PVH: set every vCPU's MTRRs], set the boot vCPU's
/// context last (each set resets all vCPUs). Returns the context set.
pub fn setup_boot_vcpu<H: Hypervisor + ?Sized>(
    hv: &H,
    domid: DomId,
    entry: u64,
    start_info_paddr: u64,
    device_model: bool,
    max_vcpus: u32,
) -> Result<Vec<u8>, SetupError> {
    let full = hv
        .hvm_context(domid)
        .map_err(|source| SetupError::Hypervisor {
            step: "Fetching the HVM context",
            source,
        })?;
    let bsp = build_bsp_context(&full, entry, start_info_paddr)?;
    if !device_model {
        for i in 0..max_vcpus {
            let instance = u16::try_from(i).map_err(|_| SetupError::TooManyVcpus {
                vcpus: max_vcpus,
                max: u32::from(u16::MAX),
            })?;
            let ctx = build_mtrr_context(&full, instance)?;
            // libxenguest only logs a failure here; the boot vCPU's set below decides.
            if let Err(e) = hv.set_hvm_context(domid, &ctx) {
                log::warn!("setting the MTRRs of vCPU {i} failed: {e}");
            }
        }
    }
    hv.set_hvm_context(domid, &bsp)
        .map_err(|source| SetupError::Hypervisor {
            step: "Setting the boot vCPU context",
            source,
        })?;
    Ok(bsp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_blob() -> Vec<u8> {
        let mut b = descriptor(TYPE_HEADER, 0, HEADER_LEN).to_vec();
        b.extend(1..=24u8);
        b.extend_from_slice(&descriptor(TYPE_CPU, 0, CPU_LEN));
        b.extend(std::iter::repeat_n(0xAA, CPU_LEN));
        b.extend_from_slice(&descriptor(TYPE_MTRR, 0, MTRR_LEN));
        b.extend(std::iter::repeat_n(0x55, MTRR_LEN));
        b.extend_from_slice(&descriptor(TYPE_END, 0, 0));
        b
    }

    #[test]
    fn bsp_context_layout() {
        let blob = fake_blob();
        let ctx = build_bsp_context(&blob, 0x10_0000, 0x10_3000).unwrap();
        assert_eq!(ctx.len(), 8 + 24 + 8 + CPU_LEN + 8);
        assert_eq!(&ctx[..32], &blob[..32]);
        let cpu = &ctx[40..40 + CPU_LEN];
        let u64_at = |o: usize| u64::from_le_bytes(cpu[o..o + 8].try_into().unwrap());
        let u32_at = |o: usize| u32::from_le_bytes(cpu[o..o + 4].try_into().unwrap());
        assert_eq!(u64_at(cpu_off::RIP), 0x10_0000);
        assert_eq!(u64_at(cpu_off::RBX), 0x10_3000);
        assert_eq!(u64_at(cpu_off::CR0), 0x11);
        assert_eq!(u64_at(cpu_off::DR6), 0xFFFF_0FF0);
        assert_eq!(u64_at(cpu_off::DR7), 0x400);
        assert_eq!(u32_at(cpu_off::CS_LIMIT), u32::MAX);
        assert_eq!(u32_at(cpu_off::TR_LIMIT), 0x67);
        assert_eq!(u32_at(cpu_off::CS_ARBYTES), 0xC9B);
        assert_eq!(u32_at(cpu_off::SS_ARBYTES), 0xC93);
        assert_eq!(u32_at(cpu_off::TR_ARBYTES), 0x8B);
        assert_eq!(&ctx[ctx.len() - 8..], &[0u8; 8]);
    }

    #[test]
    fn mtrr_context() {
        let ctx = build_mtrr_context(&fake_blob(), 3).unwrap();
        assert_eq!(u16::from_le_bytes([ctx[34], ctx[35]]), 3);
        let m = &ctx[40..40 + MTRR_LEN];
        assert_eq!(
            u64::from_le_bytes(
                m[MTRR_DEF_TYPE_OFF..MTRR_DEF_TYPE_OFF + 8]
                    .try_into()
                    .unwrap()
            ),
            0x806
        );
        assert_eq!(m[0], 0x55);
    }

    #[test]
    fn hostile_blobs() {
        assert!(build_bsp_context(&[], 0, 0).is_err());
        let mut b = descriptor(TYPE_HEADER, 0, 1 << 20).to_vec();
        b.extend_from_slice(&[0; 16]);
        assert!(matches!(records(&b), Err(SetupError::HvmContext { .. })));
        // A blob starting with a CPU record has no header to copy.
        let mut c = descriptor(TYPE_CPU, 0, 4).to_vec();
        c.extend_from_slice(&[0; 4]);
        c.extend_from_slice(&descriptor(TYPE_END, 0, 0));
        assert!(build_bsp_context(&c, 0, 0).is_err());
    }
}
