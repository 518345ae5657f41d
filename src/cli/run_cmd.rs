//! `esus-ir run`: arguments, environment and terminal become one [`RunSettings`]; the library
//! does the rest. Tokens and secret inputs never come from argv.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use secrecy::SecretString;

use super::commands::{out, stderr_color};
use super::confirm::TerminalConfirmer;
use super::transcript_cmd::SignKeyArgs;
use super::ui::Ui;
use crate::bundled;
use crate::error::{Error, ExitCode};
use crate::esus::client::{ClientConfig, EsusClient};
use crate::exec::approval::{ApprovalPolicy, Confirmer, NeverPrompt};
use crate::exec::event::{EventSink, RunMode};
use crate::exec::evidence::Folders;
use crate::exec::executor::{self, RunMeta, RunOptions};
use crate::exec::inputs::{self, InputSources};
use crate::exec::shared::{Fanout, Interrupt, Shared};
use crate::exec::token::{self, OperatorToken};
use crate::exec::{dry_run, evidence};
use crate::transcript::{Signer, TranscriptWriter, layout};

/// Arguments of `esus-ir run`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  ESUS_TOKEN=… esus-ir run api-key-compromise --input key_id=k-123 --input user_id=u-1001
  esus-ir run api-key-compromise --input key_id=k-123 --input user_id=u-1001 --dry-run
  esus-ir run api-key-compromise --non-interactive --yes --output json --inputs-file incident.yaml

The operator's token comes from ESUS_TOKEN, --token-file, --login (password from ESUS_PASSWORD or a
prompt), or a hidden prompt — never from the command line. ESUS_REFRESH_TOKEN enables renewal.")]
pub struct RunArgs {
    /// A runbook file or bundled runbook name (with --resume: optional, checked against the transcript).
    #[arg(value_name = "RUNBOOK", required_unless_present = "resume")]
    pub runbook: Option<String>,
    /// Continue a stopped run from its transcript: finished steps are not repeated.
    #[arg(long, value_name = "TRANSCRIPT")]
    pub resume: Option<PathBuf>,
    /// ESUS base URL (https; http only to loopback).
    #[arg(long, env = "ESUS_BASE_URL", value_name = "URL")]
    pub base_url: Option<String>,
    /// PEM file of a private CA that signs ESUS's certificate.
    #[arg(long, value_name = "PEM")]
    pub ca_cert: Option<PathBuf>,
    /// Read the operator's access token from this file.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Log in as this user (password from ESUS_PASSWORD or a hidden prompt; MFA code from ESUS_MFA_CODE or a prompt).
    #[arg(long, value_name = "EMAIL")]
    pub login: Option<String>,
    /// An input value (not for secret inputs).
    #[arg(short, long = "input", value_name = "NAME=VALUE")]
    pub inputs: Vec<String>,
    /// Inputs from a YAML or JSON mapping (not for secret inputs).
    #[arg(long, value_name = "FILE")]
    pub inputs_file: Option<PathBuf>,
    /// A secret input read from a file.
    #[arg(long = "secret-file", value_name = "NAME=PATH")]
    pub secret_files: Vec<String>,
    /// Approve every destructive step (not `typed` ones).
    #[arg(short, long)]
    pub yes: bool,
    /// Approve this step (typed steps included); repeatable.
    #[arg(long, value_name = "STEP_ID")]
    pub approve: Vec<String>,
    /// Never prompt, even on a terminal.
    #[arg(long)]
    pub non_interactive: bool,
    /// Send nothing; print every request (`reads`: also send the safe GETs).
    #[arg(long, value_name = "WHAT", num_args = 0..=1, default_missing_value = "all", value_parser = ["all", "reads"])]
    pub dry_run: Option<String>,
    /// Steps running at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub max_parallel: u16,
    /// Most items one `foreach` may fan out over (a cap against runaway runbooks).
    #[arg(long, value_name = "N", default_value_t = crate::runbook::validate::MAX_FOREACH_ITEMS)]
    pub max_items: usize,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// The run's folder (transcript, evidence, secrets). Default: ./esus-ir-runs/<time>-<runbook>.
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
    /// Where secret outputs go (0700 folder, 0600 files). Default: <run-dir>/secrets.
    #[arg(long, value_name = "DIR")]
    pub secrets_dir: Option<PathBuf>,
    /// Transcript path. Default: <run-dir>/transcript.jsonl.
    #[arg(long, value_name = "PATH")]
    pub transcript: Option<PathBuf>,
    /// Who is running this (recorded and used as the signer identity). Default: the OS user.
    #[arg(long, value_name = "NAME")]
    pub operator: Option<String>,
    /// Default per-request timeout in seconds.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub timeout: u64,
    /// Transcript signing key.
    #[command(flatten)]
    pub sign: SignKeyArgs,
}

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// A human summary.
    Text,
    /// One JSON document.
    Json,
}

