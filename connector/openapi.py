"""The OpenAPI 3.1 document of the connector's admin HTTP API (served at /openapi.json).

tests/security/test_http_fuzz.py drives a running connector with schemathesis against this
document, so it must say what the handlers really do. The resident portal's routes need the
portal's bearer token (``DATA_DIR/portal.token``, ``connector/portal_api.py``).
"""

from __future__ import annotations

from mesh import __version__
from mesh.openapi_parts import ERROR
from mesh.openapi_parts import JSON as _json
from mesh.openapi_parts import response as _resp

_ERRORS = {"400": _resp("bad request (parameter, body or encoding)", ERROR),
           "401": _resp("no or wrong bearer token", ERROR),
           "403": _resp("not allowed for this caller", ERROR),
           "404": _resp("no such resident, consent or personal dataset", ERROR),
           "408": _resp("the body stopped arriving", ERROR),
           "409": _resp("conflicts with the consent's state", ERROR),
           "413": _resp("the body is too large", ERROR)}
_RESIDENT = {"name": "resident", "in": "path", "required": True,
             "description": "the resident's id in this municipality's personal data",
             "schema": {"type": "string", "minLength": 1}}
_OBJECT = {"type": "object"}
_SECURITY = [{"portalToken": []}]


def _resident_get(summary: str, schema: dict) -> dict:
    return {"get": {"summary": summary, "security": _SECURITY, "parameters": [_RESIDENT],
                    "responses": {"200": _resp("ok", schema), **_ERRORS}}}


