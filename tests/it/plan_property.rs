//! One planner: over generated runbooks, what a live run sends is what its dry-run planned.
//! Every request that crossed the wire (through a recording proxy, bodies included) matches a
//! request of the plan — exactly, or its template with the placeholders filled — and every exact
//! request of a step that ran was sent.

use proptest::prelude::*;
use serde_json::Value;

use crate::contract_proxy::RecordingProxy;
use crate::run_support::{Env, output, text};

/// One step of a generated runbook.
#[derive(Debug, Clone)]
enum Gen {
    /// `api_keys.list`, optionally `active: true`.
    List(bool),
    /// `api_keys.get` of the scenario's key.
    GetSeed,
    /// `api_keys.create` (its rename follows), then reads of and changes to what it made.
    Create {
        rate: u16,
        get: bool,
        update: bool,
        delete: bool,
    },
    /// `roles.list`, only when the input flag is true.
    RolesWhen,
    /// `api_keys.get` over a literal list.
    Foreach(usize),
}

fn gen_step() -> impl Strategy<Value = Gen> {
    prop_oneof![
        any::<bool>().prop_map(Gen::List),
        Just(Gen::GetSeed),
        (10u16..500, any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
            |(rate, get, update, delete)| Gen::Create {
                rate,
                get,
                update,
                delete
            }
        ),
        Just(Gen::RolesWhen),
        (1usize..4).prop_map(Gen::Foreach),
    ]
}

/// The runbook text of the generated steps.
fn runbook(steps: &[Gen]) -> String {
    let mut out = String::from(
        "version: 1\nname: generated\ninputs:\n  flag: {type: boolean, default: false}\nsteps:\n",
    );
    for (n, g) in steps.iter().enumerate() {
        let id = format!("s{n}");
        let step = match g {
            Gen::List(active) => format!(
                "  - id: {id}\n    name: List\n    action: api_keys.list\n{}",
                if *active {
                    "    with: {active: true}\n"
                } else {
                    ""
                }
            ),
            Gen::GetSeed => format!(
                "  - id: {id}\n    name: Read\n    action: api_keys.get\n    with: {{id: k-1001}}\n    outputs: {{name: response.name}}\n"
            ),
            Gen::Create {
                rate,
                get,
                update,
                delete,
            } => {
                let mut s = format!(
                    "  - id: {id}\n    name: Create\n    action: api_keys.create\n    with: {{name: prop-{n}, scopes: [Patient.read], rate_limit: {rate}}}\n    outputs:\n      id: response.id\n      secret: {{value: response.secret, secret: true}}\n"
                );
                let made = format!("\"{{{{ steps.{id}.outputs.id }}}}\"");
                if *get {
                    s += &format!(
                        "  - id: {id}_get\n    name: Read it\n    needs: [{id}]\n    action: api_keys.get\n    with: {{id: {made}}}\n"
                    );
                }
                if *update {
                    s += &format!(
                        "  - id: {id}_upd\n    name: Change it\n    needs: [{id}]\n    action: api_keys.update\n    with: {{id: {made}, rate_limit: {}}}\n",
                        rate + 1
                    );
                }
                if *delete {
                    // After every step that reads or changes the key: a delete racing them
                    // would make their 404 the runbook's own doing.
                    let mut before = vec![id.clone()];
                    if *get {
                        before.push(format!("{id}_get"));
                    }
                    if *update {
                        before.push(format!("{id}_upd"));
                    }
                    let after = before.join(", ");
                    s += &format!(
                        "  - id: {id}_del\n    name: Delete it\n    needs: [{after}]\n    action: api_keys.delete\n    with: {{id: {made}}}\n"
                    );
                }
                s
            }
            Gen::RolesWhen => format!(
                "  - id: {id}\n    name: Roles\n    when: inputs.flag\n    action: roles.list\n"
            ),
            Gen::Foreach(k) => {
                let items: Vec<String> = (0..*k).map(|i| format!("'k-{}'", 1001 + i)).collect();
                format!(
                    "  - id: {id}\n    name: Read several\n    foreach: \"[{}]\"\n    action: api_keys.get\n    with: {{id: \"{{{{ item }}}}\"}}\n    expect: [404]\n",
                    items.join(", ")
                )
            }
        };
        out.push_str(&step);
    }
    out
}

/// A planned request: method, URL and body, where `<…>` (and a claim tag, which the incident
/// chooses) stand for any value.
#[derive(Debug)]
struct Planned {
    method: String,
    url: regex::Regex,
    body: Option<Value>,
    exact: bool,
    step: String,
}

