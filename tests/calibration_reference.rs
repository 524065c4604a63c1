//! Temperature scaling, expected calibration error, Brier score and the reliability diagram
//! against SciPy / scikit-learn / numpy on committed cases (tests/fixtures/calibration,
//! written by make.py beside them).

use fakelens::eval::calibration::{CALIBRATION_BINS, Calibration, fit_temperature};

#[derive(serde::Deserialize)]
struct At {
    nll: f64,
    brier: f64,
    ece: f64,
    fake_fraction: Vec<f64>,
    mean_probability: Vec<f64>,
}

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    margins: Vec<f64>,
    labels: Vec<u8>,
    temperature: f64,
    raw: At,
    calibrated: At,
}

fn check(name: &str, got: &Calibration, want: &At) {
    // Sums of a few hundred doubles in another order: 1e-12 relative.
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * (1.0 + b.abs());
    assert!(
        close(got.nll, want.nll),
        "{name} nll {} vs {}",
        got.nll,
        want.nll
    );
    assert!(
        close(got.brier, want.brier),
        "{name} brier {} vs {}",
        got.brier,
        want.brier
    );
    assert!(
        close(got.ece, want.ece),
        "{name} ece {} vs {}",
        got.ece,
        want.ece
    );
    assert_eq!(
        got.reliability.len(),
        want.fake_fraction.len(),
        "{name} bins"
    );
    for (bin, (&frac, &mean)) in got
        .reliability
        .iter()
        .zip(want.fake_fraction.iter().zip(&want.mean_probability))
    {
        assert!(
            close(bin.fake_fraction, frac),
            "{name} fraction {bin:?} vs {frac}"
        );
        assert!(
            close(bin.mean_probability, mean),
            "{name} mean {bin:?} vs {mean}"
        );
    }
}

#[test]
fn calibration_equals_scipy_and_scikit_learn() {
    let text = include_str!("fixtures/calibration/expected.json");
    let cases: Vec<Case> = serde_json::from_str(text).unwrap();
    assert_eq!(cases.len(), 2);
    for case in cases {
        let labels: Vec<bool> = case.labels.iter().map(|&l| l == 1).collect();
        let t = fit_temperature(&case.margins, &labels).unwrap();
        // Both searches stop within 1e-10 of log T: the optimum agrees to 1e-6.
        assert!(
            (t - case.temperature).abs() <= 1e-6 * case.temperature,
            "{}: T {t} vs {}",
            case.name,
            case.temperature
        );
        assert_eq!(CALIBRATION_BINS, 15);
        check(
            &case.name,
            &Calibration::at(&case.margins, &labels, 1.0),
            &case.raw,
        );
        let calibrated = Calibration::at(&case.margins, &labels, case.temperature);
        check(&case.name, &calibrated, &case.calibrated);
        assert!(
            calibrated.nll <= case.raw.nll,
            "{}: scaling lowers the NLL",
            case.name
        );
    }
}
