#!/usr/bin/env bash
# Makes the bundled detector from a trained run: copies its checkpoint and run.json into
# weights/bundled/NAME/, fits its temperature and val threshold on its val split (fakelens
# calibrate), measures it (fakelens eval) on the test split and on the same faces inside
# larger photos (tools/reference/faces_in_photos.py), and writes card.json with the figures
# MODEL_CARD.md quotes. Run from the repository root with a release build:
#   tools/bundle_detector.sh RUN_DIR [NAME]
set -euo pipefail
RUN=$1
NAME=${2:-lilxception-lfw-faceswap}
BIN=${FAKELENS_BIN:-target/release/fakelens}
DATA=../shared/datasets/lfw-faceswap
OUT=weights/bundled/$NAME
PHOTOS=target/faces-in-photos
mkdir -p "$OUT"
cp "$RUN/model.safetensors" "$OUT/model.safetensors"
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
EVAL=target/bundle-eval/$NAME
"$BIN" eval --run "$OUT" --data "$DATA" --split test --threshold "$T" --out "$EVAL/test"
"$BIN" eval --run "$OUT" --data "$PHOTOS" --split all --threshold "$T" --out "$EVAL/photos"
python3 - "$OUT" "$EVAL" <<'PY'
import json, sys
out, ev = sys.argv[1], sys.argv[2]
run = json.load(open(f"{out}/run.json"))
card = {"temperature": run["temperature"], "val_threshold": run["val_threshold"],
        "best_epoch": run["best_epoch"], "best_val_acc": run["best_val_acc"]}
for part in ("test", "photos"):
    m = json.load(open(f"{ev}/{part}/metrics.json"))
    c = m["calibration"]
    card[part] = {"images": m["images"], "accuracy": m["accuracy"], "auc": m["auc"],
                  "eer": m["eer"], "ap": m["ap"], "ece": c["calibrated"]["ece"],
                  "ece_raw": c["raw"]["ece"], "brier": c["calibrated"]["brier"]}
json.dump(card, open(f"{out}/card.json", "w"), indent=1)
print(json.dumps(card, indent=1))
PY