fn pattern(text: &str) -> regex::Regex {
    let mut re = String::from("^");
    let claim = regex::Regex::new(r"\.esus-ir-[0-9a-f]{10}").expect("re");
    let text = claim.replace_all(text, ".esus-ir-<tag>");
    for (n, part) in text.split('<').enumerate() {
        if n == 0 {
            re.push_str(&regex::escape(part));
            continue;
        }
        let rest = part.split_once('>').map_or(part, |(_, r)| r);
        re.push_str(".+?");
        re.push_str(&regex::escape(rest));
    }
    re.push('$');
    regex::Regex::new(&re).expect("pattern")
}

fn body_matches(planned: &Value, sent: &Value) -> bool {
    match (planned, sent) {
        (Value::String(p), s) if p.contains('<') || p.contains(".esus-ir-") => {
            let s = s.as_str().map_or_else(|| s.to_string(), str::to_string);
            pattern(p).is_match(&s)
        }
        (Value::Object(p), Value::Object(s)) => {
            p.len() == s.len()
                && p.iter()
                    .all(|(k, v)| s.get(k).is_some_and(|x| body_matches(v, x)))
        }
        (Value::Array(p), Value::Array(s)) => {
            p.len() == s.len() && p.iter().zip(s).all(|(a, b)| body_matches(a, b))
        }
        (p, s) => p == s,
    }
}

fn planned(plan: &Value) -> Vec<Planned> {
    let mut out = Vec::new();
    for step in plan["steps"].as_array().into_iter().flatten() {
        let id = step["id"].as_str().unwrap_or_default().to_string();
        for field in ["requests", "follow_ups"] {
            for r in step[field].as_array().into_iter().flatten() {
                let url = r["url"].as_str().unwrap_or_default();
                out.push(Planned {
                    method: r["method"].as_str().unwrap_or_default().to_string(),
                    url: pattern(url),
                    body: Some(r["body"].clone()).filter(|b| !b.is_null()),
                    exact: field == "requests"
                        && !url.contains('<')
                        && !r["body"].to_string().contains('<'),
                    step: id.clone(),
                });
            }
        }
    }
    out
}

fn check(steps: Vec<Gen>, flag: bool) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let env = Env::start().await;
        let proxy = RecordingProxy::start(&env.sim.base_url()).await;
        let rb = env.runbook("generated.yaml", &runbook(&steps));
        let cmd = |dir: &str| {
            let mut cmd = env.bare_cmd();
            let token = secrecy::ExposeSecret::expose_secret(&env.sim.ready().admin_token);
            cmd.env("ESUS_TOKEN", token)
                .args(["run", &rb, "--base-url", &proxy.base_url()])
                .arg("--run-dir")
                .arg(env.dir.path().join(dir))
                .args(["--yes", "--non-interactive", "--output", "json"])
                .args(["--input", &format!("flag={flag}")]);
            cmd
        };
        let mut dry = cmd("dry");
        dry.args(["--dry-run", "--offline"]);
        let out = output(dry).await;
        prop_assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        prop_assert!(proxy.exchanges().is_empty(), "the dry-run sent nothing");
        let plan: Value = serde_json::from_slice(&out.stdout).expect("plan json");
        let planned = planned(&plan);

        let out = output(cmd("live")).await;
        prop_assert_eq!(
            out.status.code(),
            Some(0),
            "{}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).expect("result json");
        let sent: Vec<_> = proxy
            .exchanges()
            .into_iter()
            .filter(|x| x.path != "/auth/me")
            .collect();
        let base = proxy.base_url();
        let mut used = vec![false; planned.len()];
        for x in &sent {
            let mut url = format!("{base}{}", x.path);
            if !x.query.is_empty() {
                let q: Vec<String> = x.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
                url = format!("{url}?{}", q.join("&"));
            }
            let body: Option<Value> = serde_json::from_slice(&x.request_body).ok();
            let matches = |p: &Planned| {
                p.method == x.method
                    && p.url.is_match(&url)
                    && match (&p.body, &body) {
                        (Some(pb), Some(sb)) => body_matches(pb, sb),
                        (None, None) => true,
                        _ => false,
                    }
            };
            // The same request may be planned by two steps: each sent one answers one of them.
            let found = (0..planned.len())
                .find(|&i| !used[i] && matches(&planned[i]))
                .or_else(|| planned.iter().position(matches));
            prop_assert!(
                found.is_some(),
                "{} {url} {body:?} is in no request of the plan: {planned:#?}",
                x.method
            );
            if let Some(i) = found {
                used[i] = true;
            }
        }
        for (p, used) in planned.iter().zip(used) {
            let ran = report["steps"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| s["id"] == p.step.as_str() && s["status"] == "ok");
            prop_assert!(
                !(p.exact && ran) || used,
                "{p:?} was planned exactly and never sent"
            );
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn a_live_run_sends_what_its_plan_says(
        steps in prop::collection::vec(gen_step(), 1..5),
        flag in any::<bool>(),
    ) {
        check(steps, flag)?;
    }
}
