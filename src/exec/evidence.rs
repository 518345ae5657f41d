//! The run's evidence folder: full responses (`save`), audit pages streamed to disk, and the
//! secrets folder for secret outputs (0600 files in a 0700 folder).
//!
//! A run folder may already exist, and someone else may have planted links in it. So: every file
//! is created new (`O_CREAT|O_EXCL|O_NOFOLLOW`, relative to a folder opened with `O_NOFOLLOW`),
//! never opened over an existing name; a name that is taken gets the next free `.N` (a secret is
//! never lost, evidence never overwritten); sub-folders are created and entered one component at
//! a time without following links; modes are set only on folders created here, never on existing
//! ones; and [`check_run_folder`] / [`Folders::check`] refuse, before anything is sent, a folder
//! that is a link, is not owned by the effective user, is writable by group or others, or holds a
//! link in `evidence/` or `secrets/`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::sealed::Hashing;
use crate::esus::paths;
use crate::event::EvidenceRef;

/// How many `.N` suffixes are tried for a taken name before giving up.
const MAX_SUFFIX: usize = 10_000;

/// Where a run keeps its files.
#[derive(Debug, Clone)]
pub struct Folders {
    /// Evidence files (`save`), referenced from the transcript by name and digest.
    pub evidence: PathBuf,
    /// Secret outputs, one 0600 file each.
    pub secrets: PathBuf,
    /// Who the evidence and secrets are encrypted to (`--encrypt-to`); none: written in clear.
    pub seal: Option<super::sealed::Recipients>,
}

impl Folders {
    /// Creates both folders (0700) where missing; existing folders keep their mode.
    pub fn create(&self) -> io::Result<()> {
        create_private_dir(&self.evidence)?;
        create_private_dir(&self.secrets)
    }

    /// Refuses existing evidence or secrets folders that are links, are not ours, are writable
    /// by group or others, or hold a link anywhere inside. Missing folders are fine.
    pub fn check(&self) -> Result<(), String> {
        for dir in [&self.evidence, &self.secrets] {
            if check_existing_dir(dir)? {
                refuse_links_under(dir, 0)?;
            }
        }
        Ok(())
    }

    /// The checked path of an evidence file.
    pub fn evidence_path(&self, name: &str) -> Result<PathBuf, String> {
        paths::check_save_name(name)?;
        Ok(self.evidence.join(name))
    }

