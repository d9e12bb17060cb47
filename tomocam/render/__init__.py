"""Figures of explanations (matplotlib): store overviews and class montages (:mod:`.tomogram`), and the paper's
Fig. 3 and Fig. 4 for one subtomogram (:mod:`.subtomogram`). Library functions return ``Figure`` objects."""
