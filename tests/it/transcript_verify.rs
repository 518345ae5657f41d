//! verify: complete transcripts of every outcome pass; each kind of damage is named.

#![allow(clippy::unwrap_used)]

use esus_ir::transcript::{
    ProblemKind, SignatureStatus, Trust, VerifyOptions, allowed_signers_line, signature_path,
    verify_transcript,
};
use serde_json::Value;

use crate::transcript_support::{
    Ending, OPERATOR, forge, resign, signer_pair, write_run, write_run_named,
};

fn verify(path: &std::path::Path) -> esus_ir::transcript::Verification {
    verify_transcript(path, &VerifyOptions::default()).unwrap()
}

fn kinds(v: &esus_ir::transcript::Verification) -> Vec<ProblemKind> {
    v.problems.iter().map(|p| p.kind).collect()
}

#[test]
fn complete_transcripts_of_every_outcome_verify() {
    for (ending, outcome) in [
        (Ending::Success, "success"),
        (Ending::Declined, "declined"),
        (Ending::Failed, "failed"),
        (Ending::Interrupted, "interrupted"),
        (Ending::Killed, "interrupted"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = write_run(dir.path(), ending);
        let v = verify(&path);
        assert!(v.ok, "{ending:?}: {:#?}", v.problems);
        assert!(v.complete);
        assert_eq!(v.outcome.as_deref(), Some(outcome));
        assert_eq!(v.signature.status, SignatureStatus::Valid);
        assert_eq!(v.signature.trust, Some(Trust::RecordedKey));
        assert_eq!(v.operator.as_deref(), Some(OPERATOR));
    }
}

#[test]
fn first_record_carries_tool_version_and_signer_and_last_counts_events() {
    let dir = tempfile::tempdir().unwrap();
    let (path, public) = write_run(dir.path(), Ending::Success);
    let records = esus_ir::transcript::read_transcript(&path).unwrap();
    let first = &records[0];
    assert_eq!(first.seq, 0);
    assert_eq!(first.prev, esus_ir::transcript::GENESIS_PREV);
    assert_eq!(
        first.str_field("tool_version"),
        Some(env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(first.str_field("signer"), Some(public.as_str()));
    let last = records.last().unwrap();
    assert_eq!(last.kind, "run-finished");
    assert_eq!(last.data["events"], Value::from(records.len()));
    assert_eq!(
        last.str_field("head"),
        Some(records[records.len() - 2].hash.as_str())
    );
    assert_eq!(records[1].kind, "checkpoint");
    assert_eq!(records[1].ts, records[0].ts);
    assert!(records[2].ts > records[0].ts);
}

#[test]
fn killed_run_is_closed_as_interrupted_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_run(dir.path(), Ending::Killed);
    let records = esus_ir::transcript::read_transcript(&path).unwrap();
    let last = records.last().unwrap();
    assert_eq!(last.str_field("outcome"), Some("interrupted"));
    assert!(last.str_field("note").unwrap().contains("closed"));
}

#[test]
fn unsigned_transcript_is_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_run(dir.path(), Ending::Success);
    std::fs::remove_file(signature_path(&path)).unwrap();
    let v = verify(&path);
    assert!(!v.ok);
    assert_eq!(v.signature.status, SignatureStatus::Missing);
    assert_eq!(kinds(&v), vec![ProblemKind::Unsigned]);
}

#[test]
fn cut_tail_resigned_by_the_key_holder_is_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    let (writer_signer, forger) = signer_pair(dir.path());
    let (path, _) = write_run_named(dir.path(), Ending::Success, "rb", writer_signer);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&path, format!("{}\n", lines[..lines.len() - 3].join("\n"))).unwrap();
    resign(&path, &forger);
    let v = verify(&path);
    assert!(!v.ok);
    assert_eq!(v.signature.status, SignatureStatus::Valid);
    let bad = v.first_bad_event().unwrap();
    assert_eq!(bad.kind, ProblemKind::Incomplete);
    assert_eq!(bad.line, Some(lines.len() - 3));
}

#[test]
fn rechained_runbook_edit_is_caught_by_its_digest() {
    let dir = tempfile::tempdir().unwrap();
    let (writer_signer, forger) = signer_pair(dir.path());
    let (path, _) = write_run_named(dir.path(), Ending::Success, "rb", writer_signer);
    forge(&path, &forger, |records| {
        records[0]
            .data
            .insert("runbook_text".into(), "name: harmless\n".into());
    });
    let v = verify(&path);
    assert_eq!(kinds(&v), vec![ProblemKind::RunbookDigest]);
    assert_eq!(v.first_bad_event().unwrap().seq, Some(0));
}

#[test]
fn rechained_request_edit_is_caught_by_the_confirmation_digest() {
    let dir = tempfile::tempdir().unwrap();
    let (writer_signer, forger) = signer_pair(dir.path());
    let (path, _) = write_run_named(dir.path(), Ending::Success, "rb", writer_signer);
    let mut seq = 0;
    forge(&path, &forger, |records| {
        let r = records
            .iter_mut()
            .find(|r| r.kind == "request" && r.step() == Some("revoke-key"))
            .unwrap();
        r.data["request"]["url"] = "https://esus.example/v1/keys/k-2".into();
        seq = r.seq;
    });
    let v = verify(&path);
    assert_eq!(kinds(&v), vec![ProblemKind::ConfirmationMismatch]);
    assert_eq!(v.first_bad_event().unwrap().seq, Some(seq));
}

