//! `esus-ir run`: arguments, environment and terminal become one run; the library does the rest.
//! Tokens and secret inputs never come from argv.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use secrecy::SecretString;

use super::confirm::TerminalConfirmer;
use super::operator::{self, TokenSources};
use super::output::out;
use super::resume_source;
use super::run_folder::{self, Asked, folders_for, shell_word, transcript_path};
use super::run_inputs::{self, Supplied};
use super::sign_args::SignKeyArgs;
use super::terminal::{self, Terminal};
use super::ui::Ui;
use crate::bundled;
use crate::error::{Error, ExitCode};
use crate::esus::client::{ClientConfig, EsusClient};
use crate::event::{ContainmentState, EventSink, RunMode, RunOutcome};
use crate::exec::approval::{ApprovalPolicy, Confirmer, NeverPrompt};
use crate::exec::dry_run;
use crate::exec::dry_run::PlanDocument;
use crate::exec::evidence::Folders;
use crate::exec::executor::{self, RunMeta, RunOptions};
use crate::exec::report::RunReport;
use crate::exec::shared::{Fanout, Interrupt, Parts, Shared};
use crate::exec::token::OperatorToken;
use crate::exec::token::RefreshStore;
use crate::exec::witness::Witnesses;
use crate::plan::Planner;
use crate::plan::inputs;
use crate::transcript::{Signer, TranscriptWriter, layout};

/// Arguments of `esus-ir run`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:
  ESUS_TOKEN=… esus-ir run api-key-compromise --input key_id=k-123 --input user_id=u-1001
  esus-ir run api-key-compromise --input key_id=k-123 --input user_id=u-1001 --dry-run
  esus-ir run api-key-compromise --non-interactive --yes --output json --inputs-file incident.yaml

The operator's token comes from ESUS_TOKEN, --token-file, --login (password from ESUS_PASSWORD or a
prompt), --login-smart (the browser, SMART on FHIR with PKCE), or a hidden prompt — never from the
command line. ESUS_REFRESH_TOKEN enables renewal.")]
pub struct RunArgs {
    /// A runbook file or bundled runbook name (with --resume: optional, checked against the transcript).
    #[arg(value_name = "RUNBOOK", required_unless_present = "resume")]
    pub runbook: Option<String>,
    /// Continue a stopped run: its run folder (or a transcript in it). Finished steps are not
    /// repeated; containment is checked against ESUS again; the run writes its next transcript
    /// in the same folder.
    #[arg(long, value_name = "RUN_DIR|TRANSCRIPT")]
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
    /// The refresh token, read from this file (instead of ESUS_REFRESH_TOKEN); when ESUS rotates
    /// it mid-run, the new one is written back here (0600), so the next run can renew too.
    #[arg(long, value_name = "PATH", conflicts_with = "refresh_token_keyring")]
    pub refresh_token_file: Option<PathBuf>,
    /// Keep the refresh token in the operating system's keyring (service `esus-ir`, entry
    /// `refresh-token@<ESUS base URL>`): read from there (ESUS_REFRESH_TOKEN seeds it the first
    /// time), and a token ESUS rotates mid-run written back there — never to a file.
    #[arg(long)]
    pub refresh_token_keyring: bool,
    /// Log in through the browser before the run (SMART on FHIR, authorization code + PKCE):
    /// the tokens stay in memory, the refresh token renews the access token mid-run.
    #[arg(long, conflicts_with_all = ["login", "token_file"])]
    pub login_smart: bool,
    /// With --login-smart: how long to wait for the browser (e.g. 90s, 5m).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = super::login_cmd::duration, requires = "login_smart")]
    pub login_timeout: std::time::Duration,
    /// SMART scopes and browser (with --login-smart).
    #[command(flatten)]
    pub smart: super::login_cmd::SmartArgs,
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
    /// Run a signed plan (`esus-ir plan`, `esus-ir approve`): refuse to start without
    /// --require-approvals valid approvals beside it (PLAN.*.sig) by distinct --allowed-signers
    /// other than the operator, then send only the requests it allows. A run begun under a plan
    /// is resumed under the same plan.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["dry_run", "yes", "approve"])]
    pub plan: Option<PathBuf>,
    /// Instead of --yes for unattended runs: a policy signed by an approver (`FILE.sig`, namespace
    /// esus-ir-policy; the signer listed in --allowed-signers): the runbooks, steps, ESUS URLs,
    /// input patterns and fan-out sizes it allows. Anything outside it is refused (exit 3).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["yes", "approve", "plan"])]
    pub policy: Option<PathBuf>,
    /// How many approvals the plan needs (with --plan: default 1). Without --plan: the run
    /// first writes its plan into the run folder (plan.json), prints its digest and waits for
    /// N approvals (`esus-ir approve`, by others) before it sends any write.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=16), conflicts_with_all = ["dry_run", "yes", "approve", "policy"])]
    pub require_approvals: Option<u16>,
    /// Approve this step (typed steps included); repeatable.
    #[arg(long, value_name = "STEP_ID")]
    pub approve: Vec<String>,
    /// Set by `esus-ir plan`: its dry-run lists the digest of every fan-out request.
    #[arg(skip)]
    pub bind_items: bool,
    /// Never prompt, even on a terminal.
    #[arg(long)]
    pub non_interactive: bool,
    /// Send no write; print every request after checking the setup with the read-only preflight
    /// (`--dry-run=reads`: also send the safe GETs). Exits 2/4/6 as a live run would.
    #[arg(long, value_name = "WHAT", num_args = 0..=1, require_equals = true, default_missing_value = "all", value_parser = ["all", "reads"])]
    pub dry_run: Option<String>,
    /// With `--dry-run` (or `esus-ir plan`): send nothing at all, not even the preflight (no
    /// token needed; the token and URL are not checked).
    #[arg(long)]
    pub offline: bool,
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
    /// Encrypt every evidence file and secret output (age) to this recipient: an age public key
    /// (age1…) or an SSH public key line. Repeatable. Nothing is written in clear first.
    #[arg(long = "encrypt-to", value_name = "RECIPIENT")]
    pub encrypt_to: Vec<String>,
    /// Encrypt to the recipients in this file (one per line, `#` comments; as age's -R).
    #[arg(long, value_name = "FILE", env = "ESUS_IR_ENCRYPT_TO_FILE")]
    pub encrypt_to_file: Option<PathBuf>,
    /// Refuse to run unless the evidence is encrypted (a site sets ESUS_IR_REQUIRE_ENCRYPTION=1).
    #[arg(long, env = "ESUS_IR_REQUIRE_ENCRYPTION", value_parser = clap::builder::BoolishValueParser::new())]
    pub require_encryption: bool,
    /// Transcript path. Default: <run-dir>/transcript.jsonl.
    #[arg(long, value_name = "PATH")]
    pub transcript: Option<PathBuf>,
    /// Who is running this (recorded and used as the signer identity). Default: the OS user.
    #[arg(long, value_name = "NAME")]
    pub operator: Option<String>,
    /// The incident this run belongs to (a ticket or page id): recorded in the transcript, the
    /// JSON result and the report, apart from the signer's identity.
    #[arg(long, value_name = "ID")]
    pub incident_id: Option<String>,
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
pub fn run(args: RunArgs, term: Terminal) -> Result<ExitCode, Error> {
    live_flags(&args)?;
    let output = args.output;
    let done = super::runtime::runtime()?.block_on(execute(args, term, RunMode::Live, None))?;
    print_finished(&done, output, term)?;
    Ok(done.exit_code())
}

/// Flags a live run cannot take (`esus-ir plan` sets its own dry-run and may be offline).
pub(super) fn live_flags(args: &RunArgs) -> Result<(), Error> {
    if args.offline && args.dry_run.is_none() {
        return Err(Error::Usage(
            "--offline goes with --dry-run: a live run cannot send nothing (nothing was sent)"
                .into(),
        ));
    }
    Ok(())
}

/// What a run left behind.
pub enum Finished {
    /// A dry-run: the plan.
    Dry(Box<PlanDocument>),
    /// A live (or drill) run.
    Live(Box<RunReport>),
}

impl Finished {
    /// The process exit code.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Finished::Dry(plan) => plan.outcome.exit_code(),
            Finished::Live(r) => r.outcome.exit_code(),
        }
    }

    /// The `--output json` document.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Finished::Dry(plan) => serde_json::to_value(plan).unwrap_or_default(),
            Finished::Live(r) => serde_json::to_value(r).unwrap_or_default(),
        }
    }
}

