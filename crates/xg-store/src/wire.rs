//! The Xenstore wire protocol, without I/O.
//!
//! A message is a 16-byte header (`type`, `req_id`, `tx_id`, `len`, each a little-endian
//! `u32`) followed by `len` bytes of payload, at most [`PAYLOAD_MAX`]. [`encode`] builds
//! one frame; [`Decoder`] takes bytes as they arrive and hands out whole frames, refusing
//! lengths over the cap without allocating them.

use crate::error::{Error, Result};

/// `XENSTORE_PAYLOAD_MAX`: the largest payload either side may send.
pub const PAYLOAD_MAX: usize = 4096;
/// Size of `struct xsd_sockmsg`.
pub const HEADER_LEN: usize = 16;
/// `XENSTORE_ABS_PATH_MAX`.
pub const ABS_PATH_MAX: usize = 3072;
/// `XENSTORE_REL_PATH_MAX`.
pub const REL_PATH_MAX: usize = 2048;

/// How far past [`PAYLOAD_MAX`] a reply may go before the stream is declared broken.
///
/// oxenstored answers a large `XS_DIRECTORY` with an oversized reply; such a frame is
/// skipped (its bytes are read and dropped, never buffered) and reported to its request.
/// Anything longer is taken as a corrupt stream.
pub const SKIP_MAX: usize = 1 << 20;

/// Message types of `enum xsd_sockmsg_type` (Xen 4.17 `xs_wire.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum MsgType {
    /// `XS_CONTROL` (also `XS_DEBUG`).
    Control = 0,
    /// `XS_DIRECTORY`.
    Directory = 1,
    /// `XS_READ`.
    Read = 2,
    /// `XS_GET_PERMS`.
    GetPerms = 3,
    /// `XS_WATCH`.
    Watch = 4,
    /// `XS_UNWATCH`.
    Unwatch = 5,
    /// `XS_TRANSACTION_START`.
    TransactionStart = 6,
    /// `XS_TRANSACTION_END`.
    TransactionEnd = 7,
    /// `XS_INTRODUCE`.
    Introduce = 8,
    /// `XS_RELEASE`.
    Release = 9,
    /// `XS_GET_DOMAIN_PATH`.
    GetDomainPath = 10,
    /// `XS_WRITE`.
    Write = 11,
    /// `XS_MKDIR`.
    Mkdir = 12,
    /// `XS_RM`.
    Rm = 13,
    /// `XS_SET_PERMS`.
    SetPerms = 14,
    /// `XS_WATCH_EVENT`.
    WatchEvent = 15,
    /// `XS_ERROR`.
    Error = 16,
    /// `XS_IS_DOMAIN_INTRODUCED`.
    IsDomainIntroduced = 17,
    /// `XS_RESUME`.
    Resume = 18,
    /// `XS_SET_TARGET`.
    SetTarget = 19,
    /// `XS_RESET_WATCHES` (20, the removed `XS_RESTRICT`, is skipped).
    ResetWatches = 21,
    /// `XS_DIRECTORY_PART`.
    DirectoryPart = 22,
}

impl MsgType {
    /// `XS_DEBUG`, an alias of [`MsgType::Control`].
    pub const DEBUG: MsgType = MsgType::Control;
    /// `XS_TYPE_COUNT`: one past the last valid type.
    pub const TYPE_COUNT: u32 = 23;
    /// `XS_INVALID`.
    pub const INVALID: u32 = 0xffff;

    /// Every known type, in numeric order.
    pub const ALL: [MsgType; 22] = [
        MsgType::Control,
        MsgType::Directory,
        MsgType::Read,
        MsgType::GetPerms,
        MsgType::Watch,
        MsgType::Unwatch,
        MsgType::TransactionStart,
        MsgType::TransactionEnd,
        MsgType::Introduce,
        MsgType::Release,
        MsgType::GetDomainPath,
        MsgType::Write,
        MsgType::Mkdir,
        MsgType::Rm,
        MsgType::SetPerms,
        MsgType::WatchEvent,
        MsgType::Error,
        MsgType::IsDomainIntroduced,
        MsgType::Resume,
        MsgType::SetTarget,
        MsgType::ResetWatches,
        MsgType::DirectoryPart,
    ];

    /// The type with wire number `n`, if known.
    pub fn from_u32(n: u32) -> Option<MsgType> {
        MsgType::ALL.iter().copied().find(|t| *t as u32 == n)
    }

