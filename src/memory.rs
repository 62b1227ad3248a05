//! How the `vidcls` binary uses memory: glibc's malloc tuned to keep freed buffers, and a
//! global allocator that keeps a few freed large blocks for reuse.
//!
//! A training step frees and reallocates most of its tensors, and the training loader hands
//! out a new batch buffer for every batch. Every buffer the allocator gives back to the kernel
//! comes back as fresh pages the kernel must fault in and zero on first use (and unmapping a
//! block costs more on a virtual machine): in a seed-size training step that took about a
//! fifth of the time, and in the loader as much as a third of the work of preprocessing the
//! videos.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;

/// Blocks at least this large are kept for reuse when freed: glibc's per-thread heaps hold
/// smaller ones themselves.
const LARGE_BLOCK: usize = 32 << 20;

/// Freed large blocks kept at most.
const SLOTS: usize = 16;

/// Bytes of freed large blocks kept at most.
const MAX_KEPT_BYTES: usize = 1 << 30;

/// Makes glibc's malloc serve the main thread's blocks of every size from its heap (no block
/// mapped on its own, which the kernel would unmap when freed and zero again when mapped anew)
/// and never give the heap's top back to the system. Threads other than the main one allocate
/// in glibc's per-thread heaps, which still map blocks too large for them on their own: the
/// [`ReusingAllocator`] keeps those.
///
/// Measured with `vidcls bench train` on an AVX2-only EPYC, in two alternating pairs: seed FGM
/// steps of 26.1 and 29.2 s against 33.5 and 31.5 s when only blocks under [`LARGE_BLOCK`]
/// were kept (the earlier setting, itself 7% faster than glibc's defaults), with a sixth fewer
/// page faults and the same peak memory. Call it before any other thread exists.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes malloc's thresholds; it is called before any other thread
    // exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, -1);
    }
}

/// The system allocator, except that up to [`SLOTS`] freed blocks of at least [`LARGE_BLOCK`]
/// bytes ([`MAX_KEPT_BYTES`] in all) are kept and handed out again for a request of exactly
/// their size and alignment; the oldest is given back when there is no room. Tensors and
/// batches come in a few recurring sizes, so most large requests after the first step are
/// served without the kernel mapping and zeroing pages again.
pub struct ReusingAllocator;

/// The kept blocks: `(address, size, alignment)`, oldest first.
struct KeptBlocks {
    blocks: [(usize, usize, usize); SLOTS],
    len: usize,
    bytes: usize,
}

static KEPT: Mutex<KeptBlocks> = Mutex::new(KeptBlocks {
    blocks: [(0, 0, 0); SLOTS],
    len: 0,
    bytes: 0,
});

impl KeptBlocks {
    /// Removes and returns a kept block of exactly this layout.
    fn take(&mut self, layout: Layout) -> Option<*mut u8> {
        let index = self.blocks[..self.len]
            .iter()
            .rposition(|&(_, size, align)| size == layout.size() && align == layout.align())?;
        Some(self.remove(index).0 as *mut u8)
    }

    /// Removes and returns block `index`: `(address, size, alignment)`.
    fn remove(&mut self, index: usize) -> (usize, usize, usize) {
        let block = self.blocks[index];
        self.blocks.copy_within(index + 1..self.len, index);
        self.len -= 1;
        self.bytes -= block.1;
        block
    }

    /// Keeps a freed block; returns the blocks given up to make room for it (it may be one of
    /// them), which the caller frees.
    fn keep(&mut self, ptr: *mut u8, layout: Layout) -> Evicted {
        let mut evicted = Evicted::default();
        if layout.size() > MAX_KEPT_BYTES {
            evicted.push(ptr, layout);
            return evicted;
        }
        while self.len == SLOTS || self.bytes + layout.size() > MAX_KEPT_BYTES {
            let (address, size, align) = self.remove(0);
            // SAFETY: the block was kept with this (valid) layout.
            evicted.push(address as *mut u8, unsafe {
                Layout::from_size_align_unchecked(size, align)
            });
        }
        self.blocks[self.len] = (ptr as usize, layout.size(), layout.align());
        self.len += 1;
        self.bytes += layout.size();
        evicted
    }
}

/// Blocks to free once the lock is released.
#[derive(Default)]
struct Evicted {
    blocks: [Option<(*mut u8, Layout)>; SLOTS],
    len: usize,
}

impl Evicted {
    fn push(&mut self, ptr: *mut u8, layout: Layout) {
        self.blocks[self.len] = Some((ptr, layout));
        self.len += 1;
    }
}

fn kept() -> std::sync::MutexGuard<'static, KeptBlocks> {
    KEPT.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

// SAFETY: every block handed out is a block `System` allocated with exactly the requested
// layout (fresh, or kept after being freed with that layout), so `System` may free or resize
// it; a kept block is handed out once (it leaves the list under the lock).
unsafe impl GlobalAlloc for ReusingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= LARGE_BLOCK
            && let Some(ptr) = kept().take(layout)
        {
            return ptr;
        }
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= LARGE_BLOCK
            && let Some(ptr) = kept().take(layout)
        {
            // SAFETY: the kept block holds `layout.size()` writable bytes.
            unsafe { std::ptr::write_bytes(ptr, 0, layout.size()) };
            return ptr;
        }
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() < LARGE_BLOCK {
            // SAFETY: forwarded with the caller's pointer and layout.
            return unsafe { System.dealloc(ptr, layout) };
        }
        let evicted = kept().keep(ptr, layout);
        for (ptr, layout) in evicted.blocks.into_iter().flatten() {
            // SAFETY: each evicted block was allocated by `System` with this layout.
            unsafe { System.dealloc(ptr, layout) };
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` was allocated by `System` with `layout` (see above).
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize) -> Layout {
        Layout::from_size_align(size, 64).unwrap()
    }

    #[test]
    fn large_blocks_are_reused_for_the_same_layout_and_zeroed_on_request() {
        let allocator = ReusingAllocator;
        let size = LARGE_BLOCK + 4096;
        unsafe {
            let first = allocator.alloc(layout(size));
            first.write_bytes(7, size);
            allocator.dealloc(first, layout(size));
            let other = allocator.alloc(layout(size + 8));
            assert_ne!(other, first, "a block of another size must not be reused");
            let again = allocator.alloc_zeroed(layout(size));
            assert_eq!(
                again, first,
                "the freed block of this size is handed out again"
            );
            assert!(
                std::slice::from_raw_parts(again, size)
                    .iter()
                    .all(|&b| b == 0)
            );
            allocator.dealloc(again, layout(size));
            allocator.dealloc(other, layout(size + 8));
        }
    }

    #[test]
    fn the_kept_blocks_stay_within_their_limits() {
        let mut blocks = KeptBlocks {
            blocks: [(0, 0, 0); SLOTS],
            len: 0,
            bytes: 0,
        };
        let mut freed = 0;
        for i in 0..3 * SLOTS {
            let size = LARGE_BLOCK * (1 + i % 3);
            let evicted = blocks.keep((i + 1) as *mut u8, layout(size));
            freed += evicted.len;
            assert!(blocks.len <= SLOTS && blocks.bytes <= MAX_KEPT_BYTES);
        }
        assert_eq!(
            freed + blocks.len,
            3 * SLOTS,
            "every block is kept or freed"
        );
        let evicted = blocks.keep(std::ptr::dangling_mut(), layout(MAX_KEPT_BYTES + 1));
        assert_eq!(
            evicted.len, 1,
            "a block larger than the limit is freed at once"
        );
    }
}
