//! The C library number parsers xenguest uses, reproduced with their quirks, plus a note
//! of every quirk that changed the meaning of the input (so the caller can warn about it).

/// How a C parser read a string, and whether it silently misread it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed<T> {
    /// The value the C code ends up with.
    pub value: T,
    /// Set when the C code accepted something it should not have (trailing garbage, no
    /// digits, overflow, a negative number for an unsigned field, an octal surprise).
    pub quirk: Option<Quirk>,
}

/// A way the C parsers read input differently from what a person would expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quirk {
    /// Characters after the number were ignored.
    TrailingGarbage,
    /// No digits at all: the value is 0.
    NoDigits,
    /// The number overflowed (ERANGE): the value is 0.
    OutOfRange,
    /// A minus sign on an unsigned parse wraps around.
    NegativeWraps,
    /// A leading `0` made the number octal.
    Octal,
    /// The value does not fit the C field and was truncated.
    Truncated,
}

impl Quirk {
    /// A short description for log messages.
    pub fn describe(self) -> &'static str {
        match self {
            Quirk::TrailingGarbage => "trailing characters ignored",
            Quirk::NoDigits => "not a number, read as 0",
            Quirk::OutOfRange => "out of range, read as 0",
            Quirk::NegativeWraps => "negative value wraps around",
            Quirk::Octal => "leading 0 makes it octal",
            Quirk::Truncated => "too large for the field, truncated",
        }
    }
}

/// Result of scanning an integer prefix the way `strtoull`/`strtol` do.
#[derive(Debug, Clone, Copy)]
struct Scan {
    negative: bool,
    magnitude: u64,
    overflow: bool,
    digits: bool,
    rest_empty: bool,
    octal: bool,
    /// Index just past the number (`endptr`), 0 when nothing was converted.
    end: usize,
}

fn scan(s: &str, base: u32) -> Scan {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
        i += 1;
    }
    let mut negative = false;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        negative = b[i] == b'-';
        i += 1;
    }
    let mut radix = base;
    let mut octal = false;
    let hex_prefix = i + 1 < b.len()
        && b[i] == b'0'
        && (b[i + 1] == b'x' || b[i + 1] == b'X')
        && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
    if (base == 0 || base == 16) && hex_prefix {
        radix = 16;
        i += 2;
    } else if base == 0 {
        if i < b.len() && b[i] == b'0' {
            radix = 8;
            octal = b.get(i + 1).is_some_and(u8::is_ascii_digit);
        } else {
            radix = 10;
        }
    }
    let mut magnitude: u64 = 0;
    let mut overflow = false;
    let mut digits = false;
    while let Some(d) = b.get(i).and_then(|c| char::from(*c).to_digit(radix)) {
        digits = true;
        match magnitude
            .checked_mul(u64::from(radix))
            .and_then(|m| m.checked_add(u64::from(d)))
        {
            Some(m) => magnitude = m,
            None => overflow = true,
        }
        i += 1;
    }
    Scan {
        negative,
        magnitude,
        overflow,
        digits,
        rest_empty: i >= b.len(),
        octal,
        end: if digits { i } else { 0 },
    }
}

fn first_quirk(sc: &Scan) -> Option<Quirk> {
    if !sc.digits {
        Some(Quirk::NoDigits)
    } else if !sc.rest_empty {
        Some(Quirk::TrailingGarbage)
    } else if sc.octal {
        Some(Quirk::Octal)
    } else {
        None
    }
}

/// `strtoull(s, NULL, base)` with xenguest's ERANGE → 0 rule. Returns the value and
/// whether errno was set (ERANGE).
pub fn strtoull(s: &str, base: u32) -> (u64, bool) {
    let sc = scan(s, base);
    if sc.overflow {
        return (u64::MAX, true);
    }
    let v = if sc.negative {
        sc.magnitude.wrapping_neg()
    } else {
        sc.magnitude
    };
    (v, false)
}

/// `strtoul(s, &end, base)`: value (wrapped for a minus sign, `u64::MAX` on overflow) and
/// the index of `end` (0 when nothing was converted).
pub fn strtoul_end(s: &str, base: u32) -> (u64, usize) {
    let sc = scan(s, base);
    let (v, _) = strtoull(s, base);
    (v, sc.end)
}

/// `strtol(s, NULL, base)` on LP64: saturates with ERANGE.
pub fn strtol(s: &str, base: u32) -> (i64, bool) {
    let sc = scan(s, base);
    if sc.negative {
        if sc.overflow || sc.magnitude > 1u64 << 63 {
            return (i64::MIN, true);
        }
        // magnitude <= 2^63 here; 2^63 maps to i64::MIN exactly.
        let v = i64::try_from(sc.magnitude).map_or(i64::MIN, |m| -m);
        (v, false)
    } else {
        match i64::try_from(sc.magnitude) {
            Ok(v) if !sc.overflow => (v, false),
            _ => (i64::MAX, true),
        }
    }
}

