//! Hypercall buffers: page-backed memory Xen can read and write during a hypercall.
//!
//! Xen cannot take a Linux page fault, so every pointer handed to it must refer to
//! resident, unshared memory. Like libxencall we take whole pages from the
//! `/dev/xen/hypercall` device when it exists (kernel memory that never faults) and
//! otherwise from an anonymous `MAP_LOCKED` mapping that is excluded from `fork` and
//! touched once so no page is copy-on-write. Values are copied in before the call and
//! read back after it; no Rust reference into the pages is ever handed out.

use std::marker::PhantomData;
use std::mem::size_of;
use std::os::fd::{AsRawFd, OwnedFd};
use std::ptr::{self, NonNull};
use std::sync::{Mutex, MutexGuard, PoisonError};

use libc::c_void;

use crate::types::{conv, Errno, PAGE_SIZE};

/// Plain old data that may be copied byte-for-byte to and from Xen.
///
/// # Safety
///
/// Implementors must be `#[repr(C)]` (or primitive) types without references, for which
/// every bit pattern, including all zeroes, is a valid value.
pub(crate) unsafe trait Pod: Copy + 'static {}

// SAFETY: primitive integers accept every bit pattern.
unsafe impl Pod for u8 {}
// SAFETY: as above.
unsafe impl Pod for u16 {}
// SAFETY: as above.
unsafe impl Pod for u32 {}
// SAFETY: as above.
unsafe impl Pod for u64 {}
// SAFETY: as above.
unsafe impl Pod for i32 {}

/// Where hypercall pages come from.
#[derive(Debug)]
pub(crate) struct BufferAllocator {
    /// `/dev/xen/hypercall`, when the kernel has it.
    device: Option<OwnedFd>,
    /// Freed single pages kept for reuse, as libxencall does (`BUFFER_CACHE_SIZE`):
    /// most hypercalls need one page, and mapping a locked page costs several syscalls.
    cache: Mutex<Vec<CachedPage>>,
}

/// How many freed single pages are kept.
pub(crate) const BUFFER_CACHE_SIZE: usize = 4;

/// A page owned by the cache.
#[derive(Debug)]
struct CachedPage(NonNull<u8>);

// SAFETY: the page is a mapping owned exclusively by the cache; moving the address to
// another thread moves that ownership with it.
unsafe impl Send for CachedPage {}

impl Drop for BufferAllocator {
    fn drop(&mut self) {
        let device_backed = self.device.is_some();
        let pages = std::mem::take(self.cache.get_mut().unwrap_or_else(PoisonError::into_inner));
        for page in pages {
            unmap(page.0, PAGE, device_backed);
        }
    }
}

/// Unmaps hypercall pages; failures are ignored (the range is ours, so munmap can only
/// fail on a bug, and this runs in destructors, which must neither print nor panic).
fn unmap(ptr: NonNull<u8>, len: usize, device_backed: bool) {
    if !device_backed {
        // SAFETY: restores the fork behaviour of our own mapping before unmapping it.
        unsafe { libc::madvise(ptr.as_ptr().cast(), len, libc::MADV_DOFORK) };
    }
    // SAFETY: `ptr..ptr+len` is a mapping created by `map_pages` that nothing else
    // references any more.
    unsafe { libc::munmap(ptr.as_ptr().cast(), len) };
}

/// Page size as `usize` (the x86 page size is the host page size on x86_64).
const PAGE: usize = conv::u64_to_usize(PAGE_SIZE);

impl BufferAllocator {
    pub(crate) fn new(device: Option<OwnedFd>) -> BufferAllocator {
        BufferAllocator {
            device,
            cache: Mutex::new(Vec::new()),
        }
    }

    fn lock_cache(&self) -> MutexGuard<'_, Vec<CachedPage>> {
        // The cache holds plain addresses; a panic while it was locked cannot have left
        // it inconsistent.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Cached single pages (for tests).
    #[cfg(test)]
    pub(crate) fn cached_pages(&self) -> usize {
        self.lock_cache().len()
    }

    /// Whether buffers come from `/dev/xen/hypercall` (libxencall's
    /// `xencall_buffers_never_fault`).
    pub(crate) fn never_faults(&self) -> bool {
        self.device.is_some()
    }

