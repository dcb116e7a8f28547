#!/usr/bin/env bash
# Run the upstream (Python 2) Coordinate client, its test suites and its CLI,
# converted to Python 3, against a Coordinate daemon.
#
# Usage:
#   COORDINATED=target/release/coordinated python-compat-tests/run.sh
#       start "$COORDINATED --cborrpc 127.0.0.1:PORT --config FILE
#       $COORDINATED_ARGS" on a free loopback port and test it
#   COORDINATE_ADDRESS=host:port python-compat-tests/run.sh
#       test an already running daemon (its state is cleared!), started
#       with --config python-compat-tests/daemon-config.yaml
#   python-compat-tests/run.sh --python-daemon
#       test the upstream Python daemon (converted the same way), for
#       comparison and to validate this harness
#
# Options:
#   --python-daemon   start the upstream Python daemon instead
#   --py2-wire        speak as the Python 2 client did: every ASCII string
#                     goes out as a CBOR byte string, and ASCII byte strings
#                     come back as str, Python 2's native string, except
#                     those the test itself sent as bytes (COMPAT_PY2_WIRE=1,
#                     see py2wire.py); not with --python-daemon. Without it
#                     the converted client runs as a plain Python 3 client.
#   --prepare-only    set up .work/ (venv, sources, conversion) and stop
#   --prepared        use .work/ as --prepare-only left it, changing nothing
#                     there: runs against several daemons can then go at
#                     once (give each its own COMPAT_LOGS)
#   --suite NAME      run only this suite (repeatable); names: job_client,
#                     job_flow, task_master, rejester_worker, cli, worker_flow
#   -h, --help        this text
#
# Environment:
#   COORDINATED, COORDINATED_ARGS, COORDINATE_ADDRESS  as above
#   COMPAT_LOGS       where this run's logs, junit reports and pytest's
#                     temporary directories go (default .work/logs)
#   PYTHON            interpreter for the venv (default python3.11, python3)
#   PYTEST_EXTRA      extra pytest arguments, e.g. "-x -vv" (never -k)
#   COMPAT_EXPECTED_CONFIG  with COORDINATE_ADDRESS: the YAML file the
#                     daemon's get_config returns (default daemon-config.yaml;
#                     empty: any mapping)
#
# Everything downloaded or generated lives in python-compat-tests/.work/.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="$HERE/.work"
VENV="$WORK/venv"
SRC="$WORK/src"
LOGS="${COMPAT_LOGS:-$WORK/logs}"

# name==version of the upstream sdists, and the package directory in each
SDISTS=("coordinate==0.1.5" "yakonfig==0.7.7" "dblogger==0.4.14")

# suite name | test file | expected number of tests (all must run and pass)
SUITES=(
  "job_client|$SRC/coordinate/tests/test_job_client.py|14"
  "job_flow|$SRC/coordinate/tests/test_job_flow.py|5"
  "task_master|$SRC/coordinate/tests/test_task_master.py|32"
  "rejester_worker|$SRC/coordinate/tests/test_rejester_worker.py|8"
  "cli|$HERE/test_cli.py|22"
  "worker_flow|$HERE/test_worker_flow.py|2"
)

die() { echo "run.sh: ERROR: $*" >&2; exit 1; }
log() { echo "run.sh: $*" >&2; }

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; }

