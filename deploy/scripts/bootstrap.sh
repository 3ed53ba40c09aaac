#!/bin/sh
# areamesh demo bootstrap / デモ用の初期設定（一度だけ実行）
#
# Runs once before the registry starts (compose service "bootstrap"):
#   1. registry init            : creates the mesh CA and the SQLite database
#   2. registry participant add : registers the demo participants (and certifies them)
#   3. registry token create    : writes one join token per participant into $TOKENS_DIR
#
# Idempotent: when $DATA_DIR/registry.db already exists nothing is changed and the script
# exits 0, so `docker compose up` can be run any number of times.
# 冪等です：registry.db が既にあれば何も変更せず正常終了します。
#
# Environment / 環境変数 (defaults in brackets):
#   AREAMESH_REGISTRY_DATA_DIR  registry data dir            [/var/lib/areamesh/registry]
#   AREAMESH_TOKENS_DIR         where token files go          [/var/lib/areamesh/tokens]
#   AREAMESH_MESH_NAME          operating organisation name   [エリアデータ連携基盤 運営組織]
#   AREAMESH_MESH_ID            mesh id (DNS label)           [kansai-demo]
#   AREAMESH_TOKEN_TTL          join token lifetime           [24h]
#   AREAMESH_BOOTSTRAP_PARTICIPANTS  one participant a line: ID|TYPE|NAME  [the three below]
#
# Join tokens are secrets: they are written with mode 0600 and never printed.
# 参加トークンは秘密情報です。ファイル（0600）にのみ書き、ログには出しません。

set -eu
umask 077

DATA_DIR=${AREAMESH_REGISTRY_DATA_DIR:-/var/lib/areamesh/registry}
TOKENS_DIR=${AREAMESH_TOKENS_DIR:-/var/lib/areamesh/tokens}
MESH_NAME=${AREAMESH_MESH_NAME:-エリアデータ連携基盤 運営組織}
MESH_ID=${AREAMESH_MESH_ID:-kansai-demo}
TOKEN_TTL=${AREAMESH_TOKEN_TTL:-24h}

# 全国地方公共団体コード (6 digits incl. check digit) | participant type | name
DEFAULT_PARTICIPANTS='270008|prefecture|大阪府
282014|municipality|姫路市
282103|municipality|加古川市'
PARTICIPANTS=${AREAMESH_BOOTSTRAP_PARTICIPANTS:-$DEFAULT_PARTICIPANTS}

log() {
    printf '%s bootstrap: %s\n' "$(date -u '+%Y-%m-%dT%H:%M:%SZ')" "$*" >&2
}

# On failure after the database was created, a re-run would skip everything (registry.db
# exists), so say how to start over.
# 途中で失敗した場合のやり直し方法を表示します。
on_exit() {
    status=$?
    if [ "$status" -ne 0 ]; then
        log "エラー: 初期設定に失敗しました（終了コード $status）。上のメッセージを確認してください。"
        log "ERROR: bootstrap failed (exit status $status); see the messages above."
        if [ -f "$DATA_DIR/registry.db" ]; then
            log "やり直すにはデモのボリュームを削除します: docker compose down -v && docker compose up -d"
            log "To start over, remove the demo volumes: docker compose down -v && docker compose up -d"
        fi
    fi
}
trap on_exit EXIT

# Calls every participant line as: each_participant FUNCTION  (FUNCTION gets id type name).
# Blank lines and lines starting with '#' are skipped.
each_participant() {
    while IFS='|' read -r p_id p_type p_name; do
        case "$p_id" in '' | '#'*) continue ;; esac
        "$1" "$p_id" "$p_type" "$p_name"
    done <<PARTICIPANTS_EOF
$PARTICIPANTS
PARTICIPANTS_EOF
}

check_token_file() {
    if [ ! -s "$TOKENS_DIR/$1.token" ]; then
        log "警告: $3（$1）の参加トークン $TOKENS_DIR/$1.token がありません。未参加のコネクタは起動できません。"
        log "WARNING: no join token file for $1 ($3) at $TOKENS_DIR/$1.token; a connector that has not joined yet cannot start."
        log "  再発行 / re-issue: docker compose run --rm --entrypoint sh bootstrap -c 'umask 077; areamesh registry token create --participant $1 > $TOKENS_DIR/$1.token'"
    fi
}

add_participant() {
    log "参加者を登録します: $1 $3（$2） / adding participant $1 $3 ($2)"
    areamesh registry participant add --data-dir "$DATA_DIR" \
        --id "$1" --name "$3" --type "$2" </dev/null
    # Certified against the criteria (5-1), as `areamesh demo` does: only certified
    # participants may publish datasets. / 認定済みの参加者だけがデータセットを公開できます。
    areamesh registry participant certify --data-dir "$DATA_DIR" --id "$1" </dev/null

    # Write to a temporary file and rename, so a connector never reads half a token.
    tmp="$TOKENS_DIR/.$1.token.tmp"
    areamesh registry token create --data-dir "$DATA_DIR" \
        --participant "$1" --ttl "$TOKEN_TTL" </dev/null >"$tmp"
    if [ ! -s "$tmp" ]; then
        rm -f "$tmp"
        log "エラー: $1 の参加トークンが空です / ERROR: empty join token for $1"
        exit 1
    fi
    mv -f "$tmp" "$TOKENS_DIR/$1.token"
    log "参加トークンを書き込みました: $TOKENS_DIR/$1.token（有効期間 $TOKEN_TTL） / wrote join token file (valid for $TOKEN_TTL)"
}

mkdir -p "$TOKENS_DIR"

if [ -f "$DATA_DIR/registry.db" ]; then
    log "レジストリは初期化済みです（$DATA_DIR/registry.db）。何も変更しません。"
    log "registry already initialised ($DATA_DIR/registry.db); nothing to do."
    each_participant check_token_file
    exit 0
fi

log "レジストリを初期化します: メッシュID $MESH_ID、運営組織 $MESH_NAME"
log "initialising registry: mesh id $MESH_ID, operator '$MESH_NAME', data dir $DATA_DIR"
areamesh registry init --data-dir "$DATA_DIR" --name "$MESH_NAME" --mesh-id "$MESH_ID" </dev/null

each_participant add_participant

log "初期設定が完了しました。レジストリを起動できます。"
log "bootstrap complete; the registry can start."
