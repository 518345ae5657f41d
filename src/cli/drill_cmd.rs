//! `esus-ir drill`: rehearse a runbook against the embedded simulator and score the response —
//! was the credential contained, how fast, and does the transcript verify.

use std::path::PathBuf;

use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::Value;

use super::output::{count, out};
use super::run_cmd::{self, DrillTarget, Finished, OutputFormat, RunArgs};
use super::sign_args::SignKeyArgs;
use super::terminal::Terminal;
use crate::error::{Error, ExitCode};
use crate::event::StepStatus;
use crate::exec::report::RunReport;
use crate::sim::{KeyState, ReadyInfo, SimHandle, Simulator};
use crate::transcript::{VerifyOptions, read_transcript, verify_transcript};

/// Arguments of `esus-ir drill`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  esus-ir drill                                   # the api-key-compromise drill
  esus-ir drill --fault error_rate=0.2 --fault 'drop_count=1@POST /api-keys' --seed 7
  esus-ir drill session-compromise --output json

Without a terminal (CI, a paging tool) the drill runs unattended and approves every step: it only
ever talks to the embedded simulator on 127.0.0.1.")]
pub struct DrillArgs {
    /// A runbook file or bundled name (default: api-key-compromise).
    #[arg(value_name = "RUNBOOK", default_value = "api-key-compromise")]
    pub runbook: String,
    /// The simulator's scenario, faults, seed and TLS.
    #[command(flatten)]
    pub world: super::sim_cmd::SimWorld,
    /// An input value overriding the scenario's.
    #[arg(short, long = "input", value_name = "NAME=VALUE")]
    pub inputs: Vec<String>,
    /// Approve every destructive step without asking.
    #[arg(short, long)]
    pub yes: bool,
    /// Never prompt (then every step is approved: this is a simulator).
    #[arg(long)]
    pub non_interactive: bool,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// The run's folder. Default: ./esus-ir-runs/<time>-<runbook>.
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
    /// Who runs the drill.
    #[arg(long, value_name = "NAME")]
    pub operator: Option<String>,
    /// The exercise this drill belongs to (recorded like a real run's incident id).
    #[arg(long, value_name = "ID")]
    pub incident_id: Option<String>,
    /// Steps running at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub max_parallel: u16,
    /// Transcript signing key.
    #[command(flatten)]
    pub sign: SignKeyArgs,
}

/// One scored check.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// Whether it held.
    pub passed: bool,
    /// The evidence for the verdict.
    pub detail: String,
}

/// The drill's score: the `drill --output json` document.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DrillReport {
    /// Version of this document format (1); it changes only when a field changes meaning or goes away.
    pub schema_version: u32,
    /// Always `drill`.
    #[schemars(extend("const" = "drill"))]
    pub kind: String,
    /// The runbook.
    pub runbook: String,
    /// Whether every check passed.
    pub passed: bool,
    /// The checks.
    pub checks: Vec<Check>,
    /// Milliseconds from the start to the moment the run proved containment, as in the run's result.
    pub time_to_containment_ms: Option<u64>,
    /// Prompts the operator answered.
    pub prompts_answered: usize,
    /// Requests retried after a transient failure.
    pub retries: usize,
    /// Steps that failed with `on_failure: continue` while the run still succeeded.
    pub failures_recovered: usize,
    /// Faults injected (the `--fault` flags).
    pub faults: Vec<String>,
    /// How often each kind of injected fault actually fired, as the simulator logged it.
    pub faults_fired: std::collections::BTreeMap<String, usize>,
    /// The run itself.
    pub run: RunReport,
}

/// Facts captured before the run, to judge it after.
struct Before {
    key: Option<KeyState>,
    audit_rows: usize,
    /// The planted look-alikes and their state before the drill (the sweep must keep them).
    look_alikes: Vec<(crate::sim::Planted, Option<crate::sim::LeftoverState>)>,
    /// The planted leftovers still active before the drill (the sweep must switch them off).
    active_leftovers: Vec<crate::sim::Planted>,
}

/// Runs `esus-ir drill`.
pub fn run(args: DrillArgs, term: Terminal) -> Result<ExitCode, Error> {
    let runtime = super::runtime::runtime()?;
    runtime.block_on(drill(args, term))
}

