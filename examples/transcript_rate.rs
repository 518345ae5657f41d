//! The transcript on its own (issue 21, target 6): how many records a second the writer chains,
//! hashes, signs at its checkpoints and writes, with no network in the way — the records a
//! fan-out writes per item (request, response, item-finished), emitted from THREADS threads at
//! once as a fan-out's runtime threads emit them.
//!
//! `transcript_rate ITEMS THREADS`: writes ITEMS items' records (3 × ITEMS, plus the writer's
//! checkpoints) to a transcript in a fresh temporary folder, finishes it (the final signature),
//! and prints `records N, seconds S, records/s R, bytes B`. `bench/run.sh` calls it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use esus_ir::event::{Event, EventSink, RequestView, RunMode, StepStatus};
use esus_ir::transcript::{Signer, TranscriptWriter};

/// The allocator the esus-ir binary runs with (src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// More would only measure the disk.
const MAX_ITEMS: usize = 10_000_000;

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("transcript_rate: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [items, threads] = args.as_slice() else {
        return Err("usage: transcript_rate ITEMS THREADS".into());
    };
    let items: usize = items.parse().map_err(|e| format!("ITEMS `{items}`: {e}"))?;
    let threads: usize = threads
        .parse()
        .map_err(|e| format!("THREADS `{threads}`: {e}"))?;
    if items == 0 || items > MAX_ITEMS || threads == 0 || threads > 64 {
        return Err(format!("ITEMS must be 1–{MAX_ITEMS} and THREADS 1–64"));
    }
    let dir = tempfile::tempdir().map_err(|e| format!("temporary folder: {e}"))?;
    let path = dir.path().join("transcript.jsonl");
    let signer = Signer::generate("transcript-rate").map_err(|e| e.to_string())?;
    let writer = TranscriptWriter::create(&path, signer).map_err(|e| e.to_string())?;
    writer
        .emit(&run_started())
        .map_err(|e| format!("run-started: {e}"))?;
    let next = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= items {
                        break;
                    }
                    if item(&writer, k).is_err() {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    writer.finish().map_err(|e| e.to_string())?;
    let took = started.elapsed().as_secs_f64();
    if failed.load(Ordering::Relaxed) > 0 {
        return Err(format!(
            "{} items could not be recorded",
            failed.load(Ordering::Relaxed)
        ));
    }
    let text = std::fs::read(&path).map_err(|e| e.to_string())?;
    let records = text.iter().filter(|&&b| b == b'\n').count();
    let bytes = text.len();
    println!(
        "records {records}, seconds {took:.3}, records/s {:.0}, bytes {bytes}",
        records as f64 / took
    );
    Ok(())
}

/// One fan-out item's records, shaped as a `DELETE /api-keys/{id}` item's are.
fn item(writer: &TranscriptWriter, k: usize) -> std::io::Result<()> {
    let request_id = uuid::Uuid::new_v4().to_string();
    writer.emit(&Event::Request {
        step: "delete".into(),
        item: Some(k),
        approvals: vec![1],
        probe: false,
        attempt: 1,
        request_id: request_id.clone(),
        request: RequestView {
            method: "DELETE".into(),
            url: format!("http://127.0.0.1:40000/api-keys/gen-key-{:05}", k + 1),
            headers: vec![("Authorization".into(), "Bearer [secret]".into())],
            body: None,
        },
    })?;
    writer.emit(&Event::Response {
        step: "delete".into(),
        request_id,
        status: Some(204),
        duration_ms: 1,
        body_sha256: Some(esus_ir::transcript::sha256_hex(b"")),
        body: None,
        evidence: None,
        error: None,
    })?;
    writer.emit(&Event::ItemFinished {
        step: "delete".into(),
        item: k,
        status: StepStatus::Ok,
        reason: None,
        outputs: serde_json::Map::new(),
        secret_files: vec![],
    })
}

fn run_started() -> Event {
    Event::RunStarted {
        runbook_name: "transcript-rate".into(),
        runbook_sha256: esus_ir::transcript::sha256_hex(b"transcript-rate"),
        runbook_text: "transcript-rate".into(),
        operator: "bench".into(),
        host: "bench".into(),
        base_url: "http://127.0.0.1:40000/".into(),
        mode: RunMode::Live,
        inputs: serde_json::Map::new().into(),
        resumes: None,
        incident_id: None,
        resumes_file: None,
        chain_started_at: None,
        run_id: None,
        incident: None,
        evidence_recipients: Vec::new(),
    }
}
