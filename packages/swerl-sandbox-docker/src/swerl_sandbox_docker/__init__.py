"""swerl sandbox backend: Harbor's docker environment with no egress."""