/// Rehearses the runbook against a fresh simulator, then scores what the run left behind.
async fn drill(args: DrillArgs, term: Terminal) -> Result<ExitCode, Error> {
    let mut config = args.world.config()?;
    // Nobody stands at a browser during a drill: a SMART login is approved at once.
    config.smart_auto_approve = true;
    // The sweep is rehearsed where something was left behind: the planted incident.
    if args.runbook == SWEEP && args.world.scenario.is_none() {
        config = config
            .with_scenario_yaml(crate::sim::PERSISTENCE_SCENARIO_YAML)
            .map_err(|e| Error::Sim(e.to_string()))?;
    }
    let sim = Simulator::start(config).await?;
    let ready = sim.ready().clone();
    let before = Before {
        key: sim.api_key(&ready.key_id),
        audit_rows: sim.audit_rows_of(&ready.user_id),
        look_alikes: sim
            .ground_truth()
            .look_alikes
            .into_iter()
            .map(|l| {
                let was = sim.leftover_state(l.kind, &l.id);
                (l, was)
            })
            .collect(),
        active_leftovers: sim
            .ground_truth()
            .leftovers
            .into_iter()
            .filter(|l| sim.leftover_state(l.kind, &l.id).is_some_and(|s| s.active))
            .collect(),
    };
    let interactive = super::terminal::interactive(args.non_interactive);
    let mut target = target_of(&sim, &ready)?;
    if args.runbook == SWEEP {
        target.default_inputs.extend(sweep_inputs(&sim));
    }
    let run_args = run_args(&args, interactive);
    let approve_all = !interactive;
    let finished = run_cmd::execute_drill(run_args, term, target, approve_all).await?;
    let Finished::Live(report) = finished else {
        return Err(Error::Usage("a drill cannot be a dry-run".into()));
    };
    let score = score(&sim, &before, *report, &args.world.faults);
    sim.shutdown().await;
    print_score(&score, args.output, term)?;
    Ok(exit_code(&score))
}

/// The bundled runbook a drill scores on what was planted, not on containment.
const SWEEP: &str = "persistence-sweep";

/// The sweep's inputs from the planted incident: the attacker, the window's start, the leaked
/// key, the organization — and, unattended, `remove` (a drill scores what it removes too).
fn sweep_inputs(sim: &SimHandle) -> Vec<(String, String)> {
    let truth = sim.ground_truth();
    let mut inputs = vec![
        ("user_id".to_string(), truth.attacker.user_id.clone()),
        ("organization_id".to_string(), sim.organization_id()),
        ("remove".to_string(), "true".to_string()),
        (
            "own_endpoints".to_string(),
            r"^https://([a-z0-9-]+\.)*riverside\.example(/|:|$)".to_string(),
        ),
    ];
    if let Some(w) = truth.window {
        inputs.push(("since".to_string(), w.start.to_string()));
    }
    if let Some(k) = truth.attacker.key_ids.first() {
        inputs.push(("key_id".to_string(), k.clone()));
    }
    // The origins a person would choose from the sweep's CORS listing: ESUS's rows do not say
    // which origin the user added, so the runbook removes only those it is told.
    let origins: Vec<&str> = truth
        .leftovers
        .iter()
        .filter(|l| l.kind == crate::sim::LeftoverKind::CorsOrigin)
        .map(|l| l.id.as_str())
        .collect();
    inputs.push(("drop_origins".to_string(), origins.join(",")));
    inputs
}

/// Where the drill's run sends its requests: the simulator, as its admin, with the scenario's
/// leaked secrets and ids as inputs.
fn target_of(sim: &SimHandle, ready: &ReadyInfo) -> Result<DrillTarget, Error> {
    Ok(DrillTarget {
        base_url: sim.base_url(),
        token: ready.admin_token.clone(),
        refresh: Some(ready.admin_refresh_token.clone()),
        ca_cert: ca_cert_file(sim)?,
        secret_inputs: vec![
            ("session_token".into(), ready.session_token.clone()),
            ("refresh_token".into(), ready.session_refresh_token.clone()),
            ("leaked_secret".into(), ready.key_secret.clone()),
        ],
        default_inputs: vec![
            ("key_id".into(), ready.key_id.clone()),
            ("user_id".into(), ready.user_id.clone()),
            ("session_id".into(), ready.session_id.clone()),
        ],
    })
}

/// A TLS simulator's CA, written to a file: the run's client, like a real one, trusts a private
/// CA only through `--ca-cert PEM`.
fn ca_cert_file(sim: &SimHandle) -> Result<Option<PathBuf>, Error> {
    let Some(pem) = sim.ca_cert_pem() else {
        return Ok(None);
    };
    let path = std::env::temp_dir().join(format!("esus-ir-drill-ca-{}.pem", std::process::id()));
    std::fs::write(&path, pem).map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    Ok(Some(path))
}

