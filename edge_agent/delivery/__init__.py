"""Delivery: what InfluxDB answered (outcome), HTTP to InfluxDB (transport), and the flush
loop that batches, retries and bisects."""
