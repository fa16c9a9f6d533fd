//! Wall-clock times for headers and the manifest: UTC as ISO 8601, and the offset that turns
//! a frame's `CLOCK_MONOTONIC` stamp into UTC.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in nanoseconds since 1970 (UTC).
pub fn utc_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// UTC minus `CLOCK_MONOTONIC`, sampled now, in nanoseconds.
pub fn utc_minus_monotonic() -> i128 {
    let mono = shmkit::clock::monotonic_ns();
    i128::from(utc_ns()) - i128::from(mono)
}

/// `ns` since 1970 as `YYYY-MM-DDThh:mm:ss.ffffff` (UTC; the form FITS's `DATE-OBS` takes).
pub fn iso8601(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let micros = (ns % 1_000_000_000) / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn iso8601_matches_known_instants() {
        assert_eq!(super::iso8601(0), "1970-01-01T00:00:00.000000");
        // 2026-12-05T12:34:56.789012 UTC
        assert_eq!(
            super::iso8601(1_796_474_096_789_012_000),
            "2026-12-05T12:34:56.789012"
        );
        assert_eq!(
            super::iso8601(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000000"
        );
    }
}
