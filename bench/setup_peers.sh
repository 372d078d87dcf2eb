#!/usr/bin/env bash
# One virtual environment per peer (their pins conflict with each other and with keel's).
#   bash bench/setup_peers.sh            data-check and registry peers: pandera, GX, MLflow
#   bash bench/setup_peers.sh --drift    Evidently 0.7
#   bash bench/setup_peers.sh --serving  the serving harness's copy, MLflow 3.17 and BentoML 1.4
#                                        from its freeze files, and wrk
# An environment that exists is kept as it is, so a second run needs no network.
set -euo pipefail
cd "$(dirname "$0")"
mk() {  # name, packages...
  local name=$1; shift
  [ -x ".venvs/$name/bin/python" ] && return
  python3 -m venv ".venvs/$name"
  ".venvs/$name/bin/pip" install -q "uv>=0.4,<1"
  ".venvs/$name/bin/uv" pip install -q --python ".venvs/$name/bin/python" "$@"
}
case "${1:-}" in
  "")
    mk pandera "pandera[polars]==0.35.*" polars pandas pyarrow numpy
    mk gx "great_expectations==1.24.*" pandas pyarrow numpy polars
    mk mlflow "mlflow==3.17.*" scikit-learn numpy
    ;;
  --drift)  # Evidently 0.7 needs pandas < 3
    mk evidently "evidently==0.7.*" "pandas<3" pyarrow numpy
    ;;
  --serving)  # the harness's pinned environments in a writable copy
    mkdir -p .peers-serving && cp -rn peers/serving/* .peers-serving/
    for v in mlflow bento; do
      [ -x ".peers-serving/venv-$v/bin/python" ] && continue
      python3 -m venv ".peers-serving/venv-$v"
      ".peers-serving/venv-$v/bin/pip" install -q "uv>=0.4,<1"
      ".peers-serving/venv-$v/bin/uv" pip install -q --python ".peers-serving/venv-$v/bin/python" \
        -r ".peers-serving/results/freeze-$v.txt"
    done
    command -v wrk >/dev/null || apt-get install -y wrk || { apt-get update -qq && apt-get install -y wrk; }
    ;;
  *)
    echo "usage: bash bench/setup_peers.sh [--drift | --serving]" >&2
    exit 2
    ;;
esac
