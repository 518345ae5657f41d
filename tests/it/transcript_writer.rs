//! The writer: file modes, ordering rules, idempotent finish, reopening a killed run, the
//! per-user key, and nothing secret of its own in the transcript.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;

use esus_ir::event::{Event, EventSink, RunOutcome};
use esus_ir::transcript::{
    Signer, TranscriptWriter, VerifyOptions, read_transcript, signature_path, summarize,
    verify_transcript,
};

use crate::transcript_support::{AUDIT, Ending, events, signer_pair, stepping_clock, write_run};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn files_are_private_and_created_folders_are_0700() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("runs/r1");
    let (path, _) = write_run(&run_dir, Ending::Success);
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&signature_path(&path)), 0o600);
    assert_eq!(mode(&run_dir), 0o700);
    assert_eq!(mode(&dir.path().join("runs")), 0o700);
}

#[test]
fn an_existing_transcript_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_run(dir.path(), Ending::Success);
    let err = TranscriptWriter::create(&path, Signer::generate("t").unwrap()).unwrap_err();
    assert!(err.to_string().contains("creating"), "{err}");
}

#[test]
fn events_out_of_order_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    let writer = TranscriptWriter::create(&path, Signer::generate("t").unwrap()).unwrap();
    let all = events(Ending::Success, "rb", AUDIT);
    assert!(writer.emit(&all[1]).is_err(), "plan before run-started");
    writer.emit(&all[0]).unwrap();
    assert!(writer.emit(&all[0]).is_err(), "run-started twice");
    let finished = Event::RunFinished {
        outcome: RunOutcome::Success,
        exit_code: 0,
    };
    writer.emit(&finished).unwrap();
    assert!(writer.emit(&all[1]).is_err(), "after run-finished");
    let sig = writer.finish().unwrap();
    let first = std::fs::read(&sig).unwrap();
    assert_eq!(writer.finish().unwrap(), sig);
    assert_eq!(std::fs::read(&sig).unwrap(), first, "finish is idempotent");
}

#[test]
fn dropping_an_unfinished_writer_still_leaves_a_signed_transcript() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    {
        let writer = TranscriptWriter::create(&path, Signer::generate("t").unwrap())
            .unwrap()
            .with_clock(stepping_clock());
        for e in events(Ending::Killed, "rb", AUDIT) {
            writer.emit(&e).unwrap();
        }
    }
    let v = verify_transcript(&path, &VerifyOptions::default()).unwrap();
    assert!(v.ok, "{:#?}", v.problems);
    assert_eq!(v.outcome.as_deref(), Some("interrupted"));
}

#[test]
fn a_killed_runs_transcript_is_an_intact_prefix_and_can_be_closed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    let (first, second) = signer_pair(dir.path());
    let writer = TranscriptWriter::create(&path, first).unwrap();
    for e in events(Ending::Killed, "rb", AUDIT) {
        writer.emit(&e).unwrap();
    }
    // Simulate SIGKILL: the writer never gets to finish.
    std::mem::forget(writer);

    let v = verify_transcript(&path, &VerifyOptions::default()).unwrap();
    assert!(!v.ok);
    assert!(v.is_intact_prefix(), "{:#?}", v.problems);

    let summary = summarize(&read_transcript(&path).unwrap());
    assert_eq!(summary.steps["find-key"].status, "ok");
    assert_eq!(summary.steps["find-key"].outputs["key_id"], "k-1");
    assert!(!summary.steps.contains_key("revoke-key"));
    assert_eq!(summary.unknown_outcome.len(), 1);
    let pending = &summary.unknown_outcome[0];
    assert_eq!(
        (pending.step.as_str(), pending.method.as_str()),
        ("revoke-key", "DELETE")
    );
    assert!(pending.confirmed);
    assert_eq!(summary.outcome, None);

    let reopened = TranscriptWriter::reopen(&path, second).unwrap();
    reopened.finish().unwrap();
    let v = verify_transcript(&path, &VerifyOptions::default()).unwrap();
    assert!(v.ok, "{:#?}", v.problems);
    assert_eq!(v.outcome.as_deref(), Some("interrupted"));
    let records = read_transcript(&path).unwrap();
    assert_eq!(
        summarize(&records).last_hash.as_deref(),
        Some(records.last().unwrap().hash.as_str())
    );
}

#[test]
fn summary_of_a_finished_run() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_run(dir.path(), Ending::Success);
    let s = summarize(&read_transcript(&path).unwrap());
    assert_eq!(s.runbook_name.as_deref(), Some("api-key-compromise"));
    assert_eq!(s.outcome.as_deref(), Some("success"));
    assert_eq!(s.steps.len(), 3);
    assert!(s.unknown_outcome.is_empty());
}

