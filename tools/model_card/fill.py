"""Writes MODEL_CARD.md of a bundled detector from its run.json and card.json (the figures
tools/bundle_detector.sh measured) and tools/model_card/template.md.

Usage: python3 tools/model_card/fill.py weights/bundled/NAME
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def degradations(config):
    pa = config.get("photo_augment")
    if not pa:
        return "none"
    return (
        f"with probability {pa['rescale_prob']:g} a down-and-up rescale by a factor in "
        f"[{pa['rescale_min']:g}, 1) with random filters, with probability {pa['jpeg_prob']:g} a "
        f"JPEG re-compression at quality {pa['jpeg_quality_min']}–{pa['jpeg_quality_max']}, with "
        f"probability {pa['blur_prob']:g} a Gaussian blur of σ 0.3–{pa['blur_sigma_max']:g} px"
    )


def history(run):
    """The val accuracy of every epoch and whether the run stopped improving."""
    vals = [e["val_acc"] * 100 for e in run["epochs"]]
    listed = ", ".join(f"{v:.2f}" for v in vals)
    best = run["best_epoch"]
    after = len(vals) - best
    if after >= 1:
        return (f"; val accuracy per epoch {listed} %: training stopped after {after} epoch"
                f"{'s' if after > 1 else ''} without improvement on epoch {best}")
    return (f"; val accuracy per epoch {listed} %: it rose every epoch, so it may not have "
            f"stopped improving")


def main(out):
    card = json.load(open(f"{out}/card.json"))
    run = json.load(open(f"{out}/run.json"))
    t, p = card["test"], card["photos"]
    ok = lambda cond: "met" if cond else "not met"
    targets = (
        f"Targets set for it: test accuracy ≥ 96 % and AUC ≥ 0.99 "
        f"({ok(t['accuracy'] >= 0.96 and t['auc'] >= 0.99)}: {t['accuracy'] * 100:.2f} % / "
        f"{t['auc']:.4f}); faces inside larger photos within 3 points of that "
        f"({ok(t['accuracy'] - p['accuracy'] <= 0.03)}: "
        f"{(t['accuracy'] - p['accuracy']) * 100:+.2f} points); ECE ≤ 0.03 after the "
        f"temperature ({ok(t['ece'] <= 0.03)}: {t['ece']:.4f})."
    )
    f = card.get("f16_check")
    f16_check = (
        f"Stored as f16 because it changes nothing measurable: on the test split the f32 and "
        f"f16 weights give accuracy {f['f32_accuracy'] * 100:.2f} % and "
        f"{f['f16_accuracy'] * 100:.2f} %, AUC {f['f32_auc']:.4f} and {f['f16_auc']:.4f}, and "
        f"raw fake probabilities at most {f['max_abs_diff']:.4f} apart."
        if f else ""
    )
    mins = ", ".join(f"{e['elapsed_secs'] / 60:.0f}" for e in run["epochs"])
    text = open(f"{HERE}/template.md").read().format(
        size_mb=os.path.getsize(f"{out}/model.safetensors") / 1e6,
        degrade=degradations(run["config"]),
        epochs_run=len(run["epochs"]), minutes_per_epoch=mins,
        best_epoch=run["best_epoch"], best_val=run["best_val_acc"] * 100, more=history(run),
        temperature=run["temperature"], threshold=run["val_threshold"],
        t_images=t["images"], t_acc=t["accuracy"] * 100, t_auc=t["auc"], t_eer=t["eer"] * 100,
        t_ece_raw=t["ece_raw"], t_ece=t["ece"], t_brier=t["brier"],
        p_images=p["images"], p_acc=p["accuracy"] * 100, p_auc=p["auc"], p_eer=p["eer"] * 100,
        p_ece_raw=p["ece_raw"], p_ece=p["ece"], p_brier=p["brier"],
        f16_check=f16_check, targets=targets)
    open(f"{out}/MODEL_CARD.md", "w").write(text)
    print(f"wrote {out}/MODEL_CARD.md")


if __name__ == "__main__":
    main(sys.argv[1])
