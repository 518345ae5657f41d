//! The exact claims that settle a lost answer, one per kind of write (see
//! [`crate::plan::claim`] for how a write is made to carry its claim):
//!
//! - a key create: a key named exactly `NAME.esus-ir-<tag>` is this write's; so is a key whose
//!   secret this incident holds (it was kept before the answer was recorded) and ESUS accepts;
//! - a rotate: the old key's `supersededBy`, compared with what it was before the rotate — never
//!   a creation time, never a name;
//! - a Subscription: one whose `reason` carries the tag.
//!
//! A created key is renamed to its own name once its secret is kept ([`settle_claim`]); the rename
//! is recorded as a follow-up of the create's approval.

// A step that cannot go on ends with its `StepResult`: it is the error, built once per step.
#![allow(clippy::result_large_err)]
use std::path::PathBuf;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::outcome::{self, StepResult, exchange_item, send_policy};
use super::recover::{Lost, Recovered, reissue, resend, unknown};
use super::shared::Shared;
use crate::esus::client::ApiResponse;
use crate::esus::request::{ApiRequest, Auth, encode_segment};
use crate::event::{Covered, Event, StepStatus};
use crate::plan::claim;
use crate::plan::context::Context;

/// A key create whose answer was lost: the keys carrying its exact claim name are its own.
pub(super) async fn created_key(shared: &Arc<Shared>, ctx: &Context, lost: &Lost<'_>) -> Recovered {
    let claimed_name = body_text(lost.req, "name").filter(|n| claim::original(n).is_some());
    let Some(claimed_name) = claimed_name else {
        let saw = "the create carries no claim name ESUS could be asked about";
        return unknown(shared, lost, saw).await;
    };
    let what = format!("the create of `{claimed_name}`");
    let mut list = ApiRequest::get("/api-keys");
    list.query.push(("name".into(), claimed_name.clone()));
    let resp = read(shared, lost, &list).await?;
    if resp.status != 200 {
        return Err(StepResult::failed(format!(
            "outcome unknown: {what} got no answer ({}), and the keys could not be listed (ESUS answered {}); nothing was sent again",
            lost.why, resp.status
        )));
    }
    let ours = claimed_ids(&resp.json(), &claimed_name);
    let mut candidates = ours.clone();
    candidates.extend(lost.known.iter().filter(|k| !ours.contains(k)).cloned());
    if let Some(adopted) = adopt_held(shared, ctx, lost, &candidates, &what).await? {
        return Err(adopted);
    }
    if ours.is_empty() {
        let note = format!(
            "{what} got no answer ({}); ESUS lists no key of that exact claim name, so it had not happened and was sent once more",
            lost.why
        );
        return resend(shared, lost, note).await;
    }
    reissue(shared, lost, &ours, &what).await
}

/// The keys of a listing that carry exactly the claim name and are not inactive. ESUS may ignore
/// the `name` filter: the answer is filtered here, by the exact claim — a key whose name merely
/// starts like it (its original name, someone else's) is never one of ours.
fn claimed_ids(listing: &Value, claimed_name: &str) -> Vec<String> {
    listing
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|k| k.get("name").and_then(Value::as_str) == Some(claimed_name))
        .filter(|k| k.get("active").and_then(Value::as_bool) != Some(false))
        .filter_map(|k| k.get("id").and_then(Value::as_str).map(str::to_string))
        .collect()
}