#[test]
fn the_writer_adds_nothing_secret() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    Signer::generate("t")
        .unwrap()
        .write_key_files(&key, false)
        .unwrap();
    let pem = std::fs::read_to_string(&key).unwrap();
    let signer = Signer::load(&key, None).unwrap();
    let (path, _) =
        crate::transcript_support::write_run_named(dir.path(), Ending::Success, "rb", signer);
    let text = std::fs::read_to_string(&path).unwrap()
        + &std::fs::read_to_string(signature_path(&path)).unwrap();
    assert!(!text.contains("PRIVATE KEY"));
    // No run of the private key's base64 body, however short a piece, appears.
    for line in pem.lines().filter(|l| !l.starts_with("-----")) {
        for chunk in line.as_bytes().chunks(24).filter(|c| c.len() == 24) {
            assert!(!text.contains(std::str::from_utf8(chunk).unwrap()));
        }
    }
}

#[test]
fn the_default_key_is_created_once_with_private_modes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config/esus-ir/transcript_ed25519");
    let (signer, created) = Signer::load_or_create(&path, None).unwrap();
    let created = created.unwrap();
    assert_eq!(created.public_key, signer.public_key_openssh());
    // The message carries the key's whole allowed_signers line, not the bare key.
    let line = esus_ir::transcript::allowed_signers_line(
        &esus_ir::transcript::default_operator(),
        &created.public_key,
    );
    assert!(created.to_string().ends_with(&format!("\n{line}")));
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&dir.path().join("config/esus-ir")), 0o700);
    assert!(
        dir.path()
            .join("config/esus-ir/transcript_ed25519.pub")
            .exists()
    );
    let (again, created) = Signer::load_or_create(&path, None).unwrap();
    assert!(created.is_none());
    assert_eq!(again.public_key_openssh(), signer.public_key_openssh());
}

#[test]
fn a_killed_runs_prefix_is_signed_up_to_its_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    let writer = TranscriptWriter::create(&path, Signer::generate("k").unwrap()).unwrap();
    for e in events(Ending::Killed, "rb", AUDIT) {
        writer.emit(&e).unwrap();
    }
    std::mem::forget(writer);
    let records = read_transcript(&path).unwrap();
    // Every unit of work is followed by a checkpoint over the chain head before it.
    for (i, r) in records.iter().enumerate() {
        if ["plan", "confirmation", "step-finished"].contains(&r.kind.as_str()) {
            let next = &records[i + 1];
            assert_eq!(next.kind, "checkpoint", "after {}", r.kind);
            assert_eq!(next.str_field("head"), Some(r.hash.as_str()));
            assert_eq!(next.data["covers"], serde_json::json!(i + 1));
            assert_eq!(next.str_field("run_id"), Some(records[0].hash.as_str()));
        }
    }
    // The last record is the revoke request, sent after the confirmation's checkpoint.
    let last_cp = records
        .iter()
        .rposition(|r| r.kind == "checkpoint")
        .unwrap();
    assert_eq!(records.last().unwrap().kind, "request");
    let v = verify_transcript(&path, &VerifyOptions::default()).unwrap();
    assert!(v.is_intact_prefix(), "{:#?}", v.problems);
    assert!(!v.complete);
    assert_eq!(v.checkpoints.valid, v.checkpoints.count);
    assert_eq!(v.checkpoints.last_valid_seq, Some(last_cp as u64));
    assert_eq!(v.signed_records, last_cp);
    assert_eq!(
        records.len() - last_cp - 1,
        1,
        "one record after it is unsigned"
    );
}

