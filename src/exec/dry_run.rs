//! `--dry-run`: every request a live run would send, in order, with values not yet known shown
//! as named placeholders (`<rotate.new_key_id>`). Nothing is sent — except, with
//! `--dry-run=reads`, safe GETs whose requests are fully known, so later steps show real data.

use std::collections::HashSet;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use super::context::Context;
use super::executor::RunMeta;
use super::inputs::Inputs;
use super::plan::display_name;
use super::render;
use super::shared::Shared;
use super::step::{self, Prepared};
use crate::esus::actions::{Effect, Special};
use crate::event::{Event, RequestView, RunOutcome, StepStatus};

/// One step of a dry-run.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DryStep {
    /// Step id.
    pub id: String,
    /// Step name.
    pub name: String,
    /// Whether the action changes ESUS's state.
    pub effect: &'static str,
    /// Whether a live run would ask first.
    pub confirm: bool,
    /// Conditions and fan-out notes.
    pub notes: Vec<String>,
    /// The requests a live run would send (for a fan-out, the first ones).
    pub requests: Vec<RequestView>,
    /// Fan-out size when known.
    pub items: Option<usize>,
    /// `--dry-run=reads` sent this GET for real.
    pub sent: bool,
}

/// Runs a dry-run. `reads` allows the safe GETs (after the preflight, which is a read too).
pub async fn run(shared: Arc<Shared>, inputs: &Inputs, meta: RunMeta, reads: bool) -> PlanDocument {
    let started_at = jiff::Timestamp::now().to_string();
    let steps = plan_steps(&shared, inputs, &meta, reads).await;
    PlanDocument {
        schema_version: super::report::SCHEMA_VERSION,
        kind: "plan".into(),
        dry_run: if reads { "reads" } else { "all" }.into(),
        runbook: shared.valid.runbook.name.clone(),
        incident_id: meta.incident_id.clone(),
        operator: meta.operator.clone(),
        started_at,
        steps,
        transcript: None,
        apply_command: None,
    }
}

async fn plan_steps(
    shared: &Arc<Shared>,
    inputs: &Inputs,
    meta: &RunMeta,
    reads: bool,
) -> Vec<DryStep> {
    let valid = shared.valid.clone();
    let mut ctx = Context::new(inputs);
    let mut real: HashSet<String> = HashSet::new();
    let mut out = Vec::new();
    let _ = shared.emit(&super::plan::run_started(shared, inputs, meta));
    if reads && let Err(refusal) = super::preflight::check(shared).await {
        let _ = shared.emit(&Event::RunFinished {
            outcome: refusal.outcome,
            exit_code: refusal.outcome.exit_code() as u8,
        });
        return vec![DryStep {
            id: "preflight".into(),
            name: "Check the operator's token against ESUS".into(),
            effect: "read",
            confirm: false,
            notes: vec![refusal.message],
            requests: Vec::new(),
            items: None,
            sent: true,
        }];
    }
    let _ = shared.emit(&super::plan::plan_event(shared, &ctx));
    for &i in valid.graph.order() {
        let step = &valid.runbook.steps[i];
        let info = &valid.steps[i];
        let unknown = |expr: &str| {
            shared
                .engine
                .expr_refs(expr)
                .map(|refs| {
                    refs.iter().any(|r| {
                        r.strip_prefix("steps.")
                            .and_then(|s| s.split('.').next())
                            .is_some_and(|id| !real.contains(id))
                    })
                })
                .unwrap_or(true)
        };
        let mut d = DryStep {
            id: step.id.clone(),
            name: display_name(shared, &ctx, i),
            effect: match info.effect {
                Effect::Read => "read",
                Effect::Write => "write",
                Effect::Destructive => "destructive",
            },
            confirm: info.confirm != crate::runbook::validate::ConfirmMode::No,
            notes: Vec::new(),
            requests: Vec::new(),
            items: None,
            sent: false,
        };
        let mut skip = false;
        if let Some(when) = &step.when {
            if unknown(when) {
                d.notes
                    .push(format!("runs only if `{when}` (decided at run time)"));
            } else {
                match shared.engine.eval_bool(when, ctx.display()) {
                    Ok(true) => d.notes.push(format!("condition `{when}` is true")),
                    Ok(false) => {
                        d.notes
                            .push(format!("skipped: condition `{when}` is false"));
                        skip = true;
                    }
                    Err(e) => d
                        .notes
                        .push(format!("condition `{when}` cannot be evaluated: {e}")),
                }
            }
        }
        // Placeholders such as `<item>` are shown as written, not percent-encoded.
        let view = |r: &crate::esus::request::ApiRequest| {
            r.view(
                &shared
                    .client
                    .url(r)
                    .as_str()
                    .replace("%3C", "<")
                    .replace("%3E", ">"),
            )
        };
        if !skip {
            if let Some(expr) = &step.foreach {
                let items = if unknown(expr) {
                    None
                } else {
                    shared.engine.eval(expr, ctx.display()).ok().and_then(|v| {
                        if let Value::Array(a) = v {
                            Some(a)
                        } else {
                            None
                        }
                    })
                };
                match items {
                    Some(items) => {
                        d.items = Some(items.len());
                        d.notes.push(format!(
                            "for each of {} items of `{expr}`, {} at a time",
                            items.len(),
                            step.concurrency.unwrap_or(1)
                        ));
                        for item in items.iter().take(50) {
                            match render::request(&shared.engine, &ctx, step, info, Some(item)) {
                                Ok(r) => d.requests.push(view(&r)),
                                Err(e) => d.notes.push(format!("cannot render: {e}")),
                            }
                        }
                    }
                    None => {
                        d.notes.push(format!(
                            "for each item of `{expr}` (known at run time), {} at a time",
                            step.concurrency.unwrap_or(1)
                        ));
                        match render::request(
                            &shared.engine,
                            &ctx,
                            step,
                            info,
                            Some(&Value::from("<item>")),
                        ) {
                            Ok(r) => d.requests.push(view(&r)),
                            Err(e) => d.notes.push(format!("cannot render: {e}")),
                        }
                    }
                }
            } else {
                match render::request(&shared.engine, &ctx, step, info, None) {
                    Ok(r) => {
                        let v = view(&r);
                        let known = !serde_json::to_string(&v).unwrap_or_default().contains("<");
                        if info.action.special == Special::CheckRevoked {
                            d.notes.push(
                                "with a leaked secret, also tries the key itself and expects 401"
                                    .into(),
                            );
                        }
                        if info.action.paged {
                            d.notes.push(
                                "reads every page (_count=100, _offset=0, 100, …) into the evidence folder"
                                    .into(),
                            );
                        }
                        if reads && info.effect == Effect::Read && known {
                            let result = step::execute_with(
                                shared.clone(),
                                Arc::new(ctx.clone()),
                                i,
                                if info.action.special == Special::CheckRevoked {
                                    Prepared::Revoked {
                                        get: r.clone(),
                                        probe: None,
                                    }
                                } else {
                                    Prepared::One(r.clone())
                                },
                                None,
                            )
                            .await;
                            d.sent = true;
                            let status = result.status.unwrap_or(StepStatus::Ok);
                            if status == StepStatus::Ok {
                                real.insert(step.id.clone());
                            }
                            d.notes.push(format!(
                                "sent (read-only): {}",
                                super::report::status_words(status)
                            ));
                            d.requests.push(v);
                            let _ = shared.emit(&Event::StepFinished {
                                step: step.id.clone(),
                                status,
                                reason: result.reason.clone(),
                                outputs: result.outputs.clone(),
                                duration_ms: result.duration.as_millis() as u64,
                                finding: result.finding.clone(),
                                expected: result.expected,
                                secret_files: Vec::new(),
                                evidence: result.evidence.clone(),
                            });
                            ctx.set_step(&step.id, status, result.outputs, result.secret_outputs);
                            out.push(d);
                            continue;
                        }
                        d.requests.push(v);
                    }
                    Err(e) => d.notes.push(format!("cannot render yet: {e}")),
                }
            }
        }
        let _ = shared.emit(&Event::StepFinished {
            step: step.id.clone(),
            status: StepStatus::Skipped,
            reason: Some("dry-run: not sent".into()),
            outputs: Default::default(),
            duration_ms: 0,
            finding: None,
            expected: None,
            secret_files: Vec::new(),
            evidence: Vec::new(),
        });
        ctx.set_placeholder(&step.id, step.outputs.keys().cloned());
        out.push(d);
    }
    let _ = shared.emit(&Event::RunFinished {
        outcome: RunOutcome::Success,
        exit_code: 0,
    });
    out
}

