#!/bin/sh
# areamesh connector entrypoint / コネクタの起動スクリプト
#
#   1. If this node has no certificate yet ($DATA_DIR/tls/node.crt), join the mesh with the
#      one-time join token (enrolment): the node generates its key, the registry signs it.
#   2. Start the connector (exec, so it receives SIGTERM directly and stops gracefully).
#
#   1. 証明書（$DATA_DIR/tls/node.crt）がまだなければ、参加トークンでメッシュに参加します。
#   2. コネクタを起動します（exec で置き換えるため SIGTERM で正常に停止します）。
#
# Environment / 環境変数:
#   AREAMESH_NODE_NAME              node name, a DNS label such as "himeji"        (required)
#   AREAMESH_CONNECTOR_REGISTRY     registry gRPC HOST:PORT, e.g. registry:7700    (required)
#   AREAMESH_CONNECTOR_ADVERTISE    HOST:PORT other connectors dial, e.g. himeji:7701 (required)
#   AREAMESH_JOIN_TOKEN_FILE        file holding the join token   (needed only before joining)
#   AREAMESH_JOIN_TOKEN             the join token itself (alternative to the file)
#   AREAMESH_CONNECTOR_DATA_DIR     [/var/lib/areamesh/connector]
#   AREAMESH_CONNECTOR_GRPC_LISTEN  [0.0.0.0:7701]
#   AREAMESH_CONNECTOR_HTTP_LISTEN  [0.0.0.0:7781]
#   AREAMESH_CONNECTOR_ENROL        registry enrolment HOST:PORT  [registry host, port - 1]
#   AREAMESH_JOIN_ATTEMPTS          [5]   tries while the registry is unreachable
#   AREAMESH_JOIN_RETRY_SECONDS     [5]

set -eu
umask 077

DATA_DIR=${AREAMESH_CONNECTOR_DATA_DIR:-/var/lib/areamesh/connector}
NODE_NAME=${AREAMESH_NODE_NAME:-}
REGISTRY=${AREAMESH_CONNECTOR_REGISTRY:-}
ADVERTISE=${AREAMESH_CONNECTOR_ADVERTISE:-}
GRPC_LISTEN=${AREAMESH_CONNECTOR_GRPC_LISTEN:-0.0.0.0:7701}
HTTP_LISTEN=${AREAMESH_CONNECTOR_HTTP_LISTEN:-0.0.0.0:7781}
TOKEN_FILE=${AREAMESH_JOIN_TOKEN_FILE:-}
JOIN_ATTEMPTS=${AREAMESH_JOIN_ATTEMPTS:-5}
JOIN_RETRY_SECONDS=${AREAMESH_JOIN_RETRY_SECONDS:-5}
CERT="$DATA_DIR/tls/node.crt"

log() {
    printf '%s connector-entrypoint[%s]: %s\n' \
        "$(date -u '+%Y-%m-%dT%H:%M:%SZ')" "${NODE_NAME:-?}" "$*" >&2
}

die() {
    log "エラー: $1"
    log "ERROR: $2"
    exit 1
}

[ -n "$NODE_NAME" ] || die "AREAMESH_NODE_NAME（ノード名）が設定されていません。" \
    "AREAMESH_NODE_NAME (the node name) is not set."
[ -n "$REGISTRY" ] || die "AREAMESH_CONNECTOR_REGISTRY（レジストリの HOST:PORT）が設定されていません。" \
    "AREAMESH_CONNECTOR_REGISTRY (the registry's HOST:PORT) is not set."
[ -n "$ADVERTISE" ] || die "AREAMESH_CONNECTOR_ADVERTISE（他のコネクタが接続する HOST:PORT）が設定されていません。" \
    "AREAMESH_CONNECTOR_ADVERTISE (the HOST:PORT other connectors dial) is not set."

if [ -f "$CERT" ]; then
    log "参加済みです（証明書 $CERT あり）。参加手続きは省略します。"
    log "already enrolled ($CERT exists); skipping join."
else
    token=${AREAMESH_JOIN_TOKEN:-}
    if [ -z "$token" ] && [ -n "$TOKEN_FILE" ] && [ -s "$TOKEN_FILE" ]; then
        token=$(tr -d ' \t\r\n' <"$TOKEN_FILE")
    fi
    [ -n "$token" ] || die \
        "証明書がなく、参加トークンもありません（${TOKEN_FILE:-AREAMESH_JOIN_TOKEN 未設定}）。レジストリ側でトークンを発行してください: areamesh registry token create --participant <参加者ID>" \
        "no certificate and no join token (${TOKEN_FILE:-AREAMESH_JOIN_TOKEN unset}). Create one on the registry side: areamesh registry token create --participant <participant id>"

    # Retry only while the registry is unreachable ("error [unavailable]"); a refused token
    # (used, expired, unknown) fails at once.
    # レジストリに接続できない間だけ再試行します。トークンの拒否は即座にエラーにします。
    errfile=$(mktemp)
    attempt=1
    while :; do
        log "レジストリ $REGISTRY に参加します（ノード名 $NODE_NAME、試行 $attempt/$JOIN_ATTEMPTS）。"
        log "joining the mesh via registry $REGISTRY as node '$NODE_NAME' (attempt $attempt/$JOIN_ATTEMPTS)."
        # The token is passed as an argument; it is visible only inside this container.
        if areamesh connector join --data-dir "$DATA_DIR" --registry "$REGISTRY" \
            --token "$token" --name "$NODE_NAME" </dev/null 2>"$errfile"; then
            cat "$errfile" >&2
            break
        fi
        cat "$errfile" >&2
        if ! grep -q 'error \[unavailable\]' "$errfile"; then
            rm -f "$errfile"
            die "参加を拒否されました。上のエラーを確認してください。トークンは有効期限があり一度しか使えません。期限切れ・使用済みならレジストリ側で再発行してください。" \
                "the registry refused the join; see the error above. Tokens expire and are single-use: if it expired or was used, create a new one on the registry."
        fi
        if [ "$attempt" -ge "$JOIN_ATTEMPTS" ]; then
            rm -f "$errfile"
            die "レジストリ $REGISTRY に接続できません（$JOIN_ATTEMPTS 回）。アドレスと、登録用ポート（gRPC ポート−1、既定 7699）への経路を確認してください。" \
                "cannot reach the registry at $REGISTRY ($JOIN_ATTEMPTS attempts). Check the address and that the enrolment port (gRPC port - 1, default 7699) is reachable."
        fi
        attempt=$((attempt + 1))
        sleep "$JOIN_RETRY_SECONDS"
    done
    rm -f "$errfile"
    [ -f "$CERT" ] || die "参加コマンドは成功しましたが $CERT がありません。" \
        "join reported success but $CERT is missing."
    log "参加しました。証明書と秘密鍵を $DATA_DIR/tls に保存しました。"
    log "enrolled; certificate and private key stored in $DATA_DIR/tls."
fi

# The serving process does not need the token: keep it out of its environment.
unset token AREAMESH_JOIN_TOKEN 2>/dev/null || true

log "コネクタを起動します: gRPC $GRPC_LISTEN、HTTP $HTTP_LISTEN、公開アドレス $ADVERTISE"
log "starting connector: grpc $GRPC_LISTEN, http $HTTP_LISTEN, advertise $ADVERTISE"
exec areamesh connector serve --data-dir "$DATA_DIR" \
    --grpc "$GRPC_LISTEN" --http "$HTTP_LISTEN" --advertise "$ADVERTISE"
