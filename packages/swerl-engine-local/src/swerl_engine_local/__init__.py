"""swerl engine: one-process CPU engine for the embedded default and CI."""
