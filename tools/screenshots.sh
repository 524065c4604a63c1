#!/usr/bin/env bash
# Screenshots of every tab of the real window under a virtual X display, for the README.
# Needs: xvfb xauth (apt-get install -y xvfb xauth mesa-vulkan-drivers libvulkan1).
# Usage: tools/screenshots.sh [DATASET_DIR [RUN_DIR [COMPARE_RUN...]]]
#   DATASET_DIR: the dataset the Dataset tab opens (default: the built-in demo data)
#   RUN_DIR:     a finished run whose curves the Training tab shows
#   COMPARE_RUN: runs the Compare tab evaluates on their own test split, and the Explain tab
#                shows side by side (default: RUN_DIR)
# FAKELENS_BIN picks the binary (default: a release build); INSPECT (a photo or folder)
# is judged in the Inspect tab by the COMPARE_RUNs.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${FAKELENS_BIN:-target/release/fakelens}
[ -n "${FAKELENS_BIN:-}" ] || cargo build --release
out=docs/screenshots
mkdir -p "$out"
export XDG_RUNTIME_DIR=$(mktemp -d); chmod 700 "$XDG_RUNTIME_DIR"
unset WAYLAND_DISPLAY
compare=("${@:3}")
[ ${#compare[@]} -eq 0 ] && [ $# -ge 2 ] && compare=("$2")
for tab in dataset training compare explain inspect; do
  args=(--tab "$tab" --screenshot "$out/$tab.png")
  [ $# -ge 1 ] && args+=(--data "$1")
  [ $# -ge 2 ] && args+=(--run "$2")
  if [ "$tab" = compare ] || [ "$tab" = explain ]; then
    for run in "${compare[@]}"; do args+=("--$tab" "$run"); done
  fi
  if [ "$tab" = inspect ]; then
    for run in "${compare[@]}"; do args+=(--detector "$run"); done
    [ -n "${INSPECT:-}" ] && args+=(--inspect "$INSPECT")
  fi
  xvfb-run -a -s "-screen 0 1280x1000x24" "$bin" "${args[@]}"
  echo "wrote $out/$tab.png"
done
