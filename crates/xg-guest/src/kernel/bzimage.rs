//! The Linux bzImage header (`Documentation/x86/boot.rst`, libxenguest's
//! `xc_dom_probe_bzimage_kernel`): where the compressed kernel payload lies.

use super::KernelError;

/// Offset of `setup_sects`.
const SETUP_SECTS: usize = 0x1F1;
/// Offset of the `"HdrS"` magic.
const HEADER_MAGIC: usize = 0x202;
/// Offset of the boot protocol version.
const VERSION: usize = 0x206;
/// Offset of `payload_offset` (boot protocol 2.08).
const PAYLOAD_OFFSET: usize = 0x248;
/// Offset of `payload_length`.
const PAYLOAD_LENGTH: usize = 0x24C;
/// `sizeof(struct setup_header)` as libxenguest declares it (up to `payload_length`).
pub const SETUP_HEADER_END: usize = 0x250;
/// Oldest protocol with payload fields (2.08).
pub const MIN_VERSION: u16 = 0x0208;

fn le16(d: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([d[at], d[at + 1]])
}

fn le32(d: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]])
}

/// The payload of a bzImage, `None` when `data` is no bzImage (too short or no `HdrS`).
pub fn payload(data: &[u8]) -> Result<Option<&[u8]>, KernelError> {
    if data.len() < SETUP_HEADER_END || &data[HEADER_MAGIC..HEADER_MAGIC + 4] != b"HdrS" {
        return Ok(None);
    }
    let version = le16(data, VERSION);
    if version < MIN_VERSION {
        return Err(KernelError::BootProtocolTooOld { version });
    }
    let len = xg_ctrl::types::conv::usize_to_u64(data.len());
    // All u64: cannot overflow.
    let offset = (u64::from(data[SETUP_SECTS]) + 1) * 512 + u64::from(le32(data, PAYLOAD_OFFSET));
    let length = u64::from(le32(data, PAYLOAD_LENGTH));
    if offset >= len {
        return Err(KernelError::PayloadOffset { offset, len });
    }
    if offset + length > len {
        return Err(KernelError::PayloadLength {
            offset,
            length,
            len,
        });
    }
    let start = xg_ctrl::types::conv::u64_to_usize(offset);
    let end = xg_ctrl::types::conv::u64_to_usize(offset + length);
    Ok(Some(&data[start..end]))
}

/// A minimal bzImage around `payload` (for tests): one setup sector, protocol 2.15,
/// the payload right after the setup code.
pub fn wrap_payload(payload: &[u8]) -> Vec<u8> {
    let setup_sects = 1u8;
    let pm_start = (usize::from(setup_sects) + 1) * 512;
    let mut out = vec![0u8; pm_start];
    out[SETUP_SECTS] = setup_sects;
    out[0x1FE] = 0x55;
    out[0x1FF] = 0xAA;
    out[HEADER_MAGIC..HEADER_MAGIC + 4].copy_from_slice(b"HdrS");
    out[VERSION..VERSION + 2].copy_from_slice(&0x020Fu16.to_le_bytes());
    out[PAYLOAD_OFFSET..PAYLOAD_OFFSET + 4].copy_from_slice(&0u32.to_le_bytes());
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out[PAYLOAD_LENGTH..PAYLOAD_LENGTH + 4].copy_from_slice(&len.to_le_bytes());
    out.extend_from_slice(payload);
    out
}
