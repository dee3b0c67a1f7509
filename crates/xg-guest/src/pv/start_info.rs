//! The PV `start_info` page of a 64-bit guest (`public/xen.h` `struct start_info`,
//! libxenguest's `start_info_x86_64`).

/// `sizeof(struct start_info)` for x86_64.
pub const START_INFO_SIZE: usize = 1168;
/// `MAX_GUEST_CMDLINE`.
pub const MAX_GUEST_CMDLINE: usize = 1024;
/// `SIF_MOD_START_PFN`.
pub const SIF_MOD_START_PFN: u32 = 1 << 3;

/// The fields libxenguest fills.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PvStartInfo {
    /// `guest_type` (e.g. `xen-3.0-x86_64`), truncated to 31 bytes.
    pub magic: String,
    /// `nr_pages`.
    pub nr_pages: u64,
    /// Machine address of the shared info page.
    pub shared_info: u64,
    /// `flags` (`SIF_*`).
    pub flags: u32,
    /// `store_mfn`.
    pub store_mfn: u64,
    /// `store_evtchn`.
    pub store_evtchn: u32,
    /// `console.domU.mfn`.
    pub console_mfn: u64,
    /// `console.domU.evtchn`.
    pub console_evtchn: u32,
    /// `pt_base` (virtual).
    pub pt_base: u64,
    /// `nr_pt_frames`.
    pub nr_pt_frames: u64,
    /// `mfn_list` (virtual).
    pub mfn_list: u64,
    /// `mod_start`.
    pub mod_start: u64,
    /// `mod_len`.
    pub mod_len: u64,
    /// Kernel command line (truncated to 1023 bytes).
    pub cmdline: Option<String>,
    /// `first_p2m_pfn` (separate p2m mapping only).
    pub first_p2m_pfn: u64,
    /// `nr_p2m_frames`.
    pub nr_p2m_frames: u64,
}

/// The page's first [`START_INFO_SIZE`] bytes.
pub fn build_pv_start_info(s: &PvStartInfo) -> Vec<u8> {
    let mut b = vec![0u8; START_INFO_SIZE];
    let magic = s.magic.as_bytes();
    let n = magic.len().min(31);
    b[..n].copy_from_slice(&magic[..n]);
    let put64 =
        |b: &mut Vec<u8>, at: usize, v: u64| b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    let put32 =
        |b: &mut Vec<u8>, at: usize, v: u32| b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    put64(&mut b, 32, s.nr_pages);
    put64(&mut b, 40, s.shared_info);
    put32(&mut b, 48, s.flags);
    put64(&mut b, 56, s.store_mfn);
    put32(&mut b, 64, s.store_evtchn);
    put64(&mut b, 72, s.console_mfn);
    put32(&mut b, 80, s.console_evtchn);
    put64(&mut b, 88, s.pt_base);
    put64(&mut b, 96, s.nr_pt_frames);
    put64(&mut b, 104, s.mfn_list);
    put64(&mut b, 112, s.mod_start);
    put64(&mut b, 120, s.mod_len);
    if let Some(c) = &s.cmdline {
        let c = c.as_bytes();
        let n = c.len().min(MAX_GUEST_CMDLINE - 1);
        b[128..128 + n].copy_from_slice(&c[..n]);
    }
    put64(&mut b, 1152, s.first_p2m_pfn);
    put64(&mut b, 1160, s.nr_p2m_frames);
    b
}
