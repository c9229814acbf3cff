"""The service: lifecycle and signals, ``--once``, check-config/status, the state_dir
layout, sd_notify and journald-friendly logs."""
