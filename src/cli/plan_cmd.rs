//! `esus-ir plan` and `esus-ir approve`: the plan as an artifact a second person can review and
//! sign. `plan` writes what a run would send — the same planner, after the same preflight — as
//! one canonical JSON file (no secret in it: secret inputs are named, not included); `approve`
//! shows it as the prompts would and signs its exact bytes with the approver's SSH key (SSHSIG,
//! namespace `esus-ir-plan`), so `ssh-keygen -Y verify` checks an approval without esus-ir.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::output::out;
use super::run_cmd::{self, Finished, RunArgs};
use super::sign_args::SignKeyArgs;
use super::terminal::Terminal;
use crate::error::{Error, ExitCode};
use crate::event::RunMode;
use crate::transcript::{Signer, canonical_json, sha256_hex};

pub use crate::exec::plan_gate::{PLAN_KIND, PLAN_NAMESPACE};

/// Arguments of `esus-ir plan`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  esus-ir plan api-key-compromise -i key_id=k-123 -i user_id=u-1001 -o plan.json --expires-in 2h
  esus-ir approve plan.json            # the second engineer, on their machine")]
pub struct PlanArgs {
    /// The run this plan is for: the same arguments as `run` (the plan is made as its dry-run).
    #[command(flatten)]
    pub run: RunArgs,
    /// Where to write the plan.
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub out: PathBuf,
    /// How long approvals of it may be used (`30m`, `2h`); none: no expiry.
    #[arg(long, value_name = "DURATION")]
    pub expires_in: Option<String>,
}

/// Arguments of `esus-ir approve`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  esus-ir approve plan.json
  esus-ir approve plan.json --sign-key ~/.ssh/id_ed25519 --as alice@example.org --yes")]
pub struct ApproveArgs {
    /// The plan file `esus-ir plan` wrote.
    #[arg(value_name = "PLAN")]
    pub plan: PathBuf,
    /// Sign without asking (scripts).
    #[arg(short, long)]
    pub yes: bool,
    /// The approver's name in the printed allowed_signers line (default: the OS user).
    #[arg(long = "as", value_name = "NAME")]
    pub approver: Option<String>,
    /// The approver's signing key.
    #[command(flatten)]
    pub sign: SignKeyArgs,
}

/// Runs `esus-ir plan`.
pub fn plan(args: PlanArgs, term: Terminal) -> Result<ExitCode, Error> {
    let expires = args
        .expires_in
        .as_deref()
        .map(|t| {
            crate::runbook::model::parse_duration(t).ok_or_else(|| {
                Error::Usage(format!(
                    "--expires-in `{t}`: not a duration like `30m` or `2h`"
                ))
            })
        })
        .transpose()?;
    let mut run = args.run;
    if run.resume.is_some() || run.require_approvals.is_some() {
        return Err(Error::Usage(
            "a plan is made for a new run: --resume and --require-approvals belong to `run` (nothing was sent)".into(),
        ));
    }
    // The safe reads are sent, so what later steps send is known exactly, not as templates
    // (`--offline`: nothing at all is sent, and more of the plan stays templated).
    run.dry_run = Some(if run.offline { "all" } else { "reads" }.into());
    run.bind_items = true;
    let done =
        super::runtime::runtime()?.block_on(run_cmd::execute(run, term, RunMode::Live, None))?;
    let (_, digest) = write_plan(&done, &args.out, expires)?;
    out(&format!(
        "plan written to {} (sha256 {digest})\nhave it approved: esus-ir approve {}\n",
        args.out.display(),
        args.out.display()
    ))?;
    Ok(ExitCode::Success)
}

/// Writes the plan file of a finished dry-run to `out` (canonical bytes); returns the plan
/// and the sha256 of those bytes — what approvers sign.
pub(super) fn write_plan(
    done: &Finished,
    out: &Path,
    expires: Option<std::time::Duration>,
) -> Result<(Value, String), Error> {
    let Finished::Dry(plan) = done else {
        return Err(Error::Usage("the plan could not be made".into()));
    };
    if let Some(why) = &plan.error {
        return Err(Error::Usage(format!("no plan written: {why}")));
    }
    let transcript = plan.transcript.clone().unwrap_or_default();
    let started = first_record(&transcript)?;
    let doc = document(
        &serde_json::to_value(plan).unwrap_or_default(),
        &started,
        expires,
    );
    let bytes = canonical_json(&doc);
    std::fs::write(out, &bytes).map_err(|e| Error::io(format!("writing {}", out.display()), e))?;
    Ok((doc, sha256_hex(&bytes)))
}

