//! Containment checks: the steps whose answers from ESUS are the run's containment verdict.
//! Each succeeds only on a positive answer that proves the credential is dead — a 401 to the
//! stolen credential, a 404 or `active: false` for the key — never on the absence of an error.
//! Each also says, in its `finding`, what it saw, so the run can lead with it.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::outcome::{self, StepResult, exchange, send_policy};
use super::shared::Shared;
use crate::esus::actions::Method;
use crate::esus::request::{ApiRequest, Auth, Body};
use crate::plan::SessionCheck;
use crate::plan::context::Context;
use crate::runbook::model::Step;
use crate::runbook::validate::StepInfo;

/// What one part of a check found.
struct Part {
    held: bool,
    what: String,
    /// When it did not hold in a way no later run can change (ESUS refused the credential before
    /// the incident touched anything, so it can never be proven dead): what a person does next.
    by_hand: Option<&'static str>,
}

fn ok(what: impl Into<String>) -> Part {
    Part {
        held: true,
        what: what.into(),
        by_hand: None,
    }
}

fn not(what: impl Into<String>) -> Part {
    Part {
        held: false,
        what: what.into(),
        by_hand: None,
    }
}

/// A part that can never hold in this incident, and what to do instead.
fn unprovable(what: impl Into<String>, by_hand: &'static str) -> Part {
    Part {
        held: false,
        what: what.into(),
        by_hand: Some(by_hand),
    }
}

const RESET_THE_USER: &str = "reset the user's password and MFA in ESUS (every device must sign in again): the stolen credential was already refused when this incident began, so ESUS cannot show which sessions it reached or prove them ended";
const CHECK_THE_SECRET: &str = "check that the leaked secret given is this key's: ESUS refused it before anything was done, so its refusal now proves nothing";
const CHECK_THE_KEY_ID: &str = "check the key id: ESUS never showed this incident a key with that id, so its absence proves nothing about the leaked key";

