//! Progress on stderr: indicatif spinners per running step, one bar per fan-out (done/total,
//! rate, ETA) and a row counter per paged audit pull on a terminal; one plain line per event
//! otherwise (CI logs, paging tools). Everything a person reads is in words, never a Rust name.
//! While a prompt is up ([`PromptGate`]) bars are hidden and lines are held back, so nothing is
//! drawn over the question.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use console::Style;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::event::{ApprovalSource, Event, RunMode, StepStatus};
use crate::exec::progress::Progress;
use crate::exec::report::status_words;

/// Colours for what people read; plain text when colour is off (NO_COLOR, not a terminal,
/// `--color never`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Styles {
    on: bool,
}

impl Styles {
    /// Colours on or off.
    pub fn new(on: bool) -> Self {
        Styles { on }
    }

    /// Whether colours are on.
    pub fn enabled(&self) -> bool {
        self.on
    }

    fn paint(&self, text: String, style: Style) -> String {
        if self.on {
            style.force_styling(true).apply_to(text).to_string()
        } else {
            text
        }
    }

    /// The LIVE banner.
    pub fn live(&self, t: String) -> String {
        self.paint(t, Style::new().white().on_red().bold())
    }
    /// The DRILL banner.
    pub fn drill(&self, t: String) -> String {
        self.paint(t, Style::new().black().on_yellow().bold())
    }
    /// Something destructive.
    pub fn destructive(&self, t: String) -> String {
        self.paint(t, Style::new().red().bold())
    }
    /// Success.
    pub fn ok(&self, t: String) -> String {
        self.paint(t, Style::new().green())
    }
    /// Failure.
    pub fn failed(&self, t: String) -> String {
        self.paint(t, Style::new().red().bold())
    }
    /// A decline, a skip, a warning.
    pub fn warn(&self, t: String) -> String {
        self.paint(t, Style::new().yellow())
    }
    /// Emphasis.
    pub fn bold(&self, t: String) -> String {
        self.paint(t, Style::new().bold())
    }

    /// A step status, coloured by what it means.
    pub fn status(&self, s: StepStatus) -> String {
        let word = status_words(s).to_string();
        match s {
            StepStatus::Ok => self.ok(word),
            StepStatus::Failed => self.failed(word),
            StepStatus::Declined | StepStatus::Interrupted => self.warn(word),
            StepStatus::Skipped => word,
        }
    }
}

/// Holds the terminal for one prompt at a time: bars hidden, other output held back until the
/// answer is in.
pub struct PromptGate {
    multi: Option<MultiProgress>,
    one_at_a_time: Mutex<()>,
    held: Mutex<Option<Vec<String>>>,
    /// The question of the yes/no prompt now open: a line that arrives meanwhile (a step running
    /// alongside finished) is printed above it and the question drawn again, so each result is
    /// shown when it happens.
    question: Mutex<Option<String>>,
}

impl PromptGate {
    fn new(multi: Option<MultiProgress>) -> Self {
        PromptGate {
            multi,
            one_at_a_time: Mutex::new(()),
            held: Mutex::new(None),
            question: Mutex::new(None),
        }
    }

    /// Runs `f` (a prompt) with the terminal to itself.
    pub fn during<R>(&self, f: impl FnOnce() -> R) -> R {
        let _one = self.one_at_a_time.lock().unwrap_or_else(|e| e.into_inner());
        *self.held.lock().unwrap_or_else(|e| e.into_inner()) = Some(Vec::new());
        // Hidden, not suspended: a suspended MultiProgress holds its lock, and a step running
        // alongside would block a runtime worker on its next tick until the prompt is answered.
        if let Some(m) = &self.multi {
            let _ = m.clear();
            m.set_draw_target(ProgressDrawTarget::hidden());
        }
        let r = f();
        if let Some(m) = &self.multi {
            m.set_draw_target(ProgressDrawTarget::stderr());
        }
        let held = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_default();
        for line in held {
            self.print(line);
        }
        r
    }

