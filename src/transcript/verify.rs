//! `verify` as a library: checks a transcript and returns a typed [`Verification`].
//!
//! The checks are independent so that one tampering is caught by several of them: the signature
//! (signature_check), the hash chain (chain), and the run's structure — first and last records,
//! runbook digest, confirmation digests, evidence files (checks). The CLI renders the result;
//! resume calls [`verify_transcript`] and decides which problems it can live with.

use std::path::Path;

use super::TranscriptError;
use super::chain::check_chain;
use super::checks::check_structure;
use super::findings::{
    Checkpoints, Problem, ProblemKind, SignatureReport, SignatureStatus, Verification,
    VerifyOptions, is_chain_problem,
};
use super::layout::default_evidence_dir;
use super::signature_check::{Trusted, check_checkpoints, check_signature};

/// Verifies the transcript at `path`. Errors only when the transcript itself cannot be read; every
/// finding about its content is in the returned [`Verification`].
pub fn verify_transcript(
    path: &Path,
    options: &VerifyOptions,
) -> Result<Verification, TranscriptError> {
    let bytes = std::fs::read(path)
        .map_err(|e| TranscriptError::io(format!("reading {}", path.display()), e))?;
    // Whose key to trust is named by the first record that parses (the run's start) — read
    // here, before the chain, so that the final signature (a SHA-512 over the whole file, a
    // tenth of the work for a 100,000-item run) is checked on the other core while the chain
    // and the structure are.
    let first = first_record(&bytes);
    let operator = first
        .as_ref()
        .and_then(|r| r.str_field("operator"))
        .map(str::to_string);
    let recorded_key = first
        .as_ref()
        .and_then(|r| r.str_field("signer"))
        .map(str::to_string);
    let trusted = Trusted::load(
        options.allowed_signers.as_deref(),
        options.trusted_key.as_deref(),
        operator.as_deref(),
        recorded_key.as_deref(),
    )?;
    let evidence_dir = options
        .evidence_dir
        .clone()
        .unwrap_or_else(|| default_evidence_dir(path));
    let (records, mut problems, structure, final_signature) = std::thread::scope(|s| {
        let final_signature =
            (!options.skip_signature).then(|| s.spawn(|| check_signature(path, &bytes, &trusted)));
        let (records, problems) = check_chain(&bytes);
        let structure = check_structure(&records, &evidence_dir, options.require_evidence);
        let final_signature = final_signature.map(|h| {
            h.join().unwrap_or_else(|_| {
                SignatureReport::new(SignatureStatus::Invalid, "")
                    .fail(ProblemKind::BadSignature, "the signature check failed")
            })
        });
        (records, problems, structure, final_signature)
    });
    problems.extend(structure.problems);
    problems.sort_by_key(|p| p.line);
    let (signature, checkpoints) = if options.skip_signature {
        (SignatureReport::skipped(), Checkpoints::default())
    } else {
        let intact_lines = problems
            .iter()
            .filter(|p| is_chain_problem(p.kind))
            .filter_map(|p| p.line)
            .min()
            .map_or(usize::MAX, |l| l - 1);
        (
            final_signature.unwrap_or_else(SignatureReport::skipped),
            check_checkpoints(&records, &trusted, intact_lines),
        )
    };
    let chain_intact = !problems.iter().any(|p| is_chain_problem(p.kind));
    let signed_records = if signature.status == SignatureStatus::Valid && chain_intact {
        records.len()
    } else {
        checkpoints.covered
    };
    problems.extend(checkpoints.problems.iter().cloned());
    // A final signature that fails, where nothing else names a record: the records after the
    // last valid checkpoint are the ones no signature vouches for — name the first of them.
    if signature.status == SignatureStatus::Invalid
        && !problems.iter().any(|p| p.line.is_some())
        && let Some(first) = records
            .get(
                signed_records
                    .saturating_add(1)
                    .min(records.len().saturating_sub(1)),
            )
            .filter(|_| signed_records > 0)
            .or(records.first())
    {
        let (from, to) = (
            first.record.seq,
            records.last().map_or(first.record.seq, |l| l.record.seq),
        );
        problems.push(Problem::at(
            Some(from),
            first.line,
            signature.problems.first().map_or(ProblemKind::BadSignature, |p| p.kind),
            format!(
                "records seq {from}..{to} are signed by nothing trusted: the final signature fails ({}) and no valid checkpoint covers them",
                signature.detail
            ),
        ));
    }
    problems.sort_by_key(|p| p.line);
    let mut all = signature.problems.clone();
    all.extend(problems);
    Ok(Verification {
        ok: all.is_empty(),
        transcript: path.to_path_buf(),
        events: records.len(),
        complete: structure.complete,
        outcome: structure.outcome,
        operator,
        approvals: records.iter().filter_map(|l| approval(&l.record)).collect(),
        signature,
        checkpoints,
        signed_records,
        identity_checked: trusted.checks_identity(),
        problems: all,
        warnings: structure.warnings,
        head: records.last().map(|l| l.record.hash.clone()),
        resumes: first.and_then(|r| {
            Some((
                r.str_field("resumes_file")?.to_string(),
                r.str_field("resumes")?.to_string(),
            ))
        }),
        ancestors: Vec::new(),
    })
}

/// The first line of `bytes` that parses as a record — the record `check_chain` lists first.
fn first_record(bytes: &[u8]) -> Option<super::Record> {
    bytes
        .split(|b| *b == b'\n')
        .filter_map(|line| std::str::from_utf8(line).ok())
        .find_map(|line| super::Record::parse(line).ok())
}

/// A record of whose approval the run acted on, as one sentence: what was approved (its digest
/// and validity), by whom, and when the run checked it.
fn approval(r: &super::Record) -> Option<String> {
    let text = |name: &str| r.str_field(name).unwrap_or("?");
    let until = r
        .str_field("expires_at")
        .map_or_else(|| "no expiry".to_string(), |t| format!("valid until {t}"));
    match r.kind.as_str() {
        "plan-approved" => {
            let who: Vec<&str> = r
                .data
                .get("approvers")
                .and_then(serde_json::Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(serde_json::Value::as_str)
                .collect();
            Some(format!(
                "the signed plan sha256 {} (made {}, {until}), approved by {}; checked at {}",
                text("plan_sha256"),
                r.str_field("plan_created_at")
                    .unwrap_or("at an unrecorded time"),
                who.join(", "),
                r.ts
            ))
        }
        "policy-applied" => Some(format!(
            "the signed policy sha256 {} ({until}), signed by {}; checked at {}",
            text("policy_sha256"),
            text("signer"),
            r.ts
        )),
        _ => None,
    }
}
