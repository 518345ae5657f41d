//! Runbooks compiled into the binary, so an engineer at 3 a.m. needs no checkout to run one.
//!
//! Wherever a command takes `RUNBOOK`, it accepts a path or one of these names.

use std::path::Path;

use crate::error::Error;

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
];

/// Finds a bundled runbook by name.
pub fn find(name: &str) -> Option<&'static Bundled> {
    BUNDLED.iter().find(|b| b.name == name)
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
pub fn resolve(arg: &str) -> Result<RunbookSource, Error> {
    let path = Path::new(arg);
    if path.exists() {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(format!("reading {arg}"), e))?;
        if meta.len() > crate::runbook::parse::MAX_BYTES as u64 {
            return Err(Error::Usage(format!(
                "{arg}: {} bytes; runbooks are limited to 1 MiB",
                meta.len()
            )));
        }
        let bytes = std::fs::read(path).map_err(|e| Error::io(format!("reading {arg}"), e))?;
        let text =
            String::from_utf8(bytes).map_err(|_| Error::Usage(format!("{arg}: not UTF-8 text")))?;
        return Ok(RunbookSource {
            display: arg.to_string(),
            text,
        });
    }
    match find(arg) {
        Some(b) => Ok(RunbookSource {
            display: format!("bundled:{}", b.name),
            text: b.text.to_string(),
        }),
        None => {
            let names: Vec<&str> = BUNDLED.iter().map(|b| b.name).collect();
            Err(Error::Usage(format!(
                "`{arg}` is neither a file nor a bundled runbook (bundled: {})",
                names.join(", ")
            )))
        }
    }
}
