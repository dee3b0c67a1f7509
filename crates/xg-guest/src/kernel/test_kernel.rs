//! Kernels made by our own code for tests and for the real-Xen runs: no binary fixtures
//! in the repository (see `docs/TESTING.md`).
//!
//! * [`test_pvh_kernel`]: an ELF32 PVH kernel at 1 MiB with a `PHYS32_ENTRY` note. Entered
//!   in 32-bit protected mode, it writes [`TEST_KERNEL_BANNER`] to port 0xE9 (Xen's debug
//!   console), then [`TEST_KERNEL_START_INFO_OK`] if `ebx` points at a start info with
//!   the right magic, then halts with interrupts off.
//! * [`test_pv_kernel`]: an ELF64 x86-64 PV kernel at [`TEST_PV_VIRT_BASE`] with the
//!   PV notes and a hypercall page. It writes [`TEST_PV_BANNER`] with
//!   `HYPERVISOR_console_io`, then checks its start info's magic and asks for a poweroff
//!   if it is right, a reboot if not (`SCHEDOP_shutdown`), and spins.
//! * [`Elf64Writer`]: ELF64 x86-64 images with any segments and notes.

use crate::firmware::{pad_to, Elf32Writer, PF_R, PF_W, PF_X, PT_LOAD, PT_NOTE};
use crate::start_info::START_MAGIC;

use super::notes;

/// Load and entry address of the test kernel.
pub const TEST_KERNEL_BASE: u32 = 0x10_0000;
/// First line the test kernel writes to port 0xE9.
pub const TEST_KERNEL_BANNER: &[u8] = b"xenguest-rs PVH test kernel\n";
/// Second line, written when `ebx` points at an `hvm_start_info`.
pub const TEST_KERNEL_START_INFO_OK: &[u8] = b"hvm_start_info magic ok\n";
/// Offset of the first message in the code.
const CODE_LEN: u32 = 42;

/// The test kernel's code and messages, linked at `base`.
pub fn test_pvh_kernel_code(base: u32) -> Vec<u8> {
    let msg1 = base.wrapping_add(CODE_LEN);
    let msg2 = msg1.wrapping_add(u32::try_from(TEST_KERNEL_BANNER.len() + 1).unwrap_or(0));
    let mut c = Vec::new();
    c.push(0xBE); // 0: mov esi, msg1
    c.extend_from_slice(&msg1.to_le_bytes());
    c.extend_from_slice(&[0x66, 0xBA, 0xE9, 0x00]); // 5: mov dx, 0xe9
    c.push(0xAC); // 9: lodsb
    c.extend_from_slice(&[0x84, 0xC0]); // 10: test al, al
    c.extend_from_slice(&[0x74, 0x03]); // 12: jz 17
    c.push(0xEE); // 14: out dx, al
    c.extend_from_slice(&[0xEB, 0xF8]); // 15: jmp 9
    c.extend_from_slice(&[0x81, 0x3B]); // 17: cmp dword [ebx], START_MAGIC
    c.extend_from_slice(&START_MAGIC.to_le_bytes());
    c.extend_from_slice(&[0x75, 0x0D]); // 23: jnz 38
    c.push(0xBE); // 25: mov esi, msg2
    c.extend_from_slice(&msg2.to_le_bytes());
    c.push(0xAC); // 30: lodsb
    c.extend_from_slice(&[0x84, 0xC0]); // 31: test al, al
    c.extend_from_slice(&[0x74, 0x03]); // 33: jz 38
    c.push(0xEE); // 35: out dx, al
    c.extend_from_slice(&[0xEB, 0xF8]); // 36: jmp 30
    c.push(0xFA); // 38: cli
    c.push(0xF4); // 39: hlt
    c.extend_from_slice(&[0xEB, 0xFD]); // 40: jmp 39
    c.extend_from_slice(TEST_KERNEL_BANNER);
    c.push(0);
    c.extend_from_slice(TEST_KERNEL_START_INFO_OK);
    c.push(0);
    c
}

/// The tiny PVH test kernel (ELF32, one segment at [`TEST_KERNEL_BASE`] with a page of
/// bss, notes `GUEST_OS "xenguest-rs-test"`, `PHYS32_ENTRY`).
pub fn test_pvh_kernel() -> Vec<u8> {
    Elf32Writer::new(TEST_KERNEL_BASE)
        .load(
            TEST_KERNEL_BASE,
            &test_pvh_kernel_code(TEST_KERNEL_BASE),
            0x1000,
        )
        .note("Xen", notes::GUEST_OS, b"xenguest-rs-test\0")
        .note("Xen", notes::PHYS32_ENTRY, &TEST_KERNEL_BASE.to_le_bytes())
        .build()
}