/// Emits `n` items of a fan-out (a request and an item-finished each) after the run's start and
/// a batch confirmation, sleeping `pause` before each item; returns the transcript's path.
fn fan_out_transcript(
    dir: &std::path::Path,
    n: usize,
    pause: std::time::Duration,
) -> std::path::PathBuf {
    use esus_ir::event::{Covered, RequestView, StepStatus};
    let path = dir.join("t.jsonl");
    let writer = started(&path);
    let view = |k: usize| RequestView {
        method: "POST".into(),
        url: format!("https://e/api-keys/k-{k}/rotate"),
        headers: vec![],
        body: None,
    };
    writer
        .emit(&Event::Confirmation {
            step: "rotate".into(),
            approval: 1,
            prompt: "?".into(),
            request_sha256: String::new(),
            approved: true,
            how: esus_ir::event::ApprovalSource::AssumeYes,
            covers: (0..n)
                .map(|k| Covered {
                    item: Some(k),
                    request_sha256: esus_ir::transcript::request_digest(&view(k)),
                })
                .collect(),
        })
        .unwrap();
    for k in 0..n {
        std::thread::sleep(pause);
        writer
            .emit(&Event::Request {
                step: "rotate".into(),
                item: Some(k),
                approvals: vec![1],
                probe: false,
                attempt: 1,
                request_id: format!("r-{k}"),
                request: view(k),
            })
            .unwrap();
        writer
            .emit(&Event::ItemFinished {
                step: "rotate".into(),
                item: k,
                status: StepStatus::Ok,
                reason: None,
                outputs: serde_json::Map::new(),
                secret_files: vec![],
            })
            .unwrap();
    }
    // Killed: no final signature, only the checkpoints vouch for the records.
    std::mem::forget(writer);
    path
}

#[test]
fn a_fast_fan_out_is_signed_at_least_every_1024_records_not_item_by_item() {
    let dir = tempfile::tempdir().unwrap();
    let path = fan_out_transcript(dir.path(), 1500, std::time::Duration::ZERO);
    let records = read_transcript(&path).unwrap();
    let cps: Vec<usize> = records
        .iter()
        .enumerate()
        .filter(|(_, r)| r.kind == "checkpoint")
        .map(|(i, _)| i)
        .collect();
    // No run of more than 1,024 records goes unsigned, however fast they come…
    for pair in cps.windows(2) {
        assert!(
            pair[1] - pair[0] - 1 <= 1024,
            "{} unsigned records in a row",
            pair[1] - pair[0] - 1
        );
    }
    assert!(records.len() - cps.last().unwrap() - 1 <= 1024);
    // …and the 3,000 item records are not signed every few items (a signature costs about what
    // a request does). Well above what the 200 ms rule adds on a loaded machine.
    assert!(cps.len() >= 3000 / 1024, "{}", cps.len());
    assert!(cps.len() < 60, "{} checkpoints for 1,500 items", cps.len());
    let v = verify_transcript(&path, &VerifyOptions::default()).unwrap();
    assert_eq!(v.checkpoints.valid, v.checkpoints.count);
    assert_eq!(v.signed_records, *cps.last().unwrap());
}

#[test]
fn a_slow_fan_out_is_signed_once_200_ms_have_passed_whatever_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = fan_out_transcript(dir.path(), 3, std::time::Duration::from_millis(250));
    let records = read_transcript(&path).unwrap();
    let kinds: Vec<&str> = records.iter().map(|r| r.kind.as_str()).collect();
    // Each request comes 250 ms after the last checkpoint: signed at once, before it is sent;
    // its item-finished follows within microseconds and waits for the next one.
    let tail: Vec<&str> = kinds[kinds.len() - 9..].to_vec();
    assert_eq!(
        tail,
        [
            "request",
            "checkpoint",
            "item-finished",
            "request",
            "checkpoint",
            "item-finished",
            "request",
            "checkpoint",
            "item-finished"
        ],
        "{kinds:?}"
    );
    let v = verify_transcript(&path, &VerifyOptions::default()).unwrap();
    assert_eq!(v.checkpoints.valid, v.checkpoints.count);
    // Signed: every record before the last checkpoint; after it only the last item-finished.
    assert_eq!(v.signed_records + 2, v.events);
}

#[test]
fn records_emitted_from_many_threads_are_all_on_disk_in_order_when_their_emitters_return() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    let writer = started(&path);
    // Rounds of items from 8 threads at once; at the end of each round every emitter has
    // returned and `finish` has not run: nothing may still be queued in memory (an answer left
    // to a write in progress is written by that writer before it stops).
    let (threads, per_thread, rounds) = (8usize, 4usize, 40usize);
    let mut emitted = 0;
    let mut on_disk = Vec::new();
    for round in 0..rounds {
        std::thread::scope(|s| {
            for t in 0..threads {
                let writer = &writer;
                s.spawn(move || {
                    for j in 0..per_thread {
                        let k = (round * threads + t) * per_thread + j;
                        emit_item(writer, k);
                    }
                });
            }
        });
        emitted += threads * per_thread;
        on_disk = read_transcript(&path).unwrap();
        let items = on_disk.iter().filter(|r| r.kind == "item-finished").count();
        assert_eq!(items, emitted, "round {round}");
    }
    // Each item's request, answer and end are in that order.
    let position = |kind: &str, key: &str, value: serde_json::Value| {
        on_disk
            .iter()
            .position(|r| r.kind == kind && r.data.get(key) == Some(&value))
            .unwrap()
    };
    for k in 0..emitted {
        let request = position("request", "item", k.into());
        let response = position("response", "request_id", format!("r-{k}").into());
        let finished = position("item-finished", "item", k.into());
        assert!(request < response && response < finished, "item {k}");
    }
    writer.finish().unwrap();
    let v = verify_transcript(&path, &VerifyOptions::default()).unwrap();
    assert!(v.ok, "{:#?}", v.problems);
}

