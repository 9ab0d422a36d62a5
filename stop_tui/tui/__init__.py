"""The Textual front end (never imported by the engine)."""
