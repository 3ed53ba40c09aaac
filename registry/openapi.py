"""The OpenAPI 3.1 document of the registry's HTTP API (served at /openapi.json).

tests/test_openapi.py drives the running registry with schemathesis against this document,
so it must say what the handlers really do.
"""

from __future__ import annotations

from mesh import __version__
from mesh.openapi_parts import ERROR
from mesh.openapi_parts import JSON as _json
from mesh.openapi_parts import response as _resp

# Any text is a valid search: the index reads a query's first MAX_QUERY_CHARS (512) characters.
_str_param = {"type": "string"}
SEARCH_PARAMS = [
    {"name": "q", "in": "query", "schema": _str_param,
     "description": "Japanese full-text query (2-character words, kana and width variants)"},
    *[{"name": n, "in": "query", "schema": {"type": "string", "maxLength": 200}}
      for n in ("theme", "publisher", "prefecture", "standard_type", "classification")],
    {"name": "personal", "in": "query", "schema": {"type": "string",
                                                   "enum": ["", "true", "false", "1", "0"]},
     "description": "empty means no filter"},
    {"name": "sort", "in": "query", "schema": {"type": "string",
                                               "enum": ["", "relevance", "modified", "title"]},
     "description": "empty means relevance"},
    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                               "maximum": 100000}},
    {"name": "per_page", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                   "maximum": 100}},
]

NODE_PARAM = {"name": "node", "in": "query", "required": True,
              "description": "node identity URI, e.g. urn:areamesh:org:282014:node:main",
              "schema": {"type": "string", "pattern": "^urn:areamesh:org:([0-9]{6}|[0-9]{13})"
                                                      ":node:[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"}}

# Doors (docs/security.md): operators by API key (Bearer amop_…) or password (Basic);
# participants by API key (Bearer ampt_…).
OPERATOR_AUTH = [{"operatorKey": []}, {"operatorPassword": []}]
MONTH = "^(19|20)[0-9]{2}-(0[1-9]|1[0-2])$"   # YYYY-MM
OWN_AUTH = [{"participantKey": []}, *OPERATOR_AUTH]
DENIED = {"401": _resp("no valid credentials", ERROR),
          "403": _resp("credentials valid, but not for this", ERROR)}


# ``?period=`` of the metering paths, as /api/v1/usage takes it
_PERIOD = {"name": "period", "in": "query", "description":
           "YYYY, YYYY-MM (default: this month), YYYY-MM-DD or FROM..TO (JST days, inclusive)",
           "schema": {"type": "string", "pattern":
                      "^(19|20)[0-9]{2}(-(0[1-9]|1[0-2])(-(0[1-9]|1[0-9]|2[0-8]))?)?$"}}

def _op(summary: str, responses: dict, *, auth: list = OPERATOR_AUTH, **extra) -> dict:
    """An operation behind a door: its security requirement and the 401/403 answers."""
    return {"summary": summary, "security": auth, **extra, "responses": {**responses, **DENIED}}


def _json_body(properties: dict, required: list[str]) -> dict:
    return {"required": bool(required), "content": {_json: {"schema": {
        "type": "object", "properties": properties, "required": required,
        "additionalProperties": False}}}}


