//! After a non-idempotent request whose answer was lost (a dropped connection, a 5xx, a run
//! killed before the answer was recorded): ask ESUS what happened before anything is sent again.
//! A blind re-send of a rotate or a create leaves two keys, one of them active with a secret
//! nobody holds; relying on an undocumented 409 to stop the second is not a plan.
//!
//! - It did not happen: the approved request is sent once more (it is the first time).
//! - It happened, and what it made holds no secret of ours (a subscription): it is adopted.
//! - It happened, and its secret was in the lost answer (a key): the orphan is revoked and the
//!   approved request sent again — both shown and approved first, like any destructive request.
//! - ESUS cannot tell (ambiguous, unreadable): the step fails, saying exactly what to check.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use super::confirmation::{self, Answer};
use super::context::Context;
use super::send::{self, Sent};
use super::shared::Shared;
use super::step::{self, StepResult, exchange, exchange_item, send_policy};
use crate::esus::actions::Method;
use crate::esus::client::ApiResponse;
use crate::esus::request::{ApiRequest, encode_segment};
use crate::runbook::model::Step;
use crate::runbook::validate::StepInfo;

/// Clock difference allowed between this machine and ESUS when matching creation times.
const SKEW: SignedDuration = SignedDuration::from_secs(120);

/// Whether ESUS's state can tell what became of this action's lost request.
pub(super) fn recoverable(info: &StepInfo) -> bool {
    matches!(
        info.action.name,
        "api_keys.rotate" | "api_keys.create" | "subscription.create"
    )
}

/// What a lost request is: the step (item) it belongs to, and when it was sent.
pub(super) struct Lost<'a> {
    pub(super) step: &'a Step,
    pub(super) info: &'a StepInfo,
    pub(super) req: &'a ApiRequest,
    pub(super) item: Option<(usize, &'a Value)>,
    pub(super) why: &'a str,
    pub(super) since: Timestamp,
}

/// Recovers a lost request.
pub(super) async fn recover(shared: &Arc<Shared>, ctx: &Context, lost: Lost<'_>) -> StepResult {
    let outcome = match lost.info.action.name {
        "api_keys.rotate" => rotate(shared, ctx, &lost).await,
        "api_keys.create" => create(shared, ctx, &lost).await,
        "subscription.create" => subscription(shared, &lost).await,
        name => Err(StepResult::failed(format!(
            "an earlier request of `{name}` got no recorded answer ({}); it is not safe to repeat blindly. Check ESUS's state, then run the step again",
            lost.why
        ))),
    };
    match outcome {
        Ok((resp, id, note)) => {
            let mut r =
                step::finish_answer(shared, ctx, lost.step, lost.info, &resp, &id, lost.item).await;
            r.reason.get_or_insert(note);
            r
        }
        Err(r) => r,
    }
}

/// An answer to hand to the step, the request id it answers, and what recovery did — or the
/// step's result, already final (a failure, or an answer adopted from what is on disk).
type Recovered = Result<(ApiResponse, String, String), StepResult>;

/// A rotate: the key's `supersededBy`, set at or after the send, means it happened.
async fn rotate(shared: &Arc<Shared>, ctx: &Context, lost: &Lost<'_>) -> Recovered {
    let key_path = lost.req.path.trim_end_matches("/rotate").to_string();
    let key_id = key_path.rsplit('/').next().unwrap_or_default().to_string();
    let read = ApiRequest::get(key_path);
    let resp = exchange(
        shared,
        lost.step,
        lost.info,
        &read,
        send_policy(lost.step, true),
    )
    .await?;
    if resp.status != 200 {
        return Err(StepResult::failed(format!(
            "outcome unknown: the rotate of {key_id} got no answer ({}), and the key can no longer be read (ESUS answered {}); nothing was sent again. Look for its replacement with GET /api-keys?name=…",
            lost.why, resp.status
        )));
    }
    let body = resp.json();
    let successor = body.get("supersededBy").and_then(Value::as_str);
    let at = body
        .get("supersededAt")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<Timestamp>().ok());
    match (successor, at) {
        (Some(orphan), Some(at)) if at >= lost.since - SKEW => {
            let orphan = orphan.to_string();
            reissue(shared, ctx, lost, &orphan, &format!("the rotate of {key_id}")).await
        }
        _ => resend(
            shared,
            lost,
            format!(
                "the rotate of {key_id} got no answer ({}); ESUS shows it had not happened, so it was sent once more",
                lost.why
            ),
        )
        .await,
    }
}

