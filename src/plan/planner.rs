//! The planner: the one function of runbook, inputs and what is known of earlier steps that
//! decides what a step sends. The dry-run renders its answer, the live run executes it, the
//! approval digest is computed over it, and a resume asks it about the steps left to do.

use std::collections::BTreeSet;
use std::sync::Arc;

use secrecy::ExposeSecret;
use serde_json::Value;
use url::Url;

use super::claim;
use super::context::Context;
use super::render;
use super::step_plan::{Approval, Batch, Condition, Items, SessionCheck, StepPlan, Work};
use crate::esus::actions::{Effect, Method, Recovery, Special};
use crate::esus::client::full_url;
use crate::esus::paths;
use crate::esus::permissions::{self, Permission};
use crate::esus::request::{self, ApiRequest, Auth, Params};
use crate::event::{Covered, RequestView};
use crate::runbook::Validated;
use crate::runbook::model::Step;
use crate::runbook::validate::{ConfirmMode, StepInfo};
use crate::template::Engine;

/// How many requests of a fan-out a prompt shows (all of them count in the digest).
const SHOWN_AT_MOST: usize = 10_000;

/// Whether the operator may send an `if_permitted` read.
enum Permitted {
    Yes,
    /// No: why, to record as the skip's reason.
    No(String),
    /// Not known before the preflight reads `GET /auth/me`: what is needed.
    NotRead(String),
}

/// Plans the steps of one runbook.
pub struct Planner {
    /// The runbook.
    pub valid: Arc<Validated>,
    /// The template engine (strict).
    pub engine: Engine,
    base: Url,
    max_items: usize,
    incident: String,
}

/// What an approval shows and covers: the requests (at most [`SHOWN_AT_MOST`] shown), how many
/// there are, the digest of all of them, and each one's digest.
#[derive(Debug, Clone)]
pub struct Shown {
    /// The requests shown.
    pub requests: Vec<RequestView>,
    /// How many requests the approval covers.
    pub total: usize,
    /// The digest recorded with the approval.
    pub digest: String,
    /// Each covered request's digest.
    pub covers: Vec<Covered>,
}

impl Planner {
    /// A planner for `valid` against ESUS at `base`. `incident` names the incident (its first
    /// leg's run id): the claims of its writes derive from it, so they survive resumes.
    pub fn new(valid: Arc<Validated>, base: Url, max_items: usize, incident: &str) -> Planner {
        Planner {
            valid,
            engine: Engine::new(),
            base,
            max_items: if max_items == 0 {
                crate::runbook::validate::MAX_FOREACH_ITEMS
            } else {
                max_items
            },
            incident: incident.to_string(),
        }
    }

    /// The ESUS base URL the plan sends to.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The incident whose claims this planner makes.
    pub fn incident(&self) -> &str {
        &self.incident
    }

    /// The claim tag of step `i`'s write (item `item` of a fan-out).
    pub fn claim_tag(&self, i: usize, item: Option<usize>) -> String {
        claim::tag(&self.incident, &self.valid.runbook.steps[i].id, item)
    }

    /// An exact request as it is shown, approved and recorded.
    pub fn view(&self, req: &ApiRequest) -> RequestView {
        req.view(full_url(&self.base, &req.path, &req.query).as_str())
    }

    /// A request template as it is shown: placeholders such as `<item>` as written.
    fn template_view(&self, req: &ApiRequest) -> RequestView {
        let url = full_url(&self.base, &req.path, &req.query)
            .to_string()
            .replace("%3C", "<")
            .replace("%3E", ">");
        req.view(&url)
    }

    /// The step's name with templates rendered (secrets cannot appear: validation forbids them).
    pub fn display_name(&self, ctx: &Context, i: usize) -> String {
        let step = &self.valid.runbook.steps[i];
        match self.engine.render_str(&step.name, ctx.display()) {
            Ok(Value::String(s)) => s,
            Ok(other) => other.to_string(),
            Err(_) => step.name.clone(),
        }
    }

    /// Plans step `i` from what `ctx` knows; `done` are the items of its fan-out an earlier leg
    /// of the incident finished.
    pub fn step(&self, ctx: &Context, i: usize, done: &BTreeSet<usize>) -> StepPlan {
        let step = &self.valid.runbook.steps[i];
        let info = &self.valid.steps[i];
        let mut plan = StepPlan {
            index: i,
            id: step.id.clone(),
            name: self.display_name(ctx, i),
            effect: info.effect,
            condition: self.condition(ctx, step, info),
            approval: Approval::NotAsked { writes: false },
            work: Work::Nothing,
            follow_ups: Vec::new(),
            problems: Vec::new(),
            notes: Vec::new(),
        };
        if let Condition::Broken(e) = &plan.condition {
            plan.problems.push(format!("`when`: {e}"));
        }
        if !matches!(plan.condition, Condition::Skipped(_) | Condition::Broken(_)) {
            plan.work = match &step.foreach {
                Some(expr) => self.fan_out(ctx, i, expr, done, &mut plan),
                None => self.single(ctx, i, &mut plan),
            };
        }
        plan.approval = self.approval(ctx, i, &plan.work);
        plan.notes = self.notes(step, info, &plan);
        plan
    }

