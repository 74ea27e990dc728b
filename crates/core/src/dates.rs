//! Calendar helpers for rules: ISO dates, ages and dates relative to the
//! submission day ("today" is always the day of `eingereichtAm`, never the clock).

use chrono::{DateTime, Datelike, Months, NaiveDate};

/// Parses a strict `YYYY-MM-DD` date.
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let year = i32::try_from(num(0..4)?).ok()?;
    NaiveDate::from_ymd_opt(year, num(5..7)?, num(8..10)?)
}

/// Formats as `YYYY-MM-DD` (years 0..=9999) without going through strftime.
pub fn iso(d: NaiveDate) -> String {
    use chrono::Datelike;
    let (y, m, day) = (d.year(), d.month(), d.day());
    if (0..=9999).contains(&y) {
        let mut s = String::with_capacity(10);
        for (n, width) in [(y as u32, 4), (m, 2), (day, 2)] {
            if !s.is_empty() {
                s.push('-');
            }
            let digits = n.to_string();
            for _ in digits.len()..width {
                s.push('0');
            }
            s.push_str(&digits);
        }
        s
    } else {
        d.format("%Y-%m-%d").to_string()
    }
}

/// Parses an RFC 3339 date-time and returns its calendar day as written
/// (the local day of the given offset, not converted to UTC).
pub fn submission_day(s: &str) -> Option<NaiveDate> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|dt| dt.date_naive())
}

/// Completed years from `birth` to `day`.
pub fn age_on(birth: NaiveDate, day: NaiveDate) -> i64 {
    let mut years = i64::from(day.year() - birth.year());
    if (day.month(), day.day()) < (birth.month(), birth.day()) {
        years -= 1;
    }
    years
}

/// `day` moved by `years` (Feb 29 becomes Feb 28 where needed).
pub fn add_years(day: NaiveDate, years: i32) -> Option<NaiveDate> {
    let months = years.unsigned_abs().checked_mul(12)?;
    if years >= 0 {
        day.checked_add_months(Months::new(months))
    } else {
        day.checked_sub_months(Months::new(months))
    }
}

/// The first day of `day`'s month.
pub fn first_of_month(day: NaiveDate) -> NaiveDate {
    day.with_day(1).expect("day 1 exists in every month")
}

/// A date relative to the submission day, as mappings write it:
/// `today`, `first_of_month`, optionally followed by `+N` / `-N` and a unit
/// `y` (years), `m` (months) or `d` (days), e.g. `today-120y`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelDate {
    base: Base,
    amount: i32,
    unit: Unit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base {
    Today,
    FirstOfMonth,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Years,
    Months,
    Days,
}

impl RelDate {
    pub fn parse(s: &str) -> Result<RelDate, String> {
        let (base, rest) = if let Some(r) = s.strip_prefix("today") {
            (Base::Today, r)
        } else if let Some(r) = s.strip_prefix("first_of_month") {
            (Base::FirstOfMonth, r)
        } else {
            return Err(format!(
                "relative date {s:?} must start with 'today' or 'first_of_month'"
            ));
        };
        if rest.is_empty() {
            return Ok(RelDate {
                base,
                amount: 0,
                unit: Unit::Days,
            });
        }
        let (num, unit) = rest.split_at(rest.len() - 1);
        let unit = match unit {
            "y" => Unit::Years,
            "m" => Unit::Months,
            "d" => Unit::Days,
            _ => return Err(format!("relative date {s:?}: unit must be y, m or d")),
        };
        let amount: i32 = num
            .parse()
            .map_err(|_| format!("relative date {s:?}: expected +N or -N before the unit"))?;
        if !(num.starts_with('+') || num.starts_with('-')) {
            return Err(format!(
                "relative date {s:?}: expected +N or -N before the unit"
            ));
        }
        Ok(RelDate { base, amount, unit })
    }

    /// The concrete date for a given submission day.
    pub fn resolve(&self, today: NaiveDate) -> Option<NaiveDate> {
        let base = match self.base {
            Base::Today => today,
            Base::FirstOfMonth => first_of_month(today),
        };
        match self.unit {
            Unit::Years => add_years(base, self.amount),
            Unit::Months => {
                let m = Months::new(self.amount.unsigned_abs());
                if self.amount >= 0 {
                    base.checked_add_months(m)
                } else {
                    base.checked_sub_months(m)
                }
            }
            Unit::Days => base.checked_add_signed(chrono::Duration::days(i64::from(self.amount))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        parse_date(s).unwrap()
    }

    #[test]
    fn strict_dates_only() {
        assert!(parse_date("2026-02-29").is_none());
        assert!(parse_date("2024-02-29").is_some());
        assert!(parse_date("2026-1-05").is_none());
        assert!(parse_date("2026-01-05T00:00").is_none());
    }

    #[test]
    fn iso_formats_like_strftime() {
        for s in ["2026-01-05", "0099-12-31", "1906-11-20"] {
            assert_eq!(iso(d(s)), s);
            assert_eq!(iso(d(s)), d(s).format("%Y-%m-%d").to_string());
        }
    }

    #[test]
    fn submission_day_keeps_local_day() {
        assert_eq!(
            submission_day("2026-11-20T00:30:00+01:00"),
            Some(d("2026-11-20"))
        );
        assert_eq!(submission_day("2026-11-20"), None);
    }

    #[test]
    fn ages_count_completed_years() {
        assert_eq!(age_on(d("2011-11-20"), d("2026-11-20")), 15);
        assert_eq!(age_on(d("2011-11-21"), d("2026-11-20")), 14);
        assert_eq!(age_on(d("2004-02-29"), d("2026-02-28")), 21);
    }

    #[test]
    fn relative_dates() {
        let today = d("2026-11-20");
        assert_eq!(RelDate::parse("today").unwrap().resolve(today), Some(today));
        assert_eq!(
            RelDate::parse("today-120y").unwrap().resolve(today),
            Some(d("1906-11-20"))
        );
        assert_eq!(
            RelDate::parse("first_of_month").unwrap().resolve(today),
            Some(d("2026-11-01"))
        );
        assert_eq!(
            RelDate::parse("today+1d").unwrap().resolve(today),
            Some(d("2026-11-21"))
        );
        assert!(RelDate::parse("yesterday").is_err());
        assert!(RelDate::parse("today120y").is_err());
    }
}
