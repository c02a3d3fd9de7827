"""What trains many models around one setting: tuning (:mod:`~advunlearn.studies.tuning`, its spaces and
its report), shadow models (:mod:`~advunlearn.studies.shadows`), memorisation scores
(:mod:`~advunlearn.studies.memorization`) and U-LiRA (:mod:`~advunlearn.studies.ulira`).
"""
