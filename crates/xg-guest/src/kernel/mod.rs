//! PV and PVH kernel images: the formats libxenguest accepts, their Xen ELF notes, and the
//! checks that make a hostile image a clear error before anything is built.
//!
//! * [`open_kernel`] turns the bytes of `-image` into an ELF: a plain ELF, a
//!   gzip-compressed ELF, or a Linux bzImage whose payload is gzip, xz, lzma, zstd, lz4 or
//!   lzo compressed ([`decompress`], [`lzop`]; bzip2 payloads are refused with their own
//!   error).
//!   Sizes are capped before and while decompressing.
//! * [`KernelElf::parse`] reads an ELF32 or ELF64 image with every offset, size and note
//!   bounds-checked, and its Xen notes ([`notes::XenNotes`]).
//! * [`KernelElf::pvh`] / [`crate::pv::check::pv_kernel`] apply libelf's `elf_xen_parse`
//!   checks for a guest in an HVM container (PVH) or a PV guest.
//! * [`pvh::build_pvh_image`] places kernel, modules and ACPI tables of a PVH guest and
//!   boots it, reusing the HVM special pages, start info, vCPU and grant-table code.
//! * [`test_kernel::test_pvh_kernel`] generates a tiny PVH kernel for tests and real Xen.

pub mod bzimage;
pub mod decompress;
pub mod elf;
pub mod lzop;
pub mod notes;
pub mod pvh;
pub mod test_kernel;

pub use decompress::{Compression, DECOMPRESS_MAX};
pub use elf::{KernelElf, KernelLoadSegment, PvhKernel};
pub use notes::XenNotes;

/// What is wrong with an lzop container ([`KernelError::Lzo`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LzoProblem {
    /// The data end inside a field.
    #[error("truncated {what}")]
    Truncated {
        /// The field.
        what: &'static str,
    },
    /// Not the 9-byte lzop magic.
    #[error("bad magic")]
    BadMagic,
    /// A format version older than lzop's oldest (0x0900).
    #[error("unsupported version {version:#06x}")]
    BadVersion {
        /// The version.
        version: u16,
    },
    /// A method that is not LZO1X.
    #[error("method {method} is not LZO1X")]
    BadMethod {
        /// The method byte.
        method: u8,
    },
    /// The header announces a filter.
    #[error("filters are not supported")]
    Filter,
    /// The header announces an extra field.
    #[error("extra header fields are not supported")]
    ExtraField,
    /// Checksum flags other than one checksum of the decompressed data per block.
    #[error("checksum flags {flags:#x} do not give one checksum per block")]
    ChecksumFlags {
        /// The header flags.
        flags: u32,
    },
    /// A block larger than libxenguest's 64 MiB.
    #[error("block of {dst_len} bytes is larger than 64 MiB")]
    BlockTooLarge {
        /// Decompressed length.
        dst_len: u32,
    },
    /// A block with no compressed data.
    #[error("empty compressed block")]
    EmptyBlock,
    /// Compressed length above the decompressed length.
    #[error("compressed length {src_len} is above the block length {dst_len}")]
    BlockExpands {
        /// Compressed length.
        src_len: u32,
        /// Decompressed length.
        dst_len: u32,
    },
    /// Compressed data beyond the end of the input.
    #[error("block of {src_len} bytes runs past the {left} bytes left")]
    BlockPastEnd {
        /// Compressed length.
        src_len: u32,
        /// Bytes left in the input.
        left: u64,
    },
    /// A block decoded to fewer bytes than its header says.
    #[error("block decoded to {written} of its {dst_len} bytes")]
    ShortBlock {
        /// Decompressed length in the header.
        dst_len: u32,
        /// Bytes decoded.
        written: u64,
    },
    /// The kernel's size trailer does not match the output.
    #[error("size trailer says {trailer} bytes, the blocks gave {produced}")]
    SizeTrailer {
        /// The trailer.
        trailer: u32,
        /// Bytes decoded.
        produced: u64,
    },
}