    /// The incident's witness salt (`secrets/witness.salt`, 0600): read when an earlier leg made
    /// it, else made now (32 random bytes). It keys the fingerprints of credentials ESUS
    /// accepted; the transcript holds fingerprints, never the salt.
    pub fn witness_salt(&self) -> io::Result<Vec<u8>> {
        let path = self.secrets.join(super::witness::SALT_FILE);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_file() => {
                let text = fs::read_to_string(&path)?;
                hex::decode(text.trim()).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: {e}", path.display()),
                    )
                })
            }
            Ok(_) => Err(io::Error::other(link_refused(&path))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                create_private_dir(&self.secrets)?;
                let salt: [u8; 32] = rand::random();
                let mut f = private_file(&path)?;
                f.write_all(hex::encode(salt).as_bytes())?;
                f.sync_all()?;
                Ok(salt.to_vec())
            }
            Err(e) => Err(e),
        }
    }

    /// Writes one secret to `secrets/<step>.<name>` with mode 0600, or, when that name is taken
    /// (an earlier run, a second item, a planted file or link), to the first free
    /// `secrets/<step>.<name>.<n>`. Never follows a link, never truncates; the file and its folder
    /// are synced. Returns the path actually written.
    pub fn write_secret(&self, step: &str, name: &str, value: &str) -> io::Result<PathBuf> {
        let base = format!("{step}.{name}");
        if base.contains('/') || base.starts_with('.') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{base}` is not a file name"),
            ));
        }
        create_private_dir(&self.secrets)?;
        let dir = open_dir(&self.secrets)?;
        check_dir_fd(&dir, &self.secrets).map_err(io::Error::other)?;
        let ext = if self.seal.is_some() {
            super::sealed::SUFFIX
        } else {
            ""
        };
        let (mut file, used) = create_free(&dir, &base, ext)?;
        match &self.seal {
            Some(to) => {
                let mut w = to.seal(&mut file)?;
                w.write_all(value.as_bytes())?;
                w.write_all(b"\n")?;
                w.finish()?;
            }
            None => {
                file.write_all(value.as_bytes())?;
                file.write_all(b"\n")?;
            }
        }
        file.sync_all()?;
        // The new entry itself must survive a crash too.
        let _ = rustix::fs::fsync(&dir);
        Ok(self.secrets.join(used))
    }
}

/// Checks the run folder itself before anything is sent: when it exists it must be a real
/// folder (not a link), owned by the effective user, not writable by group or others, and hold
/// no link among its entries (a planted `transcript.jsonl` link, say).
pub fn check_run_folder(dir: &Path) -> Result<(), String> {
    if !check_existing_dir(dir)? {
        return Ok(());
    }
    let entries = fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let kind = entry
            .file_type()
            .map_err(|e| format!("{}: {e}", entry.path().display()))?;
        if kind.is_symlink() {
            return Err(link_refused(&entry.path()));
        }
    }
    Ok(())
}

fn link_refused(path: &Path) -> String {
    format!(
        "{} is a symbolic link; esus-ir never follows links in a run folder (remove it, or use a fresh --run-dir)",
        path.display()
    )
}

/// `Ok(false)` when `dir` does not exist; `Ok(true)` when it is a folder we may write in.
fn check_existing_dir(dir: &Path) -> Result<bool, String> {
    let meta = match fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    if meta.file_type().is_symlink() {
        return Err(link_refused(dir));
    }
    if !meta.is_dir() {
        return Err(format!("{} exists and is not a folder", dir.display()));
    }
    check_owner_mode(&meta, dir)?;
    Ok(true)
}

/// The folder must belong to the effective user and not be writable by group or others.
fn check_owner_mode(meta: &fs::Metadata, dir: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let me = rustix::process::geteuid().as_raw();
        if meta.uid() != me {
            return Err(format!(
                "{} belongs to uid {}, not to you (uid {me}); a run folder must be your own",
                dir.display(),
                meta.uid()
            ));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(format!(
                "{} is writable by {} (mode {:o}); a run folder must be writable by you alone",
                dir.display(),
                if meta.mode() & 0o002 != 0 {
                    "others"
                } else {
                    "its group"
                },
                meta.mode() & 0o777
            ));
        }
    }
    Ok(())
}

/// Refuses any link under `dir` (bounded depth; links are never followed while walking).
fn refuse_links_under(dir: &Path, depth: usize) -> Result<(), String> {
    if depth > 32 {
        return Err(format!("{}: folders nested too deeply", dir.display()));
    }
    let entries = fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = entry.path();
        let kind = entry
            .file_type()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if kind.is_symlink() {
            return Err(link_refused(&path));
        }
        if kind.is_dir() {
            let meta =
                fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            check_owner_mode(&meta, &path)?;
            refuse_links_under(&path, depth + 1)?;
        }
    }
    Ok(())
}

/// Creates a folder (and missing parents) readable by the owner only. Only folders created here
/// get mode 0700; an existing folder keeps its mode (it is never chmod-ed), and must be a folder,
/// not a link to one.
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(io::Error::other(link_refused(path)));
        }
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a folder", path.display()),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)
}

/// Creates a new file readable by the owner only: fails if the name exists (file or link), and
/// never follows a link.
pub fn private_file(path: &Path) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    }
    opts.open(path)
}

/// Opens a folder for `*at` calls, refusing a link.
fn open_dir(path: &Path) -> io::Result<rustix::fd::OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        io::Error::new(
            io::Error::from(e).kind(),
            format!("{}: {e}", path.display()),
        )
    })
}

/// Checks an opened folder's owner and mode (what was opened, not what the path now names).
fn check_dir_fd(dir: &rustix::fd::OwnedFd, path: &Path) -> Result<(), String> {
    let st = rustix::fs::fstat(dir).map_err(|e| format!("{}: {e}", path.display()))?;
    let me = rustix::process::geteuid().as_raw();
    if st.st_uid != me {
        return Err(format!(
            "{} belongs to uid {}, not to you (uid {me})",
            path.display(),
            st.st_uid
        ));
    }
    if st.st_mode & 0o022 != 0 {
        return Err(format!(
            "{} is writable by group or others (mode {:o})",
            path.display(),
            st.st_mode & 0o777
        ));
    }
    Ok(())
}

/// Creates `<stem><ext>` in `dir`, or the first free `<stem>.<n><ext>`: always a new file
/// (`O_EXCL|O_NOFOLLOW`, 0600). Returns the file and the name used.
fn create_free(dir: &rustix::fd::OwnedFd, stem: &str, ext: &str) -> io::Result<(File, String)> {
    use rustix::fs::{Mode, OFlags};
    for n in 0..MAX_SUFFIX {
        let name = if n == 0 {
            format!("{stem}{ext}")
        } else {
            format!("{stem}.{n}{ext}")
        };
        match rustix::fs::openat(
            dir,
            name.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        ) {
            Ok(fd) => return Ok((File::from(fd), name)),
            Err(rustix::io::Errno::EXIST) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("{stem}{ext} and {MAX_SUFFIX} numbered alternatives all exist"),
    ))
}

/// Enters (creating when missing, mode 0700) the sub-folder `name` of `dir`, never following a
/// link; an existing sub-folder must be ours and not writable by others.
fn enter_subdir(
    dir: &rustix::fd::OwnedFd,
    name: &str,
    shown: &Path,
) -> Result<rustix::fd::OwnedFd, String> {
    use rustix::fs::{Mode, OFlags};
    match rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700)) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(format!("{}: {e}", shown.display())),
    }
    let sub = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        format!(
            "{}: {e} (sub-folders of the evidence folder must be real folders, never links)",
            shown.display()
        )
    })?;
    check_dir_fd(&sub, shown)?;
    Ok(sub)
}

/// Splits `audit.json` into (`audit`, `.json`); a name without an extension (or a dot file)
/// has none.
fn split_ext(file: &str) -> (&str, &str) {
    match file.rfind('.') {
        Some(i) if i > 0 => (&file[..i], &file[i..]),
        _ => (file, ""),
    }
}

/// A JSON evidence file written as it arrives, hashed on the way. It is written aside, as
/// `<name>.partial`, and takes its name only when complete ([`EvidenceWriter::finish`]): a run
/// killed mid-pull leaves a file marked partial, never a truncated file under an evidence name.
pub struct EvidenceWriter {
    sink: Sink,
    dir: rustix::fd::OwnedFd,
    partial: String,
    stem: String,
    ext: String,
    subdirs: Vec<String>,
    rows: u64,
}

/// What a file being written is called until it is complete.
const PARTIAL: &str = ".partial";

/// Where an evidence file's bytes go: to the file (hashed on the way), or first through age —
/// then the file, and the digest, hold only ciphertext.
enum Sink {
    Clear(Hashing<BufWriter<File>>),
    Sealed(age::stream::StreamWriter<Hashing<BufWriter<File>>>),
}

impl Sink {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Sink::Clear(w) => w.write_all(bytes),
            Sink::Sealed(w) => w.write_all(bytes),
        }
    }

    /// Ends the stream (age's last chunk), flushes, and returns the file and the digest of
    /// what it holds.
    fn finish(self) -> io::Result<(File, String)> {
        let hashing = match self {
            Sink::Clear(w) => w,
            Sink::Sealed(w) => w.finish()?,
        };
        let (buffered, digest) = hashing.finish();
        let file = buffered.into_inner().map_err(|e| e.into_error())?;
        Ok((file, digest))
    }
}

impl EvidenceWriter {
    /// Creates `name` in the evidence folder: sub-folders are created (0700) and entered one
    /// component at a time without following links; the file is always new (0600, never
    /// following a link), written as `<name>.partial` until [`EvidenceWriter::finish`] gives it
    /// its name — or, when that is taken, the first free `<stem>.<n>.<ext>`; the reference
    /// `finish` returns names the file actually written.
    pub fn create(folders: &Folders, name: &str) -> Result<EvidenceWriter, String> {
        paths::check_save_name(name)?;
        let parts: Vec<&str> = name.split('/').filter(|s| !s.is_empty()).collect();
        let Some((file_name, subdirs)) = parts.split_last() else {
            return Err("the file name is empty".into());
        };
        let root = &folders.evidence;
        create_private_dir(root).map_err(|e| format!("{}: {e}", root.display()))?;
        let mut dir = open_dir(root).map_err(|e| e.to_string())?;
        check_dir_fd(&dir, root)?;
        let mut shown = root.clone();
        for sub in subdirs {
            shown.push(sub);
            dir = enter_subdir(&dir, sub, &shown)?;
        }
        let (stem, ext) = split_ext(file_name);
        let ext = match &folders.seal {
            Some(_) => format!("{ext}{}", super::sealed::SUFFIX),
            None => ext.to_string(),
        };
        let partial_ext = format!("{ext}{PARTIAL}");
        let (file, partial) = create_free(&dir, stem, &partial_ext)
            .map_err(|e| format!("{}: {e}", shown.join(file_name).display()))?;
        let out = Hashing::new(BufWriter::new(file));
        let sink = match &folders.seal {
            Some(to) => Sink::Sealed(
                to.seal(out)
                    .map_err(|e| format!("{}: {e}", shown.join(file_name).display()))?,
            ),
            None => Sink::Clear(out),
        };
        Ok(EvidenceWriter {
            sink,
            dir,
            partial,
            stem: stem.to_string(),
            ext,
            subdirs: subdirs.iter().map(|s| s.to_string()).collect(),
            rows: 0,
        })
    }

    /// The name (relative to the evidence folder) this writer means to give its file.
    pub fn name(&self) -> String {
        let mut parts = self.subdirs.clone();
        parts.push(format!("{}{}", self.stem, self.ext));
        parts.join("/")
    }

    /// Writes bytes.
    pub fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.sink.write_all(bytes)
    }

    /// Starts a paged document: `{"rows":[`.
    pub fn begin_rows(&mut self) -> std::io::Result<()> {
        self.write(b"{\"rows\":[")
    }

    /// Appends one row.
    pub fn row(&mut self, row: &serde_json::Value) -> std::io::Result<()> {
        if self.rows > 0 {
            self.write(b",\n")?;
        }
        self.rows += 1;
        let bytes = serde_json::to_vec(row).map_err(std::io::Error::other)?;
        self.write(&bytes)
    }

    /// Ends a paged document with the total ESUS reported.
    pub fn end_rows(&mut self, total: u64) -> std::io::Result<()> {
        self.write(format!("],\"total\":{total}}}\n").as_bytes())
    }

    /// Flushes to disk, gives the file its name (never over an existing file) and returns the
    /// file's reference.
    pub fn finish(self) -> std::io::Result<EvidenceRef> {
        use rustix::fs::{RenameFlags, renameat_with};
        let (file, digest) = self.sink.finish()?;
        file.sync_all()?;
        for n in 0..MAX_SUFFIX {
            let name = match n {
                0 => format!("{}{}", self.stem, self.ext),
                n => format!("{}.{n}{}", self.stem, self.ext),
            };
            let renamed = renameat_with(
                &self.dir,
                self.partial.as_str(),
                &self.dir,
                name.as_str(),
                RenameFlags::NOREPLACE,
            );
            match renamed {
                Ok(()) => {
                    rustix::fs::fsync(&self.dir)?;
                    let mut parts = self.subdirs.clone();
                    parts.push(name);
                    return Ok(EvidenceRef {
                        file: parts.join("/"),
                        sha256: digest,
                    });
                }
                Err(rustix::io::Errno::EXIST) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{}{} and its numbered alternatives all exist",
                self.stem, self.ext
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn folders(dir: &Path) -> Folders {
        Folders {
            seal: None,
            evidence: dir.join("evidence"),
            secrets: dir.join("secrets"),
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut out: Vec<String> = fs::read_dir(dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    #[test]
    fn evidence_takes_its_name_only_when_complete() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = folders(dir.path());
        let mut w = EvidenceWriter::create(&f, "audit.json").expect("create");
        w.begin_rows().expect("write");
        w.row(&serde_json::json!({"id": 1})).expect("row");
        assert_eq!(
            names(&f.evidence),
            ["audit.json.partial"],
            "while it is written, nothing carries the evidence name"
        );
        let r = w.finish().expect("finish");
        assert_eq!(r.file, "audit.json");
        assert_eq!(names(&f.evidence), ["audit.json"]);
        let bytes = fs::read(f.evidence.join("audit.json")).expect("read");
        assert_eq!(r.sha256, hex::encode(Sha256::digest(&bytes)));
    }

    #[test]
    fn a_writer_that_never_finishes_leaves_a_partial_file_and_never_overwrites() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = folders(dir.path());
        let mut killed = EvidenceWriter::create(&f, "audit.json").expect("create");
        killed.write(b"{\"rows\":[").expect("write");
        drop(killed);
        let mut again = EvidenceWriter::create(&f, "audit.json").expect("create");
        again.write(b"{}").expect("write");
        let done = again.finish().expect("finish");
        assert_eq!(done.file, "audit.json");
        let mut third = EvidenceWriter::create(&f, "audit.json").expect("create");
        third.write(b"[]").expect("write");
        assert_eq!(
            third.finish().expect("finish").file,
            "audit.1.json",
            "never overwritten"
        );
        assert_eq!(
            names(&f.evidence),
            ["audit.1.json", "audit.json", "audit.json.partial"],
            "the killed one stays marked partial"
        );
        assert_eq!(
            fs::read(f.evidence.join("audit.json")).expect("read"),
            b"{}"
        );
    }
}