    /// While `f` waits for the answer to `question` (already shown), lines are printed above it.
    pub fn asking<R>(&self, question: &str, f: impl FnOnce() -> R) -> R {
        *self.question.lock().unwrap_or_else(|e| e.into_inner()) = Some(question.to_string());
        let r = f();
        *self.question.lock().unwrap_or_else(|e| e.into_inner()) = None;
        r
    }

    /// Prints one line above the bars; while a prompt is up, above its question (a yes/no
    /// prompt) or held until the answer (a hidden one).
    fn print(&self, line: String) {
        if let Some(held) = self.held.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            let question = self.question.lock().unwrap_or_else(|e| e.into_inner());
            match question.as_deref() {
                // Clear the question's line, print, and ask again below. What the operator has
                // typed so far stays in the terminal's line buffer.
                Some(q) => {
                    let mut err = std::io::stderr().lock();
                    let _ = write!(err, "\r\x1b[2K{line}\n{q}");
                    let _ = err.flush();
                }
                None => held.push(line),
            }
            return;
        }
        match &self.multi {
            Some(m) => {
                let _ = m.println(line);
            }
            None => {
                let _ = writeln!(std::io::stderr().lock(), "{line}");
            }
        }
    }
}

/// The terminal listener.
pub struct Ui {
    gate: std::sync::Arc<PromptGate>,
    bars: Mutex<HashMap<String, ProgressBar>>,
    failed: Mutex<HashMap<String, u64>>,
    started: Instant,
    quiet: bool,
    styles: Styles,
    mode: Mutex<Option<RunMode>>,
}

impl Ui {
    /// Spinners when `fancy` (stderr is a terminal), plain lines otherwise; `quiet` prints nothing.
    pub fn new(fancy: bool, quiet: bool, styles: Styles) -> Self {
        let multi = (fancy && !quiet)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Ui {
            gate: std::sync::Arc::new(PromptGate::new(multi)),
            bars: Mutex::new(HashMap::new()),
            failed: Mutex::new(HashMap::new()),
            started: Instant::now(),
            quiet,
            styles,
            mode: Mutex::new(None),
        }
    }

    /// The prompt gate, shared with the confirmer.
    pub fn gate(&self) -> std::sync::Arc<PromptGate> {
        self.gate.clone()
    }

    fn multi(&self) -> Option<&MultiProgress> {
        self.gate.multi.as_ref()
    }

    fn line(&self, text: &str) {
        if self.quiet {
            return;
        }
        let stamp = self.started.elapsed().as_secs_f64();
        self.gate.print(format!("[{stamp:>7.2}s] {text}"));
    }

    fn run_started(&self, runbook: &str, mode: RunMode, base_url: &str) {
        if let Ok(mut m) = self.mode.lock() {
            *m = Some(mode);
        }
        let what = match mode {
            RunMode::Live => format!(
                "{} {runbook} against {base_url}",
                self.styles.live(" LIVE ".into())
            ),
            RunMode::Drill => format!(
                "{} {runbook} against the embedded simulator at {base_url}",
                self.styles.drill(" DRILL ".into())
            ),
            RunMode::DryRun => {
                format!("DRY RUN of {runbook} for {base_url}: nothing destructive is sent")
            }
        };
        self.line(&what);
    }

