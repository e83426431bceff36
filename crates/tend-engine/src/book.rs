//! The processes the engine runs, bound to their database ids: which signal enrolls or
//! exits whom, which step comes next, and how an edited file maps onto the old one.

use jiff::{SignedDuration, Timestamp};
use std::collections::HashMap;
use tend_core::config::Config;
use tend_core::process::{Enroll, Process, Step, StepChannel};
use tend_store::{
    EngineAction, EnrollTrigger, NextTouch, Signal, StageEnrollment, StepMove, StepSpec,
};

/// A process with its database id.
#[derive(Debug, Clone)]
pub struct BoundProcess {
    /// Database id.
    pub id: i64,
    /// The definition from its file.
    pub process: Process,
}

/// Every process the engine runs, by database id.
#[derive(Debug, Clone, Default)]
pub struct ProcessBook {
    processes: Vec<BoundProcess>,
    by_id: HashMap<i64, usize>,
}

impl ProcessBook {
    /// Binds loaded processes to their ids.
    pub fn new(bound: Vec<BoundProcess>) -> Self {
        let by_id = bound.iter().enumerate().map(|(i, b)| (b.id, i)).collect();
        ProcessBook {
            processes: bound,
            by_id,
        }
    }

    /// The process with this id.
    pub fn get(&self, id: i64) -> Option<&BoundProcess> {
        self.by_id.get(&id).map(|i| &self.processes[*i])
    }

    /// Every process, in file order.
    pub fn iter(&self) -> impl Iterator<Item = &BoundProcess> {
        self.processes.iter()
    }

    /// The touch after step `index` of process `process_id`, its wait counted from
    /// `from`; after the last step, the first of the process its `then` names (handing
    /// the contact over); `None` when the relationship ends there.
    pub fn next_touch(&self, process_id: i64, index: u32, from: Timestamp) -> Option<NextTouch> {
        let b = self.get(process_id)?;
        if let Some(next) = next_touch(&b.process, index, from) {
            return Some(next);
        }
        let key = b.process.then.as_deref()?;
        let target = self.processes.iter().find(|t| t.process.id == key)?;
        let first = target.process.steps.first()?;
        Some(NextTouch {
            step: step_spec(0, first),
            due_at: after(from, first),
            then: Some(target.id),
        })
    }

    /// Whether contacts reach process `process_id` after a sequence ends (another
    /// process, or itself, names it in `then`): its offers use idle capacity, highest
    /// expected value first.
    pub fn follows_a_sequence(&self, process_id: i64) -> bool {
        let Some(b) = self.get(process_id) else {
            return false;
        };
        self.processes
            .iter()
            .any(|p| p.process.then.as_deref() == Some(b.process.id.as_str()))
    }

    /// The event names that can enroll, exit or count as work: the only events the
    /// engine needs to read.
    pub fn event_names(&self, config: &Config) -> Vec<String> {
        let mut names: Vec<String> = vec![
            config.work.opened.clone(),
            config.work.closed.clone(),
            crate::inbound::REPLIED_EVENT.to_owned(),
        ];
        for b in &self.processes {
            if let Enroll::Event(name) = &b.process.enroll {
                names.push(name.clone());
            }
            names.extend(b.process.exit.events.iter().cloned());
        }
        names.sort();
        names.dedup();
        names
    }

