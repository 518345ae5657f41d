//! The structural checks of `verify`: what must be true of a run's records beyond the chain.
//!
//! The first record opens the run and carries the runbook; the last closes it with the record
//! count and head hash, so a cut tail is visible; every approved confirmation names the digest of
//! the request that was then sent; evidence files still have their recorded digests.

use std::path::{Component, Path};

use serde_json::Value;

use super::canonical::{canonical_json, sha256_hex};
use super::chain::Located;
use super::verify::{Problem, ProblemKind};

/// What the structural checks found.
#[derive(Debug, Default)]
pub(crate) struct Structure {
    pub(crate) problems: Vec<Problem>,
    pub(crate) warnings: Vec<String>,
    pub(crate) complete: bool,
    pub(crate) outcome: Option<String>,
}

pub(crate) fn check_structure(
    records: &[Located],
    evidence_dir: &Path,
    require_evidence: bool,
) -> Structure {
    let mut out = Structure::default();
    check_first(records, &mut out);
    check_last(records, &mut out);
    check_confirmations(records, &mut out);
    check_evidence(records, evidence_dir, require_evidence, &mut out);
    out
}

fn problem(loc: &Located, kind: ProblemKind, what: impl Into<String>) -> Problem {
    Problem::at(Some(loc.record.seq), loc.line, kind, what)
}

fn check_first(records: &[Located], out: &mut Structure) {
    let Some(first) = records.first() else { return };
    if first.record.kind != "run-started" || first.line != 1 {
        out.problems.push(problem(
            first,
            ProblemKind::Structure,
            "the transcript does not begin with run-started",
        ));
    }
    for loc in records
        .iter()
        .skip(1)
        .filter(|l| l.record.kind == "run-started")
    {
        out.problems.push(problem(
            loc,
            ProblemKind::Structure,
            "a second run-started record",
        ));
    }
    let r = &first.record;
    match (r.str_field("runbook_text"), r.str_field("runbook_sha256")) {
        (Some(text), Some(digest)) if sha256_hex(text.as_bytes()) == digest => {}
        (Some(_), Some(_)) => out.problems.push(problem(
            first,
            ProblemKind::RunbookDigest,
            "the embedded runbook text does not match runbook_sha256",
        )),
        _ if r.kind == "run-started" => out.problems.push(problem(
            first,
            ProblemKind::Structure,
            "run-started lacks runbook_text or runbook_sha256",
        )),
        _ => {}
    }
}

fn check_last(records: &[Located], out: &mut Structure) {
    let Some(last) = records.last() else { return };
    for loc in &records[..records.len() - 1] {
        if loc.record.kind == "run-finished" {
            out.problems.push(problem(
                loc,
                ProblemKind::Structure,
                "run-finished is not the last record",
            ));
        }
    }
    let r = &last.record;
    if r.kind != "run-finished" {
        out.problems.push(problem(
            last,
            ProblemKind::Incomplete,
            format!(
                "the transcript ends after this {} record without run-finished (cut short, or the run was killed)",
                r.kind
            ),
        ));
        return;
    }
    out.outcome = r.str_field("outcome").map(str::to_string);
    let events = r.data.get("events").and_then(Value::as_u64);
    if events != Some(records.len() as u64) || events != Some(r.seq + 1) {
        out.problems.push(problem(
            last,
            ProblemKind::Incomplete,
            format!(
                "run-finished counts {} events but the transcript has {}",
                events.map_or("no".into(), |n| n.to_string()),
                records.len()
            ),
        ));
        return;
    }
    if r.str_field("head") != Some(r.prev.as_str()) {
        out.problems.push(problem(
            last,
            ProblemKind::Incomplete,
            "run-finished head does not match the previous record's hash",
        ));
        return;
    }
    out.complete = true;
}

