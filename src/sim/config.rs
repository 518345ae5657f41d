//! What a simulator starts with: listen address, scenario, faults, seed, TLS, token lifetime.
//! Plain data, so the CLI, `drill` and tests build it the same way.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::error::SimError;
use super::fault_spec::FaultSpec;
use super::scenario::Scenario;

/// Where the scenario comes from.
#[derive(Debug, Clone, Default)]
pub enum ScenarioSource {
    /// The built-in compromise scenario.
    #[default]
    Builtin,
    /// A YAML file.
    File(PathBuf),
    /// An already parsed scenario.
    Inline(Box<Scenario>),
}

/// The simulator's configuration. `SimConfig::default()` is the built-in scenario on
/// `127.0.0.1:0`, no faults, seed 0, plain HTTP, 15-minute tokens.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Loopback address to bind; port 0 picks a free port.
    pub listen: SocketAddr,
    /// The scenario.
    pub scenario: ScenarioSource,
    /// Faults, applied in order.
    pub faults: Vec<FaultSpec>,
    /// Seed for rate-based faults and generated audit history.
    pub seed: u64,
    /// Serve HTTPS with a certificate generated at start.
    pub tls: bool,
    /// Where to write the CA certificate with `tls` (default: a file in the temp folder).
    pub ca_out: Option<PathBuf>,
    /// Access-token lifetime (a `token_ttl` fault overrides it).
    pub token_ttl: Duration,
    /// `/smart/authorize` approves every valid request at once as the ready file's admin (a 302
    /// straight to the redirect URI), as the scenario switch `behaviour.smart_auto_approve` does:
    /// for drills, where nobody stands at a browser.
    pub smart_auto_approve: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            scenario: ScenarioSource::Builtin,
            faults: Vec::new(),
            seed: 0,
            tls: false,
            ca_out: None,
            token_ttl: Duration::from_secs(15 * 60),
            smart_auto_approve: false,
        }
    }
}

/// The addresses the simulator may listen on: exactly `127.0.0.1` and `::1` (not the rest of
/// 127.0.0.0/8).
pub fn listen_allowed(addr: &SocketAddr) -> bool {
    match addr.ip() {
        std::net::IpAddr::V4(ip) => ip == std::net::Ipv4Addr::LOCALHOST,
        std::net::IpAddr::V6(ip) => ip == std::net::Ipv6Addr::LOCALHOST,
    }
}

impl SimConfig {
    /// Adds a fault from its `--fault` text, e.g. `drop_count=1@POST /api-keys/{id}/rotate`.
    pub fn with_fault(mut self, spec: &str) -> Result<Self, SimError> {
        self.faults.push(spec.parse()?);
        Ok(self)
    }

    /// Uses a scenario given as YAML text.
    pub fn with_scenario_yaml(mut self, yaml: &str) -> Result<Self, SimError> {
        self.scenario = ScenarioSource::Inline(Box::new(Scenario::from_yaml(yaml, "inline")?));
        Ok(self)
    }

    /// Sets the seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The scenario and a name for it in errors.
    pub(crate) fn load_scenario(&self) -> Result<(Scenario, String), SimError> {
        match &self.scenario {
            ScenarioSource::Builtin => Ok((Scenario::builtin()?, "built-in".into())),
            ScenarioSource::File(p) => Ok((Scenario::from_file(p)?, p.display().to_string())),
            ScenarioSource::Inline(s) => Ok(((**s).clone(), "inline".into())),
        }
    }
}
