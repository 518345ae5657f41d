//! Regression tests for the findings of the third wave's review (issue 16): each one what broke,
//! named after it, and each seen failing before its fix.

use serde_json::Value;

use crate::run_support::{Env, assert_code, output, text};

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "json on stdout ({e}):\n{}\nstderr:\n{}",
            text(&out.stdout),
            text(&out.stderr)
        )
    })
}

/// `run --resume RUN_DIR --yes --non-interactive`, with the scenario's operator token and
/// compromised credentials in the environment, as a person resuming the incident gives them.
fn resumed(env: &Env) -> assert_cmd::Command {
    let r = env.sim.ready();
    let mut cmd = env.bare_cmd();
    for (var, value) in [
        ("ESUS_TOKEN", &r.admin_token),
        ("ESUS_LEAKED_KEY_SECRET", &r.key_secret),
        ("ESUS_COMPROMISED_TOKEN", &r.session_token),
    ] {
        cmd.env(var, secrecy::ExposeSecret::expose_secret(value));
    }
    cmd.arg("run")
        .arg("--resume")
        .arg(env.run_dir())
        .args(["--yes", "--non-interactive"]);
    cmd
}

/// Finding 1: an unattended run without approvals (exit 3, nothing sent), then a dry-run of its
/// resume, then the real resume: the dry-run wrote a transcript that the real resume took for a
/// finished run ("already complete", exit 0) while the leaked key stayed active.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_of_a_resume_never_makes_the_real_resume_complete() {
    let env = Env::start().await;
    let key = env.sim.ready().key_id.clone();
    let mut first = env.run_cmd("api-key-compromise");
    env.compromise_args(&mut first);
    first.args(["--non-interactive", "--output", "json"]);
    let out = output(first).await;
    assert_code(&out, 3);

    let mut dry = env.bare_cmd();
    dry.env(
        "ESUS_TOKEN",
        secrecy::ExposeSecret::expose_secret(&env.sim.ready().admin_token),
    )
    .arg("run")
    .arg("--resume")
    .arg(env.run_dir())
    .args(["--dry-run", "--non-interactive"]);
    let out = output(dry).await;
    assert_code(&out, 0);

    let mut real = resumed(&env);
    real.args(["--output", "json"]);
    let out = output(real).await;
    let report = json(&out);
    assert!(
        !report["message"]
            .as_str()
            .unwrap_or_default()
            .contains("already complete"),
        "{report:#}"
    );
    assert_code(&out, 0);
    assert!(
        env.sim.api_key(&key).is_none_or(|k| !k.usable_now),
        "the leaked key is dead after the real resume"
    );
    assert_eq!(report["contained"], "contained", "{report:#}");
}

