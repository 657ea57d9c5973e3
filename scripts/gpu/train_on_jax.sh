#!/bin/bash
# Train deepspot_v1 on a lent NVIDIA GPU machine (16 cores) that has no TensorFlow and no spatialdata stack and
# cannot reach a package index: Keras runs on JAX (the weights files are backend-independent), the keras / namex /
# optree wheels travel in .devrun/whl, the three training images in .devrun/real, and sitecustomize.py (beside this
# script, copied to .devrun/site) stubs the packages that training does not use. Run from the repository root; OUT
# receives the checkpoint folder as ck.tgz. Re-running on the same warm machine resumes /tmp/ck.
#
# Preparing .devrun (git-ignored; pass it to the device run as a carried path):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 \
#     -d .devrun/whl keras==3.15.1 namex==0.1.0 optree==0.20.0
#   mkdir -p .devrun/real .devrun/site && cp scripts/gpu/sitecustomize.py .devrun/site/
#   cp ../shared/data/real_unlabeled/{rsfish_celegans_embryo_z52,rsfish_celegans_embryo_mip,spotiflow_terra_livecell_2d}.tif .devrun/real/
# VAL sets the per-epoch validation images (48 so far; more cost seconds there, but start a new --out with them).
# CONVS (default 1) sets the convolutions per U-Net level and LR (default 1e-4) the learning rate; INIT may be left
# empty to train from scratch, which a larger network (CONVS=2: 537,617 parameters) needs because the weights of
# the shipped 1-conv network do not fit it. Weights from another architecture fail at load time, not silently.
#
# Stage 4 (0.4.0): INIT=checkpoints/deepspot_v1_blobs/best.weights.h5 VERSION=0.4.0, MINUTES=6.8 then 4.4
#   (23 epochs of 500 steps; that code had no extra noise on the real backgrounds).
# Stage 5 (0.5.0): INIT=checkpoints/deepspot_v1_gpu/last.weights.h5 VERSION=0.5.0.
set -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .devrun/whl/*.whl || exit 3
export PYTHONPATH=/tmp/site:$PWD/src:$PWD/.devrun/site KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi -L
python3 scripts/train.py --config compact --set convs_per_level=${CONVS:-1} --set min_distance=2 --set overlap=48 \
  --set version="\"${VERSION:?}\"" --out /tmp/ck --steps-per-epoch ${STEPS:-500} --batch-size 32 --patch-size 128 \
  --seed 1 --spot-weight 1.0 --background-weight 1.0 ${INIT:+--init-weights "$INIT"} \
  --epochs 1000 --learning-rate ${LR:-1e-4} --validation-images ${VAL:-48} --workers ${WORKERS:-14} --max-minutes ${MINUTES:?} \
  --real-images .devrun/real/rsfish_celegans_embryo_z52.tif .devrun/real/rsfish_celegans_embryo_mip.tif \
  .devrun/real/spotiflow_terra_livecell_2d.tif --real-fraction 0.3 2>&1 | grep -v "^  " | tee $OUT/train_log.txt
tar czf $OUT/ck.tgz -C /tmp ck