USE_PYDAEMON=0
PREPARE_ONLY=0
PREPARED=0
ONLY_SUITES=()
while [ $# -gt 0 ]; do
  case "$1" in
    --python-daemon) USE_PYDAEMON=1 ;;
    --py2-wire) export COMPAT_PY2_WIRE=1 ;;
    --prepare-only) PREPARE_ONLY=1 ;;
    --prepared) PREPARED=1 ;;
    --suite) [ $# -ge 2 ] || die "--suite needs a name"; ONLY_SUITES+=("$2"); shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
  shift
done

for s in "${ONLY_SUITES[@]}"; do
  known=0
  for line in "${SUITES[@]}"; do [ "${line%%|*}" = "$s" ] && known=1; done
  [ "$known" = 1 ] || die "unknown suite '$s' (known: $(printf '%s ' "${SUITES[@]%%|*}"))"
done

mkdir -p "$WORK" "$LOGS"

# ---------------------------------------------------------------------------
# 1. Python venv with the pinned dependencies
# ---------------------------------------------------------------------------
pick_python() {
  local cands=()
  if [ -n "${PYTHON:-}" ]; then cands=("$PYTHON"); else cands=(python3.11 python3); fi
  local p
  for p in "${cands[@]}"; do
    if command -v "$p" >/dev/null 2>&1 &&
       "$p" -c 'import sys, lib2to3, venv; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
      echo "$p"; return 0
    fi
  done
  return 1
}

setup_venv() {
  local stamp want
  want="$(cat "$HERE/requirements.txt"; echo "python=$PY_BASE")"
  stamp="$VENV/.compat-requirements"
  if [ -x "$VENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  log "creating venv $VENV ($("$PY_BASE" --version 2>&1))"
  rm -rf "$VENV"
  "$PY_BASE" -m venv "$VENV" || die "cannot create a venv with $PY_BASE"
  log "installing requirements.txt from PyPI"
  if ! "$VENV/bin/python" -m pip install --disable-pip-version-check \
        --no-input -r "$HERE/requirements.txt" >"$LOGS/pip-install.log" 2>&1; then
    tail -n 20 "$LOGS/pip-install.log" >&2
    die "could not install the pinned dependencies (requirements.txt) from PyPI; is PyPI reachable? (full log: $LOGS/pip-install.log)"
  fi
  echo "$want" >"$stamp"
}

# ---------------------------------------------------------------------------
# 2. Upstream sources from the PyPI sdists
# ---------------------------------------------------------------------------
# These are Python 2 packages: pip cannot build their metadata (it runs
# setup.py), so "pip download" fails after unpacking the sdist.  With
# --no-clean it leaves the unpacked tree in its temporary directory, which
# is what we take; their setup.py is never run.
fetch_sdist() {
  local spec="$1" name="${1%%==*}" ver="${1##*==}"
  local dest="$WORK/sdist/$name-$ver"
  if [ -f "$dest/PKG-INFO" ] && [ -d "$dest/$name" ]; then return 0; fi
  log "fetching $spec sdist from PyPI"
  local tmp="$WORK/download/$name-$ver"
  rm -rf "$tmp"; mkdir -p "$tmp/tmp" "$tmp/dl"
  TMPDIR="$tmp/tmp" "$VENV/bin/python" -m pip download --disable-pip-version-check \
      --no-input --no-clean --no-deps --no-binary :all: --no-build-isolation \
      -d "$tmp/dl" "$spec" >"$LOGS/pip-download-$name.log" 2>&1 || true
  local unpacked="" archive
  # newer pip versions might succeed and keep the archive: unpack that
  archive="$(find "$tmp/dl" -maxdepth 1 -name "$name-$ver.tar.gz" -o -maxdepth 1 -name "$name-$ver.zip" | head -n 1)"
  if [ -n "$archive" ]; then
    "$VENV/bin/python" - "$archive" "$tmp/unpack" <<'EOF'
import shutil, sys
shutil.unpack_archive(sys.argv[1], sys.argv[2])
EOF
    unpacked="$(find "$tmp/unpack" -mindepth 1 -maxdepth 1 -type d | head -n 1)"
  else
    unpacked="$(find "$tmp/tmp" -mindepth 2 -maxdepth 2 -type d -name "${name}_*" | head -n 1)"
  fi
  if [ -z "$unpacked" ] || [ ! -f "$unpacked/PKG-INFO" ]; then
    tail -n 20 "$LOGS/pip-download-$name.log" >&2
    die "could not fetch the $spec sdist from PyPI; is PyPI reachable? (log: $LOGS/pip-download-$name.log)"
  fi
  grep -qx "Name: $name" "$unpacked/PKG-INFO" && grep -qx "Version: $ver" "$unpacked/PKG-INFO" ||
    die "$unpacked/PKG-INFO is not $name $ver"
  [ -d "$unpacked/$name" ] || die "the $spec sdist has no $name/ package"
  rm -rf "$dest"; mkdir -p "$WORK/sdist"
  mv "$unpacked" "$dest"
  rm -rf "$tmp"
}

# ---------------------------------------------------------------------------
# 3. Mechanical conversion to Python 3 (lib2to3 + fixups.py), every run
# ---------------------------------------------------------------------------
convert_sources() {
  local new="$WORK/src.new" spec name ver
  rm -rf "$new"; mkdir -p "$new"
  for spec in "${SDISTS[@]}"; do
    name="${spec%%==*}"; ver="${spec##*==}"
    cp -r "$WORK/sdist/$name-$ver/$name" "$new/$name"
    # package metadata, so pkg_resources/importlib.metadata find the dists
    # (coordinate's workers look up their own version) without installing
    if [ -d "$WORK/sdist/$name-$ver/$name.egg-info" ]; then
      cp -r "$WORK/sdist/$name-$ver/$name.egg-info" "$new/$name.egg-info"
    fi
  done
  log "converting to Python 3 with lib2to3"
  if ! "$VENV/bin/python" -W ignore -m lib2to3 -w -n "$new" >"$LOGS/lib2to3.log" 2>&1; then
    tail -n 20 "$LOGS/lib2to3.log" >&2
    die "lib2to3 failed (log: $LOGS/lib2to3.log)"
  fi
  "$VENV/bin/python" "$HERE/fixups.py" "$new" || die "fixups.py failed: an upstream fix no longer matches"
  find "$new" -name '*.bak' -delete
  rm -rf "$SRC"; mv "$new" "$SRC"
}

# bin/ wrappers standing in for the console_scripts of coordinate's setup.py
make_wrappers() {
  mkdir -p "$WORK/bin"
  local pair script target
  for pair in "coordinate:coordinate.coordinatec" \
              "coordinate_worker:coordinate.run_multi_worker" \
              "coordinated-py:coordinate.run"; do
    script="${pair%%:*}"; target="${pair#*:}"
    cat >"$WORK/bin/$script" <<EOF
#!$VENV/bin/python
# console_scripts wrapper generated by python-compat-tests/run.sh
import sys
from $target import main
sys.exit(main())
EOF
    chmod +x "$WORK/bin/$script"
  done
}

if [ "$PREPARED" = 1 ]; then
  [ -x "$VENV/bin/python" ] && [ -d "$SRC/coordinate" ] && [ -x "$WORK/bin/coordinate" ] ||
    die "--prepared: $WORK is not prepared (run with --prepare-only first)"
else
  PY_BASE="$(pick_python)" || die "need Python 3.11 with lib2to3 and venv (set PYTHON=...)"
  setup_venv
  for spec in "${SDISTS[@]}"; do fetch_sdist "$spec"; done
  convert_sources
  make_wrappers
fi

export PYTHONPATH="$SRC:$HERE"
export PATH="$WORK/bin:$VENV/bin:$PATH"
export PYTHONDONTWRITEBYTECODE=1

if [ "$PREPARE_ONLY" = 1 ]; then
  log "prepared $WORK (PYTHONPATH=$PYTHONPATH)"
  exit 0
fi

# ---------------------------------------------------------------------------
# 4. The daemon under test
# ---------------------------------------------------------------------------
DAEMON_PID=""
DAEMON_DESC=""
CONFIG_FILE="$HERE/daemon-config.yaml"
# what `coordinate config` must print (test_cli.py::test_config): our file,
# verbatim; for a daemon given by COORDINATE_ADDRESS, start it with
# `--config python-compat-tests/daemon-config.yaml`, or set
# COMPAT_EXPECTED_CONFIG (empty: accept any mapping)
export COMPAT_EXPECTED_CONFIG="${COMPAT_EXPECTED_CONFIG-$CONFIG_FILE}"
export COMPAT_EXPECTED_CONFIG_EXACT="${COMPAT_EXPECTED_CONFIG_EXACT:-1}"

stop_daemon() {
  if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
    kill -TERM "$DAEMON_PID" 2>/dev/null || true
    local i
    for i in $(seq 1 50); do
      kill -0 "$DAEMON_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$DAEMON_PID" 2>/dev/null || true
    wait "$DAEMON_PID" 2>/dev/null || true
  fi
  DAEMON_PID=""
}
trap stop_daemon EXIT
trap 'exit 130' INT TERM

free_port() {
  "$VENV/bin/python" -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

wait_for_port() {
  local addr="$1" timeout="$2"
  "$VENV/bin/python" - "$addr" "$timeout" "${DAEMON_PID:-}" <<'EOF'
import os, socket, sys, time
host, port = sys.argv[1].rsplit(':', 1)
deadline = time.time() + float(sys.argv[2])
pid = int(sys.argv[3]) if sys.argv[3] else None
while time.time() < deadline:
    if pid is not None:
        try:
            os.kill(pid, 0)
        except OSError:
            sys.exit('daemon (pid %d) exited during startup' % pid)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit('nothing accepts connections on %s after %ss' % (sys.argv[1], sys.argv[2]))
EOF
}

if [ "$USE_PYDAEMON" = 1 ] && [ "${COMPAT_PY2_WIRE:-0}" = 1 ]; then
  die "--py2-wire does not work with --python-daemon (it runs under Python 3 and cannot take byte-string method names)"
fi

if [ "$USE_PYDAEMON" = 1 ] || [ -n "${COORDINATED:-}" ]; then
  # A free port can be taken by another process (a parallel run) before
  # the daemon binds it: then try another.
  for attempt in 1 2 3; do
    PORT="$(free_port)"
    ADDR="127.0.0.1:$PORT"
    if [ "$USE_PYDAEMON" = 1 ]; then
      # Python daemon: yakonfig config; get_config returns the whole merged
      # global config, which includes the keys of our file
      DAEMON_DESC="upstream Python daemon (coordinate 0.1.5, converted)"
      (cd "$WORK" && exec "$WORK/bin/coordinated-py" --host 127.0.0.1 --port "$PORT" \
          -c "$CONFIG_FILE") >"$LOGS/daemon.log" 2>&1 &
      DAEMON_PID=$!
      COMPAT_EXPECTED_CONFIG="$CONFIG_FILE"
      COMPAT_EXPECTED_CONFIG_EXACT=0
    else
      [ -x "$COORDINATED" ] || die "COORDINATED=$COORDINATED is not an executable file"
      DAEMON_DESC="$COORDINATED"
      # Its HTTP API (where it has one) on a free port, so runs never
      # contend for the default 5980.
      http_args=()
      case " ${COORDINATED_ARGS:-} " in
        *" --http "*) ;;
        *) if "$COORDINATED" --help 2>/dev/null | grep -q -- '--http '; then http_args=(--http 127.0.0.1:0); fi ;;
      esac
      # shellcheck disable=SC2086  # COORDINATED_ARGS is a word list
      "$COORDINATED" --cborrpc "$ADDR" "${http_args[@]}" --config "$CONFIG_FILE" ${COORDINATED_ARGS:-} \
          >"$LOGS/daemon.log" 2>&1 &
      DAEMON_PID=$!
      COMPAT_EXPECTED_CONFIG="$CONFIG_FILE"
      COMPAT_EXPECTED_CONFIG_EXACT=1
    fi
    log "started $DAEMON_DESC on $ADDR (pid $DAEMON_PID, log $LOGS/daemon.log)"
    if wait_for_port "$ADDR" 30; then
      break
    fi
    if [ "$attempt" -lt 3 ] && grep -qi "address already in use" "$LOGS/daemon.log"; then
      log "port $PORT was taken before the daemon bound it; trying another"
      stop_daemon
      continue
    fi
    tail -n 30 "$LOGS/daemon.log" >&2 || true
    die "the daemon did not start"
  done
elif [ -n "${COORDINATE_ADDRESS:-}" ]; then
  ADDR="$COORDINATE_ADDRESS"
  DAEMON_DESC="running daemon at $ADDR"
  wait_for_port "$ADDR" 5 || die "no daemon at COORDINATE_ADDRESS=$ADDR"
else
  usage >&2
  die "set COORDINATED (daemon binary) or COORDINATE_ADDRESS (running daemon), or pass --python-daemon"
fi
export COORDINATE_ADDRESS="$ADDR"
export COMPAT_DAEMON_PID="${DAEMON_PID:-}"

# ---------------------------------------------------------------------------
# 5. The suites
# ---------------------------------------------------------------------------
RESULTS=()
OVERALL=0
TOTAL_PASSED=0
TOTAL_FAILED=0

want_suite() {
  [ ${#ONLY_SUITES[@]} -eq 0 ] && return 0
  local s
  for s in "${ONLY_SUITES[@]}"; do [ "$s" = "$1" ] && return 0; done
  return 1
}

case " ${PYTEST_EXTRA:-} " in
  *" -k"*|*" -m"*|*" --deselect"*|*" --lf"*|*" --ff"*|*" --sw"*|*" --stepwise"*)
    die "PYTEST_EXTRA must not select or deselect tests: ${PYTEST_EXTRA}" ;;
esac

for line in "${SUITES[@]}"; do
  IFS='|' read -r name file expected <<<"$line"
  want_suite "$name" || continue
  log "suite $name: $(basename "$file") against $DAEMON_DESC"
  junit="$LOGS/junit-$name.xml"
  rm -f "$junit"
  start=$(date +%s.%N)
  set +e
  # shellcheck disable=SC2086
  (cd "$HERE" && "$VENV/bin/python" -m pytest -p no:cacheprovider -o addopts="" \
      --basetemp="$LOGS/tmp-$name" --junitxml="$junit" -v -rfEsxX ${PYTEST_EXTRA:-} "$file") 2>&1 |
      tee "$LOGS/pytest-$name.log"
  rc=${PIPESTATUS[0]}
  set -e
  end=$(date +%s.%N)
  summary="$("$VENV/bin/python" - "$junit" "$expected" "$rc" "$start" "$end" "$name" <<'EOF'
import sys, xml.etree.ElementTree as ET
junit, expected, rc, start, end, name = sys.argv[1:]
expected, rc = int(expected), int(rc)
secs = float(end) - float(start)
try:
    root = ET.parse(junit).getroot()
except Exception as e:
    print('FAIL %-16s no junit report (pytest exit %d): %s  %.1fs|0|0' % (name, rc, e, secs))
    sys.exit(0)
suites = [root] if root.tag == 'testsuite' else root.findall('testsuite')
tests = sum(int(s.get('tests', 0)) for s in suites)
failures = sum(int(s.get('failures', 0)) for s in suites)
errors = sum(int(s.get('errors', 0)) for s in suites)
skipped = sum(int(s.get('skipped', 0)) for s in suites)
passed = tests - failures - errors - skipped
problems = []
if skipped:
    problems.append('%d skipped/xfailed (not allowed)' % skipped)
if tests < expected:
    problems.append('only %d of %d expected tests ran' % (tests, expected))
if failures or errors:
    problems.append('%d failed, %d errors' % (failures, errors))
if rc != 0 and not problems:
    problems.append('pytest exit status %d' % rc)
verdict = 'FAIL' if problems else 'ok  '
print('%s %-16s %3d passed, %3d failed, %3d errors, %3d skipped (expected %d)  %6.1fs%s|%d|%d'
      % (verdict, name, passed, failures, errors, skipped, expected, secs,
         ('  [' + '; '.join(problems) + ']') if problems else '',
         passed, failures + errors + skipped + max(0, expected - tests)))
EOF
)"
  IFS='|' read -r text p f <<<"$summary"
  RESULTS+=("$text")
  TOTAL_PASSED=$((TOTAL_PASSED + p))
  TOTAL_FAILED=$((TOTAL_FAILED + f))
  case "$text" in FAIL*) OVERALL=1 ;; esac
done

stop_daemon

echo
echo "==================== python-compat-tests summary ===================="
echo "daemon: $DAEMON_DESC"
echo "client: $([ "${COMPAT_PY2_WIRE:-0}" = 1 ] && echo 'Python 2 wire types (--py2-wire)' || echo 'plain Python 3')"
for r in "${RESULTS[@]}"; do echo "$r"; done
echo "python-compat: $TOTAL_PASSED passed, $TOTAL_FAILED failed"
[ ${#RESULTS[@]} -gt 0 ] || die "no suite selected"
exit "$OVERALL"