/// A create: a key of the same name created at or after the send means it happened.
async fn create(shared: &Arc<Shared>, ctx: &Context, lost: &Lost<'_>) -> Recovered {
    let name = lost
        .req
        .body
        .as_ref()
        .and_then(|b| b.display().get("name"))
        .and_then(Value::as_str)
        .filter(|n| *n != crate::event::REDACTED)
        .map(str::to_string);
    let Some(name) = name else {
        return Err(StepResult::failed(format!(
            "outcome unknown: the create got no answer ({}) and its key name is not known, so ESUS cannot be asked; nothing was sent again",
            lost.why
        )));
    };
    let mut list = ApiRequest::get("/api-keys");
    list.query.push(("name".into(), name.clone()));
    let resp = exchange(
        shared,
        lost.step,
        lost.info,
        &list,
        send_policy(lost.step, true),
    )
    .await?;
    let made = made_since(&resp.json(), "items", lost.since, |k| {
        k.get("name").and_then(Value::as_str) == Some(name.as_str())
            && k.get("active").and_then(Value::as_bool) != Some(false)
    });
    match made.as_slice() {
        [] => {
            resend(
                shared,
                lost,
                format!(
                    "the create of `{name}` got no answer ({}); ESUS lists no key of that name created since, so it was sent once more",
                    lost.why
                ),
            )
            .await
        }
        [orphan] => {
            reissue(
                shared,
                ctx,
                lost,
                orphan,
                &format!("the create of `{name}`"),
            )
            .await
        }
        many => Err(StepResult::failed(format!(
            "outcome unknown: the create of `{name}` got no answer ({}), and ESUS lists {} keys of that name created since ({}); which one is ours cannot be told. Revoke the ones nobody holds a secret for (DELETE /api-keys/ID), then run the step again",
            lost.why,
            many.len(),
            many.join(", ")
        ))),
    }
}

/// A subscription: one with the same criteria and endpoint, updated at or after the send, is
/// the one that was made; it holds no secret of ours, so it is adopted as the answer.
async fn subscription(shared: &Arc<Shared>, lost: &Lost<'_>) -> Recovered {
    let wanted = lost.req.body.as_ref().map(|b| b.display().clone());
    let criteria = wanted.as_ref().and_then(|b| b.get("criteria")).cloned();
    let endpoint = wanted
        .as_ref()
        .and_then(|b| b.get("channel"))
        .and_then(|c| c.get("endpoint"))
        .cloned();
    let list = ApiRequest::get("/fhir/Subscription");
    let resp = exchange(
        shared,
        lost.step,
        lost.info,
        &list,
        send_policy(lost.step, true),
    )
    .await?;
    let body = resp.json();
    let entries: Vec<&Value> = body
        .get("entry")
        .and_then(Value::as_array)
        .map(|e| e.iter().filter_map(|x| x.get("resource")).collect())
        .unwrap_or_default();
    let made: Vec<&Value> = entries
        .into_iter()
        .filter(|r| {
            Some(r.get("criteria")) == Some(criteria.as_ref())
                && r.get("channel").and_then(|c| c.get("endpoint")) == endpoint.as_ref()
                && recorded(r.get("meta").and_then(|m| m.get("lastUpdated")))
                    .is_some_and(|t| t >= lost.since - SKEW)
        })
        .collect();
    match made.as_slice() {
        [] => {
            resend(
                shared,
                lost,
                format!(
                    "the subscription create got no answer ({}); ESUS lists none like it made since, so it was sent once more",
                    lost.why
                ),
            )
            .await
        }
        [one] => {
            let adopted = ApiResponse {
                status: 201,
                retry_after: None,
                body: bytes::Bytes::from(serde_json::to_vec(one).unwrap_or_default()),
                duration: resp.duration,
            };
            let id = one.get("id").and_then(Value::as_str).unwrap_or("?");
            Ok((
                adopted,
                String::new(),
                format!(
                    "the subscription create got no answer ({}); ESUS shows it was made ({id}), so it was adopted, not sent again",
                    lost.why
                ),
            ))
        }
        many => Err(StepResult::failed(format!(
            "outcome unknown: the subscription create got no answer ({}), and ESUS lists {} like it made since; nothing was sent again",
            lost.why,
            many.len()
        ))),
    }
}

