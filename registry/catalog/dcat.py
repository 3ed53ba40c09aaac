"""DCAT export of the catalog as JSON-LD (dcat:Catalog → dcat:Dataset → dcat:Distribution)."""

from __future__ import annotations

from typing import Any

from mesh.datasets import declared_standard
from mesh.standards import editions
from registry.catalog.datasets import CatalogService, DatasetRecord
from registry.store import RegistryStore

CONTEXT = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "owl": "http://www.w3.org/2002/07/owl#",
    "areamesh": "urn:areamesh:vocab:",
}
FREQUENCY = {  # Dublin Core Collection Description Frequency vocabulary
    "realtime": "http://purl.org/cld/freq/continuous", "hourly": "http://purl.org/cld/freq/continuous",
    "daily": "http://purl.org/cld/freq/daily", "weekly": "http://purl.org/cld/freq/weekly",
    "monthly": "http://purl.org/cld/freq/monthly", "quarterly": "http://purl.org/cld/freq/quarterly",
    "yearly": "http://purl.org/cld/freq/annual", "irregular": "http://purl.org/cld/freq/irregular",
}


def _lang(values: dict[str, str]) -> list[dict[str, str]]:
    return [{"@value": v, "@language": k} for k, v in values.items() if v]


def conforms_to(doc: dict[str, Any]) -> dict[str, Any] | None:
    """``dct:conformsTo``: the declared standard layout as a ``dct:Standard`` naming the layout
    and its edition (``owl:versionInfo``, the edition id; ``dct:isPartOf``, its titles)."""
    declared = declared_standard(doc)
    if declared is None:
        return None
    layout, edition = declared["layout"], declared["edition"]
    titles = next(((e.title, e.title_en) for e in editions() if e.id == edition), (edition, ""))
    return {"@id": f"urn:areamesh:standard:{edition}:{layout}", "@type": "dct:Standard",
            "dct:title": _lang({"ja": layout}), "owl:versionInfo": edition,
            "dct:isPartOf": {"@type": "dct:Standard", "dct:identifier": edition,
                             "dct:title": _lang({"ja": titles[0], "en": titles[1]})}}


def dataset_node(record: DatasetRecord, base: str) -> dict[str, Any]:
    doc = record.doc
    url = f"{base}/api/v1/datasets/{record.id}"
    return {
        "@id": url, "@type": "dcat:Dataset", "dct:identifier": record.id,
        "dct:title": _lang(doc["title"]), "dct:description": _lang(doc["description"]),
        "dcat:keyword": doc["keywords"], "dcat:theme": doc["themes"],
        "dct:publisher": {"@id": f"urn:areamesh:org:{record.publisher_id}",
                          "@type": "foaf:Organization", "foaf:name": record.publisher_name},
        "dct:license": doc["license"],
        "dct:issued": {"@value": record.created.isoformat(), "@type": "xsd:dateTime"},
        "dct:modified": {"@value": record.modified.isoformat(), "@type": "xsd:dateTime"},
        "dct:spatial": [f"urn:areamesh:lgcode:{c}" for c in doc["spatial"]],
        "dct:accrualPeriodicity": {"@id": FREQUENCY[doc["update_frequency"]]},
        "dct:conformsTo": conforms_to(doc),
        "areamesh:classification": doc["classification"],
        "areamesh:access": doc["access"],
        "dcat:distribution": [{
            "@type": "dcat:Distribution", "dcat:accessURL": {"@id": url},
            "dct:format": "areamesh-stream",
            "dct:title": _lang({"ja": "メッシュ経由のストリーム", "en": "stream through the mesh"}),
            "areamesh:servedBy": record.to_json()["served_by"],
        }],
    }


async def dcat_catalog(catalog: CatalogService, store: RegistryStore, base: str) -> dict[str, Any]:
    records: list[DatasetRecord] = []
    ids = await catalog.dataset_ids()
    for i in range(0, len(ids), 500):
        records.extend(await catalog.load(ids[i:i + 500]))
    return {
        "@context": CONTEXT, "@id": f"{base}/catalog.jsonld", "@type": "dcat:Catalog",
        "dct:title": _lang({"ja": await store.meta("name") or "areamesh", "en": "areamesh catalog"}),
        "dcat:dataset": [dataset_node(r, base) for r in records],
    }
