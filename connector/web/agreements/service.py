"""What the agreement pages ask for, from the stores the CLI reads: the agreements a console
account may see (a hosted tenant's account: only its own datasets'), filtered; one agreement's
document, signatures, notarisation, usage against its limits and, when it ended, the explanation
(``connector.contracts.explain``, the same as ``contract explain``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connector.contracts.explain import Explanation, explain
from connector.contracts.store import STATES, AgreementRow, AgreementStore
from connector.datasets.store import all_publishers, checked_id
from connector.federation import federated_roots_map
from connector.metering.store import TransferRow, UsageStore
from mesh.agreements import PARTIES, SignedAgreement, verify_signed
from mesh.certs import load_pem_bundle
from mesh.datasets import canonical_json
from mesh.errors import AreameshError, InvalidRequest, NotFound
from mesh.ids import parse_node_identity_uri
from mesh.keystore import NodeKeyStore
from mesh.policy import PolicyError, parse_policy
from mesh.policy_text import describe_offer

ROLES = ("provider", "consumer")
MAX_FILTER = 200


@dataclass(frozen=True)
class Filters:
    role: str = ""
    state: str = ""
    dataset: str = ""
    counterpart: str = ""

    @classmethod
    def read(cls, query: Any) -> Filters:
        """From the page's query; an unknown role or state is a 400 naming it."""
        f = cls(*(str(query.get(k, "")).strip()[:MAX_FILTER]
                  for k in ("role", "state", "dataset", "counterpart")))
        if f.role and f.role not in ROLES:
            raise InvalidRequest(f"role must be provider or consumer, not {f.role!r}",
                                 message_ja="役割は provider か consumer です", code="invalid_filter")
        if f.state and f.state not in STATES:
            raise InvalidRequest(f"state must be one of {', '.join(STATES)}",
                                 message_ja=f"状態は {'、'.join(STATES)} のいずれかです",
                                 code="invalid_filter")
        return f

    def admits(self, row: AgreementRow) -> bool:
        return ((not self.role or row.role == self.role)
                and (not self.state or row.state == self.state)
                and (not self.dataset or self.dataset in row.dataset_id)
                and (not self.counterpart or self.counterpart in row.counterparty))


def publisher_of(data_dir: Path, dataset_id: str) -> str | None:
    """The participant that publishes ``dataset_id`` on this connector (also once withdrawn)."""
    try:
        name = f"{checked_id(dataset_id)}.json"
    except InvalidRequest:
        return None
    for pid in all_publishers(data_dir):
        root = data_dir / "publishers" / pid
        if (root / "datasets" / name).exists() or (root / "withdrawn" / name).exists():
            return pid
    return None


def visible(row: AgreementRow, data_dir: Path, scope: str, own_participant: str) -> bool:
    """May an account limited to ``scope`` ('' = the whole node) see ``row``: a hosted tenant
    sees the agreements on its own datasets; what this node consumes belongs to its own
    participant."""
    if not scope:
        return True
    if row.role == "consumer":
        return scope == own_participant
    return publisher_of(data_dir, row.dataset_id) == scope


async def agreements(store: AgreementStore, data_dir: Path, scope: str, own_participant: str,
                     filters: Filters) -> list[AgreementRow]:
    return [r for r in await store.list()
            if visible(r, data_dir, scope, own_participant) and filters.admits(r)]


async def agreement(store: AgreementStore, agreement_id: str, data_dir: Path, scope: str,
                    own_participant: str) -> AgreementRow:
    """One agreement, or ``NotFound`` — also for one outside the account's scope, so that a
    tenant's account cannot tell another tenant's agreements from none."""
    if len(agreement_id) > MAX_FILTER:
        raise NotFound("no such agreement", message_ja="その合意はありません")
    row = await store.get(agreement_id)
    if not visible(row, data_dir, scope, own_participant):
        raise NotFound(f"no agreement {agreement_id} on this connector",
                       message_ja=f"合意 {agreement_id} はこのコネクタにありません")
    return row


@dataclass(frozen=True)
class Limit:
    path: str            # the constraint: permissions[0].constraints[1]
    what: str            # transferCount | recordCount
    operator: str
    bound: int
    maximum: int         # the most allowed in total
    used: int

    @property
    def left(self) -> int:
        return max(self.maximum - self.used, 0)


@dataclass(frozen=True)
class Detail:
    row: AgreementRow
    explanation: Explanation
    signed: SignedAgreement | None
    document: str                    # the signed agreement as pretty canonical JSON
    signature_error: str             # '' when both signatures verify
    digest_matches: bool | None      # the notarised digest is this document's
    limits: list[Limit]
    policy_ja: str                   # the policy in plain words (mesh.policy_text)
    policy_en: str
    used: tuple[int, int]            # (transfers, records) as the limits count them
    transfers: list[TransferRow]


def _limits(policy: Any, transfers: int, records: int) -> list[Limit]:
    try:
        parsed = parse_policy(policy)
    except PolicyError:
        return []
    out = []
    for p in parsed.permissions:
        for c in p.constraints:
            if c.left_operand in ("transferCount", "recordCount"):
                bound = int(c.right_operand)
                out.append(Limit(c.path, c.left_operand, c.operator, bound,
                                 bound if c.operator == "lteq" else bound - 1,
                                 transfers if c.left_operand == "transferCount" else records))
    return out


async def detail(row: AgreementRow, usage: UsageStore, keystore: NodeKeyStore,
                 own_identity: str) -> Detail:
    """Everything the agreement's page shows. The usage is the provider's count (the one its
    limits are enforced on); a consumer's page counts what this node received."""
    signed, error, matches = None, "", None
    if row.signed:
        try:
            signed = SignedAgreement.from_json(row.signed)
            verify_signed(signed, load_pem_bundle(keystore.trust_bundle_pem()),
                          federated=federated_roots_map(keystore.tls_dir),
                          require=PARTIES if row.state == "FINALIZED" else tuple(signed.signatures))
        except AreameshError as exc:
            error = exc.message
        if signed is not None and row.digest:
            matches = signed.agreement.digest() == row.digest
    transfers = [t for t in await usage.list(row.id) if t.role == row.role]
    if row.role == "provider":
        used = await usage.used(row.id)
    else:
        done = [t for t in transfers if t.status in ("sent", "complete") or t.batches > 0]
        used = (len(done), sum(t.records for t in done))
    document = canonical_json(row.signed).decode() if row.signed else ""
    text = describe_offer(signed.agreement.policy, _participant(signed.agreement.provider)) \
        if signed else None
    return Detail(row, explain(row, own_identity), signed, _pretty(document), error, matches,
                  _limits(signed.agreement.policy, *used) if signed else [],
                  text.ja if text else "", text.en if text else "", used, transfers)


def _participant(node_uri: str) -> str:
    parsed = parse_node_identity_uri(node_uri)
    return parsed[0] if parsed else ""


def _pretty(document: str) -> str:
    return json.dumps(json.loads(document), ensure_ascii=False, indent=2, sort_keys=True) \
        if document else ""