    /// Plans every step ahead of the run, in graph order: steps in `finished` are known from
    /// `ctx`; every other step stands as a placeholder for those after it.
    pub fn ahead(&self, ctx: &Context, finished: &BTreeSet<String>) -> Vec<StepPlan> {
        let mut ctx = ctx.clone();
        let mut out = Vec::new();
        for &i in self.valid.graph.order() {
            let step = &self.valid.runbook.steps[i];
            if finished.contains(&step.id) {
                continue;
            }
            out.push(self.step(&ctx, i, &BTreeSet::new()));
            ctx.set_placeholder(&step.id, step.outputs.keys().cloned());
        }
        out
    }

    fn condition(&self, ctx: &Context, step: &Step, info: &StepInfo) -> Condition {
        if step.if_permitted {
            match self.permitted(ctx, step, info) {
                Permitted::Yes => {}
                Permitted::No(why) => return Condition::Skipped(why),
                Permitted::NotRead(need) => return Condition::Later(need),
            }
        }
        let Some(when) = &step.when else {
            return Condition::Runs;
        };
        if self.expr_pending(ctx, when) {
            return Condition::Later(format!("`{when}`"));
        }
        match self.engine.eval_bool(when, ctx.display()) {
            Ok(true) => Condition::Runs,
            Ok(false) => Condition::Skipped(format!("condition `{when}` is false")),
            Err(e) => Condition::Broken(e.to_string()),
        }
    }

    /// Whether the operator holds what an `if_permitted` read needs, by `GET /auth/me` as the
    /// preflight read it. What `/auth/me` cannot tell counts as held: ESUS then decides, and
    /// its refusal is the step's failure, not a skip.
    fn permitted(&self, ctx: &Context, step: &Step, info: &StepInfo) -> Permitted {
        let needs: Vec<Permission> = permissions::for_step(info.action, &step.with)
            .into_iter()
            .filter(Permission::is_operator_permission)
            .collect();
        if needs.is_empty() {
            return Permitted::Yes;
        }
        let Some(me) = ctx.operator() else {
            let list: Vec<String> = needs.iter().map(ToString::to_string).collect();
            return Permitted::NotRead(format!("the operator has a {}", list.join(" and a ")));
        };
        let lacking: Vec<String> = needs
            .iter()
            .filter(|n| n.satisfied_by(me) == Some(false))
            .map(ToString::to_string)
            .collect();
        if lacking.is_empty() {
            Permitted::Yes
        } else {
            Permitted::No(format!(
                "the operator lacks the {} it needs (`if_permitted`: read only where ESUS allows it)",
                lacking.join(" and the ")
            ))
        }
    }

    /// Whether an expression reads a step that stands as a placeholder.
    fn expr_pending(&self, ctx: &Context, expr: &str) -> bool {
        self.engine
            .expr_refs(expr)
            .map(|refs| refs.iter().any(|r| reads_pending(ctx, r)))
            .unwrap_or(true)
    }

    /// Whether a template value (a `with` value, a `save` name) reads a placeholder step.
    fn value_pending(&self, ctx: &Context, value: &Value) -> bool {
        match value {
            Value::String(s) => self
                .engine
                .template_refs(s)
                .map(|refs| refs.iter().any(|r| reads_pending(ctx, r)))
                .unwrap_or(true),
            Value::Array(items) => items.iter().any(|v| self.value_pending(ctx, v)),
            Value::Object(map) => map.values().any(|v| self.value_pending(ctx, v)),
            _ => false,
        }
    }

    fn step_pending(&self, ctx: &Context, step: &Step) -> bool {
        step.with.values().any(|v| self.value_pending(ctx, v))
            || step
                .save
                .as_ref()
                .is_some_and(|s| self.value_pending(ctx, &Value::from(s.as_str())))
    }

    /// One request (or a check's requests), exact — or its template while it reads placeholders.
    fn single(&self, ctx: &Context, i: usize, plan: &mut StepPlan) -> Work {
        let step = &self.valid.runbook.steps[i];
        let info = &self.valid.steps[i];
        if self.step_pending(ctx, step) {
            return self.pending(ctx, i, None, plan);
        }
        if let Err(e) = self.save_name(ctx, i, None) {
            plan.problems.push(e);
        }
        let params = match render::params(&self.engine, ctx, step, info, None) {
            Ok(p) => p,
            Err(e) => {
                plan.problems.push(e);
                return Work::Nothing;
            }
        };
        let work = match info.action.special {
            Special::CheckRevoked => request::build(info.action, &params).map(|get| {
                let probe = revoked_probe(&params, &get);
                Work::Revoked { get, probe }
            }),
            Special::CheckSessions => Ok(Work::Sessions(session_check(&params))),
            Special::None => self.claimed(i, None, &params).map(Work::One),
        };
        let work = work.unwrap_or_else(|e| {
            plan.problems.push(e.0);
            Work::Nothing
        });
        if let Err(e) = credentials_sendable(&work) {
            plan.problems.push(e);
        }
        plan.follow_ups = self.follow_ups(&work);
        work
    }

    /// A request that reads steps not run yet: shown as its template (with its claim, as it
    /// will be sent).
    fn pending(&self, ctx: &Context, i: usize, item: Option<&Value>, plan: &mut StepPlan) -> Work {
        let step = &self.valid.runbook.steps[i];
        let info = &self.valid.steps[i];
        let built = render::params(&self.engine, ctx, step, info, item)
            .and_then(|p| self.claimed(i, None, &p).map_err(|e| e.0));
        match built {
            Ok(r) => {
                let view = self.template_view(&r);
                plan.follow_ups = self.follow_ups(&Work::One(r));
                Work::Pending(vec![view])
            }
            Err(e) => {
                plan.notes.push(format!("cannot render yet: {e}"));
                Work::Pending(Vec::new())
            }
        }
    }

