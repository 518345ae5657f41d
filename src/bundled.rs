//! Runbooks compiled into the binary, so an engineer at 3 a.m. needs no checkout to run one.
//!
//! Wherever a command takes `RUNBOOK`, it accepts a path or one of these names.

use std::io::Read;
use std::path::Path;

use crate::error::Error;
use crate::runbook::parse::MAX_BYTES;

/// A bundled runbook: its name and YAML text.
#[derive(Debug, Clone, Copy)]
pub struct Bundled {
    /// The name used on the command line (the file stem).
    pub name: &'static str,
    /// The YAML text.
    pub text: &'static str,
}

/// Every bundled runbook, in the order `list` shows them.
pub static BUNDLED: &[Bundled] = &[
    Bundled {
        name: "api-key-compromise",
        text: include_str!("../runbooks/api-key-compromise.yaml"),
    },
    Bundled {
        name: "session-compromise",
        text: include_str!("../runbooks/session-compromise.yaml"),
    },
    Bundled {
        name: "security-monitoring",
        text: include_str!("../runbooks/security-monitoring.yaml"),
    },
    Bundled {
        name: "access-review",
        text: include_str!("../runbooks/access-review.yaml"),
    },
    Bundled {
        name: "scheduled-key-rotation",
        text: include_str!("../runbooks/scheduled-key-rotation.yaml"),
    },
    Bundled {
        name: "persistence-sweep",
        text: include_str!("../runbooks/persistence-sweep.yaml"),
    },
];

/// Finds a bundled runbook by name.
pub fn find(name: &str) -> Option<&'static Bundled> {
    BUNDLED.iter().find(|b| b.name == name)
}

/// The bundled runbook called `name`; a usage error naming the closest one when there is none.
pub fn named(name: &str) -> Result<&'static Bundled, Error> {
    find(name).ok_or_else(|| {
        Error::Usage(format!(
            "`{name}` is not a bundled runbook; {}",
            did_you_mean(name)
        ))
    })
}

/// "did you mean `X`?" for a misspelt name, or the list of names when none is close.
fn did_you_mean(name: &str) -> String {
    let names: Vec<&str> = BUNDLED.iter().map(|b| b.name).collect();
    match crate::runbook::validate::suggest(name, &names) {
        Some(s) => format!("did you mean `{s}`?"),
        None => format!("the bundled runbooks are: {}", names.join(", ")),
    }
}

/// A runbook's text and the name to show in messages.
#[derive(Debug, Clone)]
pub struct RunbookSource {
    /// The path as given, or `bundled:NAME`.
    pub display: String,
    /// The YAML text.
    pub text: String,
}

/// Reads `RUNBOOK`: an existing path wins; otherwise a bundled name.
///
/// A path is opened first and then checked (`fstat` of what was opened, so a symlink swapped in
/// between cannot matter): only a regular file is read, and at most [`MAX_BYTES`] + 1 bytes of
/// it, so a link to `/dev/zero`, a FIFO or a huge file is refused at once. Opening never blocks
/// (a FIFO is opened non-blocking, then refused). The text must be UTF-8. Nothing of a file is
/// quoted here; [`crate::runbook::load`] quotes only runbook-shaped YAML mappings.
pub fn resolve(arg: &str) -> Result<RunbookSource, Error> {
    let path = Path::new(arg);
    if std::fs::symlink_metadata(path).is_ok() {
        return Ok(RunbookSource {
            display: arg.to_string(),
            text: read_file(path, arg)?,
        });
    }
    match find(arg) {
        Some(b) => Ok(RunbookSource {
            display: format!("bundled:{}", b.name),
            text: b.text.to_string(),
        }),
        None => Err(Error::Usage(format!(
            "`{arg}` is neither a file nor a bundled runbook; {}",
            did_you_mean(arg)
        ))),
    }
}

/// Reads a runbook file: a regular file of at most [`MAX_BYTES`], UTF-8.
fn read_file(path: &Path, arg: &str) -> Result<String, Error> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Non-blocking: opening a FIFO for reading would otherwise wait for a writer.
        let flags = rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOCTTY;
        options.custom_flags(flags.bits() as i32);
    }
    let file = options
        .open(path)
        .map_err(|e| Error::Usage(format!("{arg}: cannot be opened: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| Error::Usage(format!("{arg}: cannot be read: {e}")))?;
    if !meta.is_file() {
        return Err(Error::Usage(format!(
            "{arg}: {}, not a regular file; runbooks are read from regular files only",
            kind_of(&meta)
        )));
    }
    let mut bytes = Vec::new();
    file.take(MAX_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::Usage(format!("{arg}: cannot be read: {e}")))?;
    if bytes.len() > MAX_BYTES {
        return Err(Error::Usage(format!(
            "{arg}: larger than 1 MiB; runbooks are limited to {MAX_BYTES} bytes"
        )));
    }
    decode(bytes, arg)
}

/// What kind of file this is, for a message.
fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_char_device() {
            return "a character device (such as /dev/zero)";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_fifo() {
            return "a named pipe (FIFO)";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    "a special file"
}

/// UTF-8 text, or a message naming what the bytes are instead (never the bytes themselves).
fn decode(bytes: Vec<u8>, arg: &str) -> Result<String, Error> {
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return Err(Error::Usage(format!(
            "{arg}: UTF-16 text (it starts with a UTF-16 byte-order mark); runbooks are UTF-8: save it as UTF-8"
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].iter().filter(|b| **b == b'\n').count() + 1;
        let hint = if e.as_bytes().iter().take(4096).filter(|b| **b == 0).count() > 1 {
            " (it holds NUL bytes: UTF-16 without a byte-order mark?)"
        } else {
            ""
        };
        Error::Usage(format!(
            "{arg}: not UTF-8 text: invalid byte at line {line} (byte offset {at}){hint}; runbooks are UTF-8"
        ))
    })
}
