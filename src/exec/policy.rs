//! `run --policy`: a signed policy instead of a blanket `--yes` for unattended runs. A policy is
//! a small YAML file an approver signs with their SSH key (`ssh-keygen -Y sign -n esus-ir-policy`,
//! beside it as `FILE.sig`): which runbooks may run unattended, which of their steps it
//! approves, and limits — the most items of a fan-out, the ESUS URLs, the patterns each input
//! must match, an expiry. Anything outside it is refused before anything is sent (exit 3).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;

use crate::transcript::{AllowedSigner, sha256_hex};

/// The SSHSIG namespace of a policy's signature.
pub const POLICY_NAMESPACE: &str = "esus-ir-policy";

/// A policy file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Always 1.
    pub version: u32,
    /// When it stops approving anything (RFC 3339).
    pub expires: Option<String>,
    /// The ESUS base URLs a run may act on.
    pub base_urls: Vec<String>,
    /// The runbooks it lets run unattended, by name.
    pub runbooks: BTreeMap<String, RunbookRule>,
}

/// What a policy allows one runbook.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunbookRule {
    /// The runbook's bytes, when pinned (SHA-256 hex).
    pub sha256: Option<String>,
    /// The steps it approves (typed ones included).
    #[serde(default)]
    pub approve: BTreeSet<String>,
    /// The most items one fan-out may have.
    pub max_items: Option<usize>,
    /// A pattern each named input must match in full; an input not named is refused.
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
}

/// A verified policy, as it applies to one run.
#[derive(Debug, Clone)]
pub struct Policy {
    /// SHA-256 of the policy file's bytes.
    pub digest: String,
    /// Who signed it: `principal (fingerprint)`.
    pub signer: String,
    /// The steps it approves for this runbook.
    pub approve: BTreeSet<String>,
    /// The fan-out cap it sets, if any.
    pub max_items: Option<usize>,
    /// Until when it approves anything.
    pub expires: Option<String>,
}

/// What a run is, as a policy judges it.
#[derive(Debug, Clone)]
pub struct RunFacts<'a> {
    /// The runbook's name.
    pub runbook: &'a str,
    /// SHA-256 of its bytes.
    pub runbook_sha256: &'a str,
    /// The ESUS base URL.
    pub base_url: &'a str,
    /// The non-secret inputs given (secret ones are not judged).
    pub inputs: Vec<(String, String)>,
}

/// Reads `path` and `path.sig`, checks the signature (a key `signers` lists for the policy
/// namespace, not the operator's) and whether the run is inside the policy. Every reason it is
/// not is returned, for one message.
pub fn load(
    path: &Path,
    signers: &[AllowedSigner],
    operator_key: Option<&str>,
    run: &RunFacts<'_>,
    now: jiff::Timestamp,
) -> Result<Policy, Vec<String>> {
    let bytes = std::fs::read(path).map_err(|e| vec![format!("{}: {e}", path.display())])?;
    let signer = signature(path, &bytes, signers, operator_key)?;
    let file: PolicyFile = serde_yaml::from_slice(&bytes)
        .map_err(|e| vec![format!("{}: not a policy ({e})", path.display())])?;
    let rule = judge(&file, run, now)?;
    Ok(Policy {
        digest: sha256_hex(&bytes),
        signer,
        approve: rule.approve.clone(),
        max_items: rule.max_items,
        expires: file.expires.clone(),
    })
}

/// Whether the run is inside the policy; every reason it is not.
pub fn judge<'p>(
    file: &'p PolicyFile,
    run: &RunFacts<'_>,
    now: jiff::Timestamp,
) -> Result<&'p RunbookRule, Vec<String>> {
    let mut why = Vec::new();
    if file.version != 1 {
        why.push(format!(
            "policy version {} (this esus-ir reads 1)",
            file.version
        ));
    }
    match file.expires.as_deref().map(str::parse::<jiff::Timestamp>) {
        Some(Ok(t)) if t <= now => why.push(format!("the policy expired at {t}")),
        Some(Err(e)) => why.push(format!("the policy's expiry does not read as a time: {e}")),
        _ => {}
    }
    let base = run.base_url.trim_end_matches('/');
    if !file
        .base_urls
        .iter()
        .any(|u| u.trim_end_matches('/') == base)
    {
        why.push(format!(
            "ESUS at {base} is not one of the policy's base URLs"
        ));
    }
    let Some(rule) = file.runbooks.get(run.runbook) else {
        why.push(format!(
            "the policy does not let `{}` run unattended",
            run.runbook
        ));
        return Err(why);
    };
    if let Some(pin) = &rule.sha256
        && !pin.eq_ignore_ascii_case(run.runbook_sha256)
    {
        why.push(format!(
            "`{}` is not the runbook the policy pinned",
            run.runbook
        ));
    }
    for (name, value) in &run.inputs {
        match rule.inputs.get(name) {
            None => why.push(format!("input `{name}` is not one the policy allows")),
            Some(p) if !crate::plan::inputs::full_match(p, value) => why.push(format!(
                "input `{name}`=`{value}` does not match the policy's `{p}`"
            )),
            Some(_) => {}
        }
    }
    if why.is_empty() { Ok(rule) } else { Err(why) }
}

