#!/bin/sh
# tools/loco-launch over TLS: makes a CA and one certificate per rank with the
# openssl command line (the commands of docs/communicators.md#tls), then runs
# the conformance worker on 3 ranks with --tls-* flags and a peer-name check.
# Usage: tls_launch_test.sh PYTHON LAUNCHER TCP_WORKER. Exit 77 (skip) without openssl.
set -eu
python=$1 launcher=$2 worker=$3
command -v openssl >/dev/null 2>&1 || { echo "openssl command not found: skipped"; exit 77; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/loco-tls-launch.XXXXXX")
trap 'rm -rf "$dir"' EXIT
cd "$dir"

# The CA (P-256 key, self-signed, one day).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj "/CN=loco test CA" -keyout ca.key -out ca.pem 2>/dev/null
# One key and certificate per rank, named rank<k>.loco, for both TLS roles.
for k in 0 1 2; do
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=rank$k.loco" -keyout rank$k.key -out rank$k.csr 2>/dev/null
  printf 'subjectAltName=DNS:rank%s.loco\nextendedKeyUsage=serverAuth,clientAuth\n' "$k" > ext$k
  openssl x509 -req -in rank$k.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \
    -extfile ext$k -out rank$k.pem 2>/dev/null
done

"$python" "$launcher" -n 3 --timeout-ms 20000 \
  --tls-ca ca.pem --tls-cert 'rank{rank}.pem' --tls-key 'rank{rank}.key' \
  --tls-peer-name 'rank{rank}.loco' -- "$worker" conformance