OPENAPI: dict = {
    "openapi": "3.1.0",
    "info": {"title": "areamesh connector admin API", "version": __version__,
             "description": "コネクタの管理API: 稼働状況、メッシュの他ノード、メトリクス、"
                            "住民ポータル向けの同意管理と提供記録（トークンが必要）。"},
    "paths": {
        "/healthz": {"get": {"summary": "Liveness", "responses": {
            "200": _resp("ok", {"type": "object", "required": ["status"],
                                "properties": {"status": {"const": "ok"},
                                               "identity": {"type": "string"}}})}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {
            "200": _resp("exposition format", {"type": "string"}, "text/plain")}}},
        "/openapi.json": {"get": {"summary": "This document", "responses": {
            "200": _resp("OpenAPI 3.1", _OBJECT)}}},
        "/api/v1/status": {"get": {
            "summary": "The node: identity, certificate, registry contact, revocation list",
            "responses": {"200": _resp("status", {
                "type": "object", "required": ["identity", "participant", "certificate",
                                               "registry", "revocation_list"],
                "properties": {"identity": {"type": "string"}, "participant": _OBJECT,
                               "certificate": _OBJECT, "registry": _OBJECT,
                               "revocation_list": _OBJECT}}),
                          "401": _resp("no or wrong API key", ERROR),
                          "403": _resp("not the node's operator", ERROR)}}},
        "/api/v1/peers": {"get": {
            "summary": "The mesh's nodes as the registry lists them",
            "parameters": [{"name": "ping", "in": "query", "description":
                            "1 or true: also ping each online peer",
                            "schema": {"type": "string"}}],
            "responses": {"200": _resp("peers", {
                "type": "object", "required": ["self", "peers"],
                "properties": {"self": {"type": "string"},
                               "peers": {"type": "array", "items": _OBJECT}}}),
                          "401": _resp("no or wrong API key", ERROR),
                          "403": _resp("not the node's operator", ERROR)}}},
        "/admin/transfers/progress": {"get": {
            "summary": "Running transfers and the console's fetches, with their live figures "
                       "(polled by the console's transfer pages)",
            "responses": {"200": _resp("progress", {
                "type": "object", "required": ["now", "running", "fetches"],
                "properties": {"now": {"type": "string"},
                               "running": {"type": "array", "items": {
                                   "type": "object",
                                   "required": ["id", "role", "status", "agreement_id",
                                                "dataset_id", "peer", "records", "bytes",
                                                "rate_records", "started_at"]}},
                               "fetches": {"type": "array", "items": {
                                   "type": "object",
                                   "required": ["job", "state", "agreement_id", "file",
                                                "records", "bytes", "rate_records"]}}}}),
                          "401": _resp("no credentials", ERROR),
                          "403": _resp("not the node's operator", ERROR)}}},
        "/api/v1/residents/{resident}/consents": {
            **_resident_get("Every consent of the resident, with its status now", {
                "type": "object", "required": ["consents"],
                "properties": {"consents": {"type": "array", "items": _OBJECT}}}),
            "post": {
                "summary": "Grant a consent",
                "security": _SECURITY, "parameters": [_RESIDENT],
                "requestBody": {"required": True, "content": {_json: {"schema": {
                    "type": "object", "required": ["participant", "purpose"],
                    "additionalProperties": False,
                    "properties": {
                        "participant": {"type": "string", "minLength": 1, "maxLength": 200},
                        "purpose": {"type": "string", "minLength": 1, "maxLength": 200},
                        "dataset": {"type": "string", "maxLength": 200},
                        "service": {"type": "string", "maxLength": 200},
                        "component": {"type": "string", "maxLength": 200},
                        "items": {"type": "array", "items": {"type": "string"}},
                        "expires": {"type": "string", "maxLength": 200,
                                    "description": "a duration (30d), a date (JST) or an "
                                                   "ISO time"}}}}}},
                "responses": {"201": _resp("the consent", _OBJECT), **_ERRORS}}},
        "/api/v1/residents/{resident}/consents/{consent_id}/withdraw": {"post": {
            "summary": "Withdraw a consent (and the ones it covers)",
            "security": _SECURITY,
            "parameters": [_RESIDENT, {"name": "consent_id", "in": "path", "required": True,
                                       "schema": {"type": "string", "minLength": 1}}],
            "requestBody": {"required": False, "content": {_json: {"schema": {
                "type": "object", "properties": {"reason": {"type": "string",
                                                            "maxLength": 500}}}}}},
            "responses": {"200": _resp("withdrawn", {
                "type": "object", "required": ["withdrawn"],
                "properties": {"withdrawn": {"type": "array", "items": {"type": "string"}}}}),
                **_ERRORS}}},
        "/api/v1/residents/{resident}/consent-history": _resident_get(
            "The evidence: every change of the resident's consents, timestamped", {
                "type": "object", "required": ["events"],
                "properties": {"events": {"type": "array", "items": _OBJECT}}}),
        "/api/v1/residents/{resident}/flows": _resident_get(
            "Where the resident's data went (the flow ledger)", {
                "type": "object", "required": ["resident", "flows"],
                "properties": {"resident": {"type": "string"},
                               "flows": {"type": "array", "items": _OBJECT}}}),
        "/api/v1/residents/{resident}/datasets": _resident_get(
            "Where the resident's data is: personal datasets holding their records", {
                "type": "object", "required": ["resident", "datasets"],
                "properties": {"resident": {"type": "string"},
                               "datasets": {"type": "array", "items": _OBJECT}}}),
        "/ngsi/v2/notify/{dataset_id}": {"post": {
            "summary": "An NGSI v2 broker's notification for a subscribed dataset "
                       "(areamesh connector ngsi-v2 subscribe): triggers a change check",
            "security": [{"ngsiSubscriptionToken": []}],
            "parameters": [{"name": "dataset_id", "in": "path", "required": True,
                            "schema": {"type": "string", "minLength": 3}}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["subscriptionId", "data"],
                "properties": {"subscriptionId": {"type": "string"},
                               "data": {"type": "array", "minItems": 1, "maxItems": 1000,
                                        "items": {"type": "object", "required": ["id", "type"]}}}}}}},
            "responses": {"204": {"description": "accepted; the dataset is checked for changes"},
                          **{k: v for k, v in _ERRORS.items() if k in ("400", "401", "403", "413")}}}},
    },
    "components": {
        "securitySchemes": {"portalToken": {"type": "http", "scheme": "bearer",
                                            "description": "DATA_DIR/portal.token"},
                            "ngsiSubscriptionToken": {
                                "type": "http", "scheme": "bearer",
                                "description": "the token of the dataset's NGSI v2 subscription, "
                                               "sent by the broker (httpCustom.headers)"}},
        "schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                "type": "object", "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                               "message_ja": {"type": "string"},
                               "details": {"type": "object"}}}}},
        }},
}
