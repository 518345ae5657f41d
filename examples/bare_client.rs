//! The yardstick of `bench/run.sh`: the least a client can do to send the same fan-out esus-ir
//! sends — one `DELETE /api-keys/{id}` per key, `C` in flight, bodies read and dropped — so the
//! ratio esus-ir / this says what esus-ir's planning, recording and signing cost per request.
//!
//! `bare_client READY_FILE N C`: the base URL and the admin token are read from the simulator's
//! ready file (0600), never from argv; keys are the generated `gen-key-00001` … `gen-key-N`.
//! Prints the wall time of the fan-out alone and exits 1 if any request failed.

use std::time::Instant;

use futures::StreamExt;

/// Too many items would only measure the machine's memory, not the client.
const MAX_ITEMS: usize = 1_000_000;

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bare_client: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [ready, n, c] = args.as_slice() else {
        return Err("usage: bare_client READY_FILE N CONCURRENCY".into());
    };
    let n: usize = n.parse().map_err(|e| format!("N `{n}`: {e}"))?;
    let c: usize = c.parse().map_err(|e| format!("CONCURRENCY `{c}`: {e}"))?;
    if n == 0 || n > MAX_ITEMS || c == 0 || c > 1024 {
        return Err(format!("N must be 1–{MAX_ITEMS} and CONCURRENCY 1–1024"));
    }
    let text = std::fs::read_to_string(ready).map_err(|e| format!("{ready}: {e}"))?;
    let facts: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{ready}: {e}"))?;
    let base = facts["base_url"]
        .as_str()
        .ok_or("the ready file has no base_url")?
        .to_string();
    let token = facts["admin_token"]
        .as_str()
        .ok_or("the ready file has no admin_token")?
        .to_string();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    runtime.block_on(fan_out(&base, &token, n, c))
}

async fn fan_out(base: &str, token: &str, n: usize, c: usize) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(c)
        .build()
        .map_err(|e| format!("client: {e}"))?;
    let started = Instant::now();
    // Each request carries a request id, as esus-ir's do, so both send the same bytes' worth.
    let failed = futures::stream::iter(1..=n)
        .map(|i| {
            let req = client
                .delete(format!("{base}/api-keys/gen-key-{i:05}"))
                .bearer_auth(token)
                .header("X-Request-Id", uuid::Uuid::new_v4().to_string());
            async move {
                match req.send().await {
                    Ok(r) if r.status().is_success() => r.bytes().await.is_err(),
                    _ => true,
                }
            }
        })
        .buffer_unordered(c)
        .filter(|failed| futures::future::ready(*failed))
        .count()
        .await;
    let took = started.elapsed();
    println!(
        "bare_client: {n} DELETEs at {c} in {:.3} s",
        took.as_secs_f64()
    );
    if failed > 0 {
        return Err(format!("{failed} of {n} requests failed"));
    }
    Ok(())
}
