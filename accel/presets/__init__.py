"""Device presets (YAML), read by accel.config.load_preset."""
