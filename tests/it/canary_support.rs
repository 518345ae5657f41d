//! The machinery of the canary proof (tests/it/canary.rs): canary values, every form a leak could
//! take (raw, base64 in both alphabets with and without padding and at every alignment, URL- and
//! JSON-escaped, hex), the haystacks of one case (stdout, stderr, every file esus-ir could have
//! written except `secrets/`, reports, `verify`, the URLs ESUS received), and the tally that the
//! suite prints and docs/security.md publishes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use regex::bytes::Regex;

use crate::run_support::files_under;

/// One secret value whose every appearance outside `secrets/` is a leak.
#[derive(Debug, Clone)]
pub(crate) struct Canary {
    /// What it is, e.g. `operator token (ESUS_TOKEN)`.
    pub(crate) what: String,
    /// The value.
    pub(crate) value: String,
    /// The random part unique to this canary (found whatever escaping kept it whole).
    core: Option<String>,
}

impl Canary {
    /// A value we know (a simulator token, a new key secret read back).
    pub(crate) fn known(what: impl Into<String>, value: impl Into<String>) -> Canary {
        Canary {
            what: what.into(),
            value: value.into(),
            core: None,
        }
    }

    /// A fresh canary shaped like a real token: URL-safe characters only.
    pub(crate) fn plain(what: &str, tag: &str) -> Canary {
        let core = uuid::Uuid::new_v4().simple().to_string();
        Canary {
            what: what.into(),
            value: format!("cnry-{tag}-{core}"),
            core: Some(core),
        }
    }

    /// A fresh canary with every character that URL-encoding or JSON-escaping changes
    /// (`/ + = & " \ % ? #`), so the escaped forms are really searched. No whitespace: a token
    /// with a space or line break is refused before anything is sent (tested on its own).
    pub(crate) fn spicy(what: &str, tag: &str) -> Canary {
        let core = uuid::Uuid::new_v4().simple().to_string();
        Canary {
            what: what.into(),
            value: format!("cnry-{tag}-{core}/+=&\"\\%?#z"),
            core: Some(core),
        }
    }

    /// The same canary with a fixed text before it (e.g. a header name).
    pub(crate) fn prefixed(mut self, prefix: &str) -> Canary {
        self.value = format!("{prefix}{}", self.value);
        self
    }

    /// Six digits (a TOTP code): searched only where not part of a longer number, word or
    /// fractional second, so a timestamp's microseconds are not taken for a leak.
    fn is_code(&self) -> bool {
        self.value.len() <= 8 && self.value.bytes().all(|b| b.is_ascii_digit())
    }
}