/// A rotate whose answer was lost: the old key's `supersededBy`, against what it was before.
pub(super) async fn rotated(shared: &Arc<Shared>, ctx: &Context, lost: &Lost<'_>) -> Recovered {
    let key_path = lost.req.path.trim_end_matches("/rotate").to_string();
    let key_id = key_path.rsplit('/').next().unwrap_or_default().to_string();
    let what = format!("the rotate of {key_id}");
    let resp = read(shared, lost, &ApiRequest::get(key_path.clone())).await?;
    if matches!(resp.status, 404 | 410) {
        let saw = format!(
            "key {key_id} is gone (GET {key_path} → {}): its supersededBy, the only thing that tells whether it was rotated, cannot be read",
            resp.status
        );
        return unknown(shared, lost, &saw).await;
    }
    if resp.status != 200 {
        return Err(StepResult::failed(format!(
            "outcome unknown: {what} got no answer ({}), and the key could not be read (ESUS answered {}); nothing was sent again",
            lost.why, resp.status
        )));
    }
    let now = resp
        .json()
        .get("supersededBy")
        .and_then(Value::as_str)
        .map(str::to_string);
    match (now, &lost.before) {
        (None, _) => {
            let note = format!(
                "{what} got no answer ({}); ESUS shows key {key_id} has no successor, so it had not happened and was sent once more",
                lost.why
            );
            resend(shared, lost, note).await
        }
        (Some(x), Some(before)) if before.as_deref() == Some(x.as_str()) => {
            let note = format!(
                "{what} got no answer ({}); key {key_id}'s successor is still {x}, as before the rotate, so it had not happened and was sent once more",
                lost.why
            );
            resend(shared, lost, note).await
        }
        (Some(x), Some(_)) => {
            let candidates = [x.clone()];
            if let Some(adopted) = adopt_held(shared, ctx, lost, &candidates, &what).await? {
                return Err(adopted);
            }
            reissue(shared, lost, &candidates, &what).await
        }
        (Some(x), None) => {
            // Without what it named before, only possession proves it: a held secret ESUS
            // accepts for the successor makes it this rotate's.
            let candidates = [x.clone()];
            if let Some(adopted) = adopt_held(shared, ctx, lost, &candidates, &what).await? {
                return Err(adopted);
            }
            let saw = format!(
                "key {key_id} now names {x} as its successor, but what it named before this rotate was not recorded, so whether {x} is this rotate's cannot be told"
            );
            unknown(shared, lost, &saw).await
        }
    }
}

/// A Subscription create whose answer was lost: one whose `reason` carries the claim is it; it
/// holds no secret of ours, so it is adopted as the answer.
pub(super) async fn subscription(shared: &Arc<Shared>, lost: &Lost<'_>) -> Recovered {
    let Some(reason) = body_text(lost.req, "reason") else {
        return unknown(shared, lost, "the Subscription carries no claim").await;
    };
    let resp = read(shared, lost, &ApiRequest::get("/fhir/Subscription")).await?;
    if resp.status != 200 {
        return Err(StepResult::failed(format!(
            "outcome unknown: the Subscription create got no answer ({}), and the Subscriptions could not be listed (ESUS answered {}); nothing was sent again",
            lost.why, resp.status
        )));
    }
    let body = resp.json();
    let listing = claimed_subscriptions(&body, &reason);
    let made = listing.made;
    if made.is_empty() && listing.paged {
        return Err(StepResult::failed(format!(
            "outcome unknown: the Subscription create got no answer ({}), and ESUS's listing has more pages than the one read, so no claim on it proves it was not made; nothing was sent again",
            lost.why
        )));
    }
    match made.as_slice() {
        [] => {
            let note = format!(
                "the Subscription create got no answer ({}); ESUS lists none carrying its claim, so it had not happened and was sent once more",
                lost.why
            );
            resend(shared, lost, note).await
        }
        [one] => {
            let adopted = ApiResponse {
                status: 201,
                retry_after: None,
                body: bytes::Bytes::from(serde_json::to_vec(one).unwrap_or_default()),
                duration: resp.duration,
            };
            let id = one.get("id").and_then(Value::as_str).unwrap_or("?");
            let note = format!(
                "the Subscription create got no answer ({}); ESUS shows it was made ({id}, carrying this incident's claim), so it was adopted, not sent again",
                lost.why
            );
            Ok((adopted, String::new(), note))
        }
        many => Err(StepResult::failed(format!(
            "outcome unknown: the Subscription create got no answer ({}), and ESUS lists {} carrying its claim; nothing was sent again",
            lost.why,
            many.len()
        ))),
    }
}

/// What one page of a Subscription search says about a claim.
struct SubscriptionListing<'a> {
    /// The resources whose `reason` is exactly the claim.
    made: Vec<&'a Value>,
    /// The Bundle names a next page: an absence on this page proves nothing.
    paged: bool,
}

fn claimed_subscriptions<'a>(bundle: &'a Value, reason: &str) -> SubscriptionListing<'a> {
    let made = bundle
        .get("entry")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("resource"))
        .filter(|r| r.get("reason").and_then(Value::as_str) == Some(reason))
        .collect();
    let paged = bundle
        .get("link")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|l| l.get("relation").and_then(Value::as_str) == Some("next"));
    SubscriptionListing { made, paged }
}

