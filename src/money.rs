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
    Some(r.to_string())
}

/// Whole cents of an amount with at most two decimals (for rules).
pub fn cents(d: Decimal) -> Option<i64> {
    let n = d.normalize();
    if n.scale() > 2 {
        return None;
    }
    let c = n * Decimal::ONE_HUNDRED;
    i64::try_from(c).ok()
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
    fn cents_are_exact_where_floats_are_not() {
        // 0.1 + 0.2 != 0.3 in f64; in cents it is.
        let a = cents(decimal(&num("0.1")).unwrap()).unwrap();
        let b = cents(decimal(&num("0.2")).unwrap()).unwrap();
        assert_eq!(a + b, cents(decimal(&num("0.3")).unwrap()).unwrap());
        assert_eq!(cents(decimal(&num("2500")).unwrap()), Some(250000));
    }
}