    /// A fan-out: its items, capped here, before any approval or request.
    fn fan_out(
        &self,
        ctx: &Context,
        i: usize,
        expr: &str,
        done: &BTreeSet<usize>,
        plan: &mut StepPlan,
    ) -> Work {
        let step = &self.valid.runbook.steps[i];
        if self.expr_pending(ctx, expr) {
            return self.pending(ctx, i, Some(&Value::from("<item>")), plan);
        }
        let items = match ctx.list_input(expr) {
            Some(shared) => shared,
            None => match self.engine.eval(expr, ctx.display()) {
                Ok(Value::Array(items)) => Items::Own(Arc::new(items)),
                Ok(other) => {
                    plan.problems.push(format!(
                        "`foreach` must give a list; `{expr}` gave {}",
                        type_name(&other)
                    ));
                    return Work::Nothing;
                }
                Err(e) => {
                    plan.problems.push(format!("`foreach`: {e}"));
                    return Work::Nothing;
                }
            },
        };
        if items.len() > self.max_items {
            plan.problems.push(format!(
                "`foreach` gives {} items; the cap is {} (raise it with --max-items if this is really meant)",
                items.len(),
                self.max_items
            ));
            return Work::Nothing;
        }
        if self.step_pending(ctx, step) {
            return self.pending(ctx, i, Some(&Value::from("<item>")), plan);
        }
        Work::Many(Batch {
            items,
            done: done.clone(),
            concurrency: step.concurrency.unwrap_or(1).max(1) as usize,
        })
    }

    /// Item `k`'s request of fan-out step `i`: the one rendering the approval digest and the
    /// send both use.
    pub fn item_request(
        &self,
        ctx: &Context,
        i: usize,
        k: usize,
        item: &Value,
    ) -> Result<ApiRequest, String> {
        let step = &self.valid.runbook.steps[i];
        let info = &self.valid.steps[i];
        let params = render::params(&self.engine, ctx, step, info, Some(item))
            .map_err(|e| format!("item {k}: {e}"))?;
        let req = self
            .claimed(i, Some(k), &params)
            .map_err(|e| format!("item {k}: {}", e.0))?;
        credentials_sendable(&Work::One(req.clone())).map_err(|e| format!("item {k}: {e}"))?;
        self.save_name(ctx, i, Some(item))
            .map_err(|e| format!("item {k}: {e}"))?;
        Ok(req)
    }

    /// The request built from rendered parameters, under this write's exact claim where the
    /// action has one: a key is created under its claim name, a Subscription carries the tag.
    fn claimed(
        &self,
        i: usize,
        item: Option<usize>,
        params: &Params,
    ) -> Result<ApiRequest, request::BuildError> {
        let info = &self.valid.steps[i];
        let mut req = request::build(info.action, params)?;
        match info.recovery {
            Recovery::ClaimName => {
                let name = params
                    .display
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let claimed = claim::key_name(name, &self.claim_tag(i, item));
                req.set_body_field("name", Value::from(claimed));
            }
            Recovery::ClaimReason => {
                let given = params.display.get("reason").and_then(Value::as_str);
                let reason = claim::reason(given, &self.claim_tag(i, item));
                req.set_body_field("reason", Value::from(reason));
            }
            Recovery::Resend | Recovery::SupersededBy | Recovery::Unknown => {}
        }
        Ok(req)
    }

    /// What a step sends after its approved request, from the answer: a claimed key is renamed.
    fn follow_ups(&self, work: &Work) -> Vec<RequestView> {
        let Work::One(req) = work else {
            return Vec::new();
        };
        let original = req
            .body
            .as_ref()
            .and_then(|b| b.display().get("name"))
            .and_then(Value::as_str)
            .and_then(claim::original);
        match original {
            Some(name) if req.method == Method::Post && req.path == "/api-keys" => {
                let rename = rename_request("<new-key-id>", name);
                vec![self.template_view(&rename)]
            }
            _ => Vec::new(),
        }
    }

