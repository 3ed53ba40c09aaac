"""The connector console's offers over HTTP against a real connector and registry: an offer with
alternatives (「または」) built with the form's own buttons, its errors placed in the right
alternative, the preview in words; removing an offer after a confirmation page (the catalog
published again), the last offer of an open dataset, and the doors: another tenant's dataset,
a forged offer id, a missing CSRF token, an auditor."""

from __future__ import annotations

import html
import re

import pytest

from .conftest import http_json
from .test_connector_console_datasets import csrf, form, mesh, post, sign_in, write_csv

pytestmark = pytest.mark.integration
__all__ = ["mesh"]                                    # the fixture, shared with the datasets tests

OFFER = {"offer_id": "hyogo-or-own", "purposes": "研究", "type_municipality": "on",
         "spatial_mode": "listed", "area_28": "on", "alternatives": "1"}


async def get(s, url: str) -> tuple[int, str]:
    async with s.get(url) as r:
        return r.status, html.unescape(await r.text())


async def test_alternatives_built_previewed_saved_and_removed(mesh):
    h, base = mesh
    write_csv(h.root / "kakogawa" / "publishers" / "282103" / "files" / "aed.csv")
    admin, auditor, inami = (await sign_in(base, "tanaka"), await sign_in(base, "kansa"),
                             await sign_in(base, "inami"))
    try:
        token = await csrf(admin, base)
        assert (await post(admin, base + "/admin/datasets/new", form("kakogawa-aed"), token))[0] == 303
        assert (await post(admin, base + "/admin/datasets/kakogawa-aed/publish", {}, token))[0] == 303
        ds = base + "/admin/datasets/kakogawa-aed"
        status, page = await get(admin, ds + "/offers/new")
        assert status == 200 and 'name="add_alternative"' in page and 'id="f-alt1_purposes"' not in page

        # 「または」: the button brings the form back with a second group, what was typed kept
        status, page, _ = await post(admin, ds + "/offers/preview",
                                     {**OFFER, "add_alternative": "1"}, token)
        assert status == 200 and 'name="alternatives" value="2"' in page
        assert 'id="f-alt1_purposes"' in page and 'name="alt1_spatial_mode" value="any" checked' in page
        assert 'value="研究"' in page and 'name="area_28" checked' in page
        assert "選択肢 2" in page and 'name="remove_alternative" value="1"' in page
        two = {**OFFER, "alternatives": "2", "alt1_spatial_mode": "sameMunicipality",
               "alt1_max_transfers": "10"}
        # errors land in the alternative they belong to
        status, page, _ = await post(admin, ds + "/offers/preview",
                                     {**two, "alt1_identity_level": "2"}, token)
        assert status == 400 and 'id="f-alt1_identity_level-error"' in page
        assert 'id="f-identity_level-error"' not in page and "permissions[1].constraints[2]" in page
        status, page, _ = await post(admin, ds + "/offers/preview",
                                     {**two, "alt1_max_transfers": "十"}, token)
        assert status == 400 and 'id="f-alt1_max_transfers-error"' in page
        assert 'id="f-alt1_max_transfers" name="alt1_max_transfers" type="text" value="十"' in page
        status, page, _ = await post(admin, ds + "/offers/preview",
                                     {**two, "alt1_spatial_mode": "any", "alt1_max_transfers": ""}, token)
        assert status == 400 and 'id="f-alt1_alternative-error"' in page
        assert "誰でも利用できてしまいます" in page
        # removing the first alternative moves the second up
        status, page, _ = await post(admin, ds + "/offers/preview",
                                     {**two, "remove_alternative": "0"}, token)
        assert status == 200 and 'name="alternatives" value="1"' in page
        assert 'name="spatial_mode" value="sameMunicipality" checked' in page
        assert 'id="f-max_transfers" name="max_transfers" type="text" value="10"' in page

        # the preview says every alternative, in plain Japanese
        status, page, _ = await post(admin, ds + "/offers/preview", two, token)
        text = html.unescape(page)
        assert status == 200 and "次のいずれかに当てはまれば利用できます。" in text
        words = re.search(r'id="policy-text".*?</div>', text, re.S)[0]
        assert re.findall(r"<li>(.*?)</li>", words) == [
            "研究目的に限り、兵庫県内の市区町村が利用できます。",
            "提供者（加古川市（282103））自身の地方公共団体が利用できます。転送は最大 10 回まで。"]
        assert 'name="alt1_max_transfers" value="10"' in page      # carried to the save
        status, _, where = await post(admin, ds + "/offers", {**two, "confirm": "yes"}, token)
        assert status == 303 and where == "/admin/datasets/kakogawa-aed?done=offer_saved"
        published = await http_json(f"{h.http_url}/api/v1/datasets/kakogawa-aed")
        saved = next(o for o in published["offers"] if o["id"] == "hyogo-or-own")
        assert [len(p["constraints"]) for p in saved["policy"]["permissions"]] == [3, 2]
        status, page = await get(admin, ds)
        assert "研究目的に限り、兵庫県内の市区町村が利用できます。" in page
        assert 'href="/admin/datasets/kakogawa-aed/offers/hyogo-or-own/remove"' in page
        status, _, _ = await post(admin, ds + "/offers",
                                  {**OFFER, "offer_id": "open-use", "purposes": "",
                                   "type_municipality": "", "spatial_mode": "any",
                                   "confirm": "yes"}, token)
        assert status == 303

        # removal: a confirmation page with the offer in words and what happens to agreements
        remove = ds + "/offers/hyogo-or-own/remove"
        status, page = await get(admin, remove)
        assert status == 200 and "研究目的に限り、兵庫県内の市区町村が利用できます。" in page
        assert "既に結ばれた合意は、削除しても無効になりません" in page
        assert "確定済みの合意はありません" in page and 'id="last-offer"' not in page
        assert "カタログの内容も更新されます" in page
        # the doors: an auditor, another tenant, a forged offer id, no CSRF token
        assert (await get(auditor, remove))[0] == 403
        assert (await post(auditor, remove, {}, await csrf(auditor, base)))[0] == 403
        t_inami = await csrf(inami, base)
        assert (await get(inami, remove))[0] == 404
        assert (await post(inami, remove, {}, t_inami))[0] == 404
        for forged in ("no-such-offer", "..%2F..%2Fx", "HYOGO-OR-OWN"):
            assert (await get(admin, ds + f"/offers/{forged}/remove"))[0] == 404, forged
            assert (await post(admin, ds + f"/offers/{forged}/remove", {}, token))[0] == 404, forged
        status, page, _ = await post(admin, remove, {}, None)
        assert status == 403 and "確認用トークン" in html.unescape(page)
        still = await http_json(f"{h.http_url}/api/v1/datasets/kakogawa-aed")
        assert [o["id"] for o in still["offers"]] == ["hyogo-or-own", "open-use"]

        status, _, where = await post(admin, remove, {}, token)
        assert status == 303 and where == "/admin/datasets/kakogawa-aed?done=offer_removed"
        after = await http_json(f"{h.http_url}/api/v1/datasets/kakogawa-aed")
        assert [o["id"] for o in after["offers"]] == ["open-use"]
        assert after["version"] > still["version"]                  # published again
        status, page = await get(admin, ds + "?done=offer_removed")
        assert "提供条件を削除しました。" in page and "オファー hyogo-or-own" not in page
        assert (await get(admin, remove))[0] == 404                 # gone

        # the last offer of an open dataset: warned, then allowed (no new agreement possible)
        last = ds + "/offers/open-use/remove"
        status, page = await get(admin, last)
        assert status == 200 and 'id="last-offer"' in page and "誰も新しい契約を結べません" in page
        assert (await post(admin, last, {}, token))[0] == 303
        assert (await http_json(f"{h.http_url}/api/v1/datasets/kakogawa-aed"))["offers"] == []
        status, page = await get(admin, ds)
        assert "提供条件はまだありません。" in page
    finally:
        for s in (admin, auditor, inami):
            await s.close()
