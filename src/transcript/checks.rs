//! The structural checks of `verify`: what must be true of a run's records beyond the chain.
//!
//! The first record opens the run and carries the runbook; the last closes it with the record
//! count and head hash, so a cut tail is visible; every request that changes ESUS is covered by
//! an approved confirmation of its step (by digest); evidence files still have their recorded
//! digests.

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path};

use serde_json::Value;

use super::canonical::{canonical_json, sha256_hex};
use super::chain::Located;
use super::findings::{Problem, ProblemKind};

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

/// An approval as its `confirmation` record states it.
struct Granted<'a> {
    loc: &'a Located,
    step: Option<&'a str>,
    approved: bool,
    /// `(item, request digest)` of every request it covers.
    covers: HashSet<(Option<u64>, String)>,
}

/// The `how` values a confirmation may carry.
const HOWS: &[&str] = &[
    "plan",
    "policy",
    "interactive",
    "assume-yes",
    "approve",
    "not-required",
    "missing",
];

/// Every request that changes ESUS must be sent under an earlier approved confirmation of its
/// step that covers exactly it (same item, same digest — recomputed here from the recorded
/// request, never taken from the record); every confirmation must be consistent in itself.
fn check_confirmations(records: &[Located], out: &mut Structure) {
    let mut granted: HashMap<u64, Granted<'_>> = HashMap::new();
    for loc in records {
        match loc.record.kind.as_str() {
            "confirmation" | "follow-up" => {
                if let Some((id, g)) = read_confirmation(loc, out) {
                    check_follow_up(loc, &g, &granted, out);
                    if granted.contains_key(&id) {
                        out.problems.push(problem(
                            loc,
                            ProblemKind::ConfirmationMismatch,
                            format!("approval {id} is recorded twice"),
                        ));
                        continue;
                    }
                    granted.insert(id, g);
                }
            }
            "request" => check_request(loc, &granted, out),
            _ => {}
        }
    }
}

/// A follow-up (a created key's rename) is approved only by the earlier approved approval of the
/// same step it names in `follows`.
fn check_follow_up(
    loc: &Located,
    g: &Granted<'_>,
    granted: &HashMap<u64, Granted<'_>>,
    out: &mut Structure,
) {
    if loc.record.kind != "follow-up" {
        return;
    }
    let follows = loc.record.data.get("follows").and_then(Value::as_u64);
    let parent = follows.and_then(|f| granted.get(&f));
    let ok = parent.is_some_and(|p| p.approved && p.step == g.step);
    if !ok {
        out.problems.push(problem(
            loc,
            ProblemKind::Unapproved,
            format!(
                "a follow-up approval must follow an approved approval of the same step; it follows {}",
                follows.map_or("none".to_string(), |f| format!("approval {f}"))
            ),
        ));
    }
}

/// Reads a confirmation and checks it against itself: its `request_sha256` is the digest of
/// its one request (one request, no item) or the batch digest over `covers` in order.
fn read_confirmation<'a>(loc: &'a Located, out: &mut Structure) -> Option<(u64, Granted<'a>)> {
    let r = &loc.record;
    let mut bad = |what: String| {
        out.problems
            .push(problem(loc, ProblemKind::ConfirmationMismatch, what));
    };
    let Some(id) = r.data.get("approval").and_then(Value::as_u64) else {
        bad("the confirmation has no approval number".into());
        return None;
    };
    // A follow-up is approved by the approval it follows (checked by `check_follow_up`).
    let follow_up = r.kind == "follow-up";
    let approved = match r.data.get("approved").and_then(Value::as_bool) {
        Some(a) => a,
        None if follow_up => true,
        None => {
            bad(format!(
                "approval {id} does not say whether it was approved"
            ));
            return None;
        }
    };
    let how = r.str_field("how").unwrap_or_default();
    if !follow_up && !HOWS.contains(&how) {
        bad(format!("approval {id} has an unknown `how` {how:?}"));
        return None;
    }
    if (how == "missing" && approved) || (how == "not-required" && !approved) {
        bad(format!(
            "approval {id} is {} but says how = {how:?}",
            if approved { "approved" } else { "not approved" }
        ));
        return None;
    }
    let Some(list) = r.data.get("covers").and_then(Value::as_array) else {
        bad(format!("approval {id} lists no `covers`"));
        return None;
    };
    let mut covers = Vec::with_capacity(list.len());
    for c in list {
        let item = match c.get("item") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64() {
                Some(k) => Some(k),
                None => {
                    bad(format!("approval {id} covers an item that is not a number"));
                    return None;
                }
            },
        };
        let Some(digest) = c.get("request_sha256").and_then(Value::as_str) else {
            bad(format!("approval {id} covers a request without a digest"));
            return None;
        };
        covers.push((item, digest.to_string()));
    }
    let expected = match covers.as_slice() {
        [(None, digest)] => digest.clone(),
        _ => {
            let joined: String = covers.iter().map(|(_, d)| d.as_str()).collect();
            sha256_hex(joined.as_bytes())
        }
    };
    if r.str_field("request_sha256") != Some(expected.as_str()) {
        bad(format!(
            "approval {id}: request_sha256 is not the digest of the requests it covers"
        ));
        return None;
    }
    Some((
        id,
        Granted {
            loc,
            step: r.step(),
            approved,
            covers: covers.into_iter().collect(),
        },
    ))
}

