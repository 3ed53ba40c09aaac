"""``DATA_DIR/node.json``: who this node is and where its registry is, written at join."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from mesh.files import atomic_write
from mesh.ids import node_identity_uri, registry_dns_name


@dataclass(frozen=True)
class NodeState:
    participant_id: str
    participant_name: str
    node_name: str
    mesh_id: str
    registry: str  # gRPC HOST:PORT

    @property
    def identity_uri(self) -> str:
        return node_identity_uri(self.participant_id, self.node_name)

    @property
    def registry_tls_name(self) -> str:
        return registry_dns_name(self.mesh_id)

    def save(self, data_dir: Path) -> None:
        atomic_write(data_dir / "node.json",
                     json.dumps(asdict(self), ensure_ascii=False, indent=2).encode())

    @classmethod
    def load(cls, data_dir: Path) -> NodeState:
        path = data_dir / "node.json"
        if not path.exists():
            raise SystemExit(f"{data_dir} has not joined a mesh; run 'areamesh connector join "
                             f"--data-dir {data_dir} --registry HOST:PORT --token TOKEN --name NODE'")
        return cls(**json.loads(path.read_text()))