    /// The rendered `save` name of step `i` (item `item`), checked: it must stay in the evidence
    /// folder. Checked when the plan is made, before the request goes out.
    pub fn save_name(
        &self,
        ctx: &Context,
        i: usize,
        item: Option<&Value>,
    ) -> Result<String, String> {
        let step = &self.valid.runbook.steps[i];
        let Some(save) = &step.save else {
            return Ok(format!("{}.json", step.id));
        };
        let scope = render::bind_item(ctx.display(), item);
        let name = self
            .engine
            .render_str(save, &scope)
            .map_err(|e| format!("`save`: {e}"))?;
        let name = name
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| name.to_string());
        paths::check_save_name(&name).map_err(|why| format!("`save: {name}` is refused: {why}"))?;
        Ok(name)
    }

    /// How the step is approved. A destructive step is always asked (or approved in advance),
    /// whatever its runbook says: validate refuses `confirm: false` there, and this is the same
    /// rule for every mode, so no path to the executor can switch it off.
    fn approval(&self, ctx: &Context, i: usize, work: &Work) -> Approval {
        let step = &self.valid.runbook.steps[i];
        let info = &self.valid.steps[i];
        let message = |custom: Option<&String>| match custom {
            Some(m) => self
                .engine
                .render_str(m, ctx.display())
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| m.clone()),
            None => format!("Run `{}` ({})?", self.display_name(ctx, i), step.action),
        };
        match effective(info) {
            ConfirmMode::No => Approval::NotAsked {
                writes: writes(info, work),
            },
            ConfirmMode::Ask(m) => Approval::Ask {
                message: message(m.as_ref()),
            },
            ConfirmMode::Typed => Approval::Typed {
                message: message(None),
                target: self.typed_target(ctx, i, work),
            },
        }
    }

    /// What `confirm: typed` makes the operator type: the number of requests of a fan-out (typed
    /// for the worst: every one of them), else the action's target id.
    fn typed_target(&self, ctx: &Context, i: usize, work: &Work) -> String {
        let step = &self.valid.runbook.steps[i];
        let info = &self.valid.steps[i];
        if let Work::Many(b) = work {
            return b.todo_len().to_string();
        }
        if step.foreach.is_some() {
            return "<number of items>".into();
        }
        let target = info.action.target.and_then(|t| {
            let params = render::params(&self.engine, ctx, step, info, None).ok()?;
            params
                .display
                .get(t)
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
        });
        target.unwrap_or_else(|| "<target>".into())
    }

    fn notes(&self, step: &Step, info: &StepInfo, plan: &StepPlan) -> Vec<String> {
        let mut notes = Vec::new();
        match &plan.condition {
            Condition::Runs if step.when.is_some() => notes.push(format!(
                "condition `{}` is true",
                step.when.as_deref().unwrap_or_default()
            )),
            Condition::Runs => {}
            Condition::Skipped(why) => notes.push(format!("skipped: {why}")),
            Condition::Later(on) => notes.push(format!("runs only if {on} (decided at run time)")),
            Condition::Broken(e) => notes.push(format!("condition cannot be evaluated: {e}")),
        }
        if let Some(expr) = &step.foreach {
            let at_once = step.concurrency.unwrap_or(1);
            notes.push(match &plan.work {
                Work::Many(b) => format!(
                    "for each of {} items of `{expr}`, {at_once} at a time",
                    b.items.len()
                ),
                _ => format!("for each item of `{expr}` (known at run time), {at_once} at a time"),
            });
        }
        if info.action.special == Special::CheckRevoked {
            notes.push("reads the key; with a leaked secret, also tries the key itself (X-Api-Key with its app's X-App-Id): refused proves it dead only where ESUS accepted it earlier in this incident".into());
        }
        if info.action.paged {
            notes.push(
                "reads every page (_count=100, _offset=0, 100, …) into the evidence folder".into(),
            );
        }
        if !plan.follow_ups.is_empty() {
            notes.push("created under this incident's claim name, then renamed: a lost answer is settled by that exact name, never by a guess".into());
        }
        notes.extend(plan.notes.iter().cloned());
        notes
    }

    /// What step `plan`'s approval shows and covers, rendered once here for the prompt and the
    /// digest. A fan-out renders every item this leg sends; an item that cannot be rendered (or
    /// whose save name would leave the evidence folder) stops the step before anything is sent.
    pub fn shown(&self, ctx: &Context, plan: &StepPlan) -> Result<Shown, String> {
        self.shown_each(ctx, plan, &mut |_| {})
    }

    /// [`Planner::shown`], handing `each` every request the approval covers as it is rendered
    /// (a fan-out's too, past those shown) — what a signed plan's gate checks, one by one.
    pub fn shown_each(
        &self,
        ctx: &Context,
        plan: &StepPlan,
        each: &mut dyn FnMut(&RequestView),
    ) -> Result<Shown, String> {
        self.shown_keeping(ctx, plan, SHOWN_AT_MOST, each)
    }

    /// [`Planner::shown_each`], keeping at most `keep` of a fan-out's requests to show: a step
    /// nobody is asked about shows nothing, and keeping thousands of rendered requests only to
    /// digest them made a run's memory grow with its items (issue 21). The digest and the
    /// covers are over every request whatever `keep` is.
    pub fn shown_keeping(
        &self,
        ctx: &Context,
        plan: &StepPlan,
        keep: usize,
        each: &mut dyn FnMut(&RequestView),
    ) -> Result<Shown, String> {
        let mut single = |v: RequestView, extra: Option<RequestView>| {
            each(&v);
            if let Some(x) = &extra {
                each(x);
            }
            let d = crate::transcript::request_digest(&v);
            let covers = vec![Covered {
                item: None,
                request_sha256: d.clone(),
            }];
            let mut requests = vec![v];
            requests.extend(extra);
            Shown {
                total: requests.len(),
                requests,
                digest: d,
                covers,
            }
        };
        Ok(match &plan.work {
            Work::One(r) => single(self.view(r), None),
            Work::Revoked { get, probe } => {
                single(self.view(get), probe.as_ref().map(|p| self.view(p)))
            }
            Work::Sessions(_) => single(self.view(&ApiRequest::get("/auth/sessions")), None),
            Work::Many(b) => self.shown_batch(ctx, plan.index, b, keep.min(SHOWN_AT_MOST), each)?,
            Work::Pending(_) | Work::Nothing => {
                return Err(format!("`{}` has nothing known to send", plan.id));
            }
        })
    }

    fn shown_batch(
        &self,
        ctx: &Context,
        i: usize,
        b: &Batch,
        keep: usize,
        each: &mut dyn FnMut(&RequestView),
    ) -> Result<Shown, String> {
        let mut digest = super::digest::BatchDigest::default();
        let mut requests = Vec::new();
        let mut covers = Vec::with_capacity(b.todo_len());
        let mut total = 0;
        for (k, item) in b.todo() {
            let v = self.view(&self.item_request(ctx, i, k, item)?);
            each(&v);
            covers.push(Covered {
                item: Some(k),
                request_sha256: digest.push(&v),
            });
            total += 1;
            if requests.len() < keep {
                requests.push(v);
            }
        }
        Ok(Shown {
            requests,
            total,
            digest: digest.finish(),
            covers,
        })
    }
}

