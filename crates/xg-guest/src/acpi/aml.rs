//! A few AML encodings (ACPI 6.x §20) and the PVH DSDT made with them.

/// `PkgLength` of a package whose contents (after the PkgLength) are `body_len` bytes.
pub fn pkg_length(body_len: usize) -> Vec<u8> {
    // The encoded length counts the PkgLength bytes themselves.
    for extra in 0..4usize {
        let total = body_len + 1 + extra;
        let fits = match extra {
            0 => total < 0x40,
            1 => total < 0x1000,
            2 => total < 0x10_0000,
            _ => total < 0x1000_0000,
        };
        if !fits {
            continue;
        }
        if extra == 0 {
            return vec![low_byte(total)];
        }
        let mut out = vec![low_byte((extra << 6) | (total & 0xF))];
        let mut rest = total >> 4;
        for _ in 0..extra {
            out.push(low_byte(rest & 0xFF));
            rest >>= 8;
        }
        return out;
    }
    vec![0]
}

fn low_byte(v: usize) -> u8 {
    u8::try_from(v & 0xFF).unwrap_or(0)
}

fn package(prefix: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = prefix.to_vec();
    out.extend(pkg_length(body.len()));
    out.extend_from_slice(body);
    out
}

/// `Name(seg, "string")`.
pub fn name_string(seg: &[u8; 4], s: &str) -> Vec<u8> {
    let mut out = vec![0x08];
    out.extend_from_slice(seg);
    out.push(0x0D);
    out.extend_from_slice(s.as_bytes());
    out.push(0);
    out
}

/// `Name(seg, integer)` for a byte value.
pub fn name_byte(seg: &[u8; 4], v: u8) -> Vec<u8> {
    let mut out = vec![0x08];
    out.extend_from_slice(seg);
    out.extend(byte_const(v));
    out
}

fn byte_const(v: u8) -> Vec<u8> {
    match v {
        0 => vec![0x00],
        1 => vec![0x01],
        _ => vec![0x0A, v],
    }
}

/// `Method(seg, 0) { Return(v) }`.
pub fn method_return_byte(seg: &[u8; 4], v: u8) -> Vec<u8> {
    let mut body = seg.to_vec();
    body.push(0); // no arguments, not serialized
    body.push(0xA4);
    body.extend(byte_const(v));
    package(&[0x14], &body)
}

/// `Processor(name, id, pblk, pblk_len) { body }`.
pub fn processor(name: &[u8; 4], id: u8, pblk: u32, pblk_len: u8, inner: &[u8]) -> Vec<u8> {
    let mut body = name.to_vec();
    body.push(id);
    body.extend_from_slice(&pblk.to_le_bytes());
    body.push(pblk_len);
    body.extend_from_slice(inner);
    package(&[0x5B, 0x83], &body)
}

/// `Scope(\name) { body }`.
pub fn scope_root(name: &[u8; 4], inner: &[u8]) -> Vec<u8> {
    let mut body = vec![b'\\'];
    body.extend_from_slice(name);
    body.extend_from_slice(inner);
    package(&[0x10], &body)
}

/// `PRnn` with two upper-case hex digits.
pub fn processor_name(cpu: u32) -> [u8; 4] {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let hi = usize::try_from((cpu >> 4) & 0xF).unwrap_or(0);
    let lo = usize::try_from(cpu & 0xF).unwrap_or(0);
    [b'P', b'R', HEX[hi], HEX[lo]]
}

/// The DSDT: `Scope(\_SB)` with one `Processor(PRnn, n, 0xb010, 6)` per vCPU, each with
/// `_HID "ACPI0007"`, `_UID n` and `_STA` 0xF (online at boot) or 0.
pub fn pvh_dsdt(
    nr_vcpus: u32,
    oem_id: &[u8; 6],
    oem_table_id: &[u8; 8],
    creator: &[u8; 4],
    online: &dyn Fn(u32) -> bool,
) -> Vec<u8> {
    let mut procs = Vec::new();
    for cpu in 0..nr_vcpus {
        let id = u8::try_from(cpu).unwrap_or(u8::MAX);
        let mut inner = name_string(b"_HID", "ACPI0007");
        inner.extend(name_byte(b"_UID", id));
        inner.extend(method_return_byte(
            b"_STA",
            if online(cpu) { 0x0F } else { 0 },
        ));
        procs.extend(processor(&processor_name(cpu), id, 0xB010, 6, &inner));
    }
    let body = scope_root(b"_SB_", &procs);
    let len = 36 + body.len();
    let mut t = vec![0u8; 36];
    t[0..4].copy_from_slice(b"DSDT");
    t[4..8].copy_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
    t[8] = 2;
    t[10..16].copy_from_slice(oem_id);
    t[16..24].copy_from_slice(oem_table_id);
    t[28..32].copy_from_slice(creator);
    t.extend(body);
    super::set_checksum(&mut t, 9);
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkg_length_encodings() {
        assert_eq!(pkg_length(0x3E), vec![0x3F]);
        // 0x3F + 2 bytes = 0x41: two-byte form 0x41 -> lead 0x41, next 0x04.
        assert_eq!(pkg_length(0x3F), vec![0x41, 0x04]);
        assert_eq!(pkg_length(0xFFD), vec![0x4F, 0xFF]);
        assert_eq!(pkg_length(0xFFE), vec![0x81, 0x00, 0x01]);
    }
}