/// Finding 3: a step that failed under `on_failure: continue` ended the run "all steps
/// completed", exit 0, outcome success, while the table showed FAILED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continued_failure_is_completed_with_failures_not_success() {
    let env = Env::start().await;
    let rb = env.runbook(
        "continue.yaml",
        "version: 1\nname: continued\nsteps:\n  - id: missing\n    name: Read a key that is not there\n    action: api_keys.get\n    with: {id: k-does-not-exist}\n    on_failure: continue\n  - id: after\n    name: List the keys\n    needs: [missing]\n    action: api_keys.list\n",
    );
    let mut cmd = env.run_cmd(&rb);
    cmd.args(["--non-interactive", "--output", "json"]);
    let out = output(cmd).await;
    let report = json(&out);
    assert_code(&out, 1);
    assert_eq!(report["outcome"], "completed-with-failures", "{report:#}");
    let message = report["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("completed with failures: missing"),
        "the summary names the continued failure first: {message}"
    );
    let statuses: Vec<&str> = report["steps"]
        .as_array()
        .map(|s| s.iter().filter_map(|x| x["status"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(statuses, ["failed", "ok"], "the step after it still ran");
}

fn admin(env: &Env) -> String {
    secrecy::ExposeSecret::expose_secret(&env.sim.ready().admin_token).to_string()
}

const CREATE: &str = "version: 1\nname: replace\nsteps:\n  - id: replace\n    name: Create the replacement\n    action: api_keys.create\n    with: {name: ehr-integration, scopes: [Patient.read]}\n    outputs:\n      new_key_id: response.id\n      new_secret: {value: response.secret, secret: true}\n";

/// Finding 2: after a create whose answer was lost, recovery took any active key *of the same
/// name* made since the send (minus 120 s) for its own orphan — and deleted a key someone else
/// had made moments earlier. Now only a key carrying this incident's exact claim is its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_create_never_touches_a_same_name_key_made_by_someone_else() {
    // The first create is the other person's (its answer is dropped too: made, unseen by us);
    // the second is the run's own, whose answer is lost after ESUS made the key.
    let env = Env::with(
        esus_ir::sim::SimConfig::default()
            .with_fault("drop_count=2@POST /api-keys")
            .expect("fault"),
    )
    .await;
    let body = serde_json::json!({"name": "ehr-integration", "scopes": ["Patient.read"]});
    let sent = crate::sim_support::client()
        .post(format!("{}/api-keys", env.sim.base_url()))
        .bearer_auth(admin(&env))
        .json(&body)
        .send()
        .await;
    assert!(sent.is_err(), "the fault drops that answer: {sent:?}");
    let theirs: Vec<String> = env
        .sim
        .api_keys()
        .into_iter()
        .filter(|k| k.name == "ehr-integration")
        .map(|k| k.id)
        .collect();
    assert_eq!(theirs.len(), 1);
    let rb = env.runbook("replace.yaml", CREATE);
    let mut cmd = env.run_cmd(&rb);
    cmd.args(["--yes", "--non-interactive", "--output", "json"]);
    let out = output(cmd).await;
    assert_code(&out, 0);
    let report = json(&out);
    let ours = report["steps"][0]["outputs"]["new_key_id"]
        .as_str()
        .expect("a replacement")
        .to_string();
    let theirs = env.sim.api_key(&theirs[0]).expect("their key");
    assert!(
        theirs.usable_now && !theirs.deleted,
        "never touched: {theirs:?}"
    );
    let mine = env.sim.api_key(&ours).expect("ours");
    assert_eq!(mine.name, "ehr-integration", "renamed to its own name");
    assert!(mine.usable_now);
    let deletes: Vec<String> = env
        .sim
        .requests()
        .into_iter()
        .filter(|q| q.method == "DELETE")
        .map(|q| q.path)
        .collect();
    assert_eq!(
        deletes.len(),
        1,
        "only the run's own orphan was revoked: {deletes:?}"
    );
    let orphan = deletes[0].trim_start_matches("/api-keys/");
    let revoked = env.sim.api_key(orphan).expect("the orphan");
    assert!(
        revoked.name.starts_with("ehr-integration.esus-ir-"),
        "it carried this incident's claim: {revoked:?}"
    );
}

/// Finding 2, the run's own lost answer: the key it made under its claim name is found by that
/// exact name, revoked (nobody holds its secret), and one replacement made whose secret is held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_create_answer_is_settled_by_the_exact_claim_name() {
    let env = Env::with(
        esus_ir::sim::SimConfig::default()
            .with_fault("drop_count=1@POST /api-keys")
            .expect("fault"),
    )
    .await;
    let rb = env.runbook("replace.yaml", CREATE);
    let mut cmd = env.run_cmd(&rb);
    cmd.args(["--yes", "--non-interactive", "--output", "json"]);
    let out = output(cmd).await;
    assert_code(&out, 0);
    let report = json(&out);
    let ours = report["steps"][0]["outputs"]["new_key_id"]
        .as_str()
        .expect("a replacement")
        .to_string();
    let live: Vec<_> = env
        .sim
        .api_keys()
        .into_iter()
        .filter(|k| k.name.starts_with("ehr-integration") && k.usable_now)
        .map(|k| k.id)
        .collect();
    assert_eq!(
        live,
        std::slice::from_ref(&ours),
        "exactly one live replacement"
    );
    let claimed: Vec<_> = env
        .sim
        .api_keys()
        .into_iter()
        .filter(|k| k.name.starts_with("ehr-integration.esus-ir-"))
        .collect();
    assert_eq!(
        claimed.len(),
        1,
        "the orphan, under its claim name: {claimed:?}"
    );
    assert!(!claimed[0].usable_now, "revoked");
    let secret = std::fs::read_to_string(env.run_dir().join("secrets/replace.new_secret"))
        .expect("the secret is held");
    let client = env.sim.api_key(&ours).expect("ours").client_id;
    assert!(
        env.sim.key_authenticates(&client, secret.trim_end()),
        "the held secret works"
    );
}

