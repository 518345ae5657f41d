//! `run --plan`: a run that may send only what a signed plan allows. The plan's approvals are
//! checked before anything is sent — each an SSHSIG over the plan's exact bytes in the
//! `esus-ir-plan` namespace, by a key the allowed_signers file lists for that namespace, each key
//! counted once, the operator's own never — and then every request a step would send must be one
//! of the plan's: an exact request by its digest, a templated one (it reads an earlier answer)
//! by its shape with each placeholder filled. Anything else is refused before it is sent.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::event::RequestView;
use crate::transcript::{AllowedSigner, canonical_json, sha256_hex};

/// The SSHSIG namespace of a plan's approval.
pub const PLAN_NAMESPACE: &str = "esus-ir-plan";

/// What a plan file says it is.
pub const PLAN_KIND: &str = "esus-ir-plan";

/// One approval that counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approver {
    /// The principal the allowed_signers file lists for the key.
    pub principal: String,
    /// The key's SHA-256 fingerprint.
    pub fingerprint: String,
    /// The signature file.
    pub file: PathBuf,
}

/// What one step of the plan allows.
#[derive(Debug, Clone, Default)]
struct StepAllows {
    exact: BTreeSet<String>,
    /// Each template's canonical text (placeholders in it), and its pattern with every
    /// placeholder open.
    templates: Vec<(String, regex::Regex)>,
}

/// A verified plan: its digest, who approved it, and what each step may send.
#[derive(Debug, Clone)]
pub struct PlanGate {
    /// SHA-256 of the plan file's bytes.
    pub digest: String,
    /// The plan's content.
    pub plan: Value,
    /// The approvals that counted.
    pub approvers: Vec<Approver>,
    steps: BTreeMap<String, StepAllows>,
}

/// Why a plan cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanRefusal {
    /// Not a plan esus-ir wrote, or its bytes changed (usage, exit 2).
    Malformed(String),
    /// Too few valid approvals, or expired (exit 3).
    NotApproved(String),
}

impl PlanGate {
    /// Reads the plan at `path`, its approvals (`PATH.*.sig` beside it), and checks them against
    /// `signers`: at least `required` distinct keys, none of them `operator_key`, none expired.
    pub fn load(
        path: &Path,
        signers: &[AllowedSigner],
        required: usize,
        operator_key: Option<&str>,
        now: jiff::Timestamp,
    ) -> Result<PlanGate, PlanRefusal> {
        let bytes = std::fs::read(path)
            .map_err(|e| PlanRefusal::Malformed(format!("{}: {e}", path.display())))?;
        let plan: Value = serde_json::from_slice(&bytes)
            .map_err(|e| PlanRefusal::Malformed(format!("{}: not a plan ({e})", path.display())))?;
        if plan.get("kind").and_then(Value::as_str) != Some(PLAN_KIND)
            || canonical_json(&plan) != bytes
        {
            return Err(PlanRefusal::Malformed(format!(
                "{}: not the bytes `esus-ir plan` wrote (another file, or edited)",
                path.display()
            )));
        }
        well_formed(&plan, now)?;
        let approvers = approvals(path, &bytes, signers, operator_key);
        if approvers.len() < required {
            let who: Vec<String> = approvers.iter().map(|a| a.principal.clone()).collect();
            return Err(PlanRefusal::NotApproved(format!(
                "the plan needs {required} approval(s) by distinct allowed signers other than the operator; it has {} ({})",
                approvers.len(),
                if who.is_empty() {
                    "none".to_string()
                } else {
                    who.join(", ")
                }
            )));
        }
        Ok(PlanGate {
            digest: sha256_hex(&bytes),
            steps: allows(&plan),
            plan,
            approvers,
        })
    }

    /// Whether step `step` may send `view`: one of its exact requests, or one of its templates
    /// filled in.
    pub fn allows(&self, step: &str, view: &RequestView) -> Result<(), String> {
        self.allows_with(step, view, &|_| None)
    }

