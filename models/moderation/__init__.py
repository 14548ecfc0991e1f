"""Content moderation models: rules (a domain blocklist), an offensive-text classifier that ships its
trained model (``alt-profanity-check``), and a LightGBM spam model on content and behaviour features
trained on synthetic labelled campaigns (``feedstream model train spam``). See docs/models.md."""
