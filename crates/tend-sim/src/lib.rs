//! Tend's simulator: the real engine and pacer on a virtual clock, against a model of
//! a population of leads and a business that serves the work they bring.

/// The charts, drawn by the shared crate the console uses too.
pub use tend_charts as charts;
mod delivery;
pub mod forecast;
mod metrics;
pub mod outcome;
pub mod report;
mod run;
pub mod scenario;
mod setup;
pub mod table;
mod team;
mod verdict;
mod world;

pub use outcome::{DayRow, SeedRun, SimReport, Spread, Strategy, StrategyRun, Summary};
pub use run::{
    Plan, Progress, SimError, StopSignal, parse_seeds, simulate, simulate_until_stopped,
};
pub use scenario::{Congestion, Scenario, ScenarioError};
pub use verdict::{net, verdict};
