//! The little floating-point arithmetic `core` lacks without `std` (no `round`, `floor`, `abs`
//! on stable `core` for every target), done with integer casts. Inputs are finite and well within
//! `i64` wherever these are used; casts saturate otherwise.

/// Nearest integer, halves away from zero.
pub(crate) fn round(x: f64) -> i64 {
    if x >= 0.0 {
        (x + 0.5) as i64
    } else {
        (x - 0.5) as i64
    }
}

/// Largest integer not above `x`.
pub(crate) fn floor(x: f64) -> i64 {
    let i = x as i64;
    if (i as f64) > x { i - 1 } else { i }
}

pub(crate) fn abs(x: f64) -> f64 {
    if x < 0.0 { -x } else { x }
}

/// `x` rounded to `decimals` decimal places (0 to 9).
pub(crate) fn round_to(x: f64, decimals: u32) -> f64 {
    if !x.is_finite() {
        return x;
    }
    let scale = 10u64.pow(decimals.min(9)) as f64;
    let scaled = x * scale;
    // Beyond 2^52 a double has no fraction left to round.
    if abs(scaled) >= 4.5e15 {
        return x;
    }
    round(scaled) as f64 / scale
}

/// The median of `xs`, which it sorts; `None` when empty.
pub(crate) fn median(xs: &mut [f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_unstable_by(f64::total_cmp);
    let n = xs.len();
    Some(if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding() {
        assert_eq!((round(2.5), round(-2.5), round(0.49)), (3, -3, 0));
        assert_eq!((floor(-0.5), floor(1.0), floor(1.9)), (-1, 1, 1));
        assert_eq!(round_to(50.012_345, 4), 50.0123);
        assert_eq!(round_to(-12.345, 1), -12.3);
        assert_eq!(round_to(1e300, 4), 1e300);
        assert!(round_to(f64::NAN, 2).is_nan());
    }

    #[test]
    fn medians() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }
}
