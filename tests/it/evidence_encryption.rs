//! Evidence encrypted at rest (`--encrypt-to`): with recipients, every evidence file and secret
//! output is age ciphertext from its first byte — a watcher scanning the run folder while the
//! audit log is pulled never sees one of the user's audit rows in clear — and Debian's own `age`
//! opens them with either key (X25519 or SSH). `verify` checks the ciphertext's digests without a
//! key; `scope --identity` reads it and writes its breach scope encrypted too. A runbook or a
//! site that requires encryption refuses to start without a recipient, and a resume keeps
//! encrypting to the incident's recipients.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use esus_ir::sim::SimConfig;
use serde_json::Value;

use crate::run_support::{Env, assert_code, output, text};

/// An age identity (`age-keygen`) and an SSH key pair (`ssh-keygen`), made by the tools people
/// use; returns (age identity file, age recipient, SSH private key file, SSH public key line).
fn keys(dir: &Path) -> (PathBuf, String, PathBuf, String) {
    let id = dir.join("age-identity.txt");
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(&id)
        .output()
        .expect("age-keygen (Debian package age) runs");
    assert!(out.status.success(), "age-keygen: {}", text(&out.stderr));
    let public = Command::new("age-keygen")
        .arg("-y")
        .arg(&id)
        .output()
        .expect("age-keygen -y");
    let recipient = text(&public.stdout).trim().to_string();
    let ssh = dir.join("id_ed25519");
    let out = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "privacy-officer",
            "-f",
        ])
        .arg(&ssh)
        .output()
        .expect("ssh-keygen");
    assert!(out.status.success());
    let ssh_pub = std::fs::read_to_string(ssh.with_extension("pub")).expect("ssh public key");
    (id, recipient, ssh, ssh_pub.trim().to_string())
}

/// Every regular file under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => todo.push(p),
                Ok(t) if t.is_file() => out.push(p),
                _ => {}
            }
        }
    }
    out
}

