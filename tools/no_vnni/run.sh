#!/usr/bin/env bash
# Run a command as a CPU WITHOUT AVX-512/VNNI would run it (AVX2+FMA only, like the CI machine of
# issue 22), to check that no numeric judgement depends on ONNX Runtime's CPU-dependent kernels.
#
#   run.sh --check                        prove the method changes MLAS's kernel choice (see below)
#   run.sh [--valgrind] -- CMD [ARGS...]  run CMD with `python`/`python3` (and sys.executable of every
#                                         python subprocess) emulated; e.g.
#   run.sh -- python -m pytest -q -p no:cacheprovider tests/export -k weight_axis
#
# How: QEMU user-mode (apt-get install qemu-user) runs the real interpreter with -cpu Haswell, so
# CPUID reports AVX2/FMA and no AVX-512/VNNI/AVX-VNNI/AMX and XCR0 has no AVX-512 state; MLAS's
# platform.cpp then picks the AVX2 u8s8 kernels (vpmaddubsw, which saturates at int16) instead of
# the AVX512-VNNI ones (vpdpbusd). ONNX Runtime has no environment variable to force this.
# A pseudo-venv in $NOVNNI_HOME/env-qemu holds a `python` wrapper; since it is sys.executable
# (qemu -0), `subprocess.run([sys.executable, ...])` children are emulated too, and so are this
# interpreter's console scripts (workbench, polygraphy, jupyter: wrapped in the same bin folder,
# which is first on PATH). Other executables (bash, gcc, chromium...) run natively.
# --audit LOG: also append one JSON line to LOG for every ONNX Runtime session, in any python
# process of the run, that opens a quantized model with graph optimizations on (audit/).
# --native: no emulation (with --audit: list the optimized sessions at full speed).
# --valgrind: the same under `valgrind --tool=none --trace-children=yes` (whose synthetic CPUID is
# a Haswell without AVX-512); about 2x slower than QEMU, but follows every exec.
# Env: NOVNNI_CPU (QEMU CPU model, default Haswell without the features TCG cannot emulate),
#      NOVNNI_HOME (default: $TMPDIR/workbench-no-vnni), NOVNNI_NICE (default 10). Needs qemu-user (apt).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
home="${NOVNNI_HOME:-${TMPDIR:-/tmp}/workbench-no-vnni}"; mkdir -p "$home"
cpu="${NOVNNI_CPU:-Haswell-noTSX,-pcid,-x2apic,-tsc-deadline,-invpcid,-rdseed,-3dnowprefetch,-xsavec}"
nice_n="${NOVNNI_NICE:-10}"
mode=qemu check=0 audit=""
while [ $# -gt 0 ]; do
  case "$1" in
    --valgrind) mode=valgrind; shift ;;
    --native) mode=native; shift ;;
    --check) check=1; shift ;;
    --audit) audit="$(realpath -m "$2")"; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) break ;;
  esac
done

if [ "$mode" = qemu ] && ! command -v qemu-x86_64 >/dev/null; then
  echo "run.sh: qemu-x86_64 not found: apt-get install -y qemu-user" >&2; exit 2
fi
if [ "$mode" = valgrind ] && ! command -v valgrind >/dev/null; then
  echo "run.sh: valgrind not found: apt-get install -y valgrind" >&2; exit 2
fi

# The real interpreter behind `python` (pyenv shims, venvs), and its venv if any.
read -r real prefix base < <(python3 -c 'import os, sys; print(os.path.realpath(sys.executable), sys.prefix, sys.base_prefix)')
env_dir="$home/env-$mode"   # rewritten in place (never deleted: another run may be using it)
mkdir -p "$env_dir/bin"
if [ "$prefix" != "$base" ]; then          # a venv: keep its packages (lib -> the venv's lib)
  cp "$prefix/pyvenv.cfg" "$env_dir/pyvenv.cfg"
  ln -sfn "$prefix/lib" "$env_dir/lib"; [ -e "$prefix/lib64" ] && ln -sfn "$prefix/lib64" "$env_dir/lib64"
else
  printf 'home = %s\ninclude-system-site-packages = true\n' "$(dirname "$real")" > "$env_dir/pyvenv.cfg"
fi
tmp="$env_dir/bin/.python.$$"
if [ "$mode" = native ]; then
  printf '#!/bin/sh\nexec "%s" "$@"\n' "$real" > "$tmp"
elif [ "$mode" = qemu ]; then
  cat > "$tmp" <<EOF
#!/bin/sh
# python on an AVX2-only CPU (QEMU TCG). \$0 is passed as argv[0] so sys.executable is this file.
exec qemu-x86_64 -cpu "$cpu" -0 "\$0" "$real" "\$@"
EOF
else
  cat > "$tmp" <<EOF
#!/bin/sh
# python under valgrind (synthetic CPUID: Haswell, no AVX-512). Children are traced too.
exec valgrind -q --tool=none --trace-children=yes "$real" "\$@"
EOF
fi
chmod +x "$tmp"; mv -f "$tmp" "$env_dir/bin/python"
ln -sfn python "$env_dir/bin/python3"
# Console scripts of this interpreter (workbench, polygraphy, jupyter...) run through the wrapper
# too, also when a test puts dirname(sys.executable) first on PATH.
bindir="$(dirname "$(python3 -c 'import sys; print(sys.executable)')")"
for script in "$bindir"/*; do
  name="$(basename "$script")"
  case "$name" in python|python3|python3.*) continue ;; esac
  [ -f "$script" ] && [ -x "$script" ] || continue
  head -n 1 "$script" 2>/dev/null | grep -q '^#!.*/python' || continue
  printf '#!/bin/sh\nexec "%s/bin/python" "%s" "$@"\n' "$env_dir" "$script" > "$env_dir/bin/.$name.$$"
  chmod +x "$env_dir/bin/.$name.$$"; mv -f "$env_dir/bin/.$name.$$" "$env_dir/bin/$name"
done
export PATH="$env_dir/bin:$PATH"
if [ -n "$audit" ]; then   # log every optimized session on a quantized model (audit/sitecustomize.py)
  export NOVNNI_AUDIT_LOG="$audit" PYTHONPATH="$here/audit${PYTHONPATH:+:$PYTHONPATH}"
fi

if [ "$check" = 1 ]; then
  gcc -O1 -o "$home/cpuid_probe" "$here/cpuid_probe.c"
  echo "== native CPUID:";   "$home/cpuid_probe"
  echo "== emulated CPUID:"
  if [ "$mode" = qemu ]; then qemu-x86_64 -cpu "$cpu" "$home/cpuid_probe"; else valgrind -q --tool=none "$home/cpuid_probe"; fi
  echo "== native ONNX Runtime:"
  "$real" "$here/probe.py"
  echo "== emulated ONNX Runtime ($mode):"
  nice -n "$nice_n" python "$here/probe.py"
  exit 0
fi
[ $# -gt 0 ] || { echo "run.sh: no command (see --help)" >&2; exit 2; }
exec nice -n "$nice_n" "$@"