/// Prints a finished run on stdout: the containment state first, then every step, then what to
/// do next.
pub fn print_finished(done: &Finished, output: OutputFormat, term: Terminal) -> Result<(), Error> {
    let styles = term.stdout_styles();
    match (done, output) {
        (_, OutputFormat::Json) => out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&done.to_json()).unwrap_or_default()
        )),
        (Finished::Dry(plan), OutputFormat::Text) => {
            let mut text = String::new();
            for gap in &plan.not_done {
                text.push_str(&styles.warn(format!("NOT done — {gap}\n")));
            }
            text.push_str(&crate::plan::render_text(&plan.steps));
            if let Some(t) = &plan.transcript {
                text.push_str(&format!("\ntranscript: {}\n", t.display()));
            }
            match (&plan.error, &plan.acting_as) {
                (Some(why), _) => text.push_str(&format!(
                    "\n{}\n",
                    styles.failed(format!("A live run would not start: {why}"))
                )),
                (None, Some(who)) => text.push_str(&format!("\nchecked: {who}\n")),
                (None, None) if plan.offline => text.push_str(
                    "\noffline: the token and the URL were not checked (nothing was sent)\n",
                ),
                (None, None) => {}
            }
            if let (None, Some(cmd)) = (&plan.error, &plan.apply_command) {
                text.push_str(&format!("\nTo run it for real:\n  {cmd}\n"));
            }
            out(&text)
        }
        (Finished::Live(r), OutputFormat::Text) => {
            let line = r.containment_line();
            let line = match r.contained {
                ContainmentState::Contained => styles.ok(line),
                ContainmentState::NotContained => styles.failed(line),
                ContainmentState::NotApplicable => line,
            };
            let mut text = format!("\n{line}\n{}", r.render_text());
            if let Some(entry) = &r.refresh_token_keyring {
                text.push_str(&format!(
                    "ESUS rotated the refresh token during this run: the new one is in the OS keyring (service esus-ir, entry {entry}); the old one no longer works\n"
                ));
            }
            if let Some(path) = &r.refresh_token_file {
                text.push_str(&format!(
                    "ESUS rotated the refresh token during this run: the new one is in {} (0600); the old one no longer works — use --refresh-token-file {} next time\n",
                    path.display(),
                    shell_word(&path.display().to_string())
                ));
            }
            if !r.by_hand.is_empty() {
                text.push_str(
                    "Every step ran; a resume would get the same answers. Next, by hand:\n",
                );
                for step in &r.by_hand {
                    text.push_str(&format!("  - {step}\n"));
                }
            }
            if let Some(cmd) = &r.resume_command {
                text.push_str(&format!("To continue this run:\n  {cmd}\n"));
            }
            if !r.next_steps.is_empty() {
                text.push_str("Contained. Next:\n");
                for step in &r.next_steps {
                    text.push_str(&format!("  {step}\n"));
                }
            }
            out(&text)
        }
    }
}

/// Runs a drill: like [`execute`] against the simulator, approving every step when `approve_all`.
pub async fn execute_drill(
    mut args: RunArgs,
    term: Terminal,
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
    execute(args, term, RunMode::Drill, Some(target)).await
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
    term: Terminal,
    mode: RunMode,
    drill: Option<DrillTarget>,
) -> Result<Finished, Error> {
    execute_carrying(args, term, mode, drill, &mut Carried::default()).await
}

