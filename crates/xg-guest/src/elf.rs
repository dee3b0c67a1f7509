//! HVM firmware (hvmloader) images: the probe, parse and load rules of libxenguest's
//! "HVM-generic" loader (`xg_dom_hvmloader.c`) and libelf.
//!
//! The image is hostile input: every offset and size is checked against the file before
//! it is used, and each way an image can be malformed is its own [`ElfError`].
//!
//! Rules (little-endian and the fifth rule are stricter than libxenguest):
//! * an ELF file at least one `Elf32_Ehdr` long, class 32, little-endian;
//! * program and section header tables inside the file (libelf `elf_init`);
//! * no Xen ELF notes, else the image is a PV/PVH kernel for another loader;
//! * loadable = `PT_LOAD` with any of `PF_R|PF_W|PF_X`; the kernel segment is
//!   `[min p_paddr, max p_paddr + p_memsz)` and must start page-aligned (the segment
//!   allocator's rule);
//! * each segment's file bytes inside the file, `p_filesz <= p_memsz`, loadable segments
//!   disjoint, the image below 4 GiB (libelf would copy garbage, underflow or mark the
//!   image broken instead);
//! * the entry point is `e_entry`.

use object::elf::{FileHeader32, PT_LOAD, PT_NOTE};
use object::read::elf::{FileHeader, ProgramHeader, SectionHeader};
use object::LittleEndian;
use xg_ctrl::types::conv::{u64_to_usize, usize_to_u64};
use xg_ctrl::{DomId, GuestMemory, PAGE_SIZE};

use crate::firmware::EHDR32_SIZE;

/// `PF_X | PF_W | PF_R`: a `PT_LOAD` with none of these is not loaded.
const PF_RWX: u32 = 7;
/// The name of Xen's ELF notes.
const XEN_NOTE_NAME: &[u8] = b"Xen";
/// Largest chunk of zeroes written at once when clearing bss.
const ZERO_CHUNK: u64 = 64 * 1024;

/// Why an image cannot be used as HVM firmware.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    /// Shorter than an ELF32 file header.
    #[error("Image of {len} bytes is too short for an ELF header")]
    TooShort {
        /// Image length.
        len: usize,
    },
    /// The ELF magic is missing.
    #[error("Image is not an ELF file")]
    NotElf,
    /// `EI_CLASS` is not `ELFCLASS32` (hvmloader is a 32-bit image).
    #[error("ELF image is not 32-bit (class {class})")]
    Not32Bit {
        /// `e_ident[EI_CLASS]`.
        class: u8,
    },
    /// `EI_DATA` is not `ELFDATA2LSB`.
    #[error("ELF image is not little-endian (data encoding {encoding})")]
    NotLittleEndian {
        /// `e_ident[EI_DATA]`.
        encoding: u8,
    },
    /// The `object` parser rejected a part of the image.
    #[error("Malformed ELF {part}")]
    Malformed {
        /// Which part.
        part: &'static str,
        /// The parser's reason.
        #[source]
        source: object::read::Error,
    },
    /// A header table reaches past the end of the file.
    #[error("ELF {table} header table ends at {end:#x}, beyond the image of {len:#x} bytes")]
    HeadersBeyondFile {
        /// `"program"` or `"section"`.
        table: &'static str,
        /// End offset of the table.
        end: u64,
        /// Image length.
        len: u64,
    },
    /// The image carries Xen ELF notes: it is a PV or PVH kernel, not HVM firmware.
    #[error("ELF image has Xen notes: a PV or PVH kernel, not HVM firmware")]
    HasXenNotes,
    /// No loadable program header.
    #[error("ELF image has no loadable segment")]
    NoLoadableSegments,
    /// A segment's file bytes reach past the end of the file.
    #[error(
        "Segment {index} file bytes {offset:#x}+{filesz:#x} lie beyond the image of {len:#x} bytes"
    )]
    SegmentBeyondFile {
        /// Program header index.
        index: usize,
        /// `p_offset`.
        offset: u64,
        /// `p_filesz`.
        filesz: u64,
        /// Image length.
        len: u64,
    },
    /// `p_filesz > p_memsz`.
    #[error("Segment {index} has more file bytes ({filesz:#x}) than memory bytes ({memsz:#x})")]
    FileSizeExceedsMemSize {
        /// Program header index.
        index: usize,
        /// `p_filesz`.
        filesz: u64,
        /// `p_memsz`.
        memsz: u64,
    },
    /// Two loadable segments share guest memory.
    #[error("Segments {first} and {second} overlap in guest memory")]
    SegmentsOverlap {
        /// Program header index of the lower segment.
        first: usize,
        /// Program header index of the other.
        second: usize,
    },
    /// The lowest loadable address is not page-aligned.
    #[error("Image start {pstart:#x} is not page-aligned")]
    UnalignedStart {
        /// Lowest `p_paddr`.
        pstart: u64,
    },
    /// The image reaches above 4 GiB, out of a 32-bit firmware's reach.
    #[error("Image end {pend:#x} is above 4 GiB")]
    Above4G {
        /// End of the highest segment.
        pend: u64,
    },
}

