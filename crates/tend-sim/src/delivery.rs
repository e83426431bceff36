//! The simulated channels: the engine delivers through [`SimDelivery`], which only
//! collects who received what, for the model to answer after each engine pass.

use async_trait::async_trait;
use jiff::Timestamp;
use serde_json::Value;
use std::sync::Mutex;
use tend_engine::{Delivery, EmailTouch, SendError};

/// Delivered touches, collected for the model to answer.
#[derive(Default)]
pub(crate) struct SimDelivery {
    delivered: Mutex<Vec<Delivered>>,
}

/// One touch that reached a simulated person.
pub(crate) struct Delivered {
    /// The person, from the address.
    pub person: Option<usize>,
    /// What it was.
    pub kind: DeliveredKind,
    /// The id of the process that sent it.
    pub process: String,
    /// The unsubscribe token, which names the address.
    pub token: Option<String>,
}

/// The channel and what the model needs to know about it.
pub(crate) enum DeliveredKind {
    Email { template: String },
    Webhook { offer: bool },
}

#[async_trait]
impl Delivery for SimDelivery {
    async fn email(&self, email: &EmailTouch<'_>) -> Result<(), SendError> {
        let delivered = Delivered {
            person: person_of(email.to_email),
            kind: DeliveredKind::Email {
                template: email.template.to_owned(),
            },
            process: email.process.to_owned(),
            token: Some(email.unsubscribe_token.to_owned()),
        };
        self.delivered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(delivered);
        Ok(())
    }

    async fn webhook(
        &self,
        _url: &str,
        _id: &str,
        body: &Value,
        _at: Timestamp,
    ) -> Result<(), SendError> {
        let email = body["contact"]["email"].as_str().unwrap_or_default();
        let delivered = Delivered {
            person: person_of(email),
            kind: DeliveredKind::Webhook {
                offer: body["step"]["intent"] == "offer",
            },
            process: body["process"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            token: None,
        };
        self.delivered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(delivered);
        Ok(())
    }
}

impl SimDelivery {
    /// Everything delivered since the last call.
    pub fn take(&self) -> Vec<Delivered> {
        std::mem::take(&mut *self.delivered.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The simulated address of person `person`.
pub(crate) fn email_of(person: usize) -> String {
    format!("p{person}@sim.example")
}

/// The person a simulated address belongs to.
pub(crate) fn person_of(email: &str) -> Option<usize> {
    email
        .strip_prefix('p')?
        .strip_suffix("@sim.example")?
        .parse()
        .ok()
}