/// The policy's signer: a valid SSHSIG in `path.sig` by a key listed for the namespace.
fn signature(
    path: &Path,
    bytes: &[u8],
    signers: &[AllowedSigner],
    operator_key: Option<&str>,
) -> Result<String, Vec<String>> {
    let mut sig_path = path.as_os_str().to_owned();
    sig_path.push(".sig");
    let text = std::fs::read_to_string(&sig_path).map_err(|e| {
        vec![format!(
            "the policy's signature {}: {e}",
            sig_path.to_string_lossy()
        )]
    })?;
    let sig = crate::transcript::sshsig::parse_armored_in(&text, POLICY_NAMESPACE)
        .map_err(|e| vec![format!("the policy's signature: {e}")])?;
    let key = sig.public_key();
    if key.verify(POLICY_NAMESPACE, bytes, sig.inner()).is_err() {
        return Err(vec![
            "the policy's signature does not match it (edited after signing?)".into(),
        ]);
    }
    let openssh = key.to_openssh().unwrap_or_default();
    let field = |s: &str| s.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    if operator_key.is_some_and(|k| field(k) == field(&openssh)) {
        return Err(vec![
            "the policy is signed by the operator's own key: a policy is another person's approval"
                .into(),
        ]);
    }
    let listed = signers.iter().find(|s| {
        s.key.key_data() == key.key_data()
            && s.namespaces
                .as_deref()
                .is_some_and(|ns| ns.split(',').any(|n| n.trim() == POLICY_NAMESPACE))
    });
    let fingerprint = key.fingerprint(ssh_key::HashAlg::Sha256).to_string();
    match listed {
        Some(s) => Ok(format!("{} ({fingerprint})", s.principals)),
        None => Err(vec![format!(
            "the policy is signed by {fingerprint}, which the allowed signers do not list for {POLICY_NAMESPACE}"
        )]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = "version: 1\nexpires: 2027-01-31T00:00:00Z\nbase_urls: [https://api.esus.health]\nrunbooks:\n  api-key-compromise:\n    approve: [logout, delete]\n    max_items: 10\n    inputs: {key_id: 'k-[0-9]+', user_id: 'u-[0-9]+'}\n";

    fn facts(base: &str, key: &str) -> RunFacts<'static> {
        RunFacts {
            runbook: "api-key-compromise",
            runbook_sha256: "00",
            base_url: Box::leak(base.to_string().into_boxed_str()),
            inputs: vec![
                ("key_id".into(), key.into()),
                ("user_id".into(), "u-1".into()),
            ],
        }
    }

    fn at(t: &str) -> jiff::Timestamp {
        t.parse().expect("time")
    }

    #[test]
    fn a_run_is_inside_the_policy_only_when_every_rule_holds() {
        let file: PolicyFile = serde_yaml::from_str(POLICY).expect("policy");
        let now = at("2026-12-07T00:00:00Z");
        let rule = judge(&file, &facts("https://api.esus.health/", "k-1"), now).expect("inside");
        assert_eq!(rule.max_items, Some(10));
        let why =
            judge(&file, &facts("https://evil.example", "k-1; rm"), now).expect_err("outside");
        assert!(
            why.iter()
                .any(|w| w.contains("not one of the policy's base URLs")),
            "{why:?}"
        );
        assert!(why.iter().any(|w| w.contains("does not match")), "{why:?}");
        let late = judge(
            &file,
            &facts("https://api.esus.health", "k-1"),
            at("2027-02-01T00:00:00Z"),
        );
        assert!(late.expect_err("expired")[0].contains("expired"));
        let mut other = facts("https://api.esus.health", "k-1");
        other.runbook = "session-compromise";
        assert!(judge(&file, &other, now).is_err());
        let mut extra = facts("https://api.esus.health", "k-1");
        extra.inputs.push(("note".into(), "x".into()));
        assert!(
            judge(&file, &extra, now).is_err(),
            "an input the policy does not name"
        );
        assert!(
            serde_yaml::from_str::<PolicyFile>(
                "version: 1\nbase_urls: []\nrunbooks: {}\nyes: true\n"
            )
            .is_err(),
            "an unknown field is refused"
        );
    }

    #[test]
    fn a_pinned_runbook_must_be_those_bytes_and_an_unreadable_expiry_expires() {
        let pinned = POLICY.replace(
            "    max_items: 10\n",
            "    max_items: 10\n    sha256: ABCDEF\n",
        );
        let file: PolicyFile = serde_yaml::from_str(&pinned).expect("policy");
        let now = at("2026-12-07T00:00:00Z");
        let mut run = facts("https://api.esus.health", "k-1");
        run.runbook_sha256 = "abcdef";
        assert!(
            judge(&file, &run, now).is_ok(),
            "the pinned bytes (any case)"
        );
        run.runbook_sha256 = "abcde0";
        let why = judge(&file, &run, now).expect_err("other bytes");
        assert!(
            why[0].contains("not the runbook the policy pinned"),
            "{why:?}"
        );
        let vague = POLICY.replace("2027-01-31T00:00:00Z", "next tuesday");
        let file: PolicyFile = serde_yaml::from_str(&vague).expect("policy");
        let why = judge(&file, &facts("https://api.esus.health", "k-1"), now)
            .expect_err("an expiry that is no time approves nothing");
        assert!(why[0].contains("does not read as a time"), "{why:?}");
    }

    #[test]
    fn only_a_listed_key_other_than_the_operators_signs_a_policy_and_an_edit_breaks_it() {
        let bob = crate::transcript::Signer::generate("bob").expect("key");
        let me = crate::transcript::Signer::generate("me").expect("key");
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("policy.yaml");
        std::fs::write(&path, POLICY).expect("policy");
        let sign = |k: &crate::transcript::Signer| {
            let sig = k
                .sign_in(POLICY_NAMESPACE, POLICY.as_bytes())
                .expect("sign");
            std::fs::write(dir.path().join("policy.yaml.sig"), sig).expect("sig");
        };
        let line = |who: &str, k: &crate::transcript::Signer, ns: &str| {
            let public = k.public_key_openssh();
            let fields: Vec<&str> = public.split_whitespace().take(2).collect();
            format!("{who} namespaces=\"{ns}\" {}\n", fields.join(" "))
        };
        let signers = crate::transcript::parse_allowed_signers(&format!(
            "{}{}",
            line("bob", &bob, POLICY_NAMESPACE),
            line("me", &me, POLICY_NAMESPACE)
        ))
        .0;
        let own = me.public_key_openssh();
        let run = facts("https://api.esus.health", "k-1");
        let now = at("2026-12-07T00:00:00Z");
        sign(&bob);
        let p = load(&path, &signers, Some(&own), &run, now).expect("inside, signed by bob");
        assert!(p.signer.starts_with("bob ("), "{}", p.signer);
        assert_eq!(p.max_items, Some(10));
        assert_eq!(p.digest, sha256_hex(POLICY.as_bytes()));
        assert!(p.approve.contains("delete"));
        sign(&me);
        assert!(
            load(&path, &signers, Some(&own), &run, now).is_err(),
            "self-signed"
        );
        let transcript_only =
            crate::transcript::parse_allowed_signers(&line("bob", &bob, "esus-ir-transcript")).0;
        sign(&bob);
        assert!(
            load(&path, &transcript_only, None, &run, now).is_err(),
            "listed for another namespace"
        );
        std::fs::write(&path, POLICY.replace("k-[0-9]+", ".*")).expect("edit");
        let edited = load(&path, &signers, None, &run, now).expect_err("edited");
        assert!(edited[0].contains("does not match it"), "{edited:?}");
    }
}
