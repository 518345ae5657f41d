//! `run --policy`: a signed policy in place of a blanket `--yes`. The approver signs the YAML with
//! plain OpenSSH (`ssh-keygen -Y sign -n esus-ir-policy`); a run inside it goes ahead unattended,
//! one outside it — another ESUS, an input off its pattern, a fan-out over its cap, a step it does
//! not approve, an expired or self-signed policy — is refused with exit 3 and nothing sent.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::run_support::{Env, assert_code, output, text};

fn key(dir: &Path, name: &str) -> PathBuf {
    let key = dir.join(name);
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-C", name, "-N", "", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen")
        .success();
    assert!(ok);
    key
}

/// Writes the policy, signs it with `signer` (OpenSSH), and lists `signer` as `bob` for policies.
fn signed_policy(env: &Env, yaml: &str, signer: &Path) -> (PathBuf, PathBuf) {
    let policy = env.dir.path().join("policy.yaml");
    std::fs::write(&policy, yaml).expect("policy");
    let _ = std::fs::remove_file(env.dir.path().join("policy.yaml.sig"));
    let ok = Command::new("ssh-keygen")
        .args(["-Y", "sign", "-n", "esus-ir-policy", "-f"])
        .arg(signer)
        .arg(&policy)
        .output()
        .expect("sign");
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    let public = std::fs::read_to_string(format!("{}.pub", signer.display())).expect("pub");
    let fields: Vec<&str> = public.split_whitespace().take(2).collect();
    let allowed = env.dir.path().join("allowed_signers");
    std::fs::write(
        &allowed,
        format!(
            "bob@example.org namespaces=\"esus-ir-policy\" {}\n",
            fields.join(" ")
        ),
    )
    .expect("allowed");
    (policy, allowed)
}

fn policy_text(env: &Env, extra_rule: &str, expires: &str) -> String {
    format!(
        "version: 1\nexpires: {expires}\nbase_urls: [{}]\nrunbooks:\n  api-key-compromise:\n    approve: [logout, delete]\n    inputs: {{key_id: 'k-[0-9]+', user_id: 'u-[0-9]+'}}\n{extra_rule}",
        env.sim.base_url()
    )
}

