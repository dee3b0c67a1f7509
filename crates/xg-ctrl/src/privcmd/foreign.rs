//! Foreign mappings of guest frames and the [`GuestMemory`] implementation.
//!
//! A mapping is a VMA reserved by `mmap` on the privcmd fd and populated by
//! `IOCTL_PRIVCMD_MMAPBATCH_V2` (guest frames) or `IOCTL_PRIVCMD_MMAP_RESOURCE` (Xen
//! resources such as the grant table). Guest memory is only ever touched by raw-pointer
//! copies: no Rust reference or slice is formed over it, since the guest (or Xen) may
//! change it at any time.

use std::marker::PhantomData;
use std::ptr::{self, NonNull};
use std::time::Duration;

use libc::c_int;

use super::buffer::checked_map;
use super::hypercall::Privcmd;
use super::ioctl::{
    PrivcmdMmapBatchV2, PrivcmdMmapResource, IOCTL_PRIVCMD_MMAPBATCH_V2,
    IOCTL_PRIVCMD_MMAP_RESOURCE,
};
use super::XenCtrl;
use crate::error::{Error, Op, Result};
use crate::ops::GuestMemory;
use crate::types::{conv, DomId, Errno, Gfn, PAGE_SHIFT, PAGE_SIZE};

/// Frames mapped at once by the copy helpers, so large copies never map everything.
pub const MAP_BATCH_FRAMES: usize = 1024;
/// Rounds of reissuing frames the kernel reported as paged out (`-ENOENT`).
pub const PAGED_RETRIES: u32 = 10_000;
/// Pause between those rounds (libxenforeignmemory: `usleep(100)`).
pub const PAGED_RETRY_DELAY: Duration = Duration::from_micros(100);

/// `XENMEM_resource_grant_table`.
pub(crate) const RESOURCE_GRANT_TABLE: u32 = xg_sys::XENMEM_resource_grant_table;
/// `XENMEM_resource_grant_table_id_shared`.
pub(crate) const GRANT_TABLE_ID_SHARED: u32 = xg_sys::XENMEM_resource_grant_table_id_shared;

const PAGE: usize = conv::u64_to_usize(PAGE_SIZE);

/// A foreign mapping, unmapped on drop.
#[derive(Debug)]
pub(crate) struct ForeignMapping<'a> {
    ptr: NonNull<u8>,
    len: usize,
    /// Mapped `PROT_WRITE` too. A read-only mapping is what lets a PV guest's page
    /// tables be read: Xen refuses a writable mapping of a frame typed as a page table.
    writable: bool,
    _privcmd: PhantomData<&'a Privcmd>,
}

