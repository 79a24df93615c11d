"""swerl scaffold: claude-code (pinned) pointed at the swerl proxy."""
