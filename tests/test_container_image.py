"""The container image built from deploy/Dockerfile, and the demo mesh of deploy/compose.yaml
started from it under a real Docker engine: the registry answers, the three connectors enrol
and see each other, and one connector fetches another's dataset over mTLS between containers.

Needs a Docker engine, Buildah, debootstrap and docker-compose (Debian's docker.io, buildah,
debootstrap, docker-compose). As root with apt the test installs what is missing and starts
dockerd itself (and stops it again); anywhere else it skips and says why. Public image
registries are not reachable here, so the base image is made with debootstrap from Debian's
packages and cached in /var/tmp/areamesh-base, keyed by what goes into it.

Run alone:  pytest -m container -n 0
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.container, pytest.mark.integration, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
APT_PACKAGES = ("docker.io", "buildah", "debootstrap", "docker-compose")
TOOLS = {"docker": "docker.io", "dockerd": "docker.io", "buildah": "buildah",
         "debootstrap": "debootstrap", "docker-compose": "docker-compose"}

# The base image stands in for python:3.12-slim: Debian 12's Python 3.11 with venv and pip.
BASE_SUITE = "bookworm"
BASE_MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = "python3,python3-venv,python3-pip,python-is-python3,ca-certificates"
BASE_CACHE = Path(os.environ.get("AREAMESH_BASE_CACHE", "/var/tmp/areamesh-base"))
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
IMAGE = "areamesh:test"

TIMINGS: dict[str, float] = {}


def _run(*cmd: str, timeout: float = 600, check: bool = True, input: bytes | None = None,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, timeout=timeout, input=input,
                          env=env, cwd=REPO)
    out = subprocess.CompletedProcess(cmd, proc.returncode, proc.stdout.decode(errors="replace"),
                                      proc.stderr.decode(errors="replace"))
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {out.returncode}:\n{out.stdout[-3000:]}\n"
                             f"{out.stderr[-3000:]}")
    return out


class _Timed:
    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        self.start = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        TIMINGS[self.what] = round(time.monotonic() - self.start, 1)
        print(f"[container test] {self.what}: {TIMINGS[self.what]} s", flush=True)


# ---- the engine ------------------------------------------------------------------------------

def _missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def _install_tools() -> str | None:
    """Install the missing Debian packages; None when done, else why not."""
    missing = _missing_tools()
    if not missing:
        return None
    packages = sorted({TOOLS[t] for t in missing})
    if os.geteuid() != 0:
        return f"missing {', '.join(missing)} and not root, so cannot apt-get install {' '.join(packages)}"
    if shutil.which("apt-get") is None:
        return f"missing {', '.join(missing)} and no apt-get to install them"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for attempt in ("install", "update-then-install"):
        if attempt == "update-then-install":
            subprocess.run(["apt-get", "update"], capture_output=True, timeout=300, env=env)
        proc = subprocess.run(["apt-get", "install", "-y", *packages], capture_output=True,
                              timeout=600, env=env)
        if proc.returncode == 0 and not _missing_tools():
            return None
    return (f"apt-get install {' '.join(packages)} failed: "
            f"{proc.stderr.decode(errors='replace')[-500:]}")


def _engine_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="module")
def engine() -> Iterator[None]:
    """A Docker engine that answers; started here (and stopped afterwards) if it was not."""
    reason = _install_tools()
    if reason:
        pytest.skip(f"no Docker engine can start here: {reason}")
    started: subprocess.Popen[bytes] | None = None
    log = None
    if not _engine_answers():
        if os.geteuid() != 0:
            pytest.skip("no Docker engine can start here: `docker info` fails for this user "
                        "and only root may start dockerd")
        log = tempfile.NamedTemporaryFile(prefix="areamesh-dockerd-", suffix=".log", delete=False)
        started = subprocess.Popen(["dockerd"], stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        while not _engine_answers():
            if started.poll() is not None or time.monotonic() > deadline:
                _stop(started)
                tail = Path(log.name).read_text(errors="replace")[-800:]
                pytest.skip(f"no Docker engine can start here: dockerd did not come up:\n{tail}")
            time.sleep(0.5)
    try:
        yield
    finally:
        # how long each step took, for deploy/README.md and the CI log (pytest -s shows it too)
        print(f"[container test] timings: {json.dumps(TIMINGS, ensure_ascii=False)}", flush=True)
        with contextlib.suppress(OSError):
            BASE_CACHE.mkdir(parents=True, exist_ok=True)
            (BASE_CACHE / "last-timings.json").write_text(json.dumps(TIMINGS, indent=1))
        if started is not None:
            _stop(started)
            print("[container test] stopped the dockerd this test started", flush=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# ---- the images ------------------------------------------------------------------------------

def _base_key() -> str:
    digest = hashlib.sha256()
    for part in ("areamesh-base v1", BASE_SUITE, "minbase", BASE_MIRROR, BASE_PACKAGES):
        digest.update(part.encode() + b"\0")
    digest.update(CA_BUNDLE.read_bytes() if CA_BUNDLE.exists() else b"")
    return digest.hexdigest()[:16]


def _buildah_has(image: str) -> bool:
    return _run("buildah", "inspect", "--type", "image", image, check=False).returncode == 0


def _base_image() -> str:
    """localhost/areamesh-base:KEY in Buildah's storage: from Buildah's storage, else from the
    rootfs tarball cached in BASE_CACHE, else debootstrap (then cached)."""
    key = _base_key()
    image = f"localhost/areamesh-base:{key}"
    if _buildah_has(image):
        return image
    tarball = BASE_CACHE / key / "rootfs.tar"
    if not tarball.exists():
        with _Timed("debootstrap base (cold)"):
            BASE_CACHE.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=BASE_CACHE) as tmp:
                root = Path(tmp) / "rootfs"
                debs = BASE_CACHE / "debs"        # downloaded packages, kept for the next key
                debs.mkdir(exist_ok=True)
                _run("debootstrap", "--variant=minbase", f"--include={BASE_PACKAGES}",
                     f"--cache-dir={debs}", BASE_SUITE, str(root), BASE_MIRROR, timeout=900)
                # pip inside a build trusts the machine's CA bundle (PIP_CERT below)
                if CA_BUNDLE.exists():
                    shutil.copyfile(CA_BUNDLE, root / "etc/ssl/certs/ca-certificates.crt")
                for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
                    for entry in (root / cache).glob("*"):
                        if entry.is_file():
                            entry.unlink()
                partial = Path(tmp) / "rootfs.tar"
                with tarfile.open(partial, "w") as tar:
                    tar.add(root, arcname=".")
                tarball.parent.mkdir(parents=True, exist_ok=True)
                partial.replace(tarball)
    with _Timed("base image from cached rootfs"):
        ctr = _run("buildah", "from", "scratch").stdout.strip()
        try:
            _run("buildah", "add", ctr, str(tarball), "/")
            _run("buildah", "config",
                 "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                 "--env", "LANG=C.UTF-8",
                 "--env", f"PIP_CERT={CA_BUNDLE}",
                 "--cmd", "/bin/sh", ctr)
            _run("buildah", "commit", "--rm", ctr, image)
        except BaseException:
            _run("buildah", "rm", ctr, check=False)
            raise
    return image


@pytest.fixture(scope="module")
def base(engine: None) -> str:
    return _base_image()


@pytest.fixture(scope="module")
def image(base: str) -> str:
    """areamesh:test in the Docker engine, built from deploy/Dockerfile by Buildah (layers
    cached between runs, so an unchanged pyproject.toml reuses the dependency wheels)."""
    with _Timed("image build total"):
        with _Timed("buildah bud"):
            _run("buildah", "bud", "--isolation", "chroot", "--pull-never", "--layers",
                 "--format", "docker", "--ignorefile", str(DEPLOY / "dockerignore.example"),
                 "--build-arg", f"PYTHON_IMAGE={base}",
                 "-f", str(DEPLOY / "Dockerfile"), "-t", f"localhost/{IMAGE}", str(REPO),
                 timeout=1200)
        built = _run("buildah", "inspect", "--type", "image", "--format", "{{.FromImageID}}",
                     f"localhost/{IMAGE}").stdout.strip()
        have = _run("docker", "image", "inspect", "--format", "{{.Id}}", IMAGE,
                    check=False).stdout.strip()
        if have.removeprefix("sha256:") != built.removeprefix("sha256:"):
            with _Timed("buildah push to docker"):
                _run("buildah", "push", f"localhost/{IMAGE}", f"docker-daemon:{IMAGE}")
    return IMAGE


def test_image_runs_as_uid_10001_with_healthcheck_and_no_pip(image: str) -> None:
    info = json.loads(_run("docker", "image", "inspect", image).stdout)[0]["Config"]
    assert info["User"] == "10001:10001"
    assert info["Entrypoint"] == ["areamesh"]
    assert info["Healthcheck"]["Test"][0] == "CMD"          # kept: built in the docker format
    out = _run("docker", "run", "--rm", "--read-only", "--cap-drop", "ALL", image,
               "registry", "serve", "--help").stdout
    assert "--data-dir" in out and "--grpc" in out
    no_pip = _run("docker", "run", "--rm", "--entrypoint", "/opt/venv/bin/python", image,
                  "-c", "import pip", check=False)
    assert no_pip.returncode != 0 and "No module named 'pip'" in no_pip.stderr
    bad = _run("docker", "run", "--rm", image, "registry", "serve", check=False)
    assert bad.returncode != 0                                # no data dir: refuses to start


# ---- the demo mesh ---------------------------------------------------------------------------

PORT_VARS = ("AREAMESH_REGISTRY_GRPC_PORT", "AREAMESH_REGISTRY_ENROL_PORT",
             "AREAMESH_REGISTRY_HTTP_PORT", "AREAMESH_OSAKA_HTTP_PORT",
             "AREAMESH_HIMEJI_HTTP_PORT", "AREAMESH_KAKOGAWA_HTTP_PORT")


@dataclass
class Compose:
    project: str
    files: tuple[Path, ...]
    env: dict[str, str] = field(default_factory=dict)

    def __call__(self, *args: str, timeout: float = 300, check: bool = True,
                 input: bytes | None = None) -> subprocess.CompletedProcess[str]:
        files = [a for f in self.files for a in ("-f", str(f))]
        return _run("docker-compose", "-p", self.project, *files, *args, timeout=timeout,
                    check=check, input=input, env=self.env)

    def exec(self, service: str, *cmd: str, check: bool = True,
             input: bytes | None = None) -> subprocess.CompletedProcess[str]:
        """`docker exec` in the service's container (docker-compose 1.29's own exec starts a
        Python process of its own each time: about a second slower per call)."""
        ids = _run("docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={self.project}",
                   "--filter", f"label=com.docker.compose.service={service}").stdout.split()
        assert len(ids) == 1, f"{service}: containers {ids}"
        return _run("docker", "exec", *(["-i"] if input is not None else []), ids[0], *cmd,
                    check=check, input=input)

    def port(self, service: str, port: int) -> int:
        out = self("port", service, str(port)).stdout.strip()
        host, _, number = out.rpartition(":")
        assert host == "127.0.0.1", f"{service}:{port} published on {out!r}, not on loopback"
        return int(number)

    def down(self) -> None:
        self("down", "--volumes", "--remove-orphans", "--timeout", "10", check=False)
        # anything compose lost track of
        label = f"label=com.docker.compose.project={self.project}"
        for kind, ls in (("container", ["ps", "-aq"]), ("volume", ["volume", "ls", "-q"]),
                         ("network", ["network", "ls", "-q"])):
            ids = _run("docker", *ls, "--filter", label, check=False).stdout.split()
            if ids:
                rm = ["rm", "-f"] if kind == "container" else [kind, "rm"]
                _run("docker", *rm, *ids, check=False)


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _wait(predicate, *, timeout: float, what: str, diagnose=None):
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except (OSError, AssertionError) as e:
            last = e
        time.sleep(1)
    extra = diagnose() if diagnose else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}: {last!r}\n{extra}")


@pytest.fixture(scope="module")
def demo_mesh(image: str) -> Iterator[Compose]:
    project = f"areamesh-test-{os.getpid()}"
    env = dict(os.environ, AREAMESH_IMAGE=image, AREAMESH_PULL_POLICY="never",
               **{var: "" for var in PORT_VARS})            # empty: a free port on 127.0.0.1
    compose = Compose(project, (DEPLOY / "compose.yaml",), env)
    compose.down()
    try:
        with _Timed("demo mesh up (bootstrap, registry healthy, connectors started)"):
            compose("up", "--detach", "--no-build", timeout=600)
        yield compose
    finally:
        with _Timed("demo mesh down"):
            compose.down()
        left = _run("docker", "ps", "-aq", "--filter",
                    f"label=com.docker.compose.project={project}").stdout.split()
        assert not left, f"containers left behind: {left}"


CONNECTORS = {"osaka": "270008", "himeji": "282014", "kakogawa": "282103"}


def test_demo_mesh_registry_answers_and_connectors_enrol(demo_mesh: Compose) -> None:
    logs = lambda: demo_mesh("logs", "--no-color", "--tail", "40", check=False).stdout  # noqa: E731
    registry = demo_mesh.port("registry", 7780)
    for host_port, what in ((demo_mesh.port("registry", 7700), "gRPC"),
                            (demo_mesh.port("registry", 7699), "enrolment")):
        assert host_port > 0, what
    status, body = _wait(lambda: (s := _get(f"http://127.0.0.1:{registry}/healthz"))[0] == 200 and s,
                         timeout=60, what="registry /healthz", diagnose=logs)
    assert json.loads(body)
    # the bootstrap container ran once and exited 0
    state = _run("docker", "inspect", "--format", "{{.State.ExitCode}} {{.State.Status}}",
                 f"{demo_mesh.project}_bootstrap_1").stdout.split()
    assert state == ["0", "exited"]
    # each connector enrolled (its data volume has a certificate) and answers /healthz
    for name in CONNECTORS:
        port = demo_mesh.port(name, 7781)
        _wait(lambda p=port: _get(f"http://127.0.0.1:{p}/healthz")[0] == 200, timeout=90,
              what=f"{name} /healthz", diagnose=logs)
    nodes = demo_mesh.exec("registry", "areamesh", "registry", "node", "list").stdout
    for name, participant in CONNECTORS.items():
        assert name in nodes and participant in nodes, nodes
    # the token files are secrets: 0600, owned by the image's user
    modes = demo_mesh.exec("osaka", "stat", "-c", "%a %u %n",
                      "/var/lib/areamesh/tokens/270008.token",
                      "/var/lib/areamesh/connector/tls/node.key").stdout.split("\n")
    assert all(line.startswith("600 10001 ") for line in modes if line), modes
    # 姫路市 pings the other two over mTLS between the containers (operator API)
    key = demo_mesh.exec("himeji", "cat",
                    "/var/lib/areamesh/connector/operator.key").stdout.strip()
    himeji = demo_mesh.port("himeji", 7781)

    def peers_ok():
        status, body = _get(f"http://127.0.0.1:{himeji}/api/v1/peers?ping=1",
                            {"Authorization": f"Bearer {key}"})
        assert status == 200, (status, body[:300])
        doc = json.loads(body)
        reached = {p["node_name"] for p in doc["peers"] if p["ping"] and p["ping"]["ok"]}
        return reached if reached == {"osaka", "kakogawa"} else None
    _wait(peers_ok, timeout=60, what="himeji reaching both peers", diagnose=logs)
    status, _ = _get(f"http://127.0.0.1:{himeji}/api/v1/peers", {"Authorization": "Bearer wrong"})
    assert status in (401, 403)


def test_demo_mesh_fetch_between_containers(demo_mesh: Compose) -> None:
    """姫路市 publishes its AED list (Shift_JIS CSV, as the demo does); 大阪府 agrees terms and
    fetches it peer to peer over mTLS between the containers."""
    from areamesh.demo import DemoMesh
    from areamesh.demo_catalog import DATASETS

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        doc = DemoMesh._himeji_aed(folder, next(d for k, d in DATASETS if d["id"] == "himeji-aed"))
        (folder / "himeji-aed.yaml").write_text(
            yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
        archive = folder / "datasets.tar"
        with tarfile.open(archive, "w") as tar:
            for name in ("himeji-aed.yaml", "himeji_aed_2019.csv"):
                info = tar.gettarinfo(folder / name, arcname=name)
                info.uid = info.gid = 10001
                with (folder / name).open("rb") as f:
                    tar.addfile(info, f)
        data = archive.read_bytes()
    demo_mesh.exec("himeji", "sh", "-c",
              "mkdir -p /var/lib/areamesh/connector/datasets && "
              "tar -x -C /var/lib/areamesh/connector/datasets", input=data)
    out = demo_mesh.exec("himeji", "areamesh", "connector", "dataset", "add",
                    "--data-dir", "/var/lib/areamesh/connector",
                    "--file", "/var/lib/areamesh/connector/datasets/himeji-aed.yaml").stdout
    assert "himeji-aed" in out
    agreed = demo_mesh.exec("osaka", "areamesh", "connector", "contract", "request",
                       "--data-dir", "/var/lib/areamesh/connector", "--dataset", "himeji-aed",
                       "--offer", "open-use", "--purpose", "防災").stdout
    assert "FINALIZED" in agreed, agreed
    agreement = agreed.split("agreement ")[1].split()[0]
    fetched = demo_mesh.exec("osaka", "areamesh", "connector", "fetch",
                        "--data-dir", "/var/lib/areamesh/connector", "--agreement", agreement,
                        "--out", "/tmp/himeji-aed.csv", "--format", "csv", "--json")
    result = json.loads(fetched.stdout)
    assert result["records"] == 40 and result["written"] == 40, result
    rows = demo_mesh.exec("osaka", "sh", "-c", "wc -l < /tmp/himeji-aed.csv").stdout
    assert int(rows) == 41                                  # the header and 40 records
    # a refused request: an offer that does not exist
    refused = demo_mesh.exec("kakogawa", "areamesh", "connector", "contract", "request",
                        "--data-dir", "/var/lib/areamesh/connector", "--dataset", "himeji-aed",
                        "--offer", "no-such-offer", "--purpose", "防災", check=False)
    assert refused.returncode != 0



# ---- the registry as two replicas on PostgreSQL (deploy/compose.replicas.yaml) ----------------

def _push_if_changed(local: str, name: str) -> None:
    built = _run("buildah", "inspect", "--type", "image", "--format", "{{.FromImageID}}",
                 local).stdout.strip()
    have = _run("docker", "image", "inspect", "--format", "{{.Id}}", name,
                check=False).stdout.strip()
    if have.removeprefix("sha256:") != built.removeprefix("sha256:"):
        _run("buildah", "push", local, f"docker-daemon:{name}")


@pytest.fixture(scope="module")
def postgresql_image(base: str) -> str:
    """A PostgreSQL 15 server image from Debian's package on the same base (no public image
    registry is reachable); it reads the official image's POSTGRES_* variables."""
    name = "areamesh-test-postgresql:15"
    with _Timed("postgresql image"):
        _run("buildah", "bud", "--isolation", "chroot", "--pull-never", "--layers",
             "--format", "docker", "--build-arg", f"BASE_IMAGE={base}",
             "-f", str(REPO / "tests/containers/postgresql.Dockerfile"),
             "-t", f"localhost/{name}", str(REPO / "tests/containers"), timeout=900)
        _push_if_changed(f"localhost/{name}", name)
    return name