/// `age -d -i IDENTITY FILE`, Debian's age.
fn age_open(identity: &Path, file: &Path) -> Vec<u8> {
    let out = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(identity)
        .arg(file)
        .output()
        .expect("age runs");
    assert!(
        out.status.success(),
        "age -d {}: {}",
        file.display(),
        text(&out.stderr)
    );
    out.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_run_never_puts_an_audit_row_on_disk_in_clear_and_age_opens_it() {
    // Slow audit pages: the pull is in progress while the watcher looks.
    let env = Env::with(
        SimConfig::default()
            .with_fault("latency=120ms@GET /v1/admin/audit/")
            .expect("fault"),
    )
    .await;
    let (identity, recipient, ssh_key, ssh_pub) = keys(env.dir.path());
    let user = env.sim.ready().user_id.clone();
    // The canaries: the ids under which ESUS serves the user's audit rows on the cursor search.
    let canaries: Vec<String> = env
        .sim
        .audit_rows()
        .into_iter()
        .filter(|r| r.agent.user_id.as_deref() == Some(user.as_str()))
        .map(|r| esus_ir::sim::audit_event_id(&r.id))
        .collect();
    assert!(canaries.len() > 100, "the user has history");
    let run_dir = env.run_dir();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (stop, run_dir, canaries) = (stop.clone(), run_dir.clone(), canaries.clone());
        std::thread::spawn(move || {
            let mut seen_partial = false;
            let mut clear = Vec::new();
            // Bounded: at most two minutes of looking.
            for _ in 0..6000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                for f in files_under(&run_dir) {
                    let name = f.to_string_lossy().into_owned();
                    seen_partial |= name.ends_with(".partial");
                    let Ok(bytes) = std::fs::read(&f) else {
                        continue;
                    };
                    let body = String::from_utf8_lossy(&bytes);
                    if let Some(c) = canaries.iter().find(|c| body.contains(c.as_str())) {
                        clear.push(format!("{name}: {c}"));
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            (seen_partial, clear)
        })
    };
    let mut cmd = env.run_cmd("api-key-compromise");
    env.compromise_args(&mut cmd);
    cmd.args(["--encrypt-to", &recipient, "--encrypt-to", &ssh_pub])
        .args(["--yes", "--non-interactive"]);
    let out = output(cmd).await;
    stop.store(true, Ordering::Relaxed);
    let (seen_partial, clear) = watcher.join().expect("watcher");
    assert_code(&out, 0);
    assert!(
        seen_partial,
        "the watcher saw the pull in progress (a .partial file)"
    );
    assert!(clear.is_empty(), "audit rows in clear on disk: {clear:?}");

    // Every evidence file and every secret output is age ciphertext.
    let evidence = files_under(&run_dir.join("evidence"));
    assert!(
        evidence.len() >= 2,
        "the pull and the chain check: {evidence:?}"
    );
    for f in &evidence {
        assert!(f.to_string_lossy().ends_with(".age"), "{}", f.display());
        let head = std::fs::read(f).expect("read");
        assert!(
            head.starts_with(b"age-encryption.org/v1\n"),
            "{}",
            f.display()
        );
    }
    let secret = run_dir.join("secrets/replace.new_secret.age");
    assert!(secret.is_file(), "the replacement's secret, encrypted");
    // Debian's age opens them: with the age identity, and with the SSH key.
    let pulled = evidence
        .iter()
        .find(|f| {
            f.to_string_lossy()
                .ends_with(&format!("audit-user-{user}.json.age"))
        })
        .expect("the audit pull");
    let rows: Value = serde_json::from_slice(&age_open(&identity, pulled)).expect("json");
    let ids: Vec<&str> = rows["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert!(
        canaries.iter().all(|c| ids.contains(&c.as_str())),
        "every row of the user"
    );
    assert_eq!(age_open(&ssh_key, pulled), age_open(&identity, pulled));
    let key_secret = text(&age_open(&identity, &secret));
    assert!(key_secret.trim().len() > 10, "a secret, opened");
    // The transcript names the recipients (public keys), and never a secret key.
    let transcript = std::fs::read_to_string(env.transcript()).expect("transcript");
    assert!(transcript.contains(&recipient));
    assert!(!transcript.contains("AGE-SECRET-KEY"));

    // verify needs no key: the digests are of the ciphertext.
    let mut verify = env.bare_cmd();
    verify.arg("verify").arg(&run_dir);
    assert_code(&output(verify).await, 0);

    // The scope needs the key, and writes its files encrypted to the incident's recipients.
    let mut scope = env.bare_cmd();
    scope.arg("scope").arg(&run_dir);
    let refused = output(scope).await;
    assert_code(&refused, 2);
    assert!(
        text(&refused.stdout).contains("is encrypted: give --identity")
            || text(&refused.stderr).contains("is encrypted: give --identity"),
        "{}{}",
        text(&refused.stdout),
        text(&refused.stderr)
    );
    let mut scope = env.bare_cmd();
    scope
        .arg("scope")
        .arg(&run_dir)
        .arg("--identity")
        .arg(&identity)
        .args(["--format", "json"]);
    let scoped = output(scope).await;
    assert_code(&scoped, 0);
    let doc: Value = serde_json::from_slice(&scoped.stdout).expect("scope json");
    assert!(doc["patients"].as_array().is_some_and(|p| !p.is_empty()));
    let csv_file = run_dir.join("evidence/breach-scope.csv.age");
    assert!(
        !run_dir.join("evidence/breach-scope.csv").exists(),
        "none in clear"
    );
    let csv = age_open(&ssh_key, &csv_file);
    let mut reader = csv::Reader::from_reader(csv.as_slice());
    assert_eq!(
        reader.records().count(),
        doc["records"].as_array().map_or(0, Vec::len)
    );
    // The report reads it too, with the key.
    let mut report = env.bare_cmd();
    report
        .arg("report")
        .arg(&run_dir)
        .arg("--identity")
        .arg(&identity)
        .args(["--format", "json"]);
    let reported = output(report).await;
    assert_code(&reported, 0);
    let printed: Value = serde_json::from_slice(&reported.stdout).expect("report json");
    assert!(printed["scope"].is_object(), "the scope in the post-mortem");
    // Saved, it holds the scope's patients: encrypted to the incident's recipients too.
    let saved = env.dir.path().join("post-mortem.json");
    let mut report = env.bare_cmd();
    report
        .arg("report")
        .arg(&run_dir)
        .arg("--identity")
        .arg(&identity)
        .args(["--format", "json", "-o"])
        .arg(&saved);
    assert_code(&output(report).await, 0);
    assert!(!saved.exists(), "no report in clear");
    let opened: Value = serde_json::from_slice(&age_open(
        &ssh_key,
        &env.dir.path().join("post-mortem.json.age"),
    ))
    .expect("report json");
    assert_eq!(opened["scope"], printed["scope"]);
}

const PULL: &str = "version: 1\nname: pull\nevidence: { encrypt: required }\ninputs:\n  user: {type: string, required: true}\nsteps:\n  - id: pull\n    name: The user's rows\n    action: audit.search\n    with: {user_id: \"{{ inputs.user }}\"}\n    save: rows.json\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn where_encryption_is_required_a_run_without_a_recipient_sends_nothing() {
    let env = Env::start().await;
    let runbook = env.runbook("pull.yaml", PULL);
    let before = env.sim.requests().len();
    let mut cmd = env.run_cmd(&runbook);
    cmd.args(["--input", "user=u-1001", "--yes", "--non-interactive"]);
    let out = output(cmd).await;
    assert_code(&out, 2);
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        all.contains("this runbook requires encrypted evidence")
            && all.contains("Nothing was sent"),
        "{all}"
    );
    // A site requires it for every runbook.
    let mut cmd = env.run_cmd("access-review");
    cmd.env("ESUS_IR_REQUIRE_ENCRYPTION", "1")
        .args(["--yes", "--non-interactive"]);
    let out = output(cmd).await;
    assert_code(&out, 2);
    assert!(
        text(&out.stdout).contains("this site requires encrypted evidence")
            || text(&out.stderr).contains("this site requires encrypted evidence"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(env.sim.requests().len(), before, "not one request");
    // An empty recipients file (a broken site configuration) is no licence to write in clear.
    let empty = env.dir.path().join("recipients.txt");
    std::fs::write(&empty, "# nobody yet\n").expect("file");
    let mut cmd = env.run_cmd("access-review");
    cmd.env("ESUS_IR_ENCRYPT_TO_FILE", &empty)
        .args(["--yes", "--non-interactive"]);
    let out = output(cmd).await;
    assert_code(&out, 2);
    assert!(
        format!("{}{}", text(&out.stdout), text(&out.stderr)).contains("no recipient given"),
        "{}",
        text(&out.stderr)
    );
    // A secret key pasted as a recipient is refused, and not echoed.
    let mut cmd = env.run_cmd(&runbook);
    cmd.args([
        "--input",
        "user=u-1001",
        "--encrypt-to",
        "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX",
        "--yes",
        "--non-interactive",
    ]);
    let out = output(cmd).await;
    assert_code(&out, 2);
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        all.contains("a secret key was given as a recipient"),
        "{all}"
    );
    assert!(!all.contains("GFPYYSJZ"), "{all}");
    assert_eq!(env.sim.requests().len(), before, "not one request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_keeps_encrypting_to_the_incident_s_recipients() {
    // No cursor search: the pull fails and the run stops, to be resumed.
    let env = Env::with(
        SimConfig::default()
            .with_fault("absent=yes@GET /v1/admin/audit/")
            .expect("fault"),
    )
    .await;
    let (identity, recipient, _, ssh_pub) = keys(env.dir.path());
    let runbook = env.runbook("pull.yaml", PULL);
    let mut cmd = env.run_cmd(&runbook);
    cmd.args(["--input", "user=u-1001", "--encrypt-to", &recipient])
        .args(["--yes", "--non-interactive"]);
    assert_code(&output(cmd).await, 1);
    // Resumed without --encrypt-to: the incident's recipients still apply.
    assert_code(&output(resumed(&env, &[])).await, 1);
    let evidence = files_under(&env.run_dir().join("evidence"));
    assert_eq!(evidence.len(), 2, "one pull per leg: {evidence:?}");
    for f in &evidence {
        assert!(f.to_string_lossy().ends_with(".age"), "{}", f.display());
        let doc: Value = serde_json::from_slice(&age_open(&identity, f)).expect("json");
        assert_eq!(doc["complete"], false);
    }
    // Resumed to someone else: refused, nothing sent.
    let before = env.sim.requests().len();
    let out = output(resumed(&env, &["--encrypt-to", &ssh_pub])).await;
    assert_code(&out, 2);
    assert!(
        text(&out.stdout).contains("a resume encrypts to the same recipients")
            || text(&out.stderr).contains("a resume encrypts to the same recipients")
    );
    assert_eq!(env.sim.requests().len(), before);
}

/// `run --resume RUN_DIR --yes --non-interactive` with the operator's token and `extra`.
fn resumed(env: &Env, extra: &[&str]) -> assert_cmd::Command {
    let mut resume = env.bare_cmd();
    resume
        .env(
            "ESUS_TOKEN",
            secrecy::ExposeSecret::expose_secret(&env.sim.ready().admin_token),
        )
        .args(["run", "--resume"])
        .arg(env.run_dir())
        .args(extra)
        .args(["--yes", "--non-interactive"]);
    resume
}