    /// What the signals mean for enrollments and work, in order. `now` is when the
    /// engine acts on them: enrollment time and the start of the first step's wait.
    pub fn actions(
        &self,
        config: &Config,
        signals: &[Signal],
        now: Timestamp,
        attribution_window: SignedDuration,
    ) -> Vec<EngineAction> {
        let since = now.saturating_sub(attribution_window).unwrap_or(now);
        let mut actions = Vec::new();
        for signal in signals {
            match signal {
                Signal::StageEntered {
                    contact,
                    from,
                    to,
                    enrollment,
                    id,
                    ..
                } => {
                    for b in &self.processes {
                        if b.process.exits_on_stage(to.as_str()) {
                            actions.push(EngineAction::Exit {
                                contact: *contact,
                                process_id: Some(b.id),
                                reason: format!("stage:{to}"),
                            });
                        }
                    }
                    // An import may withhold the enrollment or start it later.
                    let start = match enrollment {
                        StageEnrollment::Now => Some(now),
                        StageEnrollment::NotBefore(instant) => Some(now.max(*instant)),
                        StageEnrollment::No => None,
                    };
                    for b in &self.processes {
                        if let Some(start) = start
                            && b.process.enrolls_on_stage(to.as_str())
                        {
                            let trigger = EnrollTrigger::StageChange(*id);
                            actions.push(enroll(b, *contact, start, trigger));
                        }
                    }
                    let advanced = match from {
                        Some(from) => {
                            config.stage_index(to.as_str()) > config.stage_index(from.as_str())
                        }
                        None => false,
                    };
                    if advanced {
                        actions.push(EngineAction::Responded {
                            contact: *contact,
                            since,
                        });
                    }
                }
                Signal::Event {
                    contact, name, id, ..
                } => {
                    if *name == config.work.opened {
                        actions.push(EngineAction::OpenWork(1.0));
                        actions.push(EngineAction::Responded {
                            contact: *contact,
                            since,
                        });
                    } else if *name == config.work.closed {
                        actions.push(EngineAction::OpenWork(-1.0));
                    } else if *name == crate::inbound::REPLIED_EVENT {
                        // An answer to an email is the clearest response an offer gets.
                        actions.push(EngineAction::Responded {
                            contact: *contact,
                            since,
                        });
                    }
                    for b in &self.processes {
                        if b.process.exits_on_event(name) {
                            actions.push(EngineAction::Exit {
                                contact: *contact,
                                process_id: Some(b.id),
                                reason: format!("event:{name}"),
                            });
                        }
                    }
                    for b in &self.processes {
                        if b.process.enrolls_on_event(name) {
                            let trigger = EnrollTrigger::Event(*id);
                            actions.push(enroll(b, *contact, now, trigger));
                        }
                    }
                }
            }
        }
        actions
    }
}

/// Enrolls `contact` in `b` as of `start`, because of `trigger`: the first step's wait
/// counts from there.
fn enroll(
    b: &BoundProcess,
    contact: tend_core::ContactId,
    start: Timestamp,
    trigger: EnrollTrigger,
) -> EngineAction {
    let first = &b.process.steps[0];
    EngineAction::Enroll {
        contact,
        process_id: b.id,
        first: step_spec(0, first),
        due_at: after(start, first),
        enrolled_at: start,
        reenroll: b.process.reenroll,
        trigger: Some(trigger),
    }
}

/// The instant `step`'s wait ends, counted from `from`.
pub fn after(from: Timestamp, step: &Step) -> Timestamp {
    let wait = SignedDuration::from_millis(step.wait.as_millis());
    from.saturating_add(wait).unwrap_or(from)
}

/// What the store needs of step `index`.
pub fn step_spec(index: usize, step: &Step) -> StepSpec {
    StepSpec {
        step: index as u32,
        channel: step.channel.kind(),
        intent: step.intent,
    }
}

/// The touch after step `index` of `process`, its wait counted from `from`; `None` after
/// the last step.
pub fn next_touch(process: &Process, index: u32, from: Timestamp) -> Option<NextTouch> {
    let next = index as usize + 1;
    process.steps.get(next).map(|step| NextTouch {
        step: step_spec(next, step),
        due_at: after(from, step),
        then: None,
    })
}

/// A step's identity across edits of its file: its channel and what it sends, with
/// `#2`, `#3`… for repeats within one process.
pub fn step_keys(process: &Process) -> Vec<String> {
    let mut seen: HashMap<String, u32> = HashMap::new();
    process
        .steps
        .iter()
        .map(|step| {
            let base = match &step.channel {
                StepChannel::Email { template } => format!("email:{template}"),
                StepChannel::Task { title, .. } => format!("task:{title}"),
                StepChannel::Webhook { url } => format!("webhook:{url}"),
            };
            let n = seen.entry(base.clone()).or_insert(0);
            *n += 1;
            if *n == 1 { base } else { format!("{base}#{n}") }
        })
        .collect()
}