/// What a command of two legs — the plan, then the run approved from it — asks the operator
/// once and uses in both: the run's inputs and the operator's token (a renewal in the first leg
/// serves the second).
#[derive(Default)]
pub struct Carried {
    /// The resolved inputs.
    inputs: Option<crate::plan::inputs::Inputs>,
    /// The operator's token.
    token: Option<Arc<OperatorToken>>,
}

/// [`execute`], taking the inputs and token from `carried` when an earlier leg had them, and
/// leaving this leg's there for the next.
pub async fn execute_carrying(
    args: RunArgs,
    term: Terminal,
    mode: RunMode,
    drill: Option<DrillTarget>,
    carried: &mut Carried,
) -> Result<Finished, Error> {
    // Listening before the first prompt: a Ctrl-C at the token or an input prompt ends the
    // command with 130 and nothing sent, never a killed process.
    let (handle, interrupt) = Interrupt::new();
    let ctrl_c = terminal::ctrl_c_listener(handle)?;
    let subject = what_to_run(&args, term)?;
    let interactive = terminal::interactive(args.non_interactive);
    let resume = match &subject.resumed {
        Some(r) => Some(resume_plan(r, &subject.valid)?),
        None => None,
    };
    if let Some(done) = finished_earlier(&subject, resume.as_ref()) {
        return Ok(done);
    }
    let inputs = match carried.inputs.clone() {
        Some(given) => given,
        None => inputs_before_start(
            &args,
            &subject.valid,
            interactive,
            drill.as_ref(),
            resume.as_ref(),
            &interrupt,
        )?,
    };
    carried.inputs = Some(inputs.clone());
    let client = client_for(&args, drill.as_ref(), subject.resumed.as_ref())?;
    let policy = approvals(&args, &subject, &inputs, &client, interactive, &interrupt)?;
    let place = place_run(&args, &subject)?;
    let asked = TokenAsk {
        args: &args,
        drill: drill.as_ref(),
        client: &client,
        interactive,
        interrupt: &interrupt,
        // Least privilege: a SMART login asks for what this runbook needs, unless told.
        runbook_scopes: super::scopes_cmd::smart_scopes_for(&subject.valid),
    };
    let token = carried_token(asked, &place, carried).await?;
    let writer = open_transcript(&args.sign, term, &place.transcript, &interrupt)?;
    ctrl_c.run_started();
    let ui = progress_ui(&args, term);
    let outlets = outlets(&ui, &writer, interactive, &interrupt, term);
    let access = Access {
        client,
        token,
        policy,
        interrupt,
        drill: drill.is_some(),
    };
    let shared = shared_for(&args, &subject, &place, resume.as_ref(), access, outlets)?;
    let meta = run_meta(&args, mode, &place.run_id, &subject.source, resume.as_ref());
    if let Some(what) = &args.dry_run {
        let how = dry_run::DryRun {
            reads: what == "reads",
            offline: args.offline,
            bind_items: args.bind_items,
        };
        let plan = dry_run::run(shared, &inputs, meta, how, resume.as_ref()).await;
        ctrl_c.stop();
        return finish_dry_run(plan, &writer, place.transcript);
    }
    let opts = RunOptions {
        max_parallel: args.max_parallel.into(),
        resume,
    };
    let report = executor::run(shared, &inputs, meta, opts).await;
    ctrl_c.stop();
    let report = with_next_steps(report, &inputs, &place.run_dir);
    finish_live_run(report, &writer, place, args.output, term)
}

/// The runbook a run follows, and the stopped run it continues, if any.
struct Subject {
    /// The stopped run `--resume` names.
    resumed: Option<resume_source::Resumed>,
    /// The runbook's text and where it was read from.
    source: bundled::RunbookSource,
    /// The runbook, validated.
    valid: Arc<crate::runbook::Validated>,
}

/// Where this leg of a run writes, settled before the operator's token is read.
struct Place {
    /// This leg's run id.
    run_id: String,
    /// The run folder.
    run_dir: PathBuf,
    /// Its evidence and secrets folders.
    folders: Folders,
    /// This leg's transcript.
    transcript: PathBuf,
    /// This command created the run folder.
    created: bool,
}

/// What lets the run reach ESUS and act there, as [`Parts`] takes it.
struct Access {
    /// The ESUS client.
    client: EsusClient,
    /// The operator's token.
    token: Arc<OperatorToken>,
    /// What is approved, and whether anyone may be asked.
    policy: ApprovalPolicy,
    /// The Ctrl-C count.
    interrupt: Interrupt,
    /// Whether this is a drill against the simulator.
    drill: bool,
}

/// Where a run's events and questions go.
struct Outlets {
    /// The progress display.
    progress: Arc<Ui>,
    /// Who answers a confirmation.
    confirmer: Arc<dyn Confirmer>,
    /// The transcript and the display, fed together.
    sink: Arc<dyn EventSink>,
}

/// The name of the runbook `args` names, read and validated.
pub(super) fn runbook_name(args: &RunArgs, term: Terminal) -> Result<String, Error> {
    Ok(what_to_run(args, term)?.valid.runbook.name.clone())
}

/// Reads what the run follows: with `--resume`, the stopped run's transcript and its runbook
/// (RUNBOOK, when given, is checked against it); else RUNBOOK.
fn what_to_run(args: &RunArgs, term: Terminal) -> Result<Subject, Error> {
    let refired = refired_page(args);
    let resumed = match args.resume.as_ref().or(refired.as_ref()) {
        Some(path) => Some(resume_source::load(
            path,
            args.runbook.as_deref(),
            &args.sign,
        )?),
        None => None,
    };
    if let (Some(dir), Some(r)) = (&refired, &resumed) {
        same_incident(args, dir, r)?;
        eprintln!(
            "note: {} already holds this incident: continuing it, as `esus-ir run --resume {}` would (nothing done is done again)",
            dir.display(),
            shell_word(&dir.display().to_string())
        );
    }
    let source = match (&resumed, &args.runbook) {
        (Some(r), _) => r.source.clone(),
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
        term.stderr_styles().enabled(),
    )?);
    Ok(Subject {
        resumed,
        source,
        valid,
    })
}

