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
# drift peer: Evidently 0.7 (needs pandas < 3)
if [ "${1:-}" = "--drift" ]; then
  mk evidently "evidently==0.7.*" "pandas<3" pyarrow numpy
fi
# serving peers: the harness's pinned environments (MLflow 3.17, BentoML 1.4) in a writable copy
if [ "${1:-}" = "--serving" ]; then
  mkdir -p .peers-serving && cp -rn peers/serving/* .peers-serving/
  for v in mlflow bento; do
    [ -x ".peers-serving/venv-$v/bin/python" ] && continue
    python3 -m venv ".peers-serving/venv-$v"
    ".peers-serving/venv-$v/bin/pip" install -q "uv>=0.4,<1"
    ".peers-serving/venv-$v/bin/uv" pip install -q --python ".peers-serving/venv-$v/bin/python" -r ".peers-serving/results/freeze-$v.txt"
  done
  command -v wrk >/dev/null || apt-get install -y wrk
fi
