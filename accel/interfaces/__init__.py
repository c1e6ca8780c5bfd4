"""Unit interfaces: what a unit's RTL (``rtl/``), its emulator models (``emulator/``) and its harness all share."""
