//! Interop with the system's OpenSSH (`openssh-client` must be installed): `ssh-keygen -Y verify`
//! accepts our signatures and rejects a modified transcript; signatures and keys made by
//! `ssh-keygen` work with esus-ir, encrypted keys included.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Stdio};

use esus_ir::transcript::{
    NAMESPACE, Signer, TranscriptError, VerifyOptions, allowed_signers_line, signature_path,
    verify_transcript,
};
use secrecy::SecretString;

use crate::transcript_support::{Ending, OPERATOR, write_run, write_run_named};

const SSH_KEYGEN: &str = "/usr/bin/ssh-keygen";

fn ssh_keygen() -> Command {
    assert!(
        Path::new(SSH_KEYGEN).exists(),
        "{SSH_KEYGEN} is missing: install openssh-client (apt-get install openssh-client)"
    );
    Command::new(SSH_KEYGEN)
}

/// `ssh-keygen -Y verify -f allowed -I operator -n esus-ir-transcript -s T.sig < T`.
fn openssh_verifies(transcript: &Path, allowed: &Path) -> bool {
    let status = ssh_keygen()
        .args(["-Y", "verify", "-f"])
        .arg(allowed)
        .args(["-I", OPERATOR, "-n", NAMESPACE, "-s"])
        .arg(signature_path(transcript))
        .stdin(std::fs::File::open(transcript).unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    status.success()
}

fn new_openssh_key(dir: &Path, passphrase: &str) -> std::path::PathBuf {
    let key = dir.join("id_ed25519");
    let status = ssh_keygen()
        .args([
            "-q", "-t", "ed25519", "-C", "engineer", "-N", passphrase, "-f",
        ])
        .arg(&key)
        .status()
        .unwrap();
    assert!(status.success());
    key
}

#[test]
fn ssh_keygen_accepts_our_signature_and_rejects_a_modified_transcript() {
    let dir = tempfile::tempdir().unwrap();
    let (path, public) = write_run(dir.path(), Ending::Success);
    let allowed = dir.path().join("allowed_signers");
    std::fs::write(&allowed, allowed_signers_line(OPERATOR, &public) + "\n").unwrap();
    assert!(openssh_verifies(&path, &allowed));

    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("revoke-key", "revoke-kez", 1)).unwrap();
    assert!(!openssh_verifies(&path, &allowed));
}

#[test]
fn ssh_keygen_rejects_a_signer_not_in_allowed_signers() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_run(dir.path(), Ending::Declined);
    let other = Signer::generate("other").unwrap().public_key_openssh();
    let allowed = dir.path().join("allowed_signers");
    std::fs::write(&allowed, allowed_signers_line(OPERATOR, &other) + "\n").unwrap();
    assert!(!openssh_verifies(&path, &allowed));
}

#[test]
fn signature_made_by_ssh_keygen_verifies_with_esus_ir() {
    let dir = tempfile::tempdir().unwrap();
    let key = new_openssh_key(dir.path(), "");
    let signer = Signer::load(&key, None).unwrap();
    let (path, _) = write_run_named(dir.path(), Ending::Failed, "rb", signer);
    std::fs::remove_file(signature_path(&path)).unwrap();
    let status = ssh_keygen()
        .args(["-q", "-Y", "sign", "-n", NAMESPACE, "-f"])
        .arg(&key)
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());

    let v = verify_transcript(&path, &VerifyOptions::default()).unwrap();
    assert!(v.ok, "{:#?}", v.problems);

    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let allowed = dir.path().join("allowed_signers");
    std::fs::write(&allowed, allowed_signers_line(OPERATOR, &public)).unwrap();
    let options = VerifyOptions {
        allowed_signers: Some(allowed),
        ..VerifyOptions::default()
    };
    assert!(verify_transcript(&path, &options).unwrap().ok);
}

#[test]
fn encrypted_key_needs_its_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let key = new_openssh_key(dir.path(), "correct horse");
    let err = Signer::load(&key, None).unwrap_err();
    assert!(matches!(err, TranscriptError::PassphraseNeeded(_)));
    assert!(
        err.to_string().contains("ESUS_IR_SIGN_KEY_PASSPHRASE"),
        "{err}"
    );

    let wrong = SecretString::from("battery staple");
    let err = Signer::load(&key, Some(&wrong)).unwrap_err();
    assert!(err.to_string().contains("wrong passphrase"), "{err}");

    let right = SecretString::from("correct horse");
    let signer = Signer::load(&key, Some(&right)).unwrap();
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    assert!(public.starts_with(&signer.public_key_openssh()[..80]));
}

#[test]
fn non_ed25519_keys_are_refused_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id_ecdsa");
    let status = ssh_keygen()
        .args(["-q", "-t", "ecdsa", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(status.success());
    let err = Signer::load(&key, None).unwrap_err().to_string();
    assert!(err.contains("Ed25519"), "{err}");
}

#[test]
fn ssh_keygen_accepts_a_checkpoint_signature_over_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let (path, public) = write_run(dir.path(), Ending::Success);
    let allowed = dir.path().join("allowed_signers");
    std::fs::write(&allowed, allowed_signers_line(OPERATOR, &public)).unwrap();
    let records = esus_ir::transcript::read_transcript(&path).unwrap();
    let cp = records.iter().find(|r| r.kind == "checkpoint").unwrap();
    let message = esus_ir::transcript::checkpoint::message(
        cp.data["covers"].as_u64().unwrap(),
        cp.str_field("head").unwrap(),
        cp.str_field("run_id").unwrap(),
    );
    let sig = dir.path().join("cp.sig");
    std::fs::write(&sig, cp.str_field("signature").unwrap()).unwrap();
    let msg = dir.path().join("cp.msg");
    for (bytes, ok) in [
        (message.clone(), true),
        ([message, b"x".to_vec()].concat(), false),
    ] {
        std::fs::write(&msg, bytes).unwrap();
        let status = ssh_keygen()
            .args(["-Y", "verify", "-f"])
            .arg(&allowed)
            .args(["-I", OPERATOR, "-n", NAMESPACE, "-s"])
            .arg(&sig)
            .stdin(std::fs::File::open(&msg).unwrap())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert_eq!(status.success(), ok);
    }
}