/// Before a rotate: the old key's `supersededBy` (`Some(None)`: none), or `None` when the key
/// cannot be read — the comparison that later settles a lost answer.
pub(super) async fn read_before(
    shared: &Arc<Shared>,
    i: usize,
    item: Option<usize>,
    rotate: &ApiRequest,
) -> Result<Option<Option<String>>, StepResult> {
    let step = &shared.valid.runbook.steps[i];
    let info = &shared.valid.steps[i];
    let key_path = rotate.path.trim_end_matches("/rotate").to_string();
    let key = ApiRequest::get(key_path.clone());
    let resp = exchange_item(shared, step, info, item, &key, send_policy(step, true)).await?;
    if resp.status != 200 {
        return Ok(None);
    }
    let before = resp
        .json()
        .get("supersededBy")
        .and_then(Value::as_str)
        .map(str::to_string);
    // Signed before the rotate goes out: a resume settles a lost answer against it.
    shared
        .emit(&Event::RotateBefore {
            step: step.id.clone(),
            item,
            key: key_path.rsplit('/').next().unwrap_or_default().to_string(),
            superseded_by: before.clone(),
        })
        .map_err(|e| {
            StepResult::failed(format!("could not record the key before its rotate: {e}"))
        })?;
    Ok(Some(before))
}

/// A claimed create answered: its key gets its own name back (`PUT /api-keys/{id} {name}`), as a
/// follow-up of the create's approval. The outputs are those of the key under its own name. A
/// rename that fails leaves the key working under its claim name (its secret is kept); the step
/// fails, and a resume renames it.
pub(super) async fn settle_claim(
    shared: &Arc<Shared>,
    ctx: &Context,
    i: usize,
    item: Option<(usize, &Value)>,
    create: &ApiRequest,
    resp: &ApiResponse,
    result: &mut StepResult,
) {
    let mut body = resp.json();
    let (Some(id), Some(claimed)) = (
        body.get("id").and_then(Value::as_str).map(str::to_string),
        body_text(create, "name"),
    ) else {
        return;
    };
    let Some(original) = claim::original(&claimed).map(str::to_string) else {
        return;
    };
    match rename(shared, i, item.map(|(k, _)| k), &id, &original).await {
        Ok(()) => {
            if let Some(m) = body.as_object_mut() {
                m.insert("name".into(), Value::from(original));
            }
            let value = item.map(|(_, v)| v);
            result.outputs = outcome::outputs(shared, ctx, i, &body, resp.status, value).shown;
        }
        Err(why) => {
            result.status = Some(StepStatus::Failed);
            result.reason = Some(format!(
                "key {id} was created and its secret kept, under this incident's claim name `{claimed}`; renaming it to `{original}` failed ({why}). A resume renames it"
            ));
        }
    }
}

/// `PUT /api-keys/{id} {"name": original}` under a follow-up approval of the step's own.
async fn rename(
    shared: &Arc<Shared>,
    i: usize,
    item: Option<usize>,
    id: &str,
    original: &str,
) -> Result<(), String> {
    let step = &shared.valid.runbook.steps[i];
    let info = &shared.valid.steps[i];
    let req = crate::plan::rename_request(id, original);
    let view = shared.planner.view(&req);
    if let Some(gate) = &shared.policy.plan {
        gate.allows(&step.id, &view)?;
    }
    let digest = crate::transcript::request_digest(&view);
    // One request of a step is approved by its digest; an item's, by the batch digest over it
    // (docs/transcript-format.md).
    let approved_digest = match item {
        None => digest.clone(),
        Some(_) => {
            let mut batch = crate::plan::digest::BatchDigest::default();
            batch.push(&view);
            batch.finish()
        }
    };
    let Some(follows) = shared.grants(&step.id, item).last().copied() else {
        return Err("the create has no approval to follow".into());
    };
    let approval = shared.next_approval();
    shared
        .emit(&Event::FollowUp {
            step: step.id.clone(),
            approval,
            follows,
            prompt: format!("rename the key this step created to `{original}`"),
            request_sha256: approved_digest,
            covers: vec![Covered {
                item,
                request_sha256: digest,
            }],
        })
        .map_err(|e| format!("could not record the rename's approval: {e}"))?;
    shared.grant(&step.id, item, approval);
    let sent = exchange_item(shared, step, info, item, &req, send_policy(step, true)).await;
    shared.withdraw(&step.id, item, approval);
    match sent {
        Ok(r) if r.status == 200 => Ok(()),
        Ok(r) => Err(format!("ESUS answered {}", r.status)),
        Err(r) => Err(r.reason.unwrap_or_else(|| "no answer".into())),
    }
}