    fn map_pages(&self, npages: usize) -> Result<Pages<'_>, Errno> {
        if npages == 1 {
            if let Some(page) = self.lock_cache().pop() {
                return Ok(Pages {
                    ptr: page.0,
                    len: PAGE,
                    owner: self,
                });
            }
        }
        let len = npages.checked_mul(PAGE).ok_or(Errno(libc::ENOMEM))?;
        let ptr = match &self.device {
            Some(fd) => {
                // SAFETY: a fresh shared mapping of the buffer device at a kernel-chosen
                // address; no existing memory is affected.
                let p = unsafe {
                    libc::mmap(
                        ptr::null_mut(),
                        len,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_SHARED,
                        fd.as_raw_fd(),
                        0,
                    )
                };
                checked_map(p)?
            }
            None => map_locked_anonymous(len)?,
        };
        Ok(Pages {
            ptr,
            len,
            owner: self,
        })
    }
}

/// Turns an `mmap` result into a pointer, or the errno of the failure.
pub(crate) fn checked_map(p: *mut c_void) -> Result<NonNull<u8>, Errno> {
    NonNull::new(p.cast::<u8>())
        .filter(|p| p.as_ptr().cast::<c_void>() != libc::MAP_FAILED)
        .ok_or_else(Errno::last)
}

/// libxencall's `alloc_pages_nobufdev`: locked, not inherited by fork, touched.
fn map_locked_anonymous(len: usize) -> Result<NonNull<u8>, Errno> {
    // SAFETY: a fresh private anonymous mapping at a kernel-chosen address.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_LOCKED,
            -1,
            0,
        )
    };
    let ptr = checked_map(p)?;
    // SAFETY: `ptr..ptr+len` is the mapping just created and owned here.
    if unsafe { libc::madvise(ptr.as_ptr().cast(), len, libc::MADV_DONTFORK) } != 0 {
        let err = Errno::last();
        // SAFETY: unmapping the mapping created above, which nothing else references.
        unsafe { libc::munmap(ptr.as_ptr().cast(), len) };
        return Err(err);
    }
    for offset in (0..len).step_by(PAGE) {
        // SAFETY: `offset < len`, inside the writable mapping created above. The write
        // un-shares the page in case a fork raced with the madvise.
        unsafe { ptr::write_volatile(ptr.as_ptr().add(offset), 0) };
    }
    Ok(ptr)
}

/// Whole pages of hypercall memory, returned to the cache or unmapped on drop.
#[derive(Debug)]
struct Pages<'a> {
    ptr: NonNull<u8>,
    len: usize,
    owner: &'a BufferAllocator,
}

impl Drop for Pages<'_> {
    fn drop(&mut self) {
        if self.len == PAGE {
            let mut cache = self.owner.lock_cache();
            if cache.len() < BUFFER_CACHE_SIZE {
                cache.push(CachedPage(self.ptr));
                return;
            }
        }
        unmap(self.ptr, self.len, self.owner.never_faults());
    }
}

/// An array of `count` values of `T` in hypercall pages (a "bounce buffer").
#[derive(Debug)]
pub(crate) struct HypercallBuf<'a, T: Pod> {
    pages: Pages<'a>,
    count: usize,
    _ty: PhantomData<T>,
}

impl<'a, T: Pod> HypercallBuf<'a, T> {
    /// `count` zeroed values (at least one page is mapped even for `count == 0`).
    pub(crate) fn zeroed(alloc: &'a BufferAllocator, count: usize) -> Result<Self, Errno> {
        let bytes = count
            .checked_mul(size_of::<T>())
            .ok_or(Errno(libc::ENOMEM))?;
        let npages = bytes.div_ceil(PAGE).max(1);
        let pages = alloc.map_pages(npages)?;
        // SAFETY: the mapping is `npages * PAGE >= bytes` long and writable; zeroing makes
        // every value a valid `T` (Pod). Fresh mappings are zero already, this keeps it
        // explicit and also clears the bytes touched by `map_locked_anonymous`.
        unsafe { ptr::write_bytes(pages.ptr.as_ptr(), 0, pages.len) };
        Ok(HypercallBuf {
            pages,
            count,
            _ty: PhantomData,
        })
    }

    /// A copy of `values`.
    pub(crate) fn from_slice(alloc: &'a BufferAllocator, values: &[T]) -> Result<Self, Errno> {
        let buf = Self::zeroed(alloc, values.len())?;
        // SAFETY: the buffer holds `values.len()` elements of `T` and cannot overlap the
        // caller's slice (it is a fresh mapping); pages are page-aligned, which satisfies
        // `T`'s alignment.
        unsafe {
            ptr::copy_nonoverlapping(values.as_ptr(), buf.as_ptr(), values.len());
        }
        Ok(buf)
    }

    /// A copy of one value.
    pub(crate) fn from_value(alloc: &'a BufferAllocator, value: &T) -> Result<Self, Errno> {
        Self::from_slice(alloc, std::slice::from_ref(value))
    }

    fn as_ptr(&self) -> *mut T {
        self.pages.ptr.as_ptr().cast::<T>()
    }

