#!/usr/bin/env bash
# One idempotent setup step for a fresh machine: system packages (WordNet 3.0, Chromium),
# a virtual environment with requirements.txt, WordNet laid out for NLTK in .data/, and a
# PostgreSQL server for the tests (the configured one, else a private cluster in .data/pg).
# Every step checks first and skips what is already done, so re-running costs seconds.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
data="${CONVIS_DATA_DIR:-$root/.data}"
say() { printf '[setup] %s\n' "$*" >&2; }

# 1. System packages from Debian (WordNet 3.0 database files, Chromium for browser tests).
need=()
for pkg in wordnet-base wordnet-sense-index chromium; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null; then
    say "missing system packages: ${need[*]} (install them with apt-get as root)"; exit 1
  fi
  sudo_="" ; [ "$(id -u)" -ne 0 ] && sudo_="sudo"
  say "installing ${need[*]}"
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq "${need[@]}" >/dev/null
fi

# 2. Python virtual environment with the exact lock requirements.txt (made from requirements.in
#    by scripts/lock_requirements.py; pip itself is locked too). Skipped when the lock is unchanged.
py="${PYTHON:-python3}"
[ -x .venv/bin/python ] || { say "creating .venv"; "$py" -m venv .venv; }
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing the locked Python packages (first time: several minutes)"
  .venv/bin/python -m pip install -q -r requirements.txt
  echo "$want" > "$stamp"
fi

# 3. WordNet 3.0 for NLTK: a real copy (not symlinks) plus the lexnames file NLTK needs.
wn="$data/nltk_data/corpora/wordnet"
if [ ! -f "$wn/lexnames" ] || [ ! -f "$wn/data.noun" ]; then
  say "laying out WordNet 3.0 in $wn"
  mkdir -p "$wn"
  cp -rL /usr/share/wordnet/. "$wn/"
  .venv/bin/python scripts/write_lexnames.py "$wn/lexnames"
fi
mkdir -p "$data/cache"

# 4. PostgreSQL for the tests, found from configuration ($CONVIS_PG_ADMIN_URL, else the URL a
#    previous run wrote to $data/pg/admin_url, else postgres@127.0.0.1:5432; see study/config.py)
#    with a real connection; when none answers, Debian's postgresql is installed if needed and a
#    private cluster is started under $data/pg (scripts/ensure_postgres.py).
.venv/bin/python scripts/ensure_postgres.py
