"""Sources: each turns readings (I2C, serial, MQTT) into lines of line protocol."""