/// `virt_base` (and entry) of the PV test kernel, Linux's.
pub const TEST_PV_VIRT_BASE: u64 = 0xFFFF_FFFF_8000_0000;
/// What the PV test kernel writes with `console_io`.
pub const TEST_PV_BANNER: &[u8] = b"xenguest-rs PV test kernel\n";
/// The PV test kernel's hypercall page (its second page).
pub const TEST_PV_HYPERCALL_PAGE: u64 = TEST_PV_VIRT_BASE + 0x1000;

fn rel32(target: u64, next: u64) -> [u8; 4] {
    let d = i64::try_from(target).unwrap_or(0) - i64::try_from(next).unwrap_or(0);
    i32::try_from(d).unwrap_or(0).to_le_bytes()
}

/// Offset of the banner in [`test_pv_kernel_code`].
pub const TEST_PV_BANNER_OFFSET: usize = 68;

/// The PV test kernel's first page: code (offsets relative to `virt_base`), then the
/// banner. Entered with `rsi` = the start info's virtual address (the PV boot ABI) and
/// `rsp` on the boot stack, it writes the banner with `HYPERVISOR_console_io` (Xen
/// refuses that to a domU unless built with VERBOSE_DEBUG; the result is ignored),
/// then checks the start info's magic begins `"xen-3.0-"` and calls
/// `SCHEDOP_shutdown` with `SHUTDOWN_poweroff` if it does, `SHUTDOWN_reboot` if not.
/// A fault anywhere (bad page tables, context or hypercall page) makes Xen crash the
/// domain instead, so the shutdown reason tells the three apart.
pub fn test_pv_kernel_code() -> Vec<u8> {
    const CONSOLE_IO: u64 = 0x1000 + 18 * 32;
    const SCHED_OP: u64 = 0x1000 + 29 * 32;
    const MSG: u64 = TEST_PV_BANNER_OFFSET as u64;
    let len = u32::try_from(TEST_PV_BANNER.len()).unwrap_or(0);
    let mut c = vec![0x48, 0x89, 0xF3]; // 0: mov rbx, rsi (kept across hypercalls)
    c.extend_from_slice(&[0x31, 0xFF]); // 3: xor edi, edi (CONSOLEIO_write)
    c.push(0xBE); // 5: mov esi, len
    c.extend_from_slice(&len.to_le_bytes());
    c.extend_from_slice(&[0x48, 0x8D, 0x15]); // 10: lea rdx, [rip + MSG]
    c.extend_from_slice(&rel32(MSG, 17));
    c.push(0xE8); // 17: call console_io
    c.extend_from_slice(&rel32(CONSOLE_IO, 22));
    c.extend_from_slice(&[0x48, 0x8B, 0x03]); // 22: mov rax, [rbx] (magic)
    c.extend_from_slice(&[0x48, 0xB9]); // 25: mov rcx, "xen-3.0-"
    c.extend_from_slice(b"xen-3.0-");
    c.extend_from_slice(&[0x31, 0xF6]); // 35: xor esi, esi (SHUTDOWN_poweroff)
    c.extend_from_slice(&[0x48, 0x39, 0xC8]); // 37: cmp rax, rcx
    c.extend_from_slice(&[0x74, 0x05]); // 40: je 47
    c.extend_from_slice(&[0xBE, 1, 0, 0, 0]); // 42: mov esi, SHUTDOWN_reboot
    c.push(0x56); // 47: push rsi (struct sched_shutdown on the stack)
    c.extend_from_slice(&[0x48, 0x89, 0xE6]); // 48: mov rsi, rsp
    c.extend_from_slice(&[0xBF, 2, 0, 0, 0]); // 51: mov edi, SCHEDOP_shutdown
    c.push(0xE8); // 56: call sched_op
    c.extend_from_slice(&rel32(SCHED_OP, 61));
    c.extend_from_slice(&[0xEB, 0xFE]); // 61: jmp $
    c.resize(TEST_PV_BANNER_OFFSET, 0x90);
    c.extend_from_slice(TEST_PV_BANNER);
    c
}

