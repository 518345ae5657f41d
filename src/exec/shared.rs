//! What every running step shares: the client, the operator's token, the listeners, the
//! folders, and the Ctrl-C state.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use super::approval::{ApprovalPolicy, Confirmer};
use super::event::{Event, EventSink};
use super::evidence::Folders;
use super::progress::Progress;
use super::token::OperatorToken;
use crate::esus::client::EsusClient;
use crate::runbook::Validated;
use crate::template::Engine;

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
    /// The runbook.
    pub valid: Arc<Validated>,
    /// The ESUS client.
    pub client: EsusClient,
    /// The operator's token.
    pub token: OperatorToken,
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
}

/// State shared by the scheduler and every step task.
pub struct Shared {
    /// The runbook.
    pub valid: Arc<Validated>,
    /// The template engine.
    pub engine: Engine,
    /// The ESUS client.
    pub client: EsusClient,
    /// The operator's token.
    pub token: OperatorToken,
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
    sink_broken: AtomicBool,
}

impl Shared {
    /// Bundles the parts.
    pub fn new(p: Parts) -> Self {
        Shared {
            valid: p.valid,
            engine: Engine::new(),
            client: p.client,
            token: p.token,
            confirmer: p.confirmer,
            policy: p.policy,
            sink: p.sink,
            progress: p.progress,
            folders: p.folders,
            interrupt: p.interrupt,
            drill: p.drill,
            sink_broken: AtomicBool::new(false),
        }
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
