//! Resuming a stopped run from its transcript — without taking its word for anything that can
//! be checked.
//!
//! What an earlier run of the chain finished is carried over only from the part of its
//! transcript a trusted key signed (`trusted_len`: the final signature, or the last checkpoint
//! of a killed run); records after it are read for what went out, never for what finished.
//! Containment checks are never carried: they are asked of ESUS again. A non-idempotent request
//! with no recorded answer (none at all, or a dropped connection) is checked against ESUS's state
//! before anything is sent again (super::recover). Secrets a finished step made are read back
//! from the files its record names; a step that needs one that is gone cannot go on.

use std::collections::HashMap;
use std::path::Path;

use jiff::Timestamp;
use secrecy::SecretString;
use serde_json::{Map, Value};

use crate::event::{EvidenceRef, StepStatus};
use crate::runbook::Validated;
use crate::template::Engine;
use crate::transcript::Record;

/// A step finished by an earlier (resumed) run: status, non-secret and secret outputs.
pub type FinishedStep = (
    StepStatus,
    Map<String, Value>,
    HashMap<String, SecretString>,
);

/// A fan-out item an earlier run finished.
#[derive(Debug, Clone)]
pub struct DoneItem {
    /// Its outputs, non-secret.
    pub outputs: Map<String, Value>,
    /// Its secret outputs, read back from their files.
    pub secrets: HashMap<String, SecretString>,
    /// The files (names in the secrets folder) they were read from.
    pub secret_files: Vec<String>,
}

/// What an earlier run did with one `foreach` step it did not finish.
#[derive(Debug, Clone, Default)]
pub struct BatchProgress {
    /// Items that finished `ok`, by index.
    pub done: HashMap<usize, DoneItem>,
    /// Items whose non-idempotent request went out with no answer that settles it.
    pub unknown: HashMap<usize, LostWrite>,
}

/// A request not safe to repeat that an earlier leg sent with no answer that settles it, and
/// what the incident's records say to settle it with.
#[derive(Debug, Clone)]
pub struct LostWrite {
    /// When it was first sent.
    pub sent_at: Timestamp,
    /// A rotate: the old key's `supersededBy` before it, from a signed record (`Some(None)`:
    /// it had none); `None` when no signed record showed it.
    pub before: Option<Option<String>>,
    /// Ids the incident's records named for this write: a created key's id in an answer, the
    /// key a rename was sent for. Only candidates: one is adopted only when its secret is held.
    pub known: Vec<String>,
}

/// A finished step as the new transcript records it (`carried`), with where it was finished.
#[derive(Debug, Clone)]
pub struct Carried {
    /// The step id.
    pub step: String,
    /// Its non-secret outputs.
    pub outputs: Map<String, Value>,
    /// Evidence it saved.
    pub evidence: Vec<EvidenceRef>,
    /// Its secret files (names in the secrets folder).
    pub secret_files: Vec<String>,
    /// The transcript that first recorded it, and the record.
    pub from_file: String,
    /// The record's seq.
    pub from_seq: u64,
}

/// What a resumed run starts from.
#[derive(Debug, Default, Clone)]
pub struct ResumePlan {
    /// Steps that finished `ok`, with their outputs (secret ones read back from their files).
    pub finished: HashMap<String, FinishedStep>,
    /// What to record as carried in the new transcript, in step order.
    pub carried: Vec<Carried>,
    /// Fan-outs an earlier run began and did not finish.
    pub batches: HashMap<String, BatchProgress>,
    /// Non-idempotent steps whose request went out with no answer that settles it.
    pub unknown: HashMap<String, LostWrite>,
    /// The non-secret inputs the first run used.
    pub inputs: Map<String, Value>,
    /// The hash of the last record of the transcript resumed (the new transcript links to it).
    pub resumes: String,
    /// The transcript resumed (its file name in the run folder).
    pub resumes_file: String,
    /// When the first run of the chain started.
    pub chain_started_at: Option<String>,
    /// The chain already completed: nothing is left to do.
    pub complete: bool,
    /// What earlier legs saw ESUS accept (signed records only): containment is proven against it.
    pub witnessed: Vec<super::witness::Fact>,
    /// What the operator should know (one line each).
    pub notes: Vec<String>,
}

