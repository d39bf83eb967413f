#!/usr/bin/env bash
# test/certs.sh DIR
#
# Writes a throwaway certificate authority and a server certificate for
# 127.0.0.1 / localhost into DIR, for the TLS tests (Kafka SASL_SSL listener,
# redis-server --tls-port). Nothing here is a secret worth keeping: the keys
# are unencrypted and the CA signs only this one certificate.
#
#   ca.crt              the CA certificate (clients trust it)
#   server.crt          server certificate (SAN IP:127.0.0.1, DNS:localhost)
#   server.key          its private key, PKCS#8 PEM, unencrypted
#   server-keystore.pem server.key + server.crt + ca.crt in one file: a Kafka
#                       keystore with ssl.keystore.type=PEM (no keytool needed)
#
# An existing complete DIR is reused. Needs openssl.
set -euo pipefail
SCRIPT_NAME=certs.sh
# shellcheck source=test/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

(($# == 1)) || { echo "usage: $0 DIR" >&2; exit 2; }
dir=$1
command -v openssl >/dev/null 2>&1 || die "openssl not found"
mkdir -p "$dir"
[[ -s $dir/server-keystore.pem ]] && exit 0

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
run() { "$@" >>"$tmp/openssl.log" 2>&1 || { cat "$tmp/openssl.log" >&2; die "$1 failed"; }; }

run openssl req -x509 -newkey rsa:2048 -nodes -days 2 -sha256 \
	-subj "/CN=oppsync test CA" -keyout "$tmp/ca.key" -out "$tmp/ca.crt" \
	-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
run openssl req -newkey rsa:2048 -nodes -sha256 -subj "/CN=localhost" \
	-keyout "$tmp/server.key.rsa" -out "$tmp/server.csr"
cat >"$tmp/ext.cnf" <<EXT
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=IP:127.0.0.1,DNS:localhost
EXT
run openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" \
	-CAcreateserial -days 2 -sha256 -extfile "$tmp/ext.cnf" -out "$tmp/server.crt"
# Kafka's PEM keystore wants an unencrypted key in PKCS#8 form.
run openssl pkcs8 -topk8 -nocrypt -in "$tmp/server.key.rsa" -out "$tmp/server.key"

cp "$tmp/ca.crt" "$tmp/server.crt" "$tmp/server.key" "$dir/"
cat "$tmp/server.key" "$tmp/server.crt" "$tmp/ca.crt" >"$dir/server-keystore.pem.tmp"
chmod 600 "$dir/server.key" "$dir/server-keystore.pem.tmp"
mv "$dir/server-keystore.pem.tmp" "$dir/server-keystore.pem"
log "wrote a test CA and a server certificate for 127.0.0.1 into $dir"
