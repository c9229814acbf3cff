"""The MQTT bridge: the source, its paho client, topic templates, payload formats, the
redelivery index and the one-shot collector of ``--once``."""
