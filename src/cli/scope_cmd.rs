//! `esus-ir scope RUN_DIR`: the breach's scope from the incident's audit evidence, for the
//! responder (text), the privacy officer (CSV) and tools (JSON). The incident is verified as
//! `report` verifies it (a broken chain is refused); the CSV and JSON also land in the evidence
//! folder, 0600, beside the rows they were computed from.

use std::path::PathBuf;

use super::output::out;
use crate::error::{Error, ExitCode};
use crate::scope::{ScopeOptions, render};
use crate::transcript::VerifyOptions;
use crate::transcript::layout::default_evidence_dir;
use crate::transcript::report::legs::{check_incident, read_incident};

/// Output format of `scope`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ScopeFormat {
    /// For people.
    #[default]
    Text,
    /// One line per record touched, for a spreadsheet.
    Csv,
    /// One JSON document (`esus-ir schema --scope`).
    Json,
}

/// Arguments of `esus-ir scope`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  esus-ir scope esus-ir-runs/RUN
  esus-ir scope esus-ir-runs/RUN --format csv > breach-scope.csv
  esus-ir scope esus-ir-runs/RUN --since 2026-12-06T22:40:00Z --user u-1001")]
pub struct ScopeArgs {
    /// The incident's run folder (or its last transcript).
    #[arg(value_name = "RUN_DIR")]
    pub run: PathBuf,
    /// The compromised user (default: the incident's `user_id` input).
    #[arg(long, value_name = "USER_ID")]
    pub user: Option<String>,
    /// The window's start, when the first malicious access is known (RFC 3339; default: the
    /// user's first row in the evidence).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only the user's rows from this address (repeatable): the attacker's, when the real user
    /// kept working inside the window from elsewhere.
    #[arg(long = "source", value_name = "IP")]
    pub sources: Vec<String>,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = ScopeFormat::Text)]
    pub format: ScopeFormat,
    /// OpenSSH allowed_signers file for the incident's verification.
    #[arg(long, value_name = "FILE")]
    pub allowed_signers: Option<PathBuf>,
    /// Folder of evidence files (default: the run folder's evidence/).
    #[arg(long, value_name = "DIR")]
    pub evidence_dir: Option<PathBuf>,
    /// The age identity file (or unencrypted OpenSSH private key) that opens encrypted evidence
    /// (`--encrypt-to`). The scope files it writes are encrypted to the incident's recipients.
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
}

/// The files `scope` writes into the evidence folder.
pub const SCOPE_FILES: [&str; 2] = ["breach-scope.json", "breach-scope.csv"];

/// Runs `esus-ir scope`.
pub fn scope(args: ScopeArgs) -> Result<ExitCode, Error> {
    let since = args
        .since
        .as_deref()
        .map(|t| {
            t.parse::<jiff::Timestamp>()
                .map_err(|e| Error::Usage(format!("--since `{t}`: not an RFC 3339 time ({e})")))
        })
        .transpose()?;
    let options = VerifyOptions {
        allowed_signers: args.allowed_signers,
        evidence_dir: args.evidence_dir,
        ..VerifyOptions::default()
    };
    let t = super::transcript_cmd::target_of(&args.run)?;
    let check = check_incident(&t.last, &options, t.folder)?;
    // The scope is read from evidence the signed record vouches for: a record that does not
    // verify vouches for nothing.
    if !check.chain.ok {
        return Err(Error::Invalid(format!(
            "{}: the incident's transcript does not verify (run `esus-ir verify {}`): no scope is computed from it",
            args.run.display(),
            args.run.display()
        )));
    }
    if !check.chain.identity_checked {
        eprintln!(
            "note: the transcript's signatures were checked against the key it records, not against whose key it is; pass --allowed-signers FILE to check the signer"
        );
    }
    let incident = read_incident(&check, &options)?;
    let dir = options
        .evidence_dir
        .clone()
        .unwrap_or_else(|| default_evidence_dir(&t.last));
    let scope = crate::scope::scope(
        &incident,
        &dir,
        &ScopeOptions {
            user: args.user,
            since,
            sources: args.sources,
            identities: crate::exec::sealed::Identities::from_arg(args.identity.as_deref())
                .map_err(Error::Usage)?,
        },
    )
    .map_err(Error::Usage)?;
    let json = render::json(&scope);
    let csv = render::csv(&scope).map_err(Error::Usage)?;
    let (written, sealed) = write_files(&incident, &dir, [json.as_bytes(), csv.as_slice()])?;
    match args.format {
        ScopeFormat::Text => out(&render::text(&scope))?,
        ScopeFormat::Csv => out(&String::from_utf8_lossy(&csv))?,
        ScopeFormat::Json => out(&json)?,
    }
    let shown: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
    eprintln!(
        "written (0600{}): {}",
        if sealed { ", encrypted" } else { "" },
        shown.join(" and ")
    );
    Ok(if scope.after_containment.is_empty() {
        ExitCode::Success
    } else {
        ExitCode::StepFailed
    })
}

/// Writes the scope's JSON and CSV beside the evidence (0600), encrypted to the incident's
/// recipients when its evidence is; returns the paths and whether they were encrypted.
fn write_files(
    incident: &crate::transcript::report::incident::Incident,
    dir: &std::path::Path,
    contents: [&[u8]; 2],
) -> Result<(Vec<PathBuf>, bool), Error> {
    // Patient ids are PHI: where the incident's evidence is encrypted, so is its scope.
    let seal = crate::scope::sealed_to(incident).map_err(Error::Usage)?;
    let suffix = if seal.is_some() {
        crate::exec::sealed::SUFFIX
    } else {
        ""
    };
    let mut written = Vec::new();
    for (name, bytes) in SCOPE_FILES.iter().zip(contents) {
        let name = format!("{name}{suffix}");
        let name = name.as_str();
        // Recorded evidence is never replaced: a step that saved a file by this name keeps it.
        if incident.evidence.iter().any(|e| e.row.file == *name) {
            return Err(Error::Usage(format!(
                "{name} in {} is evidence the transcript records: the scope is not written over it (use --format to print it)",
                dir.display()
            )));
        }
        let path = dir.join(name);
        let sealed;
        let bytes = match &seal {
            Some(to) => {
                sealed = to
                    .seal_all(bytes)
                    .map_err(|e| Error::io(format!("encrypting {}", path.display()), e))?;
                sealed.as_slice()
            }
            None => bytes,
        };
        crate::transcript::fsutil::write_private_atomic(&path, bytes)
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        written.push(path);
    }
    Ok((written, seal.is_some()))
}