/// The run-started record of the dry-run that made the plan: runbook digest, ESUS, inputs.
fn first_record(path: &Path) -> Result<Map<String, Value>, Error> {
    let (records, _) = crate::transcript::read_transcript_prefix(path)?;
    records
        .into_iter()
        .next()
        .map(|r| r.data)
        .ok_or_else(|| Error::Usage(format!("{}: the plan's record is empty", path.display())))
}

/// The plan file's content: what will be sent, and what it is bound to. Each request a live run
/// would send as shown is `exact` with its digest; one that reads an earlier answer is a
/// template (`<new-key-id>`), bound by its shape.
fn document(
    plan: &Value,
    started: &Map<String, Value>,
    expires: Option<std::time::Duration>,
) -> Value {
    let now = jiff::Timestamp::now();
    let expires_at = expires
        .and_then(|d| jiff::SignedDuration::try_from(d).ok())
        .and_then(|d| now.checked_add(d).ok())
        .map(|t| t.to_string());
    let steps: Vec<Value> = plan
        .get("steps")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|s| {
            // Which requests are exact is the planner's word: a step's requests are templates
            // when they read answers of steps not run yet; a follow-up always reads its
            // request's answer.
            let templated = s.get("templated") == Some(&Value::Bool(true));
            let requests = |field: &str, templated: bool| -> Vec<Value> {
                s.get(field)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|v| request_entry(v, templated))
                    .collect()
            };
            json!({
                "id": s.get("id"),
                "name": s.get("name"),
                "effect": s.get("effect"),
                "confirm": s.get("confirm"),
                "notes": s.get("notes"),
                "items": s.get("items"),
                "items_sha256": s.get("items_sha256"),
                "requests": requests("requests", templated),
                "follow_ups": requests("follow_ups", true),
            })
        })
        .collect();
    json!({
        "kind": PLAN_KIND,
        "schema_version": 1,
        "runbook": started.get("runbook_name"),
        "runbook_sha256": started.get("runbook_sha256"),
        "base_url": started.get("base_url"),
        "inputs": started.get("inputs"),
        "operator": started.get("operator"),
        "incident_id": started.get("incident_id"),
        "incident": started.get("incident"),
        "acting_as": plan.get("acting_as"),
        "created_at": now.to_string(),
        "expires_at": expires_at,
        "steps": steps,
    })
}

/// One request of the plan: exact (with its digest), or a template.
fn request_entry(view: &Value, templated: bool) -> Value {
    let mut entry = view.clone();
    if let Some(obj) = entry.as_object_mut() {
        obj.insert("exact".into(), Value::Bool(!templated));
        if !templated {
            obj.insert(
                "request_sha256".into(),
                Value::from(sha256_hex(&canonical_json(view))),
            );
        }
    }
    entry
}

