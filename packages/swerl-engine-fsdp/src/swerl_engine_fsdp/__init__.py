"""swerl engine: verl 0.9.1 on FSDP (dense models, GPU)."""
