"""The backdoor tests' shared planted-trigger model, for the Trojan-ticket tests."""

from tests.backdoor.conftest import planted  # noqa: F401
