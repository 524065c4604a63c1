//! The detection metrics equal scikit-learn's (fixture: tests/fixtures/metrics/make.py):
//! ROC curve and AUC (fake and real score), DET curve, average precision, EER (the
//! DeepfakeBench way) and BPCER20, on tied, all-equal, perfect, inverted and large random
//! score sets; curves point for point and rates to 1e-12. A one-class or empty set, and a
//! non-finite score, are clear errors, never NaN.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use fakelens::eval::metrics::{
    MetricsError, average_precision, bpcer_at_apcer, det_curve, eer, roc_auc, roc_curve,
};

const TOLERANCE: f64 = 1e-12;

fn thresholds(value: &serde_json::Value) -> Vec<f64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap_or(f64::INFINITY))
        .collect()
}

fn assert_curve(name: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{name}: {got:?} vs {want:?}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let same = (g.is_infinite() && g == w) || (g - w).abs() <= TOLERANCE;
        assert!(same, "{name}[{i}]: {g} vs {w}");
    }
}

fn assert_close(name: &str, got: f64, want: f64) {
    assert!((got - want).abs() <= TOLERANCE, "{name}: {got} vs {want}");
}

#[test]
fn metrics_equal_scikit_learn() {
    let fixture = common::fixture("metrics/expected.json");
    for case in fixture.as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let labels: Vec<bool> = common::usizes(&case["labels"])
            .iter()
            .map(|&l| l == 1)
            .collect();
        let scores = common::floats(&case["scores"]);
        let real: Vec<f64> = scores.iter().map(|s| 1.0 - s).collect();

        let roc = roc_curve(&labels, &scores).unwrap();
        assert_curve(
            &format!("{name} roc fpr"),
            &roc.fpr,
            &common::floats(&case["roc"]["fpr"]),
        );
        assert_curve(
            &format!("{name} roc tpr"),
            &roc.tpr,
            &common::floats(&case["roc"]["tpr"]),
        );
        assert_curve(
            &format!("{name} roc thresholds"),
            &roc.thresholds,
            &thresholds(&case["roc"]["thresholds"]),
        );
        assert_close(
            name,
            roc_auc(&labels, &scores).unwrap(),
            case["auc"].as_f64().unwrap(),
        );
        assert_close(
            &format!("{name} real-score auc"),
            roc_auc(&labels, &real).unwrap(),
            case["auc_real_score"].as_f64().unwrap(),
        );

        let det = det_curve(&labels, &scores).unwrap();
        assert_curve(
            &format!("{name} det fpr"),
            &det.fpr,
            &common::floats(&case["det"]["fpr"]),
        );
        assert_curve(
            &format!("{name} det fnr"),
            &det.fnr,
            &common::floats(&case["det"]["fnr"]),
        );
        assert_curve(
            &format!("{name} det thresholds"),
            &det.thresholds,
            &thresholds(&case["det"]["thresholds"]),
        );

        assert_close(
            &format!("{name} ap"),
            average_precision(&labels, &scores).unwrap(),
            case["ap"].as_f64().unwrap(),
        );
        let e = eer(&labels, &scores).unwrap();
        assert_close(
            &format!("{name} eer"),
            e.rate,
            case["eer"].as_f64().unwrap(),
        );
        assert_curve(
            &format!("{name} eer threshold"),
            &[e.threshold],
            &thresholds(&serde_json::json!([case["eer_threshold"]])),
        );
        let b = bpcer_at_apcer(&labels, &scores, 0.05).unwrap();
        assert_close(
            &format!("{name} bpcer20"),
            b.rate,
            case["bpcer20"].as_f64().unwrap(),
        );
        assert_curve(
            &format!("{name} bpcer20 threshold"),
            &[b.threshold],
            &thresholds(&serde_json::json!([case["bpcer20_threshold"]])),
        );
    }
}

#[test]
fn one_class_empty_and_non_finite_sets_are_clear_errors() {
    let only_real = [false, false, false];
    let scores = [0.2, 0.4, 0.9];
    for result in [
        roc_auc(&only_real, &scores),
        average_precision(&only_real, &scores),
        eer(&only_real, &scores).map(|r| r.rate),
        bpcer_at_apcer(&only_real, &scores, 0.05).map(|r| r.rate),
        det_curve(&only_real, &scores).map(|d| d.fpr[0]),
    ] {
        let err = result.unwrap_err();
        assert!(matches!(
            err,
            MetricsError::OneClass {
                present: "real",
                ..
            }
        ));
        assert!(err.to_string().contains("both real and fake"), "{err}");
    }
    let only_fake = [true, true];
    let err = roc_auc(&only_fake, &[0.1, 0.2]).unwrap_err();
    assert!(err.to_string().contains("every image is fake"), "{err}");
    assert_eq!(roc_auc(&[], &[]).unwrap_err(), MetricsError::Empty);
    assert_eq!(
        roc_auc(&[true, false], &[0.3, f64::NAN])
            .unwrap_err()
            .to_string(),
        "score 1 is not a finite number (NaN)"
    );
    assert!(matches!(
        roc_auc(&[true], &[0.3, 0.4]).unwrap_err(),
        MetricsError::LengthMismatch {
            labels: 1,
            scores: 2
        }
    ));
}

/// The probit of the DET axes equals SciPy's `ndtri` to 1e-10 relative, tails included.
#[test]
fn probit_equals_scipy() {
    let fixture = common::fixture("probit/expected.json");
    let p = common::floats(&fixture["p"]);
    let want = common::floats(&fixture["probit"]);
    for (p, want) in p.iter().zip(&want) {
        let got = fakelens::eval::probit::probit(*p);
        assert!(
            (got - want).abs() <= 1e-10 * want.abs().max(1e-3),
            "probit({p}) = {got}, SciPy {want}"
        );
    }
    assert_eq!(fakelens::eval::probit::probit(0.0), f64::NEG_INFINITY);
    assert_eq!(fakelens::eval::probit::probit(1.0), f64::INFINITY);
    assert!(fakelens::eval::probit::probit(1.5).is_nan());
}
