"""DreamerV3 (early-2023 version) agent: RSSM world model, imagination actor-critic, online trainer."""
