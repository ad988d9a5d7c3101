//! The scenarios of issue #6 and how to run one.
//!
//! Every scenario forms the network first (coordinators at time zero, workers
//! starting at random within 5 minutes, 10 more minutes to settle), then
//! measures for `hours`. Disruptions are placed at fractions of the window so
//! a longer window scales them.

use std::time::{Duration, Instant};

use kadmesh::time::Time;

use crate::churn::ChurnModel;
use crate::params::{SeedSource, SimParams};
use crate::report::Report;
use crate::world::{Action, ScenarioEvent, World};

/// Discovers per minute of `crash30-discover` when none are asked for.
pub const DISCOVERS_PER_MIN: f64 = 200.0;

/// A named experiment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// 2000 workers, no churn, 1000 lookups a minute.
    Steady,
    /// Half as many again join within one minute.
    FlashCrowd,
    /// 30% of workers crash at once and never return.
    Crash30,
    /// Asia, Oceania and South America are cut off, then the cut heals.
    Partition,
    /// Every coordinator dies for good, under churn.
    CoordinatorLoss,
    /// A day of churn at 2000 workers.
    ChurnDay,
    /// Crash30 with discovers measured, and apart in the 10 minutes after the crash.
    Crash30Discover,
}

/// Options common to all scenarios (command-line overrides).
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Seed of the run.
    pub seed: u64,
    /// Workers at the start (scenario default when `None`).
    pub workers: Option<u32>,
    /// Measurement window in hours (scenario default when `None`).
    pub hours: Option<f64>,
    /// Lookups per minute.
    pub lookups_per_min: f64,
    /// Seed source of fresh nodes.
    pub seed_source: SeedSource,
    /// Print progress to stderr.
    pub progress: bool,
    /// Overrides the engines' `record_ttl`.
    pub record_ttl: Option<Duration>,
    /// Overrides the engines' `replicate_interval`.
    pub replicate_interval: Option<Duration>,
    /// Overrides the engines' `put_lookup_every`.
    pub put_lookup_every: Option<Duration>,
    /// Overrides the engines' `get_copies`.
    pub get_copies: Option<usize>,
    /// Overrides the engines' `lookup_rank_slack`.
    pub rank_slack: Option<usize>,
    /// Overrides the engines' `bucket_widening`.
    pub bucket_widening: Option<u32>,
    /// Overrides the engines' `lookup_replica_fanout`.
    pub replica_fanout: Option<bool>,
    /// Overrides the engines' `lookup_replica_width`.
    pub replica_width: Option<usize>,
    /// Overrides the engines' `lookup_stall_min`.
    pub lookup_stall_min: Option<Duration>,
    /// Overrides the engines' `lost_recheck_every`.
    pub lost_recheck: Option<Duration>,
    /// Wall-clock budget per scenario (see [`SimParams::max_wall`]).
    pub max_wall: Option<Duration>,
    /// Threads per scenario (see [`SimParams::threads`]).
    pub threads: usize,
    /// Turns the engines' defences off (`kadmesh::limits::Limits::off`),
    /// to measure what they cost legitimate traffic.
    pub no_limits: bool,
    /// Workers sign their announcements (see [`SimParams::signed`]).
    pub signed: bool,
    /// Discovers per minute (0: none; see [`SimParams::discovers_per_min`]).
    pub discovers_per_min: f64,
    /// Share of discovers by routers (see [`SimParams::router_share`]).
    pub router_share: Option<f64>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            seed: 1,
            workers: None,
            hours: None,
            lookups_per_min: 1000.0,
            seed_source: SeedSource::Coordinator,
            progress: false,
            record_ttl: None,
            replicate_interval: None,
            put_lookup_every: None,
            get_copies: None,
            rank_slack: None,
            bucket_widening: None,
            replica_fanout: None,
            replica_width: None,
            lookup_stall_min: None,
            lost_recheck: None,
            max_wall: None,
            threads: 1,
            no_limits: false,
            signed: false,
            discovers_per_min: 0.0,
            router_share: None,
        }
    }
}

