//! An incident as its run folder holds it: the last leg, and the legs before it that it names
//! link by link (`resumes_file`). `verify` and `report` of a folder both start here, so they agree
//! on which transcripts are the incident — and a transcript in the folder that is named like a
//! leg but is not in the chain (a leg replaced, or one written beside the incident) is a problem,
//! never silently left out.

use std::path::{Path, PathBuf};

use super::incident::{Incident, LegInput};
use crate::transcript::findings::{Problem, ProblemKind, Verification, VerifyOptions};
use crate::transcript::layout::default_evidence_dir;
use crate::transcript::{
    TranscriptError, check_ancestors, read_transcript, read_transcript_prefix, verify_transcript,
};

/// An incident, verified.
#[derive(Debug, Clone)]
pub struct IncidentCheck {
    /// The last leg, verified on its own.
    pub last_own: Verification,
    /// The last leg with every earlier link checked (and, for a folder, every leg in it): its
    /// `ok` is the incident's verdict.
    pub chain: Verification,
    /// The legs present, oldest first.
    pub legs: Vec<PathBuf>,
}

/// Verifies the incident that ends with the transcript `last`. With `whole_folder`, every
/// transcript of the folder named like a leg must be in the chain.
pub fn check_incident(
    last: &Path,
    options: &VerifyOptions,
    whole_folder: bool,
) -> Result<IncidentCheck, TranscriptError> {
    let own = verify_transcript(last, options)?;
    let mut chain = own.clone();
    check_ancestors(&mut chain, options);
    let dir = folder_of(last);
    let mut legs: Vec<PathBuf> = chain
        .ancestors
        .iter()
        .rev()
        .filter(|a| a.present)
        .map(|a| dir.join(&a.file))
        .collect();
    legs.push(last.to_path_buf());
    if whole_folder {
        for stray in leg_files(&dir) {
            let named = stray.file_name().map(|n| n.to_string_lossy().into_owned());
            let in_chain = legs.iter().any(|l| l.file_name() == stray.file_name());
            if !in_chain && !is_dry_run(&stray) {
                chain.problems.push(Problem::file(
                    ProblemKind::Structure,
                    format!(
                        "{} is in the run folder but not in the chain of resumes that ends at {}: it was replaced, or does not belong to this incident",
                        named.unwrap_or_default(),
                        last.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
                    ),
                ));
                chain.ok = false;
            }
        }
    }
    Ok(IncidentCheck {
        last_own: own,
        chain,
        legs,
    })
}

/// Reads every leg of a checked incident. The last leg's chain must be intact (a report of
/// altered records would present them as fact); an earlier leg may end in a line a kill cut,
/// which resume ignored too.
pub fn read_incident(
    check: &IncidentCheck,
    options: &VerifyOptions,
) -> Result<Incident, TranscriptError> {
    let mut legs = Vec::new();
    let Some((last, earlier)) = check.legs.split_last() else {
        return Err(TranscriptError::Sequence("an incident has no leg".into()));
    };
    for path in earlier {
        let (records, _cut) = read_transcript_prefix(path)?;
        legs.push(LegInput {
            file: file_name(path),
            records,
            verification: verify_transcript(path, options)?,
        });
    }
    legs.push(LegInput {
        file: file_name(last),
        records: read_transcript(last)?,
        verification: check.last_own.clone(),
    });
    let evidence_dir = options
        .evidence_dir
        .clone()
        .unwrap_or_else(|| default_evidence_dir(last));
    Ok(Incident::build(legs, &check.chain, &evidence_dir))
}

fn folder_of(path: &Path) -> PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The transcripts of `dir` named like legs (`transcript.jsonl`, `transcript.N.jsonl`).
fn leg_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(u32, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            leg_number(&name).map(|n| (n, e.path()))
        })
        .collect();
    out.sort();
    out.into_iter().map(|(_, p)| p).collect()
}

/// 1 for `transcript.jsonl`, N for `transcript.N.jsonl` (N ≥ 2).
fn leg_number(name: &str) -> Option<u32> {
    if name == crate::transcript::layout::TRANSCRIPT_FILE {
        return Some(1);
    }
    let n: u32 = name
        .strip_prefix("transcript.")?
        .strip_suffix(".jsonl")?
        .parse()
        .ok()?;
    (n >= 2).then_some(n)
}

/// A dry-run an older version wrote under a leg's name: a plan, not a leg (its mode says so).
fn is_dry_run(path: &Path) -> bool {
    read_transcript_prefix(path).is_ok_and(|(records, _)| {
        records
            .first()
            .and_then(|r| r.str_field("mode"))
            .is_some_and(|m| m == "dry-run")
    })
}

#[cfg(test)]
mod tests {
    use super::leg_number;

    #[test]
    fn only_leg_names_are_legs() {
        assert_eq!(leg_number("transcript.jsonl"), Some(1));
        assert_eq!(leg_number("transcript.2.jsonl"), Some(2));
        assert_eq!(leg_number("transcript.12.jsonl"), Some(12));
        for not in [
            "transcript.1.jsonl",
            "transcript.jsonl.sig",
            "transcript.2.jsonl.sig",
            "dry-run.jsonl",
            "transcript.x.jsonl",
        ] {
            assert_eq!(leg_number(not), None, "{not}");
        }
    }
}
