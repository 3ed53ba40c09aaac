"""What an error may say once it leaves the node: the one gate for peers and the public.

Errors are raised with whatever helps the node's own operator: file paths, source URLs and
database hosts, SQL, row text. Before an error leaves over gRPC (``mesh.grpc_auth``, every
service of the registry and the connector) or over HTTP (``mesh.http``'s error middleware, the
registry's CKAN API), ``public_error`` makes the copy the caller gets:

- an error about the node's own resources (``AreameshError.local``: the adapters' source and
  sink errors, an unreachable source system, a damaged database) keeps its class and ``code``,
  but its message is replaced by a fixed one in English and Japanese that names an incident
  reference, and its ``details`` are dropped;
- any other error keeps its message, scrubbed of local text: the directories registered with
  ``protect_path`` (the data directory), the home directory, the machine's host names
  (``socket.gethostname()`` and its fully qualified form) and absolute file paths become
  ``<local>``/``<host>``/``<path>``, in the message, the Japanese message and every string of
  ``details``.

The full error is logged locally with the same reference (``log_refusal``), so the operator can
find what a peer reports. Errors raised by code that is not an ``AreameshError`` never leave at
all: they are "internal error; see the server log" with a reference.
"""

from __future__ import annotations

import copy
import functools
import logging
import re
import secrets
import socket
from pathlib import Path
from typing import Any

from mesh.errors import AreameshError

log = logging.getLogger("areamesh.mesh.egress")

_protected: set[str] = set()
# an absolute file path of two or more parts, not a gRPC method name (/areamesh.v1.X/Y) and not
# the tail of a URL or a media type (text/csv): a '/' not preceded by a word character or ':'
_PATH = re.compile(r"(?<![\w:/.~-])/(?!areamesh\.|grpc\.)[^\s/'\"`,;:()<>\[\]{}]+"
                   r"(?:/[^\s/'\"`,;:()<>\[\]{}]*)+")
_WINDOWS_PATH = re.compile(r"\b[A-Za-z]:\\[^\s'\"`,;]+")

PUBLIC_MESSAGES: dict[str, tuple[str, str]] = {
    "local": ("the node could not use its own data (a dataset's source, a store of its own); its "
              "operator can look the problem up with reference {ref}",
              "ノード側のデータ（データソースまたは保存データ）を利用できませんでした。"
              "ノードの運用者は参照番号 {ref} で原因を確認できます"),
    "internal": ("internal error; the operator can look it up in the server log with reference "
                 "{ref}", "内部エラーです。運用者はサーバのログで参照番号 {ref} を確認できます"),
}


def protect_path(path: Path | str) -> None:
    """Never let ``path`` (as given, absolute and resolved) appear in an error that leaves."""
    for form in {str(path), str(Path(path).absolute()), str(Path(path).resolve())}:
        if len(form) > 1:
            _protected.add(form.rstrip("/"))


@functools.cache
def _host_names() -> tuple[str, ...]:
    names = {socket.gethostname()}
    try:
        names.add(socket.getfqdn())
    except OSError:
        pass
    names -= {"", "localhost", "localhost.localdomain"}    # say nothing about the machine
    return tuple(sorted(names, key=len, reverse=True))


def scrub(text: str) -> str:
    """``text`` without the node's local paths and host names."""
    if not text:
        return text
    for path in sorted(_protected | {str(Path.home())}, key=len, reverse=True):
        if len(path) > 1:
            text = text.replace(path, "<local>")
    text = _WINDOWS_PATH.sub("<path>", _PATH.sub("<path>", text))
    for name in _host_names():      # as a whole name: 'vm' in 'http://vm:8080', not in 'jvm'
        text = re.sub(rf"(?<![\w-]){re.escape(name)}(?![\w-])", "<host>", text,
                      flags=re.IGNORECASE)
    return text


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {scrub(str(k)): _scrub_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_value(v) for v in value]
    return value


def new_reference() -> str:
    """A short id that ties what a peer saw to the full entry in the local log."""
    return secrets.token_hex(4)


def public_error(exc: AreameshError, ref: str) -> AreameshError:
    """The copy of ``exc`` a peer or the public may see (module docstring)."""
    out = copy.copy(exc)
    if exc.local:
        en, ja = PUBLIC_MESSAGES["local"]
        out.message, out.message_ja = en.format(ref=ref), ja.format(ref=ref)
        out.details = {"reference": ref}
        return out
    out.message = scrub(exc.message)
    out.message_ja = scrub(exc.message_ja) if exc.message_ja else exc.message_ja
    out.details = _scrub_value(exc.details) if exc.details else {}
    return out


def internal_message(ref: str) -> tuple[str, str]:
    """(English, Japanese) for an unexpected failure, naming ``ref``."""
    en, ja = PUBLIC_MESSAGES["internal"]
    return en.format(ref=ref), ja.format(ref=ref)


def log_refusal(logger: logging.Logger, what: str, exc: AreameshError, ref: str,
                **extra: Any) -> None:
    """The full error, locally, with the reference its public copy names."""
    logger.warning("%s refused [%s, ref %s]: %s", what, exc.code, ref, exc.message,
                   extra={"code": exc.code, "reference": ref, **extra,
                          **({"details": exc.details} if exc.details else {})})