/// Every form of a canary that is searched, with its name.
pub(crate) fn forms(c: &Canary) -> Vec<(&'static str, String)> {
    let v = c.value.as_bytes();
    let mut out: Vec<(&'static str, String)> = vec![("raw", c.value.clone())];
    if let Some(core) = &c.core {
        out.push(("unique core", core.clone()));
    }
    let json = serde_json::to_string(&c.value).unwrap_or_default();
    out.push(("JSON-escaped", json[1..json.len() - 1].to_string()));
    let pct = percent_encoding::utf8_percent_encode(&c.value, percent_encoding::NON_ALPHANUMERIC)
        .to_string();
    out.push(("URL-encoded", pct.clone()));
    out.push(("URL-encoded (lower-case hex)", lower_percent(&pct)));
    out.push((
        "form-URL-encoded",
        url::form_urlencoded::byte_serialize(v).collect(),
    ));
    out.push(("base64", STANDARD.encode(v)));
    out.push(("base64 unpadded", STANDARD_NO_PAD.encode(v)));
    out.push(("base64url", URL_SAFE.encode(v)));
    out.push(("base64url unpadded", URL_SAFE_NO_PAD.encode(v)));
    // Inside a longer base64 text (`Basic` credentials, `clientId:secret`, a JSON blob) the value
    // starts at any byte offset and is followed by more bytes: the characters that depend on it
    // alone, at each of the three alignments (at alignment 0 the whole encoding's last character
    // also holds bits of what follows, so the forms above miss a value in the middle of a text).
    for shift in 0..3usize {
        let mut shifted = vec![0u8; shift];
        shifted.extend_from_slice(v);
        let enc = STANDARD_NO_PAD.encode(&shifted);
        let from = (8 * shift).div_ceil(6);
        let to = (8 * shifted.len()) / 6;
        if to > from + 5 {
            let part = &enc[from..to];
            out.push(("base64 at an offset", part.to_string()));
            out.push((
                "base64url at an offset",
                part.replace('+', "-").replace('/', "_"),
            ));
        }
    }
    out.push(("hex", hex::encode(v)));
    out.push(("hex upper-case", hex::encode_upper(v)));
    let mut seen = std::collections::HashSet::new();
    out.retain(|(_, s)| !s.is_empty() && seen.insert(s.clone()));
    out
}

fn lower_percent(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = 0;
    for ch in s.chars() {
        if rest > 0 {
            out.push(ch.to_ascii_lowercase());
            rest -= 1;
        } else {
            out.push(ch);
            if ch == '%' {
                rest = 2;
            }
        }
    }
    out
}

/// Shapes of secrets the simulator mints that a test cannot read back (the fresh pair of a
/// refresh, a login's tokens, an `mfaToken`, a key secret whose answer was lost): none may appear
/// anywhere.
const SHAPES: &[(&str, &str)] = &[
    (
        "a JWT access token",
        r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}",
    ),
    ("a refresh token (rt_…)", r"rt_[A-Za-z0-9_-]{40,}"),
    ("an mfaToken (mfa_…)", r"mfa_[A-Za-z0-9_-]{30,}"),
    (
        "a minted key secret (sk_live_…)",
        r"sk_live_[A-Za-z0-9_-]{40,}",
    ),
];

