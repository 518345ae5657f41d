//! Resuming from a transcript, as the command line reads it: the transcript's chain must be
//! intact, its signature (when there is one) valid, and the runbook unchanged.

use crate::bundled;
use crate::error::Error;

/// Reads a transcript to resume: its chain must be intact, its signature (when there is one)
/// valid, and the runbook unchanged.
pub(super) fn load_resume(
    path: &std::path::Path,
    runbook: Option<&str>,
) -> Result<(bundled::RunbookSource, Vec<crate::transcript::Record>), Error> {
    let (records, cut) = crate::transcript::read_transcript_prefix(path)?;
    if cut {
        eprintln!(
            "note: the transcript's last line was cut (the run was killed while writing); it is ignored"
        );
    }
    if crate::transcript::signature_path(path).exists() {
        let v = crate::transcript::verify_transcript(
            path,
            &crate::transcript::VerifyOptions::default(),
        )?;
        if !v.ok {
            let first = v
                .problems
                .first()
                .map(|p| p.what.clone())
                .unwrap_or_default();
            return Err(Error::Invalid(format!(
                "{} does not verify ({first}); refusing to resume from it",
                path.display()
            )));
        }
    }
    let first = records
        .first()
        .filter(|r| r.kind == "run-started")
        .ok_or_else(|| Error::Invalid(format!("{}: no run-started record", path.display())))?;
    let text = first
        .str_field("runbook_text")
        .unwrap_or_default()
        .to_string();
    let recorded = first.str_field("runbook_sha256").unwrap_or_default();
    if crate::transcript::sha256_hex(text.as_bytes()) != recorded {
        return Err(Error::Invalid(format!(
            "{}: the embedded runbook does not match its digest",
            path.display()
        )));
    }
    let source = match runbook {
        Some(name) => {
            let given = bundled::resolve(name)?;
            let digest = crate::transcript::sha256_hex(given.text.as_bytes());
            if digest != recorded {
                return Err(Error::Usage(format!(
                    "the runbook `{name}` changed since that run (sha256 {}… now, {}… then); resume needs the same runbook — omit RUNBOOK to use the copy in the transcript",
                    &digest[..12],
                    &recorded[..12.min(recorded.len())]
                )));
            }
            given
        }
        None => bundled::RunbookSource {
            display: format!(
                "{} (from the transcript)",
                first.str_field("runbook_name").unwrap_or("runbook")
            ),
            text,
        },
    };
    Ok((source, records))
}