/// Finding 4: a 404 counted as proof that a key is gone even for an id that never existed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_never_existed_is_not_proven_gone() {
    let env = Env::start().await;
    let rb = env.runbook(
        "check.yaml",
        "version: 1\nname: check\nsteps:\n  - id: contained\n    name: Prove the key dead\n    action: api_keys.check_revoked\n    with: {id: k-typo}\n",
    );
    let mut cmd = env.run_cmd(&rb);
    cmd.args(["--non-interactive", "--output", "json"]);
    let out = output(cmd).await;
    assert_code(&out, 1);
    let report = json(&out);
    assert_ne!(report["contained"], "contained", "{report:#}");
    let finding = report["steps"][0]["finding"].as_str().unwrap_or_default();
    assert!(
        finding.contains("not proven") && finding.contains("never saw it exist"),
        "{finding}"
    );
}

/// Finding 4, the probe: a leaked secret refused only because the probe lacked the key's
/// `X-App-Id` (or was never accepted) proves nothing; one ESUS accepted before and refuses after
/// the delete does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_proves_a_secret_dead_only_against_an_earlier_acceptance() {
    let env = Env::start().await;
    let r = env.sim.ready();
    let key = r.key_id.clone();
    let leaked = secrecy::ExposeSecret::expose_secret(&r.key_secret).to_string();
    let check = |secret_env: &str| {
        let mut cmd = env.run_cmd("api-key-compromise");
        cmd.args(["--yes", "--non-interactive", "--output", "json"])
            .args([
                "--input",
                &format!("key_id={key}"),
                "--input",
                "user_id=u-1001",
            ])
            .env("ESUS_LEAKED_KEY_SECRET", secret_env);
        cmd
    };
    // A mistyped secret: refused before and after; the key part alone cannot make it CONTAINED.
    let out = output(check("not-the-secret")).await;
    assert_code(&out, 1);
    let report = json(&out);
    assert_ne!(report["contained"], "contained", "{report:#}");
    let text = report.to_string();
    assert!(
        text.contains("never accepted it in this incident"),
        "{report:#}"
    );

    let env = Env::start().await;
    let key = env.sim.ready().key_id.clone();
    let mut cmd = env.run_cmd("api-key-compromise");
    cmd.args(["--yes", "--non-interactive", "--output", "json"])
        .args([
            "--input",
            &format!("key_id={key}"),
            "--input",
            "user_id=u-1001",
        ])
        .env("ESUS_LEAKED_KEY_SECRET", &leaked);
    let _ = leaked;
    let out = output(cmd).await;
    let report = json(&out);
    assert_code(&out, 0);
    assert_eq!(report["contained"], "contained", "{report:#}");
    let probes: Vec<_> = env
        .sim
        .requests()
        .into_iter()
        .filter(|q| q.credential == esus_ir::sim::CredentialKind::ApiKey)
        .map(|q| q.status)
        .collect();
    assert_eq!(
        probes,
        [Some(403), Some(401)],
        "accepted before the delete (403: authenticated with its X-App-Id, but a key may not read keys), refused after"
    );
}

/// Finding 5: `confirm: typed` on a `foreach` passed validate and was asked as a plain [y/N];
/// `--yes` approved it. Typed for the worst: only `--approve STEP` approves it unattended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typed_fan_out_is_not_approved_by_yes() {
    let env = Env::start().await;
    let key = env.sim.ready().key_id.clone();
    let rb = env.runbook(
        "typed.yaml",
        &format!("version: 1\nname: typed-batch\nsteps:\n  - id: rm\n    name: Delete the keys\n    action: api_keys.delete\n    foreach: \"['{key}']\"\n    with: {{id: \"{{{{ item }}}}\"}}\n    confirm: typed\n"),
    );
    let mut cmd = env.run_cmd(&rb);
    cmd.args(["--yes", "--non-interactive", "--output", "json"]);
    let out = output(cmd).await;
    assert_code(&out, 3);
    assert!(env.sim.requests().is_empty(), "nothing sent");
    let report = json(&out);
    assert_eq!(report["missing_approvals"][0]["typed"], true, "{report:#}");
    let mut cmd = env.run_cmd_at(&rb, &env.dir.path().join("run2"));
    cmd.args(["--approve", "rm", "--non-interactive", "--output", "json"]);
    let out = output(cmd).await;
    assert_code(&out, 0);
    assert!(env.sim.api_key(&key).is_none_or(|k| k.deleted));
}