    /// The C name, e.g. `"XS_READ"`.
    pub fn name(self) -> &'static str {
        match self {
            MsgType::Control => "XS_CONTROL",
            MsgType::Directory => "XS_DIRECTORY",
            MsgType::Read => "XS_READ",
            MsgType::GetPerms => "XS_GET_PERMS",
            MsgType::Watch => "XS_WATCH",
            MsgType::Unwatch => "XS_UNWATCH",
            MsgType::TransactionStart => "XS_TRANSACTION_START",
            MsgType::TransactionEnd => "XS_TRANSACTION_END",
            MsgType::Introduce => "XS_INTRODUCE",
            MsgType::Release => "XS_RELEASE",
            MsgType::GetDomainPath => "XS_GET_DOMAIN_PATH",
            MsgType::Write => "XS_WRITE",
            MsgType::Mkdir => "XS_MKDIR",
            MsgType::Rm => "XS_RM",
            MsgType::SetPerms => "XS_SET_PERMS",
            MsgType::WatchEvent => "XS_WATCH_EVENT",
            MsgType::Error => "XS_ERROR",
            MsgType::IsDomainIntroduced => "XS_IS_DOMAIN_INTRODUCED",
            MsgType::Resume => "XS_RESUME",
            MsgType::SetTarget => "XS_SET_TARGET",
            MsgType::ResetWatches => "XS_RESET_WATCHES",
            MsgType::DirectoryPart => "XS_DIRECTORY_PART",
        }
    }
}

/// A message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Raw message type (kept raw: a peer may send a number we do not know).
    pub msg_type: u32,
    /// Request id, echoed in the reply.
    pub req_id: u32,
    /// Transaction id, 0 outside transactions.
    pub tx_id: u32,
    /// Payload length.
    pub len: u32,
}

impl Header {
    /// The 16 wire bytes.
    pub fn to_bytes(self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&self.msg_type.to_le_bytes());
        b[4..8].copy_from_slice(&self.req_id.to_le_bytes());
        b[8..12].copy_from_slice(&self.tx_id.to_le_bytes());
        b[12..16].copy_from_slice(&self.len.to_le_bytes());
        b
    }

    /// Parses 16 wire bytes.
    pub fn from_bytes(b: &[u8; HEADER_LEN]) -> Header {
        let word = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Header {
            msg_type: word(0),
            req_id: word(4),
            tx_id: word(8),
            len: word(12),
        }
    }

    /// The known message type, if any.
    pub fn kind(&self) -> Option<MsgType> {
        MsgType::from_u32(self.msg_type)
    }
}

/// One decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Its header.
    pub header: Header,
    /// Its payload; empty when [`Frame::oversized`] is set.
    pub payload: Vec<u8>,
    /// The peer sent more than [`PAYLOAD_MAX`] bytes; they were dropped unread.
    pub oversized: bool,
}

/// Encodes one request frame.
///
/// Refuses a payload over [`PAYLOAD_MAX`] and an empty payload (oxenstored does not process
/// a zero-length request until more bytes arrive) with [`Error::Invalid`].
pub fn encode(msg_type: MsgType, req_id: u32, tx_id: u32, payload: &[u8]) -> Result<Vec<u8>> {
    if payload.is_empty() {
        return Err(Error::Invalid {
            detail: format!("{} with an empty payload", msg_type.name()),
        });
    }
    if payload.len() > PAYLOAD_MAX {
        return Err(Error::Invalid {
            detail: format!(
                "{} payload of {} bytes exceeds {PAYLOAD_MAX}",
                msg_type.name(),
                payload.len()
            ),
        });
    }
    let len = u32::try_from(payload.len()).map_err(|_| Error::Invalid {
        detail: "payload length overflows u32".into(),
    })?;
    let header = Header {
        msg_type: msg_type as u32,
        req_id,
        tx_id,
        len,
    };
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&header.to_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// Incremental frame decoder: [`Decoder::feed`] bytes, then take [`Decoder::next_frame`]
/// until it returns `None`.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Bytes of an oversized payload still to drop, and its header.
    skipping: Option<(Header, usize)>,
}