/// The compiled search for one case's canaries.
pub(crate) struct Search {
    all: Regex,
    names: HashMap<Vec<u8>, (usize, &'static str)>,
    codes: Vec<(Regex, usize)>,
    shapes: Vec<(Regex, &'static str)>,
    canaries: Vec<Canary>,
    /// Forms searched, all canaries together.
    pub(crate) needles: usize,
}

impl Search {
    pub(crate) fn new(canaries: &[Canary]) -> Search {
        let mut names = HashMap::new();
        let mut alts: Vec<String> = Vec::new();
        let mut codes = Vec::new();
        let mut needles = 0;
        for (i, c) in canaries.iter().enumerate() {
            for (form, text) in forms(c) {
                needles += 1;
                if c.is_code() && text == c.value {
                    let re = Regex::new(&format!(
                        r"(?-u)(?:^|[^0-9A-Za-z.])({})(?:[^0-9A-Za-z]|$)",
                        regex::escape(&text)
                    ))
                    .expect("code regex");
                    codes.push((re, i));
                    continue;
                }
                if names.insert(text.as_bytes().to_vec(), (i, form)).is_none() {
                    alts.push(text);
                }
            }
        }
        // Longest first: of two forms starting at the same place, report the longer one.
        alts.sort_by_key(|a| std::cmp::Reverse(a.len()));
        let pattern = if alts.is_empty() {
            "(?-u)[^\\x00-\\xff]".to_string()
        } else {
            format!(
                "(?-u){}",
                alts.iter()
                    .map(|a| regex::escape(a))
                    .collect::<Vec<_>>()
                    .join("|")
            )
        };
        let all = regex::bytes::RegexBuilder::new(&pattern)
            .size_limit(1 << 26)
            .build()
            .expect("needle regex");
        let shapes = SHAPES
            .iter()
            .map(|(what, re)| (Regex::new(re).expect("shape"), *what))
            .collect();
        Search {
            all,
            names,
            codes,
            shapes,
            canaries: canaries.to_vec(),
            needles,
        }
    }

    /// Every hit in one haystack, described.
    pub(crate) fn hits(&self, where_: &str, hay: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        for m in self.all.find_iter(hay) {
            let (i, form) = self.names.get(m.as_bytes()).copied().unwrap_or((0, "?"));
            out.push(format!(
                "{} ({form}) in {where_} at byte {}: …{}…",
                self.canaries[i].what,
                m.start(),
                context(hay, m.start(), m.end())
            ));
        }
        for (re, i) in &self.codes {
            for c in re.captures_iter(hay) {
                let m = c.get(1).expect("group");
                out.push(format!(
                    "{} (raw) in {where_} at byte {}: …{}…",
                    self.canaries[*i].what,
                    m.start(),
                    context(hay, m.start(), m.end())
                ));
            }
        }
        for (re, what) in &self.shapes {
            for m in re.find_iter(hay) {
                out.push(format!(
                    "something shaped like {what} in {where_} at byte {}: …{}…",
                    m.start(),
                    context(hay, m.start(), m.end())
                ));
            }
        }
        out
    }
}

fn context(hay: &[u8], start: usize, end: usize) -> String {
    let from = start.saturating_sub(60);
    let to = (end + 60).min(hay.len());
    String::from_utf8_lossy(&hay[from..to]).replace('\n', "⏎")
}

/// What one case produced, to be searched.
#[derive(Default)]
pub(crate) struct Haystacks {
    /// (name, bytes) of outputs that are not files.
    pub(crate) streams: Vec<(String, Vec<u8>)>,
    /// Run folders: their `secrets/` is checked (modes) and read for new secrets, not searched.
    pub(crate) run_dirs: Vec<PathBuf>,
    /// Files the test wrote itself (token files, secret files, scenario): not searched.
    pub(crate) inputs: Vec<PathBuf>,
}

impl Haystacks {
    pub(crate) fn output(&mut self, what: &str, out: &Output) {
        self.streams
            .push((format!("{what} stdout"), out.stdout.clone()));
        self.streams
            .push((format!("{what} stderr"), out.stderr.clone()));
    }
}

/// Totals over every case of a test.
#[derive(Default, Debug)]
pub(crate) struct Tally {
    /// esus-ir runs (run, drill) whose outputs were searched.
    pub(crate) runs: usize,
    /// (mode × runbook × canary) cases.
    pub(crate) cases: usize,
    /// (case × form) searches.
    pub(crate) forms: usize,
    /// Files searched.
    pub(crate) files: usize,
    /// Other outputs searched (stdout, stderr, ESUS's request log).
    pub(crate) streams: usize,
    /// Bytes searched.
    pub(crate) bytes: usize,
    /// Other esus-ir invocations on the runs' transcripts (report, verify).
    pub(crate) post: usize,
    /// Secret files found with mode 0600 (and their folders 0700).
    pub(crate) secret_files: usize,
    /// Leaks, each described.
    pub(crate) findings: Vec<String>,
    /// Cases that did not take the path they were meant to (exit code, prompt), each described.
    pub(crate) problems: Vec<String>,
    /// (mode, exit code) of each run.
    pub(crate) exits: Vec<(String, i32)>,
}

impl Tally {
    pub(crate) fn add(&mut self, other: Tally) {
        self.runs += other.runs;
        self.cases += other.cases;
        self.forms += other.forms;
        self.files += other.files;
        self.streams += other.streams;
        self.bytes += other.bytes;
        self.post += other.post;
        self.secret_files += other.secret_files;
        self.findings.extend(other.findings);
        self.problems.extend(other.problems);
        self.exits.extend(other.exits);
    }

    /// Exit codes by mode, e.g. `Live: 0×6`.
    pub(crate) fn exits_by_mode(&self) -> String {
        let mut by: std::collections::BTreeMap<&str, std::collections::BTreeMap<i32, usize>> =
            std::collections::BTreeMap::new();
        for (mode, code) in &self.exits {
            *by.entry(mode.as_str())
                .or_default()
                .entry(*code)
                .or_default() += 1;
        }
        by.iter()
            .map(|(mode, codes)| {
                let codes: Vec<String> = codes.iter().map(|(c, n)| format!("{c}×{n}")).collect();
                format!("{mode}: exit {}", codes.join(", "))
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub(crate) fn summary(&self, what: &str) -> String {
        format!(
            "{what}: {} esus-ir runs (+{} report/verify invocations), {} (mode × runbook × canary) cases, {} (case × encoding) searches, {} files + {} streams = {} bytes searched, {} secret files checked 0600; {} leaks",
            self.runs,
            self.post,
            self.cases,
            self.forms,
            self.files,
            self.streams,
            self.bytes,
            self.secret_files,
            self.findings.len()
        )
    }
}

/// The esus-ir binary with a clean environment: nothing of the developer's ESUS_*, RUST_LOG or
/// proxy settings; HOME, config and working directory in `home`.
pub(crate) fn esus_ir(home: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("esus-ir"));
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        let upper = k.to_ascii_uppercase();
        if upper.starts_with("ESUS")
            || upper == "RUST_LOG"
            || upper.ends_with("_PROXY")
            || upper == "SSLKEYLOGFILE"
        {
            cmd.env_remove(&k);
        }
    }
    cmd.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("NO_COLOR", "1")
        .current_dir(home);
    cmd
}

/// Runs a command to its end on a blocking thread (bounded: killed after two minutes).
pub(crate) async fn capture(cmd: std::process::Command) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut cmd = assert_cmd::Command::from_std(cmd);
        cmd.timeout(Duration::from_secs(120));
        cmd.output().expect("esus-ir runs")
    })
    .await
    .expect("join")
}