/// Finding 6: a preflight answered 429 with Retry-After stopped the run: "does not look like
/// ESUS", exit 6. A throttling ESUS is waited out like every request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_preflight_waits_and_goes_on() {
    let env = Env::with(
        esus_ir::sim::SimConfig::default()
            .with_fault("rate_limit=1/2s@GET /auth/me")
            .expect("fault")
            .with_fault("retry_after=seconds@GET /auth/me")
            .expect("fault"),
    )
    .await;
    let api = crate::runbooks_support::Api::new(&env);
    // Use up the first period's one request, so the run's preflight meets a 429.
    let _ = api
        .call("GET", "/auth/me", Some(&admin(&env)), None, None)
        .await;
    let rb = env.runbook(
        "read.yaml",
        "version: 1\nname: read\nsteps:\n  - id: keys\n    name: List keys\n    action: api_keys.list\n",
    );
    let mut cmd = env.run_cmd(&rb);
    cmd.args(["--non-interactive", "--output", "json"]);
    let out = output(cmd).await;
    assert_code(&out, 0);
    let me: Vec<_> = env
        .sim
        .requests()
        .into_iter()
        .filter(|q| q.path == "/auth/me")
        .map(|q| q.status)
        .collect();
    assert!(
        me.contains(&Some(429)) && me.last() == Some(&Some(200)),
        "{me:?}"
    );
}

/// Finding 8: a dry-run ignored `--max-items`, and a live run met the cap only after the
/// preflight and the approval. The plan checks the cap before anything is sent or asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fan_out_cap_is_checked_by_the_plan_in_every_mode() {
    let env = Env::start().await;
    let rb = env.runbook(
        "many.yaml",
        "version: 1\nname: many\nsteps:\n  - id: rm\n    name: Delete the keys\n    action: api_keys.delete\n    foreach: \"['k-a', 'k-b', 'k-c']\"\n    with: {id: \"{{ item }}\"}\n",
    );
    let mut dry = env.run_cmd(&rb);
    dry.args(["--dry-run", "--max-items", "2", "--non-interactive"]);
    let out = output(dry).await;
    assert!(
        text(&out.stdout).contains("the cap is 2"),
        "{}",
        text(&out.stdout)
    );
    let mut live = env.run_cmd(&rb);
    live.args([
        "--yes",
        "--max-items",
        "2",
        "--non-interactive",
        "--output",
        "json",
    ]);
    let out = output(live).await;
    assert_code(&out, 2);
    assert!(
        env.sim.requests().is_empty(),
        "refused before the preflight: {:?}",
        env.sim.requests()
    );
    let report = json(&out);
    assert_eq!(report["outcome"], "refused");
    assert!(
        report["missing_approvals"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );
}

/// Finding 8: a freshly returned key secret was dropped when a non-secret output expression of
/// the same step failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_secret_is_kept_when_another_output_fails() {
    let env = Env::start().await;
    let rb = env.runbook(
        "create.yaml",
        "version: 1\nname: create\nsteps:\n  - id: replace\n    name: Create\n    action: api_keys.create\n    with: {name: kept, scopes: [Patient.read]}\n    outputs:\n      new_secret: {value: response.secret, secret: true}\n      broken: response.no_such_field.deeper\n",
    );
    let mut cmd = env.run_cmd(&rb);
    cmd.args(["--non-interactive", "--output", "json"]);
    let out = output(cmd).await;
    assert_code(&out, 1);
    let secret = std::fs::read_to_string(env.run_dir().join("secrets/replace.new_secret"))
        .expect("the secret is kept although `broken` failed");
    let key = env
        .sim
        .api_keys()
        .into_iter()
        .find(|k| k.name.starts_with("kept"))
        .expect("the key");
    assert!(env.sim.key_authenticates(&key.client_id, secret.trim_end()));
}

/// Finding 9: a templated `save:` that would leave the evidence folder was refused only after
/// the step's request had gone out (a created key whose secret was never kept).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_name_leaving_the_evidence_folder_is_refused_before_the_request() {
    let env = Env::start().await;
    let rb = env.runbook(
        "save.yaml",
        "version: 1\nname: save\ninputs:\n  where: {type: string, required: true}\nsteps:\n  - id: snap\n    name: Read\n    action: api_keys.list\n    outputs:\n      dir: \"'..'\"\n  - id: replace\n    name: Create\n    needs: [snap]\n    action: api_keys.create\n    with: {name: saved, scopes: [Patient.read]}\n    save: \"{{ steps.snap.outputs.dir }}/{{ inputs.where }}.json\"\n    outputs:\n      new_secret: {value: response.secret, secret: true}\n",
    );
    let mut cmd = env.run_cmd(&rb);
    cmd.args([
        "--yes",
        "--non-interactive",
        "--output",
        "json",
        "--input",
        "where=x",
    ]);
    let out = output(cmd).await;
    assert_code(&out, 1);
    let posts: Vec<_> = env
        .sim
        .requests()
        .into_iter()
        .filter(|q| q.method == "POST" && q.path == "/api-keys")
        .collect();
    assert!(posts.is_empty(), "the create never went out: {posts:?}");
    let report = json(&out);
    assert!(report.to_string().contains("is refused"), "{report:#}");
}

