//! Live runs of the bundled API-key runbook against the simulator: what ESUS ends up in, what was
//! sent, and that no secret leaks anywhere.

use esus_ir::sim::CredentialKind;
use secrecy::ExposeSecret;
use serde_json::Value;

use crate::run_support::{Env, assert_code, files_under, output, text, verify};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compromise_runbook_contains_the_key_with_yes() {
    let env = Env::start().await;
    let r = env.sim.ready().clone();
    let before = env.sim.api_key(&r.key_id).expect("leaked key exists");
    let mut cmd = env.run_cmd("api-key-compromise");
    env.compromise_args(&mut cmd);
    cmd.args(["--yes", "--non-interactive", "--output", "json"]);
    let out = output(cmd).await;
    assert_code(&out, 0);
    let report: Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(report["outcome"], "success");

    // Contained: the leaked key is gone, the session is dead.
    let old = env.sim.api_key(&r.key_id).expect("tombstone");
    assert!(old.deleted && !old.usable_now, "{old:?}");
    let sessions = env.sim.sessions_of(&r.user_id);
    let session = sessions
        .iter()
        .find(|s| s.id == r.session_id)
        .unwrap_or_else(|| panic!("session {} exists: {sessions:?}", r.session_id));
    assert!(
        session.revoked,
        "the compromised session is dead: {session:?}"
    );

    // The leaked secret itself was presented to ESUS (the containment probe) twice: before the
    // delete, as a baseline, ESUS accepted it (403: the key authenticated, and API keys may not
    // read /api-keys); after the delete it refused it (401). The refusal proves something only
    // against that earlier acceptance.
    let log = env.sim.requests();
    let key_probes: Vec<(u64, Option<u16>)> = log
        .iter()
        .filter(|q| q.credential == CredentialKind::ApiKey)
        .map(|q| (q.seq, q.status))
        .collect();
    let statuses: Vec<Option<u16>> = key_probes.iter().map(|(_, s)| *s).collect();
    assert_eq!(
        statuses,
        [Some(403), Some(401)],
        "the leaked-secret probe was accepted before the delete and refused after it"
    );
    let delete_seq = log
        .iter()
        .find(|q| q.method == "DELETE" && q.path == format!("/api-keys/{}", r.key_id))
        .map(|q| q.seq)
        .expect("the delete was sent");
    assert!(
        key_probes[0].0 < delete_seq && delete_seq < key_probes[1].0,
        "baseline before the delete, proof after it: {key_probes:?}, delete {delete_seq}"
    );
    let contained = report["containment"]["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["step"] == "contained"))
        .expect("the contained check");
    let detail = contained["detail"].as_str().expect("detail");
    assert!(
        detail.contains(&format!(
            "key {} is gone (GET /api-keys/{} → 404), where this incident saw it exist before",
            r.key_id, r.key_id
        )) && detail.contains(
            "the leaked secret is refused (401), where ESUS accepted it earlier in this incident"
        ) && !detail.contains("not proven"),
        "{detail}"
    );

    // A replacement with the same name and scopes exists.
    let steps = report["steps"].as_array().expect("steps");
    let step = |id: &str| {
        steps
            .iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("step {id}"))
    };
    let new_id = step("replace")["outputs"]["new_key_id"]
        .as_str()
        .map(str::to_string)
        .expect("a replacement id");
    let new = env.sim.api_key(&new_id).expect("replacement exists");
    assert_eq!(
        (new.name.as_str(), &new.scopes),
        (before.name.as_str(), &before.scopes)
    );
    assert!(new.usable_now);
    assert_eq!(step("contained")["status"], "ok");

    // The audit evidence holds every row ESUS reported, across pages.
    let audit = step("audit");
    let file = env.run_dir().join("evidence").join(
        audit["evidence"][0]["file"]
            .as_str()
            .expect("evidence file"),
    );
    let saved: Value =
        serde_json::from_slice(&std::fs::read(&file).expect("evidence")).expect("json evidence");
    let rows = saved["rows"].as_array().expect("rows").len() as u64;
    assert_eq!(Some(rows), saved["total"].as_u64());
    assert!(rows > 200, "several pages of audit history: {rows}");
    // Pulled by ESUS's cursor search, page after page; the page-numbered fallback not needed.
    let pages = env
        .sim
        .requests()
        .iter()
        .filter(|q| q.path.trim_end_matches('/') == "/v1/admin/audit")
        .count();
    assert!(pages >= 3, "{pages} pages");
    assert_eq!(step("audit_by_page")["status"], "skipped");
    assert!(
        !env.sim
            .requests()
            .iter()
            .any(|q| q.path.starts_with("/admin/audit/user/")),
        "no offset pull beside the cursor search"
    );
    // The operator is a system administrator: ESUS's own chain check is evidence too.
    assert_eq!(step("audit_chain")["status"], "ok");
    assert!(env.run_dir().join("evidence/audit-chain.json").is_file());

    // The replacement's secret went to a 0600 file and nowhere else.
    let secret_file = step("replace")["secret_files"][0]
        .as_str()
        .map(str::to_string)
        .expect("secret file");
    let secret = std::fs::read_to_string(&secret_file)
        .expect("secret")
        .trim()
        .to_string();
    assert!(!secret.is_empty());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&secret_file)
                .expect("meta")
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
    let canaries = [
        r.admin_token.expose_secret().to_string(),
        r.session_token.expose_secret().to_string(),
        r.key_secret.expose_secret().to_string(),
        secret.clone(),
    ];
    let mut haystacks = vec![("stdout", text(&out.stdout)), ("stderr", text(&out.stderr))];
    for f in files_under(&env.run_dir()) {
        if !f.starts_with(env.run_dir().join("secrets")) {
            haystacks.push((
                Box::leak(f.display().to_string().into_boxed_str()),
                String::from_utf8_lossy(&std::fs::read(&f).expect("read")).into_owned(),
            ));
        }
    }
    for canary in &canaries {
        for (name, hay) in &haystacks {
            assert!(
                !hay.contains(canary.as_str()),
                "a secret leaked into {name}"
            );
        }
    }

    // The transcript verifies.
    let (code, said) = verify(&env, &env.transcript());
    assert_eq!(code, 0, "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_carries_a_request_id_and_the_user_agent_is_ours() {
    let env = Env::start().await;
    let mut cmd = env.run_cmd("api-key-compromise");
    env.compromise_args(&mut cmd);
    cmd.args(["--yes", "--non-interactive"]);
    let out = output(cmd).await;
    assert_code(&out, 0);
    let log = env.sim.requests();
    assert!(!log.is_empty());
    assert!(
        log.iter()
            .all(|q| q.request_id.as_deref().is_some_and(|id| id.len() >= 32)),
        "{log:?}"
    );
    let ours = format!("esus-ir/{}", env!("CARGO_PKG_VERSION"));
    assert!(
        log.iter()
            .all(|q| q.user_agent.as_deref() == Some(ours.as_str())),
        "every request says it is {ours}: {:?}",
        log.iter().map(|q| &q.user_agent).collect::<Vec<_>>()
    );
    let transcript = std::fs::read_to_string(env.transcript()).expect("transcript");
    for q in &log {
        let id = q.request_id.as_deref().unwrap_or_default();
        assert!(
            transcript.contains(id),
            "request id {id} recorded in the transcript"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_answers_of_create_and_rotate_keep_the_new_secret_out_of_evidence() {
    let env = Env::start().await;
    let key = env.sim.ready().key_id.clone();
    let rb = env.runbook(
        "rotate-save.yaml",
        "version: 1\nname: rotate-save\ninputs:\n  key_id: {type: string, required: true}\nsteps:\n  - id: rotate\n    name: Rotate\n    action: api_keys.rotate\n    with: {id: \"{{ inputs.key_id }}\", grace_hours: 0}\n    save: rotated.json\n    outputs:\n      new_secret: {value: response.secret, secret: true}\n",
    );
    let mut cmd = env.run_cmd(&rb);
    cmd.args([
        "--input",
        &format!("key_id={key}"),
        "--non-interactive",
        "--yes",
    ]);
    assert_code(&output(cmd).await, 0);
    let secret = std::fs::read_to_string(env.run_dir().join("secrets/rotate.new_secret"))
        .expect("secret file")
        .trim()
        .to_string();
    let saved =
        std::fs::read_to_string(env.run_dir().join("evidence/rotated.json")).expect("evidence");
    assert!(
        !saved.contains(&secret),
        "the new secret is not in the evidence file"
    );
    assert!(saved.contains("\"secret\":\"[secret]\""), "{saved}");
    let transcript = std::fs::read_to_string(env.transcript()).expect("transcript");
    assert!(!transcript.contains(&secret));
}