/// The ids of the `field` entries made at or after `since` (by `createdAt`) that `keep`.
fn made_since(
    body: &Value,
    field: &str,
    since: Timestamp,
    keep: impl Fn(&Value) -> bool,
) -> Vec<String> {
    body.get(field)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter(|k| keep(k))
                .filter(|k| recorded(k.get("createdAt")).is_some_and(|t| t >= since - SKEW))
                .filter_map(|k| k.get("id").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn recorded(v: Option<&Value>) -> Option<Timestamp> {
    v.and_then(Value::as_str).and_then(|t| t.parse().ok())
}

/// It did not happen: the approved request goes out once more.
async fn resend(shared: &Arc<Shared>, lost: &Lost<'_>, note: String) -> Recovered {
    let policy = send_policy(lost.step, false);
    let idx = lost.item.map(|(k, _)| k);
    let body = step::body_policy(lost.info);
    match send::send(shared, &lost.step.id, idx, lost.req, policy, body).await {
        Ok(Sent::Answer(r, id)) => Ok((r, id, note)),
        Ok(Sent::Unknown(w)) => Err(StepResult::failed(format!(
            "outcome unknown twice ({}; {w}); stopped so as not to make more",
            lost.why
        ))),
        Ok(other) => Err(step::terminal(other)),
        Err(e) => Err(StepResult::failed(format!(
            "could not record the request: {e}"
        ))),
    }
}

/// It happened, and the secret of what it made (`orphan`) was in the lost answer: revoke the
/// orphan and send the approved request again — after an approval covering both requests. Unless
/// the answer did arrive and its secret is on disk (written before the answer is recorded; the
/// run died in between): a held secret that ESUS accepts for the orphan makes it ours, adopted.
async fn reissue(
    shared: &Arc<Shared>,
    ctx: &Context,
    lost: &Lost<'_>,
    orphan: &str,
    what: &str,
) -> Recovered {
    if let Some(adopted) = adopt_held(shared, ctx, lost, orphan, what).await? {
        return Err(adopted);
    }
    let revoke = ApiRequest {
        method: Method::Delete,
        ..ApiRequest::get(format!("/api-keys/{}", encode_segment(orphan)))
    };
    let message = format!(
        "{what} reached ESUS but its answer was lost: key {orphan} is ACTIVE and nobody holds its secret. Revoke {orphan} and send the request again?"
    );
    let requests = [revoke.clone(), lost.req.clone()];
    let idx = lost.item.map(|(k, _)| k);
    let (answer, approval) =
        confirmation::approve_recovery(shared, lost.step, idx, &message, &requests)
            .await
            .map_err(|e| StepResult::failed(format!("confirmation failed: {e}")))?;
    let done = reissue_approved(shared, lost, orphan, what, answer, &revoke).await;
    shared.withdraw(&lost.step.id, idx, approval);
    done
}

/// The item's (or step's) secret outputs on disk, newest file of each name first.
fn held_secrets(shared: &Shared, lost: &Lost<'_>) -> Vec<(String, std::path::PathBuf)> {
    let stem = match lost.item {
        Some((k, _)) => format!("{}[{k}]", lost.step.id),
        None => lost.step.id.clone(),
    };
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(&shared.folders.secrets) else {
        return out;
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    // `x.new_secret.2` is newer than `x.new_secret.1`, newer than `x.new_secret`.
    names.sort_by_key(|n| {
        std::cmp::Reverse(
            n.rsplit_once('.')
                .and_then(|(_, d)| d.parse::<u32>().ok())
                .unwrap_or(0),
        )
    });
    for name in &lost.info.secret_outputs {
        let base = format!("{stem}.{name}");
        if let Some(file) = names.iter().find(|n| {
            **n == base
                || n.strip_prefix(&format!("{base}."))
                    .is_some_and(|d| d.parse::<u32>().is_ok())
        }) {
            out.push((name.clone(), shared.folders.secrets.join(file)));
        }
    }
    out
}

/// Adopts `orphan` when this step's secret is on disk and ESUS accepts it for `orphan`'s client
/// id: the result is the step's answer, rebuilt from ESUS's view of the key and the held secret.
async fn adopt_held(
    shared: &Arc<Shared>,
    ctx: &Context,
    lost: &Lost<'_>,
    orphan: &str,
    what: &str,
) -> Result<Option<StepResult>, StepResult> {
    let held = held_secrets(shared, lost);
    if held.is_empty() || held.len() != lost.info.secret_outputs.len() {
        return Ok(None);
    }
    let read = ApiRequest::get(format!("/api-keys/{}", encode_segment(orphan)));
    let idx = lost.item.map(|(k, _)| k);
    let resp = exchange_item(
        shared,
        lost.step,
        lost.info,
        idx,
        &read,
        send_policy(lost.step, true),
    )
    .await?;
    let mut key = resp.json();
    let Some(client_id) = key
        .get("clientId")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return Ok(None);
    };
    if resp.status != 200 {
        return Ok(None);
    }
    for (_, path) in &held {
        let Ok(text) = std::fs::read_to_string(path) else {
            return Ok(None);
        };
        let secret = secrecy::SecretString::from(text.trim_end_matches('\n').to_string());
        // ESUS is asked, as the key itself, whether this secret is the key's.
        let probe = ApiRequest {
            auth: crate::esus::request::Auth::ApiKey(secrecy::SecretString::from(format!(
                "{client_id}:{}",
                secrecy::ExposeSecret::expose_secret(&secret)
            ))),
            ..read.clone()
        };
        let answer = exchange_item(
            shared,
            lost.step,
            lost.info,
            idx,
            &probe,
            super::send::SendPolicy {
                probe: true,
                ..send_policy(lost.step, true)
            },
        )
        .await?;
        if answer.status == 401 {
            return Ok(None);
        }
        if let Some(m) = key.as_object_mut() {
            m.insert(
                "secret".into(),
                Value::from(secrecy::ExposeSecret::expose_secret(&secret)),
            );
        }
    }
    let item = lost.item.map(|(_, v)| v);
    let (shown, secret) = match step::outputs(shared, ctx, lost.step, lost.info, &key, 200, item) {
        Ok(o) => o,
        Err(e) => return Err(StepResult::failed(e)),
    };
    // Only adopted when every secret output is exactly what is on disk.
    for (name, path) in &held {
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        let same = secret.get(name).is_some_and(|v| {
            secrecy::ExposeSecret::expose_secret(v) == on_disk.trim_end_matches('\n')
        });
        if !same {
            return Ok(None);
        }
    }
    Ok(Some(StepResult {
        status: Some(crate::event::StepStatus::Ok),
        outputs: shown,
        secret_outputs: secret,
        secret_files: held.into_iter().map(|(_, p)| p).collect(),
        reason: Some(format!(
            "{what} reached ESUS and its answer arrived, but the run stopped before recording it: the new secret was already on disk and ESUS accepts it for {orphan}, which is kept"
        )),
        ..StepResult::default()
    }))
}

async fn reissue_approved(
    shared: &Arc<Shared>,
    lost: &Lost<'_>,
    orphan: &str,
    what: &str,
    answer: Answer,
    revoke: &ApiRequest,
) -> Recovered {
    if answer != Answer::Yes {
        let base = shared
            .client
            .base()
            .as_str()
            .trim_end_matches('/')
            .to_string();
        return Err(StepResult::failed(format!(
            "{what} reached ESUS but its answer was lost: key {orphan} is ACTIVE and nobody holds its secret, and revoking it was not approved. Revoke it now: DELETE {base}/api-keys/{orphan} (e.g. `curl -X DELETE -H \"Authorization: Bearer $ESUS_TOKEN\" {base}/api-keys/{orphan}`)"
        )));
    }
    let gone = exchange_item(
        shared,
        lost.step,
        lost.info,
        lost.item.map(|(k, _)| k),
        revoke,
        send_policy(lost.step, true),
    )
    .await?;
    if !matches!(gone.status, 200 | 204 | 404) {
        return Err(StepResult::failed(format!(
            "{what} reached ESUS but its answer was lost; revoking the orphan {orphan} failed (ESUS answered {}), so nothing was sent again. Revoke it by hand: DELETE /api-keys/{orphan}",
            gone.status
        )));
    }
    resend(
        shared,
        lost,
        format!(
            "{what} reached ESUS but its answer (and the new secret) was lost: the orphan {orphan} was revoked and the request sent again"
        ),
    )
    .await
}