/// `report` (markdown and HTML) and `verify` on a transcript; their outputs join the haystacks.
pub(crate) async fn post_process(home: &Path, transcript: &Path, hay: &mut Haystacks) -> usize {
    if !transcript.exists() {
        return 0;
    }
    let mut md = esus_ir(home);
    md.arg("report").arg(transcript);
    hay.output("report (markdown)", &capture(md).await);
    let mut html = esus_ir(home);
    let html_path = transcript.with_extension("report.html");
    html.arg("report")
        .arg(transcript)
        .args(["--format", "html", "-o"])
        .arg(&html_path);
    hay.output("report (html)", &capture(html).await);
    let mut verify = esus_ir(home);
    verify.arg("verify").arg(transcript);
    hay.output("verify", &capture(verify).await);
    3
}

/// Searches one case: its streams, every file under `root` but the run folders' `secrets/` and
/// the test's own inputs. New secrets read from `secrets/` are canaries too (the files must be
/// 0600 in a 0700 folder).
pub(crate) fn search_case(
    label: &str,
    root: &Path,
    mut canaries: Vec<Canary>,
    hay: &Haystacks,
) -> Tally {
    let mut tally = Tally {
        runs: 1,
        ..Tally::default()
    };
    let secret_dirs: Vec<PathBuf> = hay.run_dirs.iter().map(|d| d.join("secrets")).collect();
    for dir in &secret_dirs {
        if !dir.exists() {
            continue;
        }
        check_mode(dir, 0o700, label, &mut tally.findings);
        for f in files_under(dir) {
            check_mode(&f, 0o600, label, &mut tally.findings);
            tally.secret_files += 1;
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            let name = f.file_name().map(|n| n.to_string_lossy().into_owned());
            for v in secret_values(&text) {
                canaries.push(Canary::known(
                    format!(
                        "new secret from secrets/{}",
                        name.clone().unwrap_or_default()
                    ),
                    v,
                ));
            }
        }
    }
    canaries.retain(|c| !c.value.is_empty());
    tally.cases = canaries.len();
    let search = Search::new(&canaries);
    tally.forms = search.needles;
    for (name, bytes) in &hay.streams {
        tally.streams += 1;
        tally.bytes += bytes.len();
        for hit in search.hits(name, bytes) {
            tally.findings.push(format!("[{label}] {hit}"));
        }
    }
    for f in files_under(root) {
        if secret_dirs.iter().any(|d| f.starts_with(d)) || hay.inputs.iter().any(|i| &f == i) {
            continue;
        }
        let Ok(bytes) = std::fs::read(&f) else {
            continue;
        };
        tally.files += 1;
        tally.bytes += bytes.len();
        let shown = f.strip_prefix(root).unwrap_or(&f).display().to_string();
        for hit in search.hits(&shown, &bytes) {
            tally.findings.push(format!("[{label}] {hit}"));
        }
    }
    tally.forms *= tally.files + tally.streams;
    tally
}

