//! Paged audit pulls that prove their evidence complete.
//!
//! ESUS documents offset paging (`_count`, `_offset`, `{rows, total}`) but neither the order of
//! rows nor the largest page, and rows keep arriving while an incident is handled (the audit
//! reads are audited themselves). So nothing about a page is trusted: rows are kept once by `id`
//! (a page that shifted under new rows repeats some), the offset moves by the rows actually
//! received, new rows are caught up in the direction the order runs, and the pull ends only when
//! ESUS's own count proves it: the `total` of a fresh read equals the distinct rows saved — or,
//! while rows keep arriving, ESUS's count of the rows up to the newest one saved does.

// A step that cannot go on ends with its `StepResult`: it is the error, built once per step.
#![allow(clippy::result_large_err)]

use std::collections::HashSet;
use std::sync::Arc;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::evidence::EvidenceWriter;
use super::outcome::{self, StepResult, body_policy, send_policy};
use super::send::{self, Sent};
use super::shared::Shared;
use crate::esus::request::ApiRequest;
use crate::event::Event;
use crate::plan::context::Context;
use crate::runbook::model::Step;
use crate::runbook::validate::StepInfo;

/// Rows asked for per page when the runbook says nothing (ESUS may answer fewer).
const DEFAULT_PAGE: u64 = 100;
/// Fresh reads after the first pass, catching up rows that arrived meanwhile.
const SETTLE_ROUNDS: usize = 3;
/// Pages at most, across all passes.
const MAX_PAGES: u64 = 100_000;
/// Cursor pages in a row that may bring no new row before the pull stops as not complete.
const STALLED_PAGES: u32 = 3;
/// The longest cursor followed (a cursor is an opaque position, not a payload).
const MAX_CURSOR: usize = 4096;
/// Distinct things the rows name that a pull's outputs list at most (ids and types only).
const MAX_ENTITIES: usize = 10_000;

/// Reads every page of an audit query into the evidence file and proves it complete.
pub(super) async fn pull(
    shared: &Arc<Shared>,
    ctx: &Context,
    i: usize,
    first: ApiRequest,
) -> StepResult {
    let step = &shared.valid.runbook.steps[i];
    let info = &shared.valid.steps[i];
    let name = match shared.planner.save_name(ctx, i, None) {
        Ok(n) => n,
        Err(e) => return StepResult::failed(e),
    };
    let writer = match EvidenceWriter::create(&shared.folders, &name) {
        Ok(w) => w,
        Err(e) => return StepResult::failed(e),
    };
    let mut pull = Pull::new(shared, step, info, first, writer);
    let proof = match pull.run().await {
        Ok(proof) => proof,
        Err(mut r) => {
            // What was read is still evidence: the file is closed as a whole document that says
            // it is incomplete, and its digest is recorded, instead of a cut-off JSON text.
            let why = r.reason.clone().unwrap_or_else(|| "it failed".into());
            let closed = pull.finish(
                ctx,
                Proof {
                    complete: false,
                    window_to: None,
                    text: format!("the pull stopped before the end: {why}"),
                },
            );
            r.evidence = closed.evidence;
            return r;
        }
    };
    pull.finish(ctx, proof)
}

/// How completeness was established.
struct Proof {
    complete: bool,
    window_to: Option<Timestamp>,
    text: String,
}

/// One page's answer.
struct Page {
    rows: Vec<Value>,
    total: u64,
    new: u64,
    /// The cursor of the next page (cursor paging), none at the end.
    next: Option<String>,
}

/// The state of one pull.
struct Pull<'a> {
    shared: &'a Arc<Shared>,
    step: &'a Step,
    info: &'a StepInfo,
    base: ApiRequest,
    page_size: u64,
    writer: Option<EvidenceWriter>,
    seen: HashSet<String>,
    duplicates: u64,
    pages: u64,
    last_total: u64,
    offset: u64,
    oldest: Option<Timestamp>,
    newest: Option<Timestamp>,
    newest_first: Option<bool>,
    /// What the rows name — `(type, resourceType, resourceId)` — for the step's outputs: what
    /// the user created or changed, found by id (`entities`).
    entities: std::collections::BTreeSet<(String, String, String)>,
    entities_truncated: bool,
}

