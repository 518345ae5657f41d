//! `esus-ir keygen`, `verify` and `report`: the transcript's commands, plus the `--sign-key`
//! flag that `run` flattens into its own arguments.

use super::output::out;
use std::path::PathBuf;

use secrecy::SecretString;

use crate::error::{Error, ExitCode};
use crate::transcript::report::legs::{IncidentCheck, check_incident, read_incident};
use crate::transcript::report::{ReportFormat, render_incident};

use crate::transcript::{
    Ancestor, SignatureStatus, Signer, Verification, VerifyOptions, allowed_signers_line,
    default_key_path, default_operator, sign::public_key_path,
};

pub use super::sign_args::{PASSPHRASE_ENV, SignKeyArgs};

/// Arguments of `esus-ir keygen`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  esus-ir keygen -o ~/.ssh/esus-ir_ed25519 --operator alice@example.org >> allowed_signers\n  esus-ir keygen --show >> allowed_signers                      # the per-user key's line\n  esus-ir keygen --show --key ~/.ssh/esus-ir_ed25519 --operator alice@example.org"
)]
pub struct KeygenArgs {
    /// Where to write the private key (PATH.pub gets the public key). Default: the per-user key
    /// in the config folder.
    #[arg(short, long, value_name = "PATH", conflicts_with = "show")]
    pub output: Option<PathBuf>,
    /// The identity in the printed allowed_signers line (default: the OS user).
    #[arg(long, value_name = "NAME")]
    pub operator: Option<String>,
    /// Replace an existing key.
    #[arg(long, conflicts_with = "show")]
    pub force: bool,
    /// Create nothing: print the allowed_signers line of an existing key.
    #[arg(long)]
    pub show: bool,
    /// With --show: the key (its private key or its .pub). Default: the per-user key.
    #[arg(long, value_name = "FILE", requires = "show")]
    pub key: Option<PathBuf>,
}

/// Output format of `verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum VerifyOutput {
    /// Sentences for people.
    #[default]
    Text,
    /// One JSON object, for machines.
    Json,
}

/// Arguments of `esus-ir verify`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  esus-ir verify esus-ir-runs/20260102T030405Z-api-key-compromise-1a2b3c4d   # every leg of the incident\n  esus-ir verify esus-ir-runs/*/                                              # every incident\n  esus-ir verify T.jsonl --allowed-signers allowed_signers --output json\n\nExit 0 when every path verifies, 5 when any does not, 2 when a path does not exist.\n\nWith OpenSSH alone:\n  ssh-keygen -Y verify -f allowed_signers -I OPERATOR -n esus-ir-transcript -s T.jsonl.sig < T.jsonl"
)]
pub struct VerifyArgs {
    /// Transcripts (each signature is TRANSCRIPT.sig) and run folders, each verified: a
    /// transcript with every earlier leg it resumes, a folder as one incident — every leg in
    /// order, each resuming where the one before it ended.
    #[arg(value_name = "TRANSCRIPT|RUN_DIR", required = true, num_args = 1..)]
    pub paths: Vec<PathBuf>,
    /// OpenSSH allowed_signers file: the signer must be listed for the recorded operator.
    #[arg(long, value_name = "FILE")]
    pub allowed_signers: Option<PathBuf>,
    /// Folder of evidence files (default: the transcript's folder/evidence).
    #[arg(long, value_name = "DIR")]
    pub evidence_dir: Option<PathBuf>,
    /// A missing evidence file makes the transcript invalid (default: a warning).
    #[arg(long)]
    pub require_evidence: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = VerifyOutput::Text)]
    pub output: VerifyOutput,
}

/// Output format of `report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ReportFormatArg {
    /// Markdown.
    #[default]
    Markdown,
    /// One self-contained HTML file.
    Html,
    /// One JSON document.
    Json,
}

/// Arguments of `esus-ir report`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  esus-ir report esus-ir-runs/RUN > postmortem.md\n  esus-ir report esus-ir-runs/RUN --format html -o postmortem.html\n  esus-ir report esus-ir-runs/RUN --format json"
)]
pub struct ReportArgs {
    /// A run folder (the whole incident: every leg on one time axis), or a transcript (it and
    /// the legs before it).
    #[arg(value_name = "TRANSCRIPT|RUN_DIR")]
    pub transcript: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormatArg::Markdown)]
    pub format: ReportFormatArg,
    /// Write to this file instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// OpenSSH allowed_signers file for the verification shown in the report.
    #[arg(long, value_name = "FILE")]
    pub allowed_signers: Option<PathBuf>,
    /// Folder of evidence files (default: the transcript's folder/evidence).
    #[arg(long, value_name = "DIR")]
    pub evidence_dir: Option<PathBuf>,
    /// The age identity file (or unencrypted OpenSSH private key) that opens the incident's
    /// encrypted evidence, for the breach's scope; the report itself is printed, never saved
    /// into the evidence folder.
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
}