impl Decoder {
    /// An empty decoder.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Appends received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes buffered but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next whole frame, `Ok(None)` if more bytes are needed.
    ///
    /// A length over [`SKIP_MAX`] is a [`Error::Protocol`] and the stream cannot be
    /// resynchronised; one between [`PAYLOAD_MAX`] and [`SKIP_MAX`] is consumed without
    /// being stored and returned as an [`Frame::oversized`] frame.
    pub fn next_frame(&mut self) -> Result<Option<Frame>> {
        if let Some((header, left)) = self.skipping {
            let n = left.min(self.buf.len());
            self.buf.drain(..n);
            if n < left {
                self.skipping = Some((header, left - n));
                return Ok(None);
            }
            self.skipping = None;
            return Ok(Some(Frame {
                header,
                payload: Vec::new(),
                oversized: true,
            }));
        }
        let Some(head) = self.buf.first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let header = Header::from_bytes(head);
        let len = usize::try_from(header.len).unwrap_or(usize::MAX);
        if len > PAYLOAD_MAX {
            if len > SKIP_MAX {
                return Err(Error::Protocol {
                    detail: format!("message length {len} exceeds {PAYLOAD_MAX}"),
                });
            }
            self.buf.drain(..HEADER_LEN);
            self.skipping = Some((header, len));
            return self.next_frame();
        }
        if self.buf.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let payload = self.buf[HEADER_LEN..HEADER_LEN + len].to_vec();
        self.buf.drain(..HEADER_LEN + len);
        Ok(Some(Frame {
            header,
            payload,
            oversized: false,
        }))
    }
}

/// The errno a daemon error string stands for.
///
/// The table is `xsd_errors` of `xs_wire.h` plus `EQUOTA` (sent by oxenstored when a
/// quota is hit), mapped to `EDQUOT`. Unknown strings map to `EINVAL`, as libxenstore does.
pub fn errno_of(name: &str) -> i32 {
    match name {
        "EINVAL" => libc::EINVAL,
        "EACCES" => libc::EACCES,
        "EEXIST" => libc::EEXIST,
        "EISDIR" => libc::EISDIR,
        "ENOENT" => libc::ENOENT,
        "ENOMEM" => libc::ENOMEM,
        "ENOSPC" => libc::ENOSPC,
        "EIO" => libc::EIO,
        "ENOTEMPTY" => libc::ENOTEMPTY,
        "ENOSYS" => libc::ENOSYS,
        "EROFS" => libc::EROFS,
        "EBUSY" => libc::EBUSY,
        "EAGAIN" => libc::EAGAIN,
        "EISCONN" => libc::EISCONN,
        "E2BIG" => libc::E2BIG,
        "EPERM" => libc::EPERM,
        "EQUOTA" => libc::EDQUOT,
        _ => libc::EINVAL,
    }
}

/// The daemon error string for `errno` (the inverse of [`errno_of`]); `EINVAL` if none.
pub fn name_of(errno: i32) -> &'static str {
    const NAMES: [&str; 17] = [
        "EINVAL",
        "EACCES",
        "EEXIST",
        "EISDIR",
        "ENOENT",
        "ENOMEM",
        "ENOSPC",
        "EIO",
        "ENOTEMPTY",
        "ENOSYS",
        "EROFS",
        "EBUSY",
        "EAGAIN",
        "EISCONN",
        "E2BIG",
        "EPERM",
        "EQUOTA",
    ];
    NAMES
        .iter()
        .copied()
        .find(|n| errno_of(n) == errno)
        .unwrap_or("EINVAL")
}

/// The error name in an `XS_ERROR` payload (`"ENOENT\0"`).
pub fn error_name(payload: &[u8]) -> String {
    let end = payload
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(payload.len());
    String::from_utf8_lossy(&payload[..end]).into_owned()
}

/// Builds a payload of NUL-terminated strings, e.g. `path\0token\0`.
pub fn strings_payload(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for p in parts {
        out.extend_from_slice(p);
        out.push(0);
    }
    out
}