/// The confirmation a step really gets (see [`Planner::approval`]).
pub fn effective(info: &StepInfo) -> ConfirmMode {
    match &info.confirm {
        ConfirmMode::No if info.effect == Effect::Destructive => ConfirmMode::Ask(None),
        other => other.clone(),
    }
}

/// Whether what a step sends changes ESUS (`http` decides its method per request).
fn writes(info: &StepInfo, work: &Work) -> bool {
    match work {
        Work::One(r) => r.method != Method::Get,
        Work::Many(_) => info.action.method != Method::Get || info.action.name == "http",
        Work::Revoked { .. } | Work::Sessions(_) => false,
        Work::Pending(_) | Work::Nothing => info.effect != Effect::Read,
    }
}

/// Whether a reference (`steps.ID.…`) reads a step standing as a placeholder.
fn reads_pending(ctx: &Context, r: &str) -> bool {
    r.strip_prefix("steps.")
        .and_then(|s| s.split('.').next())
        .is_some_and(|id| ctx.is_pending(id))
}

/// `PUT /api-keys/{id} {"name"}`: a claimed key gets its own name back.
pub fn rename_request(id: &str, name: &str) -> ApiRequest {
    ApiRequest {
        method: Method::Put,
        path: format!("/api-keys/{}", request::encode_segment(id)),
        query: Vec::new(),
        body: Some(request::Body::plain(
            "application/json",
            serde_json::json!({ "name": name }),
        )),
        auth: Auth::Operator,
    }
}

/// Every credential a step sends must be a valid header value: found now, not after the steps
/// before it were sent.
fn credentials_sendable(work: &Work) -> Result<(), String> {
    let reqs: Vec<&ApiRequest> = match work {
        Work::One(r) => vec![r],
        Work::Revoked { get, probe } => std::iter::once(get).chain(probe.as_ref()).collect(),
        _ => Vec::new(),
    };
    let tokens: Vec<&secrecy::SecretString> = match work {
        Work::Sessions(c) => c.token.iter().collect(),
        _ => Vec::new(),
    };
    let bad = reqs.iter().any(|r| r.check_headers().is_err())
        || tokens
            .iter()
            .any(|t| request::header_value_ok(&format!("Bearer {}", t.expose_secret())).is_err());
    if bad {
        return Err("a credential it sends cannot be an HTTP header value (it holds control characters or a line break); check the secret input — nothing was sent".into());
    }
    Ok(())
}