impl Drop for ForeignMapping<'_> {
    fn drop(&mut self) {
        // SAFETY: `ptr..ptr+len` is the VMA reserved in `reserve`; nothing borrows it
        // beyond `self`. Failure is impossible for our own range and is ignored (a
        // destructor must neither print nor panic).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

fn invalid(op: Op, detail: String) -> Error {
    Error::InvalidArgument { op, detail }
}

impl<'a> ForeignMapping<'a> {
    /// Reserves a VMA of `pages` pages on the privcmd fd (read-only unless `writable`).
    fn reserve(privcmd: &'a Privcmd, op: Op, pages: usize, writable: bool) -> Result<Self> {
        let len = pages
            .checked_mul(PAGE)
            .filter(|&l| l > 0)
            .ok_or_else(|| invalid(op, format!("cannot map {pages} pages")))?;
        // SAFETY: a new shared mapping of the privcmd device at a kernel-chosen address;
        // no existing memory is affected.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                if writable {
                    libc::PROT_READ | libc::PROT_WRITE
                } else {
                    libc::PROT_READ
                },
                libc::MAP_SHARED,
                privcmd.raw_fd(),
                0,
            )
        };
        let ptr = checked_map(p).map_err(|e| Error::hypercall(op, e.0))?;
        Ok(ForeignMapping {
            ptr,
            len,
            writable,
            _privcmd: PhantomData,
        })
    }

    fn addr_of(&self, page: usize) -> u64 {
        conv::usize_to_u64(self.ptr.as_ptr() as usize + page * PAGE)
    }

    /// Maps `gfns` of `domid` contiguously and writable; every frame must map.
    pub(crate) fn map_gfns(privcmd: &'a Privcmd, domid: DomId, gfns: &[Gfn]) -> Result<Self> {
        Self::map_gfns_prot(privcmd, domid, gfns, true)
    }

    /// Maps `gfns` of `domid` read-only (`PROT_READ`, as libxenguest maps what it only
    /// reads); every frame must map.
    pub(crate) fn map_gfns_read_only(
        privcmd: &'a Privcmd,
        domid: DomId,
        gfns: &[Gfn],
    ) -> Result<Self> {
        Self::map_gfns_prot(privcmd, domid, gfns, false)
    }

    fn map_gfns_prot(
        privcmd: &'a Privcmd,
        domid: DomId,
        gfns: &[Gfn],
        writable: bool,
    ) -> Result<Self> {
        const OP: Op = "privcmd mmapbatch_v2";
        let mapping = Self::reserve(privcmd, OP, gfns.len(), writable)?;
        let frames: Vec<u64> = gfns.iter().map(|g| g.0).collect();
        let mut errs: Vec<c_int> = vec![0; frames.len()];
        match mapping.batch(privcmd, domid, &frames, &mut errs, 0, frames.len()) {
            Ok(()) => {}
            Err(Errno(libc::ENOENT)) => mapping.retry_paged(privcmd, domid, &frames, &mut errs)?,
            Err(e) => return Err(Error::hypercall(OP, e.0)),
        }
        if let Some((i, &err)) = errs.iter().enumerate().find(|(_, &e)| e != 0) {
            return Err(Error::ForeignMap {
                domid,
                gfn: gfns[i],
                source: Errno(err.checked_neg().unwrap_or(libc::EINVAL)),
            });
        }
        Ok(mapping)
    }

    /// One MMAPBATCH_V2 for frames `start..start+count`, errors into `errs[start..]`.
    fn batch(
        &self,
        privcmd: &Privcmd,
        domid: DomId,
        frames: &[u64],
        errs: &mut [c_int],
        start: usize,
        count: usize,
    ) -> std::result::Result<(), Errno> {
        let end = start
            .checked_add(count)
            .filter(|&e| e <= frames.len() && e <= errs.len());
        let (Some(_), Ok(num)) = (end, u32::try_from(count)) else {
            return Err(Errno(libc::EINVAL));
        };
        let mut arg = PrivcmdMmapBatchV2 {
            num,
            dom: domid.0,
            addr: self.addr_of(start),
            arr: frames[start..].as_ptr(),
            err: errs[start..].as_mut_ptr(),
        };
        // SAFETY: `arr` and `err` point to at least `num` elements (checked above) that
        // live across the call; `addr..addr+num pages` lies inside our reserved VMA.
        unsafe { privcmd.ioctl(IOCTL_PRIVCMD_MMAPBATCH_V2, (&raw mut arg).cast()) }.map(|_| ())
    }

    /// libxenforeignmemory's `retry_paged`: reissue runs of `-ENOENT` frames until none
    /// remain, sleeping between rounds; bounded by [`PAGED_RETRIES`].
    fn retry_paged(
        &self,
        privcmd: &Privcmd,
        domid: DomId,
        frames: &[u64],
        errs: &mut [c_int],
    ) -> Result<()> {
        const OP: Op = "privcmd mmapbatch_v2";
        for _ in 0..PAGED_RETRIES {
            std::thread::sleep(PAGED_RETRY_DELAY);
            let mut paged = false;
            let mut i = 0;
            while i < errs.len() {
                if errs[i] != -libc::ENOENT {
                    i += 1;
                    continue;
                }
                paged = true;
                let run = errs[i..]
                    .iter()
                    .take_while(|&&e| e == -libc::ENOENT)
                    .count();
                match self.batch(privcmd, domid, frames, errs, i, run) {
                    Ok(()) | Err(Errno(libc::ENOENT)) => {}
                    Err(e) => return Err(Error::hypercall(OP, e.0)),
                }
                i += run;
            }
            if !paged || !errs.contains(&-libc::ENOENT) {
                return Ok(());
            }
        }
        // Still paged out: reported per frame as ENOENT by the caller.
        Ok(())
    }

    /// Maps `num` frames of a Xen resource (`IOCTL_PRIVCMD_MMAP_RESOURCE`).
    pub(crate) fn map_resource(
        privcmd: &'a Privcmd,
        domid: DomId,
        ty: u32,
        id: u32,
        idx: u32,
        num: usize,
    ) -> Result<Self> {
        const OP: Op = "privcmd mmap_resource";
        let mapping = Self::reserve(privcmd, OP, num, true)?;
        let mut arg = PrivcmdMmapResource {
            dom: domid.0,
            ty,
            id,
            idx,
            num: conv::usize_to_u64(num),
            addr: mapping.addr_of(0),
        };
        // SAFETY: `arg` lives across the call and `addr..addr+num pages` is our VMA.
        match unsafe { privcmd.ioctl(IOCTL_PRIVCMD_MMAP_RESOURCE, (&raw mut arg).cast()) } {
            Ok(_) => Ok(mapping),
            // An old kernel without the ioctl: report "not supported" as the C library does.
            Err(Errno(libc::ENOTTY)) => Err(Error::hypercall(OP, libc::EOPNOTSUPP)),
            Err(e) => Err(Error::hypercall(OP, e.0)),
        }
    }

    fn check_range(&self, op: Op, offset: usize, len: usize) -> Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(invalid(
                op,
                format!(
                    "{len} bytes at offset {offset:#x} exceed a {:#x}-byte mapping",
                    self.len
                ),
            )),
        }
    }

    /// Copies `data` to byte `offset` of the mapping.
    pub(crate) fn write(&self, offset: usize, data: &[u8]) -> Result<()> {
        self.check_range("write foreign mapping", offset, data.len())?;
        if !self.writable {
            return Err(invalid(
                "write foreign mapping",
                "the mapping is read-only".to_owned(),
            ));
        }
        // SAFETY: the range is inside the mapping (checked above), which is writable;
        // source and destination cannot overlap (ours vs. a caller's slice).
        unsafe {
            ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.as_ptr().add(offset), data.len())
        };
        Ok(())
    }

    /// Copies bytes at `offset` of the mapping into `buf`.
    pub(crate) fn read(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        self.check_range("read foreign mapping", offset, buf.len())?;
        // SAFETY: as in `write`, in the other direction.
        unsafe {
            ptr::copy_nonoverlapping(self.ptr.as_ptr().add(offset), buf.as_mut_ptr(), buf.len())
        };
        Ok(())
    }

    /// Zeroes the whole mapping (nothing for a read-only one, which no caller zeroes).
    pub(crate) fn zero(&self) {
        if !self.writable {
            return;
        }
        // SAFETY: the whole mapping, which is writable (checked above).
        unsafe { ptr::write_bytes(self.ptr.as_ptr(), 0, self.len) };
    }
}