/// The drill as a `run` command line: no token, login or secret files (the simulator supplies
/// them), and without a terminal every step approved.
fn run_args(args: &DrillArgs, interactive: bool) -> RunArgs {
    RunArgs {
        runbook: Some(args.runbook.clone()),
        resume: None,
        base_url: None,
        ca_cert: None,
        token_file: None,
        login: None,
        refresh_token_file: None,
        refresh_token_keyring: false,
        login_smart: false,
        login_timeout: std::time::Duration::from_secs(300),
        smart: super::login_cmd::SmartArgs::default(),
        inputs: args.inputs.clone(),
        inputs_file: None,
        secret_files: Vec::new(),
        yes: args.yes || !interactive,
        approve: Vec::new(),
        plan: None,
        policy: None,
        require_approvals: None,
        bind_items: false,
        non_interactive: !interactive,
        dry_run: None,
        offline: false,
        max_parallel: args.max_parallel,
        max_items: crate::runbook::validate::MAX_FOREACH_ITEMS,
        output: args.output,
        run_dir: args.run_dir.clone(),
        secrets_dir: None,
        // A drill's evidence is the simulator's made-up data, and its score reads it back.
        encrypt_to: Vec::new(),
        encrypt_to_file: None,
        require_encryption: false,
        transcript: None,
        operator: args.operator.clone(),
        incident_id: args.incident_id.clone(),
        timeout: 30,
        sign: args.sign.clone(),
    }
}

/// Prints the score on stdout: the JSON document, or the run's own summary and then the score.
fn print_score(score: &DrillReport, output: OutputFormat, term: Terminal) -> Result<(), Error> {
    match output {
        OutputFormat::Json => out(&format!(
            "{}\n",
            serde_json::to_string_pretty(score).unwrap_or_default()
        )),
        OutputFormat::Text => {
            let done = Finished::Live(Box::new(score.run.clone()));
            run_cmd::print_finished(&done, OutputFormat::Text, term)?;
            out(&render(score))
        }
    }
}

/// A passed drill exits 0; a failed one with its run's own code, or `StepFailed` when the run
/// itself succeeded but a check did not hold.
fn exit_code(score: &DrillReport) -> ExitCode {
    if score.passed {
        ExitCode::Success
    } else if score.run.exit_code != 0 {
        score.run.outcome.exit_code()
    } else {
        ExitCode::StepFailed
    }
}

fn score(sim: &SimHandle, before: &Before, run: RunReport, faults: &[String]) -> DrillReport {
    let mut checks = vec![Check {
        name: "run completed".into(),
        passed: run.exit_code == 0,
        detail: run.message.clone(),
    }];
    let records = run
        .transcript
        .as_deref()
        .and_then(|t| read_transcript(t).ok())
        .unwrap_or_default();
    checks.push(transcript_check(&run));
    checks.push(containment_check(&run));
    match run.runbook.as_str() {
        "api-key-compromise" => checks.extend(key_compromise_checks(sim, before, &run)),
        "session-compromise" => checks.extend(session_compromise_checks(sim, &run)),
        SWEEP => checks.extend(sweep_checks(sim, before)),
        _ => {}
    }
    let count = |kind: &str, pred: &dyn Fn(&Value) -> bool| {
        records
            .iter()
            .filter(|r| r.kind == kind && pred(&Value::Object(r.data.clone())))
            .count()
    };
    let prompts_answered = count("confirmation", &|d| {
        d.get("how").and_then(Value::as_str) == Some("interactive")
    });
    let retries = count("request", &|d| {
        d.get("attempt")
            .and_then(Value::as_u64)
            .is_some_and(|a| a > 1)
    });
    let failures_recovered = if run.exit_code == 0 {
        run.steps
            .iter()
            .filter(|s| s.status == crate::event::StepStatus::Failed)
            .count()
    } else {
        0
    };
    let mut faults_fired = std::collections::BTreeMap::new();
    for fault in sim.requests().iter().flat_map(|r| r.faults.clone()) {
        *faults_fired.entry(fault).or_insert(0usize) += 1;
    }
    DrillReport {
        schema_version: crate::exec::report::SCHEMA_VERSION,
        kind: "drill".into(),
        runbook: run.runbook.clone(),
        passed: checks.iter().all(|c| c.passed),
        checks,
        time_to_containment_ms: run
            .containment
            .as_ref()
            .and_then(|c| c.time_to_containment_ms),
        prompts_answered,
        retries,
        failures_recovered,
        faults: faults.to_vec(),
        faults_fired,
        run,
    }
}

