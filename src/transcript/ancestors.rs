//! A resumed run's chain: the transcript a run resumes is named in its first record
//! (`resumes_file`, `resumes`), so `verify` of the last link can check every earlier one that
//! is present — that each ends exactly where its successor says it resumed, and that each
//! verifies on its own (a killed link may be an unsigned or incomplete prefix: that is what a
//! resume is for; anything else is tampering).

use std::collections::HashSet;
use std::path::Path;

use super::findings::{Ancestor, Problem, ProblemKind, Verification, VerifyOptions};
use super::verify::verify_transcript;

/// Links followed at most: far more than any incident resumes.
const MAX_LINKS: usize = 100;

/// Checks the chain behind `v` (already verified with `options`): each problem found is added
/// to `v`, which stops being ok; an earlier link that is not there is a warning.
pub fn check_ancestors(v: &mut Verification, options: &VerifyOptions) {
    let Some(dir) = v.transcript.parent().map(Path::to_path_buf) else {
        return;
    };
    let mut seen: HashSet<String> = v
        .transcript
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .into_iter()
        .collect();
    let mut link = v.resumes.clone();
    while let Some((file, hash)) = link.take() {
        if v.ancestors.len() >= MAX_LINKS {
            v.warnings.push(format!(
                "the chain goes on past {MAX_LINKS} transcripts: not followed"
            ));
            break;
        }
        let named = v
            .ancestors
            .last()
            .map_or_else(|| "this transcript".to_string(), |a| a.file.clone());
        if file.is_empty() || file.contains('/') || file.contains('\\') || file.starts_with('.') {
            v.problems.push(Problem::file(
                ProblemKind::Structure,
                format!("{named} resumes `{file}`, which is not a file name in the run folder"),
            ));
            break;
        }
        if !seen.insert(file.clone()) {
            v.problems.push(Problem::file(
                ProblemKind::Structure,
                format!("the chain of resumes loops back to {file}"),
            ));
            break;
        }
        let path = dir.join(&file);
        if !path.is_file() {
            v.warnings.push(format!(
                "{named} resumes {file}, which is not in the run folder: the chain before it was not checked"
            ));
            v.ancestors.push(Ancestor {
                file,
                present: false,
                linked: false,
                valid: false,
                intact_prefix: false,
                records: 0,
                signed_records: 0,
            });
            break;
        }
        let mut opts = options.clone();
        opts.evidence_dir = None;
        let earlier = match verify_transcript(&path, &opts) {
            Ok(e) => e,
            Err(e) => {
                v.problems.push(Problem::file(
                    ProblemKind::Structure,
                    format!("{file} (resumed by {named}) cannot be read: {e}"),
                ));
                break;
            }
        };
        let linked = earlier.head.as_deref() == Some(hash.as_str());
        if !linked {
            v.problems.push(Problem::file(
                ProblemKind::BrokenChain,
                format!(
                    "{named} resumes {file} at record {}…, but {file} ends at {}…: one of them was changed or replaced",
                    short(&hash),
                    earlier.head.as_deref().map_or("nothing", short)
                ),
            ));
        }
        // What a stopped run leaves: no signature, no `run-finished`, a last line cut by the
        // kill (the resume read only the complete lines before it).
        let cut = earlier
            .problems
            .iter()
            .find(|p| p.kind == ProblemKind::CutLine)
            .and_then(|p| p.line);
        let stopped = |p: &Problem| {
            matches!(p.kind, ProblemKind::Unsigned | ProblemKind::Incomplete)
                || (cut.is_some() && p.line == cut)
        };
        let intact = earlier.ok || earlier.problems.iter().all(stopped);
        if !intact {
            let first = earlier
                .problems
                .iter()
                .find(|p| !stopped(p))
                .map(|p| match p.seq {
                    Some(seq) => format!("seq {seq}: {}", p.what),
                    None => p.what.clone(),
                })
                .unwrap_or_default();
            v.problems.push(Problem::file(
                ProblemKind::Structure,
                format!("{file} (resumed by {named}) does not verify: {first}"),
            ));
        }
        v.ancestors.push(Ancestor {
            file,
            present: true,
            linked,
            valid: earlier.ok,
            intact_prefix: intact,
            records: earlier.events,
            signed_records: earlier.signed_records,
        });
        link = earlier.resumes.clone();
    }
    v.ok = v.problems.is_empty();
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}