/// The transcript being resumed, as read.
pub struct Source<'a> {
    /// Its records (complete lines).
    pub records: &'a [Record],
    /// How many of them a trusted key signed.
    pub trusted_len: usize,
    /// Its file name in the run folder.
    pub file_name: &'a str,
    /// The run folder's secrets folder.
    pub secrets_dir: &'a Path,
}

/// Works out the resume plan: the incident's plan minus what its signed records prove done.
pub fn plan(src: &Source<'_>, valid: &Validated) -> Result<ResumePlan, String> {
    let trusted = &src.records[..src.trusted_len.min(src.records.len())];
    let last = trusted
        .last()
        .ok_or("no record of the transcript is signed by a trusted key")?;
    // The new chain links to the head of the file as read (what the new run continues from);
    // what it may rely on is only the trusted part.
    let head = src.records.last().unwrap_or(last);
    let mut plan = ResumePlan {
        resumes: head.hash.clone(),
        resumes_file: src.file_name.to_string(),
        ..ResumePlan::default()
    };
    read_start(trusted, &mut plan);
    plan.witnessed = trusted
        .iter()
        .filter(|r| r.kind == "witness")
        .filter_map(|r| {
            super::witness::Fact::from_record(r.str_field("fact")?, r.str_field("what")?)
        })
        .collect();
    plan.complete = completed(trusted);
    let missing = carry_finished(src, trusted, valid, &mut plan);
    let finished = plan.finished.keys().cloned().collect();
    read_batches(src, valid, &finished, &mut plan);
    read_unknown(src.records, src.trusted_len, valid, &mut plan);
    check_secrets_needed(valid, &plan, &missing)?;
    say_what_is_done(src, valid, &mut plan);
    Ok(plan)
}

/// Whether the incident is complete: only a live leg's signed end of success completes it (a
/// dry-run sent nothing).
fn completed(trusted: &[Record]) -> bool {
    let live = trusted
        .first()
        .is_some_and(|r| r.str_field("mode") != Some("dry-run"));
    live && trusted
        .last()
        .is_some_and(|r| r.kind == "run-finished" && r.str_field("outcome") == Some("success"))
}

/// The steps the trusted records say finished, with their secrets read back; returns the
/// secrets that could not be (by template path, with why). Containment checks are never
/// carried: an earlier "contained" is not taken on trust, ESUS is asked again.
fn carry_finished(
    src: &Source<'_>,
    trusted: &[Record],
    valid: &Validated,
    plan: &mut ResumePlan,
) -> HashMap<String, String> {
    let finished = finished_steps(trusted, src.file_name);
    let mut missing = HashMap::new();
    for (i, step) in valid.runbook.steps.iter().enumerate() {
        let info = &valid.steps[i];
        let Some(done) = finished.get(&step.id).filter(|_| !info.action.check) else {
            continue;
        };
        let mut outputs = done.outputs.clone();
        let mut secrets = HashMap::new();
        for name in &info.secret_outputs {
            outputs.remove(name);
            match read_secret(src.secrets_dir, &done.secret_files, &step.id, name) {
                Ok(s) => {
                    secrets.insert(name.clone(), s);
                }
                Err(why) => {
                    missing.insert(format!("steps.{}.outputs.{name}", step.id), why);
                }
            }
        }
        plan.finished
            .insert(step.id.clone(), (StepStatus::Ok, outputs, secrets));
        plan.carried.push(done.clone());
    }
    missing
}

