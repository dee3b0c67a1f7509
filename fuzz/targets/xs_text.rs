//! Fuzz target: Xenstore paths, permission entries and the `KEY=VALUE` seed format.
//!
//! The input is text: each line is tried as a path (canonicalised for dom0 and a guest,
//! validated), as a permission entry, and the whole text as a `--platform-file`-style
//! seed for a [`MemStore`], which is then read back. Checked: no panic, canonical paths
//! validate and are stable, every seeded key reads back its value.
#![allow(dead_code)]

use xg_store::{path, MemStore, Perm, Store, TxId};

/// Name in reports.
pub const NAME: &str = "xs_text";
/// Inputs are cut to this length.
pub const MAX_LEN: usize = 16 * 1024;
/// Tokens worth inserting.
pub const DICT: &[&[u8]] = &[
    b"/local/domain/",
    b"@introduceDomain",
    b"@releaseDomain",
    b"/",
    b"//",
    b"..",
    b"=",
    b"\n",
    b"#",
    b"r5",
    b"b0",
    b"n65535",
    b"w4294967296",
    b"platform/vcpu/number",
];

/// Nodes and lines are small; the store's maps grow with the number of lines.
pub fn alloc_cap(len: usize) -> usize {
    256 * len + 64 * 1024
}

/// Seed inputs.
pub fn seeds() -> Vec<Vec<u8>> {
    vec![
        b"/local/domain/5/name=guest\nplatform/acpi=1\n# comment\n\n".to_vec(),
        b"/a/b/c=1\n/a/b=2\n/a=3\n".to_vec(),
        b"@introduceDomain\nrelative/path\n/trailing/\n".to_vec(),
        b"r5\nb0\nn1\nx9\n".to_vec(),
    ]
}

/// Checks one input.
pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for line in text.lines().take(64) {
        for caller in [0u32, 5] {
            if let Ok(abs) = path::canonicalize(line, caller) {
                if !abs.starts_with('@') {
                    path::validate(&abs).expect("a canonical path validates");
                    assert_eq!(path::canonicalize(&abs, caller).ok(), Some(abs.clone()));
                    if let Some(p) = path::parent(&abs) {
                        assert!(path::is_below(&abs, p) || p == "/");
                    }
                    let _ = path::basename(&abs);
                }
            }
        }
        if let Some(p) = Perm::parse(line) {
            assert_eq!(Perm::parse(&p.to_string()), Some(p));
        }
    }
    if let Ok(store) = MemStore::from_kv_lines(&text) {
        let _ = store.dump();
        for (k, v) in store.entries() {
            assert_eq!(store.read(TxId::NONE, &k).expect("seeded key reads"), v);
        }
    }
}