/// A writer at `path` with the run's start and its plan written: ready for a step's records.
fn started(path: &std::path::Path) -> TranscriptWriter {
    let writer = TranscriptWriter::create(path, Signer::generate("k").unwrap()).unwrap();
    let mut ev = events(Ending::Killed, "rb", AUDIT);
    ev.truncate(2);
    for e in &ev {
        writer.emit(e).unwrap();
    }
    writer
}

/// A fan-out item's three records, as a run emits them (a read: it needs no approval).
fn emit_item(writer: &TranscriptWriter, k: usize) {
    use esus_ir::event::{RequestView, StepStatus};
    let request_id = format!("r-{k}");
    writer
        .emit(&Event::Request {
            step: "rotate".into(),
            item: Some(k),
            approvals: vec![],
            probe: false,
            attempt: 1,
            request_id: request_id.clone(),
            request: RequestView {
                method: "GET".into(),
                url: format!("https://e/api-keys/k-{k}"),
                headers: vec![],
                body: None,
            },
        })
        .unwrap();
    writer
        .emit(&Event::Response {
            step: "rotate".into(),
            request_id,
            status: Some(200),
            duration_ms: 1,
            body_sha256: None,
            body: None,
            evidence: None,
            error: None,
        })
        .unwrap();
    writer
        .emit(&Event::ItemFinished {
            step: "rotate".into(),
            item: k,
            status: StepStatus::Ok,
            reason: None,
            outputs: serde_json::Map::new(),
            secret_files: vec![],
        })
        .unwrap();
}

/// A batch approval of 20,000 requests is a record of about 2 MB: its line is made in its own
/// buffer, behind whatever is queued. It must be the same line, chained and verifiable.
#[test]
fn a_megabyte_approval_record_is_written_whole_and_verifies() {
    use esus_ir::event::{ApprovalSource, Covered};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    let writer = started(&path);
    let covers: Vec<Covered> = (0..20_000)
        .map(|k| Covered {
            item: Some(k),
            request_sha256: esus_ir::transcript::sha256_hex(format!("request {k}").as_bytes()),
        })
        .collect();
    let joined: String = covers.iter().map(|c| c.request_sha256.as_str()).collect();
    // Items from other threads meanwhile: their lines are queued when a big one is made, and
    // must stay in front of it.
    let approvals = 2u64;
    let done = std::sync::atomic::AtomicBool::new(false);
    let emitted = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..4 {
            let (writer, done, emitted) = (&writer, &done, &emitted);
            s.spawn(move || {
                let mut j = 0;
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    emit_item(writer, t * 1_000_000 + j);
                    emitted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    j += 1;
                }
            });
        }
        for approval in 1..=approvals {
            writer
                .emit(&Event::Confirmation {
                    step: "rotate".into(),
                    approval,
                    prompt: "Delete 20000 keys?".into(),
                    request_sha256: esus_ir::transcript::sha256_hex(joined.as_bytes()),
                    approved: false,
                    how: ApprovalSource::AssumeYes,
                    covers: covers.clone(),
                })
                .unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    writer.finish().unwrap();
    let records = read_transcript(&path).unwrap();
    let items = records.iter().filter(|r| r.kind == "item-finished").count();
    assert_eq!(
        items,
        emitted.into_inner(),
        "no line queued before a big one is lost"
    );
    let written: Vec<_> = records
        .iter()
        .filter(|r| r.kind == "confirmation")
        .collect();
    assert_eq!(written.len() as u64, approvals);
    let listed = written[0].data["covers"].as_array().unwrap();
    assert_eq!(listed.len(), 20_000);
    assert_eq!(
        listed[19_999]["request_sha256"],
        covers[19_999].request_sha256
    );
    assert!(
        std::fs::metadata(&path).unwrap().len() > 1 << 20,
        "the record is over a megabyte: its line is made in its own buffer"
    );
    let v = verify_transcript(&path, &VerifyOptions::default()).unwrap();
    assert!(v.ok, "{:#?}", v.problems);
    assert_eq!(v.events, records.len());
}