/// The tiny PV test kernel: one 8 KiB segment at physical 0 / virtual
/// [`TEST_PV_VIRT_BASE`] (code page, then the hypercall page as bss), notes `GUEST_OS
/// "xenguest-rs-test"`, `LOADER "generic"`, `XEN_VERSION "xen-3.0"`, `VIRT_BASE`,
/// `PADDR_OFFSET` 0, `ENTRY`, `HYPERCALL_PAGE`, `FEATURES "!writable_page_tables"`.
pub fn test_pv_kernel() -> Vec<u8> {
    let mut code = test_pv_kernel_code();
    code.resize(0x1000, 0);
    pv_kernel_with(&code, 0x1000)
}

/// A PV kernel with the notes of [`test_pv_kernel`] whose one segment, at physical 0 and
/// virtual [`TEST_PV_VIRT_BASE`], holds `data` followed by `bss` zero bytes (the
/// hypercall page at [`TEST_PV_HYPERCALL_PAGE`] must fall inside it).
pub fn pv_kernel_with(data: &[u8], bss: u64) -> Vec<u8> {
    Elf64Writer::new(TEST_PV_VIRT_BASE)
        .load(TEST_PV_VIRT_BASE, 0, data, bss)
        .note("Xen", notes::GUEST_OS, b"xenguest-rs-test\0")
        .note("Xen", notes::LOADER, b"generic\0")
        .note("Xen", notes::XEN_VERSION, b"xen-3.0\0")
        .note("Xen", notes::VIRT_BASE, &TEST_PV_VIRT_BASE.to_le_bytes())
        .note("Xen", notes::PADDR_OFFSET, &0u64.to_le_bytes())
        .note("Xen", notes::ENTRY, &TEST_PV_VIRT_BASE.to_le_bytes())
        .note(
            "Xen",
            notes::HYPERCALL_PAGE,
            &TEST_PV_HYPERCALL_PAGE.to_le_bytes(),
        )
        .note("Xen", notes::FEATURES, b"!writable_page_tables\0")
        .build()
}

/// One ELF64 program header and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Segment64 {
    p_type: u32,
    flags: u32,
    vaddr: u64,
    paddr: u64,
    data: Vec<u8>,
    memsz: u64,
}

/// Builder of small little-endian ELF64 x86-64 executables (no sections).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Elf64Writer {
    entry: u64,
    segments: Vec<Segment64>,
}

/// Size of an `Elf64_Ehdr`.
pub const EHDR64_SIZE: usize = 64;
/// Size of an `Elf64_Phdr`.
pub const PHDR64_SIZE: usize = 56;

impl Elf64Writer {
    /// An image entered at `entry`.
    pub fn new(entry: u64) -> Self {
        Elf64Writer {
            entry,
            segments: Vec::new(),
        }
    }

    /// A RWX `PT_LOAD` at virtual `vaddr`, physical `paddr`, with `bss` zero bytes.
    pub fn load(mut self, vaddr: u64, paddr: u64, data: &[u8], bss: u64) -> Self {
        let filesz = u64::try_from(data.len()).unwrap_or(u64::MAX);
        self.segments.push(Segment64 {
            p_type: PT_LOAD,
            flags: PF_R | PF_W | PF_X,
            vaddr,
            paddr,
            data: data.to_vec(),
            memsz: filesz.saturating_add(bss),
        });
        self
    }

    /// A `PT_NOTE` segment with one note.
    pub fn note(mut self, name: &str, n_type: u32, desc: &[u8]) -> Self {
        let data = note_bytes(name, n_type, desc);
        let memsz = u64::try_from(data.len()).unwrap_or(u64::MAX);
        self.segments.push(Segment64 {
            p_type: PT_NOTE,
            flags: PF_R,
            vaddr: 0,
            paddr: 0,
            data,
            memsz,
        });
        self
    }