    /// [`PlanGate::allows`], where a placeholder naming an answer the run has (`<snapshot.name>`:
    /// `answer("snapshot.name")`) must hold exactly that answer — the approver approved "what
    /// `snapshot` reads", not any value in its place. A placeholder the run cannot name (a
    /// created key's id) stays one value that cannot leave its place.
    pub fn allows_with(
        &self,
        step: &str,
        view: &RequestView,
        answer: &dyn Fn(&str) -> Option<Value>,
    ) -> Result<(), String> {
        let value = serde_json::to_value(view).unwrap_or(Value::Null);
        let text = String::from_utf8_lossy(&canonical_json(&value)).into_owned();
        let Some(allowed) = self.steps.get(step) else {
            return Err(format!("the approved plan has no step `{step}`"));
        };
        if allowed.exact.contains(&sha256_hex(text.as_bytes())) {
            return Ok(());
        }
        let matches = |(raw, open): &(String, regex::Regex)| match pattern(raw, answer) {
            Some((bound, true)) => bound.is_match(&text),
            Some((_, false)) => open.is_match(&text),
            None => false,
        };
        if allowed.templates.iter().any(matches) {
            return Ok(());
        }
        Err(format!(
            "{} {} is not a request the approved plan allows for step `{step}` (nothing was sent)",
            view.method, view.url
        ))
    }
}

/// What a plan must be besides its bytes, for `run --plan` and `approve` alike: an expiry that
/// reads as a time and has not passed (an expiry that is no time never approves anything), and
/// item digests only where a fan-out lists them — as many as its items, the first ones those of
/// the requests it lists — so nothing is bound that an approver was not shown.
pub fn well_formed(plan: &Value, now: jiff::Timestamp) -> Result<(), PlanRefusal> {
    match plan.get("expires_at") {
        None | Some(Value::Null) => {}
        Some(at) => match at.as_str().map(str::parse::<jiff::Timestamp>) {
            Some(Ok(t)) if t > now => {}
            Some(Ok(t)) => {
                return Err(PlanRefusal::NotApproved(format!(
                    "the plan expired at {t}: make and approve a new one"
                )));
            }
            _ => {
                return Err(PlanRefusal::Malformed(format!(
                    "the plan's expiry {at} is not a time"
                )));
            }
        },
    }
    for step in plan["steps"].as_array().into_iter().flatten() {
        let Some(digests) = step.get("items_sha256").filter(|d| !d.is_null()) else {
            continue;
        };
        let digests = digests.as_array().map(Vec::as_slice).unwrap_or_default();
        let listed: Vec<&Value> = step["requests"].as_array().into_iter().flatten().collect();
        let fits = step["items"].as_u64() == Some(digests.len() as u64)
            && listed.len() <= digests.len()
            && listed
                .iter()
                .zip(digests)
                .all(|(r, d)| r["exact"] == Value::Bool(true) && r["request_sha256"] == *d);
        if !fits {
            return Err(PlanRefusal::Malformed(format!(
                "step `{}`: its item digests are not those of its {} items and the requests it lists",
                step["id"].as_str().unwrap_or("?"),
                step["items"]
            )));
        }
    }
    Ok(())
}

/// The valid approvals beside `path`: one per key, by keys the allowed signers list for the plan
/// namespace, never the operator's.
fn approvals(
    path: &Path,
    bytes: &[u8],
    signers: &[AllowedSigner],
    operator_key: Option<&str>,
) -> Vec<Approver> {
    let mut out: Vec<Approver> = Vec::new();
    for file in signature_files(path) {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let Ok(sig) = crate::transcript::sshsig::parse_armored_in(&text, PLAN_NAMESPACE) else {
            continue;
        };
        let key = sig.public_key();
        if key.verify(PLAN_NAMESPACE, bytes, sig.inner()).is_err() {
            continue;
        }
        let openssh = key.to_openssh().unwrap_or_default();
        let own = operator_key.is_some_and(|k| same_key(k, &openssh));
        let fingerprint = key.fingerprint(ssh_key::HashAlg::Sha256).to_string();
        if own || out.iter().any(|a| a.fingerprint == fingerprint) {
            continue;
        }
        let listed = signers.iter().find(|s| {
            s.key.key_data() == key.key_data()
                && s.namespaces
                    .as_deref()
                    .is_some_and(|ns| ns.split(',').any(|n| n.trim() == PLAN_NAMESPACE))
        });
        if let Some(s) = listed {
            out.push(Approver {
                principal: s.principals.clone(),
                fingerprint,
                file,
            });
        }
    }
    out
}

fn same_key(a: &str, b: &str) -> bool {
    let k = |s: &str| s.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    k(a) == k(b)
}

/// `PATH.*.sig` beside the plan, in name order.
fn signature_files(path: &Path) -> Vec<PathBuf> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .is_some_and(|n| n.starts_with(&format!("{name}.")) && n.ends_with(".sig"))
        })
        .collect();
    found.sort();
    found
}

