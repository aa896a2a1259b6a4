#!/usr/bin/env bash
# API load figures: GET /health (the HTTP ceiling), GET /v1/events?limit=100 and GET /v1/status at 64 connections
# (wrk, Debian package `wrk`, a separate process), on SQLite and Postgres, with JWT auth off and on, in one run.
# Needs the release binary (cargo build --release -p gemgate), Postgres on 127.0.0.1 (user root), node, and the
# test kit's JavaScript tools in the cache (any test run installs them). BIN=path overrides the binary.
set -euo pipefail
BIN=${BIN:-$HOME/.cache/gemgate/target/release/gemgate}
W=/tmp/load; rm -rf $W; mkdir -p $W
JS=$(ls -d $HOME/.cache/gemgate/js-*/ | head -1)
# A chain with traffic, indexed by the demo (SQLite).
$BIN demo --rounds 3 --chain-port 0 --listen 127.0.0.1:18200 --dir $W/demo > $W/demo.out 2>/dev/null &
DEMO=$!
until grep -q "done in" $W/demo.out 2>/dev/null; do sleep 1; done
CFG=$W/demo/gemgate-demo.toml
# The same chain into Postgres.
psql -h 127.0.0.1 -U root -d postgres -qc "DROP DATABASE IF EXISTS gemgate_load" -c "CREATE DATABASE gemgate_load"
GEMGATE__DATABASE__URL=postgres://root@127.0.0.1:5432/gemgate_load $BIN --log-filter warn index --once --config $CFG
# A JWT issuer (jose) and a token.
node $JS/jwt-issuer.mjs > $W/issuer.out &
ISSUER=$!
until grep -q listening $W/issuer.out 2>/dev/null; do sleep 0.2; done
IP=$(head -1 $W/issuer.out | python3 -c "import json,sys;print(json.load(sys.stdin)['listening'])")
TOKEN=$(curl -s -X POST localhost:$IP/token -d "{\"alg\":\"ES256\",\"claims\":{\"sub\":\"load\",\"iss\":\"https://issuer.test/\",\"aud\":\"gemgate\",\"exp\":$(( $(date +%s) + 3600 )),\"scope\":\"read\"}}" | python3 -c "import json,sys;print(json.load(sys.stdin)['token'])")
serve() { # backend url, jwt on|off, port
  local db=$1 jwt=$2 port=$3 cfg=$W/serve-$port.toml
  printf '[database]\nurl = "%s"\n[api]\nlisten = "127.0.0.1:%s"\n' "$db" "$port" > $cfg
  if [ "$jwt" = on ]; then
    printf 'public_reads = false\n[api.jwt]\njwks_url = "http://127.0.0.1:%s/jwks.json"\nissuer = "https://issuer.test/"\naudience = "gemgate"\n' "$IP" >> $cfg
  fi
  $BIN --log-filter warn serve --config $cfg &
  echo $! > $W/serve.pid
  until curl -s localhost:$port/health > /dev/null; do sleep 0.2; done
}
printf '%-9s %-4s %-11s %10s %9s %9s\n' backend jwt endpoint "req/s" "p50 ms" "p99 ms"
port=18300
for backend in sqlite postgres; do
  db=$([ $backend = sqlite ] && echo "sqlite://$W/demo/gemgate-demo.db" || echo "postgres://root@127.0.0.1:5432/gemgate_load")
  for jwt in off on; do
    port=$((port+1)); serve "$db" $jwt $port
    auth=(); [ $jwt = on ] && auth=(-H "Authorization: Bearer $TOKEN")
    for endpoint in "/health" "/v1/events?limit=100" "/v1/status"; do
      wrk -t2 -c64 -d10s --latency "${auth[@]}" "http://127.0.0.1:$port$endpoint" > $W/wrk.txt
      python3 - "$backend" "$jwt" "$endpoint" $W/wrk.txt <<'PY'
import re, sys
backend, jwt, endpoint, path = sys.argv[1:]
t = open(path).read()
def ms(v):
    n, u = re.match(r"([\d.]+)(us|ms|s)", v).groups()
    return float(n) * {"us": 0.001, "ms": 1, "s": 1000}[u]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
p50 = ms(re.search(r"^\s+50%\s+(\S+)", t, re.M).group(1)); p99 = ms(re.search(r"^\s+99%\s+(\S+)", t, re.M).group(1))
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
print(f"{backend:<9} {jwt:<4} {endpoint.split('?')[0]:<11} {rps:>10.0f} {p50:>9.2f} {p99:>9.2f}   non-2xx: {errors.group(1) if errors else 0}")
PY
    done
    kill $(cat $W/serve.pid); wait $(cat $W/serve.pid) 2>/dev/null || true
  done
done
kill $ISSUER $DEMO 2>/dev/null || true
