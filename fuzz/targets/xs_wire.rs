//! Fuzz target: the Xenstore wire decoder and the payload helpers.
//!
//! The first input byte picks the chunk size the rest is fed in (a stream arrives in
//! arbitrary pieces). Checked: no panic; a frame never carries more than `PAYLOAD_MAX`
//! bytes; a normal frame's payload length equals its header's; re-encoding a frame of a
//! known type gives back the exact bytes; memory stays proportional to the input.
#![allow(dead_code)]

use xg_store::wire::{self, Decoder, Header, HEADER_LEN, PAYLOAD_MAX};

/// Name in reports.
pub const NAME: &str = "xs_wire";
/// Inputs are cut to this length.
pub const MAX_LEN: usize = 64 * 1024;
/// Tokens worth inserting.
pub const DICT: &[&[u8]] = &[
    b"\x01\x00\x00\x00",
    b"\x02\x00\x00\x00",
    b"\x0f\x00\x00\x00",
    b"\x10\x00\x00\x00",
    b"\x00\x10\x00\x00",
    b"\x01\x10\x00\x00",
    b"\x00\x00\x10\x00",
    b"\x01\x00\x10\x00",
    b"ENOENT\0",
    b"EAGAIN\0",
    b"EQUOTA\0",
    b"/local/domain/1\0",
    b"\0",
];

/// Decoder buffers grow by doubling: a few times the input, plus one payload.
pub fn alloc_cap(len: usize) -> usize {
    4 * len + 4 * PAYLOAD_MAX + 4096
}

fn frame(ty: u32, req: u32, tx: u32, payload: &[u8]) -> Vec<u8> {
    let h = Header {
        msg_type: ty,
        req_id: req,
        tx_id: tx,
        len: u32::try_from(payload.len()).unwrap_or(u32::MAX),
    };
    let mut v = h.to_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

/// Seed inputs: well-formed replies and events, an error, an oversized header.
pub fn seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut two = vec![7u8];
    two.extend(frame(2, 1, 0, b"hello"));
    two.extend(frame(15, 0, 0, b"/a/b\0tok\0"));
    out.push(two);
    let mut err = vec![1u8];
    err.extend(frame(16, 9, 3, b"ENOENT\0"));
    out.push(err);
    let mut dir = vec![0u8];
    dir.extend(frame(1, 2, 0, b"a\0b\0c\0"));
    out.push(dir);
    let mut big = vec![200u8];
    big.extend(frame(2, 3, 0, &[]));
    let n = big.len();
    big[n - 4..].copy_from_slice(&5000u32.to_le_bytes());
    big.extend(std::iter::repeat_n(b'x', 5000));
    big.extend(frame(2, 4, 0, b"after"));
    out.push(big);
    out
}

/// Checks one input.
pub fn check(data: &[u8]) {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut d = Decoder::new();
    let mut fed = 0usize;
    let mut consumed = 0usize;
    for piece in stream.chunks(chunk) {
        d.feed(piece);
        fed += piece.len();
        loop {
            match d.next_frame() {
                Ok(Some(f)) => {
                    assert!(f.payload.len() <= PAYLOAD_MAX, "payload over the cap");
                    let len = usize::try_from(f.header.len).unwrap_or(usize::MAX);
                    if f.oversized {
                        assert!(f.payload.is_empty());
                        assert!(len > PAYLOAD_MAX);
                    } else {
                        assert_eq!(f.payload.len(), len, "payload length differs");
                        let start = consumed;
                        consumed += HEADER_LEN + len;
                        let original = &stream[start..consumed];
                        if let Some(kind) = f.header.kind() {
                            if !f.payload.is_empty() {
                                let again =
                                    wire::encode(kind, f.header.req_id, f.header.tx_id, &f.payload)
                                        .expect("a decoded frame re-encodes");
                                assert_eq!(again, original, "re-encoding differs");
                            }
                        }
                    }
                    let name = wire::error_name(&f.payload);
                    let errno = wire::errno_of(&name);
                    assert_eq!(wire::errno_of(wire::name_of(errno)), errno);
                    let parts = wire::split_strings(&f.payload);
                    assert!(parts.len() <= f.payload.len() + 1);
                    let _ = wire::first_string(&f.payload);
                    if f.oversized {
                        consumed += HEADER_LEN + len;
                    }
                }
                Ok(None) => break,
                // The stream cannot be resynchronised: the client drops the connection.
                Err(_) => return,
            }
        }
        assert!(d.buffered() <= fed, "decoder holds more than it was fed");
    }
}
