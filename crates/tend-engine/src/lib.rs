//! Tend's always-on engine (DESIGN.md §3–§4): enrollment, due selection, pacing
//! decisions, durable dispatch over email, webhooks and tasks.

pub mod email;
pub mod markdown;
pub mod send;
pub mod unsubscribe;
pub mod webhook;

pub use email::{EmailConfig, EmailSender, EmailSetupError, OutgoingEmail};
pub use send::SendError;
pub use unsubscribe::UnsubscribeSigner;
pub use webhook::{WebhookSender, WebhookSetupError};
