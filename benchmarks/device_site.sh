#!/usr/bin/env bash
# Build .whl/site.tar.xz: what the lent GPU machine's image lacks for `tpa-dist submit` and the peers
# (ray, duckdb, weightwatcher and their missing needs), for its Python 3.12, in one archive under the device
# tool's 64 MiB carry limit (Ray without its Java jars and dashboard web client: 48 MB). Run here, where pip works.
# Usage: bash benchmarks/device_site.sh   then carry [".whl"] to benchmarks/gpu_check.sh
set -euo pipefail
PY=${PY:-3.12}
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .whl/dl .whl/site && mkdir -p .whl/dl .whl/site
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PY" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl/dl \
  ray==2.60.0 duckdb==2.0.1 weightwatcher==0.7.7 powerlaw==2.0.0 jsonschema==4.26.0 \
  jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1
python3 -m pip install -q --no-deps --no-compile --target .whl/site --python-version "$PY" --implementation cp \
  --only-binary=:all: --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 .whl/dl/*.whl
rm -rf .whl/site/ray/jars .whl/site/ray/dashboard/client/build .whl/site/bin
tar -C .whl/site -cf - . | xz -T0 -6 > .whl/site.tar.xz
rm -rf .whl/dl .whl/site
ls -la .whl/site.tar.xz