/// The leaked key's own request: the same URL, authenticated as ESUS's own clients do it
/// (`X-Api-Key: clientId:secret`, with `X-App-Id` when the key belongs to an app).
fn revoked_probe(params: &Params, get: &ApiRequest) -> Option<ApiRequest> {
    let client_id = params
        .display
        .get("client_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())?;
    let secret = params.secret("secret")?;
    let app = params
        .display
        .get("app_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let key = secrecy::SecretString::from(format!("{client_id}:{}", secret.expose_secret()));
    Some(ApiRequest {
        auth: Auth::ApiKey { key, app },
        ..ApiRequest::get(get.path.clone())
    })
}

fn session_check(params: &Params) -> SessionCheck {
    let listed = params.display.get("listed").map(|v| match v {
        Value::Array(items) => Some(
            items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
                .collect(),
        ),
        _ => None,
    });
    SessionCheck {
        token: params.secret("token"),
        refresh_token: params.secret("refresh_token"),
        listed,
        revoked: params.display.get("revoked").and_then(Value::as_u64),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::inputs::Inputs;

    fn planner(text: &str) -> Planner {
        let valid = Arc::new(crate::runbook::check(text).expect("valid runbook"));
        let base = Url::parse("https://esus.test").expect("url");
        Planner::new(valid, base, 3, "incident-1")
    }

    fn ctx() -> Context {
        Context::new(&Inputs::default())
    }

    fn with_secret(name: &str, value: &str) -> Context {
        let mut inputs = Inputs::default();
        inputs
            .secrets
            .insert(name.into(), secrecy::SecretString::from(value.to_string()));
        std::sync::Arc::make_mut(&mut inputs.display)
            .insert(name.into(), Value::from(crate::event::REDACTED));
        Context::new(&inputs)
    }

    const STEPS: &str = "version: 1\nname: t\nsteps:\n  - {id: read, name: R, action: api_keys.get, with: {id: k-1}, outputs: {name: response.name}}\n  - {id: make, name: M, needs: [read], action: api_keys.create, with: {name: \"{{ steps.read.outputs.name }}\", scopes: [Patient.read]}}\n  - {id: gone, name: G, needs: [read], when: \"steps.read.outputs.name == 'x'\", action: api_keys.delete, with: {id: k-1}}\n";

    #[test]
    fn ahead_of_the_run_what_reads_a_step_not_run_is_a_template_and_its_condition_later() {
        let p = planner(STEPS);
        let plans = p.ahead(&ctx(), &Default::default());
        assert!(
            matches!(plans[0].work, Work::One(_)),
            "exact: {:?}",
            plans[0].work
        );
        let Work::Pending(views) = &plans[1].work else {
            panic!("a template: {:?}", plans[1].work);
        };
        let body = views[0].body.clone().unwrap_or_default();
        let name = body["name"].as_str().unwrap_or_default();
        assert!(name.starts_with("<read.name>.esus-ir-"), "{name}");
        assert_eq!(plans[1].follow_ups.len(), 1, "the rename follows");
        assert_eq!(plans[1].follow_ups[0].method, "PUT");
        assert!(matches!(plans[2].condition, Condition::Later(_)));
        assert!(plans[2].approval.asks(), "a delete is asked");
    }

    #[test]
    fn a_create_is_sent_under_the_claim_of_its_incident_step_and_item() {
        let p = planner(STEPS);
        let mut c = ctx();
        c.set_step(
            "read",
            crate::event::StepStatus::Ok,
            serde_json::json!({"name": "ehr"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            Default::default(),
        );
        let plan = p.step(&c, 1, &BTreeSet::new());
        let Work::One(req) = &plan.work else {
            panic!("exact: {:?}", plan.work);
        };
        let name = req.body.as_ref().map(|b| b.display()["name"].clone());
        let expected = claim::key_name("ehr", &claim::tag("incident-1", "make", None));
        assert_eq!(name, Some(Value::from(expected)));
        assert_eq!(plan.approval, Approval::NotAsked { writes: true });
        let other = Planner::new(p.valid.clone(), p.base().clone(), 3, "incident-2");
        let Work::One(req2) = other.step(&c, 1, &BTreeSet::new()).work else {
            panic!("exact");
        };
        assert_ne!(
            req2.body.as_ref().map(|b| b.display()["name"].clone()),
            req.body.as_ref().map(|b| b.display()["name"].clone()),
            "another incident, another claim"
        );
    }

    #[test]
    fn every_request_a_batch_approval_covers_is_handed_to_the_check_past_those_shown() {
        let valid = Arc::new(
            crate::runbook::check(
                "version: 1\nname: t\nsteps:\n  - {id: list, name: L, action: api_keys.list, outputs: {ids: 'response.items'}}\n  - {id: rm, name: R, action: api_keys.delete, needs: [list], foreach: steps.list.outputs.ids, with: {id: \"{{ item }}\"}}\n",
            )
            .expect("valid runbook"),
        );
        let n = SHOWN_AT_MOST + 7;
        let p = Planner::new(
            valid,
            Url::parse("https://esus.test").expect("url"),
            n,
            "incident-1",
        );
        let mut c = ctx();
        let ids: Vec<Value> = (0..n).map(|i| Value::from(format!("k-{i}"))).collect();
        c.set_step(
            "list",
            crate::event::StepStatus::Ok,
            serde_json::json!({ "ids": ids })
                .as_object()
                .cloned()
                .unwrap_or_default(),
            Default::default(),
        );
        let plan = p.step(&c, 1, &BTreeSet::new());
        let mut seen = 0;
        let mut last = String::new();
        let shown = p
            .shown_each(&c, &plan, &mut |v| {
                seen += 1;
                last = v.url.clone();
            })
            .expect("shown");
        assert_eq!(
            shown.requests.len(),
            SHOWN_AT_MOST,
            "a prompt shows at most this many"
        );
        assert_eq!(seen, n, "the check sees each one");
        assert!(last.ends_with(&format!("/api-keys/k-{}", n - 1)), "{last}");
    }

    /// `foreach: inputs.ids` reads the list where the run's inputs hold it; the requests are
    /// those the template engine's copy of it gives (`inputs.ids | list`), and what is not a
    /// list input of that exact form goes to the engine.
    #[test]
    fn a_fan_out_over_a_list_input_reads_it_in_place_and_sends_what_the_engine_would() {
        let p = planner(
            "version: 1\nname: t\ninputs:\n  ids: {type: list, required: true}\n  one: {type: string, required: true}\nsteps:\n  - {id: a, name: A, action: api_keys.delete, foreach: inputs.ids, with: {id: \"{{ item }}\"}}\n  - {id: b, name: B, action: api_keys.delete, foreach: \"inputs.ids | list\", with: {id: \"{{ item }}\"}}\n",
        );
        let mut inputs = Inputs::default();
        let given = Arc::make_mut(&mut inputs.display);
        given.insert("ids".into(), serde_json::json!(["k 2", 3, {"x": [1.5]}]));
        given.insert("one".into(), Value::from("k-9"));
        let ctx = Context::new(&inputs);
        let requests = |i: usize| {
            let plan = p.step(&ctx, i, &BTreeSet::new());
            let Work::Many(b) = &plan.work else {
                panic!("a batch: {:?}", plan.problems);
            };
            let shown = p
                .shown_keeping(&ctx, &plan, 10, &mut |_| {})
                .expect("shown");
            (b.items.clone(), shown.requests)
        };
        let (shared, sent) = requests(0);
        let (copied, engine_sent) = requests(1);
        assert!(
            matches!(shared, Items::Input(_, ref n) if n == "ids"),
            "{shared:?}"
        );
        assert!(matches!(copied, Items::Own(_)), "{copied:?}");
        assert_eq!(&shared[..], &copied[..]);
        assert_eq!(sent.len(), 3);
        assert_eq!(sent, engine_sent);
        for other in [
            "inputs.one",
            "inputs.ids | list",
            "inputs.missing",
            "inputs.",
            " steps.x",
        ] {
            assert!(ctx.list_input(other).is_none(), "{other}");
        }
        assert!(ctx.list_input(" inputs.ids ").is_some());
    }

    #[test]
    fn a_fan_out_is_capped_and_typed_for_every_request_it_sends() {
        let p = planner(
            "version: 1\nname: t\nsteps:\n  - {id: rm, name: R, action: api_keys.delete, foreach: \"['a','b','c']\", with: {id: \"{{ item }}\"}, confirm: typed}\n  - {id: big, name: B, action: api_keys.get, foreach: \"['a','b','c','d']\", with: {id: \"{{ item }}\"}}\n",
        );
        let done: BTreeSet<usize> = [1].into();
        let plan = p.step(&ctx(), 0, &done);
        let Work::Many(b) = &plan.work else {
            panic!("a batch");
        };
        assert_eq!(b.todo_len(), 2, "the item done earlier is not sent");
        assert_eq!(
            plan.approval,
            Approval::Typed {
                message: "Run `R` (api_keys.delete)?".into(),
                target: "2".into()
            }
        );
        let shown = p.shown(&ctx(), &plan).expect("shown");
        assert_eq!(shown.total, 2);
        let items: Vec<Option<usize>> = shown.covers.iter().map(|c| c.item).collect();
        assert_eq!(items, [Some(0), Some(2)]);
        let mut digest = super::super::digest::BatchDigest::default();
        for v in &shown.requests {
            digest.push(v);
        }
        assert_eq!(shown.digest, digest.finish(), "over exactly what is shown");
        let big = p.step(&ctx(), 1, &BTreeSet::new());
        assert!(
            big.problems.iter().any(|e| e.contains("the cap is 3")),
            "{:?}",
            big.problems
        );
        assert!(!big.sends());
    }

    #[test]
    fn an_if_permitted_read_runs_only_where_auth_me_grants_its_right() {
        let p = planner(
            "version: 1\nname: t\ninputs:\n  go: {type: boolean, default: true}\nsteps:\n  - {id: chain, name: C, action: audit.verify_chain, if_permitted: true, when: inputs.go}\n",
        );
        let mut inputs = Inputs::default();
        Arc::make_mut(&mut inputs.display).insert("go".into(), Value::from(true));
        let plan_with = |inputs: &Inputs, me: Option<Value>| {
            let mut c = Context::new(inputs);
            if let Some(me) = me {
                c.set_operator(me);
            }
            p.step(&c, 0, &BTreeSet::new())
        };
        let plan = |me: Option<Value>| plan_with(&inputs, me);
        // Before the preflight has read /auth/me: decided when reached, on the right it needs.
        let ahead = plan(None);
        assert_eq!(
            ahead.condition,
            Condition::Later("the operator has a system administrator's bearer token".into())
        );
        let not = plan(Some(
            serde_json::json!({"id": "u-1", "isSystemAdmin": false}),
        ));
        match &not.condition {
            Condition::Skipped(why) => assert!(
                why.contains("lacks the system administrator's bearer token"),
                "{why}"
            ),
            other => panic!("skipped for want of the right, not {other:?}"),
        }
        assert!(!not.sends(), "a skipped step sends nothing");
        let admin = plan(Some(
            serde_json::json!({"id": "u-1", "isSystemAdmin": true}),
        ));
        assert_eq!(admin.condition, Condition::Runs);
        assert!(admin.sends());
        // /auth/me that does not say: ESUS decides (a refusal is then the step's failure).
        let silent = plan(Some(serde_json::json!({"id": "u-1"})));
        assert_eq!(silent.condition, Condition::Runs);
        // The right is judged before `when`, and `when` still holds the step back.
        let mut stopped = inputs.clone();
        Arc::make_mut(&mut stopped.display).insert("go".into(), Value::from(false));
        let off = plan_with(
            &stopped,
            Some(serde_json::json!({"id": "u-1", "isSystemAdmin": true})),
        );
        assert_eq!(
            off.condition,
            Condition::Skipped("condition `inputs.go` is false".into())
        );
    }

    #[test]
    fn what_can_be_checked_before_sending_is_a_problem_of_the_plan() {
        let p = planner(
            "version: 1\nname: t\ninputs:\n  token: {type: secret}\nsteps:\n  - {id: out, name: O, action: auth.logout, with: {token: \"{{ inputs.token }}\"}}\n  - {id: s, name: S, action: api_keys.list, save: \"{{ '..' }}/x.json\"}\n",
        );
        let bad = with_secret("token", "eyJ\u{7}x");
        let plan = p.step(&bad, 0, &BTreeSet::new());
        assert!(
            plan.problems
                .iter()
                .any(|e| e.contains("cannot be an HTTP header value")),
            "{:?}",
            plan.problems
        );
        assert!(
            !plan.problems.iter().any(|e| e.contains("eyJ")),
            "never the value"
        );
        let good = p.step(&with_secret("token", "eyJ.ok"), 0, &BTreeSet::new());
        assert!(good.problems.is_empty(), "{:?}", good.problems);
        let save = p.step(&ctx(), 1, &BTreeSet::new());
        assert!(
            save.problems.iter().any(|e| e.contains("is refused")),
            "{:?}",
            save.problems
        );
    }

    #[test]
    fn a_destructive_step_is_asked_whatever_its_runbook_says_and_a_false_condition_skips() {
        let mut valid = crate::runbook::check(
            "version: 1\nname: t\ninputs:\n  go: {type: boolean, default: false}\nsteps:\n  - {id: rm, name: R, action: api_keys.delete, with: {id: k-1}}\n  - {id: no, name: N, when: inputs.go, action: api_keys.delete, with: {id: k-2}}\n",
        )
        .expect("valid");
        valid.steps[0].confirm = ConfirmMode::No;
        assert_eq!(effective(&valid.steps[0]), ConfirmMode::Ask(None));
        let p = Planner::new(
            Arc::new(valid),
            Url::parse("https://e.test").expect("url"),
            0,
            "i",
        );
        let mut inputs = Inputs::default();
        Arc::make_mut(&mut inputs.display).insert("go".into(), Value::Bool(false));
        let c = Context::new(&inputs);
        assert!(p.step(&c, 0, &BTreeSet::new()).approval.asks());
        let skipped = p.step(&c, 1, &BTreeSet::new());
        assert_eq!(
            skipped.condition,
            Condition::Skipped("condition `inputs.go` is false".into())
        );
        assert!(!skipped.sends());
    }

    #[test]
    fn a_step_that_asks_nobody_still_records_an_approval_when_it_writes() {
        let p = planner(
            "version: 1\nname: t\nsteps:\n  - {id: read, name: R, action: api_keys.get, with: {id: k-1}, outputs: {n: response.name}}\n  - {id: mk, name: M, action: api_keys.create, foreach: \"['a','b']\", with: {name: \"{{ item }}\", scopes: [Patient.read]}}\n  - {id: gets, name: G, action: api_keys.get, foreach: \"['a','b']\", with: {id: \"{{ item }}\"}}\n  - {id: raw, name: H, action: http, foreach: \"['a']\", with: {method: GET, path: \"/api-keys/{{ item }}\"}}\n  - {id: later, name: L, needs: [read], action: api_keys.create, with: {name: \"{{ steps.read.outputs.n }}\", scopes: [Patient.read]}}\n  - {id: later_read, name: LR, needs: [read], action: api_keys.get, with: {id: \"{{ steps.read.outputs.n }}\"}}\n",
        );
        let plans = p.ahead(&ctx(), &Default::default());
        let writes = |id: &str| {
            let plan = plans.iter().find(|x| x.id == id).expect("planned");
            match plan.approval {
                Approval::NotAsked { writes } => writes,
                ref other => panic!("{id}: {other:?}"),
            }
        };
        assert!(!writes("read"));
        assert!(writes("mk"), "a fan-out of creates writes");
        assert!(!writes("gets"), "a fan-out of reads does not");
        assert!(
            writes("raw"),
            "`http` decides its method per request: counted as writing"
        );
        assert!(writes("later"), "a create not known yet still writes");
        assert!(!writes("later_read"), "a read not known yet does not");
    }

    #[test]
    fn the_leaked_key_is_tried_as_its_own_clients_send_it() {
        let p = planner(
            "version: 1\nname: t\ninputs:\n  leaked: {type: secret}\nsteps:\n  - {id: dead, name: D, action: api_keys.check_revoked, with: {id: k-1, client_id: ck_1, app_id: 3f8e6b2a-9c41-4d7e-b5a0-2c6d9e1f4a73, secret: \"{{ inputs.leaked }}\"}}\n",
        );
        let plan = p.step(&with_secret("leaked", "s3cr3t"), 0, &BTreeSet::new());
        let Work::Revoked { get, probe } = &plan.work else {
            panic!("a revocation check: {:?}", plan.work);
        };
        assert!(
            matches!(get.auth, Auth::Operator),
            "the key is read as the operator"
        );
        let probe = probe.as_ref().expect("with the secret, the key is tried");
        let Auth::ApiKey { key, app } = &probe.auth else {
            panic!("tried as the key itself: {:?}", probe.auth);
        };
        assert_eq!(key.expose_secret(), "ck_1:s3cr3t");
        assert_eq!(app.as_deref(), Some("3f8e6b2a-9c41-4d7e-b5a0-2c6d9e1f4a73"));
        assert_eq!(probe.path, get.path, "the same URL");
        let view = p.view(probe);
        assert!(
            view.headers.contains(&(
                "X-App-Id".into(),
                "3f8e6b2a-9c41-4d7e-b5a0-2c6d9e1f4a73".into()
            )),
            "{:?}",
            view.headers
        );
        assert!(!format!("{view:?}").contains("s3cr3t"), "never shown");
        let mut absent = Inputs::default();
        Arc::make_mut(&mut absent.display).insert("leaked".into(), Value::Null);
        let none = p.step(&Context::new(&absent), 0, &BTreeSet::new());
        assert!(
            matches!(none.work, Work::Revoked { probe: None, .. }),
            "without the secret, nothing is tried"
        );
    }
}
