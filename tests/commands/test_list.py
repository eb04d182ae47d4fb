"""``sparta list [KIND] [PATTERN]``: every registry, patterns, errors exit 2."""

import pytest

from sparta.cli import main
from sparta.registry import KINDS, get_registry


def _run(args, capsys):
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_list_alone_prints_every_kind_with_its_count(capsys):
    code, out, _ = _run(["list"], capsys)
    assert code == 0
    rows = dict(line.split() for line in out.splitlines())
    assert rows == {kind: str(len(get_registry(kind))) for kind in KINDS}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_list_kind_prints_every_name(kind, capsys):
    code, out, _ = _run(["list", kind, "--dataset", "digits"], capsys)
    assert code == 0
    first = [line.split()[0] for line in out.splitlines()]
    assert first == get_registry(kind).names()


def test_list_patterns_aliases_and_model_counts(capsys):
    code, out, _ = _run(["list", "models", "lenet*"], capsys)
    assert code == 0 and "lenet300" in out and "params=    266,610" in out
    assert "resnet18" not in out
    code, out, _ = _run(["list", "objectives", "pgd"], capsys)  # an alias matches too
    assert code == 0 and out.split()[:3] == ["pgd-at", "(alias", "pgd)"]
    code, out, _ = _run(["list", "criteria", "l*"], capsys)
    assert code == 0 and [line.split()[0] for line in out.splitlines()] == ["l1", "l2"]
    assert "structure=channel" in out


@pytest.mark.parametrize(
    "args,needle",
    [
        (["list", "attacks", "zzz*"], "no attacks match 'zzz*'; allowed: apgd-ce"),
        (["list", "models", "nope"], "no models match 'nope'"),
        (["list", "widgets"], "registry 'widgets' is not known; allowed: attacks, certify"),
    ],
)
def test_no_match_or_unknown_kind_is_one_line_and_exit_2(args, needle, capsys):
    code, out, err = _run(args, capsys)
    assert code == 2 and out == ""
    assert err.startswith("sparta: error: ") and needle in err and err.count("\n") == 1


def test_command_choices_come_from_the_registries():
    from sparta.commands import certify, sparse_train

    assert certify.METHODS == tuple(get_registry("certify").aliases())
    assert set(certify.METHODS) == {"alpha-crown", "bab", "crown", "ibp", "smooth"}
    assert sparse_train.DST_METHODS == ("", "chase", "rigl", "set")