impl<'a> Pull<'a> {
    fn new(
        shared: &'a Arc<Shared>,
        step: &'a Step,
        info: &'a StepInfo,
        first: ApiRequest,
        writer: EvidenceWriter,
    ) -> Self {
        let page_size = first
            .query
            .iter()
            .find(|(k, _)| k == "_count" || k == "limit")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(DEFAULT_PAGE);
        let mut base = first;
        base.query.retain(|(k, _)| k != "_count" && k != "_offset");
        Pull {
            shared,
            step,
            info,
            base,
            page_size,
            writer: Some(writer),
            seen: HashSet::new(),
            duplicates: 0,
            pages: 0,
            last_total: 0,
            offset: 0,
            oldest: None,
            newest: None,
            newest_first: None,
            entities: std::collections::BTreeSet::new(),
            entities_truncated: false,
        }
    }

    async fn run(&mut self) -> Result<Proof, StepResult> {
        self.begin()?;
        if self.info.action.cursor_paged {
            return self.cursor_pass().await;
        }
        self.pass(0, false).await?;
        for _ in 0..SETTLE_ROUNDS {
            // A fresh read of the first page: its `total` is ESUS's count now.
            let probe = self.page(0).await?;
            if probe.total == self.distinct() {
                return Ok(Proof {
                    complete: true,
                    window_to: self.newest,
                    text: format!(
                        "ESUS counted {} rows at the last read and {} distinct rows were saved",
                        probe.total,
                        self.distinct()
                    ),
                });
            }
            if probe.total < self.distinct() {
                break;
            }
            match self.newest_first {
                // New rows are in front: read on from the top until a page brings nothing new.
                Some(true) => {
                    if probe.new > 0 && probe.new == probe.rows.len() as u64 {
                        self.pass(probe.rows.len() as u64, true).await?;
                    }
                }
                // New rows are appended: read on from where the first pass ended.
                _ => {
                    let from = self.offset;
                    self.pass(from, false).await?;
                }
            }
        }
        self.window_proof().await
    }

    /// Cursor paging (`GET /v1/admin/audit/`): the window's end is fixed before the first page
    /// (`before`: now, unless the runbook gave one), so rows recorded during the pull are outside
    /// it and cannot shift a page; the pull is complete when ESUS gives no next cursor. A cursor
    /// given twice is a loop, not an end: the evidence is then not complete.
    async fn cursor_pass(&mut self) -> Result<Proof, StepResult> {
        let before = self.fix_window_end();
        let limit = self.page_size.to_string();
        self.base
            .query
            .retain(|(k, _)| k != "limit" && k != "cursor");
        let mut followed = HashSet::new();
        let mut cursor: Option<String> = None;
        let mut empty_pages = 0;
        loop {
            if self.pages >= MAX_PAGES {
                return Err(StepResult::failed(format!(
                    "gave up after {MAX_PAGES} pages ({} distinct rows)",
                    self.distinct()
                )));
            }
            let mut req = self.base.clone();
            req.query.push(("limit".into(), limit.clone()));
            if let Some(c) = &cursor {
                req.query.push(("cursor".into(), c.clone()));
            }
            let page = self.fetch(&req).await?;
            self.pages += 1;
            // ESUS gives no count on this route: the summary's total is what was read.
            self.last_total = self.distinct();
            empty_pages = if page.new == 0 { empty_pages + 1 } else { 0 };
            match page.next {
                None => {
                    return Ok(Proof {
                        complete: true,
                        window_to: before.or(self.newest),
                        text: format!(
                            "ESUS gave no further cursor after {} pages: every row recorded before {} was read ({} distinct)",
                            self.pages,
                            before.map_or_else(|| "the end".to_string(), |t| t.to_string()),
                            self.distinct()
                        ),
                    });
                }
                // A full last page is followed by one empty page (docs/esus-api.md); more than a
                // few pages that bring nothing new is a server going round, not an end.
                Some(_) if empty_pages > STALLED_PAGES => {
                    return Ok(Proof {
                        complete: false,
                        window_to: None,
                        text: format!(
                            "ESUS kept giving cursors for {empty_pages} pages without a new row: completeness cannot be proven"
                        ),
                    });
                }
                Some(next) if next.len() > MAX_CURSOR => {
                    return Ok(Proof {
                        complete: false,
                        window_to: None,
                        text: format!(
                            "ESUS gave a cursor of {} characters, not a position: it is not sent back, so completeness cannot be proven",
                            next.len()
                        ),
                    });
                }
                Some(next) if !followed.insert(next.clone()) => {
                    return Ok(Proof {
                        complete: false,
                        window_to: None,
                        text: "ESUS gave a cursor already followed: the pages loop, so completeness cannot be proven".into(),
                    });
                }
                Some(next) => cursor = Some(next),
            }
        }
    }

