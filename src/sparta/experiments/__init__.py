"""Recipes that compose the pillars (the only place where two pillars meet).

Each recipe is one module; import it by its path, e.g.
``from sparta.experiments.prune_unlearn import prune_then_unlearn``.

* ``prune_unlearn``: prune a model, then unlearn (``prune_then_unlearn``), and the
  every-method benchmark dense and pruned (``unlearn_bench``).
* ``card``: the report card: variants (recipes) x sparsities x pillar scorers, cached cells
  (``from sparta.experiments.card import card``).
* ``backdoor_removal``: remove a planted backdoor by unlearning its poisoned examples.
* ``stability``: stability pruning for certification (prune the most unstable ReLU neurons).
* ``trojan``: Trojan-ticket detection by IMP, sparsity + backdoor (``detect``).
* ``verify``: verification with the attack library's PGD as falsifier.
"""
