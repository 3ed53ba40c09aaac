"""KPI dashboard (v3 §8.3): outputs computed from the registry's stores, outcomes the operator
defines (outputs.py, outcomes.py, csv_io.py; the page is registry/web/console/kpi.py)."""
