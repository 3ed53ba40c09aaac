"""IdentityService: links the ids different platforms issued to one resident (DESIGN §8, 5-9/5-10).

- **Link** (resident-initiated): two assertions, from two platforms' identity providers, each
  verified (``registry.identity.assertions``) and unused; both must carry the 基本4情報, which
  must agree after Japanese normalisation on 氏名 and 生年月日 and on at least one of 性別/住所.
  Both ids then belong to one person (a new one, the one either id already has, or — when they
  had different persons — the older person, the other merged into it). A person holds at most
  one id per platform (``platform_already_linked``).
- **Levels**: each id keeps the levels its own provider asserted and the levels on record. At
  link time the provider with the higher 身元確認レベル vouches for the other id, whose IAL is
  raised to the voucher's (appendix 5-10: "レベルの高い個人認証サービスを利用して…身元確認レベルの
  引き上げ"). 当人認証レベル is a property of the login at the platform itself and is not raised
  unless ``elevate_aal`` is set. A re-link records the newly asserted levels.
- **Unlink**: a fresh unlink assertion from that platform; elevations it vouched for are undone.
- **Pseudonyms**: receivers get pairwise pseudonyms (``registry.identity.pseudonyms``); a platform
  can resolve a pseudonym it received to its own local id of that person, nothing else.
- **Per record** (5-10): ``transfer_levels`` answers, for each id of a personal-data transfer, its
  levels and those of the same person's id on the receiving platform (never that id itself).
- **Authorisation** (5-10): ``meets_minimum`` / ``authorise_transfer`` compare levels on record
  with a policy's minimum, as a decision with a reason.

Every refusal raises a ``mesh.errors`` error with a stable code; a refused request writes nothing.
The service trusts its caller (the gRPC layer) to have authenticated who is asking.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509

from mesh.clock import iso, utcnow
from mesh.db import Database
from mesh.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from mesh.identity_assertions import SignedAssertion, check_level
from mesh.ids import validate_corporate_number, validate_local_government_code
from mesh.revocation import RevocationChecker
from registry.identity.assertions import VerifiedAssertion, verify_assertion
from registry.identity.normalise import compare_basic4, normalise_basic4
from registry.identity.pseudonyms import PseudonymKey
from registry.identity.store import (
    IdentityStore,
    IdentityTx,
    LinkedId,
    Provider,
    TransferLevels,
    open_identity_db,
)

log = logging.getLogger("areamesh.registry.identity")

LINK_REQUIRED = ("name", "birth_date")     # known on both sides, always compared
LINK_ONE_OF = ("sex", "address")           # at least one known on both sides
MAX_TRANSFER_IDS = 100_000                 # ids per CheckTransferLevels call


@dataclass(frozen=True)
class Elevation:
    platform: str
    local_id: str
    level: str               # "ial" or "aal"
    before: int
    after: int
    vouched_by: str          # platform whose provider vouched


@dataclass(frozen=True)
class LinkResult:
    person_id: str
    ids: list[LinkedId]                      # every id of the person after the link
    created: bool                            # a new person was created
    merged_from: str | None = None           # a person merged into ``person_id``
    elevations: list[Elevation] = field(default_factory=list)


@dataclass(frozen=True)
class UnlinkResult:
    person_id: str
    remaining: list[LinkedId]
    reverted: list[Elevation]                # elevations undone (after < before)


@dataclass(frozen=True)
class LevelDecision:
    """Whether recorded levels meet a minimum; ``code``/``message`` say why not."""

    allowed: bool
    code: str
    message: str
    message_ja: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"allowed": self.allowed, "code": self.code, "message": self.message,
                "message_ja": self.message_ja, "details": self.details}

    def denial(self) -> PermissionDenied:
        return PermissionDenied(self.message, message_ja=self.message_ja, code=self.code,
                                details=self.details)


def _participant_id(pid: str) -> str:
    return validate_local_government_code(pid) if len(pid) == 6 else validate_corporate_number(pid)


def _not_linked(platform: str, local_id: str) -> NotFound:
    return NotFound(f"id {local_id!r} of platform {platform} is not linked",
                    message_ja=f"基盤 {platform} のID {local_id!r} は名寄せされていません",
                    code="id_not_linked", details={"platform": platform, "local_id": local_id})


class IdentityService:
    """The identity service over an ``IdentityStore`` and a pseudonym key."""

    def __init__(self, store: IdentityStore, pseudonyms: PseudonymKey,
                 roots: list[x509.Certificate], *, revocation: RevocationChecker | None = None,
                 elevate_aal: bool = False) -> None:
        self.store = store
        self.pseudonyms = pseudonyms
        self.roots = roots
        self.revocation = revocation
        self.elevate_aal = elevate_aal

    @classmethod
    async def open(cls, identity_dir: Path, roots: list[x509.Certificate], *,
                   database: str | None = None, **kwargs: Any) -> IdentityService:
        """Open (creating on first use) ``identity_dir``/identity.db and pseudonym.key; the
        folder is created 0700 (it holds personal data and the pseudonym secret)."""
        pseudonyms = await asyncio.to_thread(PseudonymKey.open, identity_dir)  # creates the dir
        db = await open_identity_db(identity_dir, database).open()
        return cls(IdentityStore(db), pseudonyms, roots, **kwargs)

    @property
    def db(self) -> Database:
        return self.store.db

    async def close(self) -> None:
        await self.store.db.close()

    # ---- providers ----------------------------------------------------------------------
    async def register_provider(self, participant_id: str, platform_name: str, max_ial: int,
                                max_aal: int) -> Provider:
        """Register (or update) ``participant_id`` as the identity provider of its platform."""
        _participant_id(participant_id)
        check_level("ial", max_ial)
        check_level("aal", max_aal)
        if not platform_name.strip():
            raise InvalidRequest("platform name must not be empty",
                                 message_ja="基盤名を入力してください", code="invalid_platform_name")
        now = iso(utcnow())
        async with self.store.transaction() as tx:
            await tx.save_provider(participant_id, platform_name.strip(), max_ial, max_aal, now)
            await tx.append_event("provider", now, platform=participant_id, detail={
                "platform_name": platform_name.strip(), "max_ial": max_ial, "max_aal": max_aal})
            provider = await tx.provider(participant_id)
        assert provider is not None
        log.info("identity provider %s (%s) max ial=%d aal=%d", participant_id, platform_name,
                 max_ial, max_aal)
        return provider

    # ---- link / unlink ------------------------------------------------------------------
    async def _verified(self, tx: IdentityTx, raw: str | bytes | dict, purpose: str,
                        now: datetime) -> VerifiedAssertion:
        verified = await verify_assertion(SignedAssertion.parse(raw), roots=self.roots,
                                          providers=tx, purpose=purpose, now=now,
                                          revocation=self.revocation)
        a = verified.assertion
        if await tx.seen(a.platform, a.jti):
            raise PermissionDenied(
                f"assertion {a.jti} of platform {a.platform} was already used",
                message_ja="このアサーションは既に使用されています（再送は受け付けません）",
                code="assertion_replayed", details={"platform": a.platform, "jti": a.jti})
        return verified

    async def link(self, assertion_a: str | bytes | dict, assertion_b: str | bytes | dict, *,
                   now: datetime | None = None) -> LinkResult:
        """Link the two asserted ids to one person (see the module docstring)."""
        now = now or utcnow()
        at = iso(now)
        async with self.store.transaction() as tx:
            va = await self._verified(tx, assertion_a, "link", now)
            vb = await self._verified(tx, assertion_b, "link", now)
            a, b = va.assertion, vb.assertion
            if a.platform == b.platform:
                raise InvalidRequest(
                    f"both assertions are from platform {a.platform}; a link joins ids of two "
                    "different platforms",
                    message_ja="同じ基盤のアサーションが2つあります。異なる基盤のIDを指定してください",
                    code="same_platform", details={"platform": a.platform})
            _check_basic4(a.basic4, b.basic4)
            la, lb = await tx.linked(a.platform, a.local_id), await tx.linked(b.platform, b.local_id)
            person, created, merged = await self._person_for(tx, la, lb, at)
            others = {i.platform: i for i in await tx.ids_of(person)}
            for mine in (va, vb):
                held = others.get(mine.platform)
                if held is not None and held.local_id != mine.assertion.local_id:
                    raise Conflict(
                        f"this person is already linked to another id on platform "
                        f"{mine.platform}; unlink it first",
                        message_ja=(f"この方は基盤 {mine.platform} の別のIDと既に名寄せされています。"
                                    "先に解除してください"),
                        code="platform_already_linked", details={"platform": mine.platform})
            records, elevations = self._levels(va, vb, others, person, at)
            for record, (mine, other) in zip(records, ((va, vb), (vb, va)), strict=True):
                await tx.save_link(record, at)
                await tx.append_event("link", at, person_id=person, platform=record.platform,
                                      local_id=record.local_id, detail={
                    "with_platform": other.platform, "issuer": mine.signer.uri,
                    "jti": mine.assertion.jti, "asserted_ial": record.asserted_ial,
                    "asserted_aal": record.asserted_aal, "created_person": created})
            for e in elevations:
                await tx.append_event("elevate", at, person_id=person, platform=e.platform,
                                      local_id=e.local_id, detail={
                    "level": e.level, "before": e.before, "after": e.after,
                    "vouched_by": e.vouched_by})
            for v in (va, vb):
                await tx.remember(v.platform, v.assertion.jti, v.assertion.expires_at, at)
            await tx.prune_seen(at)
            ids = await tx.ids_of(person)
        log.info("linked %s:%s and %s:%s (person %s, %d elevation(s))", a.platform, a.local_id,
                 b.platform, b.local_id, person, len(elevations))
        return LinkResult(person, ids, created, merged, elevations)

    async def _person_for(self, tx: IdentityTx, la: LinkedId | None, lb: LinkedId | None,
                          at: str) -> tuple[str, bool, str | None]:
        """(person, created, merged person) for two ids' existing records."""
        if la is None and lb is None:
            return await tx.new_person(at), True, None
        if la is None or lb is None or la.person_id == lb.person_id:
            return (la or lb).person_id, False, None  # type: ignore[union-attr]
        pa, pb = la.person_id, lb.person_id
        ids_a, ids_b = await tx.ids_of(pa), await tx.ids_of(pb)
        clash = sorted({i.platform for i in ids_a} & {i.platform for i in ids_b})
        if clash:
            raise Conflict(
                f"the two ids belong to persons who both hold ids on platform(s) "
                f"{', '.join(clash)}; unlink one of them first",
                message_ja=(f"2つのIDの名寄せ先が、いずれも基盤 {'、'.join(clash)} のIDを持っています。"
                            "先に一方を解除してください"),
                code="platform_already_linked", details={"platforms": clash})
        # The older person survives: its pseudonyms have been out longest.
        survivor, merged = pa, pb
        if await tx.person_created(pb) < await tx.person_created(pa):
            survivor, merged = pb, pa
        await tx.move_person(merged, survivor)
        await tx.append_event("merge", at, person_id=survivor, detail={"merged": merged})
        return survivor, False, merged

    def _levels(self, va: VerifiedAssertion, vb: VerifiedAssertion, held: dict[str, LinkedId],
                person: str, at: str) -> tuple[list[LinkedId], list[Elevation]]:
        """New records for both ids: asserted levels, raised where the other provider vouches
        higher now, or where an earlier elevation's voucher is still linked to this person."""
        records, elevations = [], []
        platforms = set(held) | {va.platform, vb.platform}
        for mine, other in ((va, vb), (vb, va)):
            a, o = mine.assertion, other.assertion
            prev = held.get(a.platform)
            levels = {"ial": (a.ial, None), "aal": (a.aal, None)}
            for name in ("ial", "aal") if self.elevate_aal else ("ial",):
                own, best = getattr(a, name), levels[name]
                if getattr(o, name) > best[0]:
                    best = (getattr(o, name), other.platform)
                if (prev and prev.elevated_from and prev.elevated_from in platforms
                        and prev.elevated_from != a.platform and getattr(prev, name) > best[0]):
                    best = (getattr(prev, name), prev.elevated_from)
                levels[name] = best
                unchanged = prev and (getattr(prev, name), prev.elevated_from) == best
                if best[1] is not None and best[0] > own and not unchanged:
                    elevations.append(Elevation(a.platform, a.local_id, name, own, best[0], best[1]))
            source = levels["ial"][1] or levels["aal"][1]
            records.append(LinkedId(a.platform, a.local_id, person, levels["ial"][0],
                                    levels["aal"][0], a.ial, a.aal, source,
                                    prev.linked_at if prev else at))
        return records, elevations

    async def unlink(self, platform: str, local_id: str, assertion: str | bytes | dict, *,
                     now: datetime | None = None) -> UnlinkResult:
        """Remove the id from its person, proven by a fresh unlink assertion from ``platform``."""
        now = now or utcnow()
        at = iso(now)
        async with self.store.transaction() as tx:
            v = await self._verified(tx, assertion, "unlink", now)
            if (v.platform, v.assertion.local_id) != (platform, local_id):
                raise PermissionDenied(
                    f"the assertion is about {v.platform}:{v.assertion.local_id}, not "
                    f"{platform}:{local_id}", message_ja="アサーションの対象IDが解除するIDと一致しません",
                    code="assertion_subject_mismatch", details={"platform": platform})
            record = await tx.linked(platform, local_id)
            if record is None:
                raise _not_linked(platform, local_id)
            await tx.remove_link(platform, local_id)
            reverted = []
            for other in await tx.ids_of(record.person_id):
                if other.elevated_from != platform:
                    continue
                for name in ("ial", "aal"):
                    if getattr(other, name) != getattr(other, f"asserted_{name}"):
                        reverted.append(Elevation(other.platform, other.local_id, name,
                                                  getattr(other, name),
                                                  getattr(other, f"asserted_{name}"), platform))
                await tx.save_link(replace(other, ial=other.asserted_ial, aal=other.asserted_aal,
                                           elevated_from=None), at)
            await tx.append_event("unlink", at, person_id=record.person_id, platform=platform,
                                  local_id=local_id, detail={
                "issuer": v.signer.uri, "jti": v.assertion.jti,
                "reverted": [asdict(e) for e in reverted]})
            await tx.remember(platform, v.assertion.jti, v.assertion.expires_at, at)
            await tx.prune_seen(at)
            remaining = await tx.ids_of(record.person_id)
        log.info("unlinked %s:%s from person %s", platform, local_id, record.person_id)
        return UnlinkResult(record.person_id, remaining, reverted)

    # ---- pseudonyms and levels ----------------------------------------------------------
    async def pseudonym(self, platform: str, local_id: str, for_participant: str) -> str:
        """The pairwise pseudonym of the person holding ``local_id`` for ``for_participant``.
        The caller must be ``platform`` itself (the gRPC layer checks the mTLS identity)."""
        _participant_id(for_participant)
        record = await self.store.linked(platform, local_id)
        if record is None:
            raise _not_linked(platform, local_id)
        value = self.pseudonyms.pseudonym(record.person_id, for_participant)
        async with self.store.transaction() as tx:
            await tx.record_pseudonym(for_participant, value, record.person_id, iso(utcnow()))
        return value

    async def resolve(self, pseudonym: str, caller: str) -> str:
        """The caller's own local id for the person behind a pseudonym handed to the caller."""
        person = (await self.store.pseudonym_owner(caller, pseudonym)
                  if self.pseudonyms.looks_valid(pseudonym) else None)
        mine = [i for i in await self.store.ids_of(person) if i.platform == caller] if person else []
        if not mine:
            raise NotFound("no id of your platform is linked to this pseudonym",
                           message_ja="この仮名に対応する貴基盤のIDはありません",
                           code="pseudonym_unknown")
        return mine[0].local_id

    async def levels(self, platform: str, local_id: str) -> LinkedId:
        record = await self.store.linked(platform, local_id)
        if record is None:
            raise _not_linked(platform, local_id)
        return record

    async def meets_minimum(self, platform: str, local_id: str, min_ial: int,
                            min_aal: int) -> LevelDecision:
        """Do the id's recorded levels meet (``min_ial``, ``min_aal``)? Unknown ids do not."""
        check_level("ial", min_ial)
        check_level("aal", min_aal)
        record = await self.store.linked(platform, local_id)
        return _decide(platform, local_id, record, min_ial, min_aal)

    async def authorise_transfer(self, source: tuple[str, str], target: tuple[str, str], *,
                                 min_ial: int, min_aal: int) -> LevelDecision:
        """5-10: personal data may move between two platforms' ids only when both are linked to
        the same person and both sides' levels meet the policy's minimum."""
        decisions = [await self.meets_minimum(p, i, min_ial, min_aal) for p, i in (source, target)]
        for d in decisions:
            if not d.allowed:
                return d
        rs, rt = await self.store.linked(*source), await self.store.linked(*target)
        if rs is None or rt is None or rs.person_id != rt.person_id:
            return LevelDecision(False, "ids_not_linked",
                                 "the source and target ids are not linked to the same person",
                                 "提供元と提供先のIDは同一人物として名寄せされていません",
                                 {"source": list(source), "target": list(target)})
        return LevelDecision(True, "allowed", "both sides meet the minimum levels",
                             "提供元・提供先とも必要なレベルを満たしています",
                             {"source": decisions[0].details, "target": decisions[1].details})

    async def transfer_levels(self, source: str, target: str, local_ids: list[str]
                              ) -> list[TransferLevels | None]:
        """5-10, per record: for each of ``source``'s ids (None: no levels on record), its
        levels and those of the same person's id on ``target``. The target must be a registered
        identity provider's platform; the target ids themselves are never returned."""
        if len(local_ids) > MAX_TRANSFER_IDS:
            raise InvalidRequest(f"at most {MAX_TRANSFER_IDS:,} ids per call, got {len(local_ids):,}",
                                 message_ja=f"1回に問い合わせできるIDは{MAX_TRANSFER_IDS:,}件までです",
                                 code="too_many_ids")
        if await self.store.provider(target) is None:
            raise NotFound(f"{target} is not a registered identity provider's platform, so no "
                           "resident has levels there",
                           message_ja=f"{target} は登録された基盤（IdP）ではありません",
                           code="target_not_a_platform", details={"platform": target})
        found = await self.store.transfer_levels(source, target, local_ids)
        return [found.get(i) for i in local_ids]