/// A request that changes ESUS names an approval that covers it.
fn check_request(loc: &Located, granted: &HashMap<u64, Granted<'_>>, out: &mut Structure) {
    let r = &loc.record;
    let Some(request) = r.data.get("request") else {
        out.problems.push(problem(
            loc,
            ProblemKind::Structure,
            "the request record holds no request",
        ));
        return;
    };
    let method = request.get("method").and_then(Value::as_str).unwrap_or("");
    let probe = r
        .data
        .get("probe")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if probe || method.eq_ignore_ascii_case("GET") || method.eq_ignore_ascii_case("HEAD") {
        return;
    }
    let digest = sha256_hex(&canonical_json(request));
    let item = r.data.get("item").and_then(Value::as_u64);
    let ids: Vec<Option<u64>> = r
        .data
        .get("approvals")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(Value::as_u64).collect())
        .unwrap_or_default();
    let step = r.step();
    let mut why: Vec<(ProblemKind, String)> = Vec::new();
    for id in &ids {
        let Some(id) = *id else {
            why.push((
                ProblemKind::Unapproved,
                "an approval number that is not a number".into(),
            ));
            continue;
        };
        let Some(g) = granted.get(&id) else {
            why.push((
                ProblemKind::Unapproved,
                format!("approval {id}, which no earlier confirmation records"),
            ));
            continue;
        };
        let at = g.loc.record.seq;
        if g.step != step {
            why.push((
                ProblemKind::Unapproved,
                format!(
                    "approval {id} (seq {at}), which is for step {}",
                    g.step.unwrap_or("?")
                ),
            ));
        } else if !g.approved {
            why.push((
                ProblemKind::Unapproved,
                format!("approval {id} (seq {at}), which was declined"),
            ));
        } else if !g.covers.contains(&(item, digest.clone())) {
            why.push((
                ProblemKind::ConfirmationMismatch,
                format!(
                    "approval {id} (seq {at}), which does not cover it: the request sent differs from the one approved (request_sha256 mismatch)"
                ),
            ));
        } else {
            return;
        }
    }
    let what = format!(
        "{method} {} of step {}{} ",
        request.get("url").and_then(Value::as_str).unwrap_or("?"),
        step.unwrap_or("?"),
        item.map(|k| format!(" item {k}")).unwrap_or_default()
    );
    if why.is_empty() {
        out.problems.push(problem(
            loc,
            ProblemKind::Unapproved,
            format!("{what}was sent under no approval"),
        ));
        return;
    }
    // A digest mismatch says most: the request was approved, then changed.
    let kind = if why
        .iter()
        .any(|(k, _)| *k == ProblemKind::ConfirmationMismatch)
    {
        ProblemKind::ConfirmationMismatch
    } else {
        ProblemKind::Unapproved
    };
    let reasons: Vec<String> = why.into_iter().map(|(_, w)| w).collect();
    out.problems.push(problem(
        loc,
        kind,
        format!("{what}is not covered: it names {}", reasons.join("; ")),
    ));
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
                // Encrypted evidence is checked by its digest alone: its rows are for the
                // holders of the key (`scope --identity`), not for the verifier.
                let sealed = path
                    .to_string_lossy()
                    .ends_with(crate::exec::sealed::SUFFIX);
                if loc.record.kind == "audit-evidence" && !sealed {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::transcript::record::{GENESIS_PREV, Record};
    use serde_json::{Map, json};

    fn delete(url: &str) -> Value {
        json!({"method": "DELETE", "url": url, "headers": [["Authorization", "[secret]"]], "body": null})
    }

    fn digest(request: &Value) -> String {
        sha256_hex(&canonical_json(request))
    }

    fn at(records: Vec<(&str, Value)>) -> Vec<Located> {
        records
            .into_iter()
            .enumerate()
            .map(|(i, (kind, data))| {
                let Value::Object(data) = data else {
                    panic!("data must be an object")
                };
                Located {
                    line: i + 1,
                    record: Record::new(
                        i as u64,
                        "2026-01-02T03:04:05.000Z".into(),
                        kind.into(),
                        data,
                        GENESIS_PREV.into(),
                    ),
                }
            })
            .collect()
    }

    fn confirm(
        step: &str,
        id: u64,
        approved: bool,
        how: &str,
        covers: &[(Option<u64>, &Value)],
    ) -> Value {
        let list: Vec<Value> = covers
            .iter()
            .map(|(item, r)| match item {
                Some(k) => json!({"item": k, "request_sha256": digest(r)}),
                None => json!({"request_sha256": digest(r)}),
            })
            .collect();
        let sha = match covers {
            [(None, r)] => digest(r),
            _ => sha256_hex(
                covers
                    .iter()
                    .map(|(_, r)| digest(r))
                    .collect::<String>()
                    .as_bytes(),
            ),
        };
        json!({"step": step, "approval": id, "prompt": "?", "request_sha256": sha,
               "approved": approved, "how": how, "covers": list})
    }

    fn request(step: &str, item: Option<u64>, approvals: &[u64], r: &Value) -> Value {
        let mut v =
            json!({"step": step, "item": item, "attempt": 1, "request_id": "x", "request": r});
        if !approvals.is_empty() {
            v["approvals"] = json!(approvals);
        }
        v
    }

    fn problems(records: Vec<(&str, Value)>) -> Vec<(u64, ProblemKind, String)> {
        let located = at(records);
        let mut out = Structure::default();
        check_confirmations(&located, &mut out);
        out.problems
            .into_iter()
            .map(|p| (p.seq.unwrap(), p.kind, p.what))
            .collect()
    }

    #[test]
    fn covered_requests_pass_whatever_comes_between() {
        let a = delete("https://e/api-keys/k-1");
        let get =
            json!({"method": "GET", "url": "https://e/api-keys/k-1", "headers": [], "body": null});
        let found = problems(vec![
            (
                "confirmation",
                confirm("del", 1, true, "interactive", &[(None, &a)]),
            ),
            ("request", request("del", None, &[], &get)),
            ("request", request("other", None, &[], &get)),
            ("request", request("del", None, &[1], &a)),
            // A retry of the same request is covered too.
            ("request", request("del", None, &[1], &a)),
        ]);
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn batches_and_not_required_and_probes_pass() {
        let (a, b) = (delete("https://e/k/1"), delete("https://e/k/2"));
        let found = problems(vec![
            (
                "confirmation",
                confirm(
                    "many",
                    1,
                    true,
                    "assume-yes",
                    &[(Some(0), &a), (Some(1), &b)],
                ),
            ),
            ("request", request("many", Some(1), &[1], &b)),
            ("request", request("many", Some(0), &[1], &a)),
            (
                "confirmation",
                confirm("quiet", 2, true, "not-required", &[(None, &a)]),
            ),
            ("request", request("quiet", None, &[2], &a)),
            ("request", {
                let mut p = request("check", None, &[], &a);
                p["probe"] = json!(true);
                p
            }),
        ]);
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn a_write_with_no_approval_is_rejected() {
        let a = delete("https://e/k/1");
        let found = problems(vec![("request", request("del", None, &[], &a))]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, 0);
        assert_eq!(found[0].1, ProblemKind::Unapproved);
        assert!(found[0].2.contains("under no approval"), "{}", found[0].2);
    }

    #[test]
    fn an_edited_body_is_a_digest_mismatch() {
        let a = delete("https://e/k/1");
        let edited = delete("https://e/k/2");
        let found = problems(vec![
            (
                "confirmation",
                confirm("del", 1, true, "interactive", &[(None, &a)]),
            ),
            ("request", request("del", None, &[1], &edited)),
        ]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (found[0].0, found[0].1),
            (1, ProblemKind::ConfirmationMismatch)
        );
    }

    #[test]
    fn the_wrong_item_is_not_covered() {
        let a = delete("https://e/k/1");
        let found = problems(vec![
            (
                "confirmation",
                confirm("m", 1, true, "approve", &[(Some(0), &a)]),
            ),
            ("request", request("m", Some(1), &[1], &a)),
        ]);
        assert_eq!(found.len(), 1, "{found:?}");
    }

    #[test]
    fn unknown_foreign_and_declined_approvals_are_rejected() {
        let a = delete("https://e/k/1");
        let found = problems(vec![
            ("request", request("del", None, &[7], &a)),
            (
                "confirmation",
                confirm("other", 1, true, "interactive", &[(None, &a)]),
            ),
            ("request", request("del", None, &[1], &a)),
            (
                "confirmation",
                confirm("del", 2, false, "interactive", &[(None, &a)]),
            ),
            ("request", request("del", None, &[2], &a)),
            // An approval recorded only after the request does not cover it.
            ("request", request("del", None, &[3], &a)),
            (
                "confirmation",
                confirm("del", 3, true, "interactive", &[(None, &a)]),
            ),
        ]);
        let seqs: Vec<(u64, ProblemKind)> = found.iter().map(|p| (p.0, p.1)).collect();
        assert_eq!(
            seqs,
            vec![
                (0, ProblemKind::Unapproved),
                (2, ProblemKind::Unapproved),
                (4, ProblemKind::Unapproved),
                (5, ProblemKind::Unapproved),
            ]
        );
        assert!(found[0].2.contains("no earlier confirmation"));
        assert!(found[1].2.contains("for step other"));
        assert!(found[2].2.contains("declined"));
    }

    #[test]
    fn a_confirmation_must_match_what_it_covers() {
        let (a, b) = (delete("https://e/k/1"), delete("https://e/k/2"));
        let mut wrong = confirm("m", 1, true, "interactive", &[(Some(0), &a), (Some(1), &b)]);
        wrong["request_sha256"] = json!(digest(&a));
        let mut missing_how = confirm("m", 2, true, "interactive", &[(None, &a)]);
        missing_how["how"] = json!("missing");
        let mut unnumbered = confirm("m", 3, true, "interactive", &[(None, &a)]);
        unnumbered
            .as_object_mut()
            .map(|m: &mut Map<String, Value>| m.remove("approval"));
        let found = problems(vec![
            ("confirmation", wrong),
            ("confirmation", missing_how),
            ("confirmation", unnumbered),
            (
                "confirmation",
                confirm("m", 4, true, "interactive", &[(None, &a)]),
            ),
            (
                "confirmation",
                confirm("m", 4, true, "interactive", &[(None, &a)]),
            ),
        ]);
        let seqs: Vec<u64> = found.iter().map(|p| p.0).collect();
        assert_eq!(seqs, vec![0, 1, 2, 4], "{found:?}");
        assert!(
            found
                .iter()
                .all(|p| p.1 == ProblemKind::ConfirmationMismatch)
        );
    }

    fn started(text: &str) -> Value {
        json!({"runbook_text": text, "runbook_sha256": sha256_hex(text.as_bytes())})
    }

    fn kinds(out: &Structure) -> Vec<(ProblemKind, Option<usize>)> {
        out.problems.iter().map(|p| (p.kind, p.line)).collect()
    }

    fn structure(records: &[Located]) -> Structure {
        let dir = tempfile::tempdir().expect("tempdir");
        check_structure(records, dir.path(), false)
    }

    #[test]
    fn a_run_opens_with_its_runbook_and_closes_with_its_count_and_head() {
        let mut records = at(vec![
            ("run-started", started("version: 1")),
            ("step-finished", json!({"step": "a", "status": "ok"})),
        ]);
        let head = records[1].record.hash.clone();
        let finished = Record::new(
            2,
            "2026-01-02T03:04:06.000Z".into(),
            "run-finished".into(),
            match json!({"events": 3, "head": head.clone(), "outcome": "success"}) {
                Value::Object(m) => m,
                _ => Map::new(),
            },
            head,
        );
        records.push(Located {
            line: 3,
            record: finished,
        });
        let out = structure(&records);
        assert!(out.problems.is_empty(), "{:?}", out.problems);
        assert!(out.complete);
        assert_eq!(out.outcome.as_deref(), Some("success"));
    }

    #[test]
    fn the_first_record_must_open_the_run_with_a_matching_runbook() {
        let wrong_kind = at(vec![("step-finished", json!({"step": "a"}))]);
        assert!(kinds(&structure(&wrong_kind)).contains(&(ProblemKind::Structure, Some(1))));
        let mut swapped = started("version: 1");
        swapped["runbook_text"] = json!("version: 1\nsteps: []");
        let swapped = at(vec![("run-started", swapped)]);
        assert!(kinds(&structure(&swapped)).contains(&(ProblemKind::RunbookDigest, Some(1))));
        let bare = at(vec![("run-started", json!({}))]);
        assert!(kinds(&structure(&bare)).contains(&(ProblemKind::Structure, Some(1))));
        let twice = at(vec![
            ("run-started", started("version: 1")),
            ("run-started", started("version: 1")),
        ]);
        assert!(kinds(&structure(&twice)).contains(&(ProblemKind::Structure, Some(2))));
    }

    #[test]
    fn a_run_without_its_closing_record_is_incomplete() {
        let cut = at(vec![
            ("run-started", started("version: 1")),
            ("step-finished", json!({"step": "a", "status": "ok"})),
        ]);
        let out = structure(&cut);
        assert!(!out.complete);
        assert_eq!(kinds(&out), [(ProblemKind::Incomplete, Some(2))]);
        let miscounted = at(vec![
            ("run-started", started("version: 1")),
            (
                "run-finished",
                json!({"events": 5, "head": "x", "outcome": "success"}),
            ),
        ]);
        let out = structure(&miscounted);
        assert!(!out.complete);
        assert_eq!(kinds(&out), [(ProblemKind::Incomplete, Some(2))]);
    }
}
