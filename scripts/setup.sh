#!/usr/bin/env bash
# Installs everything vectorlake needs into this checkout; safe to run again (each step is skipped when
# its inputs have not changed). Run it as `make setup`.
#
#   .venv/                      Python packages from constraints.txt (the lock file), vectorlake editable
#   .vectorlake/jars/<bundle>/  JVM jars from Maven Central (Maven keeps its own download cache in ~/.m2)
#   .vectorlake/opt/opensearch-<v>/  OpenSearch with a hand-assembled lang-painless module and k-NN
#   chromium + chromium-driver  Debian packages, for the Airflow UI browser test (apt, only when missing)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
STATE="${VECTORLAKE_STATE_DIR:-$ROOT/.vectorlake}"
PY="${PYTHON:-python3.11}"
OS_VERSION=2.19.6
KNN_VERSION=2.19.6.0
SETUP_START=$SECONDS

step() {  # step NAME FUNCTION: runs FUNCTION, printing its name and how long it took
  local name="$1" t0=$SECONDS
  echo "==> $name"
  "$2"
  echo "    $name: $((SECONDS - t0)) s"
}

die() { echo "setup: $*" >&2; exit 1; }

# A stamp records the hash of a step's inputs; the step runs again only when they change.
stamp_ok() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }
inputs_hash() { cat "$@" | sha256sum | cut -c1-16; }

check_tools() {
  command -v "$PY" >/dev/null || die "$PY not found; install Python 3.11 (or set PYTHON=/path/to/python3.11)"
  command -v java >/dev/null || die "java not found; install a Java 17 JDK (Debian: apt-get install openjdk-17-jdk-headless)"
  command -v mvn >/dev/null || die "mvn not found; install Maven (Debian: apt-get install maven)"
  local jv
  jv="$(java -version 2>&1 | head -1 | sed -E 's/.*"([0-9]+).*/\1/')"
  [ "$jv" -ge 17 ] || die "Java $jv found; Spark 4 and OpenSearch 2.19 need Java 17 or newer"
  echo "    $("$PY" --version), Java $jv, $(mvn -B -Dstyle.color=never -v 2>/dev/null | head -1 | cut -d" " -f1-3)"
}

python_env() {
  local h
  # "bytecode" in the hash: environments made before packages were compiled at install get compiled once
  h="$( (cat constraints.txt setup.py; echo bytecode) | sha256sum | cut -c1-16)"
  if stamp_ok .venv/.vectorlake-stamp "$h"; then echo "    up to date"; return; fi
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  local uv_pin
  uv_pin="$(grep -E '^uv==' constraints.txt)"
  [ -x .venv/bin/uv ] || .venv/bin/python -m pip install -q "$uv_pin"
  # uv honours the system's CA store (some networks re-sign TLS); its cache is ~/.cache/uv
  # --compile-bytecode: every package's .pyc is written once here. Python only reads them where
  # PYTHONDONTWRITEBYTECODE is set, and without them each process (every command, Spark's Python workers,
  # Airflow's tasks) compiles torch, pandas, mlflow ... again: seconds of CPU per process.
  UV_NATIVE_TLS=1 .venv/bin/uv pip sync -q --compile-bytecode --python .venv/bin/python constraints.txt
  UV_NATIVE_TLS=1 .venv/bin/uv pip install -q --python .venv/bin/python --no-deps -e .
  .venv/bin/python -c "import pyspark, delta, torch, sentence_transformers, open_clip, opensearchpy, mlflow, airflow, dbt, moto, confluent_kafka"
  echo "$h" > .venv/.vectorlake-stamp
}

# copy_bundle NAME: the runtime dependencies of jvm/NAME/pom.xml into $STATE/jars/NAME
copy_bundle() {
  local name="$1" out="$STATE/jars/$1" h
  h="$(inputs_hash "jvm/$name/pom.xml")"
  if stamp_ok "$out/.stamp" "$h"; then echo "    $name: up to date"; return; fi
  rm -rf "$out" && mkdir -p "$out"
  mvn -q -B -Dstyle.color=never -f "jvm/$name/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$out" || die "Maven could not fetch the $name jars (see the output above)"
  echo "$h" > "$out/.stamp"
  echo "    $name: $(find "$out" -maxdepth 1 -type f ! -name .stamp | wc -l) files"
}

