//! Bad days: retries on 503 and 429, a rotate whose answer is lost, an expired token, and
//! concurrency that really overlaps.

use esus_ir::sim::SimConfig;
use secrecy::ExposeSecret;
use serde_json::Value;

use crate::run_support::{Env, assert_code, output, text, verify};

fn with(fault: &str) -> SimConfig {
    SimConfig::default().with_fault(fault).expect("fault spec")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_reads_are_retried_after_503() {
    let env = Env::with(with("error_count=2@GET /api-keys/{id}")).await;
    let mut cmd = env.run_cmd("api-key-compromise");
    env.compromise_args(&mut cmd);
    cmd.args(["--yes", "--non-interactive"]);
    assert_code(&output(cmd).await, 0);
    let key_path = format!("/api-keys/{}", env.sim.ready().key_id);
    let gets: Vec<Option<u16>> = env
        .sim
        .requests()
        .iter()
        .filter(|q| q.method == "GET" && q.path == key_path)
        .map(|q| q.status)
        .collect();
    assert_eq!(&gets[..3], &[Some(503), Some(503), Some(200)], "{gets:?}");
}

/// Three reads of `/roles`, one at a time (against a rate limit of one request every 3 s).
const THREE_READS: &str = "version: 1\nname: reads\nsteps:\n  - id: reads\n    name: Read the roles three times\n    action: http\n    foreach: \"[1, 2, 3]\"\n    with: {method: GET, path: /roles}\n";

/// Runs THREE_READS against `faults`; returns the arrival gaps after each 429 at `/roles`.
async fn gaps_after_429(faults: &[&str]) -> Vec<f64> {
    let mut config = SimConfig::default();
    for f in faults {
        config = config.with_fault(f).expect("fault spec");
    }
    let env = Env::with(config).await;
    let rb = env.runbook("reads.yaml", THREE_READS);
    let mut cmd = env.run_cmd(&rb);
    cmd.arg("--non-interactive");
    assert_code(&output(cmd).await, 0);
    let log: Vec<_> = env
        .sim
        .requests()
        .into_iter()
        .filter(|q| q.path == "/roles")
        .collect();
    assert_eq!(
        log.iter().filter(|q| q.status == Some(200)).count(),
        3,
        "every read got through in the end: {log:?}"
    );
    let mut gaps = Vec::new();
    for pair in log.windows(2) {
        if pair[0].status == Some(429) {
            let gap = pair[1].received_at.duration_since(pair[0].received_at);
            gaps.push(gap.as_secs_f64());
        }
    }
    assert!(!gaps.is_empty(), "the rate limit was hit: {log:?}");
    gaps
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_requests_wait_as_long_as_retry_after_says_in_seconds() {
    // One request every 3 s: Retry-After: 3. The client's own backoff after a first 429 would
    // be 0.5–1.5 s, so only honouring the header waits this long.
    let gaps = gaps_after_429(&["rate_limit=1/3s@GET /roles", "retry_after=seconds"]).await;
    assert!(gaps.iter().all(|g| *g >= 2.9), "{gaps:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_requests_wait_until_a_retry_after_http_date() {
    let gaps = gaps_after_429(&["rate_limit=1/3s@GET /roles", "retry_after=date"]).await;
    // An HTTP date has whole seconds: the wait ends at the second that date names.
    assert!(gaps.iter().all(|g| *g >= 2.0), "{gaps:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_requests_without_retry_after_still_back_off() {
    let gaps = gaps_after_429(&["rate_limit=1/3s@GET /roles"]).await;
    assert!(gaps.iter().all(|g| *g >= 0.5), "{gaps:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_create_is_sent_again_and_creates_exactly_once() {
    // 429 means ESUS did not process the request: even a create may be sent again.
    let env = Env::with(with("rate_limit=1/2s@POST /api-keys")).await;
    let rb = env.runbook(
        "create.yaml",
        "version: 1\nname: create\nsteps:\n  - id: create\n    name: Create two keys\n    action: api_keys.create\n    foreach: \"['contract-a', 'contract-b']\"\n    with: {name: \"{{ item }}\", scopes: [Patient.read]}\n    outputs:\n      id: response.id\n      secret: {value: response.secret, secret: true}\n",
    );
    let mut cmd = env.run_cmd(&rb);
    cmd.args(["--non-interactive", "--output", "json"]);
    assert_code(&output(cmd).await, 0);
    let posts: Vec<Option<u16>> = env
        .sim
        .requests()
        .iter()
        .filter(|q| q.method == "POST" && q.path == "/api-keys")
        .map(|q| q.status)
        .collect();
    assert!(posts.contains(&Some(429)), "{posts:?}");
    assert_eq!(
        posts.iter().filter(|s| **s == Some(201)).count(),
        2,
        "{posts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_error_shape_reaches_the_failure_reason() {
    for (shape, words) in [
        ("operation-outcome", "not-found"),
        ("error", "not found"),
        ("ok-reason", "not found"),
    ] {
        let env = Env::with(with(&format!("error_shape={shape}@GET /api-keys/{{id}}"))).await;
        let rb = env.runbook(
            "get.yaml",
            "version: 1\nname: get\nsteps:\n  - {id: get, name: Get, action: api_keys.get, with: {id: k-nope}}\n",
        );
        let mut cmd = env.run_cmd(&rb);
        cmd.args(["--non-interactive", "--output", "json"]);
        let out = output(cmd).await;
        assert_code(&out, 1);
        let report: Value = serde_json::from_slice(&out.stdout).expect("json");
        let reason = report["steps"][0]["reason"].as_str().unwrap_or_default();
        assert!(
            reason.starts_with("ESUS answered 404 (") && reason.to_lowercase().contains(words),
            "{shape}: {reason}"
        );
    }
}

const ROTATE_ONLY: &str = "version: 1
name: rotate-only
inputs:
  key_id: {type: string, required: true}
steps:
  - id: rotate
    name: Rotate with no grace
    action: api_keys.rotate
    with: {id: \"{{ inputs.key_id }}\", grace_hours: 0}
    outputs:
      new_key_id: response.id
      new_secret: {value: response.secret, secret: true}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotate_whose_answer_is_lost_leaves_no_orphan_active() {
    // The rotate happens, its answer (and the new secret) is lost. The replacement it made is
    // active and nobody holds its secret: it is revoked, and the approved rotate sent again.
    let env = Env::with(with("drop_count=1@POST /api-keys/{id}/rotate")).await;
    let key = env.sim.ready().key_id.clone();
    let name = env.sim.api_key(&key).expect("key").name;
    let rb = env.runbook("rotate.yaml", ROTATE_ONLY);
    let mut cmd = env.run_cmd(&rb);
    cmd.args([
        "--input",
        &format!("key_id={key}"),
        "--non-interactive",
        "--yes",
        "--output",
        "json",
    ]);
    let out = output(cmd).await;
    assert_code(&out, 0);
    let log = env.sim.requests();
    let original = format!("/api-keys/{key}/rotate");
    assert_eq!(
        log.iter()
            .filter(|q| q.method == "POST" && q.path == original)
            .count(),
        2,
        "the lost rotate and the one approved again, nothing of another key: {log:?}"
    );
    let deletes: Vec<&str> = log
        .iter()
        .filter(|q| q.method == "DELETE")
        .map(|q| q.path.as_str())
        .collect();
    assert_eq!(deletes.len(), 1, "the orphan was revoked: {log:?}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    let new_id = report["steps"][0]["outputs"]["new_key_id"]
        .as_str()
        .expect("new id")
        .to_string();
    let active: Vec<String> = env
        .sim
        .api_keys()
        .into_iter()
        .filter(|k| k.name == name && k.usable_now && k.id != key)
        .map(|k| k.id)
        .collect();
    assert_eq!(
        active,
        std::slice::from_ref(&new_id),
        "exactly one replacement, and it is ours"
    );
    assert!(deletes[0].ends_with(&format!("/api-keys/{}", {
        let orphan: Vec<String> = env
            .sim
            .api_keys()
            .into_iter()
            .filter(|k| k.name == name && k.deleted)
            .map(|k| k.id)
            .collect();
        orphan.first().cloned().unwrap_or_default()
    })));
    let secret = std::fs::read_to_string(env.run_dir().join("secrets/rotate.new_secret"))
        .expect("the secret we hold");
    assert!(secret.starts_with("sk_"), "a key secret");
    assert!(
        report["steps"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("answer (and the new secret) was lost")),
        "{report:#}"
    );
    // The revoke and the rotate again were approved, with one digest over both, and both were
    // sent under that approval.
    let records: Vec<Value> = std::fs::read_to_string(env.transcript())
        .expect("transcript")
        .lines()
        .map(|l| serde_json::from_str(l).expect("record"))
        .collect();
    let recovery = records
        .iter()
        .find(|r| {
            r["type"] == "confirmation"
                && r["data"]["covers"].as_array().is_some_and(|c| c.len() == 2)
        })
        .expect("a recovery approval covering two requests");
    let id = recovery["data"]["approval"].clone();
    let under: Vec<String> = records
        .iter()
        .filter(|r| {
            r["type"] == "request"
                && r["data"]["approvals"]
                    .as_array()
                    .is_some_and(|a| a.contains(&id))
                && r["seq"].as_u64() > recovery["seq"].as_u64()
        })
        .map(|r| {
            r["data"]["request"]["method"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(
        under,
        ["DELETE", "POST"],
        "the orphan revoked, the rotate sent again"
    );
}

/// Polls (bounded) until `cond` holds on the simulator's log; panics with `what` otherwise.
async fn until(env: &Env, what: &str, cond: impl Fn(&[esus_ir::sim::RecordedRequest]) -> bool) {
    for _ in 0..2000 {
        if cond(&env.sim.requests()) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    panic!("{what}: {:?}", env.sim.requests());
}

/// Three reads of `/roles` with no order between them: all in flight at once.
const THREE_PARALLEL: &str = "version: 1\nname: parallel-reads\nsteps:\n  - {id: a, name: A, action: roles.list, needs: []}\n  - {id: b, name: B, action: roles.list, needs: []}\n  - {id: c, name: C, action: roles.list, needs: []}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refreshed_mid_run() {
    // The three parallel reads are held at a barrier of four; while they are in flight the
    // token expires (the simulated clock moves past its 15 minutes); the test's own request is
    // the fourth and lets them go. All three meet a 401 together: one refresh serves them all.
    let env = Env::with(with("barrier=4@GET /roles")).await;
    let rb = env.runbook("parallel.yaml", THREE_PARALLEL);
    let mut cmd = env.run_cmd(&rb);
    cmd.env(
        "ESUS_REFRESH_TOKEN",
        env.sim.ready().admin_refresh_token.expose_secret(),
    )
    .args(["--non-interactive", "--output", "json"]);
    let run = tokio::spawn(output(cmd));
    until(&env, "three reads in flight", |log| {
        log.iter()
            .filter(|q| q.path == "/roles" && q.status.is_none())
            .count()
            == 3
    })
    .await;
    env.sim
        .advance_clock(std::time::Duration::from_secs(20 * 60));
    let release = crate::sim_support::client()
        .get(format!("{}/roles", env.sim.base_url()))
        .send()
        .await
        .expect("the simulator answers");
    assert_eq!(release.status(), 401, "the releasing request has no token");
    let out = run.await.expect("join");
    assert_code(&out, 0);
    let log: Vec<_> = env
        .sim
        .requests()
        .into_iter()
        .filter(|q| q.request_id.is_some())
        .collect();
    let roles: Vec<Option<u16>> = log
        .iter()
        .filter(|q| q.path == "/roles")
        .map(|q| q.status)
        .collect();
    assert_eq!(
        roles,
        [
            Some(401),
            Some(401),
            Some(401),
            Some(200),
            Some(200),
            Some(200)
        ],
        "all three refused with the expired token, then all three answered with the new one"
    );
    let refreshes: Vec<Option<u16>> = log
        .iter()
        .filter(|q| q.path == "/auth/refresh")
        .map(|q| q.status)
        .collect();
    assert_eq!(
        refreshes,
        [Some(200)],
        "exactly one refresh, shared by the three steps in flight"
    );
    let refresh_at = log
        .iter()
        .position(|q| q.path == "/auth/refresh")
        .unwrap_or_default();
    assert!(
        log[..refresh_at]
            .iter()
            .filter(|q| q.path == "/roles")
            .all(|q| q.status == Some(401))
            && log[refresh_at..]
                .iter()
                .filter(|q| q.path == "/roles")
                .all(|q| q.status == Some(200)),
        "the renewal came between the refusals and the retries: {log:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_expires_mid_run_without_refresh_stops_unattended_runs_with_exit_4() {
    // The replacement's create is held long enough for the test to move the simulated clock past
    // the token's 15 minutes: the preflight passed, the next request is refused.
    let env = Env::with(with("latency=1500ms@POST /api-keys")).await;
    let mut cmd = env.run_cmd("api-key-compromise");
    env.compromise_args(&mut cmd);
    cmd.args(["--yes", "--non-interactive"]);
    let run = tokio::spawn(output(cmd));
    let mut held = false;
    for _ in 0..200 {
        if env
            .sim
            .requests()
            .iter()
            .any(|q| q.method == "POST" && q.path == "/api-keys" && q.status.is_none())
        {
            held = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(held, "the create was seen in flight");
    env.sim
        .advance_clock(std::time::Duration::from_secs(20 * 60));
    let out = run.await.expect("join");
    assert_code(&out, 4);
    assert!(
        text(&out.stdout).contains("Renew the token and resume"),
        "{}",
        text(&out.stdout)
    );
    let (code, said) = verify(&env, &env.transcript());
    assert_eq!(code, 0, "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_branches_really_overlap() {
    let env = Env::with(with("barrier=2@GET /api-keys/{id}")).await;
    let rb = env.runbook(
        "parallel.yaml",
        "version: 1\nname: parallel\ninputs:\n  key_id: {type: string, required: true}\nsteps:\n  - {id: a, name: A, action: api_keys.get, needs: [], with: {id: \"{{ inputs.key_id }}\"}}\n  - {id: b, name: B, action: api_keys.get, needs: [], with: {id: \"{{ inputs.key_id }}\"}}\n",
    );
    let mut cmd = env.run_cmd(&rb);
    cmd.args([
        "--input",
        &format!("key_id={}", env.sim.ready().key_id),
        "--non-interactive",
    ]);
    assert_code(&output(cmd).await, 0);
    let held: Vec<Vec<String>> = env
        .sim
        .requests()
        .iter()
        .filter(|q| q.path.starts_with("/api-keys/"))
        .map(|q| q.faults.clone())
        .collect();
    assert_eq!(held.len(), 2, "{held:?}");
    assert!(
        held.iter()
            .all(|f| f.iter().any(|x| x == "barrier") && !f.iter().any(|x| x == "barrier-timeout")),
        "both were in flight together: {held:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreach_fans_out_with_its_concurrency_and_collects_outputs_in_order() {
    // Four are held until all four are in flight (at least four at once); every answer takes
    // 100 ms, so a fifth sent before one of them was answered would overlap (at most four).
    let env = Env::with(
        with("barrier=4@GET /api-keys/{id}")
            .with_fault("latency=100ms@GET /api-keys/{id}")
            .expect("fault spec"),
    )
    .await;
    let rb = env.runbook(
        "fanout.yaml",
        "version: 1\nname: fanout\nsteps:\n  - id: list\n    name: List keys\n    action: api_keys.list\n    outputs:\n      ids: response['items'] | map(attribute='id') | list\n  - id: each\n    name: Read each key\n    action: api_keys.get\n    foreach: steps.list.outputs.ids\n    concurrency: 4\n    with: {id: \"{{ item }}\"}\n    outputs:\n      ids: response.id\n",
    );
    let mut cmd = env.run_cmd(&rb);
    cmd.args(["--non-interactive", "--output", "json"]);
    let out = output(cmd).await;
    assert_code(&out, 0);
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    let listed = report["steps"][0]["outputs"]["ids"].clone();
    assert!(listed.as_array().is_some_and(|a| a.len() >= 4), "{listed}");
    assert_eq!(
        report["steps"][1]["outputs"]["ids"], listed,
        "outputs in item order"
    );
    let gets: Vec<_> = env
        .sim
        .requests()
        .into_iter()
        .filter(|q| q.method == "GET" && q.path.starts_with("/api-keys/"))
        .collect();
    assert_eq!(gets.len(), listed.as_array().map_or(0, Vec::len));
    assert!(
        gets.iter()
            .take(4)
            .all(|q| !q.faults.iter().any(|f| f == "barrier-timeout")),
        "four in flight at once: {gets:?}"
    );
    assert!(gets.len() > 4, "more items than the concurrency: {gets:?}");
    assert_eq!(
        most_in_flight(&gets),
        4,
        "never more than four in flight: {gets:?}"
    );
    let (code, said) = verify(&env, &env.transcript());
    assert_eq!(
        code, 0,
        "the batch approval digest and the chain verify: {said}"
    );
}

/// The most requests of `log` in flight at once (from arrival and finish times).
fn most_in_flight(log: &[esus_ir::sim::RecordedRequest]) -> usize {
    log.iter()
        .map(|q| {
            log.iter()
                .filter(|o| {
                    o.received_at <= q.received_at
                        && o.finished_at.is_none_or(|f| f > q.received_at)
                })
                .count()
        })
        .max()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_parallel_bounds_the_steps_in_flight() {
    // Two reads are held until both are in flight (at least two); each answer takes 100 ms, so a
    // third started before one was answered would overlap them (at most two).
    let env = Env::with(
        with("barrier=2@GET /roles")
            .with_fault("latency=100ms@GET /roles")
            .expect("fault spec"),
    )
    .await;
    let rb = env.runbook("parallel.yaml", THREE_PARALLEL);
    let mut cmd = env.run_cmd(&rb);
    cmd.args(["--non-interactive", "--max-parallel", "2"]);
    assert_code(&output(cmd).await, 0);
    let reads: Vec<_> = env
        .sim
        .requests()
        .into_iter()
        .filter(|q| q.path == "/roles")
        .collect();
    assert_eq!(reads.len(), 3, "{reads:?}");
    assert!(
        reads
            .iter()
            .take(2)
            .all(|q| q.faults.iter().any(|f| f == "barrier")),
        "two in flight at once: {reads:?}"
    );
    assert_eq!(most_in_flight(&reads), 2, "never three: {reads:?}");
}
