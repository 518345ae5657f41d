//! Reading a transcript back into records, refusing one whose chain is broken.
//!
//! Resume and `report` start here; neither should act on a transcript that was altered.

use std::path::Path;

use super::TranscriptError;
use super::chain::check_chain;
use super::record::Record;

/// Reads every record of the transcript at `path`, checking the hash chain (not the signature,
/// nor that the run finished: a killed run's transcript reads fine). Fails at the first bad line.
pub fn read_transcript(path: &Path) -> Result<Vec<Record>, TranscriptError> {
    let bytes = std::fs::read(path)
        .map_err(|e| TranscriptError::io(format!("reading {}", path.display()), e))?;
    records_of(path, &bytes)
}

/// Reads a transcript that may end in a line cut by a killed process: complete lines only.
/// Returns the records and whether a partial last line was dropped.
pub fn read_transcript_prefix(path: &Path) -> Result<(Vec<Record>, bool), TranscriptError> {
    let mut bytes = std::fs::read(path)
        .map_err(|e| TranscriptError::io(format!("reading {}", path.display()), e))?;
    let cut = !bytes.is_empty() && !bytes.ends_with(b"\n");
    if cut {
        let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        bytes.truncate(keep);
    }
    Ok((records_of(path, &bytes)?, cut))
}

/// The records of `bytes`, failing at the first line that breaks the chain.
fn records_of(path: &Path, bytes: &[u8]) -> Result<Vec<Record>, TranscriptError> {
    let (records, problems) = check_chain(bytes);
    if let Some(problem) = problems.into_iter().next() {
        return Err(TranscriptError::Malformed {
            path: path.to_path_buf(),
            line: problem.line.unwrap_or(0),
            what: problem.what,
        });
    }
    Ok(records.into_iter().map(|l| l.record).collect())
}