/// A page that fires again for the same incident names the same `--run-dir`: when that folder
/// already holds a run (a transcript with at least one record), this command continues it —
/// or reports it complete — instead of failing as a second run in one folder.
fn refired_page(args: &RunArgs) -> Option<PathBuf> {
    if args.resume.is_some() || args.transcript.is_some() {
        return None;
    }
    let dir = args.run_dir.as_ref()?;
    let first = dir.join(crate::transcript::layout::TRANSCRIPT_FILE);
    // A first record holds the whole runbook: read as far as its end of line, within reason.
    let mut head = Vec::new();
    let file = std::fs::File::open(&first).ok()?;
    std::io::Read::read_to_end(&mut std::io::Read::take(file, 4 * 1024 * 1024), &mut head).ok()?;
    head.contains(&b'\n').then(|| dir.clone())
}

/// A re-fired page continues its incident only with the inputs that incident recorded: a
/// different value (another key) is another incident, which needs its own folder.
fn same_incident(args: &RunArgs, dir: &Path, r: &resume_source::Resumed) -> Result<(), Error> {
    let recorded = r
        .records
        .first()
        .and_then(|f| f.data.get("inputs"))
        .and_then(serde_json::Value::as_object);
    let differs: Vec<String> = args
        .inputs
        .iter()
        .filter_map(|pair| pair.split_once('='))
        .filter_map(|(k, v)| {
            let was = recorded?.get(k.trim())?;
            let was = was.as_str().map_or_else(|| was.to_string(), str::to_string);
            (was != v).then(|| format!("{}={v} (the incident has {was})", k.trim()))
        })
        .collect();
    if differs.is_empty() {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "{} already holds another incident: this command names {}; give this incident its own --run-dir (nothing was sent)",
        dir.display(),
        differs.join(", ")
    )))
}

/// A resumed run that had already completed ends here, before any prompt: its result is told
/// again and nothing is sent.
fn finished_earlier(
    subject: &Subject,
    resume: Option<&crate::exec::resume::ResumePlan>,
) -> Option<Finished> {
    match (&subject.resumed, resume) {
        (Some(r), Some(plan)) if plan.complete => Some(Finished::Live(Box::new(already_complete(
            r,
            plan,
            &subject.valid,
        )))),
        _ => None,
    }
}

/// The run's inputs. A Ctrl-C at an input prompt wins over whatever the prompt returned (a
/// value, or the error of a prompt cut short): the command ends with 130 and nothing sent.
fn inputs_before_start(
    args: &RunArgs,
    valid: &crate::runbook::Validated,
    interactive: bool,
    drill: Option<&DrillTarget>,
    resume: Option<&crate::exec::resume::ResumePlan>,
    interrupt: &Interrupt,
) -> Result<crate::plan::inputs::Inputs, Error> {
    let inputs = resolve_inputs(args, valid, interactive, drill, resume, interrupt);
    if interrupt.count() > 0 {
        return Err(Error::interrupted_before_start());
    }
    inputs
}

/// What the operator approved up front. An `--approve` naming a step the runbook does not have
/// is refused before anything is sent: a misspelt id would approve nothing.
fn approval_policy(
    args: &RunArgs,
    valid: &crate::runbook::Validated,
    interactive: bool,
) -> Result<ApprovalPolicy, Error> {
    let policy = ApprovalPolicy {
        interactive,
        yes: args.yes,
        approve: args.approve.iter().cloned().collect(),
        plan: None,
        policy: None,
    };
    let unknown = policy.unknown_steps(valid);
    if !unknown.is_empty() {
        let ids: Vec<&str> = valid.runbook.steps.iter().map(|s| s.id.as_str()).collect();
        let named: Vec<String> = unknown
            .iter()
            .map(|u| match crate::runbook::validate::suggest(u, &ids) {
                Some(s) => format!("`{u}` (did you mean `{s}`?)"),
                None => format!("`{u}`"),
            })
            .collect();
        return Err(Error::Usage(format!(
            "--approve names steps the runbook does not have: {} (its steps: {}; nothing was sent)",
            named.join(", "),
            ids.join(", ")
        )));
    }
    Ok(policy)
}

/// What approves this run's steps: the flags, and a signed policy or plan when one is named
/// (each verified before anything is sent).
fn approvals(
    args: &RunArgs,
    subject: &Subject,
    inputs: &crate::plan::inputs::Inputs,
    client: &EsusClient,
    interactive: bool,
    interrupt: &Interrupt,
) -> Result<ApprovalPolicy, Error> {
    let mut policy = approval_policy(args, &subject.valid, interactive)?;
    if let Some(path) = &args.policy {
        policy.policy = Some(Arc::new(signed_policy(
            args, path, subject, inputs, client,
        )?));
    }
    let begun_under = subject.resumed.as_ref().and_then(|r| {
        r.records
            .iter()
            .find(|rec| rec.kind == "plan-approved")
            .and_then(|rec| rec.str_field("plan_sha256"))
            .map(str::to_string)
    });
    if let (Some(digest), None) = (&begun_under, &args.plan) {
        return Err(Error::Declined(format!(
            "refusing to resume: this run was begun under the signed plan sha256 {digest}, and continues only under it: add --plan FILE --allowed-signers FILE (nothing was sent)"
        )));
    }
    if let Some(path) = &args.plan {
        let gate = signed_plan(args, path, subject, inputs, client, interactive, interrupt);
        if interrupt.count() > 0 {
            return Err(Error::interrupted_before_start());
        }
        let gate = gate?;
        if let Some(digest) = begun_under.filter(|d| *d != gate.digest) {
            return Err(Error::Declined(format!(
                "refusing to resume: this run was begun under the signed plan sha256 {digest}, not {} (sha256 {}) (nothing was sent)",
                path.display(),
                gate.digest
            )));
        }
        policy.plan = Some(Arc::new(gate));
    }
    Ok(policy)
}

