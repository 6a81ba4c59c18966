//! How the process's allocator treats the big buffers of training.
//!
//! Every operation of a training step on burn's CPU backend allocates its output and drops its
//! inputs, a few hundred buffers per step of up to tens of MB each. glibc's `malloc` serves blocks
//! above its mmap threshold (128 KiB at first, raised as it sees frees, up to 32 MiB) with fresh
//! `mmap`s and returns them with `munmap`, and it gives the top of its heap back to the kernel
//! whenever more than 128 KiB lies free there. So every step pays page faults on fresh pages (the
//! kernel zeroing each one) and, on unmapping, TLB shootdowns on every core. [`keep_freed_memory`]
//! raises the threshold to its maximum and stops the trimming, so that freed buffers stay in the
//! heap and the next step reuses them.
//!
//! Measured on the project's 2-core machine (docs/PERFORMANCE.md, `scripts/bench-malloc.sh`):
//! this made ResNet-20 and ResNet-50 training steps faster in every interleaved round, while
//! mimalloc and jemalloc made them slower.

/// The environment variables through which glibc's own malloc settings are given; when one is
/// set, the user's settings stand.
const GLIBC_SETTINGS: [&str; 5] = [
    "GLIBC_TUNABLES",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_TOP_PAD_",
    "MALLOC_MMAP_MAX_",
];

/// What [`keep_freed_memory`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malloc {
    /// The settings were applied.
    Tuned,
    /// The user set glibc's malloc through the environment; left as it is.
    UserSettings,
    /// Not glibc (another C library or system): nothing to tune.
    Unsupported,
}

/// Keep freed memory in the process for reuse instead of returning it to the kernel after every
/// operation (glibc: mmap threshold 32 MiB, no trimming, 512 MiB of heap grown at a time). Call
/// once, first thing in `main`; the process's peak memory stays what it was, but it is not given
/// back before the process ends.
pub fn keep_freed_memory() -> Malloc {
    if GLIBC_SETTINGS
        .iter()
        .any(|name| std::env::var_os(name).is_some())
    {
        return Malloc::UserSettings;
    }
    tune()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune() -> Malloc {
    // glibc's largest mmap threshold on 64-bit systems (HEAP_MAX_SIZE / 2).
    const MMAP_THRESHOLD: libc::c_int = 32 << 20;
    const TOP_PAD: libc::c_int = 512 << 20;
    let settings = [
        (libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD),
        (libc::M_TRIM_THRESHOLD, libc::c_int::MAX),
        (libc::M_TOP_PAD, TOP_PAD),
    ];
    for (param, value) in settings {
        // SAFETY: mallopt only changes malloc's parameters; glibc serializes it with allocation.
        let ok = unsafe { libc::mallopt(param, value) };
        assert_eq!(ok, 1, "glibc rejected mallopt({param}, {value})");
    }
    Malloc::Tuned
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune() -> Malloc {
    Malloc::Unsupported
}
