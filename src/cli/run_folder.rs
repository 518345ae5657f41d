//! Where a run lives: its folder (checked before anything is sent: no links, not writable by
//! others), its evidence and secrets folders, and which file its transcript is — a new run's
//! `transcript.jsonl`, a resume's next leg, a dry-run's `dry-run.N.jsonl` (never a leg).

use std::path::{Path, PathBuf};

use super::resume_source;
use crate::error::Error;
use crate::exec::evidence::{self, Folders};
use crate::transcript::layout;

/// Where the run was asked to live: `--run-dir`, `--secrets-dir`, `--transcript`, and whether it
/// is a dry-run.
pub(super) struct Asked<'a> {
    pub(super) run_dir: Option<&'a Path>,
    pub(super) secrets_dir: Option<&'a Path>,
    pub(super) transcript: Option<&'a Path>,
    pub(super) dry_run: bool,
}

/// Where this leg's transcript goes: a dry-run's is named as a plan (`dry-run.N.jsonl`), never
/// as a leg a resume could take for a run; a resume writes the folder's next transcript; a new
/// run writes `transcript.jsonl` (or `--transcript`), which must not hold a run already.
pub(super) fn transcript_path(
    asked: &Asked<'_>,
    resumed: bool,
    run_dir: &Path,
) -> Result<PathBuf, Error> {
    if asked.dry_run {
        return Ok(resume_source::next_dry_run(run_dir));
    }
    if resumed {
        return Ok(resume_source::next_transcript(run_dir));
    }
    let path = asked
        .transcript
        .map(Path::to_path_buf)
        .unwrap_or_else(|| run_dir.join(layout::TRANSCRIPT_FILE));
    fresh_transcript(&path, run_dir)?;
    Ok(path)
}

/// The run folder and its evidence and secrets folders, checked (before anything is sent: an
/// existing folder with links, or that others may write to, is refused) and created. A resumed
/// run continues in the folder of the run it resumes.
pub(super) fn folders_for(
    asked: &Asked<'_>,
    resumed: Option<&std::path::Path>,
    runbook: &str,
    run_id: &str,
) -> Result<(PathBuf, Folders, bool), Error> {
    let run_dir = match (resumed, asked.run_dir) {
        (Some(dir), Some(given)) if given != dir => {
            return Err(Error::Usage(format!(
                "--run-dir {}: a resumed run continues in its own folder ({})",
                given.display(),
                dir.display()
            )));
        }
        (Some(dir), _) => dir.to_path_buf(),
        (None, Some(given)) => given.to_path_buf(),
        (None, None) => default_run_dir(runbook, run_id),
    };
    let folders = Folders {
        seal: None,
        evidence: run_dir.join(layout::EVIDENCE_DIR),
        secrets: asked
            .secrets_dir
            .map(Path::to_path_buf)
            .unwrap_or_else(|| run_dir.join(layout::SECRETS_DIR)),
    };
    evidence::check_run_folder(&run_dir)
        .and_then(|()| folders.check())
        .map_err(Error::Usage)?;
    let existed = run_dir.exists();
    evidence::create_private_dir(&run_dir)
        .map_err(|e| Error::io(format!("creating {}", run_dir.display()), e))?;
    folders
        .create()
        .map_err(|e| Error::io(format!("creating {}", folders.evidence.display()), e))?;
    Ok((run_dir, folders, !existed))
}

/// Removes a run folder this command created when nothing was put in it (the command ended at
/// the token prompt, before a transcript began): an empty folder would look like an incident.
pub(super) fn remove_if_untouched(run_dir: &Path, folders: &Folders) {
    let empty = |p: &Path| std::fs::read_dir(p).is_ok_and(|mut d| d.next().is_none());
    if !empty(&folders.evidence) || !empty(&folders.secrets) {
        return;
    }
    let _ = std::fs::remove_dir(&folders.evidence);
    if folders.secrets.starts_with(run_dir) {
        let _ = std::fs::remove_dir(&folders.secrets);
    }
    let _ = std::fs::remove_dir(run_dir);
}

/// A new run's transcript must not exist, except as what a run killed as it began leaves: a
/// file without one complete line (its first record is written before any request, so such a
/// run sent nothing) — that one is replaced. A transcript with records is a run to resume.
pub(super) fn fresh_transcript(path: &Path, run_dir: &Path) -> Result<(), Error> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    let bytes = if meta.file_type().is_file() && meta.len() <= 4 * 1024 * 1024 {
        std::fs::read(path).ok()
    } else {
        None
    };
    match bytes {
        Some(b) if !b.contains(&b'\n') => {
            eprintln!(
                "note: {} holds no complete record (a run killed as it began, which sent nothing); starting afresh",
                path.display()
            );
            std::fs::remove_file(path)
                .map_err(|e| Error::io(format!("replacing {}", path.display()), e))
        }
        _ => Err(Error::Usage(format!(
            "{} already holds a run: resume it with `esus-ir run --resume {}`, or give another --run-dir (nothing was sent)",
            path.display(),
            shell_word(&run_dir.display().to_string())
        ))),
    }
}

pub(super) fn default_run_dir(runbook: &str, run_id: &str) -> PathBuf {
    let stamp = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    PathBuf::from("esus-ir-runs").join(format!("{stamp}-{runbook}-{}", &run_id[..8]))
}

/// A word as a POSIX shell reads it back.
pub(super) fn shell_word(w: &str) -> String {
    let plain = !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%".contains(c));
    if plain {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', r"'\''"))
    }
}