/// The lines the operator reads first: what is done, and what of the transcript is not signed.
fn say_what_is_done(src: &Source<'_>, valid: &Validated, plan: &mut ResumePlan) {
    let done: Vec<&str> = valid
        .runbook
        .steps
        .iter()
        .filter(|s| plan.finished.contains_key(&s.id))
        .map(|s| s.id.as_str())
        .collect();
    let untrusted = src.records.len().saturating_sub(src.trusted_len);
    if untrusted > 0 {
        plan.notes.push(format!(
            "the last {untrusted} record(s) of {} are not signed (the run was killed before its next checkpoint): what they say finished is done again, or checked against ESUS first",
            src.file_name
        ));
    }
    let list = if done.is_empty() {
        "none".to_string()
    } else {
        done.join(", ")
    };
    plan.notes.insert(
        0,
        format!(
            "resuming: {} of {} steps finished earlier ({list}); containment is checked against ESUS again",
            done.len(),
            valid.runbook.steps.len(),
        ),
    );
}

fn read_start(trusted: &[Record], plan: &mut ResumePlan) {
    let Some(first) = trusted.first().filter(|r| r.kind == "run-started") else {
        return;
    };
    if let Some(Value::Object(inputs)) = first.data.get("inputs") {
        plan.inputs = inputs
            .iter()
            .filter(|(_, v)| !v.is_null() && v.as_str() != Some(crate::event::REDACTED))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
    }
    plan.chain_started_at = first
        .str_field("chain_started_at")
        .map(str::to_string)
        .or_else(|| Some(first.ts.clone()));
}

/// Every step the trusted records say finished `ok`: carried from an earlier transcript of the
/// chain, or finished in this one.
fn finished_steps(trusted: &[Record], file_name: &str) -> HashMap<String, Carried> {
    let mut out = HashMap::new();
    for r in trusted {
        let Some(step) = r.step() else { continue };
        let carried = r.kind == "carried";
        let ok = carried || (r.kind == "step-finished" && r.str_field("status") == Some("ok"));
        if !ok {
            if r.kind == "step-finished" {
                out.remove(step);
            }
            continue;
        }
        let (from_file, from_seq) = if carried {
            (
                r.str_field("from_file").unwrap_or(file_name).to_string(),
                r.data
                    .get("from_seq")
                    .and_then(Value::as_u64)
                    .unwrap_or(r.seq),
            )
        } else {
            (file_name.to_string(), r.seq)
        };
        out.insert(
            step.to_string(),
            Carried {
                step: step.to_string(),
                outputs: object(r.data.get("outputs")),
                evidence: evidence(r.data.get("evidence")),
                secret_files: strings(r.data.get("secret_files")),
                from_file,
                from_seq,
            },
        );
    }
    out
}

/// Items of unfinished fan-outs: those that finished `ok`, trusted, with their secrets.
fn read_batches(
    src: &Source<'_>,
    valid: &Validated,
    finished: &std::collections::HashSet<String>,
    plan: &mut ResumePlan,
) {
    let trusted = &src.records[..src.trusted_len.min(src.records.len())];
    // `carried-item` is an item an earlier run of the chain finished, carried forward by the
    // run in between (which may have stopped before reaching the batch).
    for r in trusted
        .iter()
        .filter(|r| r.kind == "item-finished" || r.kind == "carried-item")
    {
        let Some(step) = r.step().filter(|s| !finished.contains(*s)) else {
            continue;
        };
        let Some(k) = r.data.get("item").and_then(Value::as_u64) else {
            continue;
        };
        let batch = plan.batches.entry(step.to_string()).or_default();
        if r.kind == "item-finished" && r.str_field("status") != Some("ok") {
            batch.done.remove(&(k as usize));
            continue;
        }
        let Some(i) = valid.index_of(step) else {
            continue;
        };
        let files = strings(r.data.get("secret_files"));
        let mut secrets = HashMap::new();
        let mut lost = false;
        for name in &valid.steps[i].secret_outputs {
            match read_secret(src.secrets_dir, &files, &format!("{step}[{k}]"), name) {
                Ok(s) => {
                    secrets.insert(name.clone(), s);
                }
                Err(_) => lost = true,
            }
        }
        if lost {
            // Its secret is gone: the item is not done (its recovery will find what it made).
            plan.notes.push(format!(
                "{step}: item {k} finished but its secret file cannot be read back; it is checked against ESUS again"
            ));
            continue;
        }
        batch.done.insert(
            k as usize,
            DoneItem {
                outputs: object(r.data.get("outputs")),
                secrets,
                secret_files: files,
            },
        );
    }
}

