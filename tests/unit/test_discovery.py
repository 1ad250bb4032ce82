from __future__ import annotations

import pytest

from vmray_operator.kube.discovery import UnsupportedVmOperator, choose_version


def test_highest_supported_served_version_wins() -> None:
    assert choose_version(["v1alpha1", "v1alpha2"]) == "v1alpha2"
    assert choose_version(["v1alpha1", "v1alpha2", "v1alpha3", "v1alpha4", "v1alpha5"]) == "v1alpha5"
    assert choose_version(["v1alpha1", "v1alpha2", "v1alpha3", "v1alpha4", "v1alpha5", "v1alpha6"]) == "v1alpha6"


def test_a_version_newer_than_we_know_is_not_chosen() -> None:
    assert choose_version(["v1alpha5", "v1alpha6", "v1alpha7"]) == "v1alpha6"
    with pytest.raises(UnsupportedVmOperator, match="not supported"):
        choose_version(["v1alpha7"], "v1alpha7")


def test_override_must_be_served_and_supported() -> None:
    assert choose_version(["v1alpha2", "v1alpha5"], "v1alpha2") == "v1alpha2"
    assert choose_version(["v1alpha5", "v1alpha6"], "v1alpha6") == "v1alpha6"
    with pytest.raises(UnsupportedVmOperator, match="not served"):
        choose_version(["v1alpha2"], "v1alpha4")
    with pytest.raises(UnsupportedVmOperator, match="not supported"):
        choose_version(["v1alpha1"], "v1alpha1")


def test_only_v1alpha1_is_refused_with_the_reason() -> None:
    with pytest.raises(UnsupportedVmOperator, match="served: v1alpha1"):
        choose_version(["v1alpha1"])