    fn plan(
        &self,
        layers: &[Vec<String>],
        destructive: &[String],
        known: &[(String, crate::event::RequestView)],
        not_done: &[String],
    ) {
        // A dry-run prints the whole plan on stdout; drawing it here too would show it twice.
        let dry = self
            .mode
            .lock()
            .ok()
            .and_then(|m| *m)
            .is_some_and(|m| m == RunMode::DryRun);
        if self.quiet || dry {
            return;
        }
        let mut text = String::new();
        for gap in not_done {
            text.push_str(&self.styles.warn(format!("NOT done — {gap}")));
            text.push('\n');
        }
        text.push_str(
            "plan (steps on one line may run in parallel; * = changes or removes access):\n",
        );
        for (k, layer) in layers.iter().enumerate() {
            let ids: Vec<String> = layer
                .iter()
                .map(|id| {
                    if destructive.contains(id) {
                        self.styles.destructive(format!("{id}*"))
                    } else {
                        id.clone()
                    }
                })
                .collect();
            text.push_str(&format!("  {}. {}\n", k + 1, ids.join(", ")));
        }
        if !known.is_empty() {
            text.push_str("requests already known (the rest depend on earlier answers):\n");
            for (id, r) in known {
                let body = r.body.as_ref().map(|b| format!(" {b}")).unwrap_or_default();
                text.push_str(&format!("  {id}: {} {}{body}\n", r.method, r.url));
            }
        }
        self.gate.print(text.trim_end().to_string());
    }

