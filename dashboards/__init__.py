"""canarytrace dashboards: the one source of panel SQL (panels.yaml, prices.yaml) and the
Grafana dashboard JSON built from it (grafana/canarytrace.json)."""
