//! `esus-ir sim`: the simulator as a foreground server on loopback, until Ctrl-C. Prints the
//! ready facts without secrets; `--ready-file` writes them with secrets (mode 0600).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::error::{Error, ExitCode};
use crate::sim::{FaultSpec, ScenarioSource, SimConfig, Simulator, listen_allowed};

/// Arguments of `esus-ir sim`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  esus-ir sim
  esus-ir sim --listen 127.0.0.1:8443 --tls --ca-out sim-ca.pem
  esus-ir sim --listen 127.0.0.1:0 --ready-file /tmp/sim.json
  esus-ir sim --fault latency=20ms --fault 'drop_count=1@POST /api-keys/{id}/rotate' --seed 7
  esus-ir sim --scenario my-scenario.yaml --fault rate_limit=50/s --fault token_ttl=60s

Fault syntax: KIND=VALUE[@ROUTE], ROUTE = [METHOD ]PATH or METHOD:PATH; `{name}` or `*`
matches one path segment. Kinds: latency=20ms, error_rate=0.2, drop_rate=0.05,
rate_limit=50/s, token_ttl=60s, error_count=N, drop_count=N, barrier=N, cut_rate=0.05,
cut_count=N, error_shape=operation-outcome|error|ok-reason, retry_after=none|seconds|date,
audit_trickle=N, absent=yes@ROUTE (an ESUS without that route: 404).
Test-only controls live under /_sim/ (requests, deliveries, clock/advance); see docs/esus-api.md.")]
pub struct SimArgs {
    /// Loopback address to listen on: 127.0.0.1 or ::1 only (port 0 = any free port).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// What the simulator serves and how it misbehaves.
    #[command(flatten)]
    pub world: SimWorld,
    /// Where to write the generated CA certificate (with --tls).
    #[arg(long, value_name = "PATH", requires = "tls")]
    pub ca_out: Option<PathBuf>,
    /// Write the ready facts, secrets included, as JSON (mode 0600) once listening.
    #[arg(long, value_name = "PATH")]
    pub ready_file: Option<PathBuf>,
}

/// The simulator's scenario, faults, seed and TLS: shared by `sim` and `drill`.
#[derive(Debug, clap::Args)]
pub struct SimWorld {
    /// Scenario YAML file (default: the built-in key-compromise scenario).
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// Inject a fault: KIND=VALUE[@ROUTE] (repeatable; see `esus-ir sim --help`).
    #[arg(long = "fault", value_name = "SPEC")]
    pub faults: Vec<String>,
    /// Seed for rate-based faults and generated audit history.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Serve HTTPS with a certificate generated at start (the production TLS path).
    #[arg(long)]
    pub tls: bool,
    /// `/smart/authorize` approves at once as the ready file's admin (no approval page): for
    /// unattended SMART logins against the simulator.
    #[arg(long)]
    pub smart_auto_approve: bool,
}

impl SimWorld {
    /// The simulator configuration these arguments describe (clap stops here).
    pub fn config(&self) -> Result<SimConfig, Error> {
        let faults = self
            .faults
            .iter()
            .map(|s| s.parse::<FaultSpec>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Usage(e.to_string()))?;
        Ok(SimConfig {
            scenario: self
                .scenario
                .clone()
                .map_or(ScenarioSource::Builtin, ScenarioSource::File),
            faults,
            seed: self.seed,
            tls: self.tls,
            smart_auto_approve: self.smart_auto_approve,
            ..SimConfig::default()
        })
    }
}

/// Turns the arguments into a simulator configuration.
fn config(args: &SimArgs) -> Result<SimConfig, Error> {
    if !listen_allowed(&args.listen) {
        return Err(Error::Usage(format!(
            "refusing to listen on {}: the simulator binds loopback addresses only (127.0.0.1, ::1)",
            args.listen
        )));
    }
    Ok(SimConfig {
        listen: args.listen,
        ca_out: args.ca_out.clone(),
        ..args.world.config()?
    })
}

/// Runs `esus-ir sim`.
pub fn run(args: SimArgs) -> Result<ExitCode, Error> {
    let config = config(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the async runtime", e))?;
    runtime.block_on(async {
        let sim = Simulator::start(config).await?;
        if let Some(path) = &args.ready_file {
            sim.ready().write_file(path)?;
        }
        // A closed stdout (broken pipe) must not stop the server: write errors are ignored.
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "{}", sim.ready().public_summary());
        let _ = writeln!(out, "simulator ready; Ctrl-C to stop");
        let _ = out.flush();
        drop(out);
        tokio::signal::ctrl_c()
            .await
            .map_err(|e| Error::io("waiting for Ctrl-C", e))?;
        sim.shutdown().await;
        Ok(ExitCode::Success)
    })
}
