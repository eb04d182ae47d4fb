"""The card's numbers do not depend on the executor (in-process, process pool, Ray)."""

from __future__ import annotations

import pytest

from sparta.experiments.card import card

from .conftest import TINY

OPTS = {**TINY, "variants": ["dense", "oneshot"], "pillars": ["accuracy", "robustness"]}


def _values(res):
    return [(r["label"], r["values"]) for r in res.card["rows"]]


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    return card(**OPTS, out=tmp_path_factory.mktemp("local"), name="c", quiet=True)


def test_process_pool_agrees_with_local(local, tmp_path):
    pooled = card(**OPTS, workers=2, out=tmp_path, name="c", quiet=True)
    assert len(pooled.computed) == len(local.computed) == 2 + 2 * 2
    assert _values(pooled) == _values(local)


def test_ray_agrees_with_local(local, tmp_path):
    ray = pytest.importorskip(
        "ray", reason="Ray is the optional 'card' extra: pip install -e '.[card]' (make test)"
    )
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        on_ray = card(**OPTS, executor="ray", out=tmp_path, name="c", quiet=True)
    finally:
        ray.shutdown()
    assert len(on_ray.computed) == len(local.computed)
    assert _values(on_ray) == _values(local)