/// A piece of a guest-physical copy: the frames to map and the bytes of the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chunk {
    /// First frame of the batch.
    pub(crate) first_gfn: u64,
    /// Frames in the batch.
    pub(crate) frames: usize,
    /// Byte offset of the copy inside the first frame.
    pub(crate) offset: usize,
    /// Byte range of the caller's data covered by this batch.
    pub(crate) data: std::ops::Range<usize>,
}

/// Splits a copy of `len` bytes at `paddr` into batches of at most `batch` frames.
pub(crate) fn chunks(op: Op, paddr: u64, len: usize, batch: usize) -> Result<Vec<Chunk>> {
    let total = conv::usize_to_u64(len);
    paddr
        .checked_add(total)
        .ok_or_else(|| invalid(op, format!("{len} bytes at {paddr:#x} overflow")))?;
    let mut out = Vec::new();
    let mut done = 0usize;
    while done < len {
        let addr = paddr + conv::usize_to_u64(done);
        let offset = conv::u64_to_usize(addr & (PAGE_SIZE - 1));
        let room = batch.max(1) * PAGE - offset;
        let n = room.min(len - done);
        let frames = (offset + n).div_ceil(PAGE);
        out.push(Chunk {
            first_gfn: addr >> PAGE_SHIFT,
            frames,
            offset,
            data: done..done + n,
        });
        done += n;
    }
    Ok(out)
}

fn frames_of(chunk: &Chunk) -> Vec<Gfn> {
    (0..conv::usize_to_u64(chunk.frames))
        .map(|i| Gfn(chunk.first_gfn + i))
        .collect()
}

impl XenCtrl {
    fn grant_table_frame(&self, domid: DomId) -> Result<ForeignMapping<'_>> {
        ForeignMapping::map_resource(
            &self.privcmd,
            domid,
            RESOURCE_GRANT_TABLE,
            GRANT_TABLE_ID_SHARED,
            0,
            1,
        )
    }
}

impl GuestMemory for XenCtrl {
    fn write_guest(&self, domid: DomId, paddr: u64, data: &[u8]) -> Result<()> {
        for chunk in chunks("write guest memory", paddr, data.len(), MAP_BATCH_FRAMES)? {
            let map = ForeignMapping::map_gfns(&self.privcmd, domid, &frames_of(&chunk))?;
            map.write(chunk.offset, &data[chunk.data.clone()])?;
        }
        Ok(())
    }

    fn read_guest(&self, domid: DomId, paddr: u64, buf: &mut [u8]) -> Result<()> {
        for chunk in chunks("read guest memory", paddr, buf.len(), MAP_BATCH_FRAMES)? {
            let map = ForeignMapping::map_gfns(&self.privcmd, domid, &frames_of(&chunk))?;
            map.read(chunk.offset, &mut buf[chunk.data.clone()])?;
        }
        Ok(())
    }

    fn clear_guest_pages(&self, domid: DomId, gfns: &[Gfn]) -> Result<()> {
        for batch in gfns.chunks(MAP_BATCH_FRAMES) {
            ForeignMapping::map_gfns(&self.privcmd, domid, batch)?.zero();
        }
        Ok(())
    }

    fn write_grant_table(&self, domid: DomId, offset: u64, data: &[u8]) -> Result<()> {
        let offset = usize::try_from(offset)
            .map_err(|_| invalid("write grant table", format!("offset {offset:#x}")))?;
        self.grant_table_frame(domid)?.write(offset, data)
    }

    fn read_grant_table(&self, domid: DomId, offset: u64, buf: &mut [u8]) -> Result<()> {
        let offset = usize::try_from(offset)
            .map_err(|_| invalid("read grant table", format!("offset {offset:#x}")))?;
        self.grant_table_frame(domid)?.read(offset, buf)
    }
}