/// Runs `esus-ir approve`.
pub fn approve(args: ApproveArgs) -> Result<ExitCode, Error> {
    let bytes = std::fs::read(&args.plan)
        .map_err(|e| Error::io(format!("reading {}", args.plan.display()), e))?;
    let plan: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Usage(format!("{}: not a plan ({e})", args.plan.display())))?;
    if plan.get("kind").and_then(Value::as_str) != Some(PLAN_KIND) {
        return Err(Error::Usage(format!(
            "{}: not a plan esus-ir wrote (kind is not `{PLAN_KIND}`)",
            args.plan.display()
        )));
    }
    if canonical_json(&plan) != bytes {
        return Err(Error::Usage(format!(
            "{}: not the bytes esus-ir wrote (edited or re-formatted): nothing signed",
            args.plan.display()
        )));
    }
    if let Err(why) = crate::exec::plan_gate::well_formed(&plan, jiff::Timestamp::now()) {
        let why = match why {
            crate::exec::plan_gate::PlanRefusal::Malformed(w)
            | crate::exec::plan_gate::PlanRefusal::NotApproved(w) => w,
        };
        return Err(Error::Usage(format!(
            "{}: {why}: nothing signed",
            args.plan.display()
        )));
    }
    let digest = sha256_hex(&bytes);
    eprint!("{}", shown(&plan, &digest));
    let interactive = super::terminal::interactive(false);
    let approved = match (args.yes, interactive) {
        (true, _) => true,
        (false, true) => ask_to_sign()?,
        (false, false) => {
            return Err(Error::Declined(
                "approve: no terminal to ask, and no --yes: nothing signed".into(),
            ));
        }
    };
    if !approved {
        return Err(Error::Declined("declined: nothing signed".into()));
    }
    let (signature, public, fingerprint) = match agent_public_key(&args.sign)? {
        Some((path, public)) => {
            let signature = sign_with_agent(&path, &public, &bytes)?;
            let fingerprint = public.fingerprint(ssh_key::HashAlg::Sha256).to_string();
            (
                signature,
                public.to_openssh().unwrap_or_default(),
                fingerprint,
            )
        }
        None => {
            let (signer, _) = Signer::resolve(&args.sign.into_source())?;
            let signature = signer.sign_in(PLAN_NAMESPACE, &bytes)?;
            (signature, signer.public_key_openssh(), signer.fingerprint())
        }
    };
    let path = signature_path(&args.plan, &fingerprint);
    std::fs::write(&path, signature)
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    let approver = args
        .approver
        .unwrap_or_else(crate::transcript::default_operator);
    let key: Vec<&str> = public.split_whitespace().take(2).collect();
    out(&format!(
        "approved plan sha256 {digest}\nsignature: {}\nthe operator's allowed_signers needs: {approver} namespaces=\"{PLAN_NAMESPACE}\" {}\n",
        path.display(),
        key.join(" ")
    ))?;
    Ok(ExitCode::Success)
}

/// `--sign-key KEY.pub`: a public key, whose private half is in the approver's ssh-agent (or
/// on a hardware token) — esus-ir never holds it; OpenSSH signs.
fn agent_public_key(
    sign: &super::sign_args::SignKeyArgs,
) -> Result<Option<(PathBuf, ssh_key::PublicKey)>, Error> {
    let Some(path) = &sign.sign_key else {
        return Ok(None);
    };
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(None);
    };
    if text.contains("PRIVATE KEY") {
        return Ok(None);
    }
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    ssh_key::PublicKey::from_openssh(line.trim())
        .map(|k| Some((path.clone(), k)))
        .map_err(|e| {
            Error::Usage(format!(
                "--sign-key {}: neither a private key nor an OpenSSH public key ({e})",
                path.display()
            ))
        })
}

/// Signs the plan's bytes with `ssh-keygen -Y sign -f KEY.pub`, which asks the ssh-agent
/// (SSH_AUTH_SOCK) for the key's signature: the approver's private key never leaves the agent.
fn sign_with_agent(public: &Path, key: &ssh_key::PublicKey, bytes: &[u8]) -> Result<String, Error> {
    use std::io::Write as _;
    let mut child = std::process::Command::new("ssh-keygen")
        .args(["-q", "-Y", "sign", "-n", PLAN_NAMESPACE, "-f"])
        .arg(public)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Error::io("running ssh-keygen to sign with the ssh-agent", e))?;
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(bytes)
            .map_err(|e| Error::io("writing the plan to ssh-keygen", e))?;
    }
    let done = child
        .wait_with_output()
        .map_err(|e| Error::io("waiting for ssh-keygen", e))?;
    let signature = String::from_utf8_lossy(&done.stdout).into_owned();
    if !done.status.success() || !signature.contains("BEGIN SSH SIGNATURE") {
        return Err(Error::Usage(format!(
            "ssh-keygen could not sign with the key of {} (is it in the ssh-agent, SSH_AUTH_SOCK set?): {} — nothing signed",
            public.display(),
            String::from_utf8_lossy(&done.stderr).trim()
        )));
    }
    // Checked before it is written: a signature that does not verify is no approval.
    let sig = crate::transcript::sshsig::parse_armored_in(&signature, PLAN_NAMESPACE)
        .map_err(|e| Error::Usage(format!("ssh-keygen's signature: {e}")))?;
    if sig.public_key().key_data() != key.key_data() {
        return Err(Error::Usage(
            "ssh-keygen signed with another key than --sign-key names: nothing signed".into(),
        ));
    }
    sig.public_key()
        .verify(PLAN_NAMESPACE, bytes, sig.inner())
        .map_err(|e| Error::Usage(format!("ssh-keygen's signature does not verify: {e}")))?;
    Ok(signature)
}

