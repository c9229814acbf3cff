"""The library facade with influxdb-client's write-side shape: InfluxDBClient, WriteApi,
Point, records and DataFrames. Public names are re-exported by ``edge_agent``."""
