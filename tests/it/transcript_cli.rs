//! The `keygen`, `verify` and `report` commands as a user runs them.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;

use assert_cmd::Command;
use predicates::prelude::*;

use crate::transcript_support::{Ending, OPERATOR, write_run};

fn esus_ir() -> Command {
    Command::cargo_bin("esus-ir").unwrap()
}

#[test]
fn keygen_writes_a_private_key_and_prints_the_allowed_signers_line() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("keys/ir_ed25519");
    let out = esus_ir()
        .args(["keygen", "--operator", "alice@example.org", "-o"])
        .arg(&key)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let line = String::from_utf8(out).unwrap();
    assert!(
        line.starts_with("alice@example.org namespaces=\"esus-ir-transcript\" ssh-ed25519 AAAA"),
        "{line}"
    );
    assert_eq!(line.lines().count(), 1);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(&dir.path().join("keys")), 0o700);
    let public = std::fs::read_to_string(dir.path().join("keys/ir_ed25519.pub")).unwrap();
    let key_b64 = public.split_whitespace().nth(1).unwrap();
    assert!(line.contains(key_b64));

    esus_ir()
        .args(["keygen", "-o"])
        .arg(&key)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--force"));
    esus_ir()
        .args(["keygen", "--force", "-o"])
        .arg(&key)
        .assert()
        .success();
}

#[test]
fn keygen_defaults_to_the_os_user_and_the_config_folder() {
    let dir = tempfile::tempdir().unwrap();
    esus_ir()
        .arg("keygen")
        .env("USER", "bob")
        .env("HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path().join("cfg"))
        .assert()
        .success()
        .stdout(predicate::str::starts_with("bob namespaces="));
    assert!(dir.path().join("cfg/esus-ir/transcript_ed25519").exists());
}

#[test]
fn verify_exits_0_for_a_valid_transcript_and_5_for_a_tampered_one() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_run(dir.path(), Ending::Success);
    esus_ir()
        .arg("verify")
        .arg(&path)
        .assert()
        .code(0)
        .stdout(predicate::str::starts_with("VALID"));

    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("\"seq\":4,", "\"seq\":40,", 1)).unwrap();
    esus_ir()
        .arg("verify")
        .arg(&path)
        .assert()
        .code(5)
        .stdout(predicate::str::starts_with("INVALID"))
        .stdout(predicate::str::contains("first bad event: seq 40 (line 5)"));
}

#[test]
fn verify_json_output_is_machine_readable() {
    let dir = tempfile::tempdir().unwrap();
    let (path, public) = write_run(dir.path(), Ending::Declined);
    let allowed = dir.path().join("allowed_signers");
    std::fs::write(
        &allowed,
        esus_ir::transcript::allowed_signers_line(OPERATOR, &public),
    )
    .unwrap();
    let out = esus_ir()
        .arg("verify")
        .arg(&path)
        .arg("--allowed-signers")
        .arg(&allowed)
        .args(["--output", "json"])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["signature"]["status"], "valid");
    assert_eq!(v["signature"]["trust"], "allowed-signers");
    assert_eq!(v["outcome"], "declined");
    assert_eq!(v["problems"], serde_json::json!([]));
}

#[test]
fn verify_of_an_unsigned_transcript_exits_5_and_of_a_missing_one_2() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_run(dir.path(), Ending::Success);
    std::fs::remove_file(esus_ir::transcript::signature_path(&path)).unwrap();
    esus_ir()
        .arg("verify")
        .arg(&path)
        .assert()
        .code(5)
        .stdout(predicate::str::contains("unsigned"));
    // A path that is not there is a usage error, not an invalid transcript.
    esus_ir()
        .arg("verify")
        .arg(dir.path().join("nope.jsonl"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("nope.jsonl"))
        .stderr(predicate::str::contains(
            "give a run folder or a transcript",
        ));
}

/// `verify esus-ir-runs/*/` and `verify a.jsonl b.jsonl`: each path verified on its own, its
/// verdict first on a line of its own; exit 0 only when every one verifies.
#[test]
fn verify_takes_several_transcripts_and_run_folders() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (file, _) = write_run(a.path(), Ending::Success);
    let (in_folder, _) = write_run(b.path(), Ending::Declined);
    let verdicts = |out: &[u8]| -> Vec<String> {
        String::from_utf8(out.to_vec())
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with(' '))
            .map(str::to_string)
            .collect()
    };
    let out = esus_ir()
        .arg("verify")
        .arg(&file)
        .arg(b.path())
        .assert()
        .code(0);
    assert_eq!(
        verdicts(&out.get_output().stdout),
        [
            format!("VALID: {}", file.display()),
            format!(
                "VALID: {} (an incident of 1 leg: transcript.jsonl)",
                b.path().display()
            ),
        ]
    );

    let text = std::fs::read_to_string(&in_folder).unwrap();
    std::fs::write(&in_folder, text.replacen("revoke-key", "revoke-kez", 1)).unwrap();
    let out = esus_ir()
        .arg("verify")
        .arg(&file)
        .arg(b.path())
        .assert()
        .code(5);
    let said = verdicts(&out.get_output().stdout);
    assert_eq!(said.len(), 2, "{said:?}");
    assert_eq!(said[0], format!("VALID: {}", file.display()));
    assert!(
        said[1].starts_with(&format!("INVALID: {}", b.path().display())),
        "{said:?}"
    );

    // JSON: one document per path, in the order given.
    let out = esus_ir()
        .arg("verify")
        .arg(b.path())
        .arg(&file)
        .args(["--output", "json"])
        .assert()
        .code(5);
    let docs: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let docs = docs.as_array().unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0]["ok"], false);
    assert_eq!(docs[0]["path"], b.path().display().to_string());
    assert_eq!(docs[0]["legs"], serde_json::json!(["transcript.jsonl"]));
    assert_eq!(docs[1]["ok"], true);
    assert_eq!(docs[1]["path"], file.display().to_string());
}

