"""Feed ranking models: shared features, a LightGBM ranker for the read API, train/evaluate CLIs.

Public names: :data:`models.features.FEATURE_NAMES`, :func:`models.features.page_matrix`,
:class:`models.ranker.LightGBMRanker`, :func:`models.ranker.load_ranker`,
:func:`models.ranker.select_ranker`, :func:`models.train.train`.
"""