/// Runs `esus-ir run`.
pub fn run(args: RunArgs) -> Result<ExitCode, Error> {
    let output = args.output;
    let done = runtime()?.block_on(execute(args, RunMode::Live, None))?;
    print_finished(&done, output)?;
    Ok(done.exit_code())
}

/// A multi-threaded tokio runtime (the executor's parallel steps and the drill's simulator).
pub fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the async runtime", e))
}

/// What a run left behind.
pub enum Finished {
    /// A dry-run: the steps it would have sent.
    Dry {
        /// `all` or `reads`.
        what: String,
        /// Each step.
        steps: Vec<dry_run::DryStep>,
        /// The transcript.
        transcript: PathBuf,
    },
    /// A live (or drill) run.
    Live(Box<crate::exec::report::RunReport>),
}

impl Finished {
    /// The process exit code.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Finished::Dry { .. } => ExitCode::Success,
            Finished::Live(r) => r.outcome.exit_code(),
        }
    }

    /// The result as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Finished::Dry {
                what,
                steps,
                transcript,
            } => {
                serde_json::json!({"dry_run": what, "steps": steps, "transcript": transcript})
            }
            Finished::Live(r) => serde_json::to_value(r).unwrap_or_default(),
        }
    }
}

/// Prints a finished run on stdout.
pub fn print_finished(done: &Finished, output: OutputFormat) -> Result<(), Error> {
    match (done, output) {
        (_, OutputFormat::Json) => out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&done.to_json()).unwrap_or_default()
        )),
        (
            Finished::Dry {
                steps, transcript, ..
            },
            OutputFormat::Text,
        ) => out(&format!(
            "{}\ntranscript: {}\n",
            dry_run::render_text(steps),
            transcript.display()
        )),
        (Finished::Live(r), OutputFormat::Text) => out(&r.render_text()),
    }
}

/// Runs a drill: like [`execute`] against the simulator, approving every step when `approve_all`.
pub async fn execute_drill(
    mut args: RunArgs,
    mut target: DrillTarget,
    approve_all: bool,
) -> Result<Finished, Error> {
    let source = bundled::resolve(args.runbook.as_deref().unwrap_or("api-key-compromise"))?;
    if let Ok((rb, _)) = crate::runbook::parse::parse(&source.text) {
        // The scenario's facts fill only the inputs this runbook declares.
        target
            .default_inputs
            .retain(|(name, _)| rb.inputs.contains_key(name));
        if approve_all {
            args.approve = rb.steps.iter().map(|s| s.id.clone()).collect();
        }
    }
    execute(args, RunMode::Drill, Some(target)).await
}

/// Where a drill sends its requests, and with what credentials.
pub struct DrillTarget {
    /// The simulator's base URL.
    pub base_url: String,
    /// An admin token of the simulator.
    pub token: SecretString,
    /// Its refresh token.
    pub refresh: Option<SecretString>,
    /// The CA of a TLS simulator.
    pub ca_cert: Option<PathBuf>,
    /// Values for secret inputs (the scenario's leaked key and session).
    pub secret_inputs: Vec<(String, SecretString)>,
    /// Values for other inputs, when the operator gave none.
    pub default_inputs: Vec<(String, String)>,
}