/// Requests of steps (or items) that did not finish, with no answer that settles them (none, a
/// connection that failed, a 5xx, or a success whose result was never recorded as kept): an
/// idempotent one is simply sent again; a non-idempotent one is checked against ESUS first.
/// Every request counts, signed or not (what went out is what matters); only an answer among
/// the first `trusted_len` records counts as an answer — one in the unsigned tail could be
/// forged, so such a request's outcome is unknown, never "already done".
fn read_unknown(records: &[Record], trusted_len: usize, valid: &Validated, plan: &mut ResumePlan) {
    let trusted_len = trusted_len.min(records.len());
    for (n, r) in records.iter().enumerate() {
        if r.kind == "unresolved" {
            carry_unresolved(r, plan);
            continue;
        }
        let Some(step) = unsettled_write(records, n, trusted_len, valid, plan) else {
            continue;
        };
        let item = r.data.get("item").and_then(Value::as_u64);
        let request_id = r.str_field("request_id").unwrap_or_default();
        let lost = LostWrite {
            sent_at: r
                .ts
                .parse::<Timestamp>()
                .unwrap_or_else(|_| Timestamp::now()),
            before: before_image(&records[..trusted_len.min(n)], step, item),
            known: known_ids(records, step, item, request_id),
        };
        let shown = |field: &str| {
            r.data
                .get("request")
                .and_then(|v| v.get(field))
                .and_then(Value::as_str)
                .unwrap_or("?")
        };
        plan.notes.push(format!(
            "{step}{}: {} {} got no recorded answer and is not safe to repeat: what it did is settled by its exact claim before anything is sent again",
            item.map(|k| format!(" item {k}")).unwrap_or_default(),
            shown("method"),
            shown("url"),
        ));
        match item {
            Some(k) => {
                plan.batches
                    .entry(step.to_string())
                    .or_default()
                    .unknown
                    .insert(k as usize, lost);
            }
            None => {
                plan.unknown.insert(step.to_string(), lost);
            }
        }
    }
}

/// The step of record `n` when it is a write not safe to repeat whose outcome no trusted record
/// settles: its step (item) did not finish, and no signed client error (4xx, "nothing happened")
/// answered it. Reads and probes a step makes around its write change nothing.
fn unsettled_write<'a>(
    records: &'a [Record],
    n: usize,
    trusted_len: usize,
    valid: &Validated,
    plan: &ResumePlan,
) -> Option<&'a str> {
    let r = &records[n];
    let step = r.step().filter(|_| r.kind == "request")?;
    let i = valid.index_of(step)?;
    if plan.finished.contains_key(step) || valid.steps[i].idempotent {
        return None;
    }
    let method = r
        .data
        .get("request")
        .and_then(|v| v.get("method"))
        .and_then(Value::as_str);
    if method == Some("GET") || r.data.get("probe").and_then(Value::as_bool) == Some(true) {
        return None;
    }
    // Any other answer to a step or item that did not (trustedly) finish — a 2xx whose outputs
    // were never recorded as done, a 5xx, a dropped connection, or no signed answer at all —
    // leaves ESUS's state unknown: it is settled by the write's claim before anything is sent.
    let request_id = r.str_field("request_id").unwrap_or_default();
    let refused = records[(n + 1).min(trusted_len)..trusted_len]
        .iter()
        .find(|x| x.kind == "response" && x.str_field("request_id") == Some(request_id))
        .and_then(|x| x.data.get("status").and_then(Value::as_u64))
        .is_some_and(|status| (400..500).contains(&status));
    let item = r.data.get("item").and_then(Value::as_u64);
    let item_done = item.is_some_and(|k| {
        plan.batches
            .get(step)
            .is_some_and(|b| b.done.contains_key(&(k as usize)))
    });
    (!refused && !item_done).then_some(step)
}