impl Scenario {
    /// Every scenario, in report order.
    pub const ALL: [Scenario; 7] = [
        Scenario::Steady,
        Scenario::FlashCrowd,
        Scenario::Crash30,
        Scenario::Partition,
        Scenario::CoordinatorLoss,
        Scenario::ChurnDay,
        Scenario::Crash30Discover,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Steady => "steady",
            Scenario::FlashCrowd => "flash-crowd",
            Scenario::Crash30 => "crash30",
            Scenario::Partition => "partition",
            Scenario::CoordinatorLoss => "coordinator-loss",
            Scenario::ChurnDay => "churn-day",
            Scenario::Crash30Discover => "crash30-discover",
        }
    }

    /// The scenario called `name`.
    pub fn parse(name: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.name() == name)
    }

    fn default_hours(self) -> f64 {
        match self {
            Scenario::ChurnDay => 24.0,
            Scenario::CoordinatorLoss => 2.0,
            _ => 1.0,
        }
    }

    /// The run parameters and the disruptions (at offsets into the window).
    pub fn build(self, o: &RunOptions) -> (SimParams, Vec<(Duration, ScenarioEvent, &'static str)>) {
        let workers = o.workers.unwrap_or(2000);
        let mut p = SimParams::new(o.seed, workers);
        let hours = o.hours.unwrap_or(self.default_hours());
        p.duration = Duration::from_secs_f64(hours * 3600.0);
        p.lookups_per_min = o.lookups_per_min;
        p.seed_source = o.seed_source;
        p.progress = o.progress.then(|| self.name().to_string());
        p.max_wall = o.max_wall;
        p.threads = o.threads;
        p.engine.record_ttl = o.record_ttl.unwrap_or(p.engine.record_ttl);
        p.engine.replicate_interval = o.replicate_interval.unwrap_or(p.engine.replicate_interval);
        p.engine.put_lookup_every = o.put_lookup_every.unwrap_or(p.engine.put_lookup_every);
        p.engine.get_copies = o.get_copies.unwrap_or(p.engine.get_copies).max(1);
        p.engine.lookup_rank_slack = o.rank_slack.unwrap_or(p.engine.lookup_rank_slack);
        p.engine.bucket_widening = o.bucket_widening.unwrap_or(p.engine.bucket_widening);
        p.engine.lookup_replica_fanout = o.replica_fanout.unwrap_or(p.engine.lookup_replica_fanout);
        p.engine.lookup_replica_width = o.replica_width.unwrap_or(p.engine.lookup_replica_width);
        p.engine.lookup_stall_min = o.lookup_stall_min.unwrap_or(p.engine.lookup_stall_min);
        p.engine.lost_recheck_every = o.lost_recheck.unwrap_or(p.engine.lost_recheck_every);
        p.signed = o.signed;
        p.discovers_per_min = o.discovers_per_min;
        p.router_share = o.router_share.unwrap_or(p.router_share);
        if o.no_limits {
            p.engine.limits = kadmesh::limits::Limits::off();
        }
        let at = |f: f64| p.duration.mul_f64(f);
        let events = match self {
            Scenario::Steady => vec![],
            Scenario::FlashCrowd => {
                let crowd = ScenarioEvent::FlashCrowd { count: workers.div_ceil(2), over: Duration::from_secs(60) };
                vec![(at(0.25), crowd, "flash crowd")]
            }
            Scenario::Crash30 => vec![(at(0.25), ScenarioEvent::CrashFraction(0.3), "30% crash")],
            Scenario::Crash30Discover => {
                if p.discovers_per_min <= 0.0 {
                    p.discovers_per_min = DISCOVERS_PER_MIN;
                }
                p.disrupted_at = Some(at(0.25));
                vec![(at(0.25), ScenarioEvent::CrashFraction(0.3), "30% crash")]
            }
            Scenario::Partition => {
                p.late_from = Some(at(0.5));
                vec![
                    (at(0.25), ScenarioEvent::Partition(vec![3, 4, 5]), "partition"),
                    (at(0.5), ScenarioEvent::Heal, "heal"),
                ]
            }
            Scenario::CoordinatorLoss => {
                p.churn = Some(ChurnModel::default());
                vec![(at(0.25), ScenarioEvent::KillCoordinators, "coordinators lost")]
            }
            Scenario::ChurnDay => {
                p.churn = Some(ChurnModel::default());
                vec![]
            }
        };
        (p, events)
    }

    /// Runs the scenario and reports on it.
    pub fn run(self, o: &RunOptions) -> Report {
        let (params, events) = self.build(o);
        run_params(self.name(), params, events)
    }
}

/// Runs a world with `params`, injecting `events` at offsets into the
/// measurement window, and reports on it under `name`.
// The wall clock is only reported next to the results, never used in them.
#[allow(clippy::disallowed_methods)]
pub fn run_params(name: &str, params: SimParams, events: Vec<(Duration, ScenarioEvent, &'static str)>) -> Report {
    let wall = Instant::now();
    let (mut world, markers) = simulate(params, events);
    Report::build(name, &mut world, markers, wall.elapsed())
}

/// Runs a world to its end and returns it with chart markers (minutes, label).
pub fn simulate(
    params: SimParams,
    events: Vec<(Duration, ScenarioEvent, &'static str)>,
) -> (World, Vec<(f64, String)>) {
    let warmup = params.warmup;
    let end = Time::ZERO + params.end();
    let mut world = World::new(params);
    let mut markers = vec![(warmup.as_secs_f64() / 60.0, "window".to_string())];
    for (offset, ev, label) in events {
        world.schedule(Time::ZERO + warmup + offset, Action::Scenario(ev));
        markers.push(((warmup + offset).as_secs_f64() / 60.0, label.to_string()));
    }
    world.run_until(end);
    world.finish();
    (world, markers)
}
