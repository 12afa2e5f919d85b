"""Bundled settings presets (`NAME.toml`), read by `rag.settings.load_settings`."""
