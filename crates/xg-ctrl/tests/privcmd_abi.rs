//! The hand-written privcmd uapi (ioctl numbers, struct sizes and offsets) against the C
//! header installed by libxen-dev (`/usr/include/xen/sys/privcmd.h`), compiled with gcc.

use std::collections::BTreeMap;
use std::mem::{offset_of, size_of};
use std::process::Command;

use xg_ctrl::privcmd::ioctl::*;

const HEADER: &str = "/usr/include/xen/sys/privcmd.h";

/// Every value the C side prints, by name.
const PROGRAM: &str = r#"
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <xen/xen.h>
#include <xen/sys/privcmd.h>

#define V(name, value) printf("%s %llu\n", name, (unsigned long long)(value))

int main(void)
{
    V("IOCTL_PRIVCMD_HYPERCALL", IOCTL_PRIVCMD_HYPERCALL);
    V("IOCTL_PRIVCMD_MMAPBATCH_V2", IOCTL_PRIVCMD_MMAPBATCH_V2);
    V("IOCTL_PRIVCMD_MMAP_RESOURCE", IOCTL_PRIVCMD_MMAP_RESOURCE);
    V("IOCTL_PRIVCMD_DM_OP", IOCTL_PRIVCMD_DM_OP);
    V("IOCTL_PRIVCMD_RESTRICT", IOCTL_PRIVCMD_RESTRICT);
    V("hypercall.size", sizeof(privcmd_hypercall_t));
    V("hypercall.arg", offsetof(privcmd_hypercall_t, arg));
    V("mmapbatch_v2.size", sizeof(privcmd_mmapbatch_v2_t));
    V("mmapbatch_v2.dom", offsetof(privcmd_mmapbatch_v2_t, dom));
    V("mmapbatch_v2.addr", offsetof(privcmd_mmapbatch_v2_t, addr));
    V("mmapbatch_v2.arr", offsetof(privcmd_mmapbatch_v2_t, arr));
    V("mmapbatch_v2.err", offsetof(privcmd_mmapbatch_v2_t, err));
    V("mmap_resource.size", sizeof(privcmd_mmap_resource_t));
    V("mmap_resource.type", offsetof(privcmd_mmap_resource_t, type));
    V("mmap_resource.id", offsetof(privcmd_mmap_resource_t, id));
    V("mmap_resource.idx", offsetof(privcmd_mmap_resource_t, idx));
    V("mmap_resource.num", offsetof(privcmd_mmap_resource_t, num));
    V("mmap_resource.addr", offsetof(privcmd_mmap_resource_t, addr));
    V("dm_op.size", sizeof(privcmd_dm_op_t));
    V("dm_op.num", offsetof(privcmd_dm_op_t, num));
    V("dm_op.ubufs", offsetof(privcmd_dm_op_t, ubufs));
    V("dm_op_buf.size", sizeof(privcmd_dm_op_buf_t));
    V("dm_op_buf.len", offsetof(privcmd_dm_op_buf_t, size));
    return 0;
}
"#;

fn c_values() -> BTreeMap<String, u64> {
    assert!(
        std::path::Path::new(HEADER).exists(),
        "{HEADER} is missing: install libxen-dev (cargo xtask ci does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("privcmd_abi.c");
    let exe = dir.path().join("privcmd_abi");
    std::fs::write(&src, PROGRAM).unwrap();
    let status = Command::new("gcc")
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .status()
        .expect("gcc is needed for this test");
    assert!(status.success(), "compiling against {HEADER} failed");
    let out = Command::new(&exe).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let (name, value) = line.split_once(' ').unwrap();
            (name.to_owned(), value.parse().unwrap())
        })
        .collect()
}

#[test]
fn privcmd_uapi_matches_the_c_header() {
    let u = |v: usize| v as u64;
    let rust: BTreeMap<String, u64> = [
        ("IOCTL_PRIVCMD_HYPERCALL", IOCTL_PRIVCMD_HYPERCALL),
        ("IOCTL_PRIVCMD_MMAPBATCH_V2", IOCTL_PRIVCMD_MMAPBATCH_V2),
        ("IOCTL_PRIVCMD_MMAP_RESOURCE", IOCTL_PRIVCMD_MMAP_RESOURCE),
        ("IOCTL_PRIVCMD_DM_OP", IOCTL_PRIVCMD_DM_OP),
        ("IOCTL_PRIVCMD_RESTRICT", IOCTL_PRIVCMD_RESTRICT),
        ("hypercall.size", u(size_of::<PrivcmdHypercall>())),
        ("hypercall.arg", u(offset_of!(PrivcmdHypercall, arg))),
        ("mmapbatch_v2.size", u(size_of::<PrivcmdMmapBatchV2>())),
        ("mmapbatch_v2.dom", u(offset_of!(PrivcmdMmapBatchV2, dom))),
        ("mmapbatch_v2.addr", u(offset_of!(PrivcmdMmapBatchV2, addr))),
        ("mmapbatch_v2.arr", u(offset_of!(PrivcmdMmapBatchV2, arr))),
        ("mmapbatch_v2.err", u(offset_of!(PrivcmdMmapBatchV2, err))),
        ("mmap_resource.size", u(size_of::<PrivcmdMmapResource>())),
        ("mmap_resource.type", u(offset_of!(PrivcmdMmapResource, ty))),
        ("mmap_resource.id", u(offset_of!(PrivcmdMmapResource, id))),
        ("mmap_resource.idx", u(offset_of!(PrivcmdMmapResource, idx))),
        ("mmap_resource.num", u(offset_of!(PrivcmdMmapResource, num))),
        (
            "mmap_resource.addr",
            u(offset_of!(PrivcmdMmapResource, addr)),
        ),
        ("dm_op.size", u(size_of::<PrivcmdDmOp>())),
        ("dm_op.num", u(offset_of!(PrivcmdDmOp, num))),
        ("dm_op.ubufs", u(offset_of!(PrivcmdDmOp, ubufs))),
        ("dm_op_buf.size", u(size_of::<PrivcmdDmOpBuf>())),
        ("dm_op_buf.len", u(offset_of!(PrivcmdDmOpBuf, size))),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(rust, c_values());
}

#[test]
fn golden_request_numbers() {
    // From Debian 12's Xen 4.17 privcmd.h, as listed in the design conventions (U5).
    assert_eq!(IOCTL_PRIVCMD_HYPERCALL, 0x0030_5000);
    assert_eq!(IOCTL_PRIVCMD_MMAPBATCH_V2, 0x0020_5004);
    assert_eq!(IOCTL_PRIVCMD_MMAP_RESOURCE, 0x0020_5007);
    assert_eq!(IOCTL_PRIVCMD_DM_OP, 0x0010_5005);
    assert_eq!(size_of::<PrivcmdHypercall>(), 48);
    assert_eq!(size_of::<PrivcmdMmapBatchV2>(), 32);
    assert_eq!(size_of::<PrivcmdMmapResource>(), 32);
}
