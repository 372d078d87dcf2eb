#!/usr/bin/env bash
# One virtual environment per peer (their pins conflict with each other and with keel's).
set -euo pipefail
cd "$(dirname "$0")"
mk() {  # name, packages...
  local name=$1; shift
  [ -x ".venvs/$name/bin/python" ] && return
  python3 -m venv ".venvs/$name"
  ".venvs/$name/bin/pip" install -q "uv>=0.4,<1"
  ".venvs/$name/bin/uv" pip install -q --python ".venvs/$name/bin/python" "$@"
}
mk pandera "pandera[polars]==0.35.*" polars pandas pyarrow numpy
mk gx "great_expectations==1.24.*" pandas pyarrow numpy polars
mk mlflow "mlflow==3.17.*" scikit-learn numpy