/// What the key of step `step` (item `item`) named as its successor before its rotate, as the
/// latest signed `rotate-before` record of that step (item) among `trusted` says.
fn before_image(trusted: &[Record], step: &str, item: Option<u64>) -> Option<Option<String>> {
    trusted
        .iter()
        .rev()
        .find(|r| {
            r.kind == "rotate-before"
                && r.step() == Some(step)
                && r.data.get("item").and_then(Value::as_u64) == item
        })
        .map(|r| r.str_field("superseded_by").map(str::to_string))
}

/// Ids the records name for a write of step `step` (item `item`): the `id` in any answer to it,
/// and every key a rename of that step (item) was sent for. Signed or not: they are only
/// candidates, adopted when this incident holds their secret.
fn known_ids(records: &[Record], step: &str, item: Option<u64>, request_id: &str) -> Vec<String> {
    let mut out = Vec::new();
    for r in records {
        if r.kind == "response"
            && r.str_field("request_id") == Some(request_id)
            && let Some(id) = r
                .data
                .get("body")
                .and_then(|b| b.get("id"))
                .and_then(Value::as_str)
        {
            out.push(id.to_string());
        }
        let same = r.step() == Some(step) && r.data.get("item").and_then(Value::as_u64) == item;
        if r.kind != "request" || !same {
            continue;
        }
        let req = r.data.get("request");
        let put = req.and_then(|q| q.get("method")).and_then(Value::as_str) == Some("PUT");
        let url = req
            .and_then(|q| q.get("url"))
            .and_then(Value::as_str)
            .unwrap_or("");
        if let (true, Some((_, id))) = (put, url.rsplit_once("/api-keys/")) {
            let id = id.split(['?', '/']).next().unwrap_or_default();
            let id = percent_encoding::percent_decode_str(id)
                .decode_utf8_lossy()
                .into_owned();
            if !id.is_empty() && !out.contains(&id) {
                out.push(id);
            }
        }
    }
    out
}

/// An outcome an earlier run of the chain left unknown and the run in between did not settle
/// (it stopped first): still unknown, from the time it was first sent.
fn carry_unresolved(r: &Record, plan: &mut ResumePlan) {
    let Some(step) = r.step() else { return };
    if plan.finished.contains_key(step) {
        return;
    }
    let lost = LostWrite {
        sent_at: r
            .str_field("sent_at")
            .and_then(|t| t.parse::<Timestamp>().ok())
            .unwrap_or_else(Timestamp::now),
        before: r
            .data
            .get("before")
            .and_then(|b| serde_json::from_value::<crate::event::Before>(b.clone()).ok())
            .map(|b| b.superseded_by),
        known: strings(r.data.get("known")),
    };
    let item = r.data.get("item").and_then(Value::as_u64);
    match item {
        Some(k) => {
            let batch = plan.batches.entry(step.to_string()).or_default();
            if !batch.done.contains_key(&(k as usize)) {
                batch.unknown.entry(k as usize).or_insert(lost);
            }
        }
        None => {
            plan.unknown.entry(step.to_string()).or_insert(lost);
        }
    }
    plan.notes.push(format!(
        "{step}{}: an earlier run of this incident sent a request that is not safe to repeat and got no answer: what it did is settled by its exact claim first",
        item.map(|k| format!(" item {k}")).unwrap_or_default()
    ));
}

/// A step still to run that needs a secret an earlier step made, whose file is gone, cannot go on.
fn check_secrets_needed(
    valid: &Validated,
    plan: &ResumePlan,
    missing: &HashMap<String, String>,
) -> Result<(), String> {
    let engine = Engine::new();
    for step in valid
        .runbook
        .steps
        .iter()
        .filter(|s| !plan.finished.contains_key(&s.id))
    {
        for value in step.with.values() {
            for r in string_refs(&engine, value) {
                if let Some(why) = missing.get(&r) {
                    return Err(format!(
                        "step `{}` needs the secret `{r}` from the earlier run, but it cannot be read back ({why}); it was never printed, so the run cannot go on. Rotate that key again by hand, or re-run the runbook from the start",
                        step.id
                    ));
                }
            }
        }
    }
    Ok(())
}

