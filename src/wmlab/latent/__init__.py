"""Latent-action world models (DINO-WM and its action-label-free extension, spec/latent_actions.md §6)."""
