//! Resuming, as the command line reads it: `--resume` takes a run folder (its latest transcript)
//! or a transcript; the transcript must be one, its chain intact, signed by a trusted key (the
//! `--allowed-signers` given, else the operator's own signing key) — wholly by its final
//! signature, or up to its last valid checkpoint when the run was killed — and the runbook
//! unchanged. The resumed run writes the next numbered transcript in the same
//! run folder, so one folder holds the whole incident.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::bundled;
use crate::error::Error;
use crate::transcript::Record;

/// A transcript to resume, as read.
pub(super) struct Resumed {
    /// The runbook, from the transcript (or the one given, when it is the same).
    pub(super) source: bundled::RunbookSource,
    /// Its records (complete lines).
    pub(super) records: Vec<Record>,
    /// How many of them a trusted key signed.
    pub(super) trusted_len: usize,
    /// The run folder it lives in (where the resumed run writes too).
    pub(super) run_dir: PathBuf,
    /// Its file name in that folder.
    pub(super) file_name: String,
}

/// Finds and reads the transcript `arg` names (a run folder or a transcript).
pub(super) fn load(
    arg: &Path,
    runbook: Option<&str>,
    trust: &super::sign_args::SignKeyArgs,
) -> Result<Resumed, Error> {
    let path = transcript_of(arg)?;
    let run_dir = path
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    first_record(&path)?;
    // It is a transcript: from here, damage is tampering (exit 5), not a wrong path.
    let (records, cut) = crate::transcript::read_transcript_prefix(&path)?;
    if cut {
        eprintln!(
            "note: the transcript's last line was cut (the run was killed while writing); it is ignored"
        );
    }
    let first = records
        .first()
        .filter(|r| r.kind == "run-started")
        .ok_or_else(|| not_a_transcript(&path, "it does not begin with a run-started record"))?;
    let trusted_len = trusted_len(&path, &records, trust)?;
    let source = runbook_of(&path, first, runbook)?;
    Ok(Resumed {
        source,
        records,
        trusted_len,
        run_dir,
        file_name,
    })
}

/// The transcript `arg` names: itself, or a run folder's latest (`transcript.jsonl`, then
/// `transcript.2.jsonl`, …).
fn transcript_of(arg: &Path) -> Result<PathBuf, Error> {
    let meta = std::fs::metadata(arg).map_err(|e| {
        Error::Usage(format!(
            "--resume {}: {e} (give the run folder or its transcript)",
            arg.display()
        ))
    })?;
    if !meta.is_dir() {
        return Ok(arg.to_path_buf());
    }
    latest_transcript(arg).ok_or_else(|| {
        Error::Usage(format!(
            "--resume {}: no transcript.jsonl in that folder (give the run folder or its transcript)",
            arg.display()
        ))
    })
}

/// The incident a resumed transcript belongs to: the id every leg's claims derive from — the
/// `incident` its run-started names, else (a transcript from before incidents were named) its
/// first leg's first record, which every leg of the folder shares.
pub(super) fn incident_of(r: &Resumed) -> String {
    if let Some(id) = r.records.first().and_then(|f| f.str_field("incident")) {
        return id.to_string();
    }
    let first = r.run_dir.join(crate::transcript::layout::TRANSCRIPT_FILE);
    first_record(&first)
        .ok()
        .or_else(|| r.records.first().cloned())
        .map(|rec| rec.hash)
        .unwrap_or_default()
}

/// The highest-numbered transcript of a live leg in a run folder. A dry-run's transcript is
/// never one (dry-runs write `dry-run.N.jsonl`; one an older version wrote under a transcript's
/// name is passed over by its recorded mode), so a dry-run can never stand for a run.
pub(super) fn latest_transcript(dir: &Path) -> Option<PathBuf> {
    (1..)
        .map(|n| dir.join(transcript_name(n)))
        .take_while(|p| p.exists())
        .filter(|p| !first_record(p).is_ok_and(|r| r.str_field("mode") == Some("dry-run")))
        .last()
}

/// Where the next dry-run of a run folder writes its transcript: named as a plan, never as a
/// leg of the incident.
pub(super) fn next_dry_run(dir: &Path) -> PathBuf {
    let name = |n: u32| match n {
        1 => "dry-run.jsonl".to_string(),
        n => format!("dry-run.{n}.jsonl"),
    };
    (1..)
        .map(|n| dir.join(name(n)))
        .find(|p| !p.exists())
        .unwrap_or_else(|| dir.join(name(1)))
}

/// Where the next transcript of a run folder goes.
pub(super) fn next_transcript(dir: &Path) -> PathBuf {
    (1..)
        .map(|n| dir.join(transcript_name(n)))
        .find(|p| !p.exists())
        .unwrap_or_else(|| dir.join(transcript_name(1)))
}

fn transcript_name(n: u32) -> String {
    if n == 1 {
        crate::transcript::layout::TRANSCRIPT_FILE.to_string()
    } else {
        format!("transcript.{n}.jsonl")
    }
}