/// Per step: the digests of its exact requests, and its templates as patterns.
fn allows(plan: &Value) -> BTreeMap<String, StepAllows> {
    let mut out = BTreeMap::new();
    for step in plan["steps"].as_array().into_iter().flatten() {
        let Some(id) = step["id"].as_str() else {
            continue;
        };
        let mut allows = StepAllows::default();
        for r in ["requests", "follow_ups"]
            .iter()
            .flat_map(|f| step[*f].as_array().into_iter().flatten())
        {
            let mut view = r.clone();
            if let Some(o) = view.as_object_mut() {
                o.remove("exact");
                o.remove("request_sha256");
            }
            let text = String::from_utf8_lossy(&canonical_json(&view)).into_owned();
            if r["exact"] == Value::Bool(true) {
                allows.exact.insert(sha256_hex(text.as_bytes()));
            } else if let Some(t) = template(&text) {
                allows.templates.push((text, t));
            }
        }
        // A fan-out's every item, by digest (the file lists only the first in full).
        for d in step["items_sha256"].as_array().into_iter().flatten() {
            if let Some(d) = d.as_str() {
                allows.exact.insert(d.to_string());
            }
        }
        out.insert(id.to_string(), allows);
    }
    out
}

/// What the run puts in place of one placeholder it can answer: for a whole JSON value
/// (`"<snapshot.scopes>"`) the answer's canonical JSON; inside a string or URL
/// (`<snapshot.name>.esus-ir-…`) the text of a plain scalar (one neither JSON nor a URL escapes).
/// None: it stays open.
fn answered(name: &str, whole: bool, answer: &dyn Fn(&str) -> Option<Value>) -> Option<String> {
    let plain = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "._-~:@".contains(ch))
    };
    match answer(name)? {
        v if whole => Some(String::from_utf8_lossy(&canonical_json(&v)).into_owned()),
        Value::String(s) if plain(&s) => Some(s),
        v @ Value::Number(_) => Some(v.to_string()),
        _ => None,
    }
}