_text = {"type": "string", "maxLength": 500}
_id_param = [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}]
_reason = _json_body({"reason": _text}, [])
_ok = {"type": "object"}
ADMIN_PATHS: dict = {
    "/api/v1/admin/whoami": {"get": _op("The calling operator: name, role, credential", {
        "200": _resp("the operator", {"type": "object", "required": ["name", "role"]})})},
    "/api/v1/admin/participants": {
        "get": _op("Every participant, any status, with host and nodes", {
            "200": _resp("participants", {"type": "object", "required": ["participants"]})}),
        "post": _op("Add a participant (admin)", {
            "201": _resp("added", {"$ref": "#/components/schemas/Participant"}),
            "400": _resp("bad id, type or name", ERROR), "409": _resp("exists", ERROR)},
            requestBody=_json_body({"id": _text, "name": _text, "type": _text},
                                   ["id", "name", "type"]))},
    **{f"/api/v1/admin/participants/{{id}}/{action}": {"post": _op(summary, {
        "200": _resp("done", _ok), "400": _resp("bad request", ERROR),
        "404": _resp("unknown participant", ERROR), "409": _resp("not possible now", ERROR)},
        parameters=_id_param, **({"requestBody": _reason} if action == "suspend" else {}))}
       for action, summary in (("certify", "Certify a participant (admin)"),
                               ("suspend", "Suspend a participant, revoking its nodes (admin)"),
                               ("reinstate", "Lift a suspension (admin)"))},
    "/api/v1/admin/participants/{id}/keys": {
        "get": _op("The participant's API keys (never their secrets)", {
            "200": _resp("keys", {"type": "object", "required": ["keys"]}),
            "404": _resp("unknown participant", ERROR)}, parameters=_id_param),
        "post": _op("Create an API key for the participant; the secret is in this answer "
                    "only (admin)", {
                        "201": _resp("the key and its secret", {"type": "object",
                                                                "required": ["id", "secret"]}),
                        "400": _resp("bad label", ERROR),
                        "404": _resp("unknown participant", ERROR)},
                    parameters=_id_param, requestBody=_json_body({"label": _text}, []))},
    "/api/v1/admin/participant-keys/{key_id}/revoke": {"post": _op("Revoke a participant key "
                                                                    "(admin)", {
        "200": _resp("revoked", _ok), "404": _resp("unknown key", ERROR),
        "409": _resp("already revoked", ERROR)},
        parameters=[{"name": "key_id", "in": "path", "required": True,
                     "schema": {"type": "string"}}])},
    "/api/v1/admin/hosting": {
        "get": _op("Shared-use hosting delegations", {
            "200": _resp("delegations", {"type": "object", "required": ["hosting"]})}),
        "post": _op("Let a host's connector publish for a tenant (admin)", {
            "201": _resp("added", _ok), "400": _resp("bad request", ERROR),
            "404": _resp("unknown participant", ERROR), "409": _resp("hosted already", ERROR)},
            requestBody=_json_body({"tenant": _text, "host": _text}, ["tenant", "host"]))},
    "/api/v1/admin/hosting/{tenant}": {"delete": _op("End a tenant's hosting (admin)", {
        "200": _resp("removed", _ok), "404": _resp("not hosted", ERROR)},
        parameters=[{"name": "tenant", "in": "path", "required": True,
                     "schema": {"type": "string"}}])},
    "/api/v1/admin/tokens": {
        "get": _op("Join tokens and their state (never their secrets)", {
            "200": _resp("tokens", {"type": "object", "required": ["tokens"]})},
            parameters=[{"name": "participant", "in": "query", "schema": _str_param}]),
        "post": _op("Create a one-time join token; the token is in this answer only (admin)", {
            "201": _resp("the token", {"type": "object", "required": ["id", "token"]}),
            "400": _resp("bad ttl", ERROR), "404": _resp("unknown participant", ERROR),
            "409": _resp("participant suspended", ERROR)},
            requestBody=_json_body({"participant": _text, "ttl": _text}, ["participant"]))},
    "/api/v1/admin/tokens/{token_id}/revoke": {"post": _op("Revoke an unused join token (admin)", {
        "200": _resp("revoked", _ok), "404": _resp("unknown token", ERROR),
        "409": _resp("used or revoked already", ERROR)},
        parameters=[{"name": "token_id", "in": "path", "required": True,
                     "schema": {"type": "string"}}])},
    "/api/v1/admin/nodes": {"get": _op("Active nodes", {
        "200": _resp("nodes", {"type": "object", "required": ["nodes"]})})},
    "/api/v1/admin/nodes/{participant}/{name}/revoke": {"post": _op(
        "Revoke every certificate of a node and publish a new revocation list (admin)", {
            "200": _resp("revoked", _ok), "400": _resp("bad request", ERROR),
            "404": _resp("unknown node", ERROR)},
        parameters=[{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                    for n in ("participant", "name")], requestBody=_reason)},
    "/api/v1/admin/audit-log": {"get": _op("Admin actions, newest first", {
        "200": _resp("entries", {"type": "object", "required": ["entries"]}),
        "400": _resp("bad limit or before", ERROR)},
        parameters=[{"name": n, "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                           "maximum": high}}
                    for n, high in (("limit", 1000), ("before", 2**62))])},
    "/api/v1/admin/audit-log/verify": {"get": _op("Check the audit log's hash chain", {
        "200": _resp("the verdict", {"type": "object", "required": ["ok", "entries"]})})},
}

CKAN_PATH: dict = {
    "parameters": [{"name": "action", "in": "path", "required": True, "schema": {
        "type": "string", "enum": ["package_search", "package_show", "package_list",
                                   "organization_list", "organization_show",
                                   "group_list", "status_show", "help_show"]}}],
    "get": {"summary": "CKAN Action API (read actions)",
            "parameters": [{"name": n, "in": "query", "schema": _str_param} for n in (
                "q", "fq", "sort", "id", "name", "facet.field", "all_fields")] + [
                {"name": n, "in": "query", "schema": {"type": "integer", "minimum": 0,
                                                      "maximum": high}}
                for n, high in (("rows", 1000), ("start", 10_000_000), ("limit", 1_000_000),
                                ("offset", 10_000_000))],
            "responses": {
                "200": _resp("CKAN success", {"$ref": "#/components/schemas/CkanOk"}),
                "400": _resp("CKAN bad request", {"$ref": "#/components/schemas/CkanError"}),
                "404": _resp("CKAN not found", {"$ref": "#/components/schemas/CkanError"}),
                "408": _resp("the body stopped arriving",
                             {"$ref": "#/components/schemas/CkanError"}),
                "409": _resp("CKAN validation error",
                             {"$ref": "#/components/schemas/CkanError"}),
                "413": _resp("the body is larger than 1 MiB",
                             {"$ref": "#/components/schemas/CkanError"})}},
}

CKAN_PATH["post"] = {
    "summary": "CKAN Action API (read actions), parameters as a JSON object (as ckanapi sends)",
    "requestBody": {"required": False, "content": {_json: {"schema": {"type": "object"}}}},
    "responses": CKAN_PATH["get"]["responses"],
}

OPENAPI: dict = {
    "openapi": "3.1.0",
    "info": {"title": "areamesh registry API", "version": __version__,
             "description": "運営組織レジストリの公開API: 参加者、データセットカタログ（日本語全文検索、"
                            "CKAN互換API、DCAT）、信頼の基点と失効リスト、"
                            "個人データ提供記録（台帳）の監査、運営組織の管理API"
                            "（docs/security.md の認証・認可）。"},
    "paths": {
        "/healthz": {"get": {"summary": "Liveness and database check", "responses": {
            "200": _resp("ok", {"type": "object", "required": ["status"],
                                "properties": {"status": {"const": "ok"},
                                               "mesh_id": {"type": "string"}}})}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {
            "200": _resp("exposition format", {"type": "string"}, "text/plain")}}},
        "/api/v1/trust-bundle": {"get": {"summary": "The mesh root CA certificates (PEM)",
                                         "responses": {"200": _resp("PEM bundle", {"type": "string"},
                                                                    "application/x-pem-file")}}},
        "/api/v1/crl": {"get": {
            "summary": "The signed revocation list (DER, or PEM with format=pem)",
            "parameters": [{"name": "format", "in": "query",
                            "schema": {"type": "string", "enum": ["der", "pem"]}}],
            "responses": {"200": {"description": "CRL", "content": {
                "application/pkix-crl": {"schema": {"type": "string", "format": "binary"}},
                "application/x-pem-file": {"schema": {"type": "string"}}}},
                          "400": _resp("unknown format", ERROR)}}},
        "/api/v1/participants": {"get": {
            "summary": "Certified participants and the certification criteria (5-1)",
            "responses": {"200": _resp("register", {
                "type": "object", "required": ["criteria", "participants"],
                "properties": {"criteria": {"type": "string"}, "participants": {
                    "type": "array", "items": {"$ref": "#/components/schemas/Participant"}}}})}}},
        "/api/v1/usage": {"get": {
            "summary": "Metering per participant for a billing period (JST); a participant's "
                       "key sees only its own figures",
            "security": OWN_AUTH,
            "parameters": [{"name": "period", "in": "query", "description":
                            "YYYY, YYYY-MM (default: this month), YYYY-MM-DD or FROM..TO (days, "
                            "inclusive). The pattern lists the always-valid forms; the server also "
                            "takes days 29–31 where the month has them, and FROM..TO ranges.",
                            "schema": {"type": "string", "pattern":
                                       "^(19|20)[0-9]{2}(-(0[1-9]|1[0-2])(-(0[1-9]|1[0-9]|2[0-8]))?)?$"}}],
            "responses": {"200": _resp("usage summary", {"$ref": "#/components/schemas/Usage"}),
                          "400": _resp("bad period", ERROR), **DENIED}}},
        "/api/v1/metering/organisations": {"get": {
            "summary": "Metered figures per organisation for a billing period (JST): records, "
                       "transfers and bytes provided (credited to the dataset's publisher, a "
                       "hosted tenant apart from its host) and received, API calls, consented "
                       "records (4-4, 4-5). A participant's key sees only its own organisation",
            "security": OWN_AUTH,
            "parameters": [_PERIOD],
            "responses": {"200": _resp("figures", {
                "type": "object", "required": ["period", "organisations"], "properties": {
                    "period": {"type": "object"},
                    "organisations": {"type": "array", "items": {"type": "object", "properties": {
                        "id": {"type": "string"}, "name": {"type": "string"},
                        "hosted_by": {"type": ["string", "null"]},
                        **{k: {"type": "integer", "minimum": 0} for k in (
                            "records_provided", "records_received", "transfers_provided",
                            "transfers_received", "bytes_provided", "bytes_received",
                            "api_calls", "consented_records")}}}},
                    "api_calls": {"type": "object", "description": "operators only: calls by "
                                  "participant, operator and anonymous callers, and the total",
                                  "additionalProperties": {"type": "integer"}}}}),
                          "400": _resp("bad period", ERROR), **DENIED}}},
        "/api/v1/metering/crosscheck": {"get": {
            "summary": "The providers' and the consumers' signed reports of each transfer side "
                       "by side (operator only): agree, differ, missing on one side after the "
                       "grace period, or pending",
            "security": OPERATOR_AUTH,
            "parameters": [_PERIOD,
                           {"name": "grace_minutes", "in": "query", "schema": {
                               "type": "integer", "minimum": 0, "maximum": 44640,
                               "default": 60}}],
            "responses": {"200": _resp("cross-check", {
                "type": "object", "required": ["counts", "flagged", "transfers"], "properties": {
                    "period": {"type": "object"}, "grace_seconds": {"type": "integer"},
                    "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
                    "flagged": {"type": "integer"},
                    "transfers": {"type": "array", "items": {"type": "object", "properties": {
                        "transfer_id": {"type": "string"}, "agreement_id": {"type": "string"},
                        "dataset_id": {"type": "string"}, "provider_org": {"type": "string"},
                        "consumer_org": {"type": "string"}, "status": {"type": "string", "enum": [
                            "agree", "differ", "missing_consumer", "missing_provider",
                            "pending"]},
                        "provider": {"type": ["object", "null"]},
                        "consumer": {"type": ["object", "null"]}}}}}}),
                          "400": _resp("bad period", ERROR), **DENIED}}},
        "/api/v1/duties": {"get": {
            "summary": "Duties of notarised agreements as their providers report them "
                       "(operator only), soonest due first",
            "security": OPERATOR_AUTH,
            "parameters": [{"name": "state", "in": "query", "schema": {
                "type": "string", "enum": ["pending", "fulfilled", "overdue"]}}],
            "responses": {"200": _resp("duties held", {
                "type": "object", "required": ["duties", "total"],
                "properties": {"total": {"type": "integer"}, "duties": {
                    "type": "array", "items": {"$ref": "#/components/schemas/Duty"}}}}),
                          "400": _resp("unknown state", ERROR), **DENIED}}},
        "/api/v1/billing": {"get": {
            "summary": "Stored cost-allocation runs (費用按分), newest period first (operator only)",
            "security": OPERATOR_AUTH,
            "responses": {"200": _resp("the runs", {
                "type": "object", "required": ["runs"],
                "properties": {"runs": {"type": "array", "items": {"type": "object"}}}}),
                **DENIED}}},
        "/api/v1/billing/{period}": {"get": {
            "summary": "One billing period's run: cost items, every participant's statement, "
                       "totals, the rounding rule and the rule file (operator only)",
            "security": OPERATOR_AUTH,
            "parameters": [{"name": "period", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "responses": {"200": _resp("the run", {"type": "object",
                                                   "required": ["period", "statements", "totals"]}),
                          "404": _resp("the period was never run", ERROR), **DENIED}}},
        "/api/v1/billing/{period}/statement": {"get": {
            "summary": "A participant's own statement for the period (its API key); an operator "
                       "names one with ?participant= or gets every statement",
            "security": OWN_AUTH,
            "parameters": [{"name": "period", "in": "path", "required": True,
                            "schema": {"type": "string"}},
                           {"name": "participant", "in": "query", "schema": {"type": "string"}}],
            "responses": {"200": _resp("the statement", {"type": "object"}),
                          "404": _resp("no run for the period, or no statement of the "
                                       "participant in it", ERROR), **DENIED}}},
        "/api/v1/datamap": {"get": {
            "summary": "The data map (データマップ): the guidebook's service-side and asset-side "
                       "tables, registered services, flows and graph; a participant's key reads "
                       "every row but figures only of its own flows",
            "security": OWN_AUTH,
            "parameters": [{"name": "period", "in": "query", "description":
                            "YYYY, YYYY-MM, YYYY-MM-DD or FROM..TO (JST) for the records "
                            "counted; default: all time.",
                            "schema": {"type": "string", "pattern":
                                       "^(19|20)[0-9]{2}(-(0[1-9]|1[0-2])(-(0[1-9]|1[0-9]|2[0-8]))?)?$"}}],
            "responses": {"200": _resp("the data map", {
                "type": "object",
                "required": ["period", "service_side", "asset_side", "services", "flows", "graph"],
                "properties": {
                    "period": {"type": ["object", "null"]},
                    "service_side": {"$ref": "#/components/schemas/DataMapTable"},
                    "asset_side": {"$ref": "#/components/schemas/DataMapTable"},
                    "services": {"type": "array", "items": {"type": "object"}},
                    "flows": {"type": "array", "items": {"type": "object"}},
                    "graph": {"type": "object"}}}),
                          "400": _resp("bad period", ERROR), **DENIED}}},
        "/api/v1/kpi": {"get": _op(
            "KPIs (v3 §8.3): output indicators per month (JST) from the registry's records, "
            "and the outcome indicators the operator defined (operator only)",
            {"200": _resp("the KPI report", {"$ref": "#/components/schemas/KpiReport"}),
             "400": _resp("bad month or range (at most 60 months)", ERROR)},
            parameters=[{"name": "to", "in": "query", "description": "the last month, YYYY-MM "
                         "(default: this month, JST)", "schema": {"type": "string", "pattern": MONTH}},
                        {"name": "months", "in": "query", "description": "how many months, "
                         "ending with `to` (default 12)",
                         "schema": {"type": "integer", "minimum": 1, "maximum": 60}}])},
        "/api/v1/datasets": {"get": {
            "summary": "Search datasets with facets", "parameters": [*SEARCH_PARAMS, {
                "name": "federated", "in": "query",
                "schema": {"type": "string", "enum": ["", "true", "false", "1", "0"]},
                "description": "true: also the catalogs of the meshes this mesh is federated with "
                               "(each result's mesh_id says which; see docs/federation.md)"}],
            "responses": {"200": _resp("a page of results", {"$ref": "#/components/schemas/SearchResult"}),
                          "400": _resp("bad paging or filter value", ERROR)}}},
        "/api/v1/datasets/{id}": {"get": {
            "summary": "One published dataset",
            "parameters": [{"name": "id", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "responses": {"200": _resp("the dataset", {"$ref": "#/components/schemas/Dataset"}),
                          "404": _resp("not published", ERROR)}}},
        "/api/v1/ledger/checkpoints": {"get": {
            "summary": "Flow-ledger checkpoints a node submitted, forks included, most recently "
                       "received first (5-2). A node that submitted none has an empty list. "
                       "A participant's key reads only its own nodes'.",
            "security": OWN_AUTH,
            "parameters": [NODE_PARAM, {"name": "limit", "in": "query", "schema": {
                "type": "integer", "minimum": 1, "maximum": 1000}, "description": "default 100"}],
            "responses": {"200": _resp("checkpoints held", {
                "type": "object", "required": ["node", "checkpoints"],
                "properties": {"node": {"type": "string"}, "checkpoints": {
                    "type": "array", "items": {"$ref": "#/components/schemas/LedgerCheckpoint"}}}}),
                          "400": _resp("node is not a node identity URI, or a bad limit", ERROR),
                          **DENIED}}},
        "/api/v1/ledger/audit": {"post": {
            "summary": "Audit a connector's ledger export against the checkpoints held for it",
            "security": OPERATOR_AUTH,
            "description": "The body is the NDJSON file `areamesh connector ledger export` wrote "
                           "(at most 1 GiB). The answer says whether it is an intact chain that "
                           "matches the newest checkpoint held for the node (all accepted ones "
                           "once a fork was recorded), or the first bad entry and why "
                           "(modified, deleted, reordered, rewritten, truncated).",
            "parameters": [NODE_PARAM],
            "requestBody": {"required": True, "content": {
                "application/x-ndjson": {"schema": {"type": "string"}},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
            "responses": {
                "200": _resp("the audit ran; ok says whether the export is intact",
                             {"$ref": "#/components/schemas/LedgerAudit"}),
                "400": _resp("node is not a node identity URI, or the body is not a ledger "
                             "export (the line is named)", ERROR),
                "404": _resp("no checkpoint of this node is held", ERROR),
                "408": _resp("the body stopped arriving before it was complete", ERROR),
                "413": _resp("the export is larger than 1 GiB", ERROR),
                "503": _resp("other audits are running; try again", ERROR), **DENIED}}},
        "/catalog.jsonld": {"get": {"summary": "DCAT catalog as JSON-LD", "responses": {
            "200": _resp("dcat:Catalog", {"type": "object", "required": ["@context", "@type"]},
                         "application/ld+json")}}},
        "/openapi.json": {"get": {"summary": "This document", "responses": {
            "200": _resp("OpenAPI 3.1", {"type": "object"})}}},
        "/api/3/action/{action}": CKAN_PATH,
        "/api/action/{action}": CKAN_PATH,
        **ADMIN_PATHS,
    },

    "components": {"securitySchemes": {
        "operatorKey": {"type": "http", "scheme": "bearer",
                        "description": "an operator's API key, amop_…"},
        "operatorPassword": {"type": "http", "scheme": "basic",
                             "description": "an operator's name and password"},
        "participantKey": {"type": "http", "scheme": "bearer",
                           "description": "a participant's API key, ampt_…"},
    }, "schemas": {
        "DataMapTable": {"type": "object", "required": ["title", "headers", "rows"], "properties": {
            "title": {"type": "string"},
            "headers": {"type": "array", "items": {"type": "string"},
                        "description": "the guidebook 第3.0版's column headers, exactly"},
            "rows": {"type": "array", "items": {"type": "array", "items": {"type": "string"}},
                     "description": "one cell per header; several entries in a cell, one a line"}}},
        "KpiReport": {"type": "object", "required": ["months", "outputs", "outcomes"], "properties": {
            "months": {"type": "array", "items": {"type": "string"}},
            "computed_at": {"type": "string"},
            "outputs": {"type": "array", "items": {"type": "object", "required": [
                "key", "group", "name_ja", "name_en", "unit", "measure", "values"],
                "properties": {
                    "key": {"type": "string"}, "group": {"type": "string"},
                    "name_ja": {"type": "string"}, "name_en": {"type": "string"},
                    "unit": {"type": "string"}, "source": {"type": "string"},
                    "measure": {"type": "string", "enum": ["stock", "flow"],
                                "description": "stock: as of the month's end; flow: during it"},
                    "values": {"type": "array", "items": {"type": "integer"}}}}},
            "outcomes": {"type": "array", "items": {"type": "object", "required": [
                "id", "name_ja", "name_en", "unit", "target", "target_date", "direction",
                "values", "in_range", "met", "progress"], "properties": {
                    "id": {"type": "string"}, "name_ja": {"type": "string"},
                    "name_en": {"type": "string"}, "unit": {"type": "string"},
                    "target": {"type": "number"}, "target_date": {"type": "string"},
                    "direction": {"type": "string", "enum": ["higher", "lower"]},
                    "values": {"type": "array", "items": {"type": "object", "properties": {
                        "period": {"type": "string"}, "value": {"type": "number"}}}},
                    "in_range": {"type": "array", "items": {"type": ["number", "null"]}},
                    "baseline": {"type": ["object", "null"]}, "latest": {"type": ["object", "null"]},
                    "met": {"type": "boolean"}, "progress": {"type": ["number", "null"]}}}}}},
        "Duty": {"type": "object", "required": [
            "agreement_id", "duty_index", "dataset_id", "provider", "consumer", "action", "state",
            "due_at", "confirmed_at", "reported_at"], "properties": {
            "agreement_id": {"type": "string"}, "duty_index": {"type": "integer"},
            "dataset_id": {"type": "string"}, "provider": {"type": "string"},
            "consumer": {"type": "string"}, "provider_node": {"type": "string"},
            "consumer_node": {"type": "string"},
            "action": {"type": "string", "enum": ["delete", "reportUsage", "attribute"]},
            "within": {"type": ["string", "null"]},
            "state": {"type": "string", "enum": ["pending", "fulfilled", "overdue"]},
            "data_since": {"type": ["string", "null"]}, "due_at": {"type": ["string", "null"]},
            "confirmed_at": {"type": ["string", "null"]}, "reported_at": {"type": "string"}}},
        "UsageCounts": {"type": "object", "required": ["transfers", "records", "bytes"],
                        "properties": {"transfers": {"type": "integer"}, "records": {"type": "integer"},
                                       "bytes": {"type": "integer"}, "agreements": {"type": "integer"}}},
        "Usage": {"type": "object", "required": ["period", "participants", "totals"], "properties": {
            "period": {"type": "object", "required": ["label", "from", "to"],
                       "properties": {"label": {"type": "string"}, "from": {"type": "string"},
                                      "to": {"type": "string"}}},
            "participants": {"type": "array", "items": {
                "type": "object", "required": ["id", "provided", "consumed"],
                "properties": {"id": {"type": "string"}, "name": {"type": "string"},
                               "provided": {"$ref": "#/components/schemas/UsageCounts"},
                               "consumed": {"$ref": "#/components/schemas/UsageCounts"}}}},
            "totals": {"$ref": "#/components/schemas/UsageCounts"}}},
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                           "message_ja": {"type": "string"}, "details": {"type": "object"}}}}},
        "Participant": {"type": "object", "required": ["id", "name", "type", "status"],
                        "properties": {"id": {"type": "string"}, "name": {"type": "string"},
                                       "type": {"type": "string"}, "status": {"type": "string"},
                                       "hosted_by": {"type": ["string", "null"]}}},
        "Dataset": {"type": "object",
                    "required": ["id", "publisher", "title", "description", "themes", "version",
                                 "served_by"],
                    "properties": {"id": {"type": "string"}, "publisher": {"type": "string"},
                                   "publisher_name": {"type": "string"},
                                   "title": {"type": "object"}, "description": {"type": "object"},
                                   "themes": {"type": "array", "items": {"type": "string"}},
                                   "keywords": {"type": "array", "items": {"type": "string"}},
                                   "version": {"type": "integer"},
                                   "served_by": {"type": "string"}}},
        "SearchResult": {"type": "object",
                         "required": ["total", "results", "facets", "page", "per_page"],
                         "properties": {
                             "total": {"type": "integer", "minimum": 0},
                             "approximate": {"type": "boolean", "description":
                                 "true: `total` and the facet counts are estimates (shown as 約 on "
                                 "the portal): the standard error of a count N is √(63·N), "
                                 "7.9% at 10,000, 2.5% at 100,000. A registry on "
                                 "PostgreSQL counts from a fixed 1/64 sample of the catalog "
                                 "when that sample finds over 10,000 matches and no exact count "
                                 "of the word is kept; the results and their order are exact "
                                 "either way. Always false on SQLite (see "
                                 "docs/decisions/2026-12-03-search-on-postgresql.md)"},
                             "page": {"type": "integer"}, "per_page": {"type": "integer"},
                             "meshes": {"type": "array", "items": {"type": "string"},
                                        "description": "federated search: the meshes searched"},
                             "unreachable": {"type": "array", "items": {"type": "object"},
                                             "description": "federated search: meshes left out"},
                             "results": {"type": "array",
                                         "items": {"$ref": "#/components/schemas/Dataset"}},
                             "facets": {"type": "object", "additionalProperties": {
                                 "type": "array", "items": {
                                     "type": "object", "required": ["value", "count"],
                                     "properties": {"value": {"type": "string"},
                                                    "count": {"type": "integer"}}}}}}},
        "LedgerCheckpoint": {
            "type": "object",
            "required": ["node", "seq", "head", "time", "received_at", "status", "signed"],
            "properties": {"node": {"type": "string"}, "seq": {"type": "integer", "minimum": 0},
                           "head": {"type": "string"}, "time": {"type": "string"},
                           "received_at": {"type": "string"},
                           "status": {"enum": ["accepted", "fork"]},
                           "conflict": {"type": ["string", "null"],
                                        "description": "for a fork: what it contradicts"},
                           "signed": {"type": "object", "description":
                                      "the signed checkpoint as submitted; save it for "
                                      "'areamesh connector ledger verify-export --checkpoint'"}}},
        "LedgerAudit": {
            "type": "object",
            "required": ["ok", "node", "entries", "first_bad_seq", "reason", "message",
                         "message_ja", "checkpoint", "forks"],
            "properties": {
                "ok": {"type": "boolean"}, "node": {"type": "string"},
                "entries": {"type": "integer", "description": "entries read before the verdict"},
                "head_seq": {"type": "integer"}, "head": {"type": "string"},
                "checkpoints": {"type": "integer", "description": "checkpoints compared"},
                "first_bad_seq": {"type": ["integer", "null"]},
                "reason": {"enum": [None, "modified", "reordered", "deleted", "rewritten",
                                    "truncated", "checkpoint_invalid"]},
                "message": {"type": "string"}, "message_ja": {"type": "string"},
                "forks": {"type": "integer", "description": "forks recorded for the node"},
                "checkpoint": {"type": "object", "description": "the newest checkpoint held",
                               "required": ["seq", "head", "time"]}}},
        "CkanOk": {"type": "object", "required": ["success", "result"],
                   "properties": {"success": {"const": True}, "help": {"type": "string"},
                                  "result": {}}},
        "CkanError": {"type": "object", "required": ["success", "error"],
                      "properties": {"success": {"const": False}, "help": {"type": "string"},
                                     "error": {"type": "object",
                                               "required": ["__type", "message"]}}},
    }},
}
