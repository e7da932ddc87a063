//! [`Bands`]: the frequency bands of a synchronous area ([`GridArea`]) around its nominal
//! frequency.

use ogm_protocol::GridArea;

/// Frequency bands around nominal, mHz, of one synchronous area.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bands {
    pub area: GridArea,
    pub nominal_hz: f64,
    /// Primary control dead band: ± this.
    pub deadband_mhz: f64,
    /// The standard frequency range (the quality indicator: share of time outside ± this).
    pub normal_mhz: f64,
    /// The limits of normal operation: containment reserves fully active at ± this.
    pub limit_mhz: f64,
    /// Under-frequency load shedding starts this far below nominal.
    pub shedding_mhz: f64,
    /// An excursion beyond ± this is an event (the same in every area).
    pub event_mhz: f64,
}

impl Bands {
    /// The bands of `area` around `nominal_hz`:
    /// - Continental Europe: dead band ±20 mHz, standard range ±50 mHz, FCR fully active and
    ///   the maximum steady-state deviation at ±200 mHz, load shedding from 49.0 Hz.
    /// - Great Britain: Dynamic Containment's dead band ±15 mHz, operational limits ±200 mHz,
    ///   statutory limits ±500 mHz, low-frequency demand disconnection from 48.8 Hz.
    /// - Nordic: FCR-N's ±10 mHz, the standard range 49.9–50.1 Hz (±100 mHz), FCR-D fully
    ///   active at ±500 mHz, load shedding from 48.8 Hz.
    pub fn of(area: GridArea, nominal_hz: f64) -> Self {
        let (deadband_mhz, normal_mhz, limit_mhz, shedding_mhz) = match area {
            GridArea::ContinentalEurope => (20.0, 50.0, 200.0, 1_000.0),
            GridArea::GreatBritain => (15.0, 200.0, 500.0, 1_200.0),
            GridArea::Nordic => (10.0, 100.0, 500.0, 1_200.0),
        };
        Self {
            area,
            nominal_hz,
            deadband_mhz,
            normal_mhz,
            limit_mhz,
            shedding_mhz,
            event_mhz: 100.0,
        }
    }

    /// Continental Europe's bands around `nominal_hz` (49.0 Hz load shedding at 50 Hz).
    pub fn continental_europe(nominal_hz: f64) -> Self {
        Self::of(GridArea::ContinentalEurope, nominal_hz)
    }

    /// Deviation from nominal, mHz.
    pub fn deviation_mhz(&self, f_hz: f64) -> f64 {
        (f_hz - self.nominal_hz) * 1000.0
    }

    /// `(name, low Hz, high Hz)` of each band, for labels and the page's data attributes.
    pub fn table(&self) -> [(&'static str, f64, f64); 4] {
        let n = self.nominal_hz;
        let hz = |mhz: f64| mhz / 1000.0;
        [
            (
                "deadband",
                n - hz(self.deadband_mhz),
                n + hz(self.deadband_mhz),
            ),
            ("normal", n - hz(self.normal_mhz), n + hz(self.normal_mhz)),
            ("limits", n - hz(self.limit_mhz), n + hz(self.limit_mhz)),
            ("load-shedding", n - hz(self.shedding_mhz), f64::INFINITY),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_follow_the_area() {
        for a in GridArea::ALL {
            assert_eq!(GridArea::parse(a.as_str()), Some(a));
        }
        assert_eq!(GridArea::parse("CE"), None);
        let gb = Bands::of(GridArea::GreatBritain, 50.0).table();
        assert!((gb[1].1 - 49.8).abs() < 1e-9 && (gb[2].2 - 50.5).abs() < 1e-9);
        assert!((gb[3].1 - 48.8).abs() < 1e-9);
        let nordic = Bands::of(GridArea::Nordic, 50.0).table();
        assert!((nordic[1].1 - 49.9).abs() < 1e-9 && (nordic[2].1 - 49.5).abs() < 1e-9);
        // Events are the same everywhere: ±100 mHz.
        assert!(
            GridArea::ALL
                .iter()
                .all(|a| Bands::of(*a, 50.0).event_mhz == 100.0)
        );
    }

    #[test]
    fn bands_follow_the_nominal_frequency() {
        let b = Bands::continental_europe(60.0);
        let t = b.table();
        assert_eq!(t[0].0, "deadband");
        assert!((t[0].1 - 59.98).abs() < 1e-9 && (t[0].2 - 60.02).abs() < 1e-9);
        assert!((t[2].1 - 59.8).abs() < 1e-9);
        assert!((t[3].1 - 59.0).abs() < 1e-9);
        assert!((Bands::continental_europe(50.0).table()[3].1 - 49.0).abs() < 1e-9);
        assert!((b.deviation_mhz(60.1) - 100.0).abs() < 1e-9);
    }
}