/// `errno = 0; v = strtoull(s, NULL, base); if (errno) v = 0;`: xenguest's way of reading
/// a number (`xenstore_get_value`, `get_image_max_size`). Leading whitespace and a sign
/// are accepted, a minus sign wraps, text after the number is ignored, no digits give 0,
/// and an overflow (ERANGE) gives 0 with [`Quirk::OutOfRange`]. Input is cut at the first
/// NUL, where the C string ends.
pub fn strtoull_or_zero(s: &str, base: u32) -> Parsed<u64> {
    let s = s.split('\0').next().unwrap_or("");
    let sc = scan(s, base);
    let (v, erange) = strtoull(s, base);
    if erange {
        return Parsed {
            value: 0,
            quirk: Some(Quirk::OutOfRange),
        };
    }
    let quirk = if sc.negative && sc.magnitude != 0 {
        Some(Quirk::NegativeWraps)
    } else {
        first_quirk(&sc)
    };
    Parsed { value: v, quirk }
}

/// xenguest's `xenstore_get_value` on a present key: `"true"`/`"false"` (any case), else
/// `strtoull(s, NULL, 0)` with ERANGE → 0. `valid` is false only on ERANGE.
pub fn xs_num(s: &str) -> (Parsed<u64>, bool) {
    if s.eq_ignore_ascii_case("true") {
        return (
            Parsed {
                value: 1,
                quirk: None,
            },
            true,
        );
    }
    if s.eq_ignore_ascii_case("false") {
        return (
            Parsed {
                value: 0,
                quirk: None,
            },
            true,
        );
    }
    let p = strtoull_or_zero(s, 0);
    (p, p.quirk != Some(Quirk::OutOfRange))
}

/// Truncates a `u64` to a C `int` the way an implicit conversion does (low 32 bits,
/// two's complement).
pub fn to_c_int(v: u64) -> i32 {
    i32::from_ne_bytes(to_c_uint(v).to_ne_bytes())
}

/// Truncates a `u64` to a C `unsigned int` (low 32 bits).
pub fn to_c_uint(v: u64) -> u32 {
    u32::try_from(v & 0xFFFF_FFFF).unwrap_or(u32::MAX)
}

/// Truncates a `u64` to a C `uint16_t` (low 16 bits).
pub fn to_u16(v: u64) -> u16 {
    u16::try_from(v & 0xFFFF).unwrap_or(u16::MAX)
}

/// `sscanf(s, "%" PRId64, &x)`: signed decimal after optional whitespace; `None` when no
/// number was matched (the C variable then keeps its old value, 0). Overflow saturates
/// (glibc behaviour).
pub fn scan_i64(s: &str) -> Parsed<Option<i64>> {
    let sc = scan(s, 10);
    if !sc.digits {
        return Parsed {
            value: None,
            quirk: Some(Quirk::NoDigits),
        };
    }
    let (v, erange) = strtol(s, 10);
    let quirk = if erange {
        Some(Quirk::OutOfRange)
    } else if !sc.rest_empty {
        Some(Quirk::TrailingGarbage)
    } else {
        None
    };
    Parsed {
        value: Some(v),
        quirk,
    }
}