/// Where an approval by the key with `fingerprint` goes: beside the plan, one file per key, so
/// that the same key approving twice is one approval.
pub fn signature_path(plan: &Path, fingerprint: &str) -> PathBuf {
    let short: String = sha256_hex(fingerprint.as_bytes())
        .chars()
        .take(12)
        .collect();
    let mut name = plan.as_os_str().to_owned();
    name.push(format!(".{short}.sig"));
    PathBuf::from(name)
}

/// The plan as the prompts would show it: each step, each request, exact or a template.
pub(super) fn shown(plan: &Value, digest: &str) -> String {
    let mut text = format!(
        "plan of `{}` for {} (operator {}), sha256 {digest}\n",
        plan["runbook"].as_str().unwrap_or("?"),
        plan["base_url"].as_str().unwrap_or("?"),
        plan["operator"].as_str().unwrap_or("?"),
    );
    if let Some(at) = plan["expires_at"].as_str() {
        text.push_str(&format!("expires at {at}\n"));
    }
    for step in plan["steps"].as_array().into_iter().flatten() {
        text.push_str(&format!(
            "\n  {} — {} ({})\n",
            step["id"].as_str().unwrap_or("?"),
            step["name"].as_str().unwrap_or(""),
            step["effect"].as_str().unwrap_or("")
        ));
        for r in ["requests", "follow_ups"]
            .iter()
            .flat_map(|f| step[*f].as_array().into_iter().flatten())
        {
            let how = if r["exact"] == Value::Bool(true) {
                "exact"
            } else {
                "template"
            };
            text.push_str(&format!(
                "     {} {} [{how}]\n",
                r["method"].as_str().unwrap_or(""),
                r["url"].as_str().unwrap_or("")
            ));
            if !r["body"].is_null() {
                text.push_str(&format!("       {}\n", r["body"]));
            }
        }
        let bound = step["items_sha256"].as_array().map_or(0, Vec::len);
        let listed = step["requests"].as_array().map_or(0, Vec::len);
        if bound > listed {
            text.push_str(&format!(
                "     … {} more like these ({bound} in all), each bound by its digest in the plan\n",
                bound - listed
            ));
        }
    }
    text
}

fn ask_to_sign() -> Result<bool, Error> {
    let (_handle, interrupt) = crate::exec::shared::Interrupt::new();
    let question = "\nSign this plan as approved? [y/N] ";
    let answer = super::runtime::runtime()?
        .block_on(async { super::prompt::ask_line(question, &interrupt) })
        .map_err(|e| Error::io("reading the terminal", e))?;
    Ok(matches!(
        answer.as_deref().map(str::to_ascii_lowercase).as_deref(),
        Some("y" | "yes")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactness_is_the_planners_word_not_the_text() {
        let view = json!({"method": "POST", "url": "https://e/fhir/Subscription", "headers": [],
            "body": {"reason": "alert <on-call>"}});
        let plan = json!({"steps": [
            {"id": "known", "requests": [view.clone()], "follow_ups": [view.clone()]},
            {"id": "later", "templated": true, "requests": [view.clone()]},
        ]});
        let doc = document(&plan, &Map::new(), None);
        let known = &doc["steps"][0]["requests"][0];
        assert_eq!(
            known["exact"], true,
            "a literal `<` in a known request binds it exactly"
        );
        assert_eq!(known["request_sha256"], sha256_hex(&canonical_json(&view)));
        assert_eq!(
            doc["steps"][0]["follow_ups"][0]["exact"], false,
            "a follow-up reads an answer"
        );
        assert_eq!(doc["steps"][1]["requests"][0]["exact"], false);
        assert!(
            doc["steps"][1]["requests"][0]
                .get("request_sha256")
                .is_none()
        );
    }
}
