"""Cost allocation (費用按分) among the participants of the shared platform (DESIGN §9; seed 002
§4-1: 固定費・共用費 and 変動費 by 従量課金, 人口比按分 or 等分負担; guidebook appendix (4-1) … (4-5)).

``rules`` reads the per-period rule file, ``allocate`` apportions in whole yen (largest
remainder, ties by participant id), ``statements`` builds each participant's statement,
``figures`` says where metered figures come from, ``runs`` keeps runs in ``registry.db``,
``export`` writes CSV and xlsx, ``cli`` is ``areamesh registry billing``, ``api`` the HTTP API.
This package imports nothing at import time, so ``registry.migrations`` can read ``schema``.
"""