/// Runs a runbook (live, dry-run, or a drill against `drill`'s simulator); prints nothing on stdout.
pub async fn execute(
    args: RunArgs,
    mode: RunMode,
    drill: Option<DrillTarget>,
) -> Result<Finished, Error> {
    let resumed = match &args.resume {
        Some(path) => Some(load_resume(path, args.runbook.as_deref())?),
        None => None,
    };
    let source = match (&resumed, &args.runbook) {
        (Some((source, _)), _) => source.clone(),
        (None, Some(name)) => bundled::resolve(name)?,
        (None, None) => {
            return Err(Error::Usage(
                "which runbook? give RUNBOOK or --resume".into(),
            ));
        }
    };
    let valid = Arc::new(crate::runbook::load(
        &source.display,
        &source.text,
        stderr_color(),
    )?);
    let interactive =
        !args.non_interactive && std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let dry = args.dry_run.as_deref();
    let resume_plan = match (&resumed, &args.resume) {
        (Some((_, records)), Some(path)) => {
            let secrets = path
                .parent()
                .unwrap_or(std::path::Path::new("."))
                .join(layout::SECRETS_DIR);
            let plan =
                crate::exec::resume::plan(records, &valid, &secrets).map_err(Error::Usage)?;
            for note in &plan.notes {
                eprintln!("{note}");
            }
            Some(plan)
        }
        _ => None,
    };
    let mut sources = input_sources(&args, interactive, drill.as_ref())?;
    if let Some(plan) = &resume_plan {
        // The first run's inputs, unless given again.
        for (k, v) in &plan.inputs {
            if !sources.given.iter().any(|(n, _)| n == k) {
                let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                sources.given.insert(0, (k.clone(), text));
            }
        }
    }
    let inputs = inputs::resolve(&valid.runbook, &sources)
        .map_err(|e| Error::Usage(format!("inputs:\n{e}")))?;
    let base_url = drill
        .as_ref()
        .map(|d| d.base_url.clone())
        .or(args.base_url.clone())
        .ok_or_else(|| Error::Usage("no ESUS base URL: use --base-url or ESUS_BASE_URL".into()))?;
    let mut config = ClientConfig::new(base_url);
    config.ca_cert = drill
        .as_ref()
        .and_then(|d| d.ca_cert.clone())
        .or(args.ca_cert.clone());
    config.request_timeout = std::time::Duration::from_secs(args.timeout.max(1));
    let client = EsusClient::new(&config).map_err(|e| Error::Usage(e.to_string()))?;
    let policy = ApprovalPolicy {
        interactive,
        yes: args.yes,
        approve: args.approve.iter().cloned().collect(),
    };
    let unknown = policy.unknown_steps(&valid);
    if !unknown.is_empty() {
        return Err(Error::Usage(format!(
            "--approve names steps the runbook does not have: {}",
            unknown.join(", ")
        )));
    }
    let run_id = uuid::Uuid::new_v4().to_string();
    let run_dir = args
        .run_dir
        .clone()
        .unwrap_or_else(|| default_run_dir(&valid.runbook.name, &run_id));
    let folders = Folders {
        evidence: run_dir.join(layout::EVIDENCE_DIR),
        secrets: args
            .secrets_dir
            .clone()
            .unwrap_or_else(|| run_dir.join(layout::SECRETS_DIR)),
    };
    // Before anything is sent (the token check may already talk to ESUS): an existing run folder
    // with links, or that others may write to, is refused.
    evidence::check_run_folder(&run_dir)
        .and_then(|()| folders.check())
        .map_err(Error::Usage)?;
    evidence::create_private_dir(&run_dir)
        .map_err(|e| Error::io(format!("creating {}", run_dir.display()), e))?;
    folders
        .create()
        .map_err(|e| Error::io(format!("creating {}", folders.evidence.display()), e))?;
    let token = match (dry, &drill) {
        (Some("all"), _) => OperatorToken::default(),
        (_, Some(d)) => OperatorToken::new(Some(d.token.clone()), d.refresh.clone()),
        _ => operator_token(&args, &client, interactive).await?,
    };
    let (signer, created) = Signer::resolve(&args.sign.into_source())?;
    if let Some(c) = created {
        eprintln!("{c}");
    }
    let transcript_path = args
        .transcript
        .clone()
        .unwrap_or_else(|| run_dir.join(layout::TRANSCRIPT_FILE));
    let writer = Arc::new(TranscriptWriter::create(&transcript_path, signer)?);
    let fancy = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && args.output == OutputFormat::Text;
    let ui = Arc::new(Ui::new(fancy, false));
    let confirmer: Arc<dyn Confirmer> = if interactive {
        Arc::new(TerminalConfirmer::new(ui.multi()))
    } else {
        Arc::new(NeverPrompt)
    };
    let sink: Arc<dyn EventSink> = Arc::new(Fanout(vec![writer.clone(), ui.clone()]));
    let (handle, interrupt) = Interrupt::new();
    let ctrl_c = ctrl_c_listener(handle)?;
    let mode = if dry.is_some() { RunMode::DryRun } else { mode };
    let shared = Arc::new(Shared::new(
        valid.clone(),
        client,
        token,
        confirmer,
        sink,
        ui.clone(),
        folders.clone(),
        interrupt,
        drill.is_some(),
    ));
    let meta = RunMeta {
        run_id,
        runbook_text: source.text.clone(),
        operator: operator_name(args.operator.as_deref()),
        host: host_name(),
        mode,
        resumes: resume_plan.as_ref().map(|p| p.resumes.clone()),
    };
    if let Some(what) = dry {
        let steps = dry_run::run(shared, &inputs, meta, what == "reads").await;
        ctrl_c.abort();
        writer.finish()?;
        return Ok(Finished::Dry {
            what: what.to_string(),
            steps,
            transcript: transcript_path,
        });
    }
    let opts = RunOptions {
        max_parallel: args.max_parallel.into(),
        policy,
        finished: resume_plan
            .as_ref()
            .map(|p| p.finished.clone())
            .unwrap_or_default(),
        unknown: resume_plan.map(|p| p.unknown).unwrap_or_default(),
        max_items: args.max_items,
    };
    let mut report = executor::run(shared, &inputs, meta, opts).await;
    ctrl_c.abort();
    let sig = writer.finish();
    report.run_dir = Some(run_dir);
    report.transcript = Some(transcript_path);
    let done = Finished::Live(Box::new(report));
    if let Err(e) = sig {
        // The summary still matters to the operator; the signature problem is reported after it.
        print_finished(&done, args.output)?;
        return Err(e.into());
    }
    Ok(done)
}