/// The secret values in a `secrets/` file: a JSON string or list (fan-out outputs), or the text.
fn secret_values(text: &str) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) if !s.is_empty() => out.push(s.clone()),
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            serde_json::Value::Object(m) => m.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v @ (serde_json::Value::Array(_) | serde_json::Value::Object(_))) => walk(&v, &mut out),
        _ => {
            let t = text.trim();
            if !t.is_empty() {
                out.push(t.to_string());
            }
        }
    }
    out
}

fn check_mode(path: &Path, want: u32, label: &str, findings: &mut Vec<String>) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0);
    if mode != want {
        findings.push(format!(
            "[{label}] {} has mode {mode:o}, not {want:o}",
            path.display()
        ));
    }
}

/// The built-in scenario with every secret it seeds replaced by a canary: passwords, the MFA
/// secret, API key secrets, and literal access and refresh tokens for every session.
pub(crate) struct CanaryScenario {
    pub(crate) yaml: String,
    pub(crate) canaries: Vec<Canary>,
    /// The first admin's password (the ready file's admin).
    pub(crate) admin_password: String,
    /// The MFA admin's email, password and TOTP secret.
    pub(crate) mfa_email: String,
    pub(crate) mfa_password: String,
    pub(crate) mfa_secret: String,
}

impl CanaryScenario {
    pub(crate) fn new() -> CanaryScenario {
        let base = crate::runbooks_support::DEFAULT_SCENARIO;
        let mut canaries = Vec::new();
        let mut admin_password = None;
        let mut mfa_password = None;
        let password = regex::Regex::new(r#"password: "([a-z]+)-drill-password""#).expect("re");
        let replaced = replace_all(base, &password, |caps| {
            let who = caps[1].to_string();
            let c = Canary::plain(&format!("password of {who} (scenario)"), "pw");
            let line = format!("password: \"{}\"", c.value);
            if who == "admin" {
                admin_password = Some(c.value.clone());
            }
            if who == "max" {
                mfa_password = Some(c.value.clone());
            }
            canaries.push(c);
            line
        });
        let mfa = Canary::plain("MFA (TOTP) secret (scenario)", "totp");
        assert!(
            replaced.contains("mfa_secret: \"drill-totp-secret\""),
            "the built-in scenario changed: no MFA user with drill-totp-secret"
        );
        let replaced = replaced.replace(
            "mfa_secret: \"drill-totp-secret\"",
            &format!("mfa_secret: \"{}\"", mfa.value),
        );
        let key = regex::Regex::new(r#"secret: "(sk_live_[A-Za-z0-9_]+)""#).expect("re");
        let replaced = replace_all(&replaced, &key, |caps| {
            let c = Canary::plain(&format!("API key secret {} (scenario)", &caps[1]), "sk");
            let line = format!("secret: \"{}\"", c.value);
            canaries.push(c);
            line
        });
        let session = regex::Regex::new(r"\{ id: (s-[0-9]+), ").expect("re");
        let replaced = replace_all(&replaced, &session, |caps| {
            let at = Canary::plain(&format!("access token of session {}", &caps[1]), "at");
            let rt = Canary::plain(&format!("refresh token of session {}", &caps[1]), "rt");
            let line = format!(
                "{{ id: {}, access_token: \"{}\", refresh_token: \"{}\", ",
                &caps[1], at.value, rt.value
            );
            canaries.push(at);
            canaries.push(rt);
            line
        });
        let mfa_email = regex::Regex::new(r"email: ([^,]+), name: Max")
            .expect("re")
            .captures(&replaced)
            .map(|c| c[1].trim().to_string())
            .expect("the MFA admin's email in the scenario");
        canaries.push(mfa.clone());
        assert!(
            canaries.len() > 6 + 6 + 8,
            "the built-in scenario changed: {} secrets replaced",
            canaries.len()
        );
        CanaryScenario {
            yaml: replaced,
            canaries,
            admin_password: admin_password.expect("the admin's password in the scenario"),
            mfa_email,
            mfa_password: mfa_password.expect("the MFA admin's password in the scenario"),
            mfa_secret: mfa.value,
        }
    }

    /// The TOTP code of the MFA admin now (simulated clock).
    pub(crate) fn mfa_code(&self, sim: &esus_ir::sim::SimHandle) -> String {
        esus_ir::sim::totp_code(self.mfa_secret.as_bytes(), sim.now())
    }
}

fn replace_all(
    text: &str,
    re: &regex::Regex,
    mut f: impl FnMut(&regex::Captures<'_>) -> String,
) -> String {
    let mut n = 0;
    let out = re
        .replace_all(text, |caps: &regex::Captures<'_>| {
            n += 1;
            f(caps)
        })
        .into_owned();
    assert!(n > 0, "the built-in scenario changed: nothing matches {re}");
    out
}

/// What a prompt in the pseudo-terminal asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Prompt {
    /// A yes/no confirmation.
    Confirm,
    /// A typed confirmation.
    Typed,
    /// The operator's access token (hidden).
    Token,
    /// The login password (hidden).
    Password,
    /// The MFA code (hidden).
    Mfa,
    /// A secret input, by name (hidden).
    Secret(String),
}

/// How to answer a prompt.
pub(crate) enum Answer {
    /// Type this, then Enter (every prompt reads a whole line).
    Keys(String),
    /// Press Ctrl-C.
    CtrlC,
}

/// The command run through `sh`, which turns the terminal's echo on first (the pty library
/// starts children with echo off): a prompt that failed to hide its input would then show it.
fn with_echo(cmd: std::process::Command) -> std::process::Command {
    let mut sh = std::process::Command::new("sh");
    sh.arg("-c")
        .arg("stty echo && exec \"$0\" \"$@\"")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        sh.current_dir(dir);
    }
    sh
}

