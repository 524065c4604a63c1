#!/usr/bin/env bash
# Makes the bundled detector from a trained run: copies its checkpoint (stored as f16) and
# run.json into weights/bundled/NAME/, fits its temperature and val threshold on its val split (fakelens
# calibrate), measures it (fakelens eval) on the test split and on the same faces inside
# larger photos (tools/reference/faces_in_photos.py), checks the f16 weights against the f32
# ones on the test split, and writes card.json and MODEL_CARD.md (tools/model_card/). Needs
# python3 with numpy and safetensors. Run from the repository root with a release build:
#   tools/bundle_detector.sh RUN_DIR [NAME]
set -euo pipefail
RUN=$1
NAME=${2:-lilxception-lfw-faceswap}
BIN=${FAKELENS_BIN:-target/release/fakelens}
DATA=../shared/datasets/lfw-faceswap
DEST=weights/bundled/$NAME
PHOTOS=target/faces-in-photos
EVAL=target/bundle-eval/$NAME
# Made in a staging folder (the app, calibrate included, never writes into weights/bundled),
# then copied into place.
OUT=$EVAL/bundle
rm -rf "$EVAL"
mkdir -p "$OUT" "$DEST"
# f16 storage halves the file; the loader computes in f32 (the check below measures it).
python3 - "$RUN/model.safetensors" "$OUT/model.safetensors" <<'PY'
import sys
import numpy as np
from safetensors.numpy import load_file, save_file
tensors = load_file(sys.argv[1])
save_file({k: v.astype(np.float16) if v.dtype == np.float32 else v for k, v in tensors.items()},
          sys.argv[2])
PY
cp "$RUN/run.json" "$OUT/run.json"
# A snapshot of a run still training is the run stopped at its best epoch so far.
python3 - "$OUT/run.json" <<'PY'
import json, sys
path = sys.argv[1]
run = json.load(open(path))
if run["status"]["state"] == "running":
    run["status"] = {"state": "cancelled"}
json.dump(run, open(path, "w"), indent=2)
PY
"$BIN" calibrate --run "$OUT"
[ -d "$PHOTOS" ] || python3 tools/reference/faces_in_photos.py --split "$DATA/test" --out "$PHOTOS"
T=$(python3 -c "import json;print(json.load(open('$OUT/run.json'))['val_threshold'])")
"$BIN" eval --run "$OUT" --data "$DATA" --split test --threshold "$T" --out "$EVAL/test"
"$BIN" eval --run "$OUT" --data "$PHOTOS" --split all --threshold "$T" --out "$EVAL/photos"
F32=$EVAL/f32
mkdir -p "$F32/run"
cp "$RUN/model.safetensors" "$F32/run/model.safetensors"
cp "$OUT/run.json" "$F32/run/run.json"
"$BIN" eval --run "$F32/run" --data "$DATA" --split test --threshold "$T" --out "$F32/test"
python3 - "$OUT" "$EVAL" "$F32" <<'PY'
import csv, json, sys
out, ev, f32 = sys.argv[1], sys.argv[2], sys.argv[3]
run = json.load(open(f"{out}/run.json"))
card = {"temperature": run["temperature"], "val_threshold": run["val_threshold"],
        "best_epoch": run["best_epoch"], "best_val_acc": run["best_val_acc"]}
for part in ("test", "photos"):
    m = json.load(open(f"{ev}/{part}/metrics.json"))
    c = m["calibration"]
    card[part] = {"images": m["images"], "accuracy": m["accuracy"], "auc": m["auc"],
                  "eer": m["eer"], "ap": m["ap"], "ece": c["calibrated"]["ece"],
                  "ece_raw": c["raw"]["ece"], "brier": c["calibrated"]["brier"]}
scores = lambda d: {r["path"]: float(r["raw_fake_score"]) for r in csv.DictReader(open(f"{d}/test/scores.csv"))}
half, full = scores(ev), scores(f32)
m16, m32 = (json.load(open(f"{d}/test/metrics.json")) for d in (ev, f32))
card["f16_check"] = {"max_abs_diff": max(abs(half[p] - full[p]) for p in full),
                     "f16_accuracy": m16["accuracy"], "f32_accuracy": m32["accuracy"],
                     "f16_auc": m16["auc"], "f32_auc": m32["auc"]}
json.dump(card, open(f"{out}/card.json", "w"), indent=1)
print(json.dumps(card, indent=1))
PY
python3 tools/model_card/fill.py "$OUT"
cp "$OUT"/{model.safetensors,run.json,card.json,MODEL_CARD.md} "$DEST"/
echo "bundled $RUN into $DEST"