/// Why a kernel image or module cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// The file is larger than the kernel size limit.
    #[error("Kernel image of {len} bytes is larger than the limit of {cap} bytes")]
    FileTooLarge {
        /// File length.
        len: u64,
        /// The limit.
        cap: u64,
    },
    /// A module is larger than the module size limit.
    #[error("Module {index} of {len} bytes is larger than the limit of {cap} bytes")]
    ModuleTooLarge {
        /// Module index.
        index: usize,
        /// Length (decompressed if it was gzip).
        len: u64,
        /// The limit.
        cap: u64,
    },
    /// bzImage boot protocol older than 2.08 (no payload fields).
    #[error("bzImage boot protocol {version:#06x} is too old (2.08 needed)")]
    BootProtocolTooOld {
        /// Header version.
        version: u16,
    },
    /// bzImage payload offset outside the file.
    #[error("bzImage payload offset {offset:#x} lies beyond the image of {len:#x} bytes")]
    PayloadOffset {
        /// Offset in the file.
        offset: u64,
        /// File length.
        len: u64,
    },
    /// bzImage payload end outside the file.
    #[error("bzImage payload {offset:#x}+{length:#x} runs past the image of {len:#x} bytes")]
    PayloadLength {
        /// Offset in the file.
        offset: u64,
        /// Payload length.
        length: u64,
        /// File length.
        len: u64,
    },
    /// bzImage payload in no known format.
    #[error("bzImage payload has an unknown compression format")]
    UnknownCompression,
    /// A recognised compression this builder does not decode.
    #[error("{format}-compressed kernels are not supported")]
    UnsupportedCompression {
        /// Format name.
        format: &'static str,
    },
    /// The decoder failed.
    #[error("Unable to {format} decompress the kernel")]
    Decompress {
        /// Format name.
        format: &'static str,
        /// The decoder's error.
        #[source]
        source: std::io::Error,
    },
    /// Decompressed data exceed the cap.
    #[error("Decompressed {format} kernel is larger than the limit of {cap} bytes")]
    DecompressedTooLarge {
        /// Format name.
        format: &'static str,
        /// The cap.
        cap: u64,
    },
    /// The payload decompressed to nothing.
    #[error("The {format} payload is empty")]
    EmptyPayload {
        /// Format name.
        format: &'static str,
    },
    /// An lzop container libxenguest would not decode, or that we refuse to misread.
    #[error("Malformed lzo payload at byte {offset}: {problem}")]
    Lzo {
        /// Offset in the payload where the problem was found.
        offset: u64,
        /// What is wrong.
        problem: LzoProblem,
    },
    /// An LZO1X block of an lzop payload does not decode.
    #[error("Corrupt LZO1X data in lzo block {block} at byte {offset}")]
    LzoBlock {
        /// Block number, from 0.
        block: u64,
        /// Offset of the block's header in the payload.
        offset: u64,
        /// The decoder's error.
        #[source]
        source: lzo::Error,
    },
    /// Shorter than an ELF identification.
    #[error("Kernel of {len} bytes is too short for an ELF header")]
    TooShort {
        /// Length.
        len: u64,
    },
    /// No ELF magic (after decompression).
    #[error("Kernel is not an ELF image")]
    NotElf,
    /// Neither ELF32 nor ELF64.
    #[error("ELF class {class} is neither 32- nor 64-bit")]
    BadClass {
        /// `EI_CLASS`.
        class: u8,
    },
    /// Big-endian or unknown encoding.
    #[error("ELF image is not little-endian (data encoding {encoding})")]
    NotLittleEndian {
        /// `EI_DATA`.
        encoding: u8,
    },
    /// Not an x86 machine.
    #[error("ELF machine {machine} is not x86")]
    BadMachine {
        /// `e_machine`.
        machine: u16,
    },
    /// A header table entry size does not match the class.
    #[error("ELF {table} header entries are {size} bytes, expected {expected}")]
    BadEntrySize {
        /// `"program"` or `"section"`.
        table: &'static str,
        /// Given.
        size: u16,
        /// Expected.
        expected: u16,
    },
    /// A header table outside the file.
    #[error("ELF {table} header table ends at {end:#x}, beyond the image of {len:#x} bytes")]
    HeadersBeyondFile {
        /// `"program"` or `"section"`.
        table: &'static str,
        /// End offset (saturated).
        end: u64,
        /// File length.
        len: u64,
    },
    /// A segment's file bytes outside the file.
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
        /// File length.
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
    /// `p_paddr + p_memsz` overflows.
    #[error("Segment {index} at {paddr:#x}+{memsz:#x} wraps around the address space")]
    SegmentWraps {
        /// Program header index.
        index: usize,
        /// `p_paddr`.
        paddr: u64,
        /// `p_memsz`.
        memsz: u64,
    },
    /// No loadable segment.
    #[error("ELF image has no loadable segment")]
    NoLoadableSegments,
    /// Two loadable segments share memory.
    #[error("Segments {first} and {second} overlap in guest memory")]
    SegmentsOverlap {
        /// Lower segment's index.
        first: usize,
        /// Other index.
        second: usize,
    },
    /// A note area outside the file.
    #[error("ELF note area {offset:#x}+{size:#x} lies beyond the image of {len:#x} bytes")]
    NotesBeyondFile {
        /// Offset.
        offset: u64,
        /// Size.
        size: u64,
        /// File length.
        len: u64,
    },
    /// A note's name or descriptor runs past its area.
    #[error("ELF note at {offset:#x} runs past the end of its note area")]
    NoteTruncated {
        /// File offset of the note header.
        offset: u64,
    },
    /// A numeric Xen note with a descriptor not 1, 2, 4 or 8 bytes long.
    #[error("Xen ELF note {name} has a {size}-byte value, expected 1, 2, 4 or 8")]
    NoteValueSize {
        /// Note name.
        name: &'static str,
        /// Descriptor size.
        size: u64,
    },
    /// More notes than libelf's `ELF_MAX_TOTAL_NOTE_COUNT`.
    #[error("ELF image has more than {max} notes")]
    TooManyNotes {
        /// The limit.
        max: usize,
    },
    /// A required feature (`!name`) Xen does not know.
    #[error("Xen ELF note FEATURES requires unknown feature '{feature}'")]
    UnknownRequiredFeature {
        /// The feature.
        feature: String,
    },
    /// No Xen notes at all.
    #[error("Not a Xen-ELF image: no Xen ELF notes found")]
    NoXenNotes,
    /// PVH: no `XEN_ELFNOTE_PHYS32_ENTRY`.
    #[error("Image not capable of booting inside a HVM container (no PHYS32_ENTRY note)")]
    NoPvhEntry,
    /// The kernel requires dom0.
    #[error("Kernel does not support unprivileged (DomU) operation")]
    Dom0Only,
    /// PV: neither the generic loader nor Linux.
    #[error("Will only load images built for the generic loader or Linux images")]
    NotXenLoader,
    /// PV: not built for Xen 3.0.
    #[error("Xen will only load images built for Xen v3.0 (not '{version}')")]
    XenVersion {
        /// `XEN_VERSION` note.
        version: String,
    },
    /// PV: `PADDR_OFFSET` without `VIRT_BASE`.
    #[error("ELF_PADDR_OFFSET set, VIRT_BASE unset")]
    PaddrOffsetWithoutVirtBase,
    /// Entry or start outside the kernel.
    #[error(
        "ELF start or entries are out of bounds (kernel {kstart:#x}-{kend:#x}, entry {entry:#x})"
    )]
    EntryOutOfBounds {
        /// Kernel start.
        kstart: u64,
        /// Kernel end.
        kend: u64,
        /// Entry.
        entry: u64,
    },
    /// PV: the p2m base inside the kernel.
    #[error("P->M table base {p2m_base:#x} is out of bounds")]
    P2mBaseInKernel {
        /// `INIT_P2M`.
        p2m_base: u64,
    },
    /// The kernel's lowest address is not page-aligned.
    #[error("Kernel start {pstart:#x} is not page-aligned")]
    UnalignedStart {
        /// Lowest address.
        pstart: u64,
    },
    /// A PVH kernel reaching above 4 GiB (it is entered with paging off).
    #[error("PVH kernel end {pend:#x} is above 4 GiB")]
    Above4G {
        /// End.
        pend: u64,
    },
}