/// The check's result from its parts: ok only if every part held.
fn verdict(parts: Vec<Part>, outputs: outcome::Outputs) -> StepResult {
    let held = !parts.is_empty() && parts.iter().all(|p| p.held);
    let finding = parts
        .iter()
        .map(|p| p.what.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    let mut r = if held {
        StepResult::default()
    } else {
        StepResult::failed(format!("containment NOT confirmed: {finding}"))
    };
    r.finding = Some(finding);
    let failing: Vec<&Part> = parts.iter().filter(|p| !p.held).collect();
    if !failing.is_empty() && failing.iter().all(|p| p.by_hand.is_some()) {
        for p in failing {
            let step = p.by_hand.unwrap_or_default().to_string();
            if !r.by_hand.contains(&step) {
                r.by_hand.push(step);
            }
        }
    }
    if held {
        if let Some(e) = outputs.error {
            return StepResult::failed(e);
        }
        r.outputs = outputs.shown;
        r.secret_outputs = outputs.secret;
    }
    r
}

/// `api_keys.check_revoked`: the key is gone or inactive, and (with its secret) refused — each
/// proven against what the incident saw before (the key exist, ESUS accept the secret).
pub(super) async fn revoked(
    shared: &Arc<Shared>,
    ctx: &Context,
    step: &Step,
    info: &StepInfo,
    get: ApiRequest,
    probe: Option<ApiRequest>,
) -> StepResult {
    let policy = send_policy(step, true);
    let id = get.path.rsplit('/').next().unwrap_or_default().to_string();
    let resp = match exchange(shared, step, info, &get, policy).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let active = resp.json().get("active").and_then(Value::as_bool);
    let seen = shared.witnesses.key_seen(&id);
    let Some((key_part, key)) = key_part(resp.status, active, &id, &get.path, seen) else {
        let s = resp.status;
        let mut r = StepResult::failed(format!(
            "could not tell whether key {id} is dead: ESUS answered {s}{}",
            outcome::diagnostics(&resp, info)
        ));
        r.auth_failed = matches!(s, 401 | 403);
        r.finding = Some(format!("key {id}: not verified (ESUS answered {s})"));
        return r;
    };
    let mut parts = vec![key_part];
    let mut refused = Value::Null;
    if let Some(probe) = probe {
        let resp = match exchange(shared, step, info, &probe, probing(policy)).await {
            Ok(r) => r,
            Err(r) => return r,
        };
        let before = probe
            .credential()
            .is_some_and(|c| shared.witnesses.accepted(c.expose_secret()));
        parts.push(secret_part(resp.status, before));
        refused = Value::Bool(resp.status == 401);
    }
    let i = shared.valid.index_of(&step.id).unwrap_or_default();
    let facts = json!({"key": key, "secret_refused": refused});
    verdict(parts, outcome::outputs(shared, ctx, i, &facts, 200, None))
}

/// What ESUS's answer about the key proves, and the word for it (`gone`, `inactive`, `active`,
/// `unknown`); `None` when the answer says nothing about the key (a refusal, a 5xx). A 404 proves
/// the key gone only when the incident saw it exist (`seen`): for an id that never existed it
/// proves nothing.
fn key_part(
    status: u16,
    active: Option<bool>,
    id: &str,
    path: &str,
    seen: bool,
) -> Option<(Part, &'static str)> {
    Some(match status {
        404 | 410 if seen => (
            ok(format!(
                "key {id} is gone (GET {path} → {status}), where this incident saw it exist before"
            )),
            "gone",
        ),
        404 | 410 => (
            unprovable(
                format!(
                    "not proven: ESUS answers {status} for key {id}, but this incident never saw it exist (a mistyped id, or a key gone before the incident): its absence proves nothing about the leaked key"
                ),
                CHECK_THE_KEY_ID,
            ),
            "unknown",
        ),
        200 if active == Some(false) => (
            ok(format!("key {id} is inactive (active: false)")),
            "inactive",
        ),
        200 => (
            not(format!(
                "key {id} is still active (GET {path} → 200, active: true)"
            )),
            "active",
        ),
        _ => return None,
    })
}

/// What the leaked secret's answer proves: a 401 proves it dead only where ESUS accepted it
/// earlier in the incident (a probe built wrong, or the wrong secret, is refused whatever the
/// key's state); any other answer means it still authenticates.
fn secret_part(status: u16, accepted_before: bool) -> Part {
    match status {
        401 if accepted_before => ok(
            "the leaked secret is refused (401), where ESUS accepted it earlier in this incident",
        ),
        401 => unprovable(
            "not proven: the leaked secret is refused (401), but ESUS never accepted it in this incident (it was refused before anything was done, or never tried): the refusal proves nothing — check that it is the leaked key's secret",
            CHECK_THE_SECRET,
        ),
        s => not(format!(
            "the leaked secret still authenticates (ESUS answered {s} instead of 401)"
        )),
    }
}

/// `auth.check_sessions_ended`: the stolen access token and refresh token are refused, and the
/// sessions listed at the start were ended.
pub(super) async fn sessions(
    shared: &Arc<Shared>,
    ctx: &Context,
    step: &Step,
    info: &StepInfo,
    check: SessionCheck,
    probe_refresh: bool,
) -> StepResult {
    let mut parts = Vec::new();
    let mut facts = serde_json::Map::new();
    if check.token.is_none() && check.refresh_token.is_none() {
        parts.push(not(
            "no stolen credential was given: nothing was tested against ESUS",
        ));
    }
    if let Some(token) = &check.token {
        let list = ApiRequest {
            auth: Auth::Bearer(token.clone()),
            ..ApiRequest::get("/auth/sessions")
        };
        let resp = match exchange(shared, step, info, &list, probing(send_policy(step, true))).await
        {
            Ok(r) => r,
            Err(r) => return r,
        };
        facts.insert("token_refused".into(), Value::Bool(resp.status == 401));
        let before = shared.witnesses.accepted(token.expose_secret());
        parts.push(access_token_part(&resp, before, check.revoked.is_some()));
    }
    if let Some(refresh) = &check.refresh_token {
        match probe_refresh {
            true => match refresh_part(shared, step, info, refresh).await {
                Ok(part) => {
                    facts.insert("refresh_refused".into(), Value::Bool(part.held));
                    parts.push(part);
                }
                Err(r) => return r,
            },
            false => parts.push(not(
                "the stolen refresh token was not tried: the run stopped, and trying it would use it up",
            )),
        }
    }
    if let Some(listed) = &check.listed {
        parts.push(listed_part(listed.as_deref(), check.revoked));
    }
    let i = shared.valid.index_of(&step.id).unwrap_or_default();
    let outputs = outcome::outputs(shared, ctx, i, &Value::Object(facts), 200, None);
    verdict(parts, outputs)
}

/// `logged_out_all`: `logout-all` ran for the user (with the stolen token, or the pair its stolen
/// refresh token gave), which ends every session of the user — the expired token's too.
fn access_token_part(
    resp: &crate::esus::client::ApiResponse,
    accepted_before: bool,
    logged_out_all: bool,
) -> Part {
    match resp.status {
        401 if accepted_before => ok(
            "the stolen access token is refused (401), where ESUS accepted it earlier in this incident",
        ),
        401 if logged_out_all => ok(
            "the stolen access token is refused (401); ESUS refused it before anything was done too (it had expired), and logout-all then ended every session of its user",
        ),
        401 => unprovable(
            "not proven: the stolen access token is refused (401), but ESUS never accepted it in this incident (already dead, or not the stolen one): the refusal proves nothing",
            RESET_THE_USER,
        ),
        200 => {
            let open: Vec<String> = resp
                .json()
                .get("sessions")
                .and_then(Value::as_array)
                .map(|s| {
                    s.iter()
                        .filter_map(|x| x.get("sessionId").and_then(Value::as_str))
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            not(format!(
                "the stolen access token still works: ESUS lists {} open session(s) ({})",
                open.len(),
                open.join(", ")
            ))
        }
        s => not(format!(
            "the stolen access token got {s}, not the 401 that proves it is dead"
        )),
    }
}

/// Tries the stolen refresh token. If it still works, the check has just used it: the fresh
/// pair it got is used at once to log every session out, so that the check itself leaves
/// nothing alive — and the check fails, because containment had not held.
async fn refresh_part(
    shared: &Arc<Shared>,
    step: &Step,
    info: &StepInfo,
    refresh: &SecretString,
) -> Result<Part, StepResult> {
    let wire = json!({"refreshToken": refresh.expose_secret()});
    let shown = json!({"refreshToken": crate::event::REDACTED});
    let req = ApiRequest {
        method: Method::Post,
        path: "/auth/refresh".into(),
        query: Vec::new(),
        body: Some(Body::with_secret(
            "application/json",
            shown,
            serde_json::to_vec(&wire).unwrap_or_default(),
        )),
        auth: Auth::None,
    };
    let once = probing(send_policy(step, false));
    let before = shared.witnesses.accepted(refresh.expose_secret());
    let resp = exchange(shared, step, info, &req, once).await?;
    if resp.status == 401 && before {
        return Ok(ok(
            "the stolen refresh token is refused (401), where ESUS accepted it earlier in this incident",
        ));
    }
    if resp.status == 401 {
        return Ok(unprovable(
            "not proven: the stolen refresh token is refused (401), but ESUS never accepted it in this incident (already used up or dead, or not the stolen one): the refusal proves nothing",
            RESET_THE_USER,
        ));
    }
    if resp.status != 200 {
        return Ok(not(format!(
            "the stolen refresh token got {}, not the 401 that proves it is dead",
            resp.status
        )));
    }
    let fresh = resp
        .json()
        .get("accessToken")
        .and_then(Value::as_str)
        .map(|t| SecretString::from(t.to_string()));
    let Some(fresh) = fresh else {
        return Ok(not(
            "the stolen refresh token still works (ESUS issued new tokens)",
        ));
    };
    let logout = ApiRequest {
        method: Method::Post,
        path: "/auth/logout-all".into(),
        query: Vec::new(),
        body: None,
        auth: Auth::Bearer(fresh),
    };
    let ended = exchange(shared, step, info, &logout, once).await?;
    Ok(not(format!(
        "the stolen refresh token still worked: the check used it and logged out every session it reached (logout-all → {})",
        ended.status
    )))
}

/// Requests a check sends as the stolen credential itself, to see whether it still works (and,
/// if it does, to end what it reaches): recorded as probes, not as the operator acting.
fn probing(policy: super::send::SendPolicy) -> super::send::SendPolicy {
    super::send::SendPolicy {
        probe: true,
        ..policy
    }
}

fn listed_part(listed: Option<&[String]>, revoked: Option<u64>) -> Part {
    let Some(listed) = listed else {
        return unprovable(
            "the user's sessions were never listed (no stolen credential still worked): nothing proves they ended, and ESUS gives administrators no route to list or end another user's sessions",
            RESET_THE_USER,
        );
    };
    let ids = listed.join(", ");
    match revoked {
        Some(n) if n >= listed.len() as u64 => ok(format!(
            "logout-all ended {n} session(s); {} were listed at the start ({ids})",
            listed.len()
        )),
        Some(n) => not(format!(
            "logout-all ended {n} session(s) but {} were listed at the start ({ids})",
            listed.len()
        )),
        None => not(format!(
            "the {} session(s) listed at the start ({ids}) were not logged out: logout-all did not run",
            listed.len()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::esus::client::ApiResponse;

    fn answer(status: u16, body: &str) -> ApiResponse {
        ApiResponse {
            status,
            retry_after: None,
            body: bytes::Bytes::from(body.to_string()),
            duration: std::time::Duration::ZERO,
        }
    }

    fn contained(r: &StepResult) -> bool {
        r.status.is_none_or(|s| s == crate::event::StepStatus::Ok) && r.reason.is_none()
    }

    #[test]
    fn a_check_holds_only_when_it_has_parts_and_every_part_held() {
        let none = verdict(Vec::new(), Default::default());
        assert!(!contained(&none), "no evidence is never containment");
        let one_not = verdict(
            vec![ok("key gone"), not("secret still works")],
            Default::default(),
        );
        assert!(!contained(&one_not));
        let reason = one_not.reason.as_deref().unwrap_or_default();
        assert!(
            reason.starts_with("containment NOT confirmed: "),
            "{reason}"
        );
        assert_eq!(
            one_not.finding.as_deref(),
            Some("key gone; secret still works")
        );
        let all = verdict(
            vec![ok("key gone"), ok("secret refused")],
            Default::default(),
        );
        assert!(contained(&all), "{:?}", all.reason);
        assert_eq!(all.finding.as_deref(), Some("key gone; secret refused"));
        let bad_outputs = verdict(
            vec![ok("key gone")],
            outcome::Outputs {
                error: Some("outputs: no field".into()),
                ..Default::default()
            },
        );
        assert!(!contained(&bad_outputs));
        assert_eq!(bad_outputs.reason.as_deref(), Some("outputs: no field"));
        assert!(one_not.by_hand.is_empty(), "a retry may change it");
    }

    #[test]
    fn only_a_check_every_failure_of_which_is_unprovable_leaves_work_by_hand() {
        let dead = || unprovable("token refused, never accepted", RESET_THE_USER);
        let never = || unprovable("sessions never listed", RESET_THE_USER);
        let both = verdict(vec![dead(), never(), ok("key gone")], Default::default());
        assert!(!contained(&both));
        assert_eq!(both.by_hand, [RESET_THE_USER], "said once");
        let mixed = verdict(vec![dead(), not("still works")], Default::default());
        assert!(
            mixed.by_hand.is_empty(),
            "another try may change `still works`"
        );
        let held = verdict(vec![ok("gone")], Default::default());
        assert!(held.by_hand.is_empty());
    }

    #[test]
    fn only_a_401_proves_the_stolen_access_token_dead() {
        assert!(access_token_part(&answer(401, ""), true, false).held);
        assert!(
            !access_token_part(&answer(401, ""), false, false).held,
            "a token ESUS never accepted proves nothing by being refused"
        );
        assert!(
            access_token_part(&answer(401, ""), false, true).held,
            "unless logout-all ended every session of its user"
        );
        let alive = access_token_part(
            &answer(
                200,
                r#"{"sessions":[{"sessionId":"s-1"},{"sessionId":"s-2"}]}"#,
            ),
            true,
            true,
        );
        assert!(!alive.held);
        assert!(
            alive.what.contains("2 open session(s) (s-1, s-2)"),
            "{}",
            alive.what
        );
        for s in [403, 404, 429, 500] {
            assert!(
                !access_token_part(&answer(s, ""), true, true).held,
                "{s} proves nothing"
            );
        }
    }

    #[test]
    fn a_404_proves_a_key_gone_only_when_the_incident_saw_it_exist() {
        let gone = key_part(404, None, "k-1", "/api-keys/k-1", true).expect("an answer");
        assert!(gone.0.held && gone.1 == "gone");
        assert!(key_part(410, None, "k-1", "/api-keys/k-1", true).is_some_and(|p| p.0.held));
        let never = key_part(404, None, "k-typo", "/api-keys/k-typo", false).expect("an answer");
        assert!(
            !never.0.held,
            "an id never seen proves nothing: {}",
            never.0.what
        );
        assert!(never.0.what.starts_with("not proven"));
        assert!(key_part(200, Some(false), "k-1", "p", false).is_some_and(|p| p.0.held));
        assert!(key_part(200, Some(true), "k-1", "p", true).is_some_and(|p| !p.0.held));
        assert!(key_part(200, None, "k-1", "p", true).is_some_and(|p| !p.0.held));
        for s in [401, 403, 429, 500, 503] {
            assert!(
                key_part(s, None, "k-1", "p", true).is_none(),
                "{s} says nothing"
            );
        }
    }

    #[test]
    fn a_refused_secret_is_dead_only_against_an_earlier_acceptance() {
        assert!(secret_part(401, true).held);
        let unproven = secret_part(401, false);
        assert!(!unproven.held && unproven.what.starts_with("not proven"));
        for s in [200, 403, 404, 429, 500] {
            assert!(!secret_part(s, true).held, "{s} is not a refusal");
        }
    }

    #[test]
    fn every_listed_session_must_have_been_ended() {
        let listed = ["s-1".to_string(), "s-2".to_string(), "s-3".to_string()];
        assert!(listed_part(Some(&listed), Some(3)).held);
        assert!(listed_part(Some(&listed), Some(4)).held);
        assert!(!listed_part(Some(&listed), Some(2)).held);
        assert!(!listed_part(Some(&listed), None).held);
        assert!(
            !listed_part(None, Some(3)).held,
            "never listed: nothing proven"
        );
        assert!(listed_part(Some(&[]), Some(0)).held);
    }

    #[test]
    fn probes_keep_the_policy_and_are_marked() {
        let base = super::super::send::SendPolicy {
            attempts: 3,
            backoff: std::time::Duration::from_millis(5),
            idempotent: false,
            timeout: None,
            probe: false,
        };
        let p = probing(base);
        assert!(p.probe);
        assert_eq!((p.attempts, p.idempotent), (3, false));
    }
}