def test_two_registry_replicas_on_postgresql(image: str, request: pytest.FixtureRequest) -> None:
    """Both replicas answer from one database and one CA; 大阪府 enrols through the shared name;
    with one replica killed (-9) the other still answers and the connector stays healthy."""
    help_text = _run("docker", "run", "--rm", image, "registry", "serve", "--help").stdout
    if "--database" not in help_text:
        pytest.skip("'areamesh registry serve' has no --database option in this build (the "
                    "PostgreSQL backend is not merged yet): deploy/compose.replicas.yaml needs it")
    postgres = request.getfixturevalue("postgresql_image")
    project = f"areamesh-replicas-{os.getpid()}"
    env = dict(os.environ, AREAMESH_IMAGE=image, AREAMESH_PULL_POLICY="never",
               AREAMESH_POSTGRES_IMAGE=postgres)
    compose = Compose(project, (DEPLOY / "compose.replicas.yaml",), env)
    logs = lambda: compose("logs", "--no-color", "--tail", "40", check=False).stdout  # noqa: E731
    compose.down()
    try:
        with _Timed("two replicas up"):
            compose("up", "--detach", "--no-build", timeout=600)
        replicas = [f"{project}_registry_{i}" for i in (1, 2)]
        ports = []
        for name in replicas:
            out = _run("docker", "port", name, "7780").stdout.split()[0]
            assert out.startswith("127.0.0.1:"), out
            ports.append(int(out.rsplit(":", 1)[1]))
        bundles, participants = [], []
        for port in ports:
            _wait(lambda p=port: _get(f"http://127.0.0.1:{p}/healthz")[0] == 200, timeout=60,
                  what=f"replica on {port} /healthz", diagnose=logs)
            bundles.append(_get(f"http://127.0.0.1:{port}/api/v1/trust-bundle"))
            participants.append(_get(f"http://127.0.0.1:{port}/api/v1/participants"))
        assert bundles[0] == bundles[1] and bundles[0][0] == 200      # one CA
        assert participants[0] == participants[1]                      # one database
        assert b"270008" in participants[0][1]
        osaka = compose.port("osaka", 7781)
        _wait(lambda: _get(f"http://127.0.0.1:{osaka}/healthz")[0] == 200, timeout=90,
              what="osaka enrolled through 'registry'", diagnose=logs)
        _run("docker", "kill", "--signal", "KILL", replicas[0])
        assert _get(f"http://127.0.0.1:{ports[1]}/healthz")[0] == 200
        nodes = _run("docker", "exec", replicas[1], "sh", "-c",
                     "AREAMESH_REGISTRY_DATABASE=\"$(printf '%s' \"$AREAMESH_DATABASE_URL_TEMPLATE\" "
                     "| sed \"s|PASSWORD|$(cat \"$AREAMESH_DATABASE_PASSWORD_FILE\")|\")\" "
                     "areamesh registry node list --data-dir /var/lib/areamesh/registry").stdout
        assert "osaka" in nodes and "270008" in nodes
        assert _get(f"http://127.0.0.1:{osaka}/healthz")[0] == 200
    finally:
        compose.down()
