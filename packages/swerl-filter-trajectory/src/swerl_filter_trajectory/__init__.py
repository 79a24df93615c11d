"""swerl reward filter: drop or mask invalid trajectories."""
