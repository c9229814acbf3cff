"""Line protocol: escaping, the cached encoder and its compiled formatters, exact timestamps,
and parsing lines that arrive as line protocol."""
