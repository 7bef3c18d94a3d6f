#!/bin/bash
# The em_pretrain.md recipe for one arm: [SEED=s] [EXTRA='--block residual'] experiments/em_pretrain_pipeline.sh NAME [PRETEXT_STEM]
# (outputs in /tmp/empre/NAME; EXTRA goes to the first stage, whose config the second stage inherits)
set -e
NAME=$1; INIT=$2; SEED=${SEED:-0}
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD/src OMP_NUM_THREADS=1
D=/tmp/empre/$NAME
mkdir -p $D
INITARG=""; [ -n "$INIT" ] && INITARG="--init $INIT"
date -u +"%T stage1 start"
nice -n 19 python experiments/train_em.py --dataset gala $INITARG $EXTRA --seed $SEED --epochs 20 --minutes 45 \
    --run-dir $D/stage1 --export $D/fibsem3d-affinity-$NAME
date -u +"%T stage1 done"
python - $D/fibsem3d-affinity-$NAME.json <<'PY'
import json, sys
p = sys.argv[1]; m = json.load(open(p))
s = json.load(open("src/mire/models/fibsem3d-affinity.json"))
r, q = m["normalization"].get("reference") or {}, s["normalization"]["reference"]
print("stage1 reference == shipped reference (quantiles, correlation length):",
      r.get("quantiles") == q["quantiles"] and r.get("correlation_length") == q["correlation_length"])
m["normalization"] = s["normalization"]
json.dump(m, open(p, "w"), indent=1)
PY
nice -n 19 python experiments/train_em.py --dataset gala --from $D/fibsem3d-affinity-$NAME --augment microscope \
    --lr 3e-4 --seed $SEED --epochs 40 --minutes 45 --run-dir $D/stage2 --export $D/fibsem3d-affinity-$NAME-microscope
date -u +"%T stage2 done"
python - $D/fibsem3d-affinity-$NAME-microscope <<'PY'
import json, shutil, sys
stem = sys.argv[1]; m = json.load(open(stem + ".json"))
s = json.load(open("src/mire/models/fibsem3d-affinity.json"))
m["postprocess"] = s["postprocess"]; m["normalization"] = s["normalization"]
shutil.copy(stem + ".safetensors", stem + "-auto.safetensors")
json.dump(m, open(stem + "-auto.json", "w"), indent=1)
PY
nice -n 19 python experiments/em_adaptation.py --volumes gala-test --rows none --model $D/fibsem3d-affinity-$NAME-microscope-auto --out em_pretrain_$NAME
date -u +"%T scored"
