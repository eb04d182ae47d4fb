"""Recipes that compose the pillars (the only place where two pillars meet).

* ``trojan``: Trojan-ticket detection, sparsity + backdoor
  (``from sparta.experiments.trojan import detect``).
"""
