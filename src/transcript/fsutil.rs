//! Creating files and folders with the modes the transcript's security model promises.
//!
//! Transcripts, keys and signatures are written 0600 in folders created 0700, so nothing the
//! tool writes is readable by other local users; on non-Unix platforms the defaults apply.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;

/// Creates `dir` and any missing parents; folders created here get mode 0700, existing ones keep
/// theirs (nothing here ever changes the mode of a folder it did not create).
pub(crate) fn create_private_dir_all(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Opens a new file for writing with mode 0600; fails if it exists (a transcript or key is
/// never silently replaced) and never follows a link (`O_EXCL|O_NOFOLLOW`: a planted link at the
/// name is an error, its target is never touched).
pub(crate) fn create_private_file(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    }
    options.open(path)
}

/// Writes `bytes` to `path` (mode 0600) by way of a temporary file and a rename, so a reader never
/// sees half a file.
pub(crate) fn write_private_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    // A leftover (or planted) temporary name is removed, never followed: removing a link removes
    // the link, and the file is then created new.
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut file = create_private_file(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
