//! Hostile firmware images: each malformation is rejected with its own error, and no byte
//! pattern makes the parser panic.

use proptest::prelude::*;
use xg_guest::elf::{ElfError, HvmFirmware};
use xg_guest::firmware::{
    builtin_test_firmware, phdr_offset, Elf32Writer, SegmentSpec, PF_R, PT_LOAD,
};

fn put32(img: &mut [u8], at: usize, v: u32) {
    img[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// The built-in image with one field of program header 0 replaced.
fn with_phdr0_field(field_offset: usize, v: u32) -> Vec<u8> {
    let mut img = builtin_test_firmware();
    put32(&mut img, phdr_offset(0) + field_offset, v);
    img
}

fn err(img: &[u8]) -> ElfError {
    HvmFirmware::parse(img).unwrap_err()
}

#[test]
fn truncated_header() {
    let img = builtin_test_firmware();
    assert!(matches!(err(&img[..51]), ElfError::TooShort { len: 51 }));
    assert!(matches!(err(&[]), ElfError::TooShort { len: 0 }));
}

#[test]
fn truncated_program_headers() {
    let img = builtin_test_firmware();
    // Header intact, program header table cut in half.
    assert!(matches!(
        err(&img[..52 + 16]),
        ElfError::HeadersBeyondFile {
            table: "program",
            ..
        }
    ));
}

#[test]
fn not_elf() {
    let mut img = builtin_test_firmware();
    img[0] = 0x7E;
    assert!(matches!(err(&img), ElfError::NotElf));
}

#[test]
fn elf64_is_not_hvm_firmware() {
    let mut img = builtin_test_firmware();
    img[4] = 2; // ELFCLASS64
    assert!(matches!(err(&img), ElfError::Not32Bit { class: 2 }));
    assert_eq!(err(&img).to_string(), "ELF image is not 32-bit (class 2)");
}

#[test]
fn big_endian() {
    let mut img = builtin_test_firmware();
    img[5] = 2;
    assert!(matches!(
        err(&img),
        ElfError::NotLittleEndian { encoding: 2 }
    ));
}

#[test]
fn bad_phentsize() {
    let mut img = builtin_test_firmware();
    img[42] = 31; // e_phentsize: table still inside the file, entries the wrong size
    assert!(matches!(
        err(&img),
        ElfError::Malformed {
            part: "program headers",
            ..
        }
    ));
}

#[test]
fn program_header_table_beyond_file() {
    let mut img = builtin_test_firmware();
    put32(&mut img, 28, 0xFFFF_FF00); // e_phoff
    assert!(matches!(
        err(&img),
        ElfError::HeadersBeyondFile {
            table: "program",
            end: 0xFFFF_FF20,
            ..
        }
    ));
}

#[test]
fn section_header_table_beyond_file() {
    let mut img = builtin_test_firmware();
    put32(&mut img, 32, 0x1000_0000); // e_shoff
    img[48] = 1; // e_shnum
    assert!(matches!(
        err(&img),
        ElfError::HeadersBeyondFile {
            table: "section",
            ..
        }
    ));
}

#[test]
fn segment_beyond_file() {
    // p_offset past the end.
    let img = with_phdr0_field(4, 0x10_0000);
    assert!(matches!(
        err(&img),
        ElfError::SegmentBeyondFile {
            index: 0,
            offset: 0x10_0000,
            ..
        }
    ));
    // p_filesz past the end.
    let img = with_phdr0_field(16, 0x8000_0000);
    assert!(matches!(
        err(&img),
        ElfError::SegmentBeyondFile {
            filesz: 0x8000_0000,
            ..
        }
    ));
}

#[test]
fn huge_sizes() {
    // p_memsz near 4 GiB at 1 MiB: the image would end above 4 GiB.
    let img = with_phdr0_field(20, 0xFFFF_F000);
    assert!(matches!(
        err(&img),
        ElfError::Above4G {
            pend: 0x1_000F_F000
        }
    ));
    // p_memsz smaller than p_filesz.
    let img = with_phdr0_field(20, 1);
    assert!(matches!(
        err(&img),
        ElfError::FileSizeExceedsMemSize { memsz: 1, .. }
    ));
}

#[test]
fn overlapping_segments() {
    let img = Elf32Writer::new(0x10_0000)
        .load(0x10_0000, &[0x90; 0x100], 0x1000)
        .load(0x10_0800, &[0xF4], 0)
        .build();
    assert!(matches!(
        err(&img),
        ElfError::SegmentsOverlap {
            first: 0,
            second: 1
        }
    ));
}

#[test]
fn unaligned_start() {
    let img = Elf32Writer::new(0x10_0010)
        .load(0x10_0010, &[0xF4], 0)
        .build();
    assert!(matches!(
        err(&img),
        ElfError::UnalignedStart { pstart: 0x10_0010 }
    ));
}

#[test]
fn no_loadable_segment() {
    // A PT_LOAD without R/W/X flags is not loadable (libelf's rule).
    let img = Elf32Writer::new(0x10_0000)
        .segment(SegmentSpec {
            p_type: PT_LOAD,
            flags: 0,
            paddr: 0x10_0000,
            data: vec![0xF4],
            memsz: 1,
        })
        .build();
    assert!(matches!(err(&img), ElfError::NoLoadableSegments));
    let img = Elf32Writer::new(0).build();
    assert!(matches!(err(&img), ElfError::NoLoadableSegments));
}

#[test]
fn pvh_kernel_goes_to_another_loader() {
    // XEN_ELFNOTE_PHYS32_ENTRY (18) marks a PVH kernel.
    let img = Elf32Writer::new(0x10_0000)
        .load(0x10_0000, &[0xF4], 0)
        .note("Xen", 18, &0x10_0000u32.to_le_bytes())
        .build();
    assert!(matches!(err(&img), ElfError::HasXenNotes));
}

#[test]
fn broken_note_segment() {
    let mut img = Elf32Writer::new(0x10_0000)
        .load(0x10_0000, &[0xF4], 0)
        .note("Xen", 18, &[0; 4])
        .build();
    // Note 1's namesz claims more bytes than the segment has.
    let note_off = usize::try_from(u32::from_le_bytes(
        img[phdr_offset(1) + 4..phdr_offset(1) + 8]
            .try_into()
            .unwrap(),
    ))
    .unwrap();
    put32(&mut img, note_off, 0x100);
    assert!(matches!(
        err(&img),
        ElfError::Malformed {
            part: "note segment",
            ..
        }
    ));
}

#[test]
fn non_loadable_segments_are_ignored() {
    let img = Elf32Writer::new(0x10_0000)
        .load(0x10_0000, &[0xF4], 0)
        .segment(SegmentSpec {
            p_type: 0x6474_e551, // PT_GNU_STACK, as in Debian's hvmloader
            flags: PF_R,
            paddr: 0,
            data: vec![],
            memsz: 0,
        })
        .build();
    let fw = HvmFirmware::parse(&img).unwrap();
    assert_eq!(fw.segments().len(), 1);
    assert_eq!((fw.pstart(), fw.pend()), (0x10_0000, 0x10_0001));
}

#[test]
fn errors_have_distinct_messages() {
    let cases = [
        err(&[]),
        err(&[0u8; 64]),
        err(&with_phdr0_field(4, 0x10_0000)),
        err(&with_phdr0_field(20, 0xFFFF_F000)),
        err(&with_phdr0_field(20, 1)),
    ];
    let msgs: std::collections::BTreeSet<String> = cases.iter().map(|e| e.to_string()).collect();
    assert_eq!(msgs.len(), cases.len(), "{msgs:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random byte flips in header and program headers never panic, and whatever parses
    /// keeps its invariants.
    #[test]
    fn mutated_images_never_panic(flips in proptest::collection::vec((0usize..84, any::<u8>()), 1..6)) {
        let mut img = builtin_test_firmware();
        for (at, v) in flips {
            img[at] = v;
        }
        if let Ok(fw) = HvmFirmware::parse(&img) {
            prop_assert!(fw.pstart() <= fw.pend());
            prop_assert!(fw.pend() <= 1 << 32);
            for s in fw.segments() {
                prop_assert_eq!(fw.file_bytes(s).len() as u64, s.filesz);
            }
        }
    }

    /// Truncation at any length is an error or a valid parse, never a panic.
    #[test]
    fn truncated_images_never_panic(len in 0usize..200) {
        let img = builtin_test_firmware();
        let _ = HvmFirmware::parse(&img[..len.min(img.len())]);
    }
}