#[test]
fn evidence_is_checked_when_present() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_run(dir.path(), Ending::Success);
    let file = dir.path().join("evidence/export-audit/audit.json");
    std::fs::write(&file, b"[]").unwrap();
    let v = verify(&path);
    assert_eq!(kinds(&v), vec![ProblemKind::Evidence]);

    std::fs::remove_file(&file).unwrap();
    let v = verify(&path);
    assert!(v.ok, "a missing evidence file is only a warning");
    assert!(v.warnings[0].contains("missing"), "{:?}", v.warnings);
    let strict = VerifyOptions {
        require_evidence: true,
        ..VerifyOptions::default()
    };
    let v = verify_transcript(&path, &strict).unwrap();
    assert_eq!(kinds(&v), vec![ProblemKind::Evidence]);
}

#[test]
fn evidence_paths_may_not_leave_the_evidence_folder() {
    let dir = tempfile::tempdir().unwrap();
    let (writer_signer, forger) = signer_pair(dir.path());
    let (path, _) = write_run_named(dir.path(), Ending::Success, "rb", writer_signer);
    forge(&path, &forger, |records| {
        let r = records
            .iter_mut()
            .find(|r| r.data.get("evidence").is_some_and(|e| e.is_object()))
            .unwrap();
        r.data["evidence"]["file"] = "../transcript.jsonl".into();
    });
    let v = verify(&path);
    assert_eq!(kinds(&v), vec![ProblemKind::Evidence]);
    assert!(v.problems[0].what.contains("leaves the evidence folder"));
}

#[test]
fn allowed_signers_must_list_the_key_for_the_recorded_operator() {
    let dir = tempfile::tempdir().unwrap();
    let (path, public) = write_run(dir.path(), Ending::Success);
    let allowed = dir.path().join("allowed_signers");
    let with = |line: String| {
        std::fs::write(&allowed, line).unwrap();
        let options = VerifyOptions {
            allowed_signers: Some(allowed.clone()),
            ..VerifyOptions::default()
        };
        verify_transcript(&path, &options).unwrap()
    };
    let v = with(allowed_signers_line(OPERATOR, &public));
    assert!(v.ok, "{:#?}", v.problems);
    assert_eq!(v.signature.trust, Some(Trust::AllowedSigners));

    // The final signature and the first checkpoint (naming its record) are both untrusted.
    let untrusted = |v: &esus_ir::transcript::Verification| {
        assert_eq!(
            kinds(v),
            vec![ProblemKind::UntrustedSigner, ProblemKind::UntrustedSigner]
        );
        assert_eq!(v.problems[0].line, None);
        assert!(
            v.problems[1].what.starts_with("checkpoint at seq 1"),
            "{}",
            v.problems[1].what
        );
        assert_eq!(v.signed_records, 0);
        assert!(v.identity_checked);
    };
    untrusted(&with(allowed_signers_line("mallory", &public)));

    let other = esus_ir::transcript::Signer::generate("other")
        .unwrap()
        .public_key_openssh();
    untrusted(&with(allowed_signers_line(OPERATOR, &other)));

    untrusted(&with(format!("{OPERATOR} namespaces=\"git\" {public}")));
}

#[test]
fn signature_by_another_key_than_the_recorded_one_is_untrusted() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_run(dir.path(), Ending::Success);
    resign(
        &path,
        &esus_ir::transcript::Signer::generate("mallory").unwrap(),
    );
    let v = verify(&path);
    // The final signature, and the record after the last checkpoint that only it could vouch for.
    assert_eq!(
        kinds(&v),
        vec![ProblemKind::UntrustedSigner, ProblemKind::UntrustedSigner]
    );
    let last = v.events as u64 - 1;
    assert_eq!(v.first_bad_event().and_then(|p| p.seq), Some(last));
    assert_eq!(v.signed_records as u64, last - 1);
}

#[test]
fn modified_transcript_fails_the_signature_and_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_run(dir.path(), Ending::Success);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("k-1", "k-9", 1)).unwrap();
    let v = verify(&path);
    assert_eq!(v.problems[0].kind, ProblemKind::BadSignature);
    assert_eq!(v.first_bad_event().unwrap().kind, ProblemKind::HashMismatch);
}

#[test]
fn rewritten_but_equivalent_line_is_not_canonical() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_run(dir.path(), Ending::Success);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("{\"seq\":2,", "{ \"seq\":2,", 1)).unwrap();
    let options = VerifyOptions {
        skip_signature: true,
        ..VerifyOptions::default()
    };
    let v = verify_transcript(&path, &options).unwrap();
    assert_eq!(kinds(&v), vec![ProblemKind::NotCanonical]);
    assert_eq!(v.first_bad_event().unwrap().line, Some(3));
}

#[test]
fn a_deleted_record_is_reported_once_not_on_every_later_line() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_run(dir.path(), Ending::Success);
    let text = std::fs::read_to_string(&path).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .enumerate()
        .filter(|(i, _)| *i != 4)
        .map(|(_, l)| l)
        .collect();
    std::fs::write(&path, kept.join("\n") + "\n").unwrap();
    let options = VerifyOptions {
        skip_signature: true,
        ..VerifyOptions::default()
    };
    let v = verify_transcript(&path, &options).unwrap();
    assert_eq!(
        kinds(&v),
        vec![
            ProblemKind::Sequence,
            ProblemKind::BrokenChain,
            ProblemKind::Incomplete
        ]
    );
    assert_eq!(v.first_bad_event().unwrap().seq, Some(5));
    assert_eq!(v.first_bad_event().unwrap().line, Some(5));
}