    /// The user virtual address handed to Xen.
    pub(crate) fn addr(&self) -> u64 {
        conv::usize_to_u64(self.pages.ptr.as_ptr() as usize)
    }

    /// Number of elements.
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// Element `index`, if it exists.
    pub(crate) fn get(&self, index: usize) -> Option<T> {
        if index >= self.count {
            return None;
        }
        // SAFETY: `index < count`, so the element lies inside the mapping, is aligned
        // (page-aligned base, `T`-sized stride) and every bit pattern is a valid `T`.
        Some(unsafe { ptr::read_volatile(self.as_ptr().add(index)) })
    }

    /// The first element (buffers made by `from_value`).
    pub(crate) fn read(&self) -> Option<T> {
        self.get(0)
    }

    /// Overwrites element `index`; returns false when it does not exist.
    #[cfg(test)]
    pub(crate) fn set(&mut self, index: usize, value: T) -> bool {
        if index >= self.count {
            return false;
        }
        // SAFETY: as in `get`; `&mut self` means no other copy is in progress.
        unsafe { ptr::write_volatile(self.as_ptr().add(index), value) };
        true
    }

    /// Edits element `index` in place (fields written one by one keep the zeroed
    /// padding); `None` when it does not exist.
    ///
    /// A reference into the buffer is sound here: the pages are private to this
    /// process, and Xen only touches them during a hypercall, which cannot run while
    /// `&mut self` is borrowed.
    pub(crate) fn update<R>(&mut self, index: usize, edit: impl FnOnce(&mut T) -> R) -> Option<R> {
        if index >= self.count {
            return None;
        }
        // SAFETY: `index < count`: the element is inside the mapping, aligned, and
        // initialised (zeroed or copied in; every bit pattern is a valid `T`). `&mut
        // self` guarantees no other access for the closure's duration.
        let element = unsafe { &mut *self.as_ptr().add(index) };
        Some(edit(element))
    }

    /// The buffer as a typed pointer, for a guest handle (`XEN_GUEST_HANDLE(T)`).
    pub(crate) fn handle(&self) -> *mut T {
        self.as_ptr()
    }

    /// All elements.
    pub(crate) fn to_vec(&self) -> Vec<T> {
        (0..self.count).filter_map(|i| self.get(i)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_in_and_back() {
        let alloc = BufferAllocator::new(None);
        let mut buf = HypercallBuf::from_slice(&alloc, &[1u64, 2, 3]).unwrap();
        assert_eq!(buf.count(), 3);
        assert_eq!(buf.addr() % PAGE_SIZE, 0);
        assert!(buf.set(1, 20));
        assert!(!buf.set(3, 30));
        assert_eq!(buf.to_vec(), vec![1, 20, 3]);
        assert_eq!(buf.get(3), None);
        assert!(!alloc.never_faults());
    }

    #[test]
    fn large_buffers_span_pages_and_start_zeroed() {
        let alloc = BufferAllocator::new(None);
        let buf: HypercallBuf<'_, u64> = HypercallBuf::zeroed(&alloc, 1500).unwrap();
        assert_eq!(buf.pages.len, 3 * PAGE);
        assert!(buf.to_vec().iter().all(|&v| v == 0));
    }

    #[test]
    fn single_pages_are_reused_up_to_the_cache_size() {
        let alloc = BufferAllocator::new(None);
        let bufs: Vec<_> = (0..6)
            .map(|_| HypercallBuf::<u8>::zeroed(&alloc, 10).unwrap())
            .collect();
        let first = bufs[0].addr();
        drop(bufs);
        assert_eq!(alloc.cached_pages(), BUFFER_CACHE_SIZE);
        // A reused page comes back zeroed.
        let mut b = HypercallBuf::<u8>::zeroed(&alloc, 10).unwrap();
        assert!(b.set(3, 9));
        drop(b);
        let b = HypercallBuf::<u8>::zeroed(&alloc, 4096).unwrap();
        assert_eq!(b.to_vec(), vec![0; 4096]);
        assert_eq!(alloc.cached_pages(), BUFFER_CACHE_SIZE - 1);
        // Multi-page buffers bypass the cache.
        let big = HypercallBuf::<u8>::zeroed(&alloc, 8192).unwrap();
        assert_ne!(big.addr(), first);
        assert_eq!(alloc.cached_pages(), BUFFER_CACHE_SIZE - 1);
    }

    #[test]
    fn empty_buffer_still_maps_a_page() {
        let alloc = BufferAllocator::new(None);
        let buf: HypercallBuf<'_, u32> = HypercallBuf::zeroed(&alloc, 0).unwrap();
        assert_eq!(buf.pages.len, PAGE);
        assert_eq!(buf.read(), None);
    }
}