/// Counts Ctrl-C presses into `handle`. The handler is installed before this returns (not when a
/// spawned task first runs), so a Ctrl-C at the very first prompt never kills the process.
fn ctrl_c_listener(
    handle: crate::exec::shared::InterruptHandle,
) -> Result<tokio::task::JoinHandle<()>, Error> {
    #[cfg(unix)]
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| Error::io("listening for Ctrl-C", e))?;
    Ok(tokio::spawn(async move {
        for n in 1.. {
            #[cfg(unix)]
            let pressed = sigint.recv().await.is_some();
            #[cfg(not(unix))]
            let pressed = tokio::signal::ctrl_c().await.is_ok();
            if !pressed {
                return;
            }
            handle.fire();
            if n == 1 {
                eprintln!(
                    "\nCtrl-C: finishing in-flight requests, starting nothing new. Press Ctrl-C again to abort now."
                );
            }
        }
    }))
}

/// Reads a transcript to resume: its chain must be intact, its signature (when there is one)
/// valid, and the runbook unchanged.
fn load_resume(
    path: &std::path::Path,
    runbook: Option<&str>,
) -> Result<(bundled::RunbookSource, Vec<crate::transcript::Record>), Error> {
    let (records, cut) = crate::transcript::read_transcript_prefix(path)?;
    if cut {
        eprintln!(
            "note: the transcript's last line was cut (the run was killed while writing); it is ignored"
        );
    }
    if crate::transcript::signature_path(path).exists() {
        let v = crate::transcript::verify_transcript(
            path,
            &crate::transcript::VerifyOptions::default(),
        )?;
        if !v.ok {
            let first = v
                .problems
                .first()
                .map(|p| p.what.clone())
                .unwrap_or_default();
            return Err(Error::Invalid(format!(
                "{} does not verify ({first}); refusing to resume from it",
                path.display()
            )));
        }
    }
    let first = records
        .first()
        .filter(|r| r.kind == "run-started")
        .ok_or_else(|| Error::Invalid(format!("{}: no run-started record", path.display())))?;
    let text = first
        .str_field("runbook_text")
        .unwrap_or_default()
        .to_string();
    let recorded = first.str_field("runbook_sha256").unwrap_or_default();
    if crate::transcript::sha256_hex(text.as_bytes()) != recorded {
        return Err(Error::Invalid(format!(
            "{}: the embedded runbook does not match its digest",
            path.display()
        )));
    }
    let source = match runbook {
        Some(name) => {
            let given = bundled::resolve(name)?;
            let digest = crate::transcript::sha256_hex(given.text.as_bytes());
            if digest != recorded {
                return Err(Error::Usage(format!(
                    "the runbook `{name}` changed since that run (sha256 {}… now, {}… then); resume needs the same runbook — omit RUNBOOK to use the copy in the transcript",
                    &digest[..12],
                    &recorded[..12.min(recorded.len())]
                )));
            }
            given
        }
        None => bundled::RunbookSource {
            display: format!(
                "{} (from the transcript)",
                first.str_field("runbook_name").unwrap_or("runbook")
            ),
            text,
        },
    };
    Ok((source, records))
}