#[test]
fn verify_with_nothing_or_a_path_that_is_not_there_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = write_run(dir.path(), Ending::Success);
    esus_ir().arg("verify").assert().code(2);
    // Nothing is verified when any path is unusable: the mistake is said first, for each.
    let out = esus_ir()
        .arg("verify")
        .arg(&file)
        .arg(dir.path().join("gone"))
        .arg(dir.path().join("also-gone.jsonl"))
        .assert()
        .code(2)
        .stdout("");
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(
        err.contains("gone:") && err.contains("also-gone.jsonl:"),
        "{err}"
    );
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    esus_ir()
        .arg("verify")
        .arg(&empty)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "no transcript.jsonl in that folder",
        ));
}

/// A transcript named like a leg but outside the chain of resumes (here another run's, copied
/// in as the second leg) makes the folder invalid: the incident is every leg, not the last one.
#[test]
fn a_leg_outside_the_chain_makes_its_run_folder_invalid() {
    let (run, other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (first, _) = write_run(run.path(), Ending::Declined);
    let (foreign, _) = write_run(other.path(), Ending::Success);
    let second = run.path().join("transcript.2.jsonl");
    std::fs::copy(&foreign, &second).unwrap();
    std::fs::copy(
        esus_ir::transcript::signature_path(&foreign),
        esus_ir::transcript::signature_path(&second),
    )
    .unwrap();
    esus_ir().arg("verify").arg(&first).assert().code(0);
    esus_ir().arg("verify").arg(&second).assert().code(0);
    esus_ir()
        .arg("verify")
        .arg(run.path())
        .assert()
        .code(5)
        .stdout(predicate::str::contains(
            "transcript.jsonl is in the run folder but not in the chain of resumes that ends at transcript.2.jsonl",
        ));
}

#[test]
fn report_writes_markdown_and_html() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_run(dir.path(), Ending::Success);
    esus_ir()
        .arg("report")
        .arg(&path)
        .assert()
        .success()
        .stdout(predicate::str::starts_with("# Incident response report"));
    let html = dir.path().join("report.html");
    esus_ir()
        .arg("report")
        .arg(&path)
        .args(["--format", "html", "-o"])
        .arg(&html)
        .assert()
        .success();
    let text = std::fs::read_to_string(&html).unwrap();
    assert!(text.starts_with("<!DOCTYPE html>"));
    assert!(!text.contains("src=") && !text.contains("href=") && !text.contains("<script"));
}

#[test]
fn report_refuses_a_broken_chain_with_exit_5() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_run(dir.path(), Ending::Success);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("find-key", "find-kez", 1)).unwrap();
    esus_ir()
        .arg("report")
        .arg(&path)
        .assert()
        .code(5)
        .stderr(predicate::str::contains("hash mismatch"));
}

#[test]
fn verify_takes_an_evidence_dir() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_run(dir.path(), Ending::Success);
    let elsewhere = dir.path().join("archive");
    std::fs::rename(dir.path().join("evidence"), &elsewhere).unwrap();
    esus_ir()
        .arg("verify")
        .arg(&path)
        .arg("--require-evidence")
        .assert()
        .code(5)
        .stdout(predicate::str::contains("is missing"));
    esus_ir()
        .arg("verify")
        .arg(&path)
        .arg("--require-evidence")
        .arg("--evidence-dir")
        .arg(&elsewhere)
        .assert()
        .code(0);
}

#[test]
fn verify_without_allowed_signers_says_it_checked_integrity_not_identity() {
    let dir = tempfile::tempdir().unwrap();
    let (path, public) = write_run(dir.path(), Ending::Success);
    let out = esus_ir().arg("verify").arg(&path).assert().success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(text.contains("integrity only"), "{text}");
    assert!(text.contains("the final signature"), "{text}");
    let allowed = dir.path().join("allowed_signers");
    std::fs::write(
        &allowed,
        esus_ir::transcript::allowed_signers_line(OPERATOR, &public),
    )
    .unwrap();
    let out = esus_ir()
        .arg("verify")
        .arg(&path)
        .arg("--allowed-signers")
        .arg(&allowed)
        .assert()
        .success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(!text.contains("integrity only"), "{text}");
}

#[test]
fn verify_of_a_killed_run_names_the_records_its_last_checkpoint_covers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("transcript.jsonl");
    let writer = esus_ir::transcript::TranscriptWriter::create(
        &path,
        esus_ir::transcript::Signer::generate("k").unwrap(),
    )
    .unwrap();
    for e in crate::transcript_support::events(Ending::Killed, "rb", b"") {
        esus_ir::event::EventSink::emit(&writer, &e).unwrap();
    }
    std::mem::forget(writer);
    let records = esus_ir::transcript::read_transcript(&path).unwrap();
    let cp = records
        .iter()
        .rposition(|r| r.kind == "checkpoint")
        .unwrap();
    let out = esus_ir().arg("verify").arg(&path).assert().code(5);
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(text.contains("incomplete"), "{text}");
    let n = records.len();
    assert!(
        text.contains(&format!(
            "signed:    {cp} of {n} records (seq 0..{} by the last valid checkpoint, seq {cp};",
            cp - 1
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("records seq {}..{} are not signed", cp + 1, n - 1)),
        "{text}"
    );
}