/// A secret output's value: from the file its record names, else `<stem>.<name>`.
fn read_secret(
    dir: &Path,
    files: &[String],
    stem: &str,
    name: &str,
) -> Result<SecretString, String> {
    let plain = format!("{stem}.{name}");
    let file = files
        .iter()
        .find(|f| **f == plain || f.starts_with(&format!("{plain}.")))
        .cloned()
        .unwrap_or(plain);
    // Only a file name: a record cannot point resume outside the secrets folder.
    if file.contains('/') || file.contains('\\') || file.starts_with('.') {
        return Err(format!("`{file}` is not a file name in the secrets folder"));
    }
    let path = dir.join(&file);
    std::fs::read_to_string(&path)
        .map(|text| SecretString::from(text.trim_end_matches(['\n', '\r']).to_string()))
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn object(v: Option<&Value>) -> Map<String, Value> {
    v.and_then(Value::as_object).cloned().unwrap_or_default()
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn evidence(v: Option<&Value>) -> Vec<EvidenceRef> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|e| {
                    Some(EvidenceRef {
                        file: e.get("file")?.as_str()?.to_string(),
                        sha256: e.get("sha256")?.as_str()?.to_string(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

fn string_refs(engine: &Engine, value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => engine
            .template_refs(s)
            .map(|r| r.into_iter().collect())
            .unwrap_or_default(),
        Value::Array(items) => items.iter().flat_map(|v| string_refs(engine, v)).collect(),
        Value::Object(map) => map.values().flat_map(|v| string_refs(engine, v)).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(seq: u64, kind: &str, data: Value) -> Record {
        let data = data.as_object().cloned().unwrap_or_default();
        Record::new(
            seq,
            "2026-12-07T03:00:00.000Z".into(),
            kind.into(),
            data,
            String::new(),
        )
    }

    fn valid() -> Validated {
        crate::runbook::check(
            "version: 1\nname: t\nsteps:\n  - {id: read, name: R, action: api_keys.get, with: {id: k-1}}\n  - {id: make, name: M, action: api_keys.create, with: {name: n, scopes: [Patient.read]}}\n  - {id: turn, name: T, action: api_keys.rotate, with: {id: k-1}}\n",
        )
        .expect("valid")
    }

    fn request(seq: u64, step: &str, id: &str, method: &str, url: &str) -> Record {
        rec(
            seq,
            "request",
            json!({"step": step, "request_id": id, "request": {"method": method, "url": url}}),
        )
    }

    fn response(seq: u64, step: &str, id: &str, status: u64, body: Value) -> Record {
        rec(
            seq,
            "response",
            json!({"step": step, "request_id": id, "status": status, "body": body}),
        )
    }

    #[test]
    fn only_a_live_legs_signed_success_completes_an_incident() {
        let live = rec(0, "run-started", json!({"mode": "live"}));
        let dry = rec(0, "run-started", json!({"mode": "dry-run"}));
        let ok = rec(1, "run-finished", json!({"outcome": "success"}));
        let failed = rec(
            1,
            "run-finished",
            json!({"outcome": "completed-with-failures"}),
        );
        assert!(completed(&[live.clone(), ok.clone()]));
        assert!(
            !completed(&[dry, ok.clone()]),
            "a dry-run completes nothing"
        );
        assert!(!completed(&[live.clone(), failed]));
        assert!(!completed(std::slice::from_ref(&live)), "no end");
        assert!(!completed(&[]));
    }

    #[test]
    fn a_write_is_unsettled_unless_a_signed_refusal_answered_it_or_its_step_finished() {
        let v = valid();
        let plan = ResumePlan::default();
        let records = vec![
            request(0, "make", "r1", "POST", "https://e/api-keys"),
            response(1, "make", "r1", 503, Value::Null),
            request(2, "read", "r2", "GET", "https://e/api-keys/k-1"),
            request(3, "make", "r3", "POST", "https://e/api-keys"),
            response(4, "make", "r3", 409, Value::Null),
            request(5, "make", "r4", "PUT", "https://e/api-keys/k-9"),
        ];
        let at = |n| unsettled_write(&records, n, records.len(), &v, &plan);
        assert_eq!(at(0), Some("make"), "a 5xx settles nothing");
        assert_eq!(at(1), None, "not a request");
        assert_eq!(at(2), None, "a read, and an idempotent step");
        assert_eq!(at(3), None, "a signed 4xx: nothing happened");
        assert_eq!(at(5), Some("make"), "no answer at all");
        assert_eq!(
            unsettled_write(&records, 3, 4, &v, &plan),
            Some("make"),
            "a refusal past the signed part is not believed"
        );
        let mut done = ResumePlan::default();
        done.finished
            .insert("make".into(), (StepStatus::Ok, Map::new(), HashMap::new()));
        assert_eq!(unsettled_write(&records, 0, records.len(), &v, &done), None);
        let probe = vec![rec(
            0,
            "request",
            json!({"step": "make", "request_id": "p", "probe": true, "request": {"method": "POST", "url": "u"}}),
        )];
        assert_eq!(unsettled_write(&probe, 0, 1, &v, &plan), None, "a probe");
        // Only the write's own answer settles it, never another request's refusal.
        let others = vec![
            request(0, "make", "rA", "POST", "https://e/api-keys"),
            response(1, "read", "rB", 404, Value::Null),
        ];
        assert_eq!(
            unsettled_write(&others, 0, others.len(), &v, &plan),
            Some("make"),
            "another request's 404 says nothing about this write"
        );
    }

    #[test]
    fn a_rotates_before_is_the_latest_signed_one_of_its_step_and_item() {
        let before = |s: Option<&str>, item: Option<u64>| {
            let mut d = json!({"step": "turn", "key": "k-1", "superseded_by": s});
            if let Some(k) = item {
                d["item"] = json!(k);
            }
            rec(0, "rotate-before", d)
        };
        let trusted = vec![
            before(Some("k-old"), None),
            before(None, None),
            before(Some("k-7"), Some(3)),
        ];
        assert_eq!(
            before_image(&trusted, "turn", None),
            Some(None),
            "the latest"
        );
        assert_eq!(
            before_image(&trusted, "turn", Some(3)),
            Some(Some("k-7".into()))
        );
        assert_eq!(
            before_image(&trusted, "turn", Some(4)),
            None,
            "another item"
        );
        assert_eq!(before_image(&trusted, "other", None), None, "another step");
        assert_eq!(before_image(&[], "turn", None), None);
    }

    #[test]
    fn known_ids_are_the_answers_id_and_every_rename_of_the_step() {
        let records = vec![
            request(0, "make", "r1", "POST", "https://e/api-keys"),
            response(
                1,
                "make",
                "r1",
                201,
                json!({"id": "k-90001", "secret": "[secret]"}),
            ),
            request(2, "make", "r2", "PUT", "https://e/api-keys/k-90001"),
            request(3, "other", "r3", "PUT", "https://e/api-keys/k-5"),
            request(4, "make", "r4", "PUT", "https://e/api-keys/k%2D2?x=1"),
            response(5, "make", "r9", 201, json!({"id": "k-other"})),
        ];
        assert_eq!(
            known_ids(&records, "make", None, "r1"),
            ["k-90001", "k-2"],
            "the answer's id, the renames (decoded), never another step's or request's"
        );
        assert!(
            known_ids(&records, "make", Some(1), "zz").is_empty(),
            "another item"
        );
        // An answer whose key was never renamed: its id comes from the answer alone.
        let answered = vec![
            request(0, "make", "r1", "POST", "https://e/api-keys"),
            response(1, "make", "r1", 201, json!({"id": "k-90001"})),
        ];
        assert_eq!(known_ids(&answered, "make", None, "r1"), ["k-90001"]);
    }
}
