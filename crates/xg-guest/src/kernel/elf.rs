//! ELF32/ELF64 kernel images with Xen notes: libelf's `elf_init`, `elf_parse_binary` and
//! `elf_xen_parse` with every offset and size checked against the file.

use serde::Serialize;
use xg_ctrl::types::conv::{u64_to_usize, usize_to_u64};
use xg_ctrl::{DomId, GuestMemory, PAGE_SIZE};

use crate::elf::load_extent;

use super::notes::{split_notes, XenNotes, XENFEAT_DOM0};
use super::KernelError;

const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const SHT_NOTE: u32 = 7;
const PF_RWX: u32 = 7;
/// `EM_386`.
pub const EM_386: u16 = 3;
/// `EM_X86_64`.
pub const EM_X86_64: u16 = 62;
const ZERO_CHUNK: u64 = 64 * 1024;

/// One loadable segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct KernelLoadSegment {
    /// Program header index.
    pub index: usize,
    /// `p_paddr`.
    pub paddr: u64,
    /// `p_vaddr`.
    pub vaddr: u64,
    /// `p_offset`.
    pub offset: u64,
    /// `p_filesz`.
    pub filesz: u64,
    /// `p_memsz`.
    pub memsz: u64,
}

/// A parsed kernel ELF, owning its bytes.
#[derive(Debug, Clone)]
pub struct KernelElf {
    data: Vec<u8>,
    /// 64-bit image.
    pub is64: bool,
    /// `e_machine`.
    pub machine: u16,
    /// `e_entry`.
    pub e_entry: u64,
    /// Loadable segments in header order.
    pub segments: Vec<KernelLoadSegment>,
    /// Lowest `p_paddr` of a loadable segment (`elf->pstart`).
    pub pstart: u64,
    /// Highest `p_paddr + p_memsz` (`elf->pend`).
    pub pend: u64,
    /// The Xen notes.
    pub notes: XenNotes,
}

/// A kernel checked for PVH: where it goes and where it starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PvhKernel {
    /// First byte (`virt_kstart`, = `pstart`).
    pub kstart: u64,
    /// End (`virt_kend`, = `pend`).
    pub kend: u64,
    /// `PHYS32_ENTRY`.
    pub entry: u64,
}

struct Reader<'a> {
    d: &'a [u8],
    is64: bool,
}

impl Reader<'_> {
    fn u16(&self, at: u64) -> u16 {
        let a = u64_to_usize(at);
        u16::from_le_bytes([self.d[a], self.d[a + 1]])
    }
    fn u32(&self, at: u64) -> u32 {
        let a = u64_to_usize(at);
        u32::from_le_bytes([self.d[a], self.d[a + 1], self.d[a + 2], self.d[a + 3]])
    }
    fn u64(&self, at: u64) -> u64 {
        let a = u64_to_usize(at);
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.d[a..a + 8]);
        u64::from_le_bytes(b)
    }
    /// A word: 4 bytes in ELF32, 8 in ELF64.
    fn word(&self, at32: u64, at64: u64) -> u64 {
        if self.is64 {
            self.u64(at64)
        } else {
            u64::from(self.u32(at32))
        }
    }
}

fn table_end(off: u64, entsize: u16, num: u16) -> u64 {
    // u64 arithmetic on u16 products cannot overflow unless off is huge: saturate.
    off.saturating_add(u64::from(entsize) * u64::from(num))
}