    /// Notes what `row` names, up to [`MAX_ENTITIES`] distinct ones.
    fn note_entity(&mut self, row: &Value) {
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
        let entity = row.get("entity");
        let (Some(kind), Some(rt), Some(id)) = (
            text(row.get("type")),
            text(entity.and_then(|e| e.get("resourceType"))),
            text(entity.and_then(|e| e.get("resourceId"))),
        ) else {
            return;
        };
        if self.entities.len() >= MAX_ENTITIES {
            self.entities_truncated |=
                !self
                    .entities
                    .contains(&(kind.clone(), rt.clone(), id.clone()));
            return;
        }
        self.entities.insert((kind, rt, id));
    }

    /// Fixes the cursor pull's window end: the runbook's `before` when it is not in the future,
    /// else now (sent as `before`); none when the runbook's `before` is not a time.
    fn fix_window_end(&mut self) -> Option<Timestamp> {
        // The window ends now at the latest: a `before` in the future would claim rows not
        // recorded yet.
        let now = Timestamp::now();
        let given = self
            .base
            .query
            .iter()
            .find(|(k, _)| k == "before")
            .map(|(_, v)| v.parse::<Timestamp>());
        match given {
            Some(Ok(t)) if t <= now => Some(t),
            Some(Err(_)) => None,
            _ => {
                self.base.query.retain(|(k, _)| k != "before");
                self.base.query.push(("before".into(), now.to_string()));
                Some(now)
            }
        }
    }

    fn distinct(&self) -> u64 {
        self.seen.len() as u64
    }

    fn begin(&mut self) -> Result<(), StepResult> {
        let name = self.evidence_name();
        self.writer_mut()?
            .begin_rows()
            .map_err(|e| StepResult::failed(format!("evidence {name}: {e}")))
    }

    fn writer_mut(&mut self) -> Result<&mut EvidenceWriter, StepResult> {
        self.writer
            .as_mut()
            .ok_or_else(|| StepResult::failed("the evidence file is already closed"))
    }

    fn evidence_name(&self) -> String {
        self.step
            .save
            .clone()
            .unwrap_or_else(|| format!("{}.json", self.step.id))
    }

    /// Reads pages from `from` on; stops at ESUS's `total`, on an empty page, or (with
    /// `until_known`) at the first page that brings no new row.
    async fn pass(&mut self, from: u64, until_known: bool) -> Result<(), StepResult> {
        let mut offset = from;
        loop {
            let page = self.page(offset).await?;
            offset += page.rows.len() as u64;
            self.offset = self.offset.max(offset);
            let end = page.rows.is_empty() || offset >= page.total;
            if end || (until_known && page.new == 0) {
                return Ok(());
            }
        }
    }

    /// Reads one page at `offset`, keeps its new rows, and records the answer.
    async fn page(&mut self, offset: u64) -> Result<Page, StepResult> {
        if self.pages >= MAX_PAGES {
            return Err(StepResult::failed(format!(
                "gave up after {MAX_PAGES} pages ({} distinct rows)",
                self.distinct()
            )));
        }
        let mut req = self.base.clone();
        req.query
            .push(("_count".into(), self.page_size.to_string()));
        req.query.push(("_offset".into(), offset.to_string()));
        let page = self.fetch(&req).await?;
        self.pages += 1;
        self.last_total = page.total;
        Ok(page)
    }

