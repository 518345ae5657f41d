//! Benchmark (not a test): how many simple authenticated requests per second the in-process
//! simulator serves on this machine, so later benchmarks of the executor know whether the
//! simulator is their bottleneck. Client and server share the machine's cores, so the figures
//! are a lower bound for the server alone.
//!
//! Run: `cargo bench --bench sim_throughput` (optionally `-- SECONDS_PER_LEVEL`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use esus_ir::sim::{SimConfig, Simulator};
use secrecy::ExposeSecret;

const CONCURRENCY: [usize; 4] = [1, 8, 32, 64];

#[derive(Clone, Copy)]
enum Credential {
    Bearer,
    ApiKey,
}

async fn level(
    base: &str,
    headers: Vec<(&'static str, String)>,
    path: &str,
    workers: usize,
    secs: u64,
) -> (f64, u64) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(workers)
        .build()
        .expect("client");
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (client, ok, failed) = (client.clone(), ok.clone(), failed.clone());
        let url = format!("{base}{path}");
        let headers = headers.clone();
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let mut req = client.get(&url);
                for (name, value) in &headers {
                    req = req.header(*name, value);
                }
                match req.send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    (
        ok.load(Ordering::Relaxed) as f64 / elapsed,
        failed.load(Ordering::Relaxed),
    )
}

fn main() {
    let secs: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let sim = Simulator::start(SimConfig::default())
            .await
            .expect("simulator");
        let base = sim.base_url();
        let ready = sim.ready();
        let bearer = format!("Bearer {}", ready.admin_token.expose_secret());
        let key = format!(
            "{}:{}",
            ready.key_client_id,
            ready.key_secret.expose_secret()
        );
        println!(
            "simulator throughput, {secs}s per level, {} cores (client and server share them)",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
        println!(
            "{:<44} {:>11} {:>12} {:>7}",
            "request", "concurrency", "requests/s", "failed"
        );
        for cred in [Credential::Bearer, Credential::ApiKey] {
            let (name, headers, path) = match cred {
                Credential::Bearer => (
                    "GET /auth/me (Bearer)",
                    vec![("authorization", bearer.clone())],
                    "/auth/me",
                ),
                // The key belongs to an app: its X-App-Id goes with it (docs/esus-api.md).
                Credential::ApiKey => (
                    "GET /fhir/Patient/p-0001 (X-API-Key)",
                    [("x-api-key", key.clone())]
                        .into_iter()
                        .chain(ready.key_app_id.clone().map(|app| ("x-app-id", app)))
                        .collect(),
                    "/fhir/Patient/p-0001",
                ),
            };
            for workers in CONCURRENCY {
                // Tokens live 15 simulated minutes; a long run stays well inside that.
                let (rps, failed) = level(&base, headers.clone(), path, workers, secs).await;
                println!("{name:<44} {workers:>11} {rps:>12.0} {failed:>7}");
            }
        }
        println!("audit rows written: {}", sim.audit_rows().len());
        sim.shutdown().await;
    });
}
