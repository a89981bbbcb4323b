#!/usr/bin/env bash
# k8s-smoke.sh — smoke test of the real etcd + kube-apiserver that scripts/k8s-binaries.sh builds, and the
# reference for how tollgate's tests against a live API server start them. Needs root (network namespace).
#
# Everything runs on loopback inside a throwaway network namespace (tg-k8s-smoke-<pid>), so fixed ports
# cannot collide with anything on the host. It:
#   1. starts etcd on http://127.0.0.1:2379 with a temp data dir,
#   2. starts kube-apiserver on https://127.0.0.1:6443 with a temp CA + serving cert (openssl), a
#      service-account key pair, a static token file with an admin user in system:masters, RBAC,
#   3. waits for /readyz = ok (verifying the serving cert against the temp CA, bearer token),
#   4. checks /version, that a bad token gets 401, and creates + reads back a NetworkPolicy.
# Processes, the namespace and the temp dir are removed on exit, success or not.
# Env: KUBE_APISERVER / ETCD (binaries; default: whatever scripts/k8s-binaries.sh prints), K8S_SMOKE_TIMEOUT
# (seconds to wait for readiness, default 120).
set -euo pipefail

log() { printf 'k8s-smoke: %s\n' "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

[[ $EUID -eq 0 ]] || die "needs root (ip netns)"
for tool in ip openssl curl; do command -v "$tool" >/dev/null || die "missing $tool"; done

if [[ -z "${KUBE_APISERVER:-}" || -z "${ETCD:-}" ]]; then
  bins="$("$(dirname "$0")/k8s-binaries.sh")"
  KUBE_APISERVER="$(sed -n 's/^KUBE_APISERVER=//p' <<<"$bins")"
  ETCD="$(sed -n 's/^ETCD=//p' <<<"$bins")"
fi
[[ -x "$KUBE_APISERVER" && -x "$ETCD" ]] || die "binaries not found: '$KUBE_APISERVER' '$ETCD'"
TIMEOUT="${K8S_SMOKE_TIMEOUT:-120}"

NS="tg-k8s-smoke-$$"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/tg-k8s-smoke.XXXXXX")"
ETCD_PID=""
APISERVER_PID=""
PORT=6443

cleanup() {
  local rc=$?
  log "cleaning up (exit $rc)"
  set +e
  if [[ $rc -ne 0 ]]; then
    for f in etcd apiserver; do
      [[ -s "$TMP/$f.log" ]] && { log "--- last lines of $f.log ---"; tail -n 25 "$TMP/$f.log" >&2; }
    done
  fi
  # apiserver first (it talks to etcd); SIGTERM, then SIGKILL if it takes longer than 20s.
  for pid in $APISERVER_PID $ETCD_PID; do
    kill "$pid" 2>/dev/null || continue
    for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  # Anything still inside our namespace was started by this script.
  if ip netns list | grep -qw "$NS"; then
    for pid in $(ip netns pids "$NS" 2>/dev/null); do log "killing leftover pid $pid"; kill -9 "$pid" 2>/dev/null; done
    ip netns del "$NS"
  fi
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Short-lived commands only: a backgrounded shell function would make $! a subshell, not the server.
in_ns() { ip netns exec "$NS" "$@"; }

ip netns add "$NS"
in_ns ip link set lo up

# --- credentials -------------------------------------------------------------------------------------------
log "generating CA, serving cert, service-account keys, token file in $TMP"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=tollgate-smoke-ca" \
  -keyout "$TMP/ca.key" -out "$TMP/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
  -keyout "$TMP/serving.key" -out "$TMP/serving.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' \
  >"$TMP/serving.ext"
openssl x509 -req -in "$TMP/serving.csr" -CA "$TMP/ca.crt" -CAkey "$TMP/ca.key" -CAcreateserial -days 1 \
  -extfile "$TMP/serving.ext" -out "$TMP/serving.crt" 2>/dev/null
openssl genrsa -out "$TMP/sa.key" 2048 2>/dev/null
openssl rsa -in "$TMP/sa.key" -pubout -out "$TMP/sa.pub" 2>/dev/null
TOKEN="$(openssl rand -hex 16)"
# token,user,uid,"group,..." — system:masters bypasses RBAC, like a cluster admin.
printf '%s,admin,admin-uid,"system:masters"\n' "$TOKEN" >"$TMP/tokens.csv"
chmod 600 "$TMP"/*.key "$TMP/tokens.csv"

# --- etcd --------------------------------------------------------------------------------------------------
log "starting etcd ($("$ETCD" --version | head -1))"
ip netns exec "$NS" "$ETCD" \
  --name smoke \
  --data-dir "$TMP/etcd-data" \
  --listen-client-urls http://127.0.0.1:2379 \
  --advertise-client-urls http://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 \
  --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster smoke=http://127.0.0.1:2380 \
  --unsafe-no-fsync \
  --log-level warn \
  >"$TMP/etcd.log" 2>&1 &
ETCD_PID=$!

deadline=$((SECONDS + TIMEOUT))
until in_ns curl -fsS -m 2 http://127.0.0.1:2379/health 2>/dev/null | grep -q '"health":"true"'; do
  kill -0 "$ETCD_PID" 2>/dev/null || die "etcd exited"
  ((SECONDS < deadline)) || die "etcd not healthy after ${TIMEOUT}s"
  sleep 0.5
done
log "etcd healthy"

# --- kube-apiserver ----------------------------------------------------------------------------------------
# Flags that matter in a loopback-only namespace:
#   --advertise-address=127.0.0.1   required: with no default route the apiserver refuses to start ("Unable to
#                                   find suitable network address"); a loopback --bind-address is not used.
#   --endpoint-reconciler-type=none the default reconciler writes the advertise address into the "kubernetes"
#                                   Endpoints, and loopback IPs are invalid there (logs an error every ~10s).
#   --token-auth-file               "token,user,uid,\"groups\"" — the simplest credential for test clients.
#   --service-account-*             issuer + public/private key are mandatory for kube-apiserver to start.
#   --cert-dir                      keeps it from writing to /var/run/kubernetes.
log "starting kube-apiserver ($("$KUBE_APISERVER" --version))"
ip netns exec "$NS" "$KUBE_APISERVER" \
  --etcd-servers=http://127.0.0.1:2379 \
  --bind-address=127.0.0.1 \
  --secure-port="$PORT" \
  --advertise-address=127.0.0.1 \
  --endpoint-reconciler-type=none \
  --cert-dir="$TMP/cert-dir" \
  --tls-cert-file="$TMP/serving.crt" \
  --tls-private-key-file="$TMP/serving.key" \
  --client-ca-file="$TMP/ca.crt" \
  --token-auth-file="$TMP/tokens.csv" \
  --authorization-mode=Node,RBAC \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$TMP/sa.pub" \
  --service-account-signing-key-file="$TMP/sa.key" \
  --service-cluster-ip-range=10.96.0.0/16 \
  --allow-privileged=true \
  --profiling=false \
  >"$TMP/apiserver.log" 2>&1 &
APISERVER_PID=$!

api() { # api <curl args...> — as the admin user, cert verified against the temp CA
  in_ns curl -sS -m 10 --cacert "$TMP/ca.crt" -H "Authorization: Bearer $TOKEN" "$@"
}

start=$SECONDS
deadline=$((SECONDS + TIMEOUT))
until [[ "$(api "https://127.0.0.1:$PORT/readyz" 2>/dev/null)" == "ok" ]]; do
  kill -0 "$APISERVER_PID" 2>/dev/null || die "kube-apiserver exited"
  ((SECONDS < deadline)) || {
    api "https://127.0.0.1:$PORT/readyz?verbose" >&2 || true
    die "kube-apiserver not ready after ${TIMEOUT}s"
  }
  sleep 1
done
log "readyz ok after $((SECONDS - start))s"

# --- checks ------------------------------------------------------------------------------------------------
version="$(api "https://127.0.0.1:$PORT/version")"
grep -q '"gitVersion"' <<<"$version" || die "/version: $version"
log "/version gitVersion: $(sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p' <<<"$version")"

code="$(in_ns curl -s -o /dev/null -w '%{http_code}' -m 10 --cacert "$TMP/ca.crt" \
  -H "Authorization: Bearer not-$TOKEN" "https://127.0.0.1:$PORT/api/v1/namespaces")"
[[ "$code" == 401 ]] || die "bad token got HTTP $code, want 401"
log "bad token rejected (401)"

# The default namespace is created by a post-start hook; readyz covers it, but be patient anyway.
policy='{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"smoke"},
  "spec":{"podSelector":{"matchLabels":{"app":"smoke"}},"policyTypes":["Ingress"],
  "ingress":[{"from":[{"podSelector":{}}],"ports":[{"protocol":"TCP","port":80}]}]}}'
code="$(api -o "$TMP/created.json" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
  --data "$policy" "https://127.0.0.1:$PORT/apis/networking.k8s.io/v1/namespaces/default/networkpolicies")"
[[ "$code" == 201 ]] || die "create NetworkPolicy: HTTP $code $(cat "$TMP/created.json")"
got="$(api "https://127.0.0.1:$PORT/apis/networking.k8s.io/v1/namespaces/default/networkpolicies/smoke")"
grep -q '"uid"' <<<"$got" && grep -q '"app": *"smoke"' <<<"$got" || die "read back NetworkPolicy: $got"
log "NetworkPolicy created and read back"

log "PASS"
