//! [`GridArea`]: which synchronous area a deployment is in, as the server tells the dashboard.

/// A synchronous area: whose grid code's frequency bands the dashboard draws. The server's
/// `OGM_GRID_AREA` and the page's `area=` name it ([`GridArea::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GridArea {
    /// Continental Europe (ENTSO-E RG CE).
    #[default]
    ContinentalEurope,
    /// Great Britain (NESO).
    GreatBritain,
    /// The Nordic synchronous area (Statnett, Svenska kraftnät, Fingrid, Energinet).
    Nordic,
}

impl GridArea {
    pub const ALL: [Self; 3] = [Self::ContinentalEurope, Self::GreatBritain, Self::Nordic];

    /// `ce`, `gb`, `nordic`: the URL's `area=` and the server's `OGM_GRID_AREA`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ContinentalEurope => "ce",
            Self::GreatBritain => "gb",
            Self::Nordic => "nordic",
        }
    }

    /// What the area's grid code calls its outer limits (the dashboard's "limits" band).
    pub fn limits_name(self) -> &'static str {
        match self {
            Self::ContinentalEurope => "normal limits",
            Self::GreatBritain => "statutory limits",
            Self::Nordic => "FCR-D fully active",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::ContinentalEurope => "Continental Europe",
            Self::GreatBritain => "Great Britain",
            Self::Nordic => "Nordic",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in GridArea::ALL {
            assert_eq!(GridArea::parse(a.as_str()), Some(a));
        }
        assert_eq!(GridArea::parse("CE"), None);
    }
}
