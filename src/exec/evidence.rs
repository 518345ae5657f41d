//! The run's evidence folder: full responses (`save`), audit pages streamed to disk, and the
//! secrets folder for secret outputs (0600 files in a 0700 folder).

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::event::EvidenceRef;
use crate::esus::paths;

/// Where a run keeps its files.
#[derive(Debug, Clone)]
pub struct Folders {
    /// Evidence files (`save`), referenced from the transcript by name and digest.
    pub evidence: PathBuf,
    /// Secret outputs, one 0600 file each.
    pub secrets: PathBuf,
}

impl Folders {
    /// Creates both folders (0700).
    pub fn create(&self) -> std::io::Result<()> {
        create_private_dir(&self.evidence)?;
        create_private_dir(&self.secrets)
    }

    /// The checked path of an evidence file.
    pub fn evidence_path(&self, name: &str) -> Result<PathBuf, String> {
        paths::check_save_name(name)?;
        Ok(self.evidence.join(name))
    }

    /// Writes one secret to `secrets/<step>.<name>` with mode 0600; returns its path.
    pub fn write_secret(&self, step: &str, name: &str, value: &str) -> std::io::Result<PathBuf> {
        create_private_dir(&self.secrets)?;
        let path = self.secrets.join(format!("{step}.{name}"));
        let mut f = private_file(&path)?;
        f.write_all(value.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        Ok(path)
    }
}

/// Creates a folder (and parents) readable by the owner only.
pub fn create_private_dir(path: &Path) -> std::io::Result<()> {
    fs::create_dir_all(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Creates (truncating) a file readable by the owner only.
pub fn private_file(path: &Path) -> std::io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

/// A JSON evidence file written as it arrives, hashed on the way.
pub struct EvidenceWriter {
    file: BufWriter<File>,
    hasher: Sha256,
    name: String,
    rows: u64,
}

impl EvidenceWriter {
    /// Opens `name` in the evidence folder (sub-folders are created).
    pub fn create(folders: &Folders, name: &str) -> Result<EvidenceWriter, String> {
        let path = folders.evidence_path(name)?;
        if let Some(parent) = path.parent() {
            create_private_dir(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        let file = private_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(EvidenceWriter {
            file: BufWriter::new(file),
            hasher: Sha256::new(),
            name: name.to_string(),
            rows: 0,
        })
    }

    /// Writes bytes.
    pub fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.hasher.update(bytes);
        self.file.write_all(bytes)
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

    /// Flushes to disk and returns the file's reference.
    pub fn finish(mut self) -> std::io::Result<EvidenceRef> {
        self.file.flush()?;
        self.file.get_ref().sync_all()?;
        Ok(EvidenceRef {
            file: self.name,
            sha256: hex::encode(self.hasher.finalize()),
        })
    }
}
