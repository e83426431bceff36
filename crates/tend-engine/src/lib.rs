//! Tend's always-on engine (DESIGN.md §3–§4): enrollment, due selection, pacing
//! decisions, durable dispatch over email, webhooks and tasks.

pub mod book;
pub mod clock;
pub mod delivery;
pub mod dkim;
pub mod email;
mod engine;
pub mod envelope;
mod expected;
pub mod inbound;
pub mod mail_providers;
pub mod markdown;
pub mod metrics;
mod outbox;
mod pace;
pub mod project_files;
pub mod redact;
pub mod reports;
pub mod send;
mod smtp_pool;
pub mod unsubscribe;
pub mod webhook;

pub use clock::{Clock, ManualClock, SystemClock};
pub use delivery::{ChannelDelivery, Delivery, DeliverySetupError, EmailTouch};
pub use email::{EmailConfig, EmailSender, EmailSetupError, OutgoingEmail, RelayProbe, TlsMode};
pub use engine::{
    Engine, EngineError, EngineSettings, SyncReport, Unsubscribed, health_fingerprint, instance_id,
};
pub use expected::{OfferStepView, learned_probability};
pub use metrics::Metrics;
pub use pace::{CapacityView, DeficitView, PaceReport};
pub use send::SendError;
pub use unsubscribe::{UnsubscribeSigner, UnsubscribeTarget};
pub use webhook::{WebhookSender, WebhookSetupError};