/// A path given to `verify` or `report`.
pub(super) struct Target {
    /// As given.
    pub(super) given: PathBuf,
    /// The transcript the incident ends with: the file itself, or a folder's last leg (never a
    /// dry-run's plan).
    pub(super) last: PathBuf,
    /// Whether a run folder was given: then every leg in it must be in the chain.
    pub(super) folder: bool,
}

/// What `path` names (a transcript, or a run folder and its last leg), for `scope` too.
pub(super) fn target_of(path: &std::path::Path) -> Result<Target, Error> {
    target(path)
}

/// What `path` names, or a usage error: it does not exist, or is a folder with no leg.
fn target(path: &std::path::Path) -> Result<Target, Error> {
    let meta = std::fs::metadata(path).map_err(|e| {
        Error::Usage(format!(
            "{}: {e} (give a run folder or a transcript)",
            path.display()
        ))
    })?;
    if !meta.is_dir() {
        return Ok(Target {
            given: path.to_path_buf(),
            last: path.to_path_buf(),
            folder: false,
        });
    }
    let last = super::resume_source::latest_transcript(path).ok_or_else(|| {
        Error::Usage(format!(
            "{}: no transcript.jsonl in that folder (give a run folder or a transcript)",
            path.display()
        ))
    })?;
    Ok(Target {
        given: path.to_path_buf(),
        last,
        folder: true,
    })
}

/// Runs `esus-ir keygen`.
pub fn keygen(args: KeygenArgs) -> Result<ExitCode, Error> {
    let operator = args.operator.unwrap_or_else(default_operator);
    if args.show {
        let path = match args.key {
            Some(path) => path,
            None => default_key_path().ok_or(crate::transcript::TranscriptError::NoConfigDir)?,
        };
        out(&format!(
            "{}\n",
            allowed_signers_line(&operator, &existing_public_key(&path)?)
        ))?;
        return Ok(ExitCode::Success);
    }
    let path = match args.output {
        Some(path) => path,
        None => default_key_path().ok_or(crate::transcript::TranscriptError::NoConfigDir)?,
    };
    let signer = Signer::generate(&operator)?;
    signer.write_key_files(&path, args.force)?;
    eprintln!(
        "wrote the private key to {} (mode 0600) and the public key to {}",
        path.display(),
        public_key_path(&path).display()
    );
    eprintln!("allowed_signers line (for `verify --allowed-signers` and `ssh-keygen -Y verify`):");
    out(&format!(
        "{}\n",
        allowed_signers_line(&operator, &signer.public_key_openssh())
    ))?;
    Ok(ExitCode::Success)
}

/// The Ed25519 public key of the key at `path`: `path` itself when it is a public key, else the
/// `.pub` beside it, else the private key's own (decrypted with the passphrase variable).
fn existing_public_key(path: &std::path::Path) -> Result<String, Error> {
    let ed25519 = |text: &str| {
        let line = text.lines().find(|l| !l.trim().is_empty())?.trim();
        let key = ssh_key::PublicKey::from_openssh(line).ok()?;
        (key.algorithm() == ssh_key::Algorithm::Ed25519).then(|| line.to_string())
    };
    if let Some(line) = std::fs::read_to_string(path)
        .ok()
        .as_deref()
        .and_then(ed25519)
    {
        return Ok(line);
    }
    if let Some(line) = std::fs::read_to_string(public_key_path(path))
        .ok()
        .as_deref()
        .and_then(ed25519)
    {
        return Ok(line);
    }
    if !path.exists() {
        return Err(Error::Usage(format!(
            "no signing key at {}: create one with `esus-ir keygen -o {}`",
            path.display(),
            path.display()
        )));
    }
    let passphrase = std::env::var(PASSPHRASE_ENV).ok().map(SecretString::from);
    Ok(Signer::load(path, passphrase.as_ref())?.public_key_openssh())
}