    async fn fetch(&mut self, req: &ApiRequest) -> Result<Page, StepResult> {
        let (shared, step, info) = (self.shared, self.step, self.info);
        let policy = send_policy(step, true);
        let sent = send::send(shared, &step.id, None, req, policy, body_policy(info)).await;
        let (resp, request_id) = match sent {
            Ok(Sent::Answer(r, id)) => (r, id),
            Ok(other) => return Err(outcome::terminal(other)),
            Err(e) => {
                return Err(StepResult::failed(format!(
                    "could not record the request: {e}"
                )));
            }
        };
        self.record(&resp, &request_id)?;
        if !resp.is_success(&step.expect) {
            return Err(StepResult {
                auth_failed: matches!(resp.status, 401 | 403),
                ..StepResult::failed(format!(
                    "ESUS answered {} after {} distinct rows{}",
                    resp.status,
                    self.distinct(),
                    outcome::diagnostics(&resp, info)
                ))
            });
        }
        let body = resp.json();
        let rows = body
            .get("rows")
            .or_else(|| body.get("events"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let total = body.get("total").and_then(Value::as_u64).unwrap_or(0);
        let next = body
            .get("nextCursor")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .map(str::to_string);
        let new = self.keep(&rows)?;
        Ok(Page {
            rows,
            total,
            new,
            next,
        })
    }

    /// Writes the rows not seen before; returns how many were new.
    fn keep(&mut self, rows: &[Value]) -> Result<u64, StepResult> {
        if self.newest_first.is_none() {
            let times: Vec<Timestamp> = rows.iter().filter_map(recorded_of).collect();
            if let (Some(a), Some(b)) = (times.first(), times.last())
                && a != b
            {
                self.newest_first = Some(a > b);
            }
        }
        let mut new = 0;
        for row in rows {
            let Some(id) = row_id(row) else {
                return Err(StepResult::failed(
                    "an audit row has no `id`: rows cannot be told apart, so completeness cannot be proven",
                ));
            };
            if !self.seen.insert(id) {
                self.duplicates += 1;
                continue;
            }
            self.note_entity(row);
            if let Some(t) = recorded_of(row) {
                self.oldest = Some(self.oldest.map_or(t, |o| o.min(t)));
                self.newest = Some(self.newest.map_or(t, |n| n.max(t)));
            }
            let name = self.evidence_name();
            self.writer_mut()?
                .row(row)
                .map_err(|e| StepResult::failed(format!("evidence {name}: {e}")))?;
            new += 1;
        }
        self.shared
            .progress
            .rows_read(&self.step.id, self.distinct(), self.last_total);
        Ok(new)
    }

    fn record(
        &self,
        resp: &crate::esus::client::ApiResponse,
        request_id: &str,
    ) -> Result<(), StepResult> {
        send::record_response(
            self.shared,
            &self.step.id,
            request_id,
            resp,
            body_policy(self.info),
            None,
        )
        .map_err(|e| StepResult::failed(format!("could not record the response: {e}")))
    }

    /// Rows kept arriving: ESUS's count of the rows recorded up to the newest one saved must
    /// equal the rows saved (audit rows are only ever appended, with `recorded` in order).
    async fn window_proof(&mut self) -> Result<Proof, StepResult> {
        let Some(cut) = self.newest else {
            return Ok(Proof {
                complete: false,
                window_to: None,
                text: format!(
                    "ESUS counted {} rows but {} were saved, and the rows carry no usable `recorded` time to bound a window",
                    self.last_total,
                    self.distinct()
                ),
            });
        };
        let mut req = self.base.clone();
        req.query.push(("date".into(), format!("le{cut}")));
        req.query.push(("_count".into(), "1".into()));
        req.query.push(("_offset".into(), "0".into()));
        let counted = self.fetch(&req).await?.total;
        self.pages += 1;
        let held = self.distinct();
        let complete = counted == held;
        let text = if complete {
            format!(
                "rows kept arriving during the pull ({} counted at the last read); ESUS counts {counted} rows recorded up to {cut}, and all {held} were saved",
                self.last_total
            )
        } else {
            format!(
                "ESUS counts {counted} rows recorded up to {cut} but {held} distinct rows were saved"
            )
        };
        Ok(Proof {
            complete,
            window_to: Some(cut),
            text,
        })
    }

    /// What the pull asked for beyond one user's rows (an action, a type, a start): a filtered
    /// pull holds a complete answer to a narrower question, and `scope` must not take it for
    /// the whole window.
    fn filters(&self) -> Value {
        let paging = ["limit", "cursor", "_count", "_offset", "before", "userId"];
        Value::Object(
            self.base
                .query
                .iter()
                .filter(|(k, _)| !paging.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                .collect(),
        )
    }

    /// Closes the evidence file and records the pull's summary (with the file's digest).
    fn finish(&mut self, ctx: &Context, proof: Proof) -> StepResult {
        let name = self.evidence_name();
        let distinct = self.distinct();
        let window = json!({
            "from": self.oldest.map(|t| t.to_string()),
            "to": proof.window_to.map(|t| t.to_string()),
        });
        let tail = format!(
            "],\"total\":{},\"distinct\":{distinct},\"window\":{window},\"filters\":{},\"complete\":{}}}\n",
            self.last_total,
            self.filters(),
            proof.complete
        );
        let evidence = match self.writer.take() {
            Some(mut w) => w.write(tail.as_bytes()).and_then(|()| w.finish()),
            None => Err(std::io::Error::other("the evidence file is already closed")),
        };
        let evidence = match evidence {
            Ok(e) => e,
            Err(e) => return StepResult::failed(format!("evidence {name}: {e}")),
        };
        let event = Event::AuditEvidence {
            step: self.step.id.clone(),
            file: evidence.file.clone(),
            sha256: evidence.sha256.clone(),
            rows: distinct,
            reported_total: self.last_total,
            duplicates_dropped: self.duplicates,
            pages: self.pages,
            window_from: self.oldest.map(|t| t.to_string()),
            window_to: proof.window_to.map(|t| t.to_string()),
            complete: proof.complete,
            proof: proof.text.clone(),
        };
        if let Err(e) = self.shared.emit(&event) {
            return StepResult::failed(format!("could not record the evidence summary: {e}"));
        }
        let entities: Vec<Value> = self
            .entities
            .iter()
            .map(|(kind, rt, id)| json!({"type": kind, "resourceType": rt, "resourceId": id}))
            .collect();
        let response = json!({
            "total": self.last_total, "read": distinct, "rows": distinct,
            "duplicates": self.duplicates, "pages": self.pages, "complete": proof.complete,
            "window_from": self.oldest.map(|t| t.to_string()),
            "window_to": proof.window_to.map(|t| t.to_string()),
            "entities": entities, "entities_truncated": self.entities_truncated,
        });
        let i = self
            .shared
            .valid
            .index_of(&self.step.id)
            .unwrap_or_default();
        let outputs = outcome::outputs(self.shared, ctx, i, &response, 200, None);
        let mut result = match outputs.error {
            None => StepResult {
                outputs: outputs.shown,
                secret_outputs: outputs.secret,
                ..StepResult::default()
            },
            Some(e) => StepResult::failed(e),
        };
        result.evidence.push(evidence);
        if !proof.complete {
            result.status = Some(crate::event::StepStatus::Failed);
            result.reason = Some(format!(
                "the audit evidence is NOT complete: {}",
                proof.text
            ));
        }
        result.finding = Some(format!("{distinct} distinct rows saved; {}", proof.text));
        result
    }
}

/// A row's `id` as text.
fn row_id(row: &Value) -> Option<String> {
    match row.get("id")? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A row's `recorded` time: RFC 3339 text, or a number of seconds or milliseconds since 1970
/// (the OpenAPI allows both).
fn recorded_of(row: &Value) -> Option<Timestamp> {
    match row.get("recorded").or_else(|| row.get("recordedAt"))? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => {
            let v = n.as_f64()?;
            let millis = if v.abs() >= 1e11 { v } else { v * 1000.0 };
            Timestamp::from_millisecond(millis as i64).ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_times_are_read_in_every_documented_form() {
        let at: Timestamp = "2026-11-28T16:07:05Z".parse().expect("ts");
        assert_eq!(
            recorded_of(&json!({"recorded": "2026-11-28T16:07:05Z"})),
            Some(at)
        );
        assert_eq!(
            recorded_of(&json!({"recorded": at.as_second()})),
            Some(at),
            "seconds"
        );
        assert_eq!(
            recorded_of(&json!({"recorded": at.as_millisecond()})),
            Some(at),
            "milliseconds"
        );
        assert_eq!(recorded_of(&json!({"recorded": {}})), None);
        assert_eq!(row_id(&json!({"id": 7})), Some("7".into()));
        assert_eq!(row_id(&json!({"x": 7})), None);
    }
}
