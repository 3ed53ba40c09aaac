"""The Helm chart (deploy/helm/areamesh) rendered by Helm's own engine and every manifest checked
against the Kubernetes API schemas, offline.

Rendering uses helm-python-sdk (Helm's Go SDK as a library: no helm binary is packaged for
Debian, and only PyPI, npm and Debian's packages are reachable here); the schema check uses
kubernetes-validate (the Kubernetes OpenAPI schemas as JSON Schema, strict: unknown fields
fail). `kubectl apply --dry-run=client` is no alternative: it fetches the schemas from an API
server. Both libraries are in the `deploy-test` extra; without them the tests skip and say so.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

helm = pytest.importorskip(
    "helm_python", reason="helm-python-sdk is not installed (pip install -e '.[deploy-test]')")
kubernetes_validate = pytest.importorskip(
    "kubernetes_validate",
    reason="kubernetes-validate is not installed (pip install -e '.[deploy-test]')")

CHART = Path(__file__).resolve().parent.parent / "deploy" / "helm" / "areamesh"
EXAMPLES = CHART.parent / "examples"
# the oldest the chart supports (Chart.yaml kubeVersion) and the newest the schemas know
K8S_VERSIONS = ("1.25.0", kubernetes_validate.latest_version())

REPLICAS = {"registry": {"replicas": 2, "database": {"existingSecret": "kansai-registry-db"},
                         "caSecret": {"existingSecret": "kansai-registry-ca"}}}


def render(values: dict | None = None, *, files: tuple[Path, ...] = ()) -> list[dict]:
    merged: dict = {}
    for f in files:
        merged = _merge(merged, yaml.safe_load(f.read_text(encoding="utf-8")))
    merged = _merge(merged, values or {})
    with helm.Chart.load(str(CHART)) as chart:
        chart.validate_schema(merged)
        manifests = chart.render(merged, name="kansai", namespace="areamesh")
    docs = []
    for name, text in manifests.items():
        if name.endswith(".yaml"):
            docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _validate(docs: list[dict]) -> None:
    assert docs
    for doc in docs:
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                raise AssertionError(f"{doc['kind']} {doc['metadata']['name']} is not valid "
                                     f"Kubernetes {version}: {e.message} at "
                                     f"{'/'.join(map(str, e.path))}") from None


def _one(docs: list[dict], kind: str, name: str) -> dict:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, [(d["kind"], d["metadata"]["name"]) for d in docs]
    return found[0]


@pytest.mark.parametrize("values,files", [
    ({}, ()),
    ({}, (EXAMPLES / "registry.yaml",)),
    ({}, (EXAMPLES / "connector-himeji.yaml",)),
    ({}, (EXAMPLES / "registry-replicas.yaml",)),
    ({"registry": {"replicas": 2, "caSecret": {"existingSecret": "ca"}},
      "postgresql": {"enabled": True}}, ()),
    ({"connector": {"enabled": True, "nodeName": "himeji",
                    "joinToken": {"existingSecret": "join"}}}, ()),
], ids=["defaults", "example-registry", "example-connector", "example-replicas",
        "bundled-postgresql", "registry-and-connector"])
def test_every_rendering_is_valid_kubernetes(values, files):
    _validate(render(values, files=files))


def test_the_validator_catches_an_invalid_manifest():
    """The check above can fail: a field Kubernetes does not know, a wrong type."""
    docs = render()
    sts = _one(docs, "StatefulSet", "kansai-areamesh-registry")
    sts["spec"]["replica"] = 2
    with pytest.raises(AssertionError, match="not valid Kubernetes"):
        _validate([sts])
    del sts["spec"]["replica"]
    sts["spec"]["replicas"] = "two"
    with pytest.raises(AssertionError, match="not valid Kubernetes"):
        _validate([sts])


def test_two_registry_replicas_on_postgresql():
    docs = render(files=(EXAMPLES / "registry-replicas.yaml",))
    sts = _one(docs, "StatefulSet", "kansai-areamesh-registry")
    assert sts["spec"]["replicas"] == 2
    assert "volumeClaimTemplates" not in sts["spec"]          # state is in PostgreSQL
    pod = sts["spec"]["template"]["spec"]
    registry = next(c for c in pod["containers"] if c["name"] == "registry")
    args = registry["args"]
    assert args[args.index("--database") + 1] == "$(AREAMESH_DATABASE_URL)"
    env = {e["name"]: e for e in registry["env"]}
    assert env["AREAMESH_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "kansai-registry-db", "key": "url"}
    assert "postgresql://" not in json.dumps(docs)             # no password in a manifest
    # readiness on every registry container; startup and liveness too
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert registry[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, probe
    pdb = _one(docs, "PodDisruptionBudget", "kansai-areamesh-registry")
    assert pdb["spec"]["minAvailable"] == 1
    assert pod["affinity"]["podAntiAffinity"]


def test_the_ca_secret_is_read_only_0400_and_only_in_the_init_container():
    docs = render(files=(EXAMPLES / "registry-replicas.yaml",))
    pod = _one(docs, "StatefulSet", "kansai-areamesh-registry")["spec"]["template"]["spec"]
    ca = next(v for v in pod["volumes"] if v["name"] == "ca")
    assert ca["secret"]["secretName"] == "kansai-registry-ca"
    assert ca["secret"]["defaultMode"] == 0o400
    assert {i["path"] for i in ca["secret"]["items"]} == {"ca.key", "ca.crt", "pseudonym.key"}
    init = pod["initContainers"][0]
    mount = next(m for m in init["volumeMounts"] if m["name"] == "ca")
    assert mount["readOnly"] is True
    script = init["args"][0]
    assert "umask 077" in script
    assert 'chmod 600 "$DATA_DIR/ca/ca.key" "$DATA_DIR/identity/pseudonym.key"' in script
    for container in pod["containers"]:                        # the server never mounts it
        assert all(m["name"] != "ca" for m in container["volumeMounts"])
    data = next(v for v in pod["volumes"] if v["name"] == "data")
    assert data["emptyDir"]["medium"] == "Memory"              # the key copy is never on disk
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False


def test_sqlite_registry_stays_one_replica_with_its_volume():
    docs = render({"registry": {"replicas": 1}})
    sts = _one(docs, "StatefulSet", "kansai-areamesh-registry")
    assert sts["spec"]["replicas"] == 1
    assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    registry = sts["spec"]["template"]["spec"]["containers"][0]
    assert "--database" not in registry["args"]
    assert registry["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert not [d for d in docs if d["kind"] == "PodDisruptionBudget"]


def test_bundled_postgresql_gets_a_generated_password_in_a_secret():
    docs = render({"registry": {"replicas": 2, "caSecret": {"existingSecret": "ca"}},
                   "postgresql": {"enabled": True}})
    secret = _one(docs, "Secret", "kansai-areamesh-postgresql")
    password = secret["stringData"]["password"]
    assert len(password) == 32
    assert secret["stringData"]["url"] == (
        f"postgresql://areamesh:{password}@kansai-areamesh-postgresql.areamesh.svc:5432/areamesh")
    pg = _one(docs, "StatefulSet", "kansai-areamesh-postgresql")["spec"]["template"]["spec"]
    server = pg["containers"][0]
    assert server["readinessProbe"]["exec"]["command"][0] == "pg_isready"
    assert password not in json.dumps(server)                 # read from a file, not the env
    registry = _one(docs, "StatefulSet", "kansai-areamesh-registry")
    env = registry["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env[0]["valueFrom"]["secretKeyRef"] == {"name": "kansai-areamesh-postgresql",
                                                   "key": "url"}


@pytest.mark.parametrize("values,message", [
    ({"registry": {"replicas": 2}}, "registry.replicas > 1 needs PostgreSQL"),
    ({"registry": {"database": {"existingSecret": "db"}}}, "registry.caSecret.existingSecret"),
    ({"registry": {"meshId": "Kansai_Mesh"}}, "meshId"),
    ({"connector": {"enabled": True, "nodeName": "himeji"}}, "joinToken"),
])
def test_bad_values_stop_the_rendering_with_the_reason(values, message):
    with pytest.raises(helm.HelmError, match=message):
        render(values)


@pytest.mark.parametrize("values", [
    {"registry": {"replicas": 0}},
    {"registry": {"replicas": "two"}},
    {"postgresql": {"user": "Robert'); DROP"}},
])
def test_values_schema_rejects(values):
    with pytest.raises(helm.HelmError):
        render(values)