/// Runs `esus-ir verify`: each path on its own, every usage error found before any is checked.
pub fn verify(args: VerifyArgs) -> Result<ExitCode, Error> {
    let options = VerifyOptions {
        allowed_signers: args.allowed_signers,
        evidence_dir: args.evidence_dir,
        require_evidence: args.require_evidence,
        trusted_key: None,
        skip_signature: false,
    };
    let (targets, unusable): (Vec<_>, Vec<_>) = args
        .paths
        .iter()
        .map(|p| target(p))
        .partition(Result::is_ok);
    if !unusable.is_empty() {
        let said: Vec<String> = unusable
            .into_iter()
            .filter_map(Result::err)
            .map(|e| e.to_string())
            .collect();
        return Err(Error::Usage(said.join("\n")));
    }
    let mut all_ok = true;
    let mut text = String::new();
    let mut docs = Vec::new();
    for t in targets.into_iter().filter_map(Result::ok) {
        let check = check_incident(&t.last, &options, t.folder)?;
        all_ok &= check.chain.ok;
        match args.output {
            VerifyOutput::Json => docs.push(verification_json(&t, &check)?),
            VerifyOutput::Text => text.push_str(&render_target(&t, &check)),
        }
    }
    if args.output == VerifyOutput::Json {
        // One path: its object, as always; several: an array of them, in the order given.
        let doc = match docs.len() {
            1 => docs.swap_remove(0),
            _ => serde_json::Value::Array(docs),
        };
        text = serde_json::to_string_pretty(&doc)
            .map_err(|e| Error::Usage(format!("rendering JSON: {e}")))?;
        text.push('\n');
    }
    out(&text)?;
    Ok(if all_ok {
        ExitCode::Success
    } else {
        ExitCode::Invalid
    })
}

/// A verification as JSON: the last leg's document (with its earlier links under `ancestors`),
/// plus the path given and, for a folder, its legs in order.
fn verification_json(t: &Target, check: &IncidentCheck) -> Result<serde_json::Value, Error> {
    let mut doc = serde_json::to_value(&check.chain)
        .map_err(|e| Error::Usage(format!("rendering JSON: {e}")))?;
    if let Some(map) = doc.as_object_mut() {
        map.insert("path".into(), t.given.display().to_string().into());
        if t.folder {
            map.insert("legs".into(), leg_names(check).into());
        }
    }
    Ok(doc)
}

