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
//! `scripts/bench-malloc.sh` compares training steps with these settings, glibc as it comes,
//! mimalloc and jemalloc (docs/PERFORMANCE-LOG.md has the rounds).

/// What [`keep_freed_memory`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malloc {
    /// The settings were applied.
    Tuned,
    /// The user set glibc's malloc through the environment; left as it is.
    UserSettings,
    /// glibc refused a setting (named); the allocator runs as it comes.
    Rejected(&'static str),
    /// Not 64-bit glibc (another C library or system): nothing to tune.
    Unsupported,
}

/// Whether the user gave glibc's malloc settings of their own through the environment
/// (`MALLOC_*` variables or a `glibc.malloc.` tunable).
fn user_settings() -> bool {
    let variables = [
        "MALLOC_MMAP_THRESHOLD_",
        "MALLOC_TRIM_THRESHOLD_",
        "MALLOC_TOP_PAD_",
        "MALLOC_MMAP_MAX_",
        "MALLOC_ARENA_MAX",
    ];
    variables.iter().any(|v| std::env::var_os(v).is_some())
        || std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("glibc.malloc."))
}

/// Keep freed memory in the process for reuse instead of returning it to the kernel after every
/// operation (glibc: mmap threshold at its 32 MiB maximum, no trimming, the heap grown 512 MiB at
/// a time). Call once, first thing in `main`. Memory is then not given back before the process
/// ends, and the peak can grow by what the heap holds free; blocks above 32 MiB are still mapped
/// and unmapped each time.
pub fn keep_freed_memory() -> Malloc {
    if user_settings() {
        return Malloc::UserSettings;
    }
    tune()
}

/// For the benches: [`keep_freed_memory`] as `gclab` does, unless the command line `args` hold
/// `--default-malloc` (glibc as it comes); says which, to print with the results.
pub fn for_bench(args: &[String]) -> String {
    if args.iter().any(|a| a == "--default-malloc") {
        "default".to_string()
    } else {
        format!("{:?}", keep_freed_memory())
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64"))]
fn tune() -> Malloc {
    // glibc's largest mmap threshold on 64-bit systems (HEAP_MAX_SIZE / 2).
    const MMAP_THRESHOLD: libc::c_int = 32 << 20;
    const TOP_PAD: libc::c_int = 512 << 20;
    let settings = [
        ("M_MMAP_THRESHOLD", libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD),
        // -1: never trim (mallopt(3)).
        ("M_TRIM_THRESHOLD", libc::M_TRIM_THRESHOLD, -1),
        ("M_TOP_PAD", libc::M_TOP_PAD, TOP_PAD),
    ];
    for (name, param, value) in settings {
        // SAFETY: mallopt only changes malloc's parameters; glibc serializes it with allocation.
        if unsafe { libc::mallopt(param, value) } != 1 {
            return Malloc::Rejected(name);
        }
    }
    Malloc::Tuned
}

#[cfg(not(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64")))]
fn tune() -> Malloc {
    Malloc::Unsupported
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The settings apply where 64-bit glibc runs and the user set none; theirs stand otherwise.
    #[test]
    fn tunes_glibc_unless_the_user_set_it() {
        let expected = if user_settings() {
            Malloc::UserSettings
        } else if cfg!(all(
            target_os = "linux",
            target_env = "gnu",
            target_pointer_width = "64"
        )) {
            Malloc::Tuned
        } else {
            Malloc::Unsupported
        };
        assert_eq!(keep_freed_memory(), expected);
        // Memory still comes and goes, above and below the mmap threshold.
        for size in [1 << 10, 1 << 20, 64 << 20] {
            let block = vec![1u8; size];
            assert_eq!(block.iter().map(|&b| usize::from(b)).sum::<usize>(), size);
        }
    }
}
