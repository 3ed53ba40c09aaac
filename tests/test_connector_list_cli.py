"""The connector's list commands print a header row over tab-separated rows, and ``--json``
prints the same rows as a JSON array; ``contract explain`` prints why an agreement ended,
Japanese first, or its JSON form. Run on a data directory filled through the stores."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from areamesh.cli import cli
from connector.contracts.store import AgreementStore, open_contracts_db
from connector.metering.store import UsageStore, open_metering_db
from connector.node_state import NodeState

ME = "urn:areamesh:org:282103:node:main"
PROVIDER = "urn:areamesh:org:270008:node:main"
REFUSAL = {"reason": "policy", "counterparty": ME, "decision": {"allowed": False, "failures": [
    {"path": "permissions[0].constraints[0]", "leftOperand": "purpose", "operator": "eq",
     "expected": "研究", "actual": "観光", "message": "purpose '観光' is not '研究'",
     "message_ja": "利用目的「観光」は許可された目的「研究」と異なります"}]}}


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    node = tmp_path / "kakogawa"
    node.mkdir()
    NodeState("282103", "加古川市", "main", "testmesh", "127.0.0.1:1").save(node)
    folder = node / "publishers" / "282103" / "datasets"
    folder.mkdir(parents=True)
    (folder / "kakogawa-childcare.json").write_text(json.dumps({
        "id": "kakogawa-childcare", "title": {"ja": "加古川市 子育て施設一覧"},
        "source_check": {"status": "passed"}}, ensure_ascii=False), encoding="utf-8")

    async def fill() -> None:
        async with open_contracts_db(node) as db:
            store = AgreementStore(db)
            common = {"role": "consumer", "dataset_id": "osaka-population-feed",
                      "offer_id": "research-use", "counterparty": PROVIDER}
            await store.save(id="refused-1", state="TERMINATED", purpose="観光", reason=REFUSAL, **common)
            await store.save(id="agreed-1", state="FINALIZED", purpose="研究", digest="sha256:00", **common)
        async with open_metering_db(node) as db:
            await UsageStore(db).start(id="t-1", role="consumer", agreement_id="agreed-1",
                                       dataset_id="osaka-population-feed", provider=PROVIDER,
                                       consumer=ME, version="1", incremental=False)

    asyncio.run(fill())
    return node


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, ["connector", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("command,header,key,expected", [
    (("dataset", "list"), ["提供者/publisher", "ID/id", "名称/title", "ソース確認/source check"],
     "id", {"kakogawa-childcare"}),
    (("contract", "list"), ["ID/id", "役割/role", "状態/state", "データセット/dataset", "提供条件/offer",
                            "相手方/counterparty", "目的/purpose", "更新/updated"],
     "id", {"refused-1", "agreed-1"}),
    (("transfers",), ["ID/id", "役割/role", "状態/status", "合意/agreement", "データセット/dataset",
                      "件数/records", "バイト数/bytes", "開始/started", "報告/reported"], "id", {"t-1"}),
    (("contract", "duties"), None, "agreement_id", set()),
])
def test_lists_have_a_header_and_json(data_dir: Path, command, header, key, expected):
    text = run(*command, "--data-dir", str(data_dir))
    first, *rows = [line.split("\t") for line in text.splitlines()]
    if header:
        assert first == header
    assert all(len(r) == len(first) for r in rows), text             # every row fills the header
    assert not any(cell.startswith("合意/") for r in rows for cell in r)  # the header is printed once
    listed = json.loads(run(*command, "--data-dir", str(data_dir), "--json"))
    assert isinstance(listed, list) and {r[key] for r in listed} == expected
    assert len(rows) == len(listed)


def test_dataset_list_json_and_rows_agree(data_dir: Path):
    [row] = json.loads(run("dataset", "list", "--data-dir", str(data_dir), "--json"))
    assert row == {"publisher": "282103", "id": "kakogawa-childcare", "title": "加古川市 子育て施設一覧",
                   "source_check": "passed"}
    lines = run("dataset", "list", "--data-dir", str(data_dir)).splitlines()
    assert lines[1].split("\t") == ["282103", "kakogawa-childcare", "加古川市 子育て施設一覧", "passed"]


def test_contract_explain(data_dir: Path):
    text = run("contract", "explain", "--data-dir", str(data_dir), "refused-1")
    ja, en = text.split("\n\n")
    assert ja.startswith(f"提供者である相手方（{PROVIDER}）が ") and "申込みを断りました" in ja
    assert ("- 制約 permissions[0].constraints[0]「purpose eq 研究」: 申込みで申告された利用目的は「観光」。"
            "利用目的「観光」は許可された目的「研究」と異なります") in ja
    assert en.startswith(f"The provider, the counterparty ({PROVIDER}), refused the request at ")
    assert "the purpose declared in the request is '観光'; purpose '観光' is not '研究'" in en
    doc = json.loads(run("contract", "explain", "--data-dir", str(data_dir), "refused-1", "--json"))
    assert doc["kind"] == "refused" and doc["ja"] == ja.splitlines() and doc["en"] == en.strip().splitlines()
    finalized = run("contract", "explain", "--data-dir", str(data_dir), "agreed-1")
    assert finalized.startswith("この合意は終了していません（状態: FINALIZED）。")
    missing = CliRunner().invoke(cli, ["connector", "contract", "explain", "--data-dir", str(data_dir),
                                       "nope"])
    assert missing.exit_code != 0 and "nope" in missing.output and "Traceback" not in missing.output