/// The `--output json` document of a dry-run: the plan, versioned like the result
/// (`esus-ir schema --plan`, docs/plan.schema.json).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PlanDocument {
    /// Version of this document format (1); it changes only when a field changes meaning or goes away.
    pub schema_version: u32,
    /// Always `plan`.
    #[schemars(extend("const" = "plan"))]
    pub kind: String,
    /// `all` (nothing is sent) or `reads` (the safe GETs are sent).
    pub dry_run: String,
    /// The runbook's name.
    pub runbook: String,
    /// `--incident-id`, when given.
    pub incident_id: Option<String>,
    /// Who asked for the plan.
    pub operator: String,
    /// When (RFC 3339).
    pub started_at: String,
    /// Every step, in the order a live run takes them.
    pub steps: Vec<DryStep>,
    /// The dry-run's transcript.
    pub transcript: Option<std::path::PathBuf>,
    /// The command that runs this plan for real.
    pub apply_command: Option<String>,
}

/// The dry-run as text for stdout.
pub fn render_text(steps: &[DryStep]) -> String {
    use std::fmt::Write as _;
    let mut out = String::from("DRY RUN — nothing below was sent");
    if steps.iter().any(|s| s.sent) {
        out.push_str(" (except the read-only GETs marked \"sent\")");
    }
    out.push('\n');
    for (n, s) in steps.iter().enumerate() {
        let mark = if s.effect == "destructive" {
            " [destructive]"
        } else {
            ""
        };
        let confirm = if s.confirm { " [asks first]" } else { "" };
        let _ = writeln!(out, "\n{}. {} — {}{mark}{confirm}", n + 1, s.id, s.name);
        for note in &s.notes {
            let _ = writeln!(out, "   # {note}");
        }
        for r in &s.requests {
            let _ = writeln!(out, "   {} {}", r.method, r.url);
            for (k, v) in &r.headers {
                let _ = writeln!(out, "     {k}: {v}");
            }
            if let Some(b) = &r.body {
                let _ = writeln!(out, "     {}", b);
            }
        }
        if let Some(n) = s.items.filter(|&n| n > s.requests.len()) {
            let _ = writeln!(out, "   … and {} more", n - s.requests.len());
        }
    }
    out
}
