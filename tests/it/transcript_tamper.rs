//! Property: any flipped byte, deleted line, swapped pair of lines or cut makes verify fail and
//! name a record — through the signature, and independently through the chain alone.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use esus_ir::transcript::{VerifyOptions, signature_path, verify_transcript};
use proptest::prelude::*;

use crate::transcript_support::{Ending, write_run};

/// One complete signed run, written once; each case copies it.
fn original() -> &'static (Vec<u8>, Vec<u8>) {
    static RUN: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = write_run(dir.path(), Ending::Success);
        (
            std::fs::read(&path).unwrap(),
            std::fs::read(signature_path(&path)).unwrap(),
        )
    })
}

#[derive(Debug, Clone)]
enum Damage {
    FlipByte { at: usize, mask: u8 },
    DeleteLine(usize),
    SwapLines(usize, usize),
    Truncate(usize),
}

fn apply(bytes: &[u8], damage: &Damage) -> Vec<u8> {
    let lines: Vec<&[u8]> = bytes.split_inclusive(|b| *b == b'\n').collect();
    match *damage {
        Damage::FlipByte { at, mask } => {
            let mut out = bytes.to_vec();
            let i = at % out.len();
            out[i] ^= mask;
            out
        }
        Damage::DeleteLine(i) => {
            let i = i % lines.len();
            lines
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .flat_map(|(_, l)| l.iter().copied())
                .collect()
        }
        Damage::SwapLines(a, b) => {
            let (a, b) = (a % lines.len(), b % lines.len());
            let b = if a == b { (b + 1) % lines.len() } else { b };
            let mut lines = lines.clone();
            lines.swap(a, b);
            lines.concat()
        }
        Damage::Truncate(at) => bytes[..1 + at % (bytes.len() - 1)].to_vec(),
    }
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(at, mask)| Damage::FlipByte { at, mask }),
        any::<usize>().prop_map(Damage::DeleteLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Damage::SwapLines(a, b)),
        any::<usize>().prop_map(Damage::Truncate),
    ]
}

fn write_damaged(dir: &Path, damaged: &[u8]) -> PathBuf {
    let (_, sig) = original();
    let path = dir.join("transcript.jsonl");
    std::fs::write(&path, damaged).unwrap();
    std::fs::write(signature_path(&path), sig).unwrap();
    path
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_damage_is_detected_and_names_a_record(damage in damage()) {
        let (bytes, _) = original();
        let damaged = apply(bytes, &damage);
        prop_assume!(&damaged != bytes);
        let dir = tempfile::tempdir().unwrap();
        let path = write_damaged(dir.path(), &damaged);

        let signed = verify_transcript(&path, &VerifyOptions::default()).unwrap();
        prop_assert!(!signed.ok, "{damage:?} passed verification");
        prop_assert!(!signed.problems.is_empty());

        // The chain must catch it on its own, without the signature, and point at a record.
        let options = VerifyOptions { skip_signature: true, ..VerifyOptions::default() };
        let chain = verify_transcript(&path, &options).unwrap();
        prop_assert!(!chain.ok, "{damage:?} passed the chain check");
        let bad = chain.first_bad_event();
        prop_assert!(bad.is_some(), "{damage:?}: no record named in {:?}", chain.problems);
        let bad = bad.unwrap();
        prop_assert!(bad.seq.is_some() && bad.line.is_some());
        // The same damage is what the signed check names first among records.
        prop_assert_eq!(signed.first_bad_event(), Some(bad));
    }
}

#[test]
fn deleting_the_last_line_is_named_at_the_new_last_line() {
    let (bytes, _) = original();
    let n = bytes.split_inclusive(|b| *b == b'\n').count();
    let damaged = apply(bytes, &Damage::DeleteLine(n - 1));
    let dir = tempfile::tempdir().unwrap();
    let path = write_damaged(dir.path(), &damaged);
    let options = VerifyOptions {
        skip_signature: true,
        ..VerifyOptions::default()
    };
    let v = verify_transcript(&path, &options).unwrap();
    let bad = v.first_bad_event().unwrap();
    assert_eq!(bad.line, Some(n - 1));
    assert_eq!(bad.seq, Some(n as u64 - 2));
}

/// A forger who holds the signing key rewrites a record (hashes and signature recomputed): only
/// the approval rules can catch it. Returns the problems' (seq, kind, what).
fn forged_approvals(
    edit: impl FnMut(&mut Vec<esus_ir::transcript::Record>),
) -> Vec<(Option<u64>, esus_ir::transcript::ProblemKind, String)> {
    let dir = tempfile::tempdir().unwrap();
    let (writer_key, forger_key) = crate::transcript_support::signer_pair(dir.path());
    let (path, _) = crate::transcript_support::write_run_named(
        dir.path(),
        crate::transcript_support::Ending::Success,
        "api-key-compromise",
        writer_key,
    );
    crate::transcript_support::forge(&path, &forger_key, edit);
    let v = verify_transcript(&path, &VerifyOptions::default()).unwrap();
    v.problems
        .into_iter()
        .map(|p| (p.seq, p.kind, p.what))
        .collect()
}

fn revoke_request(records: &mut [esus_ir::transcript::Record]) -> &mut esus_ir::transcript::Record {
    records
        .iter_mut()
        .find(|r| r.kind == "request" && r.step() == Some("revoke-key"))
        .unwrap()
}

#[test]
fn a_write_request_sent_under_no_approval_is_rejected_naming_it() {
    let mut seq = 0;
    let found = forged_approvals(|records| {
        let r = revoke_request(records);
        r.data.remove("approvals");
        seq = r.seq;
    });
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, Some(seq));
    assert_eq!(found[0].1, esus_ir::transcript::ProblemKind::Unapproved);
}

#[test]
fn an_edited_request_body_is_a_digest_mismatch_naming_the_request() {
    let mut seq = 0;
    let found = forged_approvals(|records| {
        let r = revoke_request(records);
        r.data["request"]["body"] = serde_json::json!({"reason": "routine"});
        seq = r.seq;
    });
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, Some(seq));
    assert_eq!(
        found[0].1,
        esus_ir::transcript::ProblemKind::ConfirmationMismatch
    );
}

#[test]
fn an_unknown_approval_number_is_rejected() {
    let found = forged_approvals(|records| {
        revoke_request(records).data["approvals"] = serde_json::json!([9]);
    });
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].2.contains("approval 9"), "{}", found[0].2);
}

#[test]
fn an_approval_of_another_step_is_rejected() {
    let found = forged_approvals(|records| {
        for r in records.iter_mut().filter(|r| r.kind == "confirmation") {
            r.data["step"] = serde_json::json!("find-key");
        }
    });
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].2.contains("for step find-key"), "{}", found[0].2);
}

#[test]
fn a_request_claiming_a_declined_approval_is_rejected() {
    let found = forged_approvals(|records| {
        for r in records.iter_mut().filter(|r| r.kind == "confirmation") {
            r.data["approved"] = serde_json::json!(false);
        }
    });
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].2.contains("declined"), "{}", found[0].2);
}