jvm_artifacts() {
  copy_bundle spark
  copy_bundle s3a
  copy_bundle kafka
  copy_bundle opensearch
  # Spark already ships many of the connector's transitive jars (hadoop, parquet, jackson, scala...);
  # two versions of one library on the classpath break at run time, so keep only what pyspark lacks.
  local pyjars
  pyjars="$(.venv/bin/python -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))')"
  local f base
  for f in "$STATE"/jars/spark/*.jar; do
    base="$(basename "$f" .jar | sed -E 's/-[0-9][0-9A-Za-z.+-]*$//')"
    if compgen -G "$pyjars/$base-[0-9]*.jar" >/dev/null || [ "$base" = shims ]; then rm -f "$f"; fi
  done
  echo "    spark: kept $(ls "$STATE"/jars/spark/*.jar | wc -l) jars that pyspark does not ship"
}

opensearch_dist() {
  local home="$STATE/opt/opensearch-$OS_VERSION" jars="$STATE/jars/opensearch" h
  h="$(inputs_hash jvm/opensearch/pom.xml scripts/setup.sh)"
  if stamp_ok "$home/.stamp" "$h" && [ -d "$home/plugins/opensearch-knn" ]; then echo "    up to date"; return; fi
  rm -rf "$home" && mkdir -p "$STATE/opt"
  unzip -q "$jars/opensearch-$OS_VERSION.zip" -d "$STATE/opt"
  # The integ-test-zip carries no scripting module, but k-NN extends lang-painless: assemble the module
  # from its Maven jars with the descriptor and security policy the full distribution ships.
  local mod="$home/modules/lang-painless"
  mkdir -p "$mod"
  cp "$jars"/lang-painless-*.jar "$jars"/opensearch-scripting-painless-spi-*.jar "$jars"/antlr4-runtime-*.jar \
     "$jars"/asm-*.jar "$mod/"
  cat > "$mod/plugin-descriptor.properties" <<PROPS
description=An easy, safe and fast scripting language for OpenSearch
version=$OS_VERSION
name=lang-painless
classname=org.opensearch.painless.PainlessPlugin
java.version=11
opensearch.version=$OS_VERSION
custom.foldername=
extended.plugins=
has.native.controller=false
PROPS
  cat > "$mod/plugin-security.policy" <<'POLICY'
grant {
  // painless compiles scripts into classes at run time
  permission java.lang.RuntimePermission "createClassLoader";
  // and looks up the classloader of the allow-listed classes
  permission java.lang.RuntimePermission "getClassLoader";
};
POLICY
  JAVA_HOME="${JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")}" \
    "$home/bin/opensearch-plugin" install --batch "file://$jars/opensearch-knn-$KNN_VERSION.zip" 2>&1 \
    | grep -v -E '^(warning: no-jdk|@|\* java)' | sed 's/^/    /'
  [ -d "$home/plugins/opensearch-knn" ] || die "the k-NN plugin did not install into $home"
  echo "$h" > "$home/.stamp"
}

# The Airflow UI test drives a real headless browser: Debian's chromium and its chromedriver (apt caches the
# packages under /var/cache/apt; nothing is fetched once they are installed).
browser() {
  if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    echo "    $(chromium --version 2>/dev/null | head -1)"; return
  fi
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo -n"
  $sudo apt-get -q update >/dev/null || die "apt-get update failed; install chromium and chromium-driver by hand"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get -q install -y --no-install-recommends chromium chromium-driver \
    >/dev/null || die "could not install chromium and chromium-driver (Debian packages) with apt-get"
  echo "    $(chromium --version 2>/dev/null | head -1)"
}

step "tools" check_tools
step "python environment (.venv)" python_env
step "JVM artifacts (Maven)" jvm_artifacts
step "OpenSearch $OS_VERSION + k-NN $KNN_VERSION" opensearch_dist
step "headless browser (chromium)" browser
echo "==> setup done in $((SECONDS - SETUP_START)) s (state: $STATE)"
