//! The embedded ESUS simulator (issue 3): a stateful ESUS API on loopback, for drills and tests.
//!
//! It follows ESUS's published OpenAPI (each route cites its operationId) where ESUS documents
//! behaviour, and where ESUS is silent it takes the reading hardest for a client, documented as
//! a "simulator assumption" in docs/esus-api.md. It shares no types with the
//! ESUS client on purpose: two independent readings of the contract are what let a test catch a
//! misreading.
//!
//! ```no_run
//! # async fn demo() -> Result<(), esus_ir::sim::SimError> {
//! use esus_ir::sim::{SimConfig, Simulator};
//! let sim = Simulator::start(SimConfig::default()).await?;
//! println!("{}", sim.base_url());
//! # Ok(()) }
//! ```

mod audit;
mod audit_chain;
mod auth;
mod caller;
mod clock;
mod config;
mod error;
mod fault_spec;
mod faults;
mod ground_truth;
mod handle;
mod hooks;
mod ids;
mod layers;
mod leftovers;
mod outcome;
mod ready;
mod request_log;
mod roles;
mod routes;
mod scenario;
mod scenario_incident;
mod seed;
mod seed_incident;
mod server;
mod shared;
mod smart;
mod state;
mod tls;

pub use audit::{Agent, AuditRow, Entity, Source};
pub use audit_chain::AuditTamper;
pub use auth::totp_code;
pub use config::{ScenarioSource, SimConfig, listen_allowed};
pub use error::SimError;
pub use fault_spec::{ErrorShape, FaultKind, FaultSpec, RetryAfter, RouteFilter};
pub use ground_truth::{
    AttackerTruth, GroundTruth, LeftoverKind, LeftoverState, PatientAccess, Planted, Window,
};
pub use handle::{KeyState, SessionState, SimHandle, Simulator};
pub use hooks::Delivery;
pub use ids::{audit_event_id, user_uuid};
pub use ready::ReadyInfo;
pub use request_log::{CredentialKind, RecordedRequest};
pub use roles::role_id;
pub use scenario::{DEFAULT_SCENARIO_YAML, PERSISTENCE_SCENARIO_YAML, Scenario};
pub use scenario_incident::{
    ActorSpec, CorsSpec, DeliverySpec, EventSpec, ExportSpec, IncidentSpec, InvitationSpec,
    PlantedKeySpec, SmartAppSpec, SubscriptionSpec, WebhookSpec, WindowSpec,
};