def _decide(platform: str, local_id: str, record: LinkedId | None, min_ial: int,
            min_aal: int) -> LevelDecision:
    about: dict[str, Any] = {"platform": platform, "local_id": local_id, "min_ial": min_ial,
                             "min_aal": min_aal}
    if record is None:
        return LevelDecision(False, "levels_unknown",
                             f"no levels are on record for {platform}:{local_id}",
                             "このIDの身元確認レベル・当人認証レベルは登録されていません", about)
    about.update(ial=record.ial, aal=record.aal)
    short = [n for n, have, need in (("ial", record.ial, min_ial), ("aal", record.aal, min_aal))
             if have < need]
    if short:
        return LevelDecision(
            False, "levels_insufficient",
            f"{platform}:{local_id} has 身元確認レベル {record.ial} and 当人認証レベル {record.aal}; "
            f"the policy requires at least {min_ial} and {min_aal}",
            f"身元確認レベル{record.ial}・当人認証レベル{record.aal}は必要なレベル（身元確認{min_ial}以上・"
            f"当人認証{min_aal}以上）を満たしません", {**about, "insufficient": short})
    return LevelDecision(True, "allowed", "levels meet the minimum", "必要なレベルを満たしています",
                         about)


def _check_basic4(raw_a: dict[str, str] | None, raw_b: dict[str, str] | None) -> None:
    """Both sides' 基本4情報 must be present, readable and agree (see the module docstring)."""
    normalised = []
    for side, raw in (("a", raw_a), ("b", raw_b)):
        if not raw:
            raise InvalidRequest(
                f"assertion {side} carries no 基本4情報; a link needs them from both providers",
                message_ja="名寄せには両方のIdPからの基本4情報が必要です",
                code="basic4_missing", details={"side": side})
        try:
            normalised.append(normalise_basic4(raw, required=LINK_REQUIRED))
        except InvalidRequest as exc:
            raise InvalidRequest(f"assertion {side}: 基本4情報 {exc.message}",
                                 message_ja=exc.message_ja, code="basic4_invalid",
                                 details={**exc.details, "side": side}) from None
    na, nb = normalised
    if not any(getattr(na, f) not in ("", "0") and getattr(nb, f) not in ("", "0")
               for f in LINK_ONE_OF):
        raise InvalidRequest(
            "the two providers must both know 性別 (sex) or 住所 (address) to compare",
            message_ja="名寄せには両方のIdPが性別または住所を提供する必要があります",
            code="basic4_insufficient", details={"one_of": list(LINK_ONE_OF)})
    differing = compare_basic4(na, nb)
    if differing:
        raise PermissionDenied(
            f"the 基本4情報 of the two providers disagree on: {', '.join(differing)}",
            message_ja="2つのIdPの基本4情報が一致しません：" + "、".join(differing),
            code="basic4_mismatch", details={"fields": differing})
