#!/usr/bin/env bash
# On a machine with network: the wheels that a GPU machine without network lacks, for `benchmarks/gpu_run.sh` there.
# The GPU machine has Python 3.12, JAX, PyTorch, timm, NumPy, pandas, scikit-learn, h5py and rich,
# no TensorFlow and no network. The versions are those the tests pass with here.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .whl && mkdir .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    keras==3.15.1 namex==0.1.0 optree==0.20.0 optuna==5.0.0 alembic==1.20.1 Mako==1.4.3 colorlog==6.12.0 \
    SQLAlchemy==2.1.9 greenlet==3.5.6 PyYAML==6.0.4 plotly==7.1.0 narwhals==2.29.0 optuna-dashboard==0.21.0 \
    bottle==0.13.4
python3 -m pip wheel -q --no-deps -w .whl .  # xsearch itself, with its shipped spaces and studies
du -sh .whl
