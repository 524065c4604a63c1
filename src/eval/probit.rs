//! The standard normal quantile (probit), for the normal-deviate axes of DET plots:
//! `Φ⁻¹(p) = −√2 · erfc⁻¹(2p)`, with `statrs`'s inverse complementary error function
//! (checked against SciPy's `ndtri`, `tests/fixtures/probit/make.py`).

use statrs::function::erf::erfc_inv;

/// `Φ⁻¹(p)`: −∞ at 0, +∞ at 1, NaN outside [0, 1].
pub fn probit(p: f64) -> f64 {
    if !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    -std::f64::consts::SQRT_2 * erfc_inv(2.0 * p)
}
