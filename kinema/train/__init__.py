"""Training: data sources, the trainer loop (single process, DDP or FSDP via torchrun), latent cache."""
