//! Fuzz target: the parsers of platform-key values and of `-pci_passthrough`.
//!
//! Every C-compatible number parser (`strtoull`/`strtol` in every base, xenguest's
//! `xenstore_get_value`, `sscanf("%" PRId64)`, the command line's `strtol`), the
//! affinity-mask cpumap, PCI SBDF lists and CPUID featuresets run on the input text.
//! Checked: no panic, results agree with each other where they must (a value with no
//! quirk reparses to itself, `xs_num` of a plain decimal is its value, an affinity map
//! has the requested size and only bits for '1' characters).
#![allow(dead_code)]

use xg_build::{cparse, pci, vcpus};

/// Name in reports.
pub const NAME: &str = "platform";
/// Inputs are cut to this length.
pub const MAX_LEN: usize = 4096;
/// Tokens worth inserting.
pub const DICT: &[&[u8]] = &[
    b"0x",
    b"0X",
    b"-",
    b"+",
    b" ",
    b"\t",
    b"true",
    b"FALSE",
    b"18446744073709551615",
    b"18446744073709551616",
    b"9223372036854775808",
    b"-9223372036854775809",
    b"4294967296",
    b"0777",
    b"08",
    b"1",
    b"0",
    b",",
    b":",
    b".",
    b"0000:03:00.0",
    b"ff:1f.7",
    b"1fcbfbff-",
    b"ffffffff-ffffffff",
    b"zz",
];

/// The largest cpumap is 64 bytes; strings are copied a few times.
pub fn alloc_cap(len: usize) -> usize {
    32 * len + 16 * 1024
}

/// Seed inputs.
pub fn seeds() -> Vec<Vec<u8>> {
    [
        &b"\x08256"[..],
        b"\x020x1F",
        b"\x04-1",
        b"\x01true",
        b"\x0c0110110001",
        b"\x000000:03:00.0,,ff:1f.7,bogus,1:2",
        b"\x101fcbfbff-f7fa3223-2d93fbff-00000023-00000001-000007ab-00000000-00000000",
        b"\x05 42abc",
        b"\x0399999999999999999999",
    ]
    .iter()
    .map(|s| s.to_vec())
    .collect()
}

/// Checks one input.
pub fn check(data: &[u8]) {
    let Some((&knob, rest)) = data.split_first() else {
        return;
    };
    let s = String::from_utf8_lossy(rest);
    let s = s.as_ref();
    for base in [0u32, 2, 8, 10, 16, 36] {
        let _ = cparse::strtoull(s, base);
        let _ = cparse::strtol(s, base);
        let (_, n) = cparse::strtoul_end(s, base);
        assert!(n <= s.len() && s.is_char_boundary(n), "end {n} of {s:?}");
    }
    let (parsed, valid) = cparse::xs_num(s);
    if valid
        && parsed.quirk.is_none()
        && !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit())
        && !s.starts_with('0')
    {
        assert_eq!(parsed.value.to_string(), s, "plain decimal {s:?}");
    }
    let _ = cparse::to_c_int(parsed.value);
    let _ = cparse::to_u16(parsed.value);
    let scanned = cparse::scan_i64(s);
    if let (Some(v), None) = (scanned.value, scanned.quirk) {
        assert_eq!(cparse::scan_i64(&v.to_string()).value, Some(v));
    }
    if let Some(v) = cparse::cli_int(s) {
        assert_eq!(cparse::cli_int(&v.to_string()), Some(v));
    }
    let size = usize::from(knob % 65);
    let map = vcpus::affinity_cpumap(s, size);
    assert_eq!(map.len(), size);
    let ones: u32 = map.iter().map(|b| b.count_ones()).sum();
    let wanted = s.bytes().take(size * 8).filter(|&c| c == b'1').count();
    assert_eq!(usize::try_from(ones).unwrap_or(usize::MAX), wanted);
    // The function is printed in hex but parsed with base 0, as in C: only a decimal
    // digit survives the round trip.
    for sbdf in pci::parse_pci_list(s).into_iter().filter(|d| d.func <= 9) {
        let name = sbdf.sysfs_name();
        assert_eq!(pci::parse_sbdf(&name), Some(sbdf), "{name}");
    }
    let nr = usize::from(knob % 24);
    if let Ok(fs) = xg_guest::cpuid::parse_featureset(s, nr) {
        assert!(fs.len() <= nr.max(fs.len()));
    }
}