impl KernelElf {
    /// Parses `data` (the decompressed kernel).
    pub fn parse(data: Vec<u8>) -> Result<KernelElf, KernelError> {
        let len = usize_to_u64(data.len());
        if data.len() < 16 {
            return Err(KernelError::TooShort { len });
        }
        if data[..4] != [0x7F, b'E', b'L', b'F'] {
            return Err(KernelError::NotElf);
        }
        let is64 = match data[4] {
            1 => false,
            2 => true,
            class => return Err(KernelError::BadClass { class }),
        };
        if data[5] != 1 {
            return Err(KernelError::NotLittleEndian { encoding: data[5] });
        }
        let ehsize: u64 = if is64 { 64 } else { 52 };
        if len < ehsize {
            return Err(KernelError::TooShort { len });
        }
        let r = Reader { d: &data, is64 };
        let machine = r.u16(18);
        if machine != EM_386 && machine != EM_X86_64 {
            return Err(KernelError::BadMachine { machine });
        }
        let e_entry = r.word(24, 24);
        let phoff = r.word(28, 32);
        let shoff = r.word(32, 40);
        let (phentsize, phnum, shentsize, shnum) = if is64 {
            (r.u16(54), r.u16(56), r.u16(58), r.u16(60))
        } else {
            (r.u16(42), r.u16(44), r.u16(46), r.u16(48))
        };
        let (ph_expect, sh_expect) = if is64 { (56u16, 64u16) } else { (32, 40) };
        if phnum > 0 && phentsize != ph_expect {
            return Err(KernelError::BadEntrySize {
                table: "program",
                size: phentsize,
                expected: ph_expect,
            });
        }
        if shnum > 0 && shentsize != sh_expect {
            return Err(KernelError::BadEntrySize {
                table: "section",
                size: shentsize,
                expected: sh_expect,
            });
        }
        let ph_end = table_end(phoff, phentsize, phnum);
        if phnum > 0 && ph_end > len {
            return Err(KernelError::HeadersBeyondFile {
                table: "program",
                end: ph_end,
                len,
            });
        }
        let sh_end = table_end(shoff, shentsize, shnum);
        if shnum > 0 && sh_end > len {
            return Err(KernelError::HeadersBeyondFile {
                table: "section",
                end: sh_end,
                len,
            });
        }

        let mut segments = Vec::new();
        let mut note_areas = Vec::new();
        for index in 0..usize::from(phnum) {
            let at = phoff + u64::from(phentsize) * usize_to_u64(index);
            let p_type = r.u32(at);
            let (flags, offset, vaddr, paddr, filesz, memsz) = if is64 {
                (
                    r.u32(at + 4),
                    r.u64(at + 8),
                    r.u64(at + 16),
                    r.u64(at + 24),
                    r.u64(at + 32),
                    r.u64(at + 40),
                )
            } else {
                (
                    r.u32(at + 24),
                    u64::from(r.u32(at + 4)),
                    u64::from(r.u32(at + 8)),
                    u64::from(r.u32(at + 12)),
                    u64::from(r.u32(at + 16)),
                    u64::from(r.u32(at + 20)),
                )
            };
            if p_type == PT_NOTE && offset != 0 {
                note_areas.push((offset, filesz));
            }
            if p_type != PT_LOAD || flags & PF_RWX == 0 {
                continue;
            }
            if offset.checked_add(filesz).is_none_or(|end| end > len) {
                return Err(KernelError::SegmentBeyondFile {
                    index,
                    offset,
                    filesz,
                    len,
                });
            }
            if filesz > memsz {
                return Err(KernelError::FileSizeExceedsMemSize {
                    index,
                    filesz,
                    memsz,
                });
            }
            if paddr.checked_add(memsz).is_none() || vaddr.checked_add(memsz).is_none() {
                return Err(KernelError::SegmentWraps {
                    index,
                    paddr,
                    memsz,
                });
            }
            segments.push(KernelLoadSegment {
                index,
                paddr,
                vaddr,
                offset,
                filesz,
                memsz,
            });
        }

        let spans: Vec<_> = segments
            .iter()
            .map(|s| (s.index, s.paddr, s.memsz))
            .collect();
        let (pstart, pend) = load_extent(&spans).map_err(|overlap| match overlap {
            None => KernelError::NoLoadableSegments,
            Some((first, second)) => KernelError::SegmentsOverlap { first, second },
        })?;

        let mut notes = XenNotes::default();
        let mut seen = 0usize;
        for (offset, size) in &note_areas {
            for n in split_notes(area(&data, *offset, *size)?, *offset, &mut seen)? {
                notes.add(&n)?;
            }
        }
        if notes.count == 0 {
            for index in 1..usize::from(shnum) {
                let at = shoff + u64::from(shentsize) * usize_to_u64(index);
                if r.u32(at + 4) != SHT_NOTE {
                    continue;
                }
                let (offset, size) = if is64 {
                    (r.u64(at + 24), r.u64(at + 32))
                } else {
                    (u64::from(r.u32(at + 16)), u64::from(r.u32(at + 20)))
                };
                for n in split_notes(area(&data, offset, size)?, offset, &mut seen)? {
                    notes.add(&n)?;
                }
            }
        }

        Ok(KernelElf {
            data,
            is64,
            machine,
            e_entry,
            segments,
            pstart,
            pend,
            notes,
        })
    }

    /// `elf_xen_parse(hvm = true)` and the loader's checks for a PVH guest.
    pub fn pvh(&self) -> Result<PvhKernel, KernelError> {
        if self.notes.count == 0 {
            return Err(KernelError::NoXenNotes);
        }
        let entry = u64::from(self.notes.phys32_entry.ok_or(KernelError::NoPvhEntry)?);
        if self.notes.features_required & (1 << XENFEAT_DOM0) != 0 {
            return Err(KernelError::Dom0Only);
        }
        // virt_base and the paddr offset are forced to 0: addresses are physical.
        let (kstart, kend) = (self.pstart, self.pend);
        if entry < kstart || entry > kend {
            return Err(KernelError::EntryOutOfBounds {
                kstart,
                kend,
                entry,
            });
        }
        if !kstart.is_multiple_of(PAGE_SIZE) {
            return Err(KernelError::UnalignedStart { pstart: kstart });
        }
        if kend > 1 << 32 {
            return Err(KernelError::Above4G { pend: kend });
        }
        Ok(PvhKernel {
            kstart,
            kend,
            entry,
        })
    }

    /// The file bytes of `seg`.
    pub fn file_bytes(&self, seg: &KernelLoadSegment) -> &[u8] {
        let start = u64_to_usize(seg.offset);
        &self.data[start..start + u64_to_usize(seg.filesz)]
    }

    /// Copies every loadable segment to `p_paddr + delta` and zeroes its bss
    /// (`elf_load_binary`).
    pub fn load<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        domid: DomId,
        delta: u64,
    ) -> xg_ctrl::Result<()> {
        for seg in &self.segments {
            let base = seg.paddr.wrapping_add(delta);
            mem.write_guest(domid, base, self.file_bytes(seg))?;
            let mut at = base + seg.filesz;
            let end = base + seg.memsz;
            if at < end {
                let zeroes = vec![0u8; u64_to_usize(ZERO_CHUNK.min(end - at))];
                while at < end {
                    let n = ZERO_CHUNK.min(end - at);
                    mem.write_guest(domid, at, &zeroes[..u64_to_usize(n)])?;
                    at += n;
                }
            }
        }
        Ok(())
    }
}

fn area(data: &[u8], offset: u64, size: u64) -> Result<&[u8], KernelError> {
    let len = usize_to_u64(data.len());
    match offset.checked_add(size) {
        Some(end) if end <= len => Ok(&data[u64_to_usize(offset)..u64_to_usize(end)]),
        _ => Err(KernelError::NotesBeyondFile { offset, size, len }),
    }
}