    fn finished(
        &self,
        step: &str,
        status: StepStatus,
        reason: Option<&str>,
        ms: u64,
        expected: Option<u16>,
    ) {
        let bar = self.bars.lock().ok().and_then(|mut b| b.remove(step));
        if let Some(pb) = bar {
            pb.finish_and_clear();
        }
        let mark = match status {
            StepStatus::Ok => self.styles.ok("✓".into()),
            StepStatus::Failed => self.styles.failed("✗".into()),
            _ => "•".to_string(),
        };
        let word = match (status, expected) {
            (StepStatus::Ok, Some(code)) => self.styles.ok(format!("ok (expected {code})")),
            _ => self.styles.status(status),
        };
        let why = match (status, reason) {
            // The expected answer is already in the word; the reason repeats it.
            (StepStatus::Ok, _) if expected.is_some() => String::new(),
            (StepStatus::Skipped, Some(r)) if r.starts_with("condition ") => {
                " — not needed (its condition is false)".into()
            }
            (_, Some(r)) => format!(" — {r}"),
            (_, None) => String::new(),
        };
        self.line(&format!("{mark} {step}: {word} ({ms} ms){why}"));
    }
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {prefix:.bold} {wide_msg} {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix:.bold} [{bar:30}] {pos}/{len} {msg} {per_sec} ETA {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// The one line a run-level notice prints: who is acting, what approves the run, a renewal.
fn notice(event: &Event) -> Option<String> {
    Some(match event {
        Event::Preflight { summary, .. } => summary.clone(),
        Event::PolicyApplied {
            policy_sha256,
            signer,
            ..
        } => format!("inside the signed policy sha256 {policy_sha256} (signed by {signer})"),
        Event::PlanApproved {
            plan_sha256,
            approvers,
            ..
        } => format!(
            "running the signed plan sha256 {plan_sha256}, approved by {}: only its requests are sent",
            approvers.join(", ")
        ),
        Event::TokenRenewed {
            by,
            refresh_saved_to,
            save_error,
            ..
        } => renewal_words(by, refresh_saved_to.as_deref(), save_error.as_deref()),
        _ => return None,
    })
}

/// The on-screen line for a renewed operator token (never the token).
fn renewal_words(by: &str, saved_to: Option<&str>, save_error: Option<&str>) -> String {
    let how = if by == "operator" {
        "with the token the operator gave"
    } else {
        "with the refresh token"
    };
    match (saved_to, save_error) {
        (_, Some(e)) => format!(
            "ESUS token renewed {how}; ESUS rotated the refresh token but the new one could NOT be saved ({e}): the next run needs a fresh token"
        ),
        (Some(p), None) => {
            let mode = if p.starts_with("the OS keyring") {
                ""
            } else {
                " (0600)"
            };
            format!(
                "ESUS token renewed {how}; the new refresh token is saved in {p}{mode} — the old one no longer works"
            )
        }
        (None, None) => format!("ESUS token renewed {how}"),
    }
}

fn how_words(how: ApprovalSource) -> &'static str {
    match how {
        ApprovalSource::Interactive => "by the operator",
        ApprovalSource::AssumeYes => "by --yes",
        ApprovalSource::Approve => "by --approve",
        ApprovalSource::Plan => "by the signed plan",
        ApprovalSource::Policy => "by the signed policy",
        ApprovalSource::NotRequired => "no confirmation needed",
        ApprovalSource::Missing => "no approval was given for this unattended run",
    }
}

impl crate::event::EventSink for Ui {
    fn emit(&self, event: &Event) -> std::io::Result<()> {
        match event {
            Event::RunStarted {
                runbook_name,
                mode,
                base_url,
                ..
            } => self.run_started(runbook_name, *mode, base_url),
            Event::Preflight { .. }
            | Event::PolicyApplied { .. }
            | Event::PlanApproved { .. }
            | Event::TokenRenewed { .. } => {
                if let Some(line) = notice(event) {
                    self.line(&line);
                }
            }
            Event::Plan {
                layers,
                destructive,
                known_requests,
                not_done,
                ..
            } => self.plan(layers, destructive, known_requests, not_done),
            Event::StepStarted { step, items: None } => {
                if let Some(m) = self.multi().filter(|_| !self.quiet) {
                    let pb = m.add(
                        ProgressBar::new_spinner()
                            .with_style(spinner_style())
                            .with_prefix(step.clone()),
                    );
                    pb.enable_steady_tick(Duration::from_millis(120));
                    if let Ok(mut bars) = self.bars.lock() {
                        bars.insert(step.clone(), pb);
                    }
                } else {
                    self.line(&format!("{step}: started"));
                }
            }
            Event::Confirmation {
                step,
                approved,
                how,
                ..
            } => {
                let word = if *approved {
                    self.styles.ok("approved".into())
                } else {
                    self.styles.warn("NOT approved".into())
                };
                let drill = self.mode.lock().ok().and_then(|m| *m) == Some(RunMode::Drill);
                let how = match how {
                    // A drill has no --approve: unattended, it approves every step itself.
                    ApprovalSource::Approve if drill => "the drill approves every step",
                    other => how_words(*other),
                };
                self.line(&format!("{step}: {word} ({how})"));
            }
            Event::StepFinished {
                step,
                status,
                reason,
                duration_ms,
                expected,
                ..
            } => self.finished(step, *status, reason.as_deref(), *duration_ms, *expected),
            _ => {}
        }
        Ok(())
    }
}

impl Progress for Ui {
    fn items_started(&self, step: &str, total: usize) {
        match self.multi().filter(|_| !self.quiet) {
            Some(m) => {
                // The step's spinner gives way to the bar.
                if let Some(old) = self.bars.lock().ok().and_then(|mut b| b.remove(step)) {
                    old.finish_and_clear();
                }
                let pb = m.add(
                    ProgressBar::new(total as u64)
                        .with_style(bar_style())
                        .with_prefix(step.to_string()),
                );
                if let Ok(mut bars) = self.bars.lock() {
                    bars.insert(step.to_string(), pb);
                }
            }
            None => self.line(&format!("{step}: {total} items")),
        }
    }

    fn item_finished(&self, step: &str, ok: bool) {
        let failed = {
            let Ok(mut f) = self.failed.lock() else {
                return;
            };
            let n = f.entry(step.to_string()).or_insert(0);
            if !ok {
                *n += 1;
            }
            *n
        };
        let Ok(bars) = self.bars.lock() else { return };
        if let Some(pb) = bars.get(step) {
            pb.inc(1);
            if failed > 0 {
                pb.set_message(format!("{failed} failed"));
            }
        } else if self.multi().is_none() && !ok {
            drop(bars);
            self.line(&format!("{step}: an item failed ({failed} so far)"));
        }
    }

    fn rows_read(&self, step: &str, rows: u64, total: u64) {
        let Ok(bars) = self.bars.lock() else { return };
        if let Some(pb) = bars.get(step) {
            pb.set_message(format!("{rows} audit rows saved (ESUS counts {total})"));
        }
    }
}
