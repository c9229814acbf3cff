"""The disk buffer: segments, the SQLite log and its recovery, the producer-side durable
writer, the in-memory queue of the seed mode, persistent counters and dead letters."""
