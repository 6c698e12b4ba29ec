"""Neural networks: the video autoencoder, the diffusion transformer, the text encoder."""