fn check_confirmations(records: &[Located], out: &mut Structure) {
    for (i, loc) in records.iter().enumerate() {
        let r = &loc.record;
        if r.kind != "confirmation" || r.data.get("approved") != Some(&Value::Bool(true)) {
            continue;
        }
        let step = r.step();
        let window = || {
            records[i + 1..]
                .iter()
                .take_while(|l| !(l.record.kind == "confirmation" && l.record.step() == step))
                .filter(|l| {
                    l.record.kind == "request"
                        && l.record.step() == step
                        && l.record.data.get("attempt").and_then(Value::as_u64) == Some(1)
                })
        };
        let (digest, sent) = match batch_size(&records[..i], step) {
            // A foreach step is approved once for the batch: the digest covers every item's
            // first request, in item order. A batch the run did not finish cannot be compared.
            Some(items) => {
                let mut sent: Vec<(u64, &Located)> = window()
                    .filter_map(|l| {
                        l.record
                            .data
                            .get("item")
                            .and_then(Value::as_u64)
                            .map(|n| (n, l))
                    })
                    .collect();
                if sent.len() as u64 != items {
                    continue;
                }
                sent.sort_by_key(|(n, _)| *n);
                let mut joined = String::new();
                for (_, l) in &sent {
                    let one = l
                        .record
                        .data
                        .get("request")
                        .map(|v| sha256_hex(&canonical_json(v)));
                    joined.push_str(&one.unwrap_or_default());
                }
                let Some((_, last)) = sent.last() else {
                    continue;
                };
                (Some(sha256_hex(joined.as_bytes())), *last)
            }
            None => {
                // No request after an approval (dry-run, or the run stopped) leaves nothing to compare.
                let Some(sent) = window().next() else {
                    continue;
                };
                let digest = sent
                    .record
                    .data
                    .get("request")
                    .map(|v| sha256_hex(&canonical_json(v)));
                (digest, sent)
            }
        };
        if digest.as_deref() != r.str_field("request_sha256") {
            out.problems.push(problem(
                sent,
                ProblemKind::ConfirmationMismatch,
                format!(
                    "the request sent differs from the one approved at seq {} (request_sha256 mismatch)",
                    r.seq
                ),
            ));
        }
    }
}

/// The item count of a `foreach` step, from its `step-started` record.
fn batch_size(before: &[Located], step: Option<&str>) -> Option<u64> {
    before
        .iter()
        .rev()
        .find(|l| l.record.kind == "step-started" && l.record.step() == step)
        .and_then(|l| l.record.data.get("items").and_then(Value::as_u64))
}

fn check_evidence(records: &[Located], dir: &Path, require: bool, out: &mut Structure) {
    for loc in records.iter() {
        let evidence = match loc.record.kind.as_str() {
            "response" => loc
                .record
                .data
                .get("evidence")
                .filter(|v| !v.is_null())
                .cloned(),
            // A paged pull's summary names its file and digest directly.
            "audit-evidence" => Some(Value::Object(loc.record.data.clone())),
            _ => None,
        };
        let Some(evidence) = &evidence else {
            continue;
        };
        let file = evidence.get("file").and_then(Value::as_str);
        let digest = evidence.get("sha256").and_then(Value::as_str);
        let (Some(file), Some(digest)) = (file, digest) else {
            out.problems.push(problem(
                loc,
                ProblemKind::Evidence,
                "evidence reference lacks file or sha256",
            ));
            continue;
        };
        if !is_plain_relative(file) {
            out.problems.push(problem(
                loc,
                ProblemKind::Evidence,
                format!("evidence path {file:?} leaves the evidence folder"),
            ));
            continue;
        }
        let path = dir.join(file);
        match std::fs::read(&path) {
            Ok(bytes) if sha256_hex(&bytes) == digest => {
                if loc.record.kind == "audit-evidence" {
                    check_rows(loc, &bytes, &path, out);
                }
            }
            Ok(_) => out.problems.push(problem(
                loc,
                ProblemKind::Evidence,
                format!(
                    "evidence file {} does not match its recorded sha256",
                    path.display()
                ),
            )),
            Err(_) if require => out.problems.push(problem(
                loc,
                ProblemKind::Evidence,
                format!("evidence file {} is missing", path.display()),
            )),
            Err(_) => out.warnings.push(format!(
                "seq {} (line {}): evidence file {} is missing; its digest was not checked",
                loc.record.seq,
                loc.line,
                path.display()
            )),
        }
    }
}

/// An audit pull's file holds each row once, as many as its summary says.
fn check_rows(loc: &Located, bytes: &[u8], path: &Path, out: &mut Structure) {
    let claimed = loc.record.data.get("rows").and_then(Value::as_u64);
    let doc: Option<Value> = serde_json::from_slice(bytes).ok();
    let rows = doc
        .as_ref()
        .and_then(|d| d.get("rows"))
        .and_then(Value::as_array);
    let Some(rows) = rows else {
        out.problems.push(problem(
            loc,
            ProblemKind::Evidence,
            format!("evidence file {} holds no `rows` list", path.display()),
        ));
        return;
    };
    let ids: std::collections::HashSet<String> = rows
        .iter()
        .filter_map(|r| r.get("id"))
        .map(|id| id.to_string())
        .collect();
    if ids.len() != rows.len() || Some(rows.len() as u64) != claimed {
        out.problems.push(problem(
            loc,
            ProblemKind::Evidence,
            format!(
                "evidence file {} holds {} rows ({} distinct) but the pull recorded {}",
                path.display(),
                rows.len(),
                ids.len(),
                claimed.map_or("no count".into(), |n| n.to_string())
            ),
        ));
    }
}

fn is_plain_relative(file: &str) -> bool {
    let path = Path::new(file);
    !file.is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)))
}
