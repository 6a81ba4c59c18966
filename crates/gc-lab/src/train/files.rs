//! Writing results so that a crash never leaves a half-written file.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

/// Write `bytes` to `path` atomically: a temporary file beside it, synced, then renamed over it.
/// On failure (a full disk, say) the temporary file is removed and `path` keeps its old content.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    let mut file = std::fs::File::create(&tmp).with_context(|| {
        format!(
            "cannot create {} (is the folder writable, is the disk full?)",
            tmp.display()
        )
    })?;
    if let Err(e) = file.write_all(bytes).and_then(|()| file.sync_all()) {
        drop(file);
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| {
            format!(
                "cannot write {} (is the disk full?); {} is unchanged",
                tmp.display(),
                path.display()
            )
        });
    }
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot move {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

/// Append one line to `path` and flush it to disk.
pub fn append_line(path: &Path, line: &str) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {} for appending", path.display()))?;
    writeln!(file, "{line}")
        .and_then(|()| file.sync_data())
        .with_context(|| format!("cannot append to {} (is the disk full?)", path.display()))
}

/// Create `dir` (and parents), naming it in the error.
pub fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "cannot create the output folder {} (is it writable?)",
            dir.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary() {
        let dir = crate::test_dir("files");
        let path = dir.join("summary.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A full disk, made by pointing the temporary file at `/dev/full` (every write fails with
    /// ENOSPC): a clear error, the old file intact, no temporary left.
    #[test]
    fn a_full_disk_is_a_clear_error_and_keeps_the_old_file() {
        let dir = crate::test_dir("files-full");
        let path = dir.join("summary.json");
        write_atomic(&path, b"old").unwrap();
        std::os::unix::fs::symlink("/dev/full", dir.join("summary.json.tmp")).unwrap();
        let err = format!("{:#}", write_atomic(&path, b"new").unwrap_err());
        assert!(
            err.contains("is the disk full?") && err.contains("No space left on device"),
            "{err}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert!(!dir.join("summary.json.tmp").exists());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_unwritable_folder_is_a_clear_error() {
        let err = write_atomic(Path::new("/proc/gclab/summary.json"), b"x").unwrap_err();
        assert!(
            format!("{err:#}").contains("cannot create /proc/gclab/summary.json.tmp"),
            "{err:#}"
        );
    }
}