/// `strtol(s, &end, 10)` as xenguest's command line uses it: the whole string must be
/// consumed (an empty string is 0). Returns `None` for an invalid integer. The value is
/// then an `int`: anything outside `i32` is truncated like the C assignment.
pub fn cli_int(s: &str) -> Option<i32> {
    let sc = scan(s, 10);
    if !sc.rest_empty {
        return None;
    }
    if !sc.digits {
        // strtol consumed nothing: end == s. xenguest checks only `*end != '\0'`, so an
        // empty string (or only whitespace/sign, which leaves end at s too) is accepted
        // only when the string is empty.
        return if s.is_empty() { Some(0) } else { None };
    }
    let (v, _) = strtol(s, 10);
    Some(i32::from_ne_bytes(
        u32::try_from(u64::from_ne_bytes(v.to_ne_bytes()) & 0xFFFF_FFFF)
            .unwrap_or(0)
            .to_ne_bytes(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strtoull_bases_and_garbage() {
        assert_eq!(strtoull("0x10", 0), (16, false));
        assert_eq!(strtoull("010", 0), (8, false));
        assert_eq!(strtoull("12abc", 0), (12, false));
        assert_eq!(strtoull("abc", 0), (0, false));
        assert_eq!(strtoull("  7", 0), (7, false));
        assert_eq!(strtoull("0x", 0), (0, false));
        assert_eq!(strtoull("-1", 0), (u64::MAX, false));
        assert_eq!(strtoull("99999999999999999999", 0), (u64::MAX, true));
        assert_eq!(strtoull("09", 0), (0, false));
    }

    #[test]
    fn xs_num_quirks() {
        assert_eq!(xs_num("TRUE").0.value, 1);
        assert_eq!(xs_num("False").0.value, 0);
        assert_eq!(xs_num("256").0.quirk, None);
        assert_eq!(xs_num("256x").0.quirk, Some(Quirk::TrailingGarbage));
        assert_eq!(xs_num("yes").0.quirk, Some(Quirk::NoDigits));
        assert_eq!(xs_num("010").0.quirk, Some(Quirk::Octal));
        assert_eq!(xs_num("0").0.quirk, None);
        assert_eq!(xs_num("-1").0.quirk, Some(Quirk::NegativeWraps));
        let (p, valid) = xs_num("123456789012345678901234");
        assert_eq!((p.value, valid), (0, false));
        assert_eq!(p.quirk, Some(Quirk::OutOfRange));
    }

    #[test]
    fn strtoull_or_zero_like_xenguest() {
        let p = |s: &str| {
            let r = strtoull_or_zero(s, 0);
            (r.value, r.quirk)
        };
        assert_eq!(p(" \t+42"), (42, None));
        assert_eq!(p("0x1F"), (31, None));
        assert_eq!(p("42kB"), (42, Some(Quirk::TrailingGarbage)));
        assert_eq!(p("42\0kB"), (42, None), "the C string ends at the NUL");
        assert_eq!(p(""), (0, Some(Quirk::NoDigits)));
        assert_eq!(p("+"), (0, Some(Quirk::NoDigits)));
        assert_eq!(p("0x"), (0, Some(Quirk::TrailingGarbage)));
        assert_eq!(p("017"), (15, Some(Quirk::Octal)));
        assert_eq!(p("019"), (1, Some(Quirk::TrailingGarbage)));
        assert_eq!(p("-2"), (u64::MAX - 1, Some(Quirk::NegativeWraps)));
        assert_eq!(p("-0"), (0, None));
        assert_eq!(p("18446744073709551615"), (u64::MAX, None));
        assert_eq!(p("18446744073709551616"), (0, Some(Quirk::OutOfRange)));
        assert_eq!(p("-18446744073709551616"), (0, Some(Quirk::OutOfRange)));
        assert_eq!(strtoull_or_zero("ff", 16).value, 255);
        // xs_num keeps its rules on top: booleans, and ERANGE makes the value invalid.
        assert_eq!(xs_num("TRUE").0.value, 1);
        assert!(!xs_num("18446744073709551616").1);
        assert!(xs_num("12x").1);
    }

    #[test]
    fn truncations() {
        assert_eq!(to_u16(70000), 4464);
        assert_eq!(to_c_int(u64::MAX), -1);
        assert_eq!(to_c_int(0x1_0000_0002), 2);
        assert_eq!(to_c_uint(0x1_0000_0002), 2);
    }

    #[test]
    fn scan_i64_like_sscanf() {
        assert_eq!(scan_i64("-3600").value, Some(-3600));
        assert_eq!(scan_i64(" 42s").value, Some(42));
        assert_eq!(scan_i64(" 42s").quirk, Some(Quirk::TrailingGarbage));
        assert_eq!(scan_i64("x").value, None);
        assert_eq!(scan_i64("0x10").value, Some(0));
    }

    #[test]
    fn cli_int_like_xenguest() {
        assert_eq!(cli_int("12"), Some(12));
        assert_eq!(cli_int(""), Some(0));
        assert_eq!(cli_int("-5"), Some(-5));
        assert_eq!(cli_int("12a"), None);
        assert_eq!(cli_int("abc"), None);
        assert_eq!(cli_int("0x10"), None);
        assert_eq!(cli_int(" 7"), Some(7));
        assert_eq!(cli_int("4294967297"), Some(1));
    }

    #[test]
    fn strtol_saturates() {
        assert_eq!(strtol("99999999999999999999", 0), (i64::MAX, true));
        assert_eq!(strtol("-99999999999999999999", 0), (i64::MIN, true));
        assert_eq!(strtol("-9223372036854775808", 10), (i64::MIN, false));
        assert_eq!(strtol("0x1f", 0), (31, false));
    }
}