/// A read made while settling a lost answer, recorded under the step (and item).
async fn read(
    shared: &Arc<Shared>,
    lost: &Lost<'_>,
    req: &ApiRequest,
) -> Result<ApiResponse, StepResult> {
    let step = &shared.valid.runbook.steps[lost.index];
    let info = &shared.valid.steps[lost.index];
    exchange_item(shared, step, info, lost.idx(), req, send_policy(step, true)).await
}

/// A text field of the request's body as shown (never a secret: claims are not secret).
fn body_text(req: &ApiRequest, field: &str) -> Option<String> {
    req.body
        .as_ref()
        .and_then(|b| b.display().get(field))
        .and_then(Value::as_str)
        .filter(|t| *t != crate::event::REDACTED)
        .map(str::to_string)
}

/// The step's (item's) secret outputs on disk: every file of each name, newest first.
fn held_secrets(shared: &Shared, lost: &Lost<'_>) -> Vec<(String, Vec<PathBuf>)> {
    let id = lost.step(shared);
    let stem = match lost.idx() {
        Some(k) => format!("{id}[{k}]"),
        None => id,
    };
    let Ok(entries) = std::fs::read_dir(&shared.folders.secrets) else {
        return Vec::new();
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
    let info = &shared.valid.steps[lost.index];
    info.secret_outputs
        .iter()
        .filter_map(|name| {
            let base = format!("{stem}.{name}");
            let files: Vec<PathBuf> = names
                .iter()
                .filter(|n| {
                    **n == base
                        || n.strip_prefix(&format!("{base}."))
                            .is_some_and(|d| d.parse::<u32>().is_ok())
                })
                .map(|n| shared.folders.secrets.join(n))
                .collect();
            (!files.is_empty()).then(|| (name.clone(), files))
        })
        .collect()
}

/// Adopts the first candidate whose secret this incident holds on disk and ESUS accepts (asked
/// as the key itself, with its app's id): its answer arrived and its secret was kept before the
/// run stopped. The step's result is rebuilt from ESUS's view of the key and the held secret,
/// and a key still under its claim name gets its own name back.
async fn adopt_held(
    shared: &Arc<Shared>,
    ctx: &Context,
    lost: &Lost<'_>,
    candidates: &[String],
    what: &str,
) -> Result<Option<StepResult>, StepResult> {
    let held = held_secrets(shared, lost);
    let info = &shared.valid.steps[lost.index];
    if candidates.is_empty() || held.is_empty() || held.len() != info.secret_outputs.len() {
        return Ok(None);
    }
    for id in candidates {
        let read_key = ApiRequest::get(format!("/api-keys/{}", encode_segment(id)));
        let resp = read(shared, lost, &read_key).await?;
        if resp.status != 200 {
            continue;
        }
        let key = resp.json();
        if let Some(found) = held_secret_of(shared, lost, &read_key, &key, &held).await? {
            return Ok(Some(adopted(shared, ctx, lost, id, key, found, what).await));
        }
    }
    Ok(None)
}

/// The held secret files (one per secret output) ESUS accepts for `key`, if any.
async fn held_secret_of(
    shared: &Arc<Shared>,
    lost: &Lost<'_>,
    read_key: &ApiRequest,
    key: &Value,
    held: &[(String, Vec<PathBuf>)],
) -> Result<Option<Vec<(String, PathBuf, SecretString)>>, StepResult> {
    let Some(client_id) = key.get("clientId").and_then(Value::as_str) else {
        return Ok(None);
    };
    let app = key.get("appId").and_then(Value::as_str).map(str::to_string);
    let step = &shared.valid.runbook.steps[lost.index];
    let info = &shared.valid.steps[lost.index];
    let mut found = Vec::new();
    for (name, files) in held {
        let mut accepted = None;
        for path in files {
            let Ok(text) = std::fs::read_to_string(path) else {
                continue;
            };
            let secret = SecretString::from(text.trim_end_matches('\n').to_string());
            let probe = ApiRequest {
                auth: Auth::ApiKey {
                    key: SecretString::from(format!("{client_id}:{}", secret.expose_secret())),
                    app: app.clone(),
                },
                ..read_key.clone()
            };
            let policy = super::send::SendPolicy {
                probe: true,
                ..send_policy(step, true)
            };
            let answer = exchange_item(shared, step, info, lost.idx(), &probe, policy).await?;
            // 403: ESUS knew the key and refused only what it asked (a key may not read keys).
            if (200..300).contains(&answer.status) || answer.status == 403 {
                accepted = Some((name.clone(), path.clone(), secret));
                break;
            }
        }
        match accepted {
            Some(a) => found.push(a),
            None => return Ok(None),
        }
    }
    Ok(Some(found))
}

async fn adopted(
    shared: &Arc<Shared>,
    ctx: &Context,
    lost: &Lost<'_>,
    id: &str,
    mut key: Value,
    found: Vec<(String, PathBuf, SecretString)>,
    what: &str,
) -> StepResult {
    let i = lost.index;
    let claimed = key.get("name").and_then(Value::as_str).map(str::to_string);
    let mut renamed = String::new();
    if let Some(original) = claimed
        .as_deref()
        .and_then(claim::original)
        .map(str::to_string)
    {
        if let Err(why) = rename(shared, i, lost.idx(), id, &original).await {
            return StepResult::failed(format!(
                "{what}: key {id} is this incident's and its secret is held, but renaming it to `{original}` failed ({why}); a resume renames it"
            ));
        }
        renamed = format!(", renamed to `{original}`");
        if let Some(m) = key.as_object_mut() {
            m.insert("name".into(), Value::from(original));
        }
    }
    let mut secrets = std::collections::HashMap::new();
    let mut files = Vec::new();
    for (name, path, secret) in found {
        // The answer that was lost carried the secret where the action returns it (`secret`):
        // the outputs are computed over ESUS's view of the key with the held secret there.
        let field = shared.valid.steps[i].action.secret_fields.first();
        if let (Some(field), Some(m)) = (field, key.as_object_mut()) {
            m.insert((*field).to_string(), Value::from(secret.expose_secret()));
        }
        secrets.insert(name, secret);
        files.push(path);
    }
    let item = lost.item.map(|(_, v)| v);
    let out = outcome::outputs(shared, ctx, i, &key, 200, item);
    // The secrets are the held ones (on disk already), never the ones re-derived from the key.
    let mut r = StepResult {
        outputs: out.shown,
        secret_outputs: secrets,
        secret_files: files,
        reason: Some(format!(
            "{what} reached ESUS and its answer arrived, but the run stopped before recording it: the new secret was already on disk and ESUS accepts it for {id}, which is kept{renamed}"
        )),
        ..StepResult::default()
    };
    if let Some(e) = out.error {
        r.status = Some(StepStatus::Failed);
        r.reason = Some(e);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_key_of_exactly_the_claim_name_and_not_inactive_is_ours() {
        let claimed = "ehr.esus-ir-0123456789";
        let listing = serde_json::json!({"items": [
            {"id": "k-theirs", "name": "ehr", "active": true},
            {"id": "k-prefix", "name": "ehr.esus-ir-01234", "active": true},
            {"id": "k-longer", "name": "ehr.esus-ir-0123456789x", "active": true},
            {"id": "k-ours", "name": claimed, "active": true},
            {"id": "k-ours-no-flag", "name": claimed},
            {"id": "k-revoked", "name": claimed, "active": false},
        ], "total": 6});
        assert_eq!(claimed_ids(&listing, claimed), ["k-ours", "k-ours-no-flag"]);
        assert!(claimed_ids(&serde_json::json!({}), claimed).is_empty());
    }

    #[test]
    fn a_subscription_is_ours_only_by_its_exact_reason_and_a_next_page_leaves_absence_unproven() {
        let tag = "alert esus-ir-0123456789";
        let one_page = serde_json::json!({"resourceType": "Bundle", "entry": [
            {"resource": {"id": "s-theirs", "reason": "alert"}},
            {"resource": {"id": "s-longer", "reason": "alert esus-ir-0123456789 x"}},
            {"resource": {"id": "s-ours", "reason": tag}},
        ], "link": [{"relation": "self", "url": "/fhir/Subscription"}]});
        let got = claimed_subscriptions(&one_page, tag);
        let ids: Vec<_> = got.made.iter().filter_map(|r| r["id"].as_str()).collect();
        assert_eq!(ids, ["s-ours"]);
        assert!(!got.paged);
        let paged = serde_json::json!({"resourceType": "Bundle", "entry": [],
            "link": [{"relation": "next", "url": "/fhir/Subscription?page=2"}]});
        let got = claimed_subscriptions(&paged, tag);
        assert!(got.made.is_empty());
        assert!(
            got.paged,
            "a next link means this page is not the whole listing"
        );
    }
}
