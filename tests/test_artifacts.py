"""Prefect artifact keys: one helper builds every key in Prefect's alphabet, and the
key holds the run's condition, so two conditions of one recipe keep separate results
artifacts on a real (temporary) Prefect server."""

import re

import pytest

from tasks._artifacts import artifact_key


def test_an_artifact_key_is_lowercase_letters_digits_and_single_dashes():
    assert artifact_key("demo", "step_aligned", "results") == "demo-step-aligned-results"
    assert artifact_key("My.Run_1", "round_0002") == "my-run-1-round-0002"
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", artifact_key("--a__b..", "C  d--"))
    with pytest.raises(ValueError, match="needs letters or digits"):
        artifact_key("_", ".")


def test_two_conditions_of_one_recipe_get_different_keys():
    keys = {artifact_key("demo", condition, "results") for condition in ("step_aligned", "aligned_no_repeat")}
    assert len(keys) == 2


@pytest.mark.flow
def test_the_results_artifacts_of_two_conditions_both_exist_after_a_flow_creates_them(prefect_server):
    from prefect import flow
    from prefect.artifacts import Artifact, create_markdown_artifact

    @flow
    def publish(conditions: list[str]) -> None:
        for condition in conditions:
            create_markdown_artifact(key=artifact_key("sdfb-keys", condition, "results"), markdown=condition)

    publish(["binary", "step_aligned"])
    for condition in ("binary", "step_aligned"):
        artifact = Artifact.get(artifact_key("sdfb-keys", condition, "results"))
        assert artifact is not None and artifact.data == condition
