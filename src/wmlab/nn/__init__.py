"""Neural building blocks shared by the world models: layers with DreamerV3 conventions, distributions, convnets."""
