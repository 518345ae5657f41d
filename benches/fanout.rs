//! Fan-out speed: an esus-ir `foreach` over N keys against the simulator, compared with a bare
//! reqwest client sending the same GETs at the same concurrency. The goal (README, issue 4): the
//! executor within ~15 % of the bare client, memory flat in N.
//!
//! `cargo bench --bench fanout -- [N] [CONCURRENCY...]` (defaults: 2000 items, 8 and 32).
//! `BENCH_LATENCY_MS=20` adds that latency to every simulator answer, like a network would.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use secrecy::{ExposeSecret, SecretString};

use esus_ir::esus::client::{ClientConfig, EsusClient};
use esus_ir::event::RunMode;
use esus_ir::exec::approval::{ApprovalPolicy, NeverPrompt};
use esus_ir::exec::evidence::Folders;
use esus_ir::exec::executor::{self, RunMeta, RunOptions};
use esus_ir::exec::progress::NoProgress;
use esus_ir::exec::shared::{Interrupt, Parts, Shared};
use esus_ir::exec::token::OperatorToken;
use esus_ir::plan::inputs::{self, InputSources};
use esus_ir::sim::{SimConfig, Simulator};
use esus_ir::transcript::{Signer, TranscriptWriter};

fn runbook(concurrency: usize) -> String {
    format!(
        "version: 1\nname: fanout\ninputs:\n  ids: {{type: list, required: true}}\nsteps:\n  - id: each\n    name: Read each key\n    action: api_keys.get\n    foreach: inputs.ids\n    concurrency: {concurrency}\n    with: {{id: \"{{{{ item }}}}\"}}\n"
    )
}

async fn bare(base: &str, token: &SecretString, ids: &[String], concurrency: usize) -> Duration {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .expect("client");
    let started = Instant::now();
    let ok = futures::stream::iter(ids.iter())
        .map(|id| {
            let req = client
                .get(format!("{base}/api-keys/{id}"))
                .bearer_auth(token.expose_secret())
                .header("X-Request-Id", uuid::Uuid::new_v4().to_string());
            async move {
                match req.send().await {
                    Ok(r) => r.bytes().await.is_ok(),
                    Err(_) => false,
                }
            }
        })
        .buffer_unordered(concurrency)
        .filter(|ok| futures::future::ready(*ok))
        .count()
        .await;
    assert_eq!(ok, ids.len(), "every bare request succeeded");
    started.elapsed()
}

async fn esus_ir(
    base: &str,
    token: &SecretString,
    ids: &[String],
    concurrency: usize,
    dir: &std::path::Path,
    transcript: bool,
) -> Duration {
    let text = runbook(concurrency);
    let valid = Arc::new(esus_ir::runbook::load("fanout", &text, false).expect("valid runbook"));
    let sources = InputSources {
        given: vec![("ids".into(), serde_json::to_string(ids).expect("json"))],
        ..InputSources::default()
    };
    let inputs = inputs::resolve(&valid.runbook, &sources).expect("inputs");
    let run_dir = dir.join(format!("run-{concurrency}-{}", uuid::Uuid::new_v4()));
    let folders = Folders {
        seal: None,
        evidence: run_dir.join("evidence"),
        secrets: run_dir.join("secrets"),
    };
    folders.create().expect("folders");
    let writer = Arc::new(
        TranscriptWriter::create(
            run_dir.join("transcript.jsonl"),
            Signer::generate("bench").expect("key"),
        )
        .expect("writer"),
    );
    let client = EsusClient::new(&ClientConfig::new(base)).expect("client");
    let (_handle, interrupt) = Interrupt::new();
    let sink: Arc<dyn esus_ir::event::EventSink> = if transcript {
        writer.clone()
    } else {
        Arc::new(Null)
    };
    let planner = esus_ir::plan::Planner::new(valid, client.base().clone(), 0, "bench");
    let shared = Arc::new(Shared::new(Parts {
        planner,
        client,
        token: std::sync::Arc::new(OperatorToken::new(Some(token.clone()), None)),
        confirmer: Arc::new(NeverPrompt),
        policy: ApprovalPolicy::default(),
        sink,
        progress: Arc::new(NoProgress),
        folders,
        interrupt,
        drill: false,
        witnesses: esus_ir::exec::witness::Witnesses::new(b"bench".to_vec(), []),
    }));
    let meta = RunMeta {
        run_id: "bench".into(),
        runbook_text: text,
        operator: "bench".into(),
        host: "bench".into(),
        mode: RunMode::Drill,
        resumes: None,
        incident_id: None,
        resumes_file: None,
        chain_started_at: None,
    };
    let opts = RunOptions {
        max_parallel: 4,
        ..RunOptions::default()
    };
    let started = Instant::now();
    let report = executor::run(shared, &inputs, meta, opts).await;
    let took = started.elapsed();
    if transcript {
        writer.finish().expect("signed");
    }
    assert_eq!(report.exit_code, 0, "{}", report.render_text());
    took
}

/// The simulator configuration, with `BENCH_LATENCY_MS` applied.
fn latency(config: SimConfig) -> SimConfig {
    match std::env::var("BENCH_LATENCY_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        Some(ms) if ms > 0 => config
            .with_fault(&format!("latency={ms}ms"))
            .expect("latency fault"),
        _ => config,
    }
}

/// A listener that drops every event: isolates the transcript's cost.
struct Null;

impl esus_ir::event::EventSink for Null {
    fn emit(&self, _event: &esus_ir::event::Event) -> std::io::Result<()> {
        Ok(())
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(2000);
    let levels: Vec<usize> = if args.len() > 1 {
        args[1..].to_vec()
    } else {
        vec![8, 32]
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let scenario = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/bench/sim-fanout-5000-keys.yaml"
        ))
        .expect("scenario");
        let sim = Simulator::start(
            latency(SimConfig::default())
                .with_scenario_yaml(&scenario)
                .expect("scenario"),
        )
        .await
        .expect("sim");
        let base = sim.base_url();
        let token = sim.ready().admin_token.clone();
        let ids: Vec<String> = (1..=n.min(5000))
            .map(|i| format!("gen-key-{i:05}"))
            .collect();
        let dir = tempfile::tempdir().expect("tempdir");
        println!(
            "fan-out over {} keys, simulator in-process on {base}",
            ids.len()
        );
        println!(
            "{:>11} {:>11} {:>14} {:>7} {:>16} {:>13}",
            "concurrency",
            "bare req/s",
            "esus-ir req/s",
            "ratio",
            "(no transcript)",
            "peak RSS MiB"
        );
        for &c in &levels {
            // Warm both paths once, then take the best of three runs each.
            let _ = bare(&base, &token, &ids[..ids.len().min(200)], c).await;
            let (mut b, mut e, mut n) = (Duration::MAX, Duration::MAX, Duration::MAX);
            for _ in 0..3 {
                b = b.min(bare(&base, &token, &ids, c).await);
                e = e.min(esus_ir(&base, &token, &ids, c, dir.path(), true).await);
                n = n.min(esus_ir(&base, &token, &ids, c, dir.path(), false).await);
            }
            let rate = |d: Duration| ids.len() as f64 / d.as_secs_f64();
            println!(
                "{c:>11} {:>11.0} {:>14.0} {:>7.2} {:>16.0} {:>13.1}",
                rate(b),
                rate(e),
                rate(e) / rate(b),
                rate(n),
                peak_rss_kib() as f64 / 1024.0
            );
        }
    });
}