/// Finding 9: `ESUS_COMPROMISED_TOKEN` with a control character was accepted; the logout
/// failed only after the delete had been sent. The plan refuses it before anything is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_input_that_cannot_be_a_header_is_refused_before_anything_is_sent() {
    let env = Env::start().await;
    let mut cmd = env.run_cmd("api-key-compromise");
    env.compromise_args(&mut cmd);
    cmd.env("ESUS_COMPROMISED_TOKEN", "eyJ\u{7}bad").args([
        "--yes",
        "--non-interactive",
        "--output",
        "json",
    ]);
    let out = output(cmd).await;
    assert_code(&out, 2);
    assert!(env.sim.requests().is_empty(), "{:?}", env.sim.requests());
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(said.contains("cannot be an HTTP header value"), "{said}");
    assert!(!said.contains("eyJ"), "the value is never shown");
}

/// The run folder is the incident: `verify DIR` and `report DIR` read its last leg, which
/// checks every earlier one; a folder with no leg is a usage error, never "Is a directory".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_and_report_take_the_run_folder() {
    let env = Env::start().await;
    let mut first = env.run_cmd("api-key-compromise");
    env.compromise_args(&mut first);
    first
        .env("ESUS_TOKEN", "refused")
        .args(["--yes", "--non-interactive"]);
    assert_code(&output(first).await, 4);
    assert_code(&output(resumed(&env)).await, 0);
    let mut verify = env.bare_cmd();
    verify.arg("verify").arg(env.run_dir());
    let out = output(verify).await;
    assert_code(&out, 0);
    let said = text(&out.stdout);
    assert!(said.contains("transcript.2.jsonl"), "the last leg: {said}");
    assert!(
        said.contains("resumes:   transcript.jsonl (valid"),
        "{said}"
    );
    let mut report = env.bare_cmd();
    report.arg("report").arg(env.run_dir());
    let out = output(report).await;
    assert_code(&out, 0);
    assert!(text(&out.stdout).contains("api-key-compromise"));
    let empty = env.dir.path().join("empty");
    std::fs::create_dir_all(&empty).expect("folder");
    let mut verify = env.bare_cmd();
    verify.arg("verify").arg(&empty);
    let out = output(verify).await;
    assert_code(&out, 2);
    assert!(text(&out.stderr).contains("no transcript.jsonl in that folder"));
}

