#!/usr/bin/env bash
# Installs what the local stack needs from Debian's packages when it is missing: a JDK (Kafka
# runs on Java 17), Maven (fetches the Kafka jars), the PostgreSQL server, Prometheus, and
# Chromium (only for the dashboard's headless browser test; no service needs it).
# Safe to repeat; does nothing when everything is there. Needs root (or sudo) to install.
set -euo pipefail

missing=()
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing+=(postgresql)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
# promtool (same package) checks the alert rules in the unit tests.
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v runuser >/dev/null 2>&1 || missing+=(util-linux)
# Tests render shipping labels to images (pdftoppm) to decode their barcodes.
command -v pdftoppm >/dev/null 2>&1 || missing+=(poppler-utils)
# ...and read their text back (pdftotext, same package): CJK names must not come out as "?".
command -v pdftotext >/dev/null 2>&1 || missing+=(poppler-utils)
# poppler's CJK character collections, so pdftotext maps the labels' CID fonts back to Unicode.
[ -e /usr/share/poppler/cidToUnicode/Adobe-Japan1 ] || missing+=(poppler-data)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)  # tests only: the dashboard test
# A Chinese font, so the console's browser tests and screenshots show 中文, not empty boxes.
[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || missing+=(fonts-wqy-microhei)

mapfile -t missing < <(printf "%s\n" "${missing[@]}" | sort -u)
if [ ${#missing[@]} -eq 0 ] || [ -z "${missing[0]}" ]; then
  exit 0
fi
echo "[deps] installing: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "[deps] ERROR: need root to install ${missing[*]} (apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts a default cluster and a Prometheus of its own where it can; the local stack runs
# its own on the same ports, so stop those.
if command -v pg_lsclusters >/dev/null 2>&1; then
  pg_lsclusters -h 2>/dev/null | awk '$4 == "online" {print $1, $2}' | while read -r v c; do
    $SUDO pg_ctlcluster "$v" "$c" stop || true
  done
fi
pkill -x prometheus 2>/dev/null || true
echo "[deps] done"