/// Who may approve (`--allowed-signers`), and the operator's own public key (whose approval
/// never counts) — read once for `--plan` and `--policy` alike.
fn approvers_and_operator(
    args: &RunArgs,
    flag: &str,
    what: &str,
) -> Result<(Vec<crate::transcript::AllowedSigner>, Option<String>), Error> {
    let file = args.sign.resume_allowed_signers.as_ref().ok_or_else(|| {
        Error::Usage(format!(
            "{flag} needs --allowed-signers FILE: who may {what} (nothing was sent)"
        ))
    })?;
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::io(format!("reading {}", file.display()), e))?;
    let (signers, _) = crate::transcript::parse_allowed_signers(&text);
    Ok((signers, args.sign.public_key()?))
}

/// The signed policy `--policy` names, verified and judged against this run — else the run does
/// not start (exit 3).
fn signed_policy(
    args: &RunArgs,
    path: &Path,
    subject: &Subject,
    inputs: &crate::plan::inputs::Inputs,
    client: &EsusClient,
) -> Result<crate::exec::policy::Policy, Error> {
    let (signers, own) = approvers_and_operator(args, "--policy", "sign it")?;
    let secret: std::collections::BTreeSet<&String> = inputs.secrets.keys().collect();
    let given: Vec<(String, String)> = inputs
        .display
        .iter()
        .filter(|(k, v)| !v.is_null() && !secret.contains(k))
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str().map_or_else(|| v.to_string(), str::to_string),
            )
        })
        .collect();
    let facts = crate::exec::policy::RunFacts {
        runbook: &subject.valid.runbook.name,
        runbook_sha256: &crate::transcript::sha256_hex(subject.source.text.as_bytes()),
        base_url: client.base().as_str(),
        inputs: given,
    };
    crate::exec::policy::load(
        path,
        &signers,
        own.as_deref(),
        &facts,
        jiff::Timestamp::now(),
    )
    .map_err(|why| {
        Error::Declined(format!(
            "refusing to start: outside the signed policy {}: {} (nothing was sent)",
            path.display(),
            why.join("; ")
        ))
    })
}

/// The signed plan `--plan` names, verified: approved by enough distinct allowed signers (not
/// the operator), not expired, and for exactly this runbook, ESUS and inputs — else the run does
/// not start (exit 3; a file that is not a plan: 2).
fn signed_plan(
    args: &RunArgs,
    path: &Path,
    subject: &Subject,
    inputs: &crate::plan::inputs::Inputs,
    client: &EsusClient,
    interactive: bool,
    interrupt: &Interrupt,
) -> Result<crate::exec::plan_gate::PlanGate, Error> {
    use crate::exec::plan_gate::{PlanGate, PlanRefusal};
    let (signers, own) = approvers_and_operator(args, "--plan", "approve")?;
    let load = || {
        PlanGate::load(
            path,
            &signers,
            args.require_approvals.map_or(1, usize::from),
            own.as_deref(),
            jiff::Timestamp::now(),
        )
    };
    let first = load();
    let waiting =
        matches!(&first, Err(PlanRefusal::NotApproved(why)) if why.contains("approval(s)"));
    let gate = if waiting && interactive {
        super::plan_wait::wait_for_approvals(path, load, interrupt)
    } else {
        first
    }
    .map_err(|r| match r {
        PlanRefusal::Malformed(why) => Error::Usage(format!("{why} (nothing was sent)")),
        PlanRefusal::NotApproved(why) => {
            Error::Declined(format!("refusing to start: {why} (nothing was sent)"))
        }
    })?;
    let runbook = crate::transcript::sha256_hex(subject.source.text.as_bytes());
    let mut deviations = Vec::new();
    if gate.plan["runbook_sha256"].as_str() != Some(runbook.as_str()) {
        deviations.push("the runbook is not the one planned".to_string());
    }
    if gate.plan["base_url"].as_str() != Some(client.base().as_str()) {
        deviations.push(format!(
            "ESUS is {}, not the planned {}",
            client.base(),
            gate.plan["base_url"]
        ));
    }
    if gate.plan["inputs"].as_object() != Some(&*inputs.display) {
        deviations.push(format!(
            "the inputs are {}, not the planned {}",
            serde_json::Value::Object((*inputs.display).clone()),
            gate.plan["inputs"]
        ));
    }
    if !deviations.is_empty() {
        return Err(Error::Declined(format!(
            "refusing to start: this run deviates from the signed plan: {} (nothing was sent)",
            deviations.join("; ")
        )));
    }
    Ok(gate)
}

