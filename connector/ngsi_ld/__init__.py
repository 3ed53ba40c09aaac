"""The connector's NGSI-LD side: the facade its own apps query (``facade.py``), the entity
models that turn a dataset's rows into NGSI-LD entities (``models.py``, built-ins in
``models/``), the query and geo-query languages (``qlang.py``, ``geo.py``) and the errors in
NGSI-LD's ProblemDetails shape (``problems.py``). docs/ngsi-ld.md describes the subset."""
