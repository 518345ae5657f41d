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
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

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

// ---- Tampering by someone who can recompute hashes (and sometimes sign with another key) ----

use esus_ir::transcript::{GENESIS_PREV, ProblemKind, Record, Signer};

/// A signed run whose key files stay on disk (so a test can sign with the same key), and a
/// second run by the same key.
struct Fixture {
    _dir: tempfile::TempDir,
    run: (Vec<u8>, Vec<u8>),
    other: (Vec<u8>, Vec<u8>),
    public: String,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let read = |sub: &str, name: &str, signer: Signer| {
            let d = dir.path().join(sub);
            std::fs::create_dir_all(&d).unwrap();
            let (path, public) = crate::transcript_support::write_run_named(
                &d,
                crate::transcript_support::Ending::Success,
                name,
                signer,
            );
            (
                (
                    std::fs::read(&path).unwrap(),
                    std::fs::read(signature_path(&path)).unwrap(),
                ),
                public,
            )
        };
        let (a, b) = crate::transcript_support::signer_pair(dir.path());
        let (run, public) = read("a", "api-key-compromise", a);
        let (other, _) = read("b", "another-runbook", b);
        Fixture {
            _dir: dir,
            run,
            other,
            public,
        }
    })
}

fn parse(bytes: &[u8]) -> Vec<Record> {
    std::str::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|l| Record::parse(l).unwrap())
        .collect()
}

/// Re-chains records (hashes and run-finished's head recomputed, checkpoints left as they were).
fn rechain(records: &[Record]) -> Vec<u8> {
    let mut prev = GENESIS_PREV.to_string();
    let mut out = String::new();
    for (i, r) in records.iter().enumerate() {
        let mut data = r.data.clone();
        if r.kind == "run-finished" {
            data.insert("head".into(), prev.clone().into());
        }
        let rec = Record::new(i as u64, r.ts.clone(), r.kind.clone(), data, prev.clone());
        out.push_str(&rec.to_line());
        out.push('\n');
        prev = rec.hash;
    }
    out.into_bytes()
}

/// Verifies `bytes` with signature `sig`, trusting the fixture's key through allowed signers.
fn verify_with(bytes: &[u8], sig: &[u8]) -> esus_ir::transcript::Verification {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("transcript.jsonl");
    std::fs::write(&path, bytes).unwrap();
    std::fs::write(signature_path(&path), sig).unwrap();
    let allowed = dir.path().join("allowed_signers");
    std::fs::write(
        &allowed,
        esus_ir::transcript::allowed_signers_line(
            crate::transcript_support::OPERATOR,
            &fixture().public,
        ),
    )
    .unwrap();
    let options = VerifyOptions {
        allowed_signers: Some(allowed),
        ..VerifyOptions::default()
    };
    verify_transcript(&path, &options).unwrap()
}

