//! The time zone of the timestamps in prefixes and object names: a fixed offset, or a named
//! zone of the IANA database (with its daylight-saving rules), as Firehose's custom time zone.

use chrono::{DateTime, FixedOffset, Utc};

use crate::error::SinkError;

/// A time zone for [`SinkBuilder::time_zone`](crate::SinkBuilder::time_zone). Default UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeZone {
    /// The same offset all year.
    Fixed(FixedOffset),
    /// A zone of the IANA database, such as `Europe/Berlin`: its offset on each record's date.
    Named(chrono_tz::Tz),
}

impl TimeZone {
    /// UTC, the default.
    pub fn utc() -> Self {
        TimeZone::Fixed(FixedOffset::east_opt(0).expect("zero is a valid offset"))
    }

    /// A zone of the IANA database by name (`America/New_York`, `Asia/Tokyo`, `UTC`).
    pub fn named(name: &str) -> Result<Self, SinkError> {
        name.parse::<chrono_tz::Tz>()
            .map(TimeZone::Named)
            .map_err(|_| SinkError::InvalidSetting {
                setting: "time_zone",
                value: name.to_owned(),
                reason: "not a time zone of the IANA database",
            })
    }

    /// The local time of `at` in this zone.
    pub(crate) fn local(&self, at: DateTime<Utc>) -> DateTime<FixedOffset> {
        match self {
            TimeZone::Fixed(offset) => at.with_timezone(offset),
            TimeZone::Named(zone) => at.with_timezone(zone).fixed_offset(),
        }
    }
}

impl Default for TimeZone {
    fn default() -> Self {
        TimeZone::utc()
    }
}

impl From<FixedOffset> for TimeZone {
    fn from(offset: FixedOffset) -> Self {
        TimeZone::Fixed(offset)
    }
}

impl From<chrono_tz::Tz> for TimeZone {
    fn from(zone: chrono_tz::Tz) -> Self {
        TimeZone::Named(zone)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    #[test]
    fn a_named_zone_follows_daylight_saving_time() {
        let berlin = TimeZone::named("Europe/Berlin").unwrap();
        let winter = Utc.with_ymd_and_hms(2026, 1, 15, 23, 30, 0).unwrap();
        let summer = Utc.with_ymd_and_hms(2026, 7, 15, 22, 30, 0).unwrap();
        assert_eq!(
            berlin.local(winter).to_rfc3339(),
            "2026-01-16T00:30:00+01:00"
        );
        assert_eq!(
            berlin.local(summer).to_rfc3339(),
            "2026-07-16T00:30:00+02:00"
        );
    }

    #[test]
    fn fixed_offsets_and_utc() {
        let at = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
        assert_eq!(
            TimeZone::default().local(at).to_rfc3339(),
            "2026-03-01T12:00:00+00:00"
        );
        let india = TimeZone::from(FixedOffset::east_opt(5 * 3600 + 1800).unwrap());
        assert_eq!(india.local(at).to_rfc3339(), "2026-03-01T17:30:00+05:30");
    }

    #[test]
    fn an_unknown_name_is_a_typed_error() {
        let error = TimeZone::named("Mars/Olympus_Mons").unwrap_err();
        assert!(
            matches!(&error, SinkError::InvalidSetting { setting: "time_zone", value, .. } if value == "Mars/Olympus_Mons"),
            "{error}"
        );
    }
}
