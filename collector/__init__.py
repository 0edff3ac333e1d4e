"""canarytrace collector: OTLP/HTTP receiver, durable ingest and ClickHouse storage."""
