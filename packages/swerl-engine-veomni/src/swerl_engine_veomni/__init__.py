"""swerl engine: verl 0.9.1 on veomni (MoE with router replay, GPU)."""
