//! What every running step shares: the client, the operator's token, the listeners, the
//! folders, and the Ctrl-C state.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::approval::{ApprovalPolicy, Confirmer};
use super::evidence::Folders;
use super::progress::Progress;
use super::token::OperatorToken;
use crate::esus::client::EsusClient;
use crate::event::{Event, EventSink};
use crate::plan::Planner;
use crate::runbook::Validated;

/// Ctrl-C as the executor sees it: how many times it was pressed.
#[derive(Debug, Clone)]
pub struct Interrupt {
    rx: watch::Receiver<u32>,
}

/// The sending side of [`Interrupt`] (the CLI's signal handler, or a test).
#[derive(Debug, Clone)]
pub struct InterruptHandle {
    tx: Arc<watch::Sender<u32>>,
}

impl Interrupt {
    /// A new pair.
    pub fn new() -> (InterruptHandle, Interrupt) {
        let (tx, rx) = watch::channel(0);
        (InterruptHandle { tx: Arc::new(tx) }, Interrupt { rx })
    }

    /// How many times Ctrl-C was pressed.
    pub fn count(&self) -> u32 {
        *self.rx.borrow()
    }

    /// Sleeps `d`; returns true (early) if Ctrl-C is pressed meanwhile or already was.
    pub async fn sleep_or_stop(&self, d: Duration) -> bool {
        if self.count() > 0 {
            return true;
        }
        let mut rx = self.rx.clone();
        tokio::select! {
            _ = tokio::time::sleep(d) => false,
            _ = rx.changed() => true,
        }
    }

    /// Waits for the next Ctrl-C.
    pub async fn changed(&mut self) -> u32 {
        if self.rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
        *self.rx.borrow()
    }
}

impl InterruptHandle {
    /// Records one Ctrl-C.
    pub fn fire(&self) {
        self.tx.send_modify(|n| *n += 1);
    }
}

/// What a run is made of, given by the edge (the CLI, a test, a bench).
pub struct Parts {
    /// The planner of the runbook (it holds the runbook).
    pub planner: Planner,
    /// The ESUS client.
    pub client: EsusClient,
    /// The operator's token.
    pub token: Arc<OperatorToken>,
    /// Asks the operator.
    pub confirmer: Arc<dyn Confirmer>,
    /// Approvals given in advance, and whether a person may be asked.
    pub policy: ApprovalPolicy,
    /// Event listeners.
    pub sink: Arc<dyn EventSink>,
    /// Fan-out progress.
    pub progress: Arc<dyn Progress>,
    /// Evidence and secrets folders.
    pub folders: Folders,
    /// Ctrl-C.
    pub interrupt: Interrupt,
    /// Whether this is a drill (prompts are marked).
    pub drill: bool,
    /// What the incident has seen ESUS accept (earlier legs' facts included).
    pub witnesses: super::witness::Witnesses,
}

/// State shared by the scheduler and every step task.
pub struct Shared {
    /// The runbook.
    pub valid: Arc<Validated>,
    /// The one place that decides what a step sends.
    pub planner: Planner,
    /// The ESUS client.
    pub client: EsusClient,
    /// The operator's token.
    pub token: Arc<OperatorToken>,
    /// Asks the operator.
    pub confirmer: Arc<dyn Confirmer>,
    /// Approvals given in advance, and whether a person may be asked (also for the recoveries a
    /// step makes itself).
    pub policy: ApprovalPolicy,
    /// Event listeners.
    pub sink: Arc<dyn EventSink>,
    /// Fan-out progress.
    pub progress: Arc<dyn Progress>,
    /// Evidence and secrets folders.
    pub folders: Folders,
    /// Ctrl-C.
    pub interrupt: Interrupt,
    /// Whether this is a drill (prompts are marked).
    pub drill: bool,
    /// What the incident has seen ESUS accept: what containment is proven against.
    pub witnesses: super::witness::Witnesses,
    sink_broken: AtomicBool,
    approvals: Approvals,
}

/// Which approvals the requests of a step (or of one of its items) are sent under, so that each
/// request record names them and a verifier can check every request, not only the first.
#[derive(Default)]
struct Approvals {
    last: AtomicU64,
    granted: Mutex<HashMap<Grantee, Vec<u64>>>,
}

/// A step, or one item of it.
type Grantee = (String, Option<usize>);

impl Shared {
    /// The template engine (the planner's).
    pub fn engine(&self) -> &crate::template::Engine {
        &self.planner.engine
    }

    /// Bundles the parts.
    pub fn new(p: Parts) -> Self {
        Shared {
            valid: p.planner.valid.clone(),
            planner: p.planner,
            client: p.client,
            token: p.token,
            confirmer: p.confirmer,
            policy: p.policy,
            sink: p.sink,
            progress: p.progress,
            folders: p.folders,
            interrupt: p.interrupt,
            drill: p.drill,
            witnesses: p.witnesses,
            sink_broken: AtomicBool::new(false),
            approvals: Approvals::default(),
        }
    }

    /// The next approval number of this transcript (1, 2, …).
    pub fn next_approval(&self) -> u64 {
        self.approvals.last.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// From now on, `step`'s requests (or only item `item`'s) are sent under approval `id`.
    pub fn grant(&self, step: &str, item: Option<usize>, id: u64) {
        if let Ok(mut g) = self.approvals.granted.lock() {
            g.entry((step.to_string(), item)).or_default().push(id);
        }
    }

    /// Ends a grant made for one item's recovery.
    pub fn withdraw(&self, step: &str, item: Option<usize>, id: u64) {
        if let Ok(mut g) = self.approvals.granted.lock()
            && let Some(ids) = g.get_mut(&(step.to_string(), item))
        {
            ids.retain(|&x| x != id);
        }
    }

    /// The approvals a request of `step` (item `item`) is sent under.
    pub fn grants(&self, step: &str, item: Option<usize>) -> Vec<u64> {
        let Ok(g) = self.approvals.granted.lock() else {
            return Vec::new();
        };
        let mut out = g
            .get(&(step.to_string(), None))
            .cloned()
            .unwrap_or_default();
        if item.is_some() {
            out.extend(g.get(&(step.to_string(), item)).into_iter().flatten());
        }
        out
    }

    /// Emits an event; once a listener fails, the run must stop (an incomplete transcript is
    /// worse than a stopped run).
    pub fn emit(&self, event: &Event) -> std::io::Result<()> {
        self.sink
            .emit(event)
            .inspect_err(|_| self.sink_broken.store(true, Ordering::SeqCst))
    }

    /// Whether a listener failed.
    pub fn sink_broken(&self) -> bool {
        self.sink_broken.load(Ordering::SeqCst)
    }
}

/// Sends every event to several listeners, in order.
pub struct Fanout(pub Vec<Arc<dyn EventSink>>);

impl EventSink for Fanout {
    fn emit(&self, event: &Event) -> std::io::Result<()> {
        for s in &self.0 {
            s.emit(event)?;
        }
        Ok(())
    }
}