/// One loadable segment of the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadSegment {
    /// Program header index.
    pub index: usize,
    /// Guest physical address (`p_paddr`).
    pub paddr: u64,
    /// File offset (`p_offset`).
    pub offset: u64,
    /// Bytes copied from the file (`p_filesz`).
    pub filesz: u64,
    /// Bytes of guest memory (`p_memsz`); the tail past `filesz` is zeroed.
    pub memsz: u64,
}

/// A parsed HVM firmware image, borrowing the file bytes.
#[derive(Debug, Clone)]
pub struct HvmFirmware<'a> {
    data: &'a [u8],
    segments: Vec<LoadSegment>,
    pstart: u64,
    pend: u64,
    entry: u64,
}

impl<'a> HvmFirmware<'a> {
    /// Probes and parses `data` (libxenguest's `xc_dom_probe_hvm_kernel` +
    /// `xc_dom_parse_hvm_kernel`, with the stricter checks listed in the module docs).
    pub fn parse(data: &'a [u8]) -> Result<Self, ElfError> {
        let len = usize_to_u64(data.len());
        if data.len() < EHDR32_SIZE {
            return Err(ElfError::TooShort { len: data.len() });
        }
        if data[..4] != [0x7F, b'E', b'L', b'F'] {
            return Err(ElfError::NotElf);
        }
        if data[4] != 1 {
            return Err(ElfError::Not32Bit { class: data[4] });
        }
        if data[5] != 1 {
            return Err(ElfError::NotLittleEndian { encoding: data[5] });
        }
        let header =
            FileHeader32::<LittleEndian>::parse(data).map_err(|source| ElfError::Malformed {
                part: "file header",
                source,
            })?;
        let e = LittleEndian;

        // libelf's elf_init sanity checks, on the raw fields.
        let ph_end = u64::from(header.e_phoff(e))
            + u64::from(header.e_phentsize(e)) * u64::from(header.e_phnum(e));
        if ph_end > len {
            return Err(ElfError::HeadersBeyondFile {
                table: "program",
                end: ph_end,
                len,
            });
        }
        let sh_end = u64::from(header.e_shoff(e))
            + u64::from(header.e_shentsize(e)) * u64::from(header.e_shnum(e));
        if sh_end > len {
            return Err(ElfError::HeadersBeyondFile {
                table: "section",
                end: sh_end,
                len,
            });
        }

        let phdrs = header
            .program_headers(e, data)
            .map_err(|source| ElfError::Malformed {
                part: "program headers",
                source,
            })?;

        if has_xen_notes(header, phdrs, data)? {
            return Err(ElfError::HasXenNotes);
        }

        let mut segments = Vec::new();
        for (index, ph) in phdrs.iter().enumerate() {
            if ph.p_type(e) != PT_LOAD || ph.p_flags(e) & PF_RWX == 0 {
                continue;
            }
            let seg = LoadSegment {
                index,
                paddr: u64::from(ph.p_paddr(e)),
                offset: u64::from(ph.p_offset(e)),
                filesz: u64::from(ph.p_filesz(e)),
                memsz: u64::from(ph.p_memsz(e)),
            };
            if seg.offset + seg.filesz > len {
                return Err(ElfError::SegmentBeyondFile {
                    index,
                    offset: seg.offset,
                    filesz: seg.filesz,
                    len,
                });
            }
            if seg.filesz > seg.memsz {
                return Err(ElfError::FileSizeExceedsMemSize {
                    index,
                    filesz: seg.filesz,
                    memsz: seg.memsz,
                });
            }
            segments.push(seg);
        }

        let spans: Vec<_> = segments
            .iter()
            .map(|s| (s.index, s.paddr, s.memsz))
            .collect();
        let (pstart, pend) = load_extent(&spans).map_err(|overlap| match overlap {
            None => ElfError::NoLoadableSegments,
            Some((first, second)) => ElfError::SegmentsOverlap { first, second },
        })?;
        if !pstart.is_multiple_of(PAGE_SIZE) {
            return Err(ElfError::UnalignedStart { pstart });
        }
        if pend > 1 << 32 {
            return Err(ElfError::Above4G { pend });
        }

        Ok(HvmFirmware {
            data,
            segments,
            pstart,
            pend,
            entry: u64::from(header.e_entry(e)),
        })
    }

    /// The loadable segments in program header order.
    pub fn segments(&self) -> &[LoadSegment] {
        &self.segments
    }

    /// Lowest guest physical address of the image (`elf->pstart`).
    pub fn pstart(&self) -> u64 {
        self.pstart
    }

    /// End of the image in guest physical memory (`elf->pend`).
    pub fn pend(&self) -> u64 {
        self.pend
    }

