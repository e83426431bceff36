//! Tend's always-on engine (DESIGN.md §3–§4): enrollment, due selection, pacing
//! decisions, durable dispatch over email, webhooks and tasks.

pub mod send;

pub use send::SendError;
