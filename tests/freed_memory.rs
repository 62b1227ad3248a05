//! `memory::keep_freed_memory`: a large buffer freed by the main thread is handed out again
//! without the kernel mapping and zeroing fresh pages.
//!
//! Runs without the test harness, so that the allocations happen on the process's main
//! thread (the harness runs tests on threads of their own, which glibc serves from per-thread
//! heaps) and before any other thread exists, as in the `vidcls` binary.

fn main() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    glibc::a_freed_large_buffer_is_reused_without_page_faults();
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    use std::hint::black_box;

    /// Minor page faults of this process so far.
    fn page_faults() -> i64 {
        // SAFETY: getrusage writes one `rusage` into the zeroed value it is given.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) }, 0);
        usage.ru_minflt
    }

    pub fn a_freed_large_buffer_is_reused_without_page_faults() {
        vidcls::memory::keep_freed_memory();
        const MIB: usize = 1 << 20;
        // Larger than glibc's largest mapping threshold (32 MiB), so with its defaults each
        // of these buffers would be mapped on its own and unmapped when freed.
        drop(black_box(vec![1u8; 256 * MIB]));
        let before = page_faults();
        // Another size, so that nothing but malloc's own reuse can serve it.
        let reused = black_box(vec![2u8; 192 * MIB]);
        let faults = page_faults() - before;
        assert_eq!(reused[reused.len() - 1], 2);
        let fresh_pages = (192 * MIB / 4096) as i64;
        assert!(
            faults < fresh_pages / 100,
            "writing a 192 MiB buffer after freeing a 256 MiB one faulted {faults} pages in (all \
             {fresh_pages} would be fresh): freed memory is not reused"
        );
        println!("a_freed_large_buffer_is_reused_without_page_faults: {faults} page faults");
    }
}