/// Splits a payload of NUL-terminated strings; a final unterminated piece is kept, the
/// empty piece after the last NUL is not.
pub fn split_strings(payload: &[u8]) -> Vec<String> {
    let mut parts: Vec<String> = payload
        .split(|&b| b == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    if payload.last() == Some(&0) || payload.is_empty() {
        parts.pop();
    }
    parts
}

/// The first NUL-terminated string of a payload (or all of it without a NUL).
pub fn first_string(payload: &[u8]) -> String {
    error_name(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_is_little_endian() {
        let h = Header {
            msg_type: 2,
            req_id: 0x0102_0304,
            tx_id: 7,
            len: 5,
        };
        let b = h.to_bytes();
        assert_eq!(b[..8], [2, 0, 0, 0, 4, 3, 2, 1]);
        assert_eq!(b[12..], [5, 0, 0, 0]);
        assert_eq!(Header::from_bytes(&b), h);
    }

    #[test]
    fn encode_refuses_empty_and_oversized_payloads() {
        assert!(matches!(
            encode(MsgType::Read, 1, 0, b""),
            Err(Error::Invalid { .. })
        ));
        assert!(matches!(
            encode(MsgType::Write, 1, 0, &[b'x'; PAYLOAD_MAX + 1]),
            Err(Error::Invalid { .. })
        ));
        let ok = encode(MsgType::Write, 9, 3, &[b'x'; PAYLOAD_MAX]).unwrap();
        assert_eq!(ok.len(), HEADER_LEN + PAYLOAD_MAX);
        assert_eq!(ok[0..4], [11, 0, 0, 0]);
        assert_eq!(ok[8..12], [3, 0, 0, 0]);
    }

    #[test]
    fn decoder_handles_byte_by_byte_and_batched_input() {
        let mut stream = encode(MsgType::Read, 1, 0, b"abc").unwrap();
        stream.extend(encode(MsgType::WatchEvent, 0, 0, b"/p\0tok\0").unwrap());
        let mut d = Decoder::new();
        let mut frames = Vec::new();
        for b in &stream {
            d.feed(std::slice::from_ref(b));
            while let Some(f) = d.next_frame().unwrap() {
                frames.push(f);
            }
        }
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].payload, b"abc");
        assert_eq!(frames[1].header.kind(), Some(MsgType::WatchEvent));
        assert_eq!(d.buffered(), 0);

        let mut d = Decoder::new();
        d.feed(&stream);
        assert_eq!(d.next_frame().unwrap().unwrap().header.req_id, 1);
        assert_eq!(d.next_frame().unwrap().unwrap().header.req_id, 0);
        assert!(d.next_frame().unwrap().is_none());
    }

    #[test]
    fn decoder_skips_oversized_payload_without_buffering_it() {
        let header = Header {
            msg_type: MsgType::Directory as u32,
            req_id: 4,
            tx_id: 0,
            len: 5000,
        };
        let mut d = Decoder::new();
        d.feed(&header.to_bytes());
        assert!(d.next_frame().unwrap().is_none());
        d.feed(&[b'a'; 4000]);
        assert!(d.next_frame().unwrap().is_none());
        assert_eq!(d.buffered(), 0, "skipped bytes are dropped, not kept");
        d.feed(&[b'a'; 1000]);
        d.feed(&encode(MsgType::Read, 5, 0, b"v").unwrap());
        let f = d.next_frame().unwrap().unwrap();
        assert!(f.oversized);
        assert_eq!(f.header.req_id, 4);
        let g = d.next_frame().unwrap().unwrap();
        assert_eq!((g.header.req_id, g.payload.as_slice()), (5, &b"v"[..]));
    }

    #[test]
    fn decoder_rejects_absurd_length() {
        let header = Header {
            msg_type: 2,
            req_id: 1,
            tx_id: 0,
            len: u32::MAX,
        };
        let mut d = Decoder::new();
        d.feed(&header.to_bytes());
        assert!(matches!(d.next_frame(), Err(Error::Protocol { .. })));
    }

    #[test]
    fn error_names_map_to_errno_and_back() {
        for (name, errno) in [
            ("ENOENT", libc::ENOENT),
            ("EACCES", libc::EACCES),
            ("EAGAIN", libc::EAGAIN),
            ("EINVAL", libc::EINVAL),
            ("E2BIG", libc::E2BIG),
            ("EQUOTA", libc::EDQUOT),
            ("EEXIST", libc::EEXIST),
            ("EISDIR", libc::EISDIR),
            ("ENOSPC", libc::ENOSPC),
            ("EIO", libc::EIO),
            ("EROFS", libc::EROFS),
            ("EBUSY", libc::EBUSY),
            ("ENOSYS", libc::ENOSYS),
            ("ENOMEM", libc::ENOMEM),
            ("EPERM", libc::EPERM),
            ("ENOTEMPTY", libc::ENOTEMPTY),
            ("EISCONN", libc::EISCONN),
        ] {
            assert_eq!(errno_of(name), errno, "{name}");
            assert_eq!(name_of(errno), name);
        }
        assert_eq!(errno_of("EWHATEVER"), libc::EINVAL);
        assert_eq!(error_name(b"ENOENT\0"), "ENOENT");
    }

    #[test]
    fn string_lists_split_like_the_daemons_send_them() {
        assert_eq!(split_strings(b"a\0b\0"), ["a", "b"]);
        assert_eq!(split_strings(b""), Vec::<String>::new());
        assert_eq!(split_strings(b"\0"), [""]);
        assert_eq!(split_strings(b"a\0b"), ["a", "b"]);
        assert_eq!(strings_payload(&[b"/p", b"t"]), b"/p\0t\0");
    }

    #[test]
    fn message_numbers_are_dense_except_restrict() {
        assert_eq!(MsgType::from_u32(20), None);
        assert_eq!(MsgType::from_u32(21), Some(MsgType::ResetWatches));
        assert_eq!(MsgType::DirectoryPart as u32 + 1, MsgType::TYPE_COUNT);
        assert_eq!(MsgType::DEBUG as u32, 0);
    }
}
