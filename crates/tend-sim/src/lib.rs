//! Tend's simulator: the real engine and pacer on a virtual clock, against a model of
//! a population of leads and a business that serves the work they bring.

pub mod outcome;
pub mod report;
mod run;
pub mod scenario;
pub mod table;
mod world;

pub use outcome::{DayRow, SimReport, Strategy, StrategyRun, Summary};
pub use run::{Progress, SimError, simulate};
pub use scenario::{Scenario, ScenarioError};