fn run(env: &Env, runbook: &str, policy: &Path, allowed: &Path, dir: &str) -> assert_cmd::Command {
    let mut cmd = env.run_cmd_at(runbook, &env.dir.path().join(dir));
    cmd.arg("--policy")
        .arg(policy)
        .arg("--allowed-signers")
        .arg(allowed)
        .args(["--non-interactive", "--output", "json"]);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_inside_a_signed_policy_goes_ahead_unattended_without_yes() {
    let env = Env::start().await;
    let bob = key(env.dir.path(), "bob");
    let (policy, allowed) =
        signed_policy(&env, &policy_text(&env, "", "2099-01-01T00:00:00Z"), &bob);
    let mut cmd = run(&env, "api-key-compromise", &policy, &allowed, "in");
    env.compromise_args(&mut cmd);
    let out = output(cmd).await;
    assert_code(&out, 0);
    assert!(
        env.sim
            .api_key(&env.sim.ready().key_id)
            .is_some_and(|k| k.deleted)
    );
    let records = std::fs::read_to_string(env.dir.path().join("in/transcript.jsonl")).expect("t");
    assert!(records.contains("\"type\":\"policy-applied\""), "recorded");
    assert!(records.contains("bob@example.org"), "who signed it");
    assert!(records.contains("\"how\":\"policy\""));
    let (code, said) =
        crate::run_support::verify(&env, &env.dir.path().join("in/transcript.jsonl"));
    assert_eq!(code, 0, "{said}");
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(
            std::fs::read(&policy).expect("policy"),
        ))
    };
    assert!(
        said.lines().any(|l| l.contains(&format!(
            "approved:  the signed policy sha256 {digest} (valid until 2099-01-01T00:00:00Z), signed by bob@example.org (SHA256:"
        ))),
        "verify names the policy and its signer: {said}"
    );
    let mut report = env.bare_cmd();
    report
        .arg("report")
        .arg(env.dir.path().join("in"))
        .args(["--format", "markdown"]);
    let out = output(report).await;
    assert_code(&out, 0);
    assert!(
        text(&out.stdout).contains("signed by bob@example.org"),
        "{}",
        text(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_outside_its_policy_is_refused_with_nothing_sent() {
    let env = Env::start().await;
    let bob = key(env.dir.path(), "bob");
    let r = env.sim.ready();
    let refused = |out: &std::process::Output, needle: &str| {
        assert_code(out, 3);
        assert!(
            text(&out.stdout).contains(needle),
            "`{needle}` not in {}",
            text(&out.stdout)
        );
    };
    // An input off its pattern.
    let (policy, allowed) =
        signed_policy(&env, &policy_text(&env, "", "2099-01-01T00:00:00Z"), &bob);
    let mut cmd = run(&env, "api-key-compromise", &policy, &allowed, "a");
    cmd.args([
        "--input",
        "key_id=prod.key-1001",
        "--input",
        &format!("user_id={}", r.user_id),
    ]);
    refused(&output(cmd).await, "does not match the policy's");
    // Expired.
    let (policy, allowed) =
        signed_policy(&env, &policy_text(&env, "", "2026-01-01T00:00:00Z"), &bob);
    let mut cmd = run(&env, "api-key-compromise", &policy, &allowed, "c");
    env.compromise_args(&mut cmd);
    refused(&output(cmd).await, "expired");
    // A fan-out over the policy's cap.
    let many = env.runbook(
        "many.yaml",
        "version: 1\nname: many\nsteps:\n  - id: rm\n    name: Delete the keys\n    action: api_keys.delete\n    foreach: \"['k-a', 'k-b', 'k-c']\"\n    with: {id: \"{{ item }}\"}\n",
    );
    let (policy, allowed) = signed_policy(
        &env,
        &format!(
            "{}  many:\n    approve: [rm]\n    max_items: 2\n",
            policy_text(&env, "", "2099-01-01T00:00:00Z")
        ),
        &bob,
    );
    let out = output(run(&env, &many, &policy, &allowed, "d")).await;
    refused(&out, "fans out over 3 items");
    // Another ESUS than the policy names.
    let (policy, allowed) = signed_policy(
        &env,
        &policy_text(&env, "", "2099-01-01T00:00:00Z")
            .replace(&env.sim.base_url(), "https://api.esus.health"),
        &bob,
    );
    let mut cmd = run(&env, "api-key-compromise", &policy, &allowed, "e");
    env.compromise_args(&mut cmd);
    refused(&output(cmd).await, "not one of the policy's base URLs");
    // Edited after signing.
    let (policy, allowed) =
        signed_policy(&env, &policy_text(&env, "", "2099-01-01T00:00:00Z"), &bob);
    let text_now = std::fs::read_to_string(&policy).expect("read");
    std::fs::write(&policy, text_now.replace("k-[0-9]+", ".*")).expect("edit");
    let mut cmd = run(&env, "api-key-compromise", &policy, &allowed, "f");
    env.compromise_args(&mut cmd);
    refused(&output(cmd).await, "does not match it");
    assert!(
        env.sim.requests().is_empty(),
        "nothing was sent by any refused run: {:?}",
        env.sim.requests()
    );
    // A step the policy does not approve (the policy names logout and delete, not a typed cut-off).
    let (policy, allowed) = signed_policy(
        &env,
        &format!(
            "{}  session-compromise:\n    approve: []\n    inputs: {{user_id: 'u-[0-9]+'}}\n",
            policy_text(&env, "", "2099-01-01T00:00:00Z")
        ),
        &bob,
    );
    let mut cmd = run(&env, "session-compromise", &policy, &allowed, "b");
    cmd.args(["--input", &format!("user_id={}", r.user_id)]);
    let out = output(cmd).await;
    // A step whose condition is known only later (the cut-off) is judged when reached, as an
    // unattended run without its approval is: exit 3, and nothing written.
    assert_code(&out, 3);
    assert!(
        env.sim.requests().iter().all(|q| q.method == "GET"),
        "{:?}",
        env.sim.requests()
    );
}