/// Who this leg's evidence is encrypted to: the recipients given (`--encrypt-to`,
/// `--encrypt-to-file`), or, on a resume given none, those the incident's earlier legs recorded —
/// a resume never writes in clear what the incident encrypts. Refused before anything is sent:
/// a runbook or site that requires encryption without a recipient, or a resume that would
/// encrypt to other people than the incident does.
fn sealing(
    args: &RunArgs,
    subject: &Subject,
) -> Result<Option<crate::exec::sealed::Recipients>, Error> {
    use crate::exec::sealed::Recipients;
    let mut given: Vec<String> = args.encrypt_to.clone();
    if let Some(file) = &args.encrypt_to_file {
        given.extend(Recipients::lines_of(file).map_err(Error::Usage)?);
    }
    let recorded: Vec<String> = subject
        .resumed
        .as_ref()
        .and_then(|r| {
            r.records
                .iter()
                .find(|rec| rec.kind == "run-started")
                .and_then(|rec| rec.data.get("evidence_recipients"))
                .and_then(serde_json::Value::as_array)
                .map(|list| {
                    list.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
        })
        .unwrap_or_default();
    // Asked to encrypt — even with an empty recipients file — means encrypted or not at all:
    // a broken site configuration must not quietly give clear PHI.
    let asked = !args.encrypt_to.is_empty() || args.encrypt_to_file.is_some();
    let seal = match (asked, recorded.is_empty()) {
        (false, true) => None,
        (false, false) => Some(
            Recipients::parse(recorded.iter().map(String::as_str))
                .map_err(|e| Error::Usage(format!("the incident's recorded recipients: {e}")))?,
        ),
        (true, _) => {
            let r = Recipients::parse(given.iter().map(String::as_str))
                .map_err(|e| Error::Usage(format!("--encrypt-to: {e}")))?;
            if !recorded.is_empty() && r.shown() != recorded.as_slice() {
                return Err(Error::Usage(format!(
                    "this incident's evidence is encrypted to {}; a resume encrypts to the same recipients (omit --encrypt-to). Nothing was sent",
                    recorded.join(", ")
                )));
            }
            Some(r)
        }
    };
    let required = subject.valid.runbook.evidence.encrypt
        == crate::runbook::model::Encrypt::Required
        || args.require_encryption;
    if required && seal.is_none() {
        let who = if args.require_encryption {
            "this site requires encrypted evidence (ESUS_IR_REQUIRE_ENCRYPTION)"
        } else {
            "this runbook requires encrypted evidence (`evidence: { encrypt: required }`)"
        };
        return Err(Error::Usage(format!(
            "{who}: give --encrypt-to RECIPIENT (an age public key, or an SSH public key line) or --encrypt-to-file FILE. Nothing was sent"
        )));
    }
    Ok(seal)
}

/// This leg's run id, folders (checked and created) and transcript path. They are settled
/// before the operator's token is read: a login sends a request, and a refused folder or
/// transcript must still be able to say that nothing was sent.
fn place_run(args: &RunArgs, subject: &Subject) -> Result<Place, Error> {
    let run_id = uuid::Uuid::new_v4().to_string();
    let asked = Asked {
        run_dir: args.run_dir.as_deref(),
        secrets_dir: args.secrets_dir.as_deref(),
        transcript: args.transcript.as_deref(),
        dry_run: args.dry_run.is_some(),
    };
    let seal = sealing(args, subject)?;
    let (run_dir, mut folders, created) = folders_for(
        &asked,
        subject.resumed.as_ref().map(|r| r.run_dir.as_path()),
        &subject.valid.runbook.name,
        &run_id,
    )?;
    folders.seal = seal;
    let transcript = transcript_path(&asked, subject.resumed.is_some(), &run_dir)?;
    Ok(Place {
        run_id,
        run_dir,
        folders,
        transcript,
        created,
    })
}

/// What the operator's token is read with.
struct TokenAsk<'a> {
    args: &'a RunArgs,
    drill: Option<&'a DrillTarget>,
    client: &'a EsusClient,
    interactive: bool,
    interrupt: &'a Interrupt,
    /// The SMART scopes the runbook needs (`esus-ir scopes`), asked for when `--scope` is not.
    runbook_scopes: Vec<String>,
}

/// The operator's token: the one an earlier leg of this command read, else read now and kept for
/// the next leg. A run folder this command made is removed again when no token came (nothing
/// was put in it).
async fn carried_token(
    ask: TokenAsk<'_>,
    place: &Place,
    carried: &mut Carried,
) -> Result<Arc<OperatorToken>, Error> {
    if let Some(t) = carried.token.clone() {
        return Ok(t);
    }
    let secrets = &place.folders.secrets;
    let read = token_for(&ask, secrets).await;
    match read {
        Ok(t) => {
            let t = Arc::new(t);
            carried.token = Some(t.clone());
            Ok(t)
        }
        Err(e) => {
            if place.created {
                run_folder::remove_if_untouched(&place.run_dir, &place.folders);
            }
            Err(e)
        }
    }
}

/// The operator's token: none for a plan that sends nothing, the simulator's admin for a drill,
/// else the operator's own (a file, a login, or a hidden prompt).
async fn token_for(ask: &TokenAsk<'_>, secrets: &Path) -> Result<OperatorToken, Error> {
    let (args, client) = (ask.args, ask.client);
    match (args.offline, ask.drill) {
        (true, _) => Ok(OperatorToken::default()),
        (_, Some(d)) => Ok(OperatorToken::new(Some(d.token.clone()), d.refresh.clone())
            .saving_refresh_to(RefreshStore::File(
                secrets.join(operator::ROTATED_REFRESH_FILE),
            ))),
        _ => {
            let sources = TokenSources {
                token_file: args.token_file.clone(),
                login: args.login.clone(),
                refresh_file: args.refresh_token_file.clone(),
                refresh_keyring: args
                    .refresh_token_keyring
                    .then(|| super::login_cmd::keyring_entry("refresh-token", client)),
                secrets_dir: Some(secrets.to_path_buf()),
                smart: args.login_smart.then(|| {
                    let mut login = args.smart.settings(args.login_timeout);
                    if login.ask.scopes.is_empty() {
                        login.ask.scopes = ask.runbook_scopes.clone();
                    }
                    login
                }),
                access_keyring: args
                    .refresh_token_keyring
                    .then(|| super::login_cmd::keyring_entry("access-token", client)),
            };
            operator::operator_token(&sources, client, ask.interactive, ask.interrupt).await
        }
    }
}

/// The transcript's writer, with the signing key resolved first (a new key is announced). A
/// Ctrl-C at the token prompt or while the key was read ends the command here, before the
/// transcript exists.
fn open_transcript(
    sign: &SignKeyArgs,
    term: Terminal,
    path: &Path,
    interrupt: &Interrupt,
) -> Result<Arc<TranscriptWriter>, Error> {
    let (signer, created) = Signer::resolve(&sign.clone().into_source())?;
    if let Some(c) = created.filter(|_| !term.quiet) {
        eprintln!("{c}");
    }
    if interrupt.count() > 0 {
        return Err(Error::interrupted_before_start());
    }
    Ok(Arc::new(TranscriptWriter::create(path, signer)?))
}

/// The progress display on stderr: drawn live only on a terminal and when stdout is not JSON.
fn progress_ui(args: &RunArgs, term: Terminal) -> Arc<Ui> {
    Arc::new(Ui::new(
        term.fancy() && args.output == OutputFormat::Text,
        term.quiet,
        term.stderr_styles(),
    ))
}

/// The confirmer (a terminal prompt when someone is there, else one that never asks) and the
/// sink that feeds every event to both the transcript and the display.
fn outlets(
    ui: &Arc<Ui>,
    writer: &Arc<TranscriptWriter>,
    interactive: bool,
    interrupt: &Interrupt,
    term: Terminal,
) -> Outlets {
    let confirmer: Arc<dyn Confirmer> = if interactive {
        Arc::new(TerminalConfirmer::new(
            ui.gate(),
            interrupt.clone(),
            term.stderr_styles(),
        ))
    } else {
        Arc::new(NeverPrompt)
    };
    let sink: Arc<dyn EventSink> = Arc::new(Fanout(vec![writer.clone(), ui.clone()]));
    Outlets {
        progress: ui.clone(),
        confirmer,
        sink,
    }
}

/// What every step of the run shares. The planner names things by the incident (a resume keeps
/// the first leg's); the witnesses are salted per run folder and keep what earlier legs saw.
fn shared_for(
    args: &RunArgs,
    subject: &Subject,
    place: &Place,
    resume: Option<&crate::exec::resume::ResumePlan>,
    access: Access,
    outlets: Outlets,
) -> Result<Arc<Shared>, Error> {
    // A run of a signed plan is the plan's incident: its claim names are the ones approved.
    let planned = access
        .policy
        .plan
        .as_ref()
        .and_then(|g| g.plan["incident"].as_str().map(str::to_string));
    let incident = match (&subject.resumed, planned) {
        (Some(r), _) => resume_source::incident_of(r),
        (None, Some(planned)) => planned,
        (None, None) => place.run_id.clone(),
    };
    let planner = Planner::new(
        subject.valid.clone(),
        access.client.base().clone(),
        args.max_items,
        &incident,
    );
    let folders = &place.folders;
    let salt = folders.witness_salt().map_err(|e| {
        Error::io(
            format!("the witness salt in {}", folders.secrets.display()),
            e,
        )
    })?;
    let earlier = resume.map(|p| p.witnessed.clone()).unwrap_or_default();
    Ok(Arc::new(Shared::new(Parts {
        planner,
        client: access.client,
        token: access.token,
        confirmer: outlets.confirmer,
        policy: access.policy,
        sink: outlets.sink,
        progress: outlets.progress,
        folders: folders.clone(),
        interrupt: access.interrupt,
        drill: access.drill,
        witnesses: Witnesses::new(salt, earlier),
    })))
}

/// What the transcript's first record says of this leg: who ran which runbook text, where, in
/// what mode, and which earlier leg of the incident it continues.
fn run_meta(
    args: &RunArgs,
    mode: RunMode,
    run_id: &str,
    source: &bundled::RunbookSource,
    resume: Option<&crate::exec::resume::ResumePlan>,
) -> RunMeta {
    RunMeta {
        run_id: run_id.to_string(),
        runbook_text: source.text.clone(),
        operator: operator::operator_name(args.operator.as_deref()),
        host: operator::host_name(),
        mode: if args.dry_run.is_some() {
            RunMode::DryRun
        } else {
            mode
        },
        resumes: resume.map(|p| p.resumes.clone()),
        incident_id: args.incident_id.clone(),
        resumes_file: resume.map(|p| p.resumes_file.clone()),
        chain_started_at: resume.and_then(|p| p.chain_started_at.clone()),
    }
}

/// A dry-run's plan, once its transcript is signed: where that transcript is, and the command
/// that runs the plan for real.
fn finish_dry_run(
    mut plan: PlanDocument,
    writer: &TranscriptWriter,
    transcript: PathBuf,
) -> Result<Finished, Error> {
    writer.finish()?;
    plan.transcript = Some(transcript);
    plan.apply_command = Some(apply_command());
    Ok(Finished::Dry(Box::new(plan)))
}

/// Once containment is proven, what comes next: the breach's scope (when the run saved
/// evidence) and, for a compromised user, the sweep for what was left behind.
fn with_next_steps(
    mut report: RunReport,
    inputs: &crate::plan::inputs::Inputs,
    run_dir: &Path,
) -> RunReport {
    if report.contained != crate::event::ContainmentState::Contained {
        return report;
    }
    let dir = shell_word(&run_dir.display().to_string());
    if report.steps.iter().any(|s| !s.evidence.is_empty()) {
        report.next_steps.push(format!(
            "esus-ir scope {dir}        # which patients' records the credential touched"
        ));
    }
    let given = |name: &str| {
        inputs
            .display
            .get(name)
            .and_then(serde_json::Value::as_str)
            .map(|v| format!(" -i {}", shell_word(&format!("{name}={v}"))))
    };
    if let Some(user) = given("user_id") {
        report.next_steps.push(format!(
            "esus-ir run persistence-sweep{user}{} -i since=FIRST_MALICIOUS_ACCESS        # what its holder left behind",
            given("key_id").unwrap_or_default()
        ));
    }
    report
}

/// A live run's report, once its transcript is signed: where the run wrote, and how to
/// continue it when it did not succeed.
fn finish_live_run(
    mut report: RunReport,
    writer: &TranscriptWriter,
    place: Place,
    output: OutputFormat,
    term: Terminal,
) -> Result<Finished, Error> {
    let sig = writer.finish();
    if report.outcome != RunOutcome::Success && report.by_hand.is_empty() {
        report.resume_command = Some(format!(
            "esus-ir run --resume {}",
            shell_word(&place.run_dir.display().to_string())
        ));
    }
    report.run_dir = Some(place.run_dir);
    report.transcript = Some(place.transcript);
    let done = Finished::Live(Box::new(report));
    if let Err(e) = sig {
        // The summary still matters to the operator; the signature problem is reported after it.
        print_finished(&done, output, term)?;
        return Err(e.into());
    }
    Ok(done)
}

/// What an earlier run of this incident finished, from its transcript.
fn resume_plan(
    r: &resume_source::Resumed,
    valid: &crate::runbook::Validated,
) -> Result<crate::exec::resume::ResumePlan, Error> {
    let secrets = r.run_dir.join(layout::SECRETS_DIR);
    let source = crate::exec::resume::Source {
        records: &r.records,
        trusted_len: r.trusted_len,
        file_name: &r.file_name,
        secrets_dir: &secrets,
    };
    let plan = crate::exec::resume::plan(&source, valid).map_err(Error::Usage)?;
    if !plan.complete {
        for note in &plan.notes {
            eprintln!("{note}");
        }
    }
    Ok(plan)
}

/// A run that already completed: nothing is sent; its own result is told again.
fn already_complete(
    r: &resume_source::Resumed,
    plan: &crate::exec::resume::ResumePlan,
    valid: &crate::runbook::Validated,
) -> RunReport {
    let contained = r
        .records
        .iter()
        .rev()
        .find(|x| x.kind == "containment")
        .and_then(|x| x.str_field("state"))
        .map_or(ContainmentState::NotApplicable, |s| match s {
            "contained" => ContainmentState::Contained,
            "not-contained" => ContainmentState::NotContained,
            _ => ContainmentState::NotApplicable,
        });
    let summary = r
        .records
        .iter()
        .rev()
        .find(|x| x.kind == "containment")
        .and_then(|x| x.str_field("summary"))
        .unwrap_or("as recorded by the earlier run")
        .to_string();
    let now = jiff::Timestamp::now().to_string();
    RunReport {
        schema_version: crate::exec::report::SCHEMA_VERSION,
        kind: "result".into(),
        run_id: String::new(),
        incident_id: None,
        operator: operator::operator_name(None),
        mode: RunMode::Live,
        started_at: now.clone(),
        finished_at: now,
        contained,
        time_to_containment_ms: None,
        runbook: valid.runbook.name.clone(),
        outcome: RunOutcome::Success,
        exit_code: 0,
        message: format!(
            "already complete: {} finished this run earlier; nothing was sent",
            r.file_name
        ),
        steps: Vec::new(),
        run_dir: Some(r.run_dir.clone()),
        transcript: Some(r.run_dir.join(&plan.resumes_file)),
        evidence_dir: Some(r.run_dir.join(layout::EVIDENCE_DIR)),
        containment: Some(crate::exec::containment::Containment {
            state: contained,
            summary: format!("{summary} (as the earlier run recorded; not checked again)"),
            checks: Vec::new(),
            time_to_containment_ms: None,
            at: None,
            not_covered: Vec::new(),
        }),
        acting_as: None,
        missing_approvals: Vec::new(),
        resume_command: None,
        refresh_token_file: None,
        refresh_token_keyring: None,
        not_done: Vec::new(),
        by_hand: Vec::new(),
        next_steps: Vec::new(),
    }
}

fn resolve_inputs(
    args: &RunArgs,
    valid: &crate::runbook::Validated,
    interactive: bool,
    drill: Option<&DrillTarget>,
    resume: Option<&crate::exec::resume::ResumePlan>,
    interrupt: &Interrupt,
) -> Result<crate::plan::inputs::Inputs, Error> {
    let supplied = Supplied {
        secrets: drill.map(|d| d.secret_inputs.clone()).unwrap_or_default(),
        defaults: drill.map(|d| d.default_inputs.clone()).unwrap_or_default(),
    };
    let mut sources = run_inputs::input_sources(
        &args.inputs,
        args.inputs_file.as_ref(),
        &args.secret_files,
        interactive,
        supplied,
        interrupt,
    )?;
    if let Some(plan) = resume {
        // The first run's inputs, unless given again.
        for (k, v) in &plan.inputs {
            if !sources.given.iter().any(|(n, _)| n == k) {
                let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                sources.given.insert(0, (k.clone(), text));
            }
        }
    }
    inputs::resolve(&valid.runbook, &sources).map_err(|e| Error::Usage(format!("inputs:\n{e}")))
}

fn client_for(
    args: &RunArgs,
    drill: Option<&DrillTarget>,
    resumed: Option<&resume_source::Resumed>,
) -> Result<EsusClient, Error> {
    // A resume talks to the ESUS the stopped run talked to: taken from its transcript, and a
    // different one given by flag or environment is refused (a run's steps against two ESUS
    // deployments would prove nothing about either).
    let recorded = resumed.and_then(|r| {
        r.records
            .first()
            .and_then(|first| first.data.get("base_url"))
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
    });
    let given = drill.map(|d| d.base_url.clone()).or(args.base_url.clone());
    if let (Some(was), Some(now)) = (&recorded, &given)
        && was.trim_end_matches('/') != now.trim_end_matches('/')
    {
        return Err(Error::Usage(format!(
            "the run being resumed talked to {was}; this resume would talk to {now}. Resume against {was} (drop --base-url / ESUS_BASE_URL, or give that URL), or start a new run (nothing was sent)"
        )));
    }
    let base_url = given
        .or(recorded)
        .ok_or_else(|| Error::Usage("no ESUS base URL: use --base-url or ESUS_BASE_URL".into()))?;
    let mut config = ClientConfig::new(base_url);
    config.ca_cert = drill
        .and_then(|d| d.ca_cert.clone())
        .or(args.ca_cert.clone());
    config.request_timeout = std::time::Duration::from_secs(args.timeout.max(1));
    EsusClient::new(&config).map_err(|e| Error::Usage(e.to_string()))
}

/// This command line without `--dry-run`: what runs the plan for real. (Secrets are never on
/// the command line, so repeating it shows none.)
fn apply_command() -> String {
    let args: Vec<String> = std::env::args().collect();
    let mut words = vec!["esus-ir".to_string()];
    let mut skip_value = false;
    for a in args.iter().skip(1) {
        if skip_value {
            skip_value = false;
            if a == "all" || a == "reads" {
                continue;
            }
        }
        if a == "--dry-run" {
            skip_value = true;
            continue;
        }
        if a.starts_with("--dry-run=") {
            continue;
        }
        words.push(shell_word(a));
    }
    words.join(" ")
}
