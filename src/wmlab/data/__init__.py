"""Data: the online replay buffer (``wmlab.data.replay.Replay``), offline trajectory stores and feature caches."""
