//! `esus-ir keygen`, `verify` and `report`: the transcript's commands, plus the `--sign-key`
//! flag that `run` flattens into its own arguments.

use super::output::out;
use std::path::PathBuf;

use secrecy::SecretString;

use crate::error::{Error, ExitCode};
use crate::transcript::report::{ReportFormat, render_report};

use crate::transcript::{
    Ancestor, SignatureStatus, Signer, SignerSource, Verification, VerifyOptions,
    allowed_signers_line, default_key_path, default_operator, read_transcript,
    sign::public_key_path, verify_transcript,
};

/// The environment variable holding the passphrase of an encrypted signing key.
pub const PASSPHRASE_ENV: &str = "ESUS_IR_SIGN_KEY_PASSPHRASE";

/// `--sign-key`: which key signs the transcript (for `run`, flattened).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SignKeyArgs {
    /// OpenSSH Ed25519 private key that signs the transcript (default: a per-user key created on
    /// first use). An encrypted key reads its passphrase from ESUS_IR_SIGN_KEY_PASSPHRASE.
    #[arg(long, env = "ESUS_IR_SIGN_KEY", value_name = "PATH")]
    pub sign_key: Option<PathBuf>,
    /// With --resume: an OpenSSH allowed_signers file naming who may have signed the transcript
    /// resumed (default: only this operator's own signing key). Resume trusts only the records a
    /// trusted key signed (the final signature, or the last checkpoint of a killed run).
    #[arg(long = "allowed-signers", value_name = "FILE")]
    pub resume_allowed_signers: Option<PathBuf>,
}

impl SignKeyArgs {
    /// The signer source: the key path and, from the environment, its passphrase.
    pub fn into_source(self) -> SignerSource {
        SignerSource {
            key: self.sign_key,
            passphrase: std::env::var(PASSPHRASE_ENV).ok().map(SecretString::from),
        }
    }
}

impl SignKeyArgs {
    /// The public key (OpenSSH) of the key this operator signs with, without creating one: the
    /// `.pub` beside it, else the private key itself.
    pub fn public_key(&self) -> Result<Option<String>, Error> {
        let path = match &self.sign_key {
            Some(p) => p.clone(),
            None => match default_key_path() {
                Some(p) => p,
                None => return Ok(None),
            },
        };
        if let Ok(text) = std::fs::read_to_string(public_key_path(&path))
            && let Some(line) = text.lines().find(|l| !l.trim().is_empty())
        {
            return Ok(Some(line.trim().to_string()));
        }
        if !path.exists() {
            return Ok(None);
        }
        let source = self.clone().into_source();
        let signer = Signer::load(&path, source.passphrase.as_ref())?;
        Ok(Some(signer.public_key_openssh()))
    }
}

/// Arguments of `esus-ir keygen`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  esus-ir keygen -o ~/.ssh/esus-ir_ed25519 --operator alice@example.org >> allowed_signers"
)]
pub struct KeygenArgs {
    /// Where to write the private key (PATH.pub gets the public key). Default: the per-user key
    /// in the config folder.
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// The identity in the printed allowed_signers line (default: the OS user).
    #[arg(long, value_name = "NAME")]
    pub operator: Option<String>,
    /// Replace an existing key.
    #[arg(long)]
    pub force: bool,
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
    after_help = "Examples:\n  esus-ir verify runs/2026-01-02T0304-api-key-compromise/transcript.jsonl\n  esus-ir verify T.jsonl --allowed-signers allowed_signers --output json\n\nWith OpenSSH alone:\n  ssh-keygen -Y verify -f allowed_signers -I OPERATOR -n esus-ir-transcript -s T.jsonl.sig < T.jsonl"
)]
pub struct VerifyArgs {
    /// The transcript (its signature is TRANSCRIPT.sig), or a run folder: its last leg, with every
    /// earlier leg of the incident checked through it.
    #[arg(value_name = "TRANSCRIPT|RUN_DIR")]
    pub transcript: PathBuf,
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
}

/// Arguments of `esus-ir report`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  esus-ir report T.jsonl > postmortem.md\n  esus-ir report T.jsonl --format html -o postmortem.html"
)]
pub struct ReportArgs {
    /// The transcript, or a run folder (its last leg).
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
}

/// The transcript a path names: itself, or a run folder's last leg (never a dry-run's plan).
fn leg_of(path: &std::path::Path) -> Result<PathBuf, Error> {
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    super::resume_source::latest_transcript(path).ok_or_else(|| {
        Error::Usage(format!(
            "{}: no transcript.jsonl in that folder (give a run folder or a transcript)",
            path.display()
        ))
    })
}

/// Runs `esus-ir keygen`.
pub fn keygen(args: KeygenArgs) -> Result<ExitCode, Error> {
    let path = match args.output {
        Some(path) => path,
        None => default_key_path().ok_or(crate::transcript::TranscriptError::NoConfigDir)?,
    };
    let operator = args.operator.unwrap_or_else(default_operator);
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

/// Runs `esus-ir verify`.
pub fn verify(args: VerifyArgs) -> Result<ExitCode, Error> {
    let options = VerifyOptions {
        allowed_signers: args.allowed_signers,
        evidence_dir: args.evidence_dir,
        require_evidence: args.require_evidence,
        trusted_key: None,
        skip_signature: false,
    };
    let transcript = leg_of(&args.transcript)?;
    let mut verification = verify_transcript(&transcript, &options)?;
    crate::transcript::check_ancestors(&mut verification, &options);
    let text = match args.output {
        VerifyOutput::Json => {
            let mut json = serde_json::to_string_pretty(&verification)
                .map_err(|e| Error::Usage(format!("rendering JSON: {e}")))?;
            json.push('\n');
            json
        }
        VerifyOutput::Text => render_verification(&verification),
    };
    out(&text)?;
    Ok(if verification.ok {
        ExitCode::Success
    } else {
        ExitCode::Invalid
    })
}

/// Runs `esus-ir report`.
pub fn report(args: ReportArgs) -> Result<ExitCode, Error> {
    let options = VerifyOptions {
        allowed_signers: args.allowed_signers,
        evidence_dir: args.evidence_dir,
        ..VerifyOptions::default()
    };
    let transcript = leg_of(&args.transcript)?;
    let verification = verify_transcript(&transcript, &options)?;
    // A report of a broken chain would present altered records as fact: refuse, and say why.
    let records = read_transcript(&transcript)?;
    let format = match args.format {
        ReportFormatArg::Markdown => ReportFormat::Markdown,
        ReportFormatArg::Html => ReportFormat::Html,
    };
    let text = render_report(&records, &verification, format);
    match args.output {
        Some(path) => std::fs::write(&path, text)
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?,
        None => out(&text)?,
    }
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
