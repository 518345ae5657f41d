//! Synthetic runs for the transcript tests: events emitted through the real writer, no executor.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};

use esus_ir::event::{
    ApprovalSource, Event, EventSink, RequestView, RunMode, RunOutcome, StepStatus,
};
use esus_ir::transcript::{Clock, Signer, TranscriptWriter, request_digest, sha256_hex};
use serde_json::{Map, Value, json};

/// The runbook text recorded in synthetic runs.
pub(crate) const RUNBOOK: &str = "name: api-key-compromise\nsteps:\n  - id: revoke-key\n";

/// The operator recorded in synthetic runs.
pub(crate) const OPERATOR: &str = "alice@example.org";

/// How a synthetic run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    Success,
    Declined,
    Failed,
    /// The executor emits run-finished with outcome interrupted.
    Interrupted,
    /// No run-finished at all: `finish()` must close the transcript.
    Killed,
}

/// A clock that starts at 2026-01-02T03:04:05Z and advances 250 ms per reading.
pub(crate) fn stepping_clock() -> Clock {
    let ms = AtomicI64::new(0);
    Box::new(move || {
        let start: jiff::Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
        let add = ms.fetch_add(250, Ordering::SeqCst);
        start + jiff::SignedDuration::from_millis(add)
    })
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn view(method: &str, url: &str, body: Option<Value>) -> RequestView {
    RequestView {
        method: method.into(),
        url: url.into(),
        headers: vec![("Authorization".into(), "[secret]".into())],
        body,
    }
}

/// The events of a synthetic run; `evidence` is the audit export's bytes, whose digest is recorded.
pub(crate) fn events(ending: Ending, runbook_name: &str, evidence: &[u8]) -> Vec<Event> {
    let base = "https://esus.example";
    let find = view("GET", &format!("{base}/v1/keys?label=ci"), None);
    let revoke = view(
        "DELETE",
        &format!("{base}/v1/keys/k-1"),
        Some(json!({"reason": "compromised"})),
    );
    let export = view("GET", &format!("{base}/v1/audit?key=k-1"), None);
    let mut ev = vec![
        Event::RunStarted {
            runbook_name: runbook_name.into(),
            runbook_sha256: sha256_hex(RUNBOOK.as_bytes()),
            runbook_text: RUNBOOK.into(),
            operator: OPERATOR.into(),
            host: "ir-laptop".into(),
            base_url: base.into(),
            mode: RunMode::Drill,
            inputs: obj(json!({"label": "ci", "token": "[secret]"})).into(),
            resumes: None,
            incident_id: None,
            resumes_file: None,
            chain_started_at: None,
            run_id: None,
            incident: None,
            evidence_recipients: Vec::new(),
        },
        Event::Plan {
            order: vec![
                "find-key".into(),
                "revoke-key".into(),
                "export-audit".into(),
            ],
            layers: vec![
                vec!["find-key".into()],
                vec!["revoke-key".into(), "export-audit".into()],
            ],
            destructive: vec!["revoke-key".into()],
            known_requests: vec![("find-key".into(), find.clone())],
            not_done: Vec::new(),
        },
    ];
    ev.extend(simple_step(
        "find-key",
        find,
        "r-1",
        Some(json!({"keys": [{"id": "k-1"}]})),
        None,
    ));
    ev.push(Event::StepStarted {
        step: "revoke-key".into(),
        items: None,
    });
    let approved = ending != Ending::Declined;
    ev.push(Event::Confirmation {
        step: "revoke-key".into(),
        approval: 1,
        prompt: "Revoke key k-1?".into(),
        request_sha256: request_digest(&revoke),
        approved,
        how: ApprovalSource::Interactive,
        covers: vec![esus_ir::event::Covered {
            item: None,
            request_sha256: request_digest(&revoke),
        }],
    });
    if !approved {
        ev.push(finished(
            "revoke-key",
            StepStatus::Declined,
            Some("declined by the operator"),
        ));
        ev.push(Event::RunFinished {
            outcome: RunOutcome::Declined,
            exit_code: 3,
        });
        return ev;
    }
    ev.push(request("revoke-key", revoke, "r-2"));
    match ending {
        Ending::Interrupted | Ending::Killed => {
            if ending == Ending::Interrupted {
                ev.push(Event::RunFinished {
                    outcome: RunOutcome::Interrupted,
                    exit_code: 130,
                });
            }
            return ev;
        }
        Ending::Failed => {
            ev.push(response("revoke-key", "r-2", 500, None, None));
            ev.push(finished("revoke-key", StepStatus::Failed, Some("HTTP 500")));
            ev.push(Event::RunFinished {
                outcome: RunOutcome::Failed,
                exit_code: 1,
            });
            return ev;
        }
        _ => {}
    }
    ev.push(response("revoke-key", "r-2", 204, None, None));
    ev.push(finished("revoke-key", StepStatus::Ok, None));
    let evidence_ref = esus_ir::event::EvidenceRef {
        file: "export-audit/audit.json".into(),
        sha256: sha256_hex(evidence),
    };
    ev.extend(simple_step(
        "export-audit",
        export,
        "r-3",
        None,
        Some(evidence_ref),
    ));
    ev.push(Event::RunFinished {
        outcome: RunOutcome::Success,
        exit_code: 0,
    });
    ev
}

fn simple_step(
    step: &str,
    req: RequestView,
    id: &str,
    body: Option<Value>,
    evidence: Option<esus_ir::event::EvidenceRef>,
) -> Vec<Event> {
    vec![
        Event::StepStarted {
            step: step.into(),
            items: None,
        },
        request(step, req, id),
        response(step, id, 200, body, evidence),
        finished(step, StepStatus::Ok, None),
    ]
}

fn request(step: &str, request: RequestView, id: &str) -> Event {
    Event::Request {
        step: step.into(),
        item: None,
        // The fixture's only approval is number 1, for the revoke.
        approvals: if step == "revoke-key" {
            vec![1]
        } else {
            Vec::new()
        },
        probe: false,
        attempt: 1,
        request_id: id.into(),
        request,
    }
}

fn response(
    step: &str,
    id: &str,
    status: u16,
    body: Option<Value>,
    evidence: Option<esus_ir::event::EvidenceRef>,
) -> Event {
    Event::Response {
        step: step.into(),
        request_id: id.into(),
        status: Some(status),
        duration_ms: 42,
        body_sha256: Some(sha256_hex(b"body")),
        body,
        evidence,
        error: None,
    }
}

fn finished(step: &str, status: StepStatus, reason: Option<&str>) -> Event {
    let outputs = if step == "find-key" {
        obj(json!({"key_id": "k-1"}))
    } else {
        Map::new()
    };
    Event::StepFinished {
        step: step.into(),
        status,
        reason: reason.map(str::to_string),
        outputs,
        duration_ms: 250,
        finding: None,
        expected: None,
        secret_files: Vec::new(),
        evidence: Vec::new(),
    }
}

/// The audit export written to the evidence folder of synthetic runs.
pub(crate) const AUDIT: &[u8] = b"[{\"actor\":\"k-1\",\"action\":\"read\"}]\n";

/// Writes a synthetic run into `<dir>/transcript.jsonl` (+ `.sig`, + evidence) and returns the
/// transcript's path and the signer's public key.
pub(crate) fn write_run(dir: &Path, ending: Ending) -> (PathBuf, String) {
    write_run_named(
        dir,
        ending,
        "api-key-compromise",
        Signer::generate("test").unwrap(),
    )
}

/// [`write_run`] with a chosen runbook name and signer.
pub(crate) fn write_run_named(
    dir: &Path,
    ending: Ending,
    name: &str,
    signer: Signer,
) -> (PathBuf, String) {
    let path = dir.join("transcript.jsonl");
    let public = signer.public_key_openssh();
    let writer = TranscriptWriter::create(&path, signer)
        .unwrap()
        .with_clock(stepping_clock());
    for event in events(ending, name, AUDIT) {
        writer.emit(&event).unwrap();
    }
    let evidence = dir.join("evidence/export-audit");
    std::fs::create_dir_all(&evidence).unwrap();
    std::fs::write(evidence.join("audit.json"), AUDIT).unwrap();
    writer.finish().unwrap();
    (path, public)
}

/// Rewrites a transcript's records with `edit`, recomputing every hash (and run-finished's head)
/// and re-signing with `signer`: a forger who holds the key. Only structural checks can catch it.
pub(crate) fn forge(
    path: &Path,
    signer: &Signer,
    edit: impl FnMut(&mut Vec<esus_ir::transcript::Record>),
) {
    rechain(path, Some(signer), edit);
    resign(path, signer);
}

/// Rewrites a transcript's records with `edit`, recomputing every hash but keeping the old
/// checkpoints and signing nothing: a forger without the key.
pub(crate) fn forge_unsigned(path: &Path, edit: impl FnMut(&mut Vec<esus_ir::transcript::Record>)) {
    rechain(path, None, edit);
}

fn rechain(
    path: &Path,
    signer: Option<&Signer>,
    mut edit: impl FnMut(&mut Vec<esus_ir::transcript::Record>),
) {
    use esus_ir::transcript::{GENESIS_PREV, Record};
    let mut records = esus_ir::transcript::read_transcript(path).unwrap();
    edit(&mut records);
    let mut prev = GENESIS_PREV.to_string();
    let mut text = String::new();
    let mut run_id = String::new();
    for (i, r) in records.iter().enumerate() {
        let mut data = r.data.clone();
        if r.kind == "run-finished" {
            data.insert("head".into(), prev.clone().into());
        }
        if let Some(signer) = signer.filter(|_| r.kind == esus_ir::transcript::checkpoint::KIND) {
            // The key holder signs every checkpoint again, over the new chain.
            let message = esus_ir::transcript::checkpoint::message(i as u64, &prev, &run_id);
            data.insert("covers".into(), (i as u64).into());
            data.insert("head".into(), prev.clone().into());
            data.insert("run_id".into(), run_id.clone().into());
            data.insert("signature".into(), signer.sign(&message).unwrap().into());
        }
        let rec = Record::new(i as u64, r.ts.clone(), r.kind.clone(), data, prev.clone());
        text.push_str(&rec.to_line());
        text.push('\n');
        if i == 0 {
            run_id = rec.hash.clone();
        }
        prev = rec.hash;
    }
    std::fs::write(path, &text).unwrap();
}

/// Replaces `<path>.sig` with a signature by `signer` over the file as it is now.
pub(crate) fn resign(path: &Path, signer: &Signer) {
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(
        esus_ir::transcript::signature_path(path),
        signer.sign(&bytes).unwrap(),
    )
    .unwrap();
}

/// Two handles on one new key (the writer consumes one; forging tests re-sign with the other).
pub(crate) fn signer_pair(dir: &Path) -> (Signer, Signer) {
    let key = dir.join("keys/signer");
    Signer::generate("test")
        .unwrap()
        .write_key_files(&key, false)
        .unwrap();
    (
        Signer::load(&key, None).unwrap(),
        Signer::load(&key, None).unwrap(),
    )
}
