//! The ticket's expiry as text: RFC 3339, as MyCHIPs writes it (a
//! PostgreSQL timestamp turned into JSON by node-postgres, e.g.
//! `2024-05-01T12:34:56.000Z`) and as Notch writes it (whole seconds, UTC,
//! `2024-05-01T12:34:56Z`, from [`crate::export::rfc3339_utc`]).
//!
//! A small parser of our own rather than a date crate: the core must stay
//! small and pure Rust, and only this one shape is needed.

/// The latest expiry a ticket may carry: 9999-12-31T23:59:59Z, the last
/// instant RFC 3339's four-digit year can write.
pub const MAX_UNIX: u64 = 253_402_300_799;

/// Unix seconds of an RFC 3339 date-time: `YYYY-MM-DD`, `T` (or `t` or a
/// space), `HH:MM:SS`, optional fraction (dropped: a ticket expires on a
/// whole second), then `Z` or an offset `±HH:MM`. A time without a zone is
/// refused: it would mean a different instant in every time zone. The error
/// says, in a few words, what is wrong.
pub fn parse_rfc3339(text: &str) -> Result<u64, &'static str> {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Result<i64, &'static str> {
        let part = b.get(range).ok_or("it is too short for a date and time")?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return Err("it is not a date and time like 2024-05-01T12:00:00Z");
        }
        Ok(part.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let at = |i: usize, want: &[u8]| b.get(i).is_some_and(|c| want.contains(c));
    if !(at(4, b"-") && at(7, b"-") && at(10, b"Tt ") && at(13, b":") && at(16, b":")) {
        return Err("it is not a date and time like 2024-05-01T12:00:00Z");
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err("there is no such day");
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err("there is no such time of day");
    }
    let mut rest = b.get(19..).unwrap_or_default();
    if let Some(fraction) = rest.strip_prefix(b".") {
        let len = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if len == 0 {
            return Err("its fraction of a second has no digits");
        }
        rest = &fraction[len..];
    }
    let offset = match rest {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let two = |a: u8, b: u8| -> Result<i64, &'static str> {
                if a.is_ascii_digit() && b.is_ascii_digit() {
                    Ok(i64::from(a - b'0') * 10 + i64::from(b - b'0'))
                } else {
                    Err("its time zone offset is not like +02:00")
                }
            };
            let (h, m) = (two(*h1, *h2)?, two(*m1, *m2)?);
            if h > 23 || m > 59 {
                return Err("its time zone offset is out of range");
            }
            let minutes = h * 60 + m;
            if *sign == b'+' { minutes } else { -minutes }
        }
        [] => return Err("it has no time zone (end it with Z for UTC)"),
        _ => return Err("it ends with something other than Z or a time zone offset"),
    };
    let local = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    let unix = local - offset * 60;
    u64::try_from(unix)
        .ok()
        .filter(|u| *u <= MAX_UNIX)
        .ok_or("it is before 1970 or after 9999")
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`; the inverse of the one in `export`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::rfc3339_utc;

    #[test]
    fn reads_what_mychips_and_notch_write() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20Z"), Ok(1_700_000_000));
        // node-postgres writes milliseconds; a fraction is dropped.
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20.999Z"), Ok(1_700_000_000));
        assert_eq!(
            parse_rfc3339("2023-11-15T00:13:20+02:00"),
            Ok(1_700_000_000)
        );
        assert_eq!(
            parse_rfc3339("2023-11-14t17:13:20-05:00"),
            Ok(1_700_000_000)
        );
        assert_eq!(parse_rfc3339("2000-02-29 00:00:00z"), Ok(951_782_400));
        assert_eq!(parse_rfc3339("9999-12-31T23:59:59Z"), Ok(MAX_UNIX));
        for unix in [0, 1, 59, 86_399, 951_782_400, 1_700_000_000, MAX_UNIX] {
            assert_eq!(parse_rfc3339(&rfc3339_utc(unix)), Ok(unix), "{unix}");
        }
    }

    #[test]
    fn refuses_what_is_not_an_instant() {
        for bad in [
            "",
            "2023-11-14",
            "2023-11-14T22:13:20",
            "2023-11-14T22:13:20+0200",
            "2023-11-14T22:13:20.Z",
            "2023-02-29T00:00:00Z",
            "2023-13-01T00:00:00Z",
            "2023-00-10T00:00:00Z",
            "2023-11-14T24:00:00Z",
            "2023-11-14T22:60:00Z",
            "2023-11-14T22:13:60Z",
            "2023-11-14T22:13:20+24:00",
            "1969-12-31T23:59:59Z",
            "1970-01-01T00:00:00+00:01",
            "+2023-11-14T22:13:20Z",
            "2023-11-14T22:13:20Zjunk",
            "２023-11-14T22:13:20Z",
            "2023-1x-14T22:13:20Z",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad:?}");
        }
    }
}
