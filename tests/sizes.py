"""Config overrides that shrink Dreamer to a few thousand parameters, so tests train in seconds."""

MICRO_DREAMER = [
    "model.deter=16",
    "model.hidden=16",
    "model.stoch=4",
    "model.classes=4",
    "model.units=16",
    "model.encoder_units=16",
    "model.cnn_depth=4",
    "train.batch_size=2",
    "train.batch_length=8",
    "behavior.horizon=4",
]
