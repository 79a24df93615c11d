"""swerl reward filter: token-level importance-sampling correction."""
