"""What judges one model: UA/RA/TA/MIA-efficacy and Avg. Disparity (:mod:`~advunlearn.evaluation.metrics`),
the population (metric and SVC) attacks (:mod:`~advunlearn.evaluation.mia`), LiRA and RMIA against
reference models (:mod:`~advunlearn.evaluation.strong`), the fresh post-hoc attacker
(:mod:`~advunlearn.evaluation.fresh`) and the NeurIPS 2023 score (:mod:`~advunlearn.evaluation.neurips_score`).

It never imports :mod:`advunlearn.methods` (nor they it): a model is judged the same whatever made it.
"""
