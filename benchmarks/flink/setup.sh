#!/usr/bin/env bash
# Installs Apache Flink (PyFlink, which bundles Flink's jars) into a virtual
# environment for nexmark-bench's Flink column: `--flink <venv>/bin/python`.
# Needs a JDK 17 (the machine's default Java) and PyPI.
set -euo pipefail
venv="${1:-target/flink-venv}"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet apache-flink==2.3.0
echo "$venv/bin/python"
