//! Foreign mappings: MMAPBATCH_V2 per-frame errors, batching, the grant table.

use std::cell::RefCell;
use std::rc::Rc;

use libc::c_int;

use super::*;
use crate::error::Error;
use crate::ops::*;
use crate::privcmd::ioctl::{PrivcmdMmapBatchV2, PrivcmdMmapResource};
use crate::privcmd::ioctl::{IOCTL_PRIVCMD_MMAPBATCH_V2, IOCTL_PRIVCMD_MMAP_RESOURCE};
use crate::privcmd::mock;
use crate::types::{DomId, Gfn};

// ---- foreign mappings ----

/// Fake guest RAM: a memfd of `pages` pages; MMAPBATCH maps its pages over the VMA.
struct FakeGuest {
    fd: std::os::fd::OwnedFd,
    pages: u64,
}

impl FakeGuest {
    fn new(pages: u64) -> FakeGuest {
        use std::os::fd::FromRawFd;
        // SAFETY: memfd_create with a static name; the fd is owned from here on.
        let raw = unsafe { libc::memfd_create(c"guest".as_ptr(), libc::MFD_CLOEXEC) };
        assert!(raw >= 0);
        // SAFETY: `raw` is a fresh fd nobody else owns.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
        // SAFETY: sizing our own memfd.
        assert_eq!(
            // SAFETY: the address comes from the request under test and is live during the call.
            unsafe { libc::ftruncate(std::os::fd::AsRawFd::as_raw_fd(&fd), (pages * 4096) as i64) },
            0
        );
        FakeGuest { fd, pages }
    }

    fn raw(&self) -> i32 {
        std::os::fd::AsRawFd::as_raw_fd(&self.fd)
    }

