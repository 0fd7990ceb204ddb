"""Fixtures that start the local DashScope emulator on loopback (filled in with the emulator)."""
