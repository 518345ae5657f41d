//! A hostile ESUS behind the cursor-paged audit search (`GET /v1/admin/audit/`): a cursor that
//! comes back, cursors that never end but bring nothing new, a "cursor" of megabytes. The pull
//! stops by itself in each case, keeps every row it read exactly once, and never claims the
//! evidence complete — only an answer without a next cursor ends a pull as complete.
//!
//! The server is an axum app on 127.0.0.1 answering `/auth/me` (a system administrator) and the
//! search; it stops after a bounded number of requests or when the test ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::run_support::{Env, assert_code, output, text};

/// The most requests one hostile server answers: beyond it, the test has already failed.
const MAX_REQUESTS: usize = 500;

#[derive(Clone, Copy)]
enum Mode {
    /// Page 2 hands back page 2's own cursor.
    Loop,
    /// Every page brings the same rows and a fresh cursor.
    Stall,
    /// The first page's cursor is 64 KiB.
    Huge,
    /// Two honest pages, then no cursor: the control case.
    Honest,
}

struct Hostile {
    mode: Mode,
    served: AtomicUsize,
}

fn row(n: usize) -> Value {
    json!({
        "id": format!("00000000-0000-4000-8000-{n:012}"),
        "type": "resource.read", "action": "R", "outcome": "success", "subtype": null,
        "outcomeDesc": null, "organizationId": "org-1",
        "agent": {"userId": "u-1", "ip": "203.0.113.66", "userAgent": "curl/8"},
        "entity": {"resourceType": "Patient", "resourceId": format!("p-{n}")},
        "recordedAt": format!("2026-12-01T10:{:02}:00Z", n % 60),
    })
}

async fn search(
    State(h): State<Arc<Hostile>>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Json<Value> {
    let n = h.served.fetch_add(1, Ordering::Relaxed);
    let cursor = q.get("cursor").cloned();
    let page =
        |rows: Vec<Value>, next: Option<String>| Json(json!({"events": rows, "nextCursor": next}));
    match (h.mode, cursor.as_deref()) {
        (_, None) => match h.mode {
            Mode::Huge => page(vec![row(1), row(2)], Some("c".repeat(64 * 1024))),
            _ => page(vec![row(1), row(2)], Some("c-2".into())),
        },
        (Mode::Loop, Some(_)) => page(vec![row(3)], Some("c-2".into())),
        (Mode::Stall, Some(_)) => page(vec![row(1), row(2)], Some(format!("c-{}", n + 3))),
        (Mode::Honest, Some(_)) => page(vec![row(3)], None),
        (Mode::Huge, Some(_)) => page(vec![row(9)], None),
    }
}

async fn me() -> Json<Value> {
    Json(json!({
        "id": "u-0", "email": "admin@hostile.example", "isActive": true, "isSystemAdmin": true,
        "firstName": null, "lastName": null, "avatarUrl": null, "activeOrganizationId": "org-1",
        "organizations": [{"organizationId": "org-1", "organizationName": "Hostile", "role": "admin",
            "roles": ["admin"], "permissions": [{"resource": "*", "action": "*"}]}]
    }))
}

/// Serves `mode` until `MAX_REQUESTS` or the returned handle is dropped (aborted).
async fn serve(mode: Mode) -> (String, Arc<Hostile>, tokio::task::JoinHandle<()>) {
    let h = Arc::new(Hostile {
        mode,
        served: AtomicUsize::new(0),
    });
    let app = Router::new()
        .route("/auth/me", get(me))
        .route("/v1/admin/audit/", get(search))
        .route("/v1/admin/audit", get(search))
        .with_state(h.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let watch = h.clone();
    let task = tokio::spawn(async move {
        let stop = async move {
            while watch.served.load(Ordering::Relaxed) < MAX_REQUESTS {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        };
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await;
    });
    (url, h, task)
}

const PULL: &str = "version: 1\nname: pull\nsteps:\n  - id: pull\n    name: The user's rows by cursor\n    action: audit.search\n    with: {user_id: u-1, limit: 2}\n    save: rows.json\n    outputs: {complete: response.complete}\n";

/// Runs the pull against `mode`; returns the saved evidence and the run's text. A pull that
/// cannot prove itself complete fails its step (exit 1); a complete one succeeds.
async fn pulled(mode: Mode) -> (Value, String, usize) {
    let env = Env::start().await;
    let (url, h, task) = serve(mode).await;
    let runbook = env.runbook("pull.yaml", PULL);
    let mut cmd = env.bare_cmd();
    cmd.env("ESUS_TOKEN", "hostile-test-token")
        .args(["run", &runbook, "--base-url", &url, "--run-dir"])
        .arg(env.run_dir())
        .args(["--yes", "--non-interactive"]);
    let out = output(cmd).await;
    task.abort();
    assert_code(&out, if matches!(mode, Mode::Honest) { 0 } else { 1 });
    let saved: Value = serde_json::from_slice(
        &std::fs::read(env.run_dir().join("evidence/rows.json")).expect("evidence"),
    )
    .expect("json");
    (saved, text(&out.stdout), h.served.load(Ordering::Relaxed))
}

fn ids(saved: &Value) -> Vec<String> {
    let mut ids: Vec<String> = saved["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["id"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_that_comes_back_is_a_loop_not_an_end() {
    let (saved, stdout, served) = pulled(Mode::Loop).await;
    assert_eq!(saved["complete"], false, "{stdout}");
    assert_eq!(ids(&saved).len(), 3, "every row read, once");
    assert!(
        stdout.contains("the audit evidence is NOT complete: ESUS gave a cursor already followed"),
        "{stdout}"
    );
    assert!(
        served <= 4,
        "it stopped at the repeated cursor: {served} pages"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursors_without_new_rows_are_a_stall_not_an_end() {
    let (saved, stdout, served) = pulled(Mode::Stall).await;
    assert_eq!(saved["complete"], false, "{stdout}");
    assert_eq!(ids(&saved).len(), 2, "the repeated rows kept once");
    assert!(stdout.contains("without a new row"), "{stdout}");
    assert!(served <= 6, "it stopped after a few empty pages: {served}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_of_megabytes_is_not_followed() {
    let (saved, stdout, served) = pulled(Mode::Huge).await;
    assert_eq!(saved["complete"], false, "{stdout}");
    assert_eq!(served, 1, "never sent back");
    assert!(stdout.contains("a cursor of 65536 characters"), "{stdout}");
    assert_eq!(ids(&saved).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_without_a_next_cursor_ends_the_pull_complete() {
    let (saved, stdout, served) = pulled(Mode::Honest).await;
    assert_eq!(saved["complete"], true, "{stdout}");
    assert_eq!(ids(&saved).len(), 3);
    assert_eq!(served, 2);
}
