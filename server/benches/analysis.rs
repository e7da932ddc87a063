//! What the server's grid analysis costs per measurement: the event watch
//! (`ogm_grid::Watch`: held for stragglers, RoCoF, events) and the alert engine (every rule of
//! the example file), fed 100 devices at 10 Hz for ten minutes with a −250 mHz trip, ticked as
//! the server ticks them (the watch every 500 ms, the rules every 250 ms).
//!
//! `cargo bench -p ogm-server --bench analysis`

use std::hint::black_box;
use std::time::{Duration, Instant};

use ogm_grid::{DEFAULT_ROCOF_WINDOW_US, EventRules, GridArea, Task, Watch};
use ogm_protocol::DeviceId;
use ogm_server::alerts::engine::Engine;
use ogm_server::alerts::rules::Rules;

const S: i64 = 1_000_000;
const MS: i64 = 1_000;
const DEVICES: usize = 100;
const SECONDS: i64 = 600;

fn frequency(t: i64, d: usize) -> f64 {
    let s = t as f64 / 1e6;
    let trip = if (300.0..320.0).contains(&(s % 600.0)) {
        -0.25
    } else {
        0.0
    };
    50.0 + 0.01 * (s / 30.0).sin() + 0.0005 * ((d * 7 + t as usize / 100_000) % 11) as f64 + trip
}

fn main() {
    let ids: Vec<DeviceId> = (0..DEVICES)
        .map(|d| DeviceId::new(&format!("dev-{d:03}")).expect("an id"))
        .collect();
    let example = include_str!("../../deploy/alerts.example.toml");
    let rules = Rules::parse(example, GridArea::default(), 50.0, None).expect("the example");
    let t0 = 1_800_000_000 * S;
    let n = (SECONDS * 10) as usize * DEVICES;

    let mut watch = Watch::new(
        EventRules::of(GridArea::default(), 50.0),
        DEFAULT_ROCOF_WINDOW_US,
    );
    let started = Instant::now();
    let mut tasks = 0;
    for step in 0..SECONDS * 10 {
        let t = t0 + step * 100 * MS;
        for (d, id) in ids.iter().enumerate() {
            watch.push(id, t, frequency(t - t0, d));
        }
        if step % 5 == 4 {
            for task in watch.tick(500 * MS) {
                tasks += 1;
                // A device's first reading asks for a rewind; the store has nothing before.
                if let Task::Rewind {
                    device, upto_us, ..
                } = task
                {
                    black_box(watch.rewound(&device, upto_us, upto_us, Vec::new()));
                }
            }
        }
    }
    let watch_ns = started.elapsed().as_nanos() as f64 / n as f64;

    let mut engine = Engine::new(rules.rules.clone(), 50.0, DEFAULT_ROCOF_WINDOW_US, t0);
    let started = Instant::now();
    let mut transitions = 0;
    for step in 0..SECONDS * 10 {
        let t = t0 + step * 100 * MS;
        for (d, id) in ids.iter().enumerate() {
            engine.observe(id, t, frequency(t - t0, d), t + 20 * MS);
        }
        engine.set_server_ok(true);
        if step % 5 == 1 || step % 5 == 3 {
            transitions += black_box(engine.tick(t + 30 * MS)).len();
        }
    }
    let engine_ns = started.elapsed().as_nanos() as f64 / n as f64;
    let budget = Duration::from_secs(1).as_nanos() as f64 / (DEVICES as f64 * 10.0);
    println!(
        "FIGURE analysis per measurement ({DEVICES} devices × 10 Hz, {SECONDS} s): event watch {watch_ns:.0} ns ({tasks} tasks), alert rules {engine_ns:.0} ns ({transitions} transitions); at 1,000 msg/s that is {:.2} % of one core",
        (watch_ns + engine_ns) / budget * 100.0
    );
}