/// What the sweep left: every planted leftover switched off or gone (found, and removed), every
/// look-alike exactly as it was before the drill (no false removal).
fn sweep_checks(sim: &SimHandle, before: &Before) -> Vec<Check> {
    let planted = before.active_leftovers.len();
    let removed = before
        .active_leftovers
        .iter()
        .filter(|l| sim.leftover_state(l.kind, &l.id).is_none_or(|s| !s.active))
        .count();
    let touched: Vec<String> = before
        .look_alikes
        .iter()
        .filter(|(l, was)| sim.leftover_state(l.kind, &l.id) != *was)
        .map(|(l, _)| format!("{:?} {}", l.kind, l.id))
        .collect();
    vec![
        Check {
            name: "every planted leftover found and switched off".into(),
            // Of those active before the drill: an invitation already accepted has nothing left
            // to switch off (its member is a leftover of its own).
            passed: removed == planted,
            detail: format!(
                "{removed} of {planted} ({}%)",
                (removed * 100).checked_div(planted).unwrap_or(100)
            ),
        },
        Check {
            name: "no false removal".into(),
            passed: touched.is_empty(),
            detail: if touched.is_empty() {
                format!("{} look-alikes untouched", before.look_alikes.len())
            } else {
                format!("touched: {}", touched.join(", "))
            },
        },
    ]
}

fn transcript_check(run: &RunReport) -> Check {
    let verified = run
        .transcript
        .as_deref()
        .map(|t| verify_transcript(t, &VerifyOptions::default()));
    let (passed, detail) = match verified {
        Some(Ok(v)) if v.ok => (true, "signature, chain and digests check out".to_string()),
        Some(Ok(v)) => (false, count(v.problems.len(), "problem", "problems")),
        Some(Err(e)) => (false, e.to_string()),
        None => (false, "no transcript".to_string()),
    };
    Check {
        name: "transcript verified".into(),
        passed,
        detail,
    }
}

/// The run's own verdict, from its containment checks against the simulator. A runbook that
/// contains nothing (a review, a rotation) claims nothing, and that is not a failure.
fn containment_check(run: &RunReport) -> Check {
    use crate::event::ContainmentState::{Contained, NotApplicable};
    let state = run.containment.as_ref().map(|c| c.state);
    Check {
        name: "the run proved containment".into(),
        passed: matches!(state, Some(Contained | NotApplicable)),
        detail: run.containment_line(),
    }
}

/// How the simulator holds a key, in words.
fn key_words(key: &KeyState) -> String {
    let mut facts = Vec::new();
    if key.deleted {
        facts.push("deleted".to_string());
    } else if !key.active {
        facts.push("deactivated".to_string());
    }
    if let Some(next) = &key.superseded_by {
        facts.push(format!("replaced by {next}"));
    }
    if facts.is_empty() {
        facts.push("live".to_string());
    }
    format!("key {} is {}", key.id, facts.join(", "))
}

