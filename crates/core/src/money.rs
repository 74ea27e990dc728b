//! Amounts: JSON numbers read as exact decimals, never via binary floating point.
//!
//! serde_json runs with `arbitrary_precision`, so a number keeps the digits it
//! was written with and is parsed here straight into a `rust_decimal::Decimal`.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::Number;

/// The exact decimal value of a JSON number (also in exponent notation).
pub fn decimal(n: &Number) -> Option<Decimal> {
    let s = n.as_str();
    if s.contains(['e', 'E']) {
        Decimal::from_scientific(s).ok()
    } else {
        Decimal::from_str(s).ok()
    }
}

/// Formats with exactly two places and a dot (`612.50`); `None` if the
/// amount has more than two significant decimals.
pub fn two_places(d: Decimal) -> Option<String> {
    let n = d.normalize();
    if n.scale() > 2 {
        return None;
    }
    let mut r = n;
    r.rescale(2);
    // rescale keeps fewer places when 28+ digits leave no room for two.
    (r.scale() == 2).then(|| r.to_string())
}

/// Rules see amounts clamped to ±10 trillion euros (in cents), so sums of
/// thousands of them still fit an `i64` and "above the limit" stays true for
/// absurd values.
pub const CENTS_CAP: i64 = 1_000_000_000_000_000;

/// Whole cents of an amount with at most two decimals (for rules), clamped to
/// ±[`CENTS_CAP`]; `None` with more decimals. (Found by fuzzing: the
/// multiplication used to overflow and panic for 29-digit amounts.)
pub fn cents(d: Decimal) -> Option<i64> {
    let n = d.normalize();
    if n.scale() > 2 {
        return None;
    }
    let cap = Decimal::from(CENTS_CAP);
    let c = n
        .checked_mul(Decimal::ONE_HUNDRED)
        .unwrap_or(if n.is_sign_negative() { -cap } else { cap });
    Some(i64::try_from(c.clamp(-cap, cap)).expect("clamped to the i64 range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(s: &str) -> Number {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn exact_two_places() {
        assert_eq!(
            two_places(decimal(&num("612.5")).unwrap()).unwrap(),
            "612.50"
        );
        assert_eq!(
            two_places(decimal(&num("259.0")).unwrap()).unwrap(),
            "259.00"
        );
        assert_eq!(two_places(decimal(&num("0.1")).unwrap()).unwrap(), "0.10");
        assert_eq!(two_places(decimal(&num("1e2")).unwrap()).unwrap(), "100.00");
        assert_eq!(two_places(decimal(&num("10.005")).unwrap()), None);
        assert_eq!(
            two_places(decimal(&num("10.500")).unwrap()).unwrap(),
            "10.50"
        );
    }

    #[test]
    fn huge_amounts_are_clamped_not_panicking() {
        let huge = decimal(&num("16666666666666666666666666666")).unwrap();
        assert_eq!(cents(huge), Some(CENTS_CAP));
        assert_eq!(two_places(huge), None);
        let c = |s: &str| cents(decimal(&num(s)).unwrap());
        assert_eq!(c("-1e28"), Some(-CENTS_CAP));
        assert_eq!(c("92233720368547758.07"), Some(CENTS_CAP));
        assert_eq!(c("9999999999999.99"), Some(999_999_999_999_999));
    }

    #[test]
    fn cents_are_exact_where_floats_are_not() {
        // 0.1 + 0.2 != 0.3 in f64; in cents it is.
        let a = cents(decimal(&num("0.1")).unwrap()).unwrap();
        let b = cents(decimal(&num("0.2")).unwrap()).unwrap();
        assert_eq!(a + b, cents(decimal(&num("0.3")).unwrap()).unwrap());
        assert_eq!(cents(decimal(&num("2500")).unwrap()), Some(250000));
    }
}
