//! Tend's pure domain: the words of DESIGN.md §2 as types, config and process
//! parsing and validation, and the pacer. Nothing here does IO.

pub mod check;
pub mod config;
pub mod domain;
pub mod duration;
pub mod hours;
pub mod pacer;
pub mod process;
pub mod template;

pub use check::{Diagnostic, Project, ProjectSources, SourceFile, check_project};
pub use config::Config;
pub use domain::{ContactId, Email, EmailError, StageName, TimeZoneName};
pub use duration::{Duration, DurationError};
pub use hours::{DailyWindow, HoursError, WeeklyHours};
pub use pacer::{Channel, Intent};
pub use process::{Enroll, Exit, Process, Step, StepChannel};
pub use template::{RenderContext, RenderedEmail, Template};