fn input_sources(
    args: &RunArgs,
    interactive: bool,
    drill: Option<&DrillTarget>,
) -> Result<InputSources, Error> {
    let mut given = Vec::new();
    for pair in &args.inputs {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| Error::Usage(format!("--input `{pair}`: expected NAME=VALUE")))?;
        given.push((k.trim().to_string(), v.to_string()));
    }
    let mut secret_files = Vec::new();
    for pair in &args.secret_files {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| Error::Usage(format!("--secret-file `{pair}`: expected NAME=PATH")))?;
        secret_files.push((k.trim().to_string(), PathBuf::from(v)));
    }
    let file = match &args.inputs_file {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
            let value: serde_json::Value = serde_yaml::from_str(&text)
                .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
            match value {
                serde_json::Value::Object(m) => Some(m),
                _ => {
                    return Err(Error::Usage(format!(
                        "{}: expected a mapping of input names to values",
                        path.display()
                    )));
                }
            }
        }
    };
    if let Some(d) = drill {
        for (k, v) in &d.default_inputs {
            if !given.iter().any(|(n, _)| n == k) {
                given.insert(0, (k.clone(), v.clone()));
            }
        }
    }
    let drill_secrets: Vec<(String, SecretString)> =
        drill.map(|d| d.secret_inputs.clone()).unwrap_or_default();
    Ok(InputSources {
        given,
        file,
        secret_files,
        env: Some(Box::new(move |name: &str| {
            drill_secrets
                .iter()
                .find(|(n, _)| format!("ESUS_IR_INPUT_{}", n.to_ascii_uppercase()) == name)
                .map(|(_, v)| secrecy::ExposeSecret::expose_secret(v).to_string())
                .or_else(|| std::env::var(name).ok())
        })),
        prompt_secret: interactive.then(|| {
            Box::new(|name: &str, description: &str| {
                let about = if description.is_empty() {
                    String::new()
                } else {
                    format!(" — {description}")
                };
                hidden(&format!("{name} (secret, hidden){about}"))
            }) as Box<dyn Fn(&str, &str) -> Option<SecretString> + Send + Sync>
        }),
    })
}

/// The operator's token: ESUS_TOKEN, --token-file, --login, or a hidden prompt.
async fn operator_token(
    args: &RunArgs,
    client: &EsusClient,
    interactive: bool,
) -> Result<OperatorToken, Error> {
    let refresh = std::env::var("ESUS_REFRESH_TOKEN")
        .ok()
        .filter(|s| !s.is_empty())
        .map(SecretString::from);
    if let Some(path) = &args.token_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading --token-file {}", path.display()), e))?;
        let t = text.trim().to_string();
        if t.is_empty() {
            return Err(Error::Auth(format!(
                "--token-file {} is empty",
                path.display()
            )));
        }
        return Ok(OperatorToken::new(Some(SecretString::from(t)), refresh));
    }
    if let Some(t) = std::env::var("ESUS_TOKEN")
        .ok()
        .filter(|s| !s.trim().is_empty())
    {
        return Ok(OperatorToken::new(
            Some(SecretString::from(t.trim().to_string())),
            refresh,
        ));
    }
    if let Some(email) = &args.login {
        let password = std::env::var("ESUS_PASSWORD")
            .ok()
            .filter(|s| !s.is_empty())
            .map(SecretString::from)
            .or_else(|| {
                interactive
                    .then(|| hidden(&format!("ESUS password for {email}")))
                    .flatten()
            });
        let password = password.ok_or_else(|| {
            Error::Auth("--login needs ESUS_PASSWORD or a terminal to ask for the password".into())
        })?;
        let mfa = || {
            std::env::var("ESUS_MFA_CODE")
                .ok()
                .filter(|s| !s.is_empty())
                .map(SecretString::from)
                .or_else(|| interactive.then(|| hidden("MFA code")).flatten())
        };
        let (access, refresh) = token::login(client, email, &password, mfa)
            .await
            .map_err(|e| Error::Auth(e.0))?;
        return Ok(OperatorToken::new(Some(access), refresh));
    }
    if interactive && let Some(t) = hidden("ESUS access token (hidden)") {
        return Ok(OperatorToken::new(Some(t), refresh));
    }
    Err(Error::Auth(
        "no ESUS token: set ESUS_TOKEN, use --token-file or --login (nothing was sent)".into(),
    ))
}

/// Asks without echo. Called from async code before the run starts: `block_in_place` keeps the
/// prompt from holding up a runtime worker.
fn hidden(prompt: &str) -> Option<SecretString> {
    tokio::task::block_in_place(|| {
        dialoguer::Password::new()
            .with_prompt(prompt)
            .interact_on(&dialoguer::console::Term::stderr())
            .ok()
            .filter(|s| !s.is_empty())
            .map(SecretString::from)
    })
}

fn default_run_dir(runbook: &str, run_id: &str) -> PathBuf {
    let stamp = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    PathBuf::from("esus-ir-runs").join(format!("{stamp}-{runbook}-{}", &run_id[..8]))
}

/// `--operator`, else the OS user.
pub fn operator_name(given: Option<&str>) -> String {
    given
        .map(str::to_string)
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("LOGNAME").ok())
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// This machine's name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}