/// Reads the bytes of `-image` as libxenguest does: checks the file against `cap`
/// (`xc_dom_kernel_max_size`), unwraps a bzImage, decompresses gzip (or the bzImage
/// payload) into at most `cap` bytes, and returns the ELF bytes with the format found.
pub fn open_kernel(data: &[u8], cap: u64) -> Result<(Vec<u8>, KernelFormat), KernelError> {
    let len = xg_ctrl::types::conv::usize_to_u64(data.len());
    if len > cap {
        return Err(KernelError::FileTooLarge { len, cap });
    }
    if let Some(payload) = bzimage::payload(data)? {
        let format = Compression::detect(payload).ok_or(KernelError::UnknownCompression)?;
        let elf = decompress::decompress(format, payload, cap)?;
        return Ok((elf, KernelFormat::BzImage(format)));
    }
    if Compression::detect(data) == Some(Compression::Gzip) {
        let elf = decompress::decompress(Compression::Gzip, data, cap)?;
        return Ok((elf, KernelFormat::GzipElf));
    }
    Ok((data.to_vec(), KernelFormat::Elf))
}

/// How the kernel image was packaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum KernelFormat {
    /// A plain ELF file.
    Elf,
    /// A gzip-compressed ELF.
    GzipElf,
    /// A Linux bzImage with a compressed ELF payload.
    BzImage(Compression),
}

/// A module as libxenguest loads it (`xc_dom_build_module`): a gzip module is
/// decompressed when its size trailer is sane, anything else is handed over as is;
/// the result must fit `cap` (`xc_dom_module_max_size`).
pub fn open_module(index: usize, data: &[u8], cap: u64) -> Result<Vec<u8>, KernelError> {
    let len = xg_ctrl::types::conv::usize_to_u64(data.len());
    if Compression::detect(data) == Some(Compression::Gzip) && data.len() >= 6 {
        if let Ok(out) = decompress::decompress(Compression::Gzip, data, cap) {
            return Ok(out);
        }
        // libxenguest falls back to the raw blob when gunzip fails or is too large.
        log::warn!("Module {index}: gzip decompression failed or too large, loading it raw");
    }
    if len > cap {
        return Err(KernelError::ModuleTooLarge { index, len, cap });
    }
    Ok(data.to_vec())
}