fn leg_names(check: &IncidentCheck) -> Vec<String> {
    check
        .legs
        .iter()
        .filter_map(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect()
}

/// The text of one path: its verdict on the first line, the details indented below.
fn render_target(t: &Target, check: &IncidentCheck) -> String {
    if !t.folder {
        return render_verification(&check.chain);
    }
    let v = &check.chain;
    let legs = leg_names(check);
    let mut out = format!(
        "{}: {} (an incident of {} leg{}: {})\n",
        if v.ok { "VALID" } else { "INVALID" },
        t.given.display(),
        legs.len(),
        if legs.len() == 1 { "" } else { "s" },
        legs.join(" → ")
    );
    let detail = render_verification(v);
    out.push_str(&format!("  last leg:  {}\n", t.last.display()));
    out.extend(detail.lines().skip(1).map(|l| format!("{l}\n")));
    out
}

/// Runs `esus-ir report`.
pub fn report(args: ReportArgs) -> Result<ExitCode, Error> {
    let options = VerifyOptions {
        allowed_signers: args.allowed_signers,
        evidence_dir: args.evidence_dir,
        ..VerifyOptions::default()
    };
    let t = target(&args.transcript)?;
    let check = check_incident(&t.last, &options, t.folder)?;
    // A report of a broken chain would present altered records as fact: reading refuses one.
    let mut incident = read_incident(&check, &options)?;
    // The post-mortem shows the breach's scope when there is audit evidence about the
    // incident's user (without it, or without the user, there is none to show).
    let dir = options
        .evidence_dir
        .clone()
        .unwrap_or_else(|| crate::transcript::layout::default_evidence_dir(&t.last));
    let options = crate::scope::ScopeOptions {
        identities: crate::exec::sealed::Identities::from_arg(args.identity.as_deref())
            .map_err(Error::Usage)?,
        ..crate::scope::ScopeOptions::default()
    };
    let scope = crate::scope::scope(&incident, &dir, &options);
    if let Err(why) = &scope
        && why.contains("is encrypted")
    {
        eprintln!("note: no breach scope in this report: {why}");
    }
    incident.scope = scope.ok();
    let format = match args.format {
        ReportFormatArg::Markdown => ReportFormat::Markdown,
        ReportFormatArg::Html => ReportFormat::Html,
        ReportFormatArg::Json => ReportFormat::Json,
    };
    let text = render_incident(&incident, format);
    let Some(path) = args.output else {
        out(&text)?;
        return Ok(ExitCode::Success);
    };
    // A report holding the breach scope of an incident whose evidence is encrypted holds PHI:
    // it goes to disk encrypted to the same recipients, never in clear.
    let sealed = match (&incident.scope, crate::scope::sealed_to(&incident)) {
        (Some(_), Ok(Some(to))) => Some(to),
        (Some(_), Err(e)) => return Err(Error::Usage(e)),
        _ => None,
    };
    let (path, bytes) = match sealed {
        Some(to) => {
            let mut name = path.clone().into_os_string();
            if !path
                .to_string_lossy()
                .ends_with(crate::exec::sealed::SUFFIX)
            {
                name.push(crate::exec::sealed::SUFFIX);
            }
            let bytes = to
                .seal_all(text.as_bytes())
                .map_err(|e| Error::io(format!("encrypting {}", path.display()), e))?;
            (std::path::PathBuf::from(name), bytes)
        }
        None => (path, text.into_bytes()),
    };
    crate::transcript::fsutil::write_private_atomic(&path, &bytes)
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    eprintln!("written (0600): {}", path.display());
    Ok(ExitCode::Success)
}

/// The human form of a verification result.
pub fn render_verification(v: &Verification) -> String {
    let mut out = String::new();
    let status = if v.ok { "VALID" } else { "INVALID" };
    out.push_str(&format!("{status}: {}\n", v.transcript.display()));
    out.push_str(&format!("  signature: {}\n", v.signature.detail));
    out.push_str(&format!(
        "  records:   {} ({}{})\n",
        v.events,
        if v.complete { "complete" } else { "incomplete" },
        v.outcome
            .as_deref()
            .map(|o| format!(", outcome {o}"))
            .unwrap_or_default()
    ));
    if let Some(op) = &v.operator {
        out.push_str(&format!("  operator:  {op}\n"));
    }
    for a in &v.approvals {
        out.push_str(&format!("  approved:  {a}\n"));
    }
    out.push_str(&format!(
        "  signed:    {} of {} records{}\n",
        v.signed_records,
        v.events,
        signed_by(v)
    ));
    if !v.identity_checked && v.signature.status != SignatureStatus::Skipped {
        out.push_str(
            "  trust:     integrity only — the signatures were checked against the key the transcript records, not against whose key it is; pass --allowed-signers FILE to check the signer's identity\n",
        );
    }
    render_problems(&mut out, v);
    for a in &v.ancestors {
        out.push_str(&format!("  resumes:   {}\n", ancestor_text(a)));
    }
    for w in &v.warnings {
        out.push_str(&format!("  warning: {w}\n"));
    }
    out
}

/// What signed the records: the final signature, or else how far the last valid checkpoint
/// reaches — a killed run has no final signature, and the records after its last checkpoint
/// are not signed at all.
fn signed_by(v: &Verification) -> String {
    let c = &v.checkpoints;
    if v.signature.status == SignatureStatus::Valid && v.signed_records == v.events {
        return " (the final signature)".to_string();
    }
    match c.last_valid_seq {
        Some(seq) => format!(
            " (seq 0..{} by the last valid checkpoint, seq {seq}; {} of {} checkpoints valid){}",
            c.covered.saturating_sub(1),
            c.valid,
            c.count,
            if c.covered + 1 < v.events {
                format!(
                    "; records seq {}..{} are not signed",
                    c.covered + 1,
                    v.events - 1
                )
            } else {
                String::new()
            }
        ),
        None => format!(" (no valid checkpoint of {})", c.count),
    }
}

/// The first bad event, then every problem with its place in the file.
fn render_problems(out: &mut String, v: &Verification) {
    if let Some(p) = v.first_bad_event() {
        out.push_str(&format!(
            "  first bad event: seq {} (line {}): {}\n",
            p.seq.map_or("?".into(), |s| s.to_string()),
            p.line.unwrap_or(0),
            p.what
        ));
    }
    if !v.problems.is_empty() {
        out.push_str("  problems:\n");
        for p in &v.problems {
            let place = match (p.seq, p.line) {
                (Some(seq), Some(line)) => format!("seq {seq}, line {line}: "),
                (None, Some(line)) => format!("line {line}: "),
                _ => String::new(),
            };
            out.push_str(&format!("    - {place}{}\n", p.what));
        }
    }
}

/// An earlier transcript this one resumes: whether it is there and valid, and whether it ends
/// where its successor says it resumed.
fn ancestor_text(a: &Ancestor) -> String {
    let state = match (a.present, a.valid, a.intact_prefix) {
        (false, _, _) => "not in the run folder".to_string(),
        (true, true, _) => format!("valid, {} records", a.records),
        (true, false, true) => format!(
            "a stopped run's intact prefix: {} records, {} signed",
            a.records, a.signed_records
        ),
        (true, false, false) => "INVALID".to_string(),
    };
    let link = if a.present && !a.linked {
        "; does NOT end where its successor resumed"
    } else {
        ""
    };
    format!("{} ({state}{link})", a.file)
}
