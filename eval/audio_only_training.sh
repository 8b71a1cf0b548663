#!/usr/bin/env bash
# Audio-only training vs training with the true MIDI (the recording-editing issue's comparison).
#
#   bash eval/audio_only_training.sh [WORK_DIR] [STEPS]      # ~15 min on two cores (two trainings side by side)
#
# One instrument (flute) of the 48 kHz corpus (corpus48f, built as the model card says): its train-split
# pieces (~14 minutes) become two training folders, one with the true MIDI beside every take (source=pairs),
# one with the audio alone (source=audio: every take transcribed by the tool itself); its valid/test pieces are
# held out with their true MIDI. The shipped generator is fine-tuned STEPS steps on each, with the shipped
# recipe, and both are evaluated on the held-out pieces (spectral loss against the real audio, pitch accuracy
# of the rendered audio): eval/eval_synthesis.py --all-pieces, figures in WORK_DIR/eval_*.json.
set -euo pipefail
W=${1:-/tmp/audio_only}
STEPS=${2:-800}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
python - "$W" <<'EOF'
import json, shutil, sys
from pathlib import Path
from midi_ddsp.data.datasets import split_of
root = Path(sys.argv[1]); shutil.rmtree(root, ignore_errors=True)
man = json.load(open("corpus48f/manifest.json"))["pieces"]
groups = {e["id"]: e.get("group") for e in json.load(open("cache/corpus48f/manifest.json"))["pieces"]}
for p in (p for p in man if p["id"].startswith("fl_") and p.get("status", "ok") == "ok"):
    split = split_of(groups.get(p["id"]) or str(p.get("melody", p["id"])).split("#")[0])
    for d in (["pairs", "audio"] if split == "train" else ["test"]):
        (root / d).mkdir(parents=True, exist_ok=True)
        shutil.copy(Path("corpus48f") / p["files"]["wav"], root / d / f"{p['id']}.wav")
        if d != "audio":
            shutil.copy(Path("corpus48f") / p["files"]["mid"], root / d / f"{p['id']}.mid")
EOF
for s in pairs audio test; do
  src=pairs; [ "$s" = audio ] && src=audio
  midi-ddsp data cache-features source=$src source_dir="$W/$s" out_dir="$W/cache_$s" instrument=flute sample_rate=48000
  midi-ddsp dump-targets --cache-dir "$W/cache_$s" --out "$W/targets_$s" --workers 1
done
for arm in pairs audio; do
  OMP_NUM_THREADS=1 nice -n 10 midi-ddsp train stage=generator run_dir="$W/run_$arm" \
    stage.warm_start=checkpoints/generator.safetensors \
    stage.normalizer_from=runs/targets48f/control_normalizer.safetensors \
    stage.data.cache_dir="$W/cache_$arm" stage.data.targets_dir="$W/targets_$arm" stage.task.spectral_weight=0 \
    stage.task.width=96 stage.task.prev_dropout=0.6 stage.task.learning_rate=0.0003 stage.task.band_db_weight=12 \
    stage.max_steps="$STEPS" stage.val_every_n_steps=$((STEPS / 2)) trainer.progress_bar=false > "$W/train_$arm.log" 2>&1 &
done
wait
for g in checkpoints/generator.safetensors "$W/run_pairs/model.safetensors" "$W/run_audio/model.safetensors"; do
  name=$(basename "$(dirname "$g")")
  python eval/eval_synthesis.py --cache-dir "$W/cache_test" --targets-dir "$W/targets_test" --generator "$g" \
    --analysis /nonexistent --transfer /nonexistent --all-pieces --clips 40 --json "$W/eval_$name.json" > /dev/null
  python -c "import json,sys; s=json.load(open(sys.argv[1]))['summary']; print(f\"{sys.argv[2]:12s} spectral loss {s['generator_mss']:.3f}  pitch accuracy {s['generated_pitch_acc']:.3f}\")" \
    "$W/eval_$name.json" "$name"
done