#[derive(Debug, Clone)]
enum Edit {
    /// Set a string field of a record's data (or add one).
    Field {
        record: usize,
        value: String,
    },
    /// Drop, duplicate or move a whole line (no hash recomputed).
    Drop(usize),
    Duplicate(usize),
    Move(usize, usize),
    /// Keep only the first n lines.
    Cut(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), "[a-z*]{0,8}").prop_map(|(record, value)| Edit::Field { record, value }),
        any::<usize>().prop_map(Edit::Drop),
        any::<usize>().prop_map(Edit::Duplicate),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::Move(a, b)),
        any::<usize>().prop_map(Edit::Cut),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// Lines dropped, duplicated, moved or cut, and values edited with every hash recomputed,
    /// all under the old signature and old checkpoints: rejected, naming a record at or before
    /// the first one changed.
    #[test]
    fn records_changed_under_the_old_signatures_are_rejected(e in edit()) {
        let f = fixture();
        let lines: Vec<&[u8]> = f.run.0.split_inclusive(|b| *b == b'\n').collect();
        let n = lines.len();
        let (damaged, first_changed): (Vec<u8>, usize) = match e.clone() {
            Edit::Field { record, value } => {
                let mut records = parse(&f.run.0);
                let i = record % n;
                let key = ["step", "prompt", "reason", "operator", "x"][value.len() % 5];
                records[i].data.insert(key.into(), value.into());
                (rechain(&records), i)
            }
            Edit::Drop(i) => {
                let i = i % n;
                let mut l = lines.clone();
                l.remove(i);
                (l.concat(), i)
            }
            Edit::Duplicate(i) => {
                let i = i % n;
                let mut l = lines.clone();
                l.insert(i, lines[i]);
                (l.concat(), i + 1)
            }
            Edit::Move(a, b) => {
                let (a, b) = (a % n, b % n);
                let mut l = lines.clone();
                let line = l.remove(a);
                l.insert(b, line);
                (l.concat(), a.min(b))
            }
            Edit::Cut(k) => {
                let k = 1 + k % (n - 1);
                (lines[..k].concat(), k)
            }
        };
        prop_assume!(damaged != f.run.0);
        let v = verify_with(&damaged, &f.run.1);
        prop_assert!(!v.ok, "{e:?} passed");
        prop_assert!(v.signature.status != esus_ir::transcript::SignatureStatus::Valid);
        let bad = v.first_bad_event();
        prop_assert!(bad.is_some(), "{e:?}: no record named: {:#?}", v.problems);
        let bad = bad.unwrap();
        // At or before the first line changed (a cut names the new last record).
        prop_assert!(
            bad.line.unwrap() <= first_changed + 1,
            "{e:?}: named line {:?}, first changed line {}: {:#?}", bad.line, first_changed + 1, v.problems
        );
        // Nothing after the change is counted as signed.
        prop_assert!(v.signed_records <= first_changed, "{e:?}: {} signed", v.signed_records);
    }

}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Another runbook text (with or without a matching digest), re-chained, old signatures.
    #[test]
    fn a_swapped_runbook_text_is_rejected_at_the_first_record(
        text in "[ -~\n]{0,80}",
        fix_digest in any::<bool>(),
    ) {
        let f = fixture();
        let mut records = parse(&f.run.0);
        prop_assume!(records[0].str_field("runbook_text") != Some(text.as_str()));
        records[0].data.insert("runbook_text".into(), text.clone().into());
        if fix_digest {
            records[0].data.insert(
                "runbook_sha256".into(),
                esus_ir::transcript::sha256_hex(text.as_bytes()).into(),
            );
        }
        let v = verify_with(&rechain(&records), &f.run.1);
        prop_assert!(!v.ok);
        prop_assert_eq!(v.first_bad_event().and_then(|p| p.seq), Some(0));
        prop_assert_eq!(v.signed_records, 0);
    }

    /// Checkpoints (and the final signature) of another run by the same key, copied in.
    #[test]
    fn signatures_from_another_run_are_rejected(which in any::<usize>(), whole in any::<bool>()) {
        let f = fixture();
        if whole {
            let v = verify_with(&f.run.0, &f.other.1);
            prop_assert!(!v.ok);
            prop_assert!(v.problems.iter().any(|p| p.kind == ProblemKind::BadSignature && p.line.is_none()));
            // The checkpoints are this run's own and still vouch for every record they cover.
            prop_assert!(v.checkpoints.valid == v.checkpoints.count);
            return Ok(());
        }
        let mut records = parse(&f.run.0);
        let theirs = parse(&f.other.0);
        let at: Vec<usize> = records.iter().enumerate().filter(|(_, r)| r.kind == "checkpoint").map(|(i, _)| i).collect();
        let i = at[which % at.len()];
        // The other run's checkpoint at the same position: same seq, its head, its run id.
        prop_assume!(theirs[i].kind == "checkpoint");
        records[i].data = theirs[i].data.clone();
        let v = verify_with(&rechain(&records), &f.run.1);
        prop_assert!(!v.ok);
        let bad = v.first_bad_event().unwrap();
        prop_assert!(bad.line.unwrap() <= i + 1, "{:#?}", v.problems);
        prop_assert!(v.signed_records < i);
    }
}

proptest! {
    // Each case signs every checkpoint again (slow in a debug build): few cases.
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    /// Re-signed, checkpoints and all, by a key the allowed signers do not list: rejected at the
    /// first checkpoint, and nothing counts as signed.
    #[test]
    fn re_signed_by_a_key_not_in_allowed_signers_is_rejected(cut in any::<usize>()) {
        static FOREIGN: OnceLock<(tempfile::TempDir, std::path::PathBuf)> = OnceLock::new();
        let (_, key) = FOREIGN.get_or_init(|| {
            let d = tempfile::tempdir().unwrap();
            let k = d.path().join("foreign");
            Signer::generate("mallory").unwrap().write_key_files(&k, false).unwrap();
            (d, k)
        });
        let foreign = Signer::load(key, None).unwrap();
        let f = fixture();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("transcript.jsonl");
        std::fs::write(&path, &f.run.0).unwrap();
        let n = parse(&f.run.0).len();
        let keep = 3 + cut % (n - 3);
        crate::transcript_support::forge(&path, &foreign, |records| records.truncate(keep));
        let bytes = std::fs::read(&path).unwrap();
        let sig = std::fs::read(signature_path(&path)).unwrap();
        let v = verify_with(&bytes, &sig);
        prop_assert!(!v.ok);
        prop_assert!(v.identity_checked);
        prop_assert!(v.problems.iter().any(|p| p.kind == ProblemKind::UntrustedSigner && p.line.is_none()));
        let bad = v.first_bad_event().unwrap();
        prop_assert!(v.problems.iter().any(|p| p.kind == ProblemKind::UntrustedSigner && p.seq == Some(1)));
        prop_assert_eq!(bad.seq, Some(1));
        prop_assert_eq!(v.signed_records, 0);
        // Without allowed signers the recorded key is the writer's, not the forger's: rejected too.
        let plain = verify_transcript(&path, &VerifyOptions::default()).unwrap();
        prop_assert!(!plain.ok);
        prop_assert!(!plain.identity_checked);
    }
}