    /// The entry point (`e_entry`), the initial `rip`.
    pub fn entry(&self) -> u64 {
        self.entry
    }

    /// The file bytes of `seg`.
    pub fn file_bytes(&self, seg: &LoadSegment) -> &'a [u8] {
        let start = u64_to_usize(seg.offset);
        &self.data[start..start + u64_to_usize(seg.filesz)]
    }

    /// Copies every loadable segment to its physical address and zeroes its bss
    /// (`elf_load_binary`), in program header order.
    pub fn load<M: GuestMemory + ?Sized>(&self, mem: &M, domid: DomId) -> xg_ctrl::Result<()> {
        for seg in &self.segments {
            log::trace!(
                "loading segment {} at {:#x}: {:#x} file bytes, {:#x} in memory",
                seg.index,
                seg.paddr,
                seg.filesz,
                seg.memsz
            );
            mem.write_guest(domid, seg.paddr, self.file_bytes(seg))?;
            let mut at = seg.paddr + seg.filesz;
            let end = seg.paddr + seg.memsz;
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

/// Whether the image has a note named "Xen": in `PT_NOTE` segments (those with a zero
/// offset are skipped, as libelf does), else in `SHT_NOTE` sections.
fn has_xen_notes(
    header: &FileHeader32<LittleEndian>,
    phdrs: &[object::elf::ProgramHeader32<LittleEndian>],
    data: &[u8],
) -> Result<bool, ElfError> {
    let e = LittleEndian;
    for ph in phdrs {
        if ph.p_type(e) != PT_NOTE || ph.p_offset(e) == 0 {
            continue;
        }
        let notes = ph.notes(e, data).map_err(|source| ElfError::Malformed {
            part: "note segment",
            source,
        })?;
        if let Some(mut notes) = notes {
            while let Some(note) = notes.next().map_err(|source| ElfError::Malformed {
                part: "note segment",
                source,
            })? {
                if note.name() == XEN_NOTE_NAME {
                    return Ok(true);
                }
            }
        }
    }
    let shdrs = header
        .section_headers(e, data)
        .map_err(|source| ElfError::Malformed {
            part: "section headers",
            source,
        })?;
    for sh in shdrs.iter().skip(1) {
        let notes = sh.notes(e, data).map_err(|source| ElfError::Malformed {
            part: "note section",
            source,
        })?;
        if let Some(mut notes) = notes {
            while let Some(note) = notes.next().map_err(|source| ElfError::Malformed {
                part: "note section",
                source,
            })? {
                if note.name() == XEN_NOTE_NAME {
                    return Ok(true);
                }
            }
        }
    }
    Ok(false)
}

/// The guest-physical extent `(lowest start, highest end)` of loadable segments given as
/// `(index, paddr, memsz)`. `Err(None)`: there are none; `Err(Some((first, second)))`:
/// the lowest pair of non-empty segments that share memory.
pub(crate) fn load_extent(
    spans: &[(usize, u64, u64)],
) -> Result<(u64, u64), Option<(usize, usize)>> {
    let pstart = spans.iter().map(|s| s.1).min().ok_or(None)?;
    let pend = spans.iter().map(|s| s.1 + s.2).max().unwrap_or(pstart);
    let mut by_addr: Vec<&(usize, u64, u64)> = spans.iter().filter(|s| s.2 > 0).collect();
    by_addr.sort_by_key(|s| (s.1, s.0));
    for pair in by_addr.windows(2) {
        if pair[0].1 + pair[0].2 > pair[1].1 {
            return Err(Some((pair[0].0, pair[1].0)));
        }
    }
    Ok((pstart, pend))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firmware::{builtin_test_firmware, Elf32Writer, BUILTIN_FIRMWARE_BSS};

    #[test]
    fn builtin_firmware_parses() {
        let img = builtin_test_firmware();
        let fw = HvmFirmware::parse(&img).unwrap();
        assert_eq!(fw.pstart(), 0x10_0000);
        assert_eq!(fw.entry(), 0x10_0000);
        assert_eq!(fw.segments().len(), 1);
        let seg = fw.segments()[0];
        assert_eq!(seg.memsz - seg.filesz, u64::from(BUILTIN_FIRMWARE_BSS));
        assert_eq!(fw.pend(), 0x10_0000 + seg.memsz);
    }

    #[test]
    fn xen_note_is_rejected() {
        let img = Elf32Writer::new(0x10_0000)
            .load(0x10_0000, &[0xF4], 0)
            .note("Xen", 18, &0x10_0000u32.to_le_bytes())
            .build();
        assert!(matches!(
            HvmFirmware::parse(&img),
            Err(ElfError::HasXenNotes)
        ));
    }

    #[test]
    fn other_notes_are_fine() {
        let img = Elf32Writer::new(0x10_0000)
            .load(0x10_0000, &[0xF4], 0)
            .note("GNU", 3, &[1, 2, 3, 4])
            .build();
        assert!(HvmFirmware::parse(&img).is_ok());
    }
}