/// Judged on the simulator's state, read through its handle: never over HTTP, where the drill's
/// own injected faults would answer instead of the state.
fn key_compromise_checks(sim: &SimHandle, before: &Before, run: &RunReport) -> Vec<Check> {
    let ready = sim.ready();
    let mut checks = Vec::new();
    let key = sim.api_key(&ready.key_id);
    let authenticates =
        sim.key_authenticates(&ready.key_client_id, ready.key_secret.expose_secret());
    let held = key
        .as_ref()
        .map_or_else(|| format!("key {} is unknown", ready.key_id), key_words);
    checks.push(Check {
        name: "leaked key no longer authenticates".into(),
        passed: key.is_some() && !authenticates,
        detail: format!(
            "simulator: {held}; the leaked secret {}",
            if authenticates {
                "still authenticates"
            } else {
                "no longer authenticates"
            }
        ),
    });
    let session = sim
        .sessions_of(&ready.user_id)
        .into_iter()
        .find(|s| s.id == ready.session_id);
    checks.push(Check {
        name: "compromised session is dead".into(),
        passed: session.as_ref().is_some_and(|s| s.revoked),
        detail: match &session {
            Some(s) if s.revoked => format!("simulator: session {} is ended", s.id),
            Some(s) => format!("simulator: session {} is still alive", s.id),
            None => format!("session {} is not in the simulator", ready.session_id),
        },
    });
    let new_id = run
        .steps
        .iter()
        .filter(|s| s.status == crate::event::StepStatus::Ok)
        .find_map(|s| {
            s.outputs
                .get("new_key_id")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
    let replacement = new_id.as_deref().and_then(|id| sim.api_key(id));
    let same = match (&before.key, &replacement) {
        (Some(old), Some(new)) => {
            new.name == old.name && new.scopes == old.scopes && new.usable_now
        }
        _ => false,
    };
    checks.push(Check {
        name: "replacement with the same name and scopes".into(),
        passed: same,
        detail: format!("replacement {}", new_id.as_deref().unwrap_or("none")),
    });
    checks.push(evidence_check(run, before.audit_rows));
    checks
}

/// Judged on the simulator's state, like [`key_compromise_checks`].
fn session_compromise_checks(sim: &SimHandle, run: &RunReport) -> Vec<Check> {
    let ready = sim.ready();
    let sessions = sim.sessions_of(&ready.user_id);
    let alive: Vec<&str> = sessions
        .iter()
        .filter(|s| !s.revoked)
        .map(|s| s.id.as_str())
        .collect();
    let mut checks = vec![Check {
        name: "every session of the user is dead".into(),
        passed: !sessions.is_empty() && alive.is_empty(),
        detail: format!(
            "simulator: {} of {}, still alive: {}",
            count(sessions.len(), "session", "sessions"),
            ready.user_id,
            if alive.is_empty() {
                "none".to_string()
            } else {
                alive.join(", ")
            }
        ),
    }];
    let accepted = |yes: bool| {
        if yes {
            "still accepts"
        } else {
            "no longer accepts"
        }
    };
    let access = sim.access_token_accepted(ready.session_token.expose_secret());
    checks.push(Check {
        name: "stolen access token refused".into(),
        passed: !access,
        detail: format!("simulator: {} the stolen access token", accepted(access)),
    });
    let refresh = sim.refresh_token_accepted(ready.session_refresh_token.expose_secret());
    checks.push(Check {
        name: "stolen refresh token refused".into(),
        passed: !refresh,
        detail: format!("simulator: {} the stolen refresh token", accepted(refresh)),
    });
    checks.push(evidence_check(run, 1));
    checks
}

/// The audit evidence: every row once, and the run's proof that nothing is missing.
fn evidence_check(run: &RunReport, at_least: usize) -> Check {
    // The cursor search's pull, or the page-numbered fallback's where ESUS had no cursor search.
    let pulls = ["audit", "audit_by_page"];
    let evidence = run
        .steps
        .iter()
        .filter(|s| pulls.contains(&s.id.as_str()))
        .find(|s| s.status == StepStatus::Ok && !s.evidence.is_empty())
        .or_else(|| run.steps.iter().find(|s| s.id == "audit"))
        .and_then(|s| s.evidence.first())
        .and_then(|e| run.evidence_dir.as_ref().map(|d| d.join(&e.file)));
    let doc = evidence
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .unwrap_or(Value::Null);
    let rows = doc["rows"].as_array().map_or(&[][..], Vec::as_slice);
    let ids: std::collections::HashSet<&str> =
        rows.iter().filter_map(|r| r["id"].as_str()).collect();
    let complete = doc["complete"].as_bool() == Some(true);
    Check {
        name: "evidence holds every audit row of the user, once".into(),
        passed: complete && ids.len() == rows.len() && rows.len() >= at_least.max(1),
        detail: format!(
            "{} rows saved ({} distinct), ESUS counted {}, {}; {at_least} existed before the drill",
            rows.len(),
            ids.len(),
            doc["total"]
                .as_u64()
                .map_or_else(|| "nothing".to_string(), |n| n.to_string()),
            if complete {
                "proven complete"
            } else {
                "not proven complete"
            }
        ),
    }
}

fn render(score: &DrillReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nDRILL REPORT — {} — {}",
        score.runbook,
        if score.passed { "PASSED" } else { "FAILED" }
    );
    for c in &score.checks {
        let _ = writeln!(
            s,
            "  [{}] {} — {}",
            if c.passed { "x" } else { " " },
            c.name,
            c.detail
        );
    }
    let ttc = score.time_to_containment_ms.map_or_else(
        || "not reached".to_string(),
        |ms| format!("{:.2} s", ms as f64 / 1000.0),
    );
    let _ = writeln!(s, "  time to containment: {ttc}");
    let _ = writeln!(
        s,
        "  prompts answered: {}, retries: {}, failures recovered: {}",
        score.prompts_answered, score.retries, score.failures_recovered
    );
    if !score.faults.is_empty() {
        let fired: Vec<String> = score
            .faults_fired
            .iter()
            .map(|(k, n)| format!("{k} ×{n}"))
            .collect();
        let _ = writeln!(
            s,
            "  faults injected: {} (fired: {})",
            score.faults.join(", "),
            fired.join(", ")
        );
    }
    s
}
