//! Progress on stderr: indicatif spinners per running step and one aggregated bar per fan-out on
//! a terminal; one plain line per event otherwise (CI logs, paging tools).

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::exec::event::{Event, EventSink, StepStatus};
use crate::exec::progress::Progress;
use crate::exec::report::status_words;

/// The terminal listener.
pub struct Ui {
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<String, ProgressBar>>,
    failed: Mutex<HashMap<String, u64>>,
    started: Instant,
    quiet: bool,
}

impl Ui {
    /// Spinners when `fancy` (stderr is a terminal), plain lines otherwise; `quiet` prints nothing.
    pub fn new(fancy: bool, quiet: bool) -> Self {
        let multi = (fancy && !quiet)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Ui {
            multi,
            bars: Mutex::new(HashMap::new()),
            failed: Mutex::new(HashMap::new()),
            started: Instant::now(),
            quiet,
        }
    }

    /// The bars' owner, for suspending them during prompts.
    pub fn multi(&self) -> Option<MultiProgress> {
        self.multi.clone()
    }

    fn line(&self, text: &str) {
        if self.quiet {
            return;
        }
        let stamp = self.started.elapsed().as_secs_f64();
        let msg = format!("[{stamp:>7.2}s] {text}");
        match &self.multi {
            Some(m) => {
                let _ = m.println(msg);
            }
            None => {
                let _ = writeln!(std::io::stderr().lock(), "{msg}");
            }
        }
    }
}

impl Ui {
    fn plan(
        &self,
        layers: &[Vec<String>],
        destructive: &[String],
        known: &[(String, crate::exec::event::RequestView)],
    ) {
        if self.quiet {
            return;
        }
        let mut text =
            String::from("plan (steps in one line may run in parallel; * = destructive):\n");
        for (k, layer) in layers.iter().enumerate() {
            let ids: Vec<String> = layer
                .iter()
                .map(|id| {
                    if destructive.contains(id) {
                        format!("{id}*")
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
        match &self.multi {
            Some(m) => {
                let _ = m.println(text.trim_end());
            }
            None => {
                let _ = write!(std::io::stderr().lock(), "{text}");
            }
        }
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

impl EventSink for Ui {
    fn emit(&self, event: &Event) -> std::io::Result<()> {
        match event {
            Event::RunStarted {
                runbook_name,
                mode,
                base_url,
                ..
            } => self.line(&format!("{runbook_name}: {mode:?} run against {base_url}")),
            Event::Plan {
                layers,
                destructive,
                known_requests,
                ..
            } => self.plan(layers, destructive, known_requests),
            Event::StepStarted { step, items: None } => {
                if let Some(m) = &self.multi {
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
            } => self.line(&format!(
                "{step}: {} ({how:?})",
                if *approved {
                    "approved"
                } else {
                    "NOT approved"
                }
            )),
            Event::StepFinished {
                step,
                status,
                reason,
                duration_ms,
                ..
            } => {
                let bar = self.bars.lock().ok().and_then(|mut b| b.remove(step));
                if let Some(pb) = bar {
                    pb.finish_and_clear();
                }
                let why = reason
                    .as_deref()
                    .map(|r| format!(" — {r}"))
                    .unwrap_or_default();
                let mark = if *status == StepStatus::Ok {
                    "✓"
                } else {
                    "•"
                };
                self.line(&format!(
                    "{mark} {step}: {} ({duration_ms} ms){why}",
                    status_words(*status)
                ));
            }
            Event::RunFinished { outcome, .. } => self.line(&format!("run finished: {outcome:?}")),
            _ => {}
        }
        Ok(())
    }
}

impl Progress for Ui {
    fn items_started(&self, step: &str, total: usize) {
        match &self.multi {
            Some(m) => {
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
        } else if self.multi.is_none() && !ok {
            drop(bars);
            self.line(&format!("{step}: an item failed ({failed} so far)"));
        }
    }
}
