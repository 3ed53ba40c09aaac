"""CSV files for the bulk-import tests, with headers taken from the shipped standard layouts
(``mesh/standards``, never invented), and a recorded municipal CKAN portal on 127.0.0.1."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from aiohttp import web

from mesh.standards import get_standard

VALUES = {"緯度": "34.7566", "経度": "134.8415", "ID": "1", "名称": "駅前公衆トイレ"}


def layout_csv(layout: str, code: str, municipality: str, rows: int = 2, *,
               extra: str = "") -> str:
    """A file of the standard ``layout`` whose rows name ``code`` and ``municipality``."""
    header = get_standard(layout).column_names
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for i in range(rows):
        row = []
        for column in header:
            if column in ("全国地方公共団体コード", "所在地_全国地方公共団体コード"):
                row.append(code)
            elif column == "地方公共団体名":
                row.append(municipality)
            elif column == "ID":
                row.append(str(i + 1))
            else:
                row.append(VALUES.get(column, f"値{i}{extra}"))
        writer.writerow(row)
    return out.getvalue()


def write(path: Path, text: str, encoding: str) -> Path:
    """``encoding``: utf-8, utf-8-sig (with a BOM) or cp932."""
    path.write_bytes(text.encode(encoding))
    return path


def mixed_folder(folder: Path) -> dict[str, Path]:
    """Host 加古川市 (282103), its tenant 稲美町 (283819), 姫路市 (282014: neither), a file
    without a code column, and a broken file."""
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "toilets": write(folder / "kakogawa_toilets.csv",
                         layout_csv("公衆トイレ一覧", "282103", "加古川市"), "utf-8-sig"),
        "aed": write(folder / "inami_aed.csv", layout_csv("AED設置箇所一覧", "283819", "稲美町"),
                     "cp932"),
        "events": write(folder / "himeji_events.csv",
                        layout_csv("イベント一覧", "282014", "姫路市"), "utf-8"),
        "budget": write(folder / "予算.csv", "年度,項目,金額\r\n2025,道路,1200\r\n", "cp932"),
        "broken": write(folder / "broken.csv",
                        "名称,住所,電話番号\r\n図書館,加古川市1-1,079-000-0000\r\n市役所,加古川市\r\n",
                        "utf-8"),
    }


class RecordedPortal:
    """A municipal CKAN portal's answers, recorded in its shape (CKAN 2.9/2.10
    ``package_search``: organization, groups, tags, resources with format CSV, Japanese titles),
    served on 127.0.0.1 with ``rows``/``start`` paging; CSV resources served beside it."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.packages: list[dict[str, Any]] = []
        self.searches: list[tuple[int, int]] = []
        self.base = ""

    def add_csv(self, name: str, data: bytes) -> str:
        self.files[name] = data
        return f"{{base}}/dataset/files/{name}"

    def package(self, name: str, title: str, org: dict[str, str], resources: list[dict[str, str]],
                *, notes: str = "", tags: tuple[str, ...] = (), license_id: str = "cc-by-4.0",
                license_title: str = "クリエイティブ・コモンズ 表示 4.0 国際") -> None:
        self.packages.append({
            "id": f"0000-{len(self.packages):04d}", "name": name, "title": title, "notes": notes,
            "state": "active", "type": "dataset", "private": False, "license_id": license_id,
            "license_title": license_title, "metadata_modified": "2025-04-01T09:00:00.000000",
            "organization": {"id": f"org-{org['name']}", "name": org["name"],
                             "title": org["title"], "type": "organization",
                             "is_organization": True, "state": "active"},
            "groups": [], "tags": [{"name": t, "display_name": t, "state": "active"} for t in tags],
            "resources": [{"id": f"res-{name}-{i}", "package_id": f"0000-{len(self.packages):04d}",
                           "name": r["name"], "format": r["format"], "url": r["url"],
                           "mimetype": r.get("mimetype"), "position": i}
                          for i, r in enumerate(resources)],
            "num_resources": len(resources), "num_tags": len(tags)})

    async def package_search(self, request: web.Request) -> web.Response:
        rows, start = int(request.query.get("rows", 10)), int(request.query.get("start", 0))
        self.searches.append((rows, start))
        page = json.loads(json.dumps(self.packages[start:start + rows]).replace("{base}", self.base))
        return web.json_response({
            "help": f"{self.base}/api/3/action/help_show?name=package_search", "success": True,
            "result": {"count": len(self.packages), "facets": {}, "search_facets": {},
                       "sort": "score desc, metadata_modified desc", "results": page}})

    async def file(self, request: web.Request) -> web.Response:
        data = self.files.get(request.match_info["name"])
        if data is None:
            return web.Response(status=404, text="Not Found")
        return web.Response(body=data, content_type="text/csv")

    async def start(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_get("/api/3/action/package_search", self.package_search)
        app.router.add_get("/dataset/files/{name}", self.file)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"
        return runner