/// A templated request as a pattern: its text exactly, each `<placeholder>` the run can answer
/// that answer exactly (an answer is never read as a placeholder itself), every other one value
/// that cannot leave its place — inside a string, no quote and no path or query separator;
/// standing for a whole JSON value (`"<snapshot.scopes>"`), one JSON scalar or a flat array of
/// them. The second value says whether any placeholder was answered.
fn pattern(text: &str, answer: &dyn Fn(&str) -> Option<Value>) -> Option<(regex::Regex, bool)> {
    const SCALAR: &str = r#"(?:"[^"\\]*"|-?[0-9][0-9.eE+-]*|true|false|null)"#;
    let value = format!(r"(?:{SCALAR}|\[(?:{SCALAR}(?:,{SCALAR})*)?\])");
    let holder = regex::Regex::new(r#""<([^<>"]*)>"|<([^<>]*)>"#).ok()?;
    let mut out = String::from("^");
    let mut last = 0;
    let mut any = false;
    for c in holder.captures_iter(text) {
        let Some(m) = c.get(0) else { continue };
        out.push_str(&regex::escape(&text[last..m.start()]));
        let whole = c.get(1).is_some();
        let name = c.get(1).or(c.get(2)).map_or("", |n| n.as_str());
        match answered(name, whole, answer) {
            Some(filled) => {
                out.push_str(&regex::escape(&filled));
                any = true;
            }
            None if whole => out.push_str(&value),
            None => out.push_str(r#"[^"/?#&\\]+"#),
        }
        last = m.end();
    }
    out.push_str(&regex::escape(&text[last..]));
    out.push('$');
    regex::Regex::new(&out).ok().map(|r| (r, any))
}

/// A templated request as a pattern with every placeholder open.
fn template(text: &str) -> Option<regex::Regex> {
    pattern(text, &|_| None).map(|(r, _)| r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(method: &str, url: &str, body: Option<Value>) -> RequestView {
        RequestView {
            method: method.into(),
            url: url.into(),
            headers: vec![("Authorization".into(), "Bearer [secret]".into())],
            body,
        }
    }

    fn gate(plan: Value) -> PlanGate {
        PlanGate {
            digest: String::new(),
            steps: allows(&plan),
            plan,
            approvers: Vec::new(),
        }
    }

    fn entry(v: &RequestView, exact: bool) -> Value {
        let mut e = serde_json::to_value(v).expect("view");
        e["exact"] = Value::Bool(exact);
        e
    }

    #[test]
    fn a_placeholder_the_run_can_answer_must_hold_that_answer() {
        let create = view(
            "POST",
            "https://e/api-keys",
            Some(
                serde_json::json!({"name": "<snapshot.name>.esus-ir-ab", "scopes": "<snapshot.scopes>"}),
            ),
        );
        let g = gate(serde_json::json!({"steps": [
            {"id": "replace", "requests": [entry(&create, false)]},
        ]}));
        let body = |name: &str, scopes: Value| {
            view(
                "POST",
                "https://e/api-keys",
                Some(serde_json::json!({"name": name, "scopes": scopes})),
            )
        };
        let snapshot = |name: &str| match name {
            "snapshot.name" => Some(Value::from("ehr")),
            "snapshot.scopes" => Some(serde_json::json!(["Patient.read"])),
            _ => None,
        };
        let ok = body("ehr.esus-ir-ab", serde_json::json!(["Patient.read"]));
        assert_eq!(g.allows_with("replace", &ok, &snapshot), Ok(()));
        let wider = body("ehr.esus-ir-ab", serde_json::json!(["*"]));
        assert!(
            g.allows_with("replace", &wider, &snapshot).is_err(),
            "scopes other than the snapshot's"
        );
        assert_eq!(
            g.allows("replace", &wider),
            Ok(()),
            "open without the answers"
        );
        let renamed = body("billing.esus-ir-ab", serde_json::json!(["Patient.read"]));
        assert!(g.allows_with("replace", &renamed, &snapshot).is_err());
        // An answer that looks like a placeholder is only itself.
        let sly = |name: &str| match name {
            "snapshot.scopes" => Some(Value::from("<x>")),
            other => snapshot(other),
        };
        let other = body("ehr.esus-ir-ab", Value::from("anything"));
        assert!(g.allows_with("replace", &other, &sly).is_err());
    }

    #[test]
    fn an_answer_a_url_escapes_stays_open_and_a_number_is_bound() {
        let get = view(
            "GET",
            "https://e/users/<who.id>/keys?limit=<who.limit>",
            None,
        );
        let g = gate(serde_json::json!({"steps": [
            {"id": "look", "requests": [entry(&get, false)]},
        ]}));
        let who = |name: &str| match name {
            "who.id" => Some(Value::from("a b")),
            "who.limit" => Some(Value::from(100)),
            _ => None,
        };
        // The URL carries "a b" escaped: that placeholder cannot be bound to the raw text.
        let sent = view("GET", "https://e/users/a%20b/keys?limit=100", None);
        assert_eq!(g.allows_with("look", &sent, &who), Ok(()));
        let more = view("GET", "https://e/users/a%20b/keys?limit=5000", None);
        assert!(
            g.allows_with("look", &more, &who).is_err(),
            "a number is the answer's number"
        );
    }

    #[test]
    fn item_digests_bind_only_a_fan_out_shown_and_an_expiry_must_be_a_time() {
        let now = now();
        let shown = view("POST", "https://e/api-keys/k-0/rotate", None);
        let d = |n: usize| {
            crate::transcript::request_digest(&view(
                "POST",
                &format!("https://e/api-keys/k-{n}/rotate"),
                None,
            ))
        };
        let mut listed = entry(&shown, true);
        listed["request_sha256"] = Value::from(d(0));
        let plan = |items: Value, digests: Vec<String>| {
            serde_json::json!({"steps": [{"id": "rotate", "items": items,
                "requests": [listed.clone()], "items_sha256": digests}]})
        };
        assert!(well_formed(&plan(Value::from(2), vec![d(0), d(1)]), now).is_ok());
        let hidden = plan(Value::Null, vec![d(0), d(1)]);
        assert!(
            well_formed(&hidden, now).is_err(),
            "digests on a step that is not a fan-out"
        );
        assert!(well_formed(&plan(Value::from(3), vec![d(0), d(1)]), now).is_err());
        assert!(
            well_formed(&plan(Value::from(2), vec![d(1), d(0)]), now).is_err(),
            "the first digests are those of the requests shown"
        );
        let vague = serde_json::json!({"expires_at": "next week", "steps": []});
        assert!(matches!(
            well_formed(&vague, now),
            Err(PlanRefusal::Malformed(_))
        ));
        let number = serde_json::json!({"expires_at": 1, "steps": []});
        assert!(well_formed(&number, now).is_err());
    }

    #[test]
    fn each_item_of_a_fan_out_passes_by_its_digest_and_no_other() {
        let item = |n: usize| view("POST", &format!("https://e/api-keys/k-{n}/rotate"), None);
        let digests: Vec<String> = (0..120)
            .map(|n| crate::transcript::request_digest(&item(n)))
            .collect();
        let g = gate(serde_json::json!({"steps": [
            {"id": "rotate", "requests": [entry(&item(0), true)], "items_sha256": digests},
            {"id": "other", "requests": []},
        ]}));
        assert_eq!(
            g.allows("rotate", &item(119)),
            Ok(()),
            "past the listed ones"
        );
        assert!(
            g.allows("rotate", &item(120)).is_err(),
            "an item not planned"
        );
        assert!(g.allows("other", &item(5)).is_err(), "another step's item");
    }

    #[test]
    fn only_the_planned_request_or_its_filled_template_passes() {
        let delete = view("DELETE", "https://e/api-keys/k-1", None);
        let rename = view(
            "PUT",
            "https://e/api-keys/<new-key-id>",
            Some(serde_json::json!({"name": "ehr"})),
        );
        let g = gate(serde_json::json!({"steps": [
            {"id": "delete", "requests": [entry(&delete, true)]},
            {"id": "replace", "requests": [], "follow_ups": [entry(&rename, false)]},
        ]}));
        assert_eq!(g.allows("delete", &delete), Ok(()));
        let other = view("DELETE", "https://e/api-keys/k-2", None);
        assert!(g.allows("delete", &other).is_err(), "another key");
        assert!(
            g.allows("replace", &delete).is_err(),
            "another step's request"
        );
        assert!(g.allows("nope", &delete).is_err(), "a step the plan lacks");
        let filled = view(
            "PUT",
            "https://e/api-keys/k-90001",
            Some(serde_json::json!({"name": "ehr"})),
        );
        assert_eq!(g.allows("replace", &filled), Ok(()));
        let escaped = view(
            "PUT",
            "https://e/api-keys/k-1/../admin",
            Some(serde_json::json!({"name": "ehr"})),
        );
        assert!(
            g.allows("replace", &escaped).is_err(),
            "a placeholder never spans a path separator"
        );
        let renamed = view(
            "PUT",
            "https://e/api-keys/k-90001",
            Some(serde_json::json!({"name": "evil"})),
        );
        assert!(
            g.allows("replace", &renamed).is_err(),
            "the literal part binds"
        );
        // A placeholder standing for a whole value takes a scalar or a flat array, never more.
        let create = view(
            "POST",
            "https://e/api-keys",
            Some(
                serde_json::json!({"name": "<snapshot.name>.esus-ir-1", "scopes": "<snapshot.scopes>"}),
            ),
        );
        let g = gate(
            serde_json::json!({"steps": [{"id": "make", "requests": [entry(&create, false)]}]}),
        );
        let filled = view(
            "POST",
            "https://e/api-keys",
            Some(
                serde_json::json!({"name": "ehr.esus-ir-1", "scopes": ["Patient.read", "Observation.read"]}),
            ),
        );
        assert_eq!(g.allows("make", &filled), Ok(()));
        let nested = view(
            "POST",
            "https://e/api-keys",
            Some(serde_json::json!({"name": "ehr.esus-ir-1", "scopes": {"admin": true}})),
        );
        assert!(g.allows("make", &nested).is_err());
        let other_claim = view(
            "POST",
            "https://e/api-keys",
            Some(serde_json::json!({"name": "ehr.esus-ir-2", "scopes": []})),
        );
        assert!(
            g.allows("make", &other_claim).is_err(),
            "the claim tag is bound"
        );
    }

    /// A plan file, its approvals by `keys` (each signs once), and who is listed.
    struct Fixture {
        dir: tempfile::TempDir,
        plan: PathBuf,
    }

    fn fixture(plan: &Value) -> Fixture {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("plan.json");
        std::fs::write(&path, canonical_json(plan)).expect("plan");
        Fixture { dir, plan: path }
    }

    fn sign(f: &Fixture, key: &crate::transcript::Signer, name: &str) {
        let bytes = std::fs::read(&f.plan).expect("read");
        let sig = key.sign_in(PLAN_NAMESPACE, &bytes).expect("sign");
        std::fs::write(f.dir.path().join(format!("plan.json.{name}.sig")), sig).expect("sig");
    }

    fn listed(keys: &[(&str, &crate::transcript::Signer, &str)]) -> Vec<AllowedSigner> {
        let text: String = keys
            .iter()
            .map(|(who, k, ns)| {
                let public = k.public_key_openssh();
                let fields: Vec<&str> = public.split_whitespace().take(2).collect();
                format!("{who} namespaces=\"{ns}\" {}\n", fields.join(" "))
            })
            .collect();
        crate::transcript::parse_allowed_signers(&text).0
    }

    fn plan_value(expires: Option<&str>) -> Value {
        serde_json::json!({"kind": PLAN_KIND, "schema_version": 1, "expires_at": expires, "steps": []})
    }

    fn now() -> jiff::Timestamp {
        "2026-12-07T00:00:00Z".parse().expect("time")
    }

    #[test]
    fn approvals_count_once_per_listed_key_never_the_operators_and_only_for_plans() {
        let alice = crate::transcript::Signer::generate("alice").expect("key");
        let bob = crate::transcript::Signer::generate("bob").expect("key");
        let me = crate::transcript::Signer::generate("operator").expect("key");
        let f = fixture(&plan_value(None));
        sign(&f, &alice, "a1");
        sign(&f, &alice, "a2");
        sign(&f, &me, "me");
        let signers = listed(&[
            ("alice", &alice, PLAN_NAMESPACE),
            ("operator", &me, PLAN_NAMESPACE),
            ("bob", &bob, "esus-ir-transcript"),
        ]);
        let own = me.public_key_openssh();
        let one = PlanGate::load(&f.plan, &signers, 1, Some(&own), now()).expect("one approval");
        assert_eq!(one.approvers.len(), 1, "alice twice is alice once");
        assert_eq!(one.approvers[0].principal, "alice");
        let two = PlanGate::load(&f.plan, &signers, 2, Some(&own), now());
        assert!(
            matches!(two, Err(PlanRefusal::NotApproved(_))),
            "the operator's own never counts"
        );
        // bob signs, but is listed only for transcripts: still one.
        sign(&f, &bob, "b");
        assert!(PlanGate::load(&f.plan, &signers, 2, Some(&own), now()).is_err());
        let signers = listed(&[
            ("alice", &alice, PLAN_NAMESPACE),
            ("bob", &bob, "esus-ir-plan,esus-ir-policy"),
        ]);
        let both = PlanGate::load(&f.plan, &signers, 2, Some(&own), now()).expect("two");
        assert_eq!(both.approvers.len(), 2);
        assert_eq!(
            both.digest,
            sha256_hex(&std::fs::read(&f.plan).expect("read"))
        );
        // A signature over other bytes (a transcript's namespace, another plan) is no approval.
        let g = fixture(&plan_value(Some("2027-01-01T00:00:00Z")));
        std::fs::copy(
            f.dir.path().join("plan.json.a1.sig"),
            g.dir.path().join("plan.json.a1.sig"),
        )
        .expect("copy");
        assert!(PlanGate::load(&g.plan, &signers, 1, None, now()).is_err());
    }

    #[test]
    fn a_plan_must_be_the_written_bytes_and_unexpired() {
        let alice = crate::transcript::Signer::generate("alice").expect("key");
        let signers = listed(&[("alice", &alice, PLAN_NAMESPACE)]);
        let f = fixture(&plan_value(Some("2026-12-06T23:59:59Z")));
        sign(&f, &alice, "a");
        let late = PlanGate::load(&f.plan, &signers, 1, None, now());
        assert!(
            matches!(late, Err(PlanRefusal::NotApproved(ref w)) if w.contains("expired")),
            "{late:?}"
        );
        let ok = fixture(&plan_value(Some("2026-12-07T00:00:01Z")));
        sign(&ok, &alice, "a");
        assert!(
            PlanGate::load(&ok.plan, &signers, 1, None, now()).is_ok(),
            "not yet expired"
        );
        // Re-formatted, or another kind of file: not a plan.
        let pretty = ok.dir.path().join("pretty.json");
        std::fs::write(
            &pretty,
            serde_json::to_vec_pretty(&plan_value(None)).expect("json"),
        )
        .expect("w");
        assert!(matches!(
            PlanGate::load(&pretty, &signers, 0, None, now()),
            Err(PlanRefusal::Malformed(_))
        ));
        let other = fixture(&serde_json::json!({"kind": "plan", "steps": []}));
        assert!(matches!(
            PlanGate::load(&other.plan, &signers, 0, None, now()),
            Err(PlanRefusal::Malformed(_))
        ));
    }
}