    /// Maps frame `gfn` at `addr` like privcmd would.
    fn map_frame(&self, addr: u64, gfn: u64) {
        // SAFETY: `addr` is a page inside the VMA the code under test reserved.
        let p = unsafe {
            libc::mmap(
                addr as usize as *mut libc::c_void,
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_FIXED,
                self.raw(),
                (gfn * 4096) as i64,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
    }

    fn read(&self, paddr: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        // SAFETY: pread into our own buffer.
        let n = unsafe { libc::pread(self.raw(), out.as_mut_ptr().cast(), len, paddr as i64) };
        assert_eq!(n, len as isize);
        out
    }

    fn write(&self, paddr: u64, data: &[u8]) {
        // SAFETY: pwrite from our own buffer.
        let n = unsafe { libc::pwrite(self.raw(), data.as_ptr().cast(), data.len(), paddr as i64) };
        assert_eq!(n, data.len() as isize);
    }
}

/// Serves MMAPBATCH_V2 from `guest`; frames in `bad` fail with -EINVAL, frames in
/// `paged` report -ENOENT the first `paged_rounds` times. Records batch sizes.
fn serve_guest(
    guest: Rc<FakeGuest>,
    bad: Vec<u64>,
    paged: Vec<u64>,
    paged_rounds: u32,
    batches: Rc<RefCell<Vec<u32>>>,
) -> mock::Guard {
    let mut rounds = 0;
    mock::install(move |request, arg| {
        assert_eq!(request, IOCTL_PRIVCMD_MMAPBATCH_V2);
        // SAFETY: the live argument of the code under test.
        let b: PrivcmdMmapBatchV2 = unsafe { std::ptr::read(arg.cast()) };
        batches.borrow_mut().push(b.num);
        let mut any_paged = false;
        for i in 0..b.num as usize {
            // SAFETY: `arr`/`err` have `num` elements (the contract under test).
            let gfn = unsafe { *b.arr.add(i) };
            let err: c_int = if bad.contains(&gfn) || gfn >= guest.pages {
                -libc::EINVAL
            } else if paged.contains(&gfn) && rounds < paged_rounds {
                any_paged = true;
                -libc::ENOENT
            } else {
                guest.map_frame(b.addr + 4096 * i as u64, gfn);
                0
            };
            // SAFETY: as above.
            unsafe { *b.err.add(i) = err };
        }
        if any_paged {
            rounds += 1;
            return Err(libc::ENOENT);
        }
        Ok(0)
    })
}

#[test]
fn guest_copies_cross_pages_and_batches() {
    let xc = ctrl();
    let guest = Rc::new(FakeGuest::new(1100));
    let batches = Rc::new(RefCell::new(Vec::new()));
    let _g = serve_guest(guest.clone(), vec![], vec![], 0, batches.clone());
    // 1030 pages starting mid-page: needs two batches (1024 + 7 frames).
    let data: Vec<u8> = (0..1030 * 4096).map(|i| (i % 251) as u8).collect();
    let paddr = 0x10 * 4096 + 0x800;
    xc.write_guest(DomId(3), paddr, &data).unwrap();
    assert_eq!(*batches.borrow(), vec![1024, 7]);
    assert_eq!(guest.read(paddr, data.len()), data);
    let mut back = vec![0u8; data.len()];
    xc.read_guest(DomId(3), paddr, &mut back).unwrap();
    assert_eq!(back, data);
    // clear_guest_pages zeroes exactly the named frames.
    guest.write(0x20 * 4096, &[0xEE; 3 * 4096]);
    xc.clear_guest_pages(DomId(3), &[Gfn(0x20), Gfn(0x22)])
        .unwrap();
    assert_eq!(guest.read(0x20 * 4096, 4096), vec![0; 4096]);
    assert_eq!(guest.read(0x21 * 4096, 4096), vec![0xEE; 4096]);
    assert_eq!(guest.read(0x22 * 4096, 4096), vec![0; 4096]);
}

#[test]
fn per_frame_errors_name_the_frame() {
    let xc = ctrl();
    let guest = Rc::new(FakeGuest::new(64));
    let _g = serve_guest(
        guest,
        vec![0x11],
        vec![],
        0,
        Rc::new(RefCell::new(Vec::new())),
    );
    let err = xc
        .write_guest(DomId(3), 0x10 * 4096, &[1u8; 3 * 4096])
        .unwrap_err();
    match err {
        Error::ForeignMap { domid, gfn, source } => {
            assert_eq!((domid, gfn, source.0), (DomId(3), Gfn(0x11), libc::EINVAL));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn paged_out_frames_are_retried() {
    let xc = ctrl();
    let guest = Rc::new(FakeGuest::new(64));
    let batches = Rc::new(RefCell::new(Vec::new()));
    let _g = serve_guest(guest.clone(), vec![], vec![0x12, 0x13], 2, batches.clone());
    xc.write_guest(DomId(3), 0x10 * 4096, &[7u8; 5 * 4096])
        .unwrap();
    // The full batch, then twice only the run of two paged frames.
    assert_eq!(*batches.borrow(), vec![5, 2, 2]);
    assert_eq!(guest.read(0x12 * 4096, 8192), vec![7u8; 8192]);
}

#[test]
fn mmapbatch_ioctl_failure_is_a_hypercall_error() {
    let xc = ctrl();
    let _g = mock::install(|_, _| Err(libc::EPERM));
    let err = xc.write_guest(DomId(3), 0, &[1]).unwrap_err();
    assert!(matches!(
        err,
        Error::Hypercall {
            op: "privcmd mmapbatch_v2",
            ..
        }
    ));
    assert_eq!(err.errno(), Some(libc::EPERM));
}

#[test]
fn grant_table_goes_through_mmap_resource() {
    let xc = ctrl();
    let gnttab = Rc::new(FakeGuest::new(1));
    let g2 = gnttab.clone();
    let _g = mock::install(move |request, arg| {
        assert_eq!(request, IOCTL_PRIVCMD_MMAP_RESOURCE);
        // SAFETY: the live argument.
        let r: PrivcmdMmapResource = unsafe { std::ptr::read(arg.cast()) };
        assert_eq!((r.dom, r.ty, r.id, r.idx, r.num), (5, 1, 0, 0, 1));
        g2.map_frame(r.addr, 0);
        Ok(0)
    });
    xc.write_grant_table(DomId(5), 8, &[1, 2, 3, 4]).unwrap();
    assert_eq!(gnttab.read(8, 4), vec![1, 2, 3, 4]);
    let mut buf = [0u8; 4];
    xc.read_grant_table(DomId(5), 8, &mut buf).unwrap();
    assert_eq!(buf, [1, 2, 3, 4]);
    let err = xc.write_grant_table(DomId(5), 4094, &[0; 4]).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }));
}

#[test]
fn chunking_respects_batch_and_page_offsets() {
    use crate::privcmd::foreign::{chunks, Chunk};
    let c = chunks("t", 0x1800, 0x3000, 2).unwrap();
    assert_eq!(
        c,
        vec![
            Chunk {
                first_gfn: 1,
                frames: 2,
                offset: 0x800,
                data: 0..0x1800
            },
            Chunk {
                first_gfn: 3,
                frames: 2,
                offset: 0,
                data: 0x1800..0x3000
            },
        ]
    );
    let one = chunks("t", 0xFFF, 2, 1024).unwrap();
    assert_eq!(
        one,
        vec![Chunk {
            first_gfn: 0,
            frames: 2,
            offset: 0xFFF,
            data: 0..2
        }]
    );
    assert!(chunks("t", 0, 0, 2).unwrap().is_empty());
    assert!(chunks("t", u64::MAX, 2, 2).is_err());
}

/// The permissions `/proc/self/maps` shows for the VMA holding `addr` (`"rw-s"`, …).
fn vma_perms(addr: u64) -> String {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    for line in maps.lines() {
        let mut words = line.split_whitespace();
        let range = words.next().unwrap();
        let (start, end) = range.split_once('-').unwrap();
        let start = u64::from_str_radix(start, 16).unwrap();
        let end = u64::from_str_radix(end, 16).unwrap();
        if (start..end).contains(&addr) {
            return words.next().unwrap().to_owned();
        }
    }
    panic!("{addr:#x} is not mapped")
}

#[test]
fn machine_frames_are_read_through_read_only_maps() {
    let xc = ctrl();
    let guest = Rc::new(FakeGuest::new(8));
    guest.write(3 * 4096 + 8, b"l4 table");
    let perms = Rc::new(RefCell::new(Vec::new()));
    let (g, p) = (guest.clone(), perms.clone());
    let _g = mock::install(move |request, arg| {
        assert_eq!(request, IOCTL_PRIVCMD_MMAPBATCH_V2);
        // SAFETY: the live argument of the code under test.
        let b: PrivcmdMmapBatchV2 = unsafe { std::ptr::read(arg.cast()) };
        // What the caller asked mmap for, before the frames replace the pages.
        p.borrow_mut().push(vma_perms(b.addr));
        for i in 0..b.num as usize {
            // SAFETY: `arr`/`err` have `num` elements.
            let mfn = unsafe { *b.arr.add(i) };
            g.map_frame(b.addr + 4096 * i as u64, mfn);
            // SAFETY: as above.
            unsafe { *b.err.add(i) = 0 };
        }
        Ok(0)
    });
    let mut buf = [0u8; 8];
    xc.read_machine(DomId(2), &[crate::types::Mfn(3)], 8, &mut buf)
        .unwrap();
    assert_eq!(&buf, b"l4 table");
    xc.write_machine(DomId(2), &[crate::types::Mfn(4)], 0, b"data")
        .unwrap();
    assert_eq!(guest.read(4 * 4096, 4), b"data");
    // A PV guest's page tables only map read-only (Xen refuses PROT_WRITE for them).
    assert_eq!(*perms.borrow(), ["r--s", "rw-s"]);
}
