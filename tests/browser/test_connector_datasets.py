"""The connector console's datasets in a real browser against a real connector: an operator adds
a Shift_JIS dataset with a mapping through the form, sees a wrong header flagged, fixes it, checks
the first rows and the rejected ones, publishes, builds an offer and reads it before saving.
axe-core on every page type; screenshots; the list at 360 px."""

from __future__ import annotations

from importlib import resources

import pytest

from areamesh.demo_data.himeji_aed_2019 import HEADER_2019, write_himeji_aed_csv

from ..conftest import MeshHarness, http_json
from ..test_connector_console_datasets import account
from .conftest import check_axe, no_horizontal_scroll, screenshot, sign_in


def write_source(path, *, wrong_header: bool) -> None:
    """姫路市's AED list in the 2019 layout, Shift_JIS; one row with an unreadable latitude."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_himeji_aed_csv(path, rows=30)
    lines = path.read_bytes().decode("cp932").split("\r\n")
    if wrong_header:
        lines[0] = lines[0].replace("経度", "経渡")
    cells = lines[3].split(",")
    cells[HEADER_2019.index("緯度")] = "北緯34度"
    lines[3] = ",".join(cells)
    path.write_bytes("\r\n".join(lines).encode("cp932"))


@pytest.mark.timeout(240)     # one long scenario: sign-in, eight pages, axe on each, a publish
async def test_operator_adds_a_shift_jis_dataset_fixes_its_header_publishes_and_offers_it(
        harness: MeshHarness, page, phone):
    h = harness
    rc, _, err = await h.cli("registry", "participant", "certify", "--data-dir", str(h.registry_dir),
                             "--id", "282014")
    assert rc == 0, err
    await h.start_registry()
    await h.enrol("himeji", "282014")
    node = await h.start_connector("himeji")
    base = f"http://127.0.0.1:{node.ready['http_port']}"
    await account(h, "himeji", "tanaka", "admin")
    source = h.root / "himeji" / "publishers" / "282014" / "files" / "himeji_aed_2019.csv"
    write_source(source, wrong_header=True)
    mapping = (resources.files("areamesh.demo_data") / "aed_2019_to_guideline.yaml").read_text("utf-8")

    await sign_in(page, base, "tanaka")
    await page.goto(f"{base}/admin/datasets/")
    await check_axe(page, "empty dataset list")
    await page.get_by_role("link", name="データセットを追加").click()
    await page.wait_for_url(f"{base}/admin/datasets/new")
    await check_axe(page, "dataset form")
    await page.fill("#f-id", "himeji-aed-2019")
    await page.fill("#f-title_ja", "姫路市 AED設置箇所一覧（2019年形式）")
    await page.fill("#f-description_ja", "市内のAED設置場所。推奨データセット2019年版の列構成。")
    await page.check("#f-theme_1")                                   # 防災
    await page.fill("#f-keywords", "AED, 救命")
    await page.fill("#f-schema", "\n".join(HEADER_2019))
    await page.fill("#f-spatial", "282015")                          # a wrong check digit
    await page.select_option("#f-update_frequency", "monthly")
    await page.fill("#f-source_path", source.name)
    await page.select_option("#f-source_encoding", "cp932")
    await page.fill("#f-mapping", mapping)
    await page.get_by_role("button", name="保存して確認する").click()
    await page.wait_for_load_state()
    error = page.locator("#f-spatial-error")
    assert "282015" in await error.inner_text() and "検査数字" in await error.inner_text()
    assert await page.get_attribute("#f-spatial", "aria-invalid") == "true"
    assert await page.input_value("#f-title_ja") == "姫路市 AED設置箇所一覧（2019年形式）"   # kept
    assert "入力内容に 1 件の誤りがあります" in await page.get_by_role("alert").inner_text()
    await check_axe(page, "dataset form with an error")
    await screenshot(page, "connector-dataset-form-error")

    await page.fill("#f-spatial", "282014")
    await page.get_by_role("button", name="保存して確認する").click()
    await page.wait_for_url(f"{base}/admin/datasets/himeji-aed-2019/preview?done=saved")
    alerts = await page.get_by_role("alert").all_inner_texts()
    assert any("列がスキーマと一致しません" in a and "列「経渡」は「経度」という名前のはずです" in a
               for a in alerts), alerts
    assert any("マッピングを適用できません" in a and "経度" in a for a in alerts), alerts
    assert await page.get_by_role("button", name="公開する").count() == 0  # not while it is wrong
    await check_axe(page, "preview with a wrong header")
    await screenshot(page, "connector-dataset-preview-header")

    write_source(source, wrong_header=False)                         # the operator fixes the file
    await page.get_by_role("link", name="もう一度確認").click()
    await page.wait_for_load_state()
    assert "公開できます" in await page.get_by_role("status").first.inner_text()
    table = page.locator("table.preview")
    assert await table.locator("tbody tr").count() == 19            # 20 read, 1 rejected
    assert "名称_英字" in await table.locator("thead").inner_text()   # the standard's columns
    rejects = await page.locator("table").nth(1).inner_text()
    assert "北緯34度" in rejects and "緯度" in rejects
    await check_axe(page, "preview through the mapping")
    await screenshot(page, "connector-dataset-preview")

    await page.get_by_role("button", name="公開する").click()
    await page.wait_for_url(f"{base}/admin/datasets/himeji-aed-2019?done=published")
    assert "公開しました" in await page.get_by_role("status").inner_text()
    found = await http_json(f"{h.http_url}/api/v1/datasets/himeji-aed-2019")
    assert found["publisher"] == "282014" and found["source_check"]["status"] == "passed"
    await check_axe(page, "dataset page")

    await page.get_by_role("link", name="提供条件を追加").click()
    await check_axe(page, "offer form")
    await page.fill("#f-offer_id", "bousai-hyogo")
    await page.fill("#f-purposes", "防災")
    await page.check("#f-type_municipality")
    await page.check("#f-type_prefecture")
    await page.check("#f-spatial-listed")
    await page.locator("summary", has_text="兵庫県の市区町村").click()
    await page.check("#f-area_282014")
    await page.check("#f-area_282103")
    await page.fill("#f-valid_until", "2027-03-31")
    await page.fill("#f-max_transfers", "100")
    await page.fill("#f-delete_days", "90")
    await page.check("#f-report_usage")
    # 「または」: a second alternative, added with the form's own button (no JavaScript)
    await page.get_by_role("button", name="選択肢を追加する（または）").click()
    await page.wait_for_load_state()
    assert await page.input_value("#f-purposes") == "防災"                 # kept
    await page.check("#f-alt1_spatial-sameMunicipality")
    await page.fill("#f-alt1_max_transfers", "10")
    await check_axe(page, "offer form with two alternatives")
    await page.get_by_role("button", name="内容を確認する").click()
    await page.wait_for_load_state()
    conditions = await page.locator("dl.props").inner_text()
    for shown in ("防災", "市区町村", "都道府県", "姫路市（282014）", "加古川市（282103）",
                  "2027-04-01 00:00 JST", "100", "90"):
        assert shown in conditions, shown
    words = await page.locator("#policy-text").inner_text()             # mesh/policy_text
    assert "防災目的に限り、姫路市（282014）または加古川市（282103）" in words, words
    assert "90 日以内にデータを削除" in words
    assert "次のいずれかに当てはまれば利用できます" in words and "転送は最大 10 回まで" in words
    await check_axe(page, "offer preview")
    await screenshot(page, "connector-offer-preview")
    await page.get_by_role("button", name="この条件で保存する").click()
    await page.wait_for_url(f"{base}/admin/datasets/himeji-aed-2019?done=offer_saved")
    assert "オファー bousai-hyogo" in await page.inner_text("main")
    found = await http_json(f"{h.http_url}/api/v1/datasets/himeji-aed-2019")
    assert [o["id"] for o in found["offers"]] == ["bousai-hyogo"]
    assert len(found["offers"][0]["policy"]["permissions"]) == 2
    await page.get_by_role("link", name="提供条件 bousai-hyogo を削除").click()
    assert "既に結ばれた合意は、削除しても無効になりません" in await page.inner_text("main")
    await check_axe(page, "offer removal confirmation")

    await page.goto(f"{base}/admin/datasets/")
    assert "公開中" in await page.locator("table").inner_text()
    await check_axe(page, "dataset list")
    await screenshot(page, "connector-datasets")
    await page.goto(f"{base}/admin/datasets/himeji-aed-2019/withdraw")
    await check_axe(page, "withdraw confirmation")

    await sign_in(phone, base, "tanaka")
    await phone.goto(f"{base}/admin/datasets/")
    await no_horizontal_scroll(phone, "dataset list")
    await phone.goto(f"{base}/admin/datasets/himeji-aed-2019/preview")
    await no_horizontal_scroll(phone, "preview")
    assert "除外される行（1 件）" in await phone.inner_text("main")    # the mapping was kept
    await screenshot(phone, "connector-datasets-phone")