/// Drives a run in a pseudo-terminal: each prompt is answered by `answer`; returns everything
/// the terminal showed, the exit code and the prompts met.
pub(crate) fn in_pty(
    cmd: std::process::Command,
    mut answer: impl FnMut(&Prompt) -> Answer,
) -> (Vec<u8>, i32, Vec<Prompt>) {
    use expectrl::Expect;
    let mut session = expectrl::Session::spawn(with_echo(cmd)).expect("spawn in a pty");
    session.set_expect_timeout(Some(Duration::from_secs(60)));
    let mut screen = Vec::new();
    let mut met = Vec::new();
    let prompts = expectrl::Regex(
        r"\[y/N\]|Type `[^`]+` and Enter to confirm|ESUS access token \(hidden\)|Paste a new access token \(hidden\)|ESUS password for \S+|MFA code|([A-Za-z0-9_]+) \(secret, hidden\)",
    );
    // Bounded: a run has at most a few dozen prompts.
    for _ in 0..64 {
        let found = match session.expect(&prompts) {
            Ok(found) => found,
            Err(expectrl::Error::Eof) => break,
            Err(e) => panic!(
                "pty: {e}; screen so far:\n{}",
                String::from_utf8_lossy(&screen)
            ),
        };
        screen.extend_from_slice(found.as_bytes());
        let text = String::from_utf8_lossy(found.get(0).unwrap_or_default()).into_owned();
        let prompt = if text.starts_with("[y/N]") {
            Prompt::Confirm
        } else if text.starts_with("Type") {
            Prompt::Typed
        } else if text.contains("access token") {
            Prompt::Token
        } else if text.starts_with("ESUS password") {
            Prompt::Password
        } else if text == "MFA code" {
            Prompt::Mfa
        } else {
            Prompt::Secret(String::from_utf8_lossy(found.get(1).unwrap_or_default()).into_owned())
        };
        let hidden = !matches!(prompt, Prompt::Confirm | Prompt::Typed);
        // The answer is typed only now that the prompt's text is on the screen: each prompt
        // throws away what was typed before it appeared.
        if hidden {
            // Type only once the prompt has turned echo off (it must: otherwise the terminal
            // shows what is typed).
            let mut off = false;
            for _ in 0..1000 {
                if session.get_process().get_echo().is_ok_and(|on| !on) {
                    off = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            assert!(
                off,
                "the hidden prompt {prompt:?} never turned the terminal's echo off"
            );
        }
        match answer(&prompt) {
            // Enter is a carriage return at a terminal (the line discipline makes it `\n`).
            Answer::Keys(k) => session.send(format!("{k}\r")),
            Answer::CtrlC => session.send(expectrl::ControlCode::EndOfText),
        }
        .expect("answer the prompt");
        met.push(prompt);
    }
    let rest = session.expect(expectrl::Eof).map(|c| c.as_bytes().to_vec());
    screen.extend_from_slice(&rest.unwrap_or_default());
    let code = match session.get_process().wait().expect("exit status") {
        expectrl::process::unix::WaitStatus::Exited(_, code) => code,
        other => panic!("unexpected end: {other:?}"),
    };
    (screen, code, met)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canary_forms_cover_every_encoding_and_find_a_value_inside_a_longer_base64_text() {
        // A spicy canary (escaped forms differ from the raw one) ending in bytes whose base64 has
        // a `+` or `/` in every 3-byte group, at every alignment: the url-safe alphabet then
        // differs from the standard one wherever the value sits, so both are really searched.
        let mut c = Canary::spicy("t", "t");
        c.value.push_str("~~~???>>>");
        let f = forms(&c);
        let names: Vec<&str> = f.iter().map(|(n, _)| *n).collect();
        for want in [
            "raw",
            "unique core",
            "JSON-escaped",
            "URL-encoded",
            "URL-encoded (lower-case hex)",
            "form-URL-encoded",
            "base64",
            "base64 unpadded",
            "base64url",
            "base64url unpadded",
            "hex",
            "hex upper-case",
        ] {
            assert!(names.contains(&want), "no {want} form: {f:?}");
        }
        for offset in ["base64 at an offset", "base64url at an offset"] {
            assert_eq!(
                names.iter().filter(|n| **n == offset).count(),
                3,
                "{offset}: one form per alignment: {f:?}"
            );
        }
        let search = Search::new(std::slice::from_ref(&c));
        let found = |what: &str, hay: &str, form: &str| {
            let hits = search.hits(what, hay.as_bytes());
            assert!(
                hits.iter().any(|h| h.contains(form)),
                "{what}: not found as {form} in {hay}: {hits:?}"
            );
        };
        // Inside a longer base64 text, at every alignment, with or without more bytes after
        // it, in both alphabets, padded or not.
        for prefix in ["", "a", "ab", "abc"] {
            for suffix in ["", "!", "!!", "!!!"] {
                let text = format!("{prefix}oncall:{}{suffix}", c.value);
                let std = STANDARD.encode(&text);
                let url = URL_SAFE.encode(&text);
                assert_ne!(std, url, "the alphabets differ for {text:?}");
                found("base64", &std, "base64");
                found("base64 unpadded", &STANDARD_NO_PAD.encode(&text), "base64");
                found("base64url", &url, "base64url");
                found(
                    "base64url unpadded",
                    &URL_SAFE_NO_PAD.encode(&text),
                    "base64url",
                );
            }
        }
        found("base64 alone", &STANDARD.encode(&c.value), "(base64)");
        found("base64url alone", &URL_SAFE.encode(&c.value), "(base64url)");
        // URL- and JSON-escaped, inside a longer text.
        let pct =
            percent_encoding::utf8_percent_encode(&c.value, percent_encoding::NON_ALPHANUMERIC);
        found(
            "a query",
            &format!("GET /x?token={pct}&y=1"),
            "(URL-encoded)",
        );
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("token", &c.value)
            .finish();
        found("a form", &query, "(form-URL-encoded)");
        let json = serde_json::json!({ "t": c.value }).to_string();
        found("json", &json, "(JSON-escaped)");
        found("raw", &format!("token={}.", c.value), "(raw)");
        // Negative control: another value's encodings are not taken for this one.
        let other = Canary::spicy("other", "t");
        for hay in [
            STANDARD.encode(&other.value),
            URL_SAFE_NO_PAD.encode(format!("ab{}", other.value)),
            serde_json::json!({ "t": other.value }).to_string(),
        ] {
            assert!(search.hits("other", hay.as_bytes()).is_empty(), "{hay}");
        }
        let code = Canary::known("code", "123456");
        let search = Search::new(&[code]);
        assert!(search.hits("t", b"at 01:02:03.123456Z").is_empty());
        assert!(!search.hits("t", b"{\"code\":\"123456\"}").is_empty());
        assert!(!search.hits("t", b"code=123456").is_empty());
    }
}
