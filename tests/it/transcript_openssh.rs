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
    let out = ssh_keygen()
        .args(["-q", "-t", "ecdsa", "-N", "", "-f"])
        .arg(&key)
        .output()
        .unwrap();
    // Seen failing once under a loaded full suite (not reproduced alone): say why if it does.
    assert!(
        out.status.success(),
        "ssh-keygen -t ecdsa: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
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

/// `ssh-keygen -Y verify` of `transcript` against `allowed` for `principal`.
fn openssh_verifies_as(transcript: &Path, allowed: &Path, principal: &str) -> bool {
    ssh_keygen()
        .args(["-Y", "verify", "-f"])
        .arg(allowed)
        .args(["-I", principal, "-n", NAMESPACE, "-s"])
        .arg(signature_path(transcript))
        .stdin(std::fs::File::open(transcript).unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

fn esus_ir(home: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("esus-ir").unwrap();
    for var in crate::run_support::CLEARED_ENV {
        cmd.env_remove(var);
    }
    cmd.env("XDG_CONFIG_HOME", home.join("config"))
        .env("HOME", home)
        .env("NO_COLOR", "1")
        .timeout(std::time::Duration::from_secs(120));
    cmd
}

/// `keygen --show` prints an existing key's allowed_signers line — from the private key or its
/// `.pub` — and `ssh-keygen -Y verify` accepts what that key signed with exactly that line in
/// the file; the bare public key alone it refuses.
#[test]
fn keygen_show_prints_the_allowed_signers_line_openssh_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("ir_ed25519");
    esus_ir(dir.path())
        .args(["keygen", "--operator", "someone-else", "-o"])
        .arg(&key)
        .assert()
        .success();
    let show = |arg: &Path| {
        let out = esus_ir(dir.path())
            .args(["keygen", "--show", "--operator", OPERATOR, "--key"])
            .arg(arg)
            .assert()
            .success();
        String::from_utf8(out.get_output().stdout.clone()).unwrap()
    };
    let line = show(&key);
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(
        line.starts_with(&format!(
            "{OPERATOR} namespaces=\"{NAMESPACE}\" ssh-ed25519 AAAA"
        )),
        "{line}"
    );
    assert_eq!(
        show(&key.with_extension("pub")),
        line,
        "the .pub says the same"
    );

    let (path, _) = write_run_named(
        dir.path(),
        Ending::Success,
        "rb",
        Signer::load(&key, None).unwrap(),
    );
    let allowed = dir.path().join("allowed_signers");
    std::fs::write(&allowed, &line).unwrap();
    assert!(openssh_verifies(&path, &allowed));
    let bare = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    std::fs::write(&allowed, bare).unwrap();
    assert!(
        !openssh_verifies(&path, &allowed),
        "a bare public key is not an allowed_signers line"
    );

    esus_ir(dir.path())
        .args(["keygen", "--show", "--key"])
        .arg(dir.path().join("none"))
        .assert()
        .code(2)
        .stderr(predicates::str::contains("create one with `esus-ir keygen"));
    esus_ir(dir.path())
        .args(["keygen", "--show", "-o"])
        .arg(&key)
        .assert()
        .code(2);
}

/// The message a first run prints when it creates the per-user key is the key's allowed_signers
/// line, pasted as it is: `ssh-keygen -Y verify` accepts that run's transcript with it, and
/// `keygen --show` prints the same line again later.
#[test]
fn the_first_use_key_message_is_an_allowed_signers_line_openssh_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let out = esus_ir(dir.path())
        .env("USER", "drill-operator")
        .arg("drill")
        .arg("--run-dir")
        .arg(&run)
        .arg("--non-interactive")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let line = stderr
        .lines()
        .skip_while(|l| !l.starts_with("created a transcript signing key"))
        .find(|l| l.starts_with("drill-operator "))
        .unwrap_or_else(|| panic!("no allowed_signers line in:\n{stderr}"))
        .to_string();
    assert!(
        line.starts_with(&format!(
            "drill-operator namespaces=\"{NAMESPACE}\" ssh-ed25519 "
        )),
        "{line}"
    );
    let allowed = dir.path().join("allowed_signers");
    std::fs::write(&allowed, format!("{line}\n")).unwrap();
    assert!(openssh_verifies_as(
        &run.join("transcript.jsonl"),
        &allowed,
        "drill-operator"
    ));
    esus_ir(dir.path())
        .env("USER", "drill-operator")
        .args(["keygen", "--show"])
        .assert()
        .success()
        .stdout(format!("{line}\n"));
}