    /// The image bytes.
    pub fn build(&self) -> Vec<u8> {
        let phnum = self.segments.len();
        let mut out = vec![0u8; EHDR64_SIZE + PHDR64_SIZE * phnum];
        let mut offsets = Vec::new();
        for s in &self.segments {
            pad_to(&mut out, 16);
            offsets.push(out.len());
            out.extend_from_slice(&s.data);
        }
        out[..8].copy_from_slice(&[0x7F, b'E', b'L', b'F', 2, 1, 1, 0]);
        out[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        out[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
        out[20..24].copy_from_slice(&1u32.to_le_bytes());
        out[24..32].copy_from_slice(&self.entry.to_le_bytes());
        let phoff: u64 = if phnum > 0 { 64 } else { 0 };
        out[32..40].copy_from_slice(&phoff.to_le_bytes());
        out[52..54].copy_from_slice(&64u16.to_le_bytes());
        out[54..56].copy_from_slice(&56u16.to_le_bytes());
        out[56..58].copy_from_slice(&u16::try_from(phnum).unwrap_or(u16::MAX).to_le_bytes());
        out[58..60].copy_from_slice(&64u16.to_le_bytes());
        for (i, (s, off)) in self.segments.iter().zip(offsets).enumerate() {
            let at = EHDR64_SIZE + PHDR64_SIZE * i;
            let filesz = u64::try_from(s.data.len()).unwrap_or(u64::MAX);
            out[at..at + 4].copy_from_slice(&s.p_type.to_le_bytes());
            out[at + 4..at + 8].copy_from_slice(&s.flags.to_le_bytes());
            out[at + 8..at + 16].copy_from_slice(&u64::try_from(off).unwrap_or(0).to_le_bytes());
            out[at + 16..at + 24].copy_from_slice(&s.vaddr.to_le_bytes());
            out[at + 24..at + 32].copy_from_slice(&s.paddr.to_le_bytes());
            out[at + 32..at + 40].copy_from_slice(&filesz.to_le_bytes());
            out[at + 40..at + 48].copy_from_slice(&s.memsz.to_le_bytes());
            let align: u64 = if s.p_type == PT_NOTE { 4 } else { 16 };
            out[at + 48..at + 56].copy_from_slice(&align.to_le_bytes());
        }
        out
    }
}

/// One note's bytes: header, name with NUL, descriptor, each padded to 4 bytes.
pub fn note_bytes(name: &str, n_type: u32, desc: &[u8]) -> Vec<u8> {
    let mut d = Vec::new();
    let namesz = u32::try_from(name.len() + 1).unwrap_or(u32::MAX);
    let descsz = u32::try_from(desc.len()).unwrap_or(u32::MAX);
    d.extend_from_slice(&namesz.to_le_bytes());
    d.extend_from_slice(&descsz.to_le_bytes());
    d.extend_from_slice(&n_type.to_le_bytes());
    d.extend_from_slice(name.as_bytes());
    d.push(0);
    pad_to(&mut d, 4);
    d.extend_from_slice(desc);
    pad_to(&mut d, 4);
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pv_code_layout() {
        let c = test_pv_kernel_code();
        let rel_at = |at: usize| {
            let b: [u8; 4] = c[at..at + 4].try_into().unwrap();
            i64::from(i32::from_le_bytes(b))
        };
        // Every call and rip-relative operand lands where it must.
        assert_eq!(c[17], 0xE8);
        assert_eq!(18 + 4 + rel_at(18), 0x1000 + 18 * 32, "console_io slot");
        assert_eq!(c[56], 0xE8);
        assert_eq!(57 + 4 + rel_at(57), 0x1000 + 29 * 32, "sched_op slot");
        assert_eq!(13 + 4 + rel_at(13), 68, "banner");
        assert_eq!(&c[27..35], b"xen-3.0-");
        assert_eq!(
            (c[40], 40 + 2 + usize::from(c[41])),
            (0x74, 47),
            "je to push"
        );
        assert_eq!(&c[61..63], &[0xEB, 0xFE]);
        assert_eq!(&c[TEST_PV_BANNER_OFFSET..], TEST_PV_BANNER);
    }

    #[test]
    fn code_layout() {
        let c = test_pvh_kernel_code(TEST_KERNEL_BASE);
        assert_eq!(c[17], 0x81);
        assert_eq!(c[38], 0xFA);
        assert_eq!(c[39], 0xF4);
        assert_eq!(c[9], 0xAC);
        assert_eq!(c[30], 0xAC);
        let m1 = usize::try_from(CODE_LEN).unwrap();
        assert_eq!(&c[m1..m1 + TEST_KERNEL_BANNER.len()], TEST_KERNEL_BANNER);
        let m2 = m1 + TEST_KERNEL_BANNER.len() + 1;
        assert_eq!(
            &c[m2..m2 + TEST_KERNEL_START_INFO_OK.len()],
            TEST_KERNEL_START_INFO_OK
        );
        assert_eq!(
            &c[26..30],
            &(TEST_KERNEL_BASE + u32::try_from(m2).unwrap()).to_le_bytes()
        );
    }
}