/// How contacts move when a process's steps change from `old` to `new` keys: a step
/// that stayed keeps its contacts (at its new index); the contacts of a removed step go
/// to the next old step that stayed, or finish the process if none did. Returns the
/// moves and the keys of the removed steps.
pub fn step_moves(
    old: &[String],
    new: &[String],
    process: &Process,
) -> (Vec<StepMove>, Vec<String>) {
    let position = |key: &String| new.iter().position(|k| k == key);
    let mut moves = Vec::new();
    let mut removed = Vec::new();
    for (i, key) in old.iter().enumerate() {
        let (target, kept) = match position(key) {
            Some(j) => (Some(j), true),
            None => {
                removed.push(key.clone());
                (old[i + 1..].iter().find_map(position), false)
            }
        };
        match target {
            // Same place, same step: nothing to move. A removed step's contacts move even
            // to the same index, since another step now stands there.
            Some(j) if j == i && kept => {}
            Some(j) => moves.push(StepMove {
                from: i as u32,
                to: Some(step_spec(j, &process.steps[j])),
            }),
            None => moves.push(StepMove {
                from: i as u32,
                to: None,
            }),
        }
    }
    (moves, removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tend_core::{Duration, Intent};

    fn process(keys: &[&str]) -> Process {
        Process {
            id: "p".into(),
            name: "P".into(),
            enroll: Enroll::Event("E".into()),
            exit: Default::default(),
            max_gap: Duration::from_secs(86_400),
            keep_warm: None,
            reenroll: false,
            then: None,
            steps: keys
                .iter()
                .map(|k| Step {
                    wait: Duration::from_secs(60),
                    channel: StepChannel::Email {
                        template: (*k).into(),
                    },
                    intent: Intent::Nurture,
                })
                .collect(),
        }
    }

    fn keys(p: &Process) -> Vec<String> {
        step_keys(p)
    }

    #[test]
    fn repeated_steps_get_distinct_keys() {
        assert_eq!(
            keys(&process(&["a", "b", "a"])),
            vec!["email:a", "email:b", "email:a#2"]
        );
    }

    #[test]
    fn an_unchanged_process_moves_nobody() {
        let p = process(&["a", "b", "c"]);
        let (moves, removed) = step_moves(&keys(&p), &keys(&p), &p);
        assert!(moves.is_empty());
        assert!(removed.is_empty());
    }

    #[test]
    fn a_removed_step_sends_its_contacts_to_the_next_surviving_one() {
        let old = process(&["a", "b", "c", "d"]);
        let new = process(&["a", "d", "e"]);
        let (moves, removed) = step_moves(&keys(&old), &keys(&new), &new);
        assert_eq!(removed, vec!["email:b", "email:c"]);
        let targets: Vec<(u32, Option<u32>)> = moves
            .iter()
            .map(|m| (m.from, m.to.map(|t| t.step)))
            .collect();
        // b and c go to d, now at index 1; d itself moves from 3 to 1.
        assert_eq!(targets, vec![(1, Some(1)), (2, Some(1)), (3, Some(1))]);
    }

    #[test]
    fn a_removed_step_replaced_at_its_index_still_moves_its_contacts() {
        let old = process(&["a", "b", "c"]);
        let new = process(&["a", "c"]);
        let (moves, _) = step_moves(&keys(&old), &keys(&new), &new);
        let targets: Vec<(u32, Option<u32>)> = moves
            .iter()
            .map(|m| (m.from, m.to.map(|t| t.step)))
            .collect();
        assert_eq!(targets, vec![(1, Some(1)), (2, Some(1))]);
    }

    #[test]
    fn removing_the_last_steps_finishes_their_contacts() {
        let old = process(&["a", "b", "c"]);
        let new = process(&["a"]);
        let (moves, _) = step_moves(&keys(&old), &keys(&new), &new);
        let targets: Vec<(u32, Option<u32>)> = moves
            .iter()
            .map(|m| (m.from, m.to.map(|t| t.step)))
            .collect();
        assert_eq!(targets, vec![(1, None), (2, None)]);
    }

    #[test]
    fn an_inserted_step_shifts_the_later_ones() {
        let old = process(&["a", "b"]);
        let new = process(&["x", "a", "b"]);
        let (moves, removed) = step_moves(&keys(&old), &keys(&new), &new);
        assert!(removed.is_empty());
        let targets: Vec<(u32, Option<u32>)> = moves
            .iter()
            .map(|m| (m.from, m.to.map(|t| t.step)))
            .collect();
        assert_eq!(targets, vec![(0, Some(1)), (1, Some(2))]);
    }
}