/// The first line must be an esus-ir record opening a run; otherwise this is not a transcript
/// at all (a wrong path: exit 2, unlike a damaged transcript).
fn first_record(path: &Path) -> Result<Record, Error> {
    use std::io::BufRead;
    let file = std::fs::File::open(path).map_err(|e| not_a_transcript(path, &e.to_string()))?;
    let mut line = String::new();
    std::io::BufReader::new(file)
        .take(4 * 1024 * 1024)
        .read_line(&mut line)
        .map_err(|e| not_a_transcript(path, &e.to_string()))?;
    let record =
        Record::parse(line.trim_end_matches('\n')).map_err(|e| not_a_transcript(path, &e))?;
    if record.kind != "run-started" || record.seq != 0 {
        return Err(not_a_transcript(
            path,
            "it does not begin with a run-started record",
        ));
    }
    Ok(record)
}

fn not_a_transcript(path: &Path, why: &str) -> Error {
    Error::Usage(format!(
        "--resume {}: not an esus-ir transcript ({why})",
        path.display()
    ))
}

/// How many records (from the first) a trusted key signed: all of them when the final
/// signature verifies, else those the last valid checkpoint covers. The trusted keys are the
/// `--allowed-signers` file, else the operator's own signing key — never the key a transcript
/// records about itself. A transcript signed by another key, with a broken chain, or with no
/// valid checkpoint at all is refused (exit 5): nothing of it is taken on trust.
fn trusted_len(
    path: &Path,
    records: &[Record],
    trust: &super::sign_args::SignKeyArgs,
) -> Result<usize, Error> {
    use crate::transcript::{ProblemKind, SignatureStatus, VerifyOptions, verify_transcript};
    let refuse = |why: String| {
        Error::Invalid(format!(
            "refusing to resume from {}: {why}; nothing was sent",
            path.display()
        ))
    };
    let options = match &trust.resume_allowed_signers {
        Some(file) => VerifyOptions {
            allowed_signers: Some(file.clone()),
            ..VerifyOptions::default()
        },
        None => {
            let key = trust.public_key()?.ok_or_else(|| {
                refuse(
                    "there is no signing key of yours to check its signatures with (pass --allowed-signers FILE naming who signed it)"
                        .into(),
                )
            })?;
            VerifyOptions {
                trusted_key: Some(key),
                ..VerifyOptions::default()
            }
        }
    };
    let who = match &trust.resume_allowed_signers {
        Some(file) => format!("a key {} lists", file.display()),
        None => "your own signing key".to_string(),
    };
    let v = verify_transcript(path, &options)?;
    // A killed run leaves no final signature and no run-finished, and perhaps a cut last line
    // (already dropped from `records`); anything else wrong is tampering.
    let tolerated = |k: ProblemKind| {
        matches!(
            k,
            ProblemKind::Unsigned | ProblemKind::Incomplete | ProblemKind::CutLine
        )
    };
    let cut_line = v
        .problems
        .iter()
        .find(|p| p.kind == ProblemKind::CutLine)
        .and_then(|p| p.line);
    let tolerated = |p: &crate::transcript::Problem| {
        tolerated(p.kind) || (cut_line.is_some() && p.line == cut_line)
    };
    if let Some(p) = v.problems.iter().find(|p| !tolerated(p)) {
        let place = p
            .seq
            .map(|s| format!(" (seq {s}, line {})", p.line.unwrap_or(0)))
            .unwrap_or_default();
        return Err(refuse(format!(
            "it does not verify against {who}{place}: {}",
            p.what
        )));
    }
    if v.signature.status == SignatureStatus::Valid && v.signed_records == records.len() {
        return Ok(records.len());
    }
    if v.checkpoints.last_valid_seq.is_none() || v.signed_records == 0 {
        return Err(refuse(format!(
            "it has no final signature and no checkpoint signed by {who}, so none of it can be trusted"
        )));
    }
    // The last valid checkpoint is itself trusted: it is the signature over what precedes it.
    let through = v
        .checkpoints
        .last_valid_seq
        .and_then(|s| usize::try_from(s).ok())
        .map_or(v.signed_records, |s| s + 1);
    Ok(through.min(records.len()))
}

/// The runbook the transcript ran: the copy inside it, or the one given when it is the same.
fn runbook_of(
    path: &Path,
    first: &Record,
    runbook: Option<&str>,
) -> Result<bundled::RunbookSource, Error> {
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
    match runbook {
        Some(name) => {
            let given = bundled::resolve(name)?;
            let recorded_name = first.str_field("runbook_name").unwrap_or_default();
            let given_name = crate::runbook::parse::parse(&given.text)
                .map(|(rb, _)| rb.name)
                .unwrap_or_default();
            if given_name != recorded_name {
                return Err(Error::Usage(format!(
                    "{} holds an incident of `{recorded_name}`, not `{given_name}`: give this run its own --run-dir (nothing was sent)",
                    path.parent().unwrap_or(path).display()
                )));
            }
            let digest = crate::transcript::sha256_hex(given.text.as_bytes());
            if digest != recorded {
                return Err(Error::Usage(format!(
                    "the runbook `{name}` changed since that run (sha256 {}… now, {}… then); resume needs the same runbook — omit RUNBOOK to use the copy in the transcript",
                    &digest[..12],
                    &recorded[..12.min(recorded.len())]
                )));
            }
            Ok(given)
        }
        None => Ok(bundled::RunbookSource {
            display: format!(
                "{} (from the transcript)",
                first.str_field("runbook_name").unwrap_or("runbook")
            ),
            text,
        }),
    }
}
