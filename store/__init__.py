"""canarytrace's storage layer: ClickHouse through one clickhouse-connect client.

Modules: ``location`` (store URLs), ``schema`` (tables and versioned migrations),
``queries`` (typed read filters and keyset pages), ``client`` (:class:`Store`),
``panel_sql`` (Grafana-style expansion of panel SQL), ``timestamps``. It imports only the
SDK's attribute vocabulary; ``canarytrace.store.client`` needs the ``[collector]`` extra.
"""