/// Finding 2, the rotate: someone rotated the key before this incident (its `supersededBy`
/// already names a successor), and this incident's run died just as its own rotate was on its
/// way (the request written, never sent). The resume sees the successor it signed before the
/// rotate: not this rotate's — the rotate is sent again, and the earlier successor is never
/// touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_rotate_never_takes_an_earlier_successor_for_its_own() {
    let rb_text = |key: &str| {
        format!(
            "version: 1\nname: rotate-only\nsteps:\n  - id: rotate\n    name: Rotate\n    action: api_keys.rotate\n    with: {{id: {key}, grace_hours: 0}}\n    outputs:\n      new_key_id: response.id\n      new_secret: {{value: response.secret, secret: true}}\n"
        )
    };
    // Where the rotate's request record falls in a whole run: the kill point.
    let probe = Env::start().await;
    let key = probe.sim.ready().key_id.clone();
    let rb = probe.runbook("rotate.yaml", &rb_text(&key));
    let mut cmd = probe.run_cmd(&rb);
    cmd.args(["--yes", "--non-interactive"]);
    assert_code(&output(cmd).await, 0);
    let lines = std::fs::read_to_string(probe.transcript()).expect("transcript");
    let at = lines
        .lines()
        .position(|l| l.contains("\"type\":\"request\"") && l.contains("/rotate\""))
        .expect("the rotate's request")
        + 1;

    let env = Env::start().await;
    let earlier_body: Value = crate::sim_support::client()
        .post(format!("{}/api-keys/{key}/rotate", env.sim.base_url()))
        .bearer_auth(admin(&env))
        .json(&serde_json::json!({"graceHours": 24}))
        .send()
        .await
        .expect("someone else's rotate")
        .json()
        .await
        .expect("json");
    let earlier = earlier_body["id"]
        .as_str()
        .expect("their successor")
        .to_string();
    let rb = env.runbook("rotate.yaml", &rb_text(&key));
    let mut killed = env.run_cmd(&rb);
    killed
        .args(["--yes", "--non-interactive"])
        .env(esus_ir::transcript::KILL_AFTER_VAR, at.to_string());
    let out = output(killed).await;
    assert_eq!(out.status.code(), None, "killed: {}", text(&out.stderr));
    let rotations = |env: &Env| {
        env.sim
            .requests()
            .into_iter()
            .filter(|q| q.method == "POST" && q.path.ends_with("/rotate"))
            .count()
    };
    assert_eq!(
        rotations(&env),
        1,
        "only the other person's rotate reached ESUS"
    );
    let mut resume = resumed(&env);
    resume.args(["--output", "json"]);
    let out = output(resume).await;
    assert_code(&out, 0);
    let report = json(&out);
    let ours = report["steps"][0]["outputs"]["new_key_id"]
        .as_str()
        .expect("a successor of ours")
        .to_string();
    assert_ne!(ours, earlier);
    assert_eq!(rotations(&env), 2, "sent once, after the check");
    let deletes: Vec<String> = env
        .sim
        .requests()
        .into_iter()
        .filter(|q| q.method == "DELETE")
        .map(|q| q.path)
        .collect();
    assert!(deletes.is_empty(), "nothing revoked: {deletes:?}");
    let theirs = env.sim.api_key(&earlier).expect("their successor");
    assert!(
        theirs.usable_now && !theirs.deleted,
        "never touched: {theirs:?}"
    );
}

/// Finding 2, the rename: the run died after its created key was renamed to its own name (so
/// no key carries the claim name any more) and before the step was recorded finished. The
/// resume finds it through the ids its own records named, proves it holds its secret, and adopts
/// it: one replacement, never a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_renamed_before_the_run_died_is_adopted_not_made_twice() {
    let probe = Env::start().await;
    let rb = probe.runbook("replace.yaml", CREATE);
    let mut cmd = probe.run_cmd(&rb);
    cmd.args(["--yes", "--non-interactive"]);
    assert_code(&output(cmd).await, 0);
    let lines = std::fs::read_to_string(probe.transcript()).expect("transcript");
    let rename = lines
        .lines()
        .position(|l| l.contains("\"type\":\"request\"") && l.contains("\"method\":\"PUT\""))
        .expect("the rename");
    // The rename's answer is the record after its request (checkpoints aside).
    let at = lines
        .lines()
        .enumerate()
        .skip(rename + 1)
        .find(|(_, l)| l.contains("\"type\":\"response\""))
        .map(|(n, _)| n + 1)
        .expect("the rename's answer");

    let env = Env::start().await;
    let rb = env.runbook("replace.yaml", CREATE);
    let mut killed = env.run_cmd(&rb);
    killed
        .args(["--yes", "--non-interactive"])
        .env(esus_ir::transcript::KILL_AFTER_VAR, at.to_string());
    let out = output(killed).await;
    assert_eq!(out.status.code(), None, "killed: {}", text(&out.stderr));
    let named = |env: &Env| -> Vec<esus_ir::sim::KeyState> {
        env.sim
            .api_keys()
            .into_iter()
            .filter(|k| k.name.starts_with("ehr-integration"))
            .collect()
    };
    let made = named(&env);
    assert_eq!(made.len(), 1, "{made:?}");
    assert_eq!(
        made[0].name, "ehr-integration",
        "renamed before the run died"
    );
    let mut resume = resumed(&env);
    resume.args(["--output", "json"]);
    let out = output(resume).await;
    assert_code(&out, 0);
    let report = json(&out);
    assert_eq!(
        report["steps"][0]["outputs"]["new_key_id"],
        made[0].id.as_str(),
        "{report:#}"
    );
    let after = named(&env);
    assert_eq!(after.len(), 1, "never made twice: {after:?}");
    let posts = env
        .sim
        .requests()
        .into_iter()
        .filter(|q| q.method == "POST" && q.path == "/api-keys")
        .count();
    assert_eq!(posts, 1, "the create went out once");
}
