"""A keras_hub BERT text classifier built from a config (random weights).

keras_hub is an optional extra (`pip install 'kdkeras[text]'`); it is imported
when a classifier is built, so `models` imports without it.
"""


def build_bert_classifier(
    num_layers,
    num_classes,
    vocabulary_size,
    max_sequence_length,
    hidden_dim=32,
    num_heads=2,
    dropout=0.0,
    activation=None,
    seed=0,
):
    """A `keras_hub.models.BertTextClassifier` from a config, no preset.

    The inputs are token ids (no preprocessor, no tokenizer download): the
    dict `{token_ids, segment_ids, padding_mask}`; the feed-forward width is
    twice `hidden_dim`.

    Args:
        num_layers: Transformer layers of the backbone.
        num_classes: Classes of the head.
        vocabulary_size: Token ids are in `[0, vocabulary_size)`.
        max_sequence_length: Longest sequence (position embeddings).
        hidden_dim: Width of the backbone.
        num_heads: Attention heads (must divide `hidden_dim`).
        dropout: Dropout rate of the backbone and of the head.
        activation: Output activation (`None`: logits).
        seed: Seed of the initial weights (`keras.utils.set_random_seed`).

    Returns:
        The classifier, whose output is `(batch, num_classes)`.
    """
    import keras
    import keras_hub

    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=vocabulary_size,
        num_layers=num_layers,
        num_heads=num_heads,
        hidden_dim=hidden_dim,
        intermediate_dim=2 * hidden_dim,
        max_sequence_length=max_sequence_length,
        dropout=dropout,
    )
    return keras_hub.models.BertTextClassifier(
        backbone=backbone,
        num_classes=num_classes,
        preprocessor=None,
        activation=activation,
        dropout=dropout,
    )
