//! Rendering: the variables a template or task title sees for one contact.

use super::Engine;
use tend_core::pacer::DueTouch;
use tend_core::process::StepChannel;
use tend_core::template::{BusinessVars, ContactVars, RenderContext, first_name_of, render_text};
use tend_core::{ContactId, StageName};
use tend_store::{Contact, PacingContact};

impl Engine {
    pub(super) fn render_context(&self, contact: &ContactFields<'_>) -> serde_json::Value {
        let config = &self.project.config;
        RenderContext {
            contact: ContactVars {
                id: contact.id.0,
                email: contact.email.unwrap_or_default().to_owned(),
                name: contact.name.map(str::to_owned),
                first_name: contact.name.and_then(first_name_of),
                timezone: contact.timezone.map(str::to_owned),
                stage: contact.stage.as_str().to_owned(),
                attributes: serde_json::Value::Object(contact.attributes.clone()),
            },
            business: BusinessVars {
                name: config.business.name.clone(),
                timezone: config.business.timezone.as_str().to_owned(),
            },
            unsubscribe_url: contact
                .email
                .map(|email| self.unsubscribe_url(email))
                .unwrap_or_default(),
        }
        .to_value()
    }

    /// A task step's title rendered for a contact and its minutes, as the agenda will
    /// show them once the task falls due; `None` if that step is not a task.
    pub fn task_title_for(
        &self,
        process_id: i64,
        step: u32,
        contact: &Contact,
    ) -> Option<(String, u32)> {
        let step = self
            .book
            .get(process_id)?
            .process
            .steps
            .get(step as usize)?;
        let StepChannel::Task { title, minutes } = &step.channel else {
            return None;
        };
        let context = self.render_context(&ContactFields::from_contact(contact));
        Some((
            render_text(title, &context).unwrap_or_else(|_| title.clone()),
            *minutes,
        ))
    }

    pub(super) fn task_title(
        &self,
        touch: &DueTouch,
        contact: Option<&PacingContact>,
    ) -> (String, u32) {
        let step = self
            .book
            .get(touch.process.0)
            .and_then(|b| b.process.steps.get(touch.step as usize));
        let Some(StepChannel::Task { title, minutes }) = step.map(|s| &s.channel) else {
            return ("(task step no longer in its process)".into(), 0);
        };
        let rendered = contact.and_then(|c| {
            let fields = ContactFields::from_pacing(c);
            render_text(title, &self.render_context(&fields)).ok()
        });
        (rendered.unwrap_or_else(|| title.clone()), *minutes)
    }
}

/// The contact fields rendering needs, borrowed from either record shape.
pub(super) struct ContactFields<'a> {
    id: ContactId,
    pub(super) email: Option<&'a str>,
    pub(super) name: Option<&'a str>,
    timezone: Option<&'a str>,
    stage: &'a StageName,
    attributes: &'a serde_json::Map<String, serde_json::Value>,
}

impl<'a> ContactFields<'a> {
    pub(super) fn from_contact(c: &'a Contact) -> Self {
        ContactFields {
            id: c.id,
            email: c.email.as_deref(),
            name: c.name.as_deref(),
            timezone: c.timezone.as_deref(),
            stage: &c.stage,
            attributes: &c.attributes,
        }
    }

    pub(super) fn from_pacing(c: &'a PacingContact) -> Self {
        ContactFields {
            id: c.id,
            email: c.email.as_deref(),
            name: c.name.as_deref(),
            timezone: c.timezone.as_deref(),
            stage: &c.stage,
            attributes: &c.attributes,
        }
    }
}
